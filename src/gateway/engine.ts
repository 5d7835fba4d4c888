/**
 * One engine per protocol behind one interface: the gateway accepts a tunnel, verifies who is
 * calling and whether they may use the connection, and hands the session to the engine of the
 * connection's type, which opens the upstream with the gateway's own credentials and relays.
 *
 * @see https://github.com/gravitational/teleport/tree/master/lib/srv/db/common (Engine pattern)
 */
import type { Logger } from '../log.js';
import type { TunnelChannel } from '../tunnel/channel.js';
import type { ConnectionConfig } from './config.js';
import type { Identity } from './verify-token.js';

/** Why a session ended; logged and sent to the CLI in a `close` control message. */
export type CloseReason =
  | 'client-terminated'
  | 'client-disconnected'
  | 'upstream-closed'
  | 'upstream-unavailable'
  | 'upstream-auth-failed'
  | 'protocol-violation'
  | 'handshake-timeout'
  | 'read-timeout'
  | 'cancel-request'
  | 'gateway-shutdown'
  | 'internal-error';

/** One authenticated tunnel, handed to an engine. */
export interface TunnelSession {
  id: string;
  identity: Identity;
  connection: ConnectionConfig;
  channel: TunnelChannel;
  remoteAddress: string;
  log: Logger;
  /** Aborted when the gateway shuts down. */
  signal: AbortSignal;
}

/** How a session ended. */
export interface SessionOutcome {
  reason: CloseReason;
  /** Bytes the client sent through the tunnel. */
  bytesFromClient: number;
  /** Bytes sent back to the client. */
  bytesToClient: number;
  /** A short, secret-free explanation for the log. */
  detail?: string;
}

/** A protocol engine. */
export interface Engine {
  /** Serves one session until it ends; never throws. */
  serve(session: TunnelSession): Promise<SessionOutcome>;
}
