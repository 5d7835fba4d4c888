/**
 * The gateway's PostgreSQL engine. The client has already authenticated to the tunnel (its
 * bearer token) and to its local listener; here the gateway reads the client's StartupMessage
 * from the tunnel with the same caps and allow-list as the CLI, signs in to the upstream server
 * with credentials only it holds, answers the client with AuthenticationOk, the server's
 * parameters and a cancel key minted for this session, and relays. Failures are said inside the
 * protocol (an ErrorResponse psql prints) and in a `close` control message the CLI prints.
 *
 * @see https://www.postgresql.org/docs/current/protocol-flow.html
 */
import { type Clock, realClock } from '../../clock.js';
import { createHash } from 'node:crypto';
import { CATALOG_IDLE_MS, CatalogsByConnection, type RelationReads, SETTLE_MS } from './relation-reads.js';
import { CatalogConnection } from '../pipeline/masking/catalog-connection.js';
import type { SessionChannel } from '../../session/engine.js';
import { HandshakeStream, type FirstPacket } from '../pipeline/handshake.js';
import { authenticationOk, backendKeyData, negotiateProtocolVersion, parameterStatus, readyForQuery, SqlState, terminate } from '../wire/messages.js';
import { PgProtocolError } from '../wire/protocol-error.js';
import { type BackendPath, FrontendPath } from '../pipeline/relay.js';
import { ServerState } from '../pipeline/server-state.js';
import { DEFAULT_STARTUP_SETTINGS, filterStartupParams } from '../pipeline/startup.js';
import { databasesOf, signInAs } from './database-access.js';
import { ErrorCode, describeError, isHoopError, hoopSays } from '../../errors.js';
import type { CancelKey, CancelRegistry } from './cancel-registry.js';
import { sessionOwnerOf } from '../../session/owner.js';
import type { PostgresConnection } from '../../config/connection.js';
import type { SecretRef } from '../../config/secrets.js';
import { sessionEndOf, type CloseReason, type Engine, type PendingReview, type ReviewAsk, type SessionOutcome, type TunnelSession } from '../../session/engine.js';
import { PgSessionMasking } from '../pipeline/masking/stage.js';
import { reviewNotice } from '../pipeline/gate/responses.js';
import { type MaskedValues, serverUtf8, unsafeSettingValue } from '../pipeline/gate/settings.js';
import { loadStatementGate } from '../pipeline/statement-gate.js';
import { loadSqlParser } from '../../policy/sql/analyze.js';
import { cancelUpstreamPostgres, connectUpstreamPostgres, type UpstreamPostgres } from './upstream.js';
import { poolKey, UpstreamPool } from './upstream-pool.js';
import { closeForEnd, closeWithError, type OpenedSession, SessionRelay, upstreamTarget } from './session-relay.js';

/** Default of {@link PostgresEngineOptions.maxStatementBytes}: 64 MiB. */
export const DEFAULT_MAX_STATEMENT_BYTES = 64 * 1024 * 1024;
/** Default of {@link PostgresEngineOptions.maxMaskedMessageBytes}: 64 MiB. */
export const DEFAULT_MAX_MASKED_MESSAGE_BYTES = 64 * 1024 * 1024;

/** Options of the {@link PostgresEngine}. */
export interface PostgresEngineOptions {
  cancels: CancelRegistry;
  resolveSecret: (ref: SecretRef) => Promise<string>;
  /** Deadline for the client's StartupMessage. */
  handshakeTimeoutMs?: number;
  /** Deadline for the rest of a message once its first bytes arrived. */
  messageTimeoutMs?: number;
  /** Deadline for connecting and signing in to the upstream. */
  upstreamTimeoutMs?: number;
  /** Longest SQL text of a Query or Parse judged; a longer one is refused unread. */
  maxStatementBytes?: number;
  /** Largest server message masking reads whole; a larger one it would have to change ends the session. */
  maxMaskedMessageBytes?: number;
  /** Settings a client may give at startup; default {@link DEFAULT_STARTUP_SETTINGS}. */
  startupSettings?: readonly string[];
  /** How long the shared catalog connection of a connection stays open unused while sessions hold it (default 30 s). */
  catalogIdleMs?: number;
  /** How long a connection's names read anything after a statement may have changed its catalog (default 5 s; tests shorten it). */
  catalogSettleMs?: number;
  /** The gateway's clock, whose timers end warm server connections left unused (default: the real one). */
  clock?: Clock;
}

