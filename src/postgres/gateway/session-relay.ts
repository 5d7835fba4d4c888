/**
 * One PostgreSQL session's relay at the gateway, once the engine (./engine.ts) has opened it:
 * the stages and paths of both directions, the pumps between the client's channel and the
 * upstream socket, and the ways the session ends (the client leaves or sends Terminate, the
 * server closes, the gateway ends it at a message boundary, a protocol error).
 *
 * @see https://www.postgresql.org/docs/current/protocol-flow.html
 */
import { StatementTally } from '../pipeline/tally.js';
import { CatalogJudge } from '../../session/catalog-judge.js';
import { analyzeSql } from '../../policy/sql/analyze.js';
import { StatementReads, type RelationReads } from './relation-reads.js';
import { WriteGuardStage } from '../pipeline/write-guard.js';
import type { SessionChannel, SessionJudge } from '../../session/engine.js';
import { errorResponse, SqlState, terminate } from '../wire/messages.js';
import { PgProtocolError } from '../wire/protocol-error.js';
import { MessageReader } from '../wire/reader.js';
import { BackendPath, FrontendPath } from '../pipeline/relay.js';
import { ServerState } from '../pipeline/server-state.js';
import { PostgresRecordingStage } from '../pipeline/recording/stage.js';
import { pump, type PumpStats } from '../../tunnel/pump.js';
import { describeError, isHoopError } from '../../errors.js';
import type { PostgresConnection } from '../../config/connection.js';
import { sessionEndOf, type CloseReason, type PendingReview, type ReviewAsk, type SessionEnd, type SessionOutcome, type StatementRows, type TunnelSession } from '../../session/engine.js';
import { RelayEnd } from '../../session/relay-end.js';
import type { PgSessionMasking } from '../pipeline/masking/stage.js';
import { MaskingRefusal } from '../pipeline/masking/judging.js';
import type { Analysis } from '../../policy/sql/analyze.js';
import type { CatalogConnection } from '../pipeline/masking/catalog-connection.js';
import { serverUtf8, StatementGate } from '../pipeline/statement-gate.js';
import { cancelUpstreamPostgres, type UpstreamPostgres } from './upstream.js';

/** How long an ending session may wait for the server's current message to finish before it is cut. */
const CUT_TIMEOUT_MS = 5_000;
/** How long the server of an ended session has to act on its Terminate (after a CancelRequest when it was busy) before the link is cut. */
const UPSTREAM_END_GRACE_MS = 1_000;
/** Said when a judged session's server reports a setting under which SQL would read differently at the gateway and the server. */
function unsafeSettingMessage(setting: string, masked: boolean): string {
  if (masked && setting === 'client_encoding') return 'hoop: the session changed client_encoding to one that is not UTF8, in which the gateway reads the values it masks; the session is closed';
  return `hoop: the session changed ${setting}, which the gateway's checks rely on (how SQL reads, or read-only access); the session is closed`;
}

/** Where `c`'s server is and how to reach it (its TLS). */
export function upstreamTarget(c: PostgresConnection): { host: string; port: number; tls: { mode: PostgresConnection['tls']['mode']; ca?: Buffer; serverName?: string } } {
  return {
    host: c.host,
    port: c.port,
    tls: { mode: c.tls.mode, ...(c.tls.ca ? { ca: c.tls.ca } : {}), ...(c.tls.serverName ? { serverName: c.tls.serverName } : {}) },
  };
}

/** Sends a fatal ErrorResponse and a `close` control message, then ends the tunnel. */
export function closeWithError(channel: SessionChannel, reason: CloseReason, sqlstate: string, message: string, hint?: string): void {
  if (channel.destroyed || channel.writableEnded) return;
  channel.sendControl({ type: 'close', reason, message, ...(hint ? { hint } : {}) });
  channel.end(errorResponse({ severity: 'FATAL', code: sqlstate, message, ...(hint ? { hint } : {}) }));
}

