/**
 * The local end of `hoop connect` for PostgreSQL: a listener on 127.0.0.1 (or a unix socket)
 * that any PostgreSQL client can use. It declines SSL/GSS encryption (the hop is loopback; the
 * tunnel is TLS), reads the StartupMessage with the protocol's caps (the gateway decides which
 * of its settings pass), authenticates the local client with SCRAM-SHA-256 against a per-session secret (so
 * no other local process or user can ride the tunnel), then opens one tunnel per client and
 * relays. CancelRequests are forwarded through a tunnel of their own; the gateway honours them
 * only for the caller's own sessions.
 *
 * @see https://www.postgresql.org/docs/current/protocol-flow.html
 * @see https://www.postgresql.org/docs/current/sasl-authentication.html
 */
import { chmod, rm } from 'node:fs/promises';
import * as net from 'node:net';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import type { SecureContext } from 'node:tls';
import { ErrorCode, HoopError, describeError, isHoopError, hoopSays } from '../../errors.js';
import type { Logger } from '../../log.js';
import type { Refusal, StatementGate } from '../pipeline/statement-gate.js';
import type { PostgresRawTap, PostgresRecordingStage } from '../pipeline/recording/stage.js';
import type { ControlMessage } from '../../tunnel/frames.js';
import { pump, type PumpOutput } from '../../tunnel/pump.js';
import { type ClientRecordTerms, newSessionId, type OpenedTunnel } from '../../tunnel/transport.js';
import { HandshakeStream, scramExchange } from '../pipeline/handshake.js';
import { authenticationSASLFinal, cancelRequest, errorResponse, SqlState, startupMessage } from '../wire/messages.js';
import { PgProtocolError } from '../wire/protocol-error.js';
import { MessageReader } from '../wire/reader.js';
import { BackendPath, FrontendPath } from '../pipeline/relay.js';
import { ScramAuthError, ScramServer, type ScramSecret } from '../wire/scram.js';
import { startupIdentity } from '../pipeline/startup.js';

/** Something the user should hear about (the CLI prints these). */
export type ListenerEvent =
  | { kind: 'client-connected'; session: string; user: string; database: string }
  | { kind: 'client-closed'; session: string; reason: string; message?: string }
  | { kind: 'tunnel-failed'; session: string; error: HoopError }
  | { kind: 'auth-failed'; session: string }
  | { kind: 'protocol-error'; session: string; message: string }
  /** The gateway holds a statement of the session for review, or its review ended (the `review` control message). */
  | { kind: 'review'; session: string; review: ControlMessage };

/** The CLI's own record of a session, as the listener feeds it. */
export interface ClientSessionRecord {
  /** Fed the messages of both directions when the relay reads them for its own checks (with their refusals)... */
  stage: PostgresRecordingStage;
  /** ... or else the bytes of both as they pass (read on the recording thread). */
  readonly raw: Pick<PostgresRawTap, 'client' | 'server'>;
  /** The session is over: writes its end and closes the record. */
  close(end: { reason: string } & Record<string, unknown>): void;
}

/**
 * A pump step's outcome once the tap has copied its chunk: while the recording is `behind`, what
 * is gathered goes on and the sender waits for it (and for the step, `r`).
 */
function waitingFor(behind: Promise<void> | undefined, r: void | Promise<void>, out: PumpOutput): void | Promise<void> {
  if (!behind) return r;
  out.flush();
  return r instanceof Promise ? Promise.all([r, behind]).then(() => undefined) : behind;
}

/** Options of a {@link LocalPostgresListener}. */
export interface LocalPostgresListenerOptions {
  /** Opens a tunnel to the gateway for one client session. */
  openTunnel: (sessionId: string) => Promise<OpenedTunnel>;
  /**
   * Hands a client's CancelRequest to the gateway without a session of its own (so that a Ctrl-C is
   * part of the session it cancels, not a new one); when absent or failing, it goes through a
   * tunnel of its own.
   */
  cancel?: (key: { processId: number; secretKey: number }) => Promise<void>;
  /** The SCRAM secret of the per-session password local clients must present. */
  secret: ScramSecret;
  /** TCP port on 127.0.0.1 (0: any free port). Ignored when `socketDir` is set. */
  port?: number;
  /** Listen on `<socketDir>/.s.PGSQL.<socketPort>` instead of TCP (libpq's naming). */
  socketDir?: string;
  socketPort?: number;
  log: Logger;
  onEvent?: (event: ListenerEvent) => void;
  /** Deadline for the startup phase and local authentication. */
  handshakeTimeoutMs?: number;
  /** Deadline for the rest of a message once its first bytes arrived (as at the gateway); default 60 s. */
  messageTimeoutMs?: number;
  /** Accept clients that ask for TLS (SSLRequest) with this certificate; without it, TLS is declined. */
  tls?: SecureContext;
  /**
   * Early statement checks: called once per client session, after its tunnel opened, for the
   * gate that judges what the client sends before it leaves the machine (undefined: none). The
   * gate's refusals are rewritten on the way back, as the gateway's are.
   */
  statementGate?: (sessionId: string, tunnel: OpenedTunnel, onRefusal: (r: Refusal) => void) => StatementGate | undefined;
  /**
   * The CLI's own record of a session the gateway accepts it for (`OpenedTunnel.clientRecord`):
   * opens it (with its start event), or resolves undefined when this CLI keeps none. The listener
   * feeds it what the local client sent and received, and closes it with the session's end.
   */
  record?: (session: { id: string; user: string; database: string; terms: ClientRecordTerms }) => Promise<ClientSessionRecord | undefined>;
}