/**
 * What the client hears once the gateway has signed in upstream, in one buffer: a
 * NegotiateProtocolVersion when `protocolOptions` is given (a newer minor version or `_pq_.`
 * options it asked for), AuthenticationOk, the server's ParameterStatus messages, BackendKeyData
 * with the gateway's own key, ReadyForQuery.
 * @see https://www.postgresql.org/docs/15/protocol-flow.html#PROTOCOL-FLOW-START-UP
 */
function greeting(protocolOptions: string[] | undefined, serverParams: Array<[string, string]>, key: CancelKey): Buffer {
  const parts: Buffer[] = [];
  if (protocolOptions) parts.push(negotiateProtocolVersion(0, protocolOptions));
  parts.push(authenticationOk());
  for (const [name, value] of serverParams) parts.push(parameterStatus(name, value));
  parts.push(backendKeyData(key.processId, key.secretKey), readyForQuery('I'));
  return Buffer.concat(parts);
}

/** The gateway side of PostgreSQL sessions. */
export class PostgresEngine implements Engine<PostgresConnection> {
  readonly recordProtocol = 'postgres';
  readonly #o: Required<PostgresEngineOptions>;
  readonly #startupSettings: ReadonlySet<string>;
  readonly #catalogs: CatalogsByConnection;
  /** Server connections kept warm between sessions, for connections whose `pool` allows it. */
  readonly #pool: UpstreamPool;