/** The SQLSTATE of a session the gateway ends: 57P01 for a shutdown, 58030 when it can no longer be recorded, 28000 when the identity no longer holds. */
export function endState(end: { reason: CloseReason }): string {
  if (end.reason === 'gateway-shutdown') return SqlState.ADMIN_SHUTDOWN;
  return end.reason === 'recording-failed' ? SqlState.IO_ERROR : SqlState.INVALID_AUTHORIZATION;
}

/**
 * The qualified name of a function by its OID, as SQL writes it, from the catalog (a session's
 * lookups remembered: an OID names one function for as long as it exists).
 * @see https://www.postgresql.org/docs/current/catalog-pg-proc.html
 */
function functionNames(catalog: CatalogConnection): (oid: number) => Promise<string | undefined> {
  const known = new Map<number, string | undefined>();
  return async (oid) => {
    if (known.has(oid)) return known.get(oid);
    const [row] = await catalog.prepared(
      "select pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(p.proname) as name from pg_catalog.pg_proc p join pg_catalog.pg_namespace n on n.oid = p.pronamespace where p.oid = $1::oid",
      [String(oid)],
    );
    const name = row?.name ?? undefined;
    if (known.size < 1000) known.set(oid, name);
    return name;
  };
}

/** Says inside the protocol and in a `close` control message why the gateway ends the session. */
export function closeForEnd(channel: SessionChannel, end: SessionEnd): void {
  closeWithError(channel, end.reason, endState(end), end.message, end.hint);
}

/** A session ready to relay (see PostgresEngine.#open): what the relay needs, and what ends with it. */
export interface OpenedSession {
  /** The client's side, past its startup. */
  reader: MessageReader;
  upstream: Pick<UpstreamPostgres, 'socket' | 'backendKey' | 'leftover' | 'serverParams'>;
  masking: PgSessionMasking | undefined;
  /** The relay's gate, once it runs: a CancelRequest withdraws the review it holds a statement for. */
  relayed: { gate?: StatementGate; idle?: () => boolean };
  /** What the relations its statements name read, when the session's statements are told (./relation-reads.ts). */
  reads: RelationReads | undefined;
  /** The connection's shared catalog connection, for a judged session: the function a FunctionCall names is looked up there. */
  catalog?: CatalogConnection;
  /** Gives the session's cancel key back. */
  release: () => void;
  /** The server connection is kept warm for the next session when this one ends cleanly: `keep` hands it back (./upstream-pool.ts). */
  pool?: { keep: () => void };
}

/** What a {@link SessionRelay} takes from the engine: its limits, and how it raises a review. */
export interface RelayOptions {
  upstreamTimeoutMs: number;
  messageTimeoutMs: number;
  maxStatementBytes: number;
  review: (ask: ReviewAsk, backend: BackendPath) => PendingReview;
}

/** How the gateway ends a session: why, what the client is told, and (for an error of the session's own) its SQLSTATE. */
interface SessionEnding {
  reason: CloseReason;
  message: string;
  hint?: string | undefined;
  sqlstate?: string;
}

/**
 * One session's relay (see PostgresEngine.#relay): the stages and paths of both directions, the
 * pumps between the tunnel and the upstream socket, and the ways the session ends. {@link run}
 * resolves its outcome once, whichever end comes first.
 */