/** Where the listener is reachable. */
export interface ListenAddress {
  host: string;
  port: number;
  socketPath?: string;
}

function sqlstateFor(err: HoopError): string {
  switch (err.code) {
    case ErrorCode.TOKEN_REJECTED:
    case ErrorCode.NOT_LOGGED_IN:
      return SqlState.INVALID_AUTHORIZATION;
    case ErrorCode.ACCESS_DENIED:
      return SqlState.INSUFFICIENT_PRIVILEGE;
    case ErrorCode.CONNECTION_UNKNOWN:
      return SqlState.INVALID_CATALOG_NAME;
    case ErrorCode.UPSTREAM_AUTH_FAILED:
      return SqlState.SERVER_REJECTED_CONNECTION;
    case ErrorCode.TOO_MANY_SESSIONS:
      return SqlState.TOO_MANY_CONNECTIONS;
    default:
      return SqlState.UNABLE_TO_CONNECT;
  }
}

/** Sends a fatal ErrorResponse to a local client and closes its connection. */
function refuse(socket: Duplex, sqlstate: string, message: string, hint?: string): void {
  if (socket.destroyed || socket.writableEnded) return;
  socket.end(errorResponse({ severity: 'FATAL', code: sqlstate, message, ...(hint ? { hint } : {}) }));
}

/** A local PostgreSQL listener that forwards each client through its own tunnel. */
export class LocalPostgresListener {
  readonly #o: LocalPostgresListenerOptions;
  readonly #server: net.Server;
  /** Each client's socket -> the stream it speaks on (the socket, or TLS over it) and whether its bytes are relayed (a message of ours could land inside one of the server's). */
  readonly #clients = new Map<net.Socket, { stream: Duplex; relaying: boolean }>();
  #socketPath: string | undefined;

  constructor(options: LocalPostgresListenerOptions) {
    this.#o = options;
    this.#server = net.createServer({ noDelay: true }, (socket) => this.#accept(socket));
  }

  /** Number of connected local clients. */
  get clients(): number {
    return this.#clients.size;
  }