  constructor(options: PostgresEngineOptions) {
    this.#o = {
      handshakeTimeoutMs: 15_000,
      messageTimeoutMs: 60_000,
      upstreamTimeoutMs: 10_000,
      maxStatementBytes: DEFAULT_MAX_STATEMENT_BYTES,
      maxMaskedMessageBytes: DEFAULT_MAX_MASKED_MESSAGE_BYTES,
      startupSettings: DEFAULT_STARTUP_SETTINGS,
      catalogIdleMs: CATALOG_IDLE_MS,
      catalogSettleMs: SETTLE_MS,
      clock: realClock,
      ...options,
    };
    this.#startupSettings = new Set(this.#o.startupSettings.map((n) => n.toLowerCase()));
    this.#pool = new UpstreamPool(this.#o.clock);
    const idleMs = this.#o.catalogIdleMs;
    this.#catalogs = new CatalogsByConnection((open) => new CatalogConnection(open, { idleMs }), this.#o.catalogSettleMs);
  }

  serve(session: TunnelSession<PostgresConnection>): Promise<SessionOutcome> {
    return this.#serveFrom(session, undefined);
  }

  /**
   * Serves a direct client's session whose StartupMessage (and sign-in) the gateway's direct front
   * read already on `handshake` (../gateway/direct-front.ts): the rest is as for a tunnel.
   */
  serveStarted(session: TunnelSession<PostgresConnection>, started: DirectStart): Promise<SessionOutcome> {
    return this.#serveFrom(session, started);
  }

  async #serveFrom(session: TunnelSession<PostgresConnection>, started: DirectStart | undefined): Promise<SessionOutcome> {
    const { channel } = session;
    const outcome = (reason: CloseReason, detail?: string): SessionOutcome => ({
      reason,
      bytesFromClient: 0,
      bytesToClient: 0,
      ...(detail ? { detail } : {}),
    });
    channel.on('error', (err) => session.log.debug('tunnel.error', { session: session.id, error: describeError(err) }));

    // Until the relay takes over, a session the gateway ends is told at once; the handshake or
    // the upstream connection then fails and the outcome is the gateway's reason.
    const onEarlyEnd = (): void => closeForEnd(channel, sessionEndOf(session.signal));
    if (session.signal.aborted) onEarlyEnd();
    else session.signal.addEventListener('abort', onEarlyEnd, { once: true });
    const relaying = (): void => session.signal.removeEventListener('abort', onEarlyEnd);
    try {
      return await this.#serve(session, outcome, relaying, started);
    } finally {
      relaying();
    }
  }

  async #serve(session: TunnelSession<PostgresConnection>, outcome: OutcomeOf, relaying: () => void, started: DirectStart | undefined): Promise<SessionOutcome> {
    const opened = await this.#open(session, outcome, started);
    if ('reason' in opened) return opened;
    try {
      relaying();
      return await this.#relay(session, opened);
    } finally {
      opened.masking?.close();
      opened.release();
    }
  }

  /**
   * The session up to the relay: the client's startup, the upstream connection signed in, the
   * server's settings checked, the client greeted. Its own function, so that what only this part
   * holds (the startup message, the server's parameters, the greeting) does not stay with the
   * session while it runs: a suspended async function keeps every local it had.
   */
  async #open(session: TunnelSession<PostgresConnection>, outcome: OutcomeOf, direct: DirectStart | undefined): Promise<SessionOutcome | OpenedSession> {
    const { channel } = session;
    const ended = (): SessionOutcome | undefined => (session.signal.aborted ? outcome(sessionEndOf(session.signal).reason) : undefined);
    const handshake = direct?.handshake ?? new HandshakeStream(channel, this.#o.handshakeTimeoutMs);
    const started = direct ? this.#startupParams(session, direct.startup, handshake, outcome) : await this.#readStartup(session, handshake, outcome, ended);
    if ('done' in started) return started.done;
    // The connection as this session signs in: the role and database it picked, with that role's credential.
    const { startup, params, connection } = started;
    const connected = await this.#connectUpstream(session, connection, handshake, params, outcome, ended);
    if ('done' in connected) return connected.done;
    const { upstream, password, poolKey: pooled } = connected;
    // Who the session is at the server, when it picked other than the connection's own role and database (the recording's reader sees the privileges it ran with).
    if (connection !== session.connection) session.recording?.stream.event({ t: 'sign-in', at: realClock.now(), role: connection.user, database: connection.database });
    session.report?.signedIn({ role: connection.user, database: connection.database });

    const end = ended();
    if (end) {
      upstream.socket.end(terminate());
      return end;
    }
    const unsafe =
      session.judge || session.masking ? refuseUnsafeServer(channel, upstream, session.readOnly, session.masking ? { serverUtf8: serverUtf8(upstream.serverParams) } : undefined, outcome) : undefined;
    if (unsafe) return unsafe;
    const { backendKey } = upstream;
    const relayed: OpenedSession['relayed'] = {};
    const { key, release: releaseKey } = this.#registerCancel(session, backendKey, relayed);
    session.report?.upstream(backendKey);
    // The connection's shared catalog connection, held while the session lives (masking and what its statements read look up there).
    const catalogs = session.masking || session.report || session.judge ? this.#catalogsOf(connection, password) : undefined;
    catalogs?.catalog.acquire(session.masking !== undefined);
    const release = (): void => {
      releaseKey();
      catalogs?.catalog.release();
    };
    let masking: PgSessionMasking | undefined;
    try {
      masking = catalogs && this.#sessionMasking(session, catalogs.catalog, backendKey);
      channel.write(greeting(startup.minorVersion > 0 || params.protocolOptions.length > 0 ? params.protocolOptions : undefined, upstream.serverParams, key));
    } catch (err) {
      masking?.close();
      release();
      throw err;
    }
    // What relations read: for the index, and for a judge with rules on tables (src/session/catalog-judge.ts).
    const reads = catalogs?.reads;
    // A connection kept warm goes back to the pool when its session ends cleanly (./upstream-pool.ts).
    const pool =
      pooled && session.connection.pool
        ? { keep: () => void this.#pool.give(pooled, upstream, { idle: session.connection.pool!.idle, idleMs: session.connection.pool!.idleSeconds * 1000 }) }
        : undefined;
    return {
      reader: handshake.release(),
      upstream: { socket: upstream.socket, backendKey, leftover: upstream.leftover, serverParams: upstream.serverParams },
      masking,
      relayed,
      reads,
      release,
      ...(catalogs && session.judge ? { catalog: catalogs.catalog } : {}),
      ...(pool ? { pool } : {}),
    };
  }

  /** The client's first packet: a StartupMessage (its settings filtered), or a CancelRequest acted on here; a failure is said to the client. */
  async #readStartup(
    session: TunnelSession<PostgresConnection>,
    handshake: HandshakeStream,
    outcome: OutcomeOf,
    ended: () => SessionOutcome | undefined,
  ): Promise<{ startup: StartupMessage; params: StartupParams; connection: PostgresConnection } | { done: SessionOutcome }> {
    const { channel } = session;
    try {
      const first = await handshake.startup();
      if (first.kind === 'cancel') {
        handshake.release();
        const done = await this.#o.cancels.cancel(first, sessionOwnerOf(session.identity, session.connection.name)).catch((err: unknown) => {
          session.log.warn('cancel.failed', { session: session.id, error: describeError(err) });
          return 'failed';
        });
        channel.end();
        return { done: outcome('cancel-request', done) };
      }
      return this.#startupParams(session, first, handshake, outcome);
    } catch (err) {
      handshake.release();
      return { done: ended() ?? startupFailed(channel, err, outcome) };
    }
  }

  /** The StartupMessage's settings, filtered (a refused one is said to the client). */
  #startupParams(
    session: TunnelSession<PostgresConnection>,
    startup: StartupMessage,
    handshake: HandshakeStream,
    outcome: OutcomeOf,
  ): { startup: StartupMessage; params: StartupParams; connection: PostgresConnection } | { done: SessionOutcome } {
    try {
      const access = session.lane?.databaseAccess;
      const params = filterStartupParams(startup.params, { settings: this.#startupSettings, limits: session.limits ?? {}, databases: databasesOf(session.connection, access) });
      const connection = signInAs(session.connection, access, { user: params.user, database: startup.params.get('database') || undefined, direct: session.direct === true });
      return { startup, params, connection };
    } catch (err) {
      handshake.release();
      return { done: startupFailed(session.channel, err, outcome) };
    }
  }

  /** Signs in to the upstream server as `connection` says (the role the session picked, with its password; the SQL analysis loaded first when the session needs it); a failure is said to the client. */
  async #connectUpstream(
    session: TunnelSession<PostgresConnection>,
    connection: PostgresConnection,
    handshake: HandshakeStream,
    params: StartupParams,
    outcome: OutcomeOf,
    ended: () => SessionOutcome | undefined,
  ): Promise<{ upstream: UpstreamPostgres; password: string; poolKey?: string } | { done: SessionOutcome }> {
    const { identity } = session;
    try {
      if (session.judge) await loadStatementGate();
      if (session.masking) await loadSqlParser();
      const password = await this.#o.resolveSecret(connection.password);
      // Read-only access is enforced by the server too; the client cannot send this parameter itself.
      const sent: Array<[string, string]> = session.readOnly ? [...params.forward, ['default_transaction_read_only', 'on']] : params.forward;
      const target = upstreamTarget(connection);
      const key = connection.pool
        ? poolKey({ target, user: connection.user, database: connection.database, password, params: sent, owner: `${identity.issuer}\n${identity.subject}\n${identity.run?.id ?? ''}` })
        : undefined;
      const warm = key !== undefined ? this.#pool.take(key) : undefined;
      if (warm) return { upstream: warm, password, poolKey: key! };
      const upstream = await connectUpstreamPostgres({
        ...target,
        user: connection.user,
        database: connection.database,
        password,
        params: sent,
        timeoutMs: this.#o.upstreamTimeoutMs,
        allowCleartextWithoutTls: connection.allowCleartextWithoutTls,
        signal: session.signal,
      });
      return { upstream, password, ...(key !== undefined ? { poolKey: key } : {}) };
    } catch (err) {
      handshake.release();
      return { done: ended() ?? upstreamFailed(session.channel, connection, err, outcome) };
    }
  }

  /** Registers the session's cancel key: a CancelRequest withdraws the statement held for review, else cancels upstream. */
  #registerCancel(session: TunnelSession<PostgresConnection>, backendKey: UpstreamPostgres['backendKey'], relayed: OpenedSession['relayed']): { key: CancelKey; release: () => void } {
    const { connection } = session;
    return this.#o.cancels.register(
      {
        ...sessionOwnerOf(session.identity, session.connection.name),
        ...(session.direct ? { direct: true } : {}),
        cancel: async () => {
          // Part of this session's story: the client asked (its Ctrl-C), whatever it then stopped.
          session.recording?.stream.event({ t: 'cancel', at: realClock.now() });
          // As PostgreSQL cancels the running statement: here the one held for review, and whatever runs before it.
          if (relayed.gate?.withdraw('cancel') && relayed.idle?.()) return;
          await cancelUpstreamPostgres({ ...upstreamTarget(connection), timeoutMs: this.#o.upstreamTimeoutMs }, backendKey);
        },
      },
      backendKey.processId,
    );
  }

  /** One masker per session (with a masking policy); its catalog lookups run on the connection's catalog connection of the gateway's own. */
  #sessionMasking(session: TunnelSession<PostgresConnection>, catalog: CatalogConnection, backendKey: UpstreamPostgres['backendKey']): PgSessionMasking | undefined {
    if (!session.masking) return undefined;
    return new PgSessionMasking({
      masking: session.masking,
      log: session.log,
      sessionId: session.id,
      maxMessageBytes: this.#o.maxMaskedMessageBytes,
      sessionPid: backendKey.processId,
      catalog,
      ...(session.report ? { masked: (column: string, strategy: string) => session.report!.masked(column, strategy) } : {}),
    });
  }

  /** The catalog connection and relation reads of `connection` with `password`, shared by its sessions (see ./relation-reads.ts). */
  #catalogsOf(connection: PostgresConnection, password: string): { catalog: CatalogConnection; reads: RelationReads } {
    const key = JSON.stringify([upstreamTarget(connection), connection.user, connection.database, createHash('sha256').update(password).digest('hex')]);
    // Unreferenced: an idle lookup connection never keeps a stopping gateway alive.
    return this.#catalogs.for(key, async () => {
      const upstream = await this.#catalogConnection(connection, password);
      upstream.socket.unref();
      return upstream;
    });
  }

  /** A read-only connection of the gateway's own for catalog lookups, with the connection's credentials. */
  #catalogConnection(connection: PostgresConnection, password: string): ReturnType<typeof connectUpstreamPostgres> {
    return connectUpstreamPostgres({
      ...upstreamTarget(connection),
      user: connection.user,
      database: connection.database,
      password,
      params: [
        ['application_name', 'hoop-catalog'],
        ['default_transaction_read_only', 'on'],
      ],
      timeoutMs: this.#o.upstreamTimeoutMs,
      allowCleartextWithoutTls: connection.allowCleartextWithoutTls,
    });
  }

  /**
   * Raises the review of a statement the gate holds (session.reviews), and tells the client: a
   * NoticeResponse at the next message boundary (psql prints it while it waits) and `review`
   * control messages as it stands (`pending`, then its outcome) for `hoop connect`'s status line.
   */
  #review(session: TunnelSession<PostgresConnection>, ask: ReviewAsk, backend: BackendPath): PendingReview {
    const { channel } = session;
    const pending = session.reviews!.request(ask);
    const said = { id: pending.id, ...(ask.rule !== undefined ? { rule: ask.rule } : {}), groups: ask.settings.groups, approvals: ask.settings.approvals };
    if (!pending.reused) {
      backend.inject(reviewNotice(pending.id, ask), (b) => channel.write(b));
      channel.sendControl({ type: 'review', state: 'pending', ...said, timeoutMs: ask.settings.timeoutMs });
    }
    void pending.decided.then((o) => {
      if (!channel.destroyed && !channel.writableEnded)
        channel.sendControl({
          type: 'review',
          state: o.state,
          ...said,
          ...(pending.reused ? { reused: true } : {}),
          ...(o.state === 'denied' ? { by: o.by, ...(o.reason ? { reason: o.reason } : {}) } : o.state === 'approved' ? { by: o.by } : {}),
        });
    });
    return pending;
  }

  /**
   * Relays until either side ends, the client breaks the protocol, or the gateway ends the
   * session. Each direction is read once, by a {@link FrontendPath} and a {@link BackendPath}
   * (src/postgres/pipeline/relay.ts) whose stages are the statement gate (with a judge), masking
   * (with a masking policy) and the {@link ServerState}. A session the gateway ends in the middle
   * of a result gets its ErrorResponse after a whole message; a server still busy when the client
   * goes or the gateway ends the session gets a CancelRequest, and its connection is closed within
   * {@link UPSTREAM_END_GRACE_MS} after the Terminate.
   */
  #relay(session: TunnelSession<PostgresConnection>, opened: Omit<OpenedSession, 'release'>): Promise<SessionOutcome> {
    return new SessionRelay(session, opened, {
      upstreamTimeoutMs: this.#o.upstreamTimeoutMs,
      messageTimeoutMs: this.#o.messageTimeoutMs,
      maxStatementBytes: this.#o.maxStatementBytes,
      review: (ask, backend) => this.#review(session, ask, backend),
    }).run();
  }
}

