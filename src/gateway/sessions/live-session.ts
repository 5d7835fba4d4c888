/**
 * One owner per live session: who it is, where it came from, its recording, and what its engine
 * tells it as it learns it (signed in as, each statement, each refusal, what its relations read,
 * the client's intent). It keeps what its summary needs and says each fact once to every
 * {@link SessionObserver} (./session-events.ts: the log, the audit stream, the index, the
 * recording, first use). The index's line for the session is read from it alone.
 */
import { realClock } from '../../clock.js';
import type { ConnectionConfig } from '../../config/connection.js';
import type { Identity } from '../../identity.js';
import type { Principal } from '../../policy/principal.js';
import type { Review } from '../../policy/review-record.js';
import type { RecordingStream } from '../../recording/thread.js';
import type { RelationsRead, SessionOutcome, SessionReport, StatementRefusal, StatementRows } from '../../session/engine.js';
import type { SessionSummary } from '../../api/answers.js';
import { TablesTouched, type TouchedSummary } from '../records/recordings.js';

/** The distinct tools a session's line keeps. */
const MAX_TOOLS = 1000;
/** Who a session is, as every log line and audit event about it names it. */
export type SessionWho = {
  session: string;
  subject: string;
  issuer: string;
  connection: string;
  remote: string;
  via: string;
  run?: string;
  agent?: string;
};

/** Where a session came from, as its recording's start and its summary say it. */
export interface SessionOrigin {
  connection: string;
  type: ConnectionConfig['type'];
  remote: string;
  client?: string;
  policyCommit?: string;
  runId?: string;
  via: Principal['via'];
  agent?: string;
  isolated?: boolean;
  direct?: true;
  /** A runbook's run: the runbook, and the SHA-256 of its file. */
  runbook?: { name: string; digest: string };
}

/** A refusal as observers hear it: the policy's at the gateway, or one the CLI's early check made (`by: 'cli'`, on its word). */
export type SessionRefusal = StatementRefusal & { by?: 'cli' };

/** Hears what becomes of live sessions, each fact once; an `ended` that returns a Promise is waited for before the next observer hears it. */
export interface SessionObserver {
  opened?(s: LiveSession): void;
  signedIn?(s: LiveSession): void;
  upstream?(s: LiveSession, key: { processId: number; secretKey: number }): void;
  statement?(s: LiveSession, statement: StatementRows): void;
  refused?(s: LiveSession, refusal: SessionRefusal): void;
  reads?(s: LiveSession, reads: RelationsRead): void;
  reviewed?(s: LiveSession, review: Review): void;
  ended?(s: LiveSession, outcome: SessionOutcome): void | Promise<void>;
}

/** The observers every live session tells, in the order they were added. */
export class SessionEvents {
  readonly observers: SessionObserver[] = [];

  /** Adds an observer; observers hear each fact in the order they were added. */
  observe(o: SessionObserver): void {
    this.observers.push(o);
  }

  /** Tells every observer `s` ended, even after one failed (the index must not list it as running for ever); the first failure is thrown after. */
  async ended(s: LiveSession, outcome: SessionOutcome): Promise<void> {
    s.ending = true;
    let failure: { err: unknown } | undefined;
    for (const o of this.observers) {
      try {
        await o.ended?.(s, outcome);
      } catch (err) {
        failure ??= { err };
      }
    }
    if (failure) throw failure.err;
  }
}

/** What a live session is made with. */
export interface LiveSessionInit {
  who: SessionWho;
  identity: Identity;
  connection: ConnectionConfig;
  origin: SessionOrigin;
  started: number;
  policyCommit?: string | undefined;
  readOnly: boolean;
  maxSessionSeconds?: number | undefined;
  recording?: RecordingStream | undefined;
  /** The gateway records sessions, but could not open this one's recording. */
  recordingFailed: boolean;
  /** A judge reads its statements (and names the tables they touch); without one the SQL is read at the end. */
  judged: boolean;
}

/** A live session: what its engine reports, kept for its summary and told to the observers. */
export class LiveSession implements SessionReport {
  readonly who: SessionWho;
  readonly identity: Identity;
  readonly connection: ConnectionConfig;
  readonly origin: SessionOrigin;
  readonly started: number;
  readonly policyCommit: string | undefined;
  readonly readOnly: boolean;
  readonly maxSessionSeconds: number | undefined;
  readonly recording: RecordingStream | undefined;
  /** The recording could not be written (or opened) to the end. */
  recordingFailed: boolean;
  /** Statements run and refused; rows the client received and rows its statements changed. */
  readonly counts = { statements: 0, refused: 0, rowsRead: 0, rowsChanged: 0 };
  /** Columns masked in what the client received, and how (at most 1,000). */
  readonly maskedColumns = new Map<string, string>();
  readonly touched = new TablesTouched();
  /** MCP: the tools the agent called (at most 1,000). */
  readonly tools = new Set<string>();
  /** A tool was called that {@link tools} had no room for. */
  #toolsCut = false;
  /** HTTP: the requests the client made, as `METHOD /path` (at most 1,000 distinct). */
  readonly requests = new Set<string>();
  /** A request was made that {@link requests} had no room for. */
  #requestsCut = false;
  /** What the client last said the session is for (its `context` message's `intent`), for reviewers. */
  intent: string | undefined;
  /** PostgreSQL: the role and database it signed in as. */
  signedInAs: { role: string; database: string } | undefined;
  /** Bytes sent to the client already told in `session.bytes` events (./bytes-sent.ts), when there were any. */
  bytesTold: number | undefined;
  /** Its relay has finished and its observers are being told (its recording cut, its index line written): listed as `ending`. */
  ending = false;
  readonly #observers: readonly SessionObserver[];
  readonly #judged: boolean;