  /** Starts listening. */
  async listen(): Promise<ListenAddress> {
    const { socketDir } = this.#o;
    const path = socketDir ? join(socketDir, `.s.PGSQL.${this.#o.socketPort ?? 5432}`) : undefined;
    const target: net.ListenOptions = path ? { path } : { host: '127.0.0.1', port: this.#o.port ?? 0 };
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', (err) => {
        const where = path ?? `${target.host}:${target.port}`;
        reject(
          new HoopError(ErrorCode.LISTEN_FAILED, `cannot listen on ${where}: ${describeError(err)}`, {
            hint: (err as NodeJS.ErrnoException).code === 'EADDRINUSE' ? 'pick another --port, or omit it to use any free port' : undefined,
            cause: err,
          }),
        );
      });
      this.#server.listen(target, () => resolve());
    });
    if (path) {
      this.#socketPath = path;
      await chmod(path, 0o600);
      return { host: socketDir!, port: this.#o.socketPort ?? 5432, socketPath: path };
    }
    const addr = this.#server.address() as net.AddressInfo;
    return { host: '127.0.0.1', port: addr.port };
  }

  /** Stops listening and closes every client. */
  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    for (const [socket, { stream, relaying }] of this.#clients) {
      if (relaying) stream.end();
      else refuse(stream, SqlState.ADMIN_SHUTDOWN, 'hoop: hoop connect is shutting down');
      socket.destroySoon();
    }
    await closed;
    if (this.#socketPath) await rm(this.#socketPath, { force: true });
  }

  /** Serves a client that reached this port another way than its own listener (a contained run's bridge, src/agent/port-bridge.ts). */
  accept(socket: net.Socket): void {
    this.#accept(socket);
  }

  #accept(socket: net.Socket): void {
    this.#clients.set(socket, { stream: socket, relaying: false });
    socket.on('close', () => this.#clients.delete(socket));
    socket.on('error', (err) => this.#o.log.debug('local.error', { error: describeError(err) }));
    const session = newSessionId();
    this.#serve(socket, session).catch((err) => {
      this.#o.log.error('local.internal-error', { session, error: describeError(err) });
      socket.destroy();
    });
  }

  async #serve(raw: net.Socket, session: string): Promise<void> {
    const { log, onEvent } = this.#o;
    const handshake = new HandshakeStream(raw, this.#o.handshakeTimeoutMs ?? 15_000, this.#o.tls);
    /** The client's stream: the socket, or TLS over it once the client asked for it. */
    const client = (): Duplex => handshake.stream;
    let user: string;
    let database: string;
    let params: ReadonlyMap<string, string>;
    try {
      const first = await handshake.startup();
      if (first.kind === 'cancel') {
        handshake.release();
        await this.#forwardCancel(session, first.processId, first.secretKey);
        client().end();
        return;
      }
      // The gateway decides which startup settings it lets through (its list is configurable).
      ({ user, database } = startupIdentity(first.params));
      params = first.params;
      this.#clients.set(raw, { stream: client(), relaying: false });
      await this.#authenticate(client(), handshake);
    } catch (err) {
      handshake.release();
      if (err instanceof ScramAuthError) {
        onEvent?.({ kind: 'auth-failed', session });
        refuse(client(), SqlState.INVALID_PASSWORD, 'hoop: password authentication failed for the local tunnel', 'use the password hoop connect wrote to its PGPASSFILE (or printed with --json)');
      } else if (isHoopError(err, ErrorCode.TIMEOUT)) {
        refuse(client(), SqlState.PROTOCOL_VIOLATION, 'hoop: the startup phase did not finish in time');
      } else if (err instanceof PgProtocolError && err.unanswered) {
        log.debug('local.startup-abandoned', { session, error: describeError(err) });
        client().end();
      } else {
        const sqlstate = err instanceof PgProtocolError ? err.sqlstate : SqlState.PROTOCOL_VIOLATION;
        onEvent?.({ kind: 'protocol-error', session, message: describeError(err) });
        refuse(client(), sqlstate, hoopSays(describeError(err)), isHoopError(err) ? err.hint : undefined);
      }
      return;
    }

    let tunnel: OpenedTunnel;
    try {
      tunnel = await this.#o.openTunnel(session);
    } catch (err) {
      handshake.release();
      const e = isHoopError(err) ? err : new HoopError(ErrorCode.INTERNAL, describeError(err), { cause: err });
      onEvent?.({ kind: 'tunnel-failed', session, error: e });
      refuse(client(), sqlstateFor(e), hoopSays(e.message), e.hint);
      return;
    }
    onEvent?.({ kind: 'client-connected', session, user, database });
    const { channel } = tunnel;
    let closeReason: ControlMessage | undefined;
    channel.on('control', (msg: ControlMessage) => {
      if (msg.type === 'close') closeReason = msg;
      else if (msg.type === 'review') onEvent?.({ kind: 'review', session, review: msg });
    });
    channel.on('error', (err) => log.debug('tunnel.error', { session, error: describeError(err) }));
    channel.write(startupMessage([['user', user], ['database', database], ...[...params].filter(([k]) => k !== 'user' && k !== 'database')]));

    // The CLI's own record, when the gateway takes one (the hook says why when it cannot keep one; the session goes on).
    const record = tunnel.clientRecord ? await this.#o.record?.({ id: tunnel.sessionId, user, database, terms: tunnel.clientRecord }) : undefined;

    const reader = handshake.release();
    this.#clients.set(raw, { stream: client(), relaying: true });
    const socket = client();
    let gate: StatementGate | undefined;
    try {
      gate = this.#o.statementGate?.(session, tunnel, (r) => {
        record?.stage.refused(r);
        // The gateway never sees what this check refused (a stand-in goes in its place): it is told, and keeps it as the CLI's word.
        tunnel.channel.sendControl({ type: 'refusal', fields: { rule: r.rule, action: r.action, reason: r.reason, message: r.message, ...(r.sql !== undefined ? { sql: r.sql } : {}) } });
      });
    } catch (err) {
      onEvent?.({ kind: 'protocol-error', session, message: describeError(err) });
      refuse(socket, SqlState.INTERNAL_ERROR, hoopSays(describeError(err)));
      channel.destroy();
      record?.close({ reason: 'protocol-error' });
      return;
    }
    // With checks of its own the relay reads every message, and the record takes them as it reads
    // them (the refusals in order); without, it reads none, and the record copies the bytes of
    // either direction as they pass (rows up to the cap).
    const recorder = gate ? record?.stage : undefined;
    const tap = gate ? undefined : record?.raw;
    const frontend = new FrontendPath({ reader, ...(gate ? { gate } : {}), ...(recorder ? { recorder } : {}) });
    const backend = new BackendPath({ reader: new MessageReader({ side: 'backend' }), ...(gate ? { gate } : {}), ...(recorder ? { recorder } : {}) });
    let partialTimer: NodeJS.Timeout | undefined;
    const protocolError = (err: unknown): void => {
      clearTimeout(partialTimer);
      frontend.stop();
      onEvent?.({ kind: 'protocol-error', session, message: describeError(err) });
      const sqlstate = err instanceof PgProtocolError ? err.sqlstate : SqlState.PROTOCOL_VIOLATION;
      refuse(socket, sqlstate, hoopSays(describeError(err)), isHoopError(err) ? err.hint : undefined);
      channel.destroy();
    };
    // A client that stops in the middle of a message is cut off, as the gateway would.
    const armPartialTimer = (): void => {
      if (frontend.reader.atBoundary) {
        clearTimeout(partialTimer);
        partialTimer = undefined;
      } else if (partialTimer) partialTimer.refresh();
      else {
        partialTimer = setTimeout(() => protocolError(new PgProtocolError('the client stopped in the middle of a message')), this.#o.messageTimeoutMs ?? 60_000);
        partialTimer.unref();
      }
    };
    const fromClient = pump(socket, channel, {
      // What the reader holds from the startup goes through the step first (and to the tap).
      initial: tap ? reader.takeBuffered() : Buffer.alloc(0),
      step: (chunk, out) => {
        const r = frontend.step(chunk, out);
        armPartialTimer();
        return tap ? waitingFor(tap.client(chunk), r, out) : r;
      },
      onError: protocolError,
    });
    const toClient = pump(channel, socket, {
      // The tap walks the bytes first: a header it refuses ends the session before they go on.
      step: tap ? (chunk, out) => waitingFor(tap.server(chunk), backend.step(chunk, out), out) : backend.step,
      onError: (err) => {
        onEvent?.({ kind: 'protocol-error', session, message: `the gateway's answer broke the protocol: ${describeError(err)}` });
        socket.destroy();
        channel.destroy();
      },
    });
    socket.once('close', () => clearTimeout(partialTimer));
    let reported = false;
    const report = (reason: string): void => {
      if (reported) return;
      reported = true;
      const message = typeof closeReason?.message === 'string' ? closeReason.message : undefined;
      const why = typeof closeReason?.reason === 'string' ? closeReason.reason : reason;
      onEvent?.({ kind: 'client-closed', session, reason: why, ...(message ? { message } : {}) });
      record?.close({ reason: why, ...(message ? { detail: message } : {}), bytesFromClient: fromClient.bytes, bytesToClient: toClient.bytes });
    };
    socket.on('end', () => channel.end());
    socket.on('close', () => {
      if (!channel.writableEnded) channel.end();
      report('client-disconnected');
    });
    channel.on('end', () => socket.end());
    channel.on('close', () => {
      if (!socket.writableEnded) socket.end();
      report('tunnel-closed');
    });
    if (socket.destroyed || socket.readableEnded) {
      // The client left while the tunnel was being opened.
      channel.end();
      report('client-disconnected');
    }
  }

  /** SCRAM-SHA-256 with the per-session secret; throws ScramAuthError on a wrong password. */
  async #authenticate(socket: Duplex, handshake: HandshakeStream): Promise<void> {
    socket.write(authenticationSASLFinal(await scramExchange(handshake, new ScramServer(this.#o.secret))));
  }

  async #forwardCancel(session: string, processId: number, secretKey: number): Promise<void> {
    if (this.#o.cancel) {
      try {
        return await this.#o.cancel({ processId, secretKey });
      } catch (err) {
        this.#o.log.debug('cancel.request-failed', { session, error: describeError(err), next: 'a tunnel of its own' });
      }
    }
    try {
      const { channel } = await this.#o.openTunnel(session);
      await new Promise<void>((resolve) => {
        channel.on('error', () => resolve());
        channel.on('close', () => resolve());
        channel.resume();
        channel.end(cancelRequest(processId, secretKey));
      });
    } catch (err) {
      this.#o.log.debug('cancel.failed', { session, error: describeError(err) });
    }
  }
}