/** Makes a session's outcome from why it ended (no bytes relayed yet). */
type OutcomeOf = (reason: CloseReason, detail?: string) => SessionOutcome;
/** A client's StartupMessage. */
type StartupMessage = Extract<FirstPacket, { kind: 'startup' }>;

/** A direct client's startup as the gateway's direct front read it: its StartupMessage, and the handshake it was read on (which holds what came after). */
export interface DirectStart {
  startup: StartupMessage;
  handshake: HandshakeStream;
}
/** What the gateway makes of a StartupMessage's parameters. */
type StartupParams = ReturnType<typeof filterStartupParams>;

/** Says why the client's startup failed (a timeout, or a packet the gateway refuses), and the session's outcome. */
function startupFailed(channel: SessionChannel, err: unknown, outcome: OutcomeOf): SessionOutcome {
  if (isHoopError(err, ErrorCode.TIMEOUT)) {
    closeWithError(channel, 'handshake-timeout', SqlState.PROTOCOL_VIOLATION, 'hoop: the startup phase did not finish in time');
    return outcome('handshake-timeout');
  }
  if (err instanceof PgProtocolError && err.unanswered) {
    // As PostgreSQL: no ErrorResponse; the CLI still hears why in a control message.
    channel.sendControl({ type: 'close', reason: 'protocol-violation', message: hoopSays(describeError(err)) });
    channel.end();
    return outcome('protocol-violation', describeError(err));
  }
  const sqlstate = err instanceof PgProtocolError ? err.sqlstate : SqlState.PROTOCOL_VIOLATION;
  // A refused database or setting is the client's choice, said as the server would; anything else broke the protocol.
  const reason: CloseReason = sqlstate === SqlState.PROTOCOL_VIOLATION ? 'protocol-violation' : 'startup-refused';
  closeWithError(channel, reason, sqlstate, hoopSays(describeError(err)), isHoopError(err) ? err.hint : undefined);
  return outcome(reason, describeError(err));
}