  constructor(init: LiveSessionInit, events: SessionEvents) {
    this.who = init.who;
    this.identity = init.identity;
    this.connection = init.connection;
    this.origin = init.origin;
    this.started = init.started;
    this.policyCommit = init.policyCommit;
    this.readOnly = init.readOnly;
    this.maxSessionSeconds = init.maxSessionSeconds;
    this.recording = init.recording;
    this.recordingFailed = init.recordingFailed;
    this.#judged = init.judged;
    this.#observers = events.observers;
  }

  opened(): void {
    for (const o of this.#observers) o.opened?.(this);
  }

  signedIn(as: { role: string; database: string }): void {
    this.signedInAs = as;
    for (const o of this.#observers) o.signedIn?.(this);
  }

  upstream(key: { processId: number; secretKey: number }): void {
    for (const o of this.#observers) o.upstream?.(this, key);
  }

  statement(statement: StatementRows): void {
    this.counts.rowsRead += statement.rows;
    this.counts.rowsChanged += statement.changed;
    for (const o of this.#observers) o.statement?.(this, statement);
  }

  refused(refusal: StatementRefusal): void {
    this.counts.refused++;
    for (const o of this.#observers) o.refused?.(this, refusal);
  }

  ran(): void {
    this.counts.statements++;
  }

  /** SQL of a statement no judge read: the index reads its tables from it. */
  sql(text: string): void {
    if (!this.#judged) this.touched.addText(text);
  }

  tool(name: string): void {
    if (this.tools.size < MAX_TOOLS || this.tools.has(name)) this.tools.add(name);
    else this.#toolsCut = true;
  }

  request(method: string, path: string): void {
    const r = `${method} ${path}`;
    if (this.requests.size < MAX_TOOLS || this.requests.has(r)) this.requests.add(r);
    else this.#requestsCut = true;
  }

  masked(column: string, strategy: string): void {
    if (this.maskedColumns.size < 1000) this.maskedColumns.set(column, strategy);
  }

  /** The CLI's early check refused a statement the gateway never saw: counted as this session's refusal, on the CLI's word. */
  refusedByClient(refusal: StatementRefusal): void {
    this.counts.refused++;
    for (const o of this.#observers) o.refused?.(this, { ...refusal, by: 'cli' });
  }

  reads(reads: RelationsRead): void {
    this.touched.addReads(reads);
    for (const o of this.#observers) o.reads?.(this, reads);
  }

  /** A review of one of its statements was raised, decided, or used. */
  reviewed(review: Review): void {
    for (const o of this.#observers) o.reviewed?.(this, review);
  }

  /** The index's line for the session: as it ends (`end`), or while it runs. */
  summarize(end?: SessionOutcome, touched?: TouchedSummary): SessionSummary {
    const { identity } = this;
    return {
      id: this.who.session,
      subject: identity.subject,
      issuer: identity.issuer,
      ...(identity.email !== undefined ? { email: identity.email } : {}),
      groups: identity.groups,
      kind: identity.kind,
      ...this.origin,
      ...(this.signedInAs ? { role: this.signedInAs.role, database: this.signedInAs.database } : {}),
      startedAt: new Date(this.started).toISOString(),
      ...(end ? { endedAt: new Date(realClock.now()).toISOString() } : {}),
      reason: end?.reason ?? (this.ending ? 'ending' : 'running'),
      statements: this.counts.statements,
      refused: this.counts.refused,
      rowsRead: this.counts.rowsRead,
      rowsChanged: this.counts.rowsChanged,
      // While it runs, the tables are not known yet: they are read from its statements at the end.
      ...(touched ?? { tables: [], written: [], columns: [], tablesComplete: false }),
      ...(this.tools.size > 0 ? { tools: [...this.tools].sort() } : {}),
      ...(this.#toolsCut ? { toolsComplete: false } : {}),
      ...(this.requests.size > 0 ? { requests: [...this.requests].sort() } : {}),
      ...(this.#requestsCut ? { requestsComplete: false } : {}),
      maskedColumns: [...this.maskedColumns].map(([column, strategy]) => ({ column, strategy })).sort((a, b) => a.column.localeCompare(b.column)),
      recording: this.recording === undefined ? 'none' : this.recordingFailed ? 'failed' : end ? 'complete' : 'running',
      bytesFromClient: end?.bytesFromClient ?? 0,
      bytesToClient: end?.bytesToClient ?? 0,
    };
  }
}
