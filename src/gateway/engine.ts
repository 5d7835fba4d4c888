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
  | 'internal-error'
  | SessionEndReason;

/**
 * Why the gateway itself ends a live session: it shuts down, the session's token expired without
 * being renewed, a renewal brought another identity, or a renewed token no longer grants access.
 */
export type SessionEndReason = 'gateway-shutdown' | 'token-expired' | 'identity-changed' | 'access-revoked';

/**
 * The reason a {@link TunnelSession.signal} is aborted with. Engines tell the client inside its
 * protocol (PostgreSQL: a FATAL ErrorResponse, SQLSTATE 57P01 for a shutdown and 28000 for the
 * others) and in a `close` control message `{ type: 'close', reason, message, hint }`.
 *
 * @see https://www.postgresql.org/docs/current/errcodes-appendix.html
 */
export class SessionEnd extends Error {
  override readonly name = 'SessionEnd';
  readonly reason: SessionEndReason;
  readonly hint: string | undefined;

  constructor(reason: SessionEndReason, message: string, hint?: string) {
    super(message);
    this.reason = reason;
    this.hint = hint;
  }
}

/** The {@link SessionEnd} an aborted session signal carries; a plain abort counts as a shutdown. */
export function sessionEndOf(signal: AbortSignal): SessionEnd {
  const reason: unknown = signal.reason;
  return reason instanceof SessionEnd ? reason : new SessionEnd('gateway-shutdown', 'hoop: the gateway is shutting down', 'connect again in a moment');
}

/** One authenticated tunnel, handed to an engine. */
export interface TunnelSession {
  id: string;
  /** Who is calling; replaced (same issuer and subject) when the client renews its token. */
  identity: Identity;
  connection: ConnectionConfig;
  channel: TunnelChannel;
  remoteAddress: string;
  log: Logger;
  /**
   * Aborted when the gateway ends the session, with a {@link SessionEnd} as `signal.reason`: the
   * gateway shuts down, the token expired, or a renewal changed who is calling.
   */
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