/** Says why the gateway could not sign in to the upstream (its password, the server's refusal, or no answer), and the session's outcome. */
function upstreamFailed(channel: SessionChannel, connection: PostgresConnection, err: unknown, outcome: OutcomeOf): SessionOutcome {
  const authFailed = isHoopError(err, ErrorCode.UPSTREAM_AUTH_FAILED);
  const reason: CloseReason = authFailed ? 'upstream-auth-failed' : 'upstream-unavailable';
  const what = authFailed
    ? `hoop: the gateway could not sign in to "${connection.name}": ${describeError(err)}`
    : isHoopError(err, ErrorCode.SECRET_UNRESOLVED)
      ? `hoop: the gateway could not read the password of "${connection.name}": ${describeError(err)}`
      : `hoop: the gateway could not reach "${connection.name}": ${describeError(err)}`;
  closeWithError(
    channel,
    reason,
    authFailed ? SqlState.SERVER_REJECTED_CONNECTION : SqlState.UNABLE_TO_CONNECT,
    what,
    'this is a problem of the gateway or the database, not of your login: tell the gateway operator',
  );
  return outcome(reason, describeError(err));
}

/**
 * For a judged session: ends it (the outcome) when the server reports a setting that undoes what
 * the gateway's checks rely on, or does not report standard_conforming_strings; else undefined.
 */
function refuseUnsafeServer(channel: SessionChannel, upstream: UpstreamPostgres, readOnly: boolean | undefined, masked: MaskedValues | undefined, outcome: OutcomeOf): SessionOutcome | undefined {
  const unsafe = upstream.serverParams.find(([name, value]) => unsafeSettingValue(name, value, readOnly, masked));
  const missing = upstream.serverParams.every(([name]) => name.toLowerCase() !== 'standard_conforming_strings');
  if (!unsafe && !missing) return undefined;
  upstream.socket.end(terminate());
  const message = unsafe
    ? `hoop: the server reports ${unsafe[0]} = ${unsafe[1]}, which undoes what the gateway's checks rely on`
    : 'hoop: the server did not report standard_conforming_strings, so the gateway cannot know how it reads SQL';
  closeWithError(
    channel,
    'unsafe-setting',
    SqlState.FEATURE_NOT_SUPPORTED,
    message,
    `${masked ? 'connect with client_encoding UTF8 (its values are masked, which hoop reads as UTF-8); ' : ''}the database or role must keep standard_conforming_strings = on, a UTF-8-safe client_encoding and, for read-only access, default_transaction_read_only = on`,
  );
  return outcome('unsafe-setting', message);
}
