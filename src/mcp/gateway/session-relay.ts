/**
 * One MCP session at the gateway, in named steps: the agent's lines read from the tunnel
 * ({@link McpSessionRelay.start}), the connection's server opened with the credentials only the
 * gateway holds ({@link #open}), the messages relayed both ways through the lane's relay
 * (../pipeline/relay.ts: each recorded, judged, filtered and masked), and the session ended once
 * ({@link #end}).
 *
 * @see https://modelcontextprotocol.io/specification/2025-06-18/basic/lifecycle
 */
import { realClock } from '../../clock.js';
import type { McpConnection } from '../../config/connection.js';
import type { SecretRef } from '../../config/secrets.js';
import { describeError, hoopSays } from '../../errors.js';
import { type CloseReason, type SessionOutcome, sessionEndOf, type TunnelSession } from '../../session/engine.js';
import { RelayEnd } from '../../session/relay-end.js';
import { LineReader } from '../wire/json-rpc.js';
import { McpRelay } from '../pipeline/relay.js';
import { type McpUpstream, openUpstream } from './upstream.js';

/** Options of the MCP engine. */
export interface McpEngineOptions {
  resolveSecret: (ref: SecretRef) => Promise<string>;
  /** Where a program runs when its connection names no `cwd`. */
  workDir: string;
}

/** One MCP session; see the module documentation. */
export class McpSessionRelay {
  readonly #session: TunnelSession<McpConnection>;
  readonly #o: McpEngineOptions;
  readonly #relay: McpRelay;
  #upstream: McpUpstream | undefined;
  /** How the session ends (src/session/relay-end.ts). */
  readonly #relayEnd: RelayEnd;

  constructor(session: TunnelSession<McpConnection>, o: McpEngineOptions) {
    this.#session = session;
    this.#o = o;
    this.#relay = new McpRelay(session, { end: (why, what) => this.#end(why, what), ending: () => this.#relayEnd.ending });
    this.#relayEnd = new RelayEnd(session, () => this.#aborted());
  }

  /** Serves the session until it ends; never rejects. */
  start(): Promise<SessionOutcome> {
    const { channel } = this.#session;
    const reader = new LineReader(
      (text) => this.#relay.fromAgent(text),
      (bytes) => this.#relay.tooLong(bytes),
    );
    channel.on('data', (b: Buffer) => {
      this.#relayEnd.bytes.fromClient += b.length;
      reader.push(b);
    });
    channel.on('end', () => this.#end('client-disconnected'));
    channel.on('error', (err: Error) => this.#end('client-disconnected', describeError(err)));
    channel.on('close', () => {
      this.#end('client-disconnected');
      this.#finish();
    });
    this.#open();
    return this.#relayEnd.outcome;
  }

  /** Opens the server; what the agent sent meanwhile goes to it in order, or is answered with why it could not open. */
  #open(): void {
    const { connection, log } = this.#session;
    openUpstream(connection, this.#o.resolveSecret, this.#o.workDir, {
      message: (m, bytes) => this.#relay.fromServer(m, bytes),
      closed: (why, stderr) => {
        log.info('mcp.upstream-closed', { session: this.#session.id, connection: connection.name, why, ...(stderr !== undefined ? { stderr } : {}) });
        this.#relay.failInFlight(hoopSays(why));
        this.#end('upstream-closed', why);
      },
    }).then(
      (u) => {
        if (this.#relayEnd.ending) return void u.close();
        this.#upstream = u;
        this.#relay.opened(u);
      },
      (err: unknown) => {
        const why = describeError(err);
        log.warn('mcp.upstream-failed', { session: this.#session.id, connection: connection.name, error: why });
        this.#session.recording?.stream.event({ t: 'mcp-upstream-failed', at: realClock.now(), message: why });
        this.#relay.failedToOpen();
        this.#relay.failInFlight(`hoop: the MCP server of "${connection.name}" could not be reached: ${why}`);
        this.#end('upstream-unavailable', why);
      },
    );
  }

  /** The gateway ends the session (its token, its run, a shutdown): what is in flight fails, the agent is told why, then it ends. */
  #aborted(): void {
    const e = sessionEndOf(this.#session.signal);
    this.#session.recording?.stream.event({ t: 'mcp-end', at: realClock.now(), reason: e.reason, message: e.message });
    this.#relay.failInFlight(`${e.message}${e.hint ? ` (${e.hint})` : ''}`);
    this.#relay.notice(`${e.message}${e.hint ? ` (${e.hint})` : ''}`);
    this.#session.channel.sendControl({ type: 'close', reason: e.reason, message: e.message, ...(e.hint ? { hint: e.hint } : {}) });
    this.#end(e.reason, e.message);
  }

  /** Ends the server and the tunnel, keeping the first reason given. */
  #end(why: CloseReason, what?: string): void {
    if (!this.#relayEnd.begin(why, what)) return;
    this.#relay.withdrawAll();
    void this.#upstream?.close();
    const { channel } = this.#session;
    if (channel.destroyed) return this.#finish();
    this.#relayEnd.linger(channel);
  }

  /** Tells the engine how the session ended (once). */
  #finish(): void {
    if (this.#relayEnd.finished) return;
    const dropped = this.#relay.dropped;
    if (dropped > 0) this.#session.log.info('mcp.progress-dropped', { session: this.#session.id, dropped });
    this.#relayEnd.finish({ fromClient: this.#relayEnd.bytes.fromClient, toClient: this.#session.channel.bytesSent });
  }
}