export class SessionRelay {
  readonly #session: TunnelSession<PostgresConnection>;
  readonly #opened: Omit<OpenedSession, 'release'>;
  readonly #o: RelayOptions;
  readonly #socket: UpstreamPostgres['socket'];
  readonly #state = new ServerState();
  /** How the session ends (src/session/relay-end.ts): made as the relay runs. */
  #relayEnd!: RelayEnd;
  #partialTimer: NodeJS.Timeout | undefined;
  #cutTimer: NodeJS.Timeout | undefined;
  /** Why the session is ending, once the gateway ends it. */
  #endingReason: CloseReason | undefined;
  #cancelled = false;
  /** The session's recording stage, once the relay runs. */
  #recorder: PostgresRecordingStage | undefined;
  #gate: StatementGate | undefined;
  /** What the session's end settles beyond the relay (what its open transaction redefined). */
  #endsWith: (() => void) | undefined;
  #tally: StatementTally | undefined;
  #reads: StatementReads<StatementRows> | undefined;
  #frontend!: FrontendPath;
  #backend!: BackendPath;
  #fromClient: PumpStats | undefined;
  #toClient: PumpStats | undefined;
  readonly #onAbort = (): void => this.#endSession(sessionEndOf(this.#session.signal));
  /** Whether the session's outcome is settled (it may wait for what its statements read). */
  get #done(): boolean {
    return this.#relayEnd.ending;
  }

  constructor(session: TunnelSession<PostgresConnection>, opened: Omit<OpenedSession, 'release'>, options: RelayOptions) {
    this.#session = session;
    this.#opened = opened;
    this.#o = options;
    this.#socket = opened.upstream.socket;
  }

  /** Relays until the session ends; resolves how it ended and the bytes each way. */
  run(): Promise<SessionOutcome> {
    this.#relayEnd = new RelayEnd(this.#session, this.#onAbort);
    this.#recorder = this.#recordingStage();
    this.#gate = this.#statementGate();
    this.#opened.relayed.gate = this.#gate;
    this.#opened.relayed.idle = () => this.#state.idle;
    this.#buildPaths();
    this.#startPumps();
    if (this.#session.signal.aborted) this.#onAbort();
    this.#watchClient();
    this.#watchUpstream();
    return this.#relayEnd.outcome;
  }

  /** The recording stage, when the session is recorded. */
  #recordingStage(): PostgresRecordingStage | undefined {
    const { recording } = this.#session;
    const { masking } = this.#opened;
    return recording
      ? new PostgresRecordingStage({
          stream: recording.stream,
          results: recording.results,
          rowCap: recording.rowCap,
          ...(this.#session.report ? { report: this.#session.report } : {}),
          ...(masking ? { maskedColumns: () => masking.masker.lastMaskedColumns } : {}),
          redact: { ...(recording.redactionKey ? { key: recording.redactionKey } : {}), detectors: this.#session.masking?.policy.detectors.map((d) => d.detector) ?? [] },
          ahead: true,
        })
      : undefined;
  }

  /** The statement gate, when the session is judged: refusals logged and recorded, an unsafe setting ends the session, reviews raised. */
  #statementGate(): StatementGate | undefined {
    const session = this.#session;
    const { connection, identity } = session;
    const { judge } = session;
    const reads = this.#opened.reads;
    // The session's own backend may be signalled by its number (pg_cancel_backend(<its pid>)).
    judge?.ownBackend?.(this.#opened.upstream.backendKey.processId);
    const { catalog, masking } = this.#opened;
    const judged = judge && reads ? this.#catalogJudge(judge, reads) : judge;
    return judged
      ? new StatementGate(judged, {
          ...(catalog ? { functionName: functionNames(catalog) } : {}),
          ...(masking ? { sideChannel: (analysis: Analysis) => masking.sideChannel(analysis) } : {}),
          readOnly: session.readOnly === true,
          ...(masking ? { masked: { serverUtf8: serverUtf8(this.#opened.upstream.serverParams) } } : {}),
          connection: connection.name,
          ...(session.recording?.stopping ? { stopping: session.recording.stopping } : {}),
          // The relay's ServerState tells the gate what the server did with each name change.
          confirmed: true,
          onRefusal: (r) => {
            const { sql: _sql, ...said } = r; // the log never carries SQL text
            session.log.info('statement.refused', { session: session.id, subject: identity.subject, connection: connection.name, ...said });
            this.#recorder?.refused(r);
            session.report?.refused(said); // nor the audit stream (the recording and a review do)
          },
          // A DO block, a function or a rule can change what the analysis refuses in SET: end the session.
          onUnsafeSetting: (setting) => {
            session.log.warn('session.unsafe-setting', { session: session.id, subject: identity.subject, setting });
            this.#endSession({ reason: 'unsafe-setting', sqlstate: SqlState.FEATURE_NOT_SUPPORTED, message: unsafeSettingMessage(setting, masking !== undefined) });
          },
          ...(session.reviews ? { review: (ask: ReviewAsk): PendingReview => this.#o.review(ask, this.#backend) } : {}),
        })
      : undefined;
  }

  /** `judge` judging relations through the connection's catalog, told when the session's transactions (and the session) end. */
  #catalogJudge(judge: SessionJudge, reads: RelationReads): CatalogJudge {
    const judged = new CatalogJudge(judge, reads, analyzeSql);
    this.#state.onTransactionEnd = () => judged.ended();
    this.#endsWith = () => judged.ended();
    return judged;
  }

  /** The client's and the server's paths, with the gate (and its write guard), masking and the recorder as the session has them. */
  #buildPaths(): void {
    const { reader, masking } = this.#opened;
    const state = this.#state;
    const gate = this.#gate;
    const recorder = this.#recorder;
    // Writes under a row limit (maxAffectedRows) are counted by the database before they commit.
    const guard = gate ? new WriteGuardStage({ state, gate }) : undefined;
    // What each statement read and changed, for the index, the audit stream and the alerts.
    const { report } = this.#session;
    const statementEnded = report ? (st: StatementRows): void => report.statement(st) : undefined;
    const reads = report && this.#opened.reads ? new StatementReads(this.#opened.reads, statementEnded!, (r) => report.reads(r)) : undefined;
    this.#reads = reads;
    const tally = statementEnded ? new StatementTally(reads?.tell ?? statementEnded) : undefined;
    this.#tally = tally;
    this.#frontend = new FrontendPath({
      reader,
      state,
      ...(gate ? { gate, guardLexing: true, guard } : {}),
      ...(masking ? { masking } : {}),
      ...(recorder ? { recorder } : {}),
      ...(tally ? { tally } : {}),
      ...(this.#opened.pool ? { keepServer: true } : {}),
      maxStatementBytes: this.#o.maxStatementBytes,
    });
    this.#backend = new BackendPath({
      reader: new MessageReader({ side: 'backend' }),
      state,
      ...(gate ? { gate, guard } : {}),
      ...(masking ? { masking } : {}),
      ...(recorder ? { recorder } : {}),
      ...(tally ? { tally } : {}),
    });
  }

  /** Starts moving bytes: the client's through the frontend path upstream, the server's through the backend path to the client. */
  #startPumps(): void {
    const { channel } = this.#session;
    this.#fromClient = pump(channel, this.#socket, {
      initial: Buffer.alloc(0),
      step: (chunk, out) => {
        const r = this.#frontend.step(chunk, out);
        // A Terminate the server never sees (its connection is kept warm): the session ends here, as the server would end it.
        if (this.#opened.pool && this.#frontend.terminated) {
          out.flush();
          this.#clientGone();
          this.#session.channel.end();
          return;
        }
        if (!r) return this.#armPartialTimer();
        // A held message (a review, the lexing guard) pauses reading: what the client sent behind it is not late.
        clearTimeout(this.#partialTimer);
        this.#partialTimer = undefined;
        return r.then(() => this.#armPartialTimer());
      },
      onError: (err) => {
        const sqlstate = err instanceof PgProtocolError ? err.sqlstate : SqlState.PROTOCOL_VIOLATION;
        this.#fail('protocol-violation', sqlstate, `hoop: ${describeError(err)}`, describeError(err), isHoopError(err) ? err.hint : undefined);
      },
    });
    this.#toClient = pump(this.#socket, channel, {
      initial: this.#opened.upstream.leftover,
      step: this.#backend.step,
      onError: (err) => {
        // A result masking cannot judge: said as it is (the judge logged why).
        if (err instanceof MaskingRefusal) return this.#fail('masking-refused', err.sqlstate, `hoop: ${err.message}`, err.message, err.hint);
        const sqlstate = err instanceof PgProtocolError ? err.sqlstate : SqlState.PROTOCOL_VIOLATION;
        this.#session.log.warn('upstream.message-refused', { session: this.#session.id, error: describeError(err) });
        this.#fail('protocol-violation', sqlstate, `hoop: the server's answer could not be relayed: ${describeError(err)}`, describeError(err), isHoopError(err) ? err.hint : undefined);
      },
    });
  }

  /** The client's leaving (its end, its close, or the tunnel's word while a statement is held for review) ends the session. */
  #watchClient(): void {
    const { channel } = this.#session;
    const clientGone = (): void => this.#clientGone();
    channel.on('end', clientGone);
    channel.on('close', clientGone);
    // While a statement is held for review the client's side is not read, so its leaving is
    // seen by the tunnel ('peer-gone'): the review is withdrawn (or, detached, left to a later
    // session), the session ends, and the held statement never runs in it.
    channel.once('peer-gone', () => {
      if (this.#gate?.withdraw('session-ended')) clientGone();
    });
    if (channel.destroyed || channel.readableEnded) clientGone(); // it left while the upstream was being opened
  }

  /** The server's end, error or close ends the session (or abandons the cut that waits for a message boundary). */
  #watchUpstream(): void {
    this.#socket.on('end', this.#onUpstreamEnd);
    this.#socket.on('error', this.#onUpstreamError);
    this.#socket.on('close', this.#onUpstreamClose);
  }

  readonly #onUpstreamEnd = (): void => {
    const { channel } = this.#session;
    if (this.#pendingCut()) return this.#abandonCut(this.#endingReason!, 'the server closed in the middle of a message');
    if (!this.#done && !this.#frontend.terminated) channel.sendControl({ type: 'close', reason: 'upstream-closed' });
    channel.end();
    this.#finish(this.#frontend.terminated ? 'client-terminated' : 'upstream-closed');
  };

  readonly #onUpstreamError = (err: Error): void => {
    const { channel, log, id } = this.#session;
    log.debug('upstream.error', { session: id, error: describeError(err) });
    if (this.#pendingCut()) return this.#abandonCut(this.#endingReason!, describeError(err));
    if (!channel.destroyed && !this.#backend.stopped) {
      closeWithError(channel, 'upstream-closed', SqlState.CONNECTION_FAILURE, `hoop: the connection to the database failed: ${describeError(err)}`);
    }
    this.#finish('upstream-closed', describeError(err));
  };

  readonly #onUpstreamClose = (): void => {
    const { channel } = this.#session;
    if (this.#pendingCut()) return this.#abandonCut(this.#endingReason!, 'the server closed in the middle of a message');
    if (!channel.writableEnded) channel.end();
    this.#finish(this.#frontend.terminated ? 'client-terminated' : 'upstream-closed');
  };

  /**
   * Whether the server connection can outlive the session, kept warm for the next (see
   * OpenedSession.pool): the client said goodbye (Terminate), the server answered everything and
   * is outside a transaction, and nothing is half read, held or being ended by the gateway.
   */
  #keepable(): boolean {
    return (
      this.#opened.pool !== undefined &&
      this.#frontend.terminated &&
      this.#endingReason === undefined &&
      this.#state.idle &&
      this.#state.transactionStatus === 'I' &&
      this.#backend.atBoundary &&
      !this.#socket.destroyed &&
      !this.#socket.writableEnded
    );
  }

  /** Lets go of the server connection, which the pool resets and keeps: the pumps and this relay's listeners come off it. */
  #keepUpstream(): void {
    this.#fromClient?.detach();
    this.#toClient?.detach();
    this.#socket.off('end', this.#onUpstreamEnd);
    this.#socket.off('error', this.#onUpstreamError);
    this.#socket.off('close', this.#onUpstreamClose);
    this.#opened.pool!.keep();
  }

  /** Resolves the session's outcome, once: a statement held for review is withdrawn, the recording ended, the timers cleared. */
  #finish(reason: CloseReason, detail?: string): void {
    if (!this.#relayEnd.begin(reason, detail || undefined)) return;
    // A statement held for review never runs once its session is gone.
    this.#gate?.withdraw('session-ended');
    this.#endsWith?.();
    this.#recorder?.end();
    this.#tally?.end();
    clearTimeout(this.#partialTimer);
    clearTimeout(this.#cutTimer);
    const bytes = { fromClient: this.#fromClient?.bytes ?? 0, toClient: this.#toClient?.bytes ?? 0 };
    // Statements still waiting for what their relations read are told before the session's end.
    const told = this.#reads?.settled();
    if (told) void told.then(() => this.#relayEnd.finish(bytes));
    else this.#relayEnd.finish(bytes);
  }

  /**
   * Ends the upstream session: a CancelRequest first when the server is still busy with what
   * it was sent (a long query would delay the Terminate), then the Terminate (unless the
   * client sent its own).
   */
  #endUpstream(): void {
    const socket = this.#socket;
    if (socket.destroyed) return;
    if (!this.#state.idle && !this.#cancelled) {
      this.#cancelled = true;
      cancelUpstreamPostgres({ ...upstreamTarget(this.#session.connection), timeoutMs: this.#o.upstreamTimeoutMs }, this.#opened.upstream.backendKey).catch((err: unknown) =>
        this.#session.log.debug('upstream.cancel-failed', { session: this.#session.id, error: describeError(err) }),
      );
    }
    if (socket.writableEnded) return;
    if (this.#frontend.terminated) socket.end();
    else socket.end(terminate());
  }

  /** Cuts the upstream link if the server has not closed it within {@link UPSTREAM_END_GRACE_MS}. */
  #cutUpstreamSoon(): void {
    const socket = this.#socket;
    if (socket.destroyed) return;
    const grace = setTimeout(() => socket.destroy(), UPSTREAM_END_GRACE_MS).unref();
    socket.once('close', () => clearTimeout(grace));
  }

  /** Ends the session at once for an error: both sides stopped, the client told why. */
  #fail(reason: CloseReason, sqlstate: string, message: string, detail?: string, hint?: string): void {
    this.#frontend.stop();
    this.#endUpstream();
    this.#cutUpstreamSoon();
    closeWithError(this.#session.channel, reason, sqlstate, message, hint);
    this.#finish(reason, detail);
  }

  /** Times the rest of a message the client began: the session fails when it does not come within messageTimeoutMs. */
  #armPartialTimer(): void {
    if (this.#frontend.reader.atBoundary) {
      clearTimeout(this.#partialTimer);
      this.#partialTimer = undefined;
    } else if (this.#partialTimer) {
      this.#partialTimer.refresh();
    } else {
      this.#partialTimer = setTimeout(() => {
        this.#fail('read-timeout', SqlState.PROTOCOL_VIOLATION, 'hoop: the client stopped in the middle of a message');
      }, this.#o.messageTimeoutMs);
    }
  }

  /** Ends the session at the next message boundary of the server's stream, saying why. */
  #endSession(end: SessionEnding): void {
    if (this.#done || this.#endingReason) return;
    const { channel } = this.#session;
    this.#endingReason = end.reason;
    this.#frontend.stop();
    this.#gate?.withdraw('session-ended');
    this.#endUpstream();
    this.#session.log.debug('tunnel.ending', { session: this.#session.id, reason: end.reason, betweenMessages: this.#backend.atBoundary });
    this.#backend.cut(() => {
      closeWithError(channel, end.reason, end.sqlstate ?? endState(end), end.message, end.hint);
      this.#finish(end.reason, end.sqlstate ? end.message : undefined);
      // Rows still coming are read and dropped; a server that goes on is cut off.
      this.#cutUpstreamSoon();
    });
    if (!this.#done) this.#cutTimer = setTimeout(() => this.#abandonCut(end.reason, 'the rest of a server message did not reach the client in time'), CUT_TIMEOUT_MS);
  }

  /** Ends a session whose end waits for a message boundary that will not come. */
  #abandonCut(reason: CloseReason, detail: string): void {
    this.#session.channel.destroy();
    this.#socket.destroy();
    this.#finish(reason, detail);
  }

  /** Whether the gateway is ending the session and waits for the server's stream to reach a message boundary. */
  #pendingCut(): boolean {
    return this.#endingReason !== undefined && !this.#backend.stopped;
  }

  /** The client went (or sent its Terminate): the upstream is ended (or kept warm) and the session finishes. */
  #clientGone(): void {
    if (this.#done) return;
    this.#frontend.stop();
    if (this.#keepable()) this.#keepUpstream();
    else {
      this.#endUpstream();
      this.#cutUpstreamSoon();
    }
    this.#finish(this.#frontend.terminated ? 'client-terminated' : 'client-disconnected');
  }
}
