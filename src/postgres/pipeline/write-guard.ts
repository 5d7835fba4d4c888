/**
 * The blast-radius guard in the PostgreSQL relay. A write under a row limit (`maxAffectedRows`:
 * see `WriteGuard` in src/policy/write-limit.ts) runs so that the database counts the rows it changes
 * before they can commit; a write over the limit is rolled back, then refused (42501) or held
 * for review, and on approval it runs again, unguarded. No parser can tell that `DELETE ... WHERE
 * id = id` reaches every row; the database's count can. With rules on tables every write runs so,
 * and the tables the server's counts show it changed are judged again before it commits
 * (`WriteGuard.changed`): a rule they bring in refuses it, rolled back.
 *
 * How a guarded message runs (the answers to the gateway's own messages never reach the client):
 * - a Query, once the server has answered all before it (its transaction status is then known):
 *   - outside a transaction block, the gateway sends BEGIN before it. At its ReadyForQuery the
 *     gateway sends COMMIT within the limit, ROLLBACK over it. The client gets that
 *     ReadyForQuery ('I') as its own, so a COMMIT that fails (a deferred constraint, a
 *     serialization failure) is the client's error, as in autocommit;
 *   - in the client's transaction block, nothing is added. A write over the limit fails the
 *     transaction as an error would (the gate's Describe of a statement that does not exist: see
 *     ./statement-gate.ts), so it can never commit. For `overLimit: review` a SAVEPOINT before it
 *     lets the write alone be rolled back while the client waits;
 *   - in a failed transaction block, it passes (it fails);
 *   - a COPY FROM STDIN (rules on tables): the rows the client sends pass, and the count after
 *     them is sent behind its CopyDone (or CopyFail); by Execute it is refused;
 * - an Execute (extended protocol): its implicit or explicit transaction cannot commit before the
 *   client's next Sync or COMMIT, and those wait behind it. The gateway adds a Flush and holds
 *   what the client sent after it until the count is in. Over the limit it fails it with the
 *   gate's Describe: the server then skips to the Sync, rolling an implicit transaction back. For
 *   review it is rolled back (to a SAVEPOINT in a block, else with its batch: the gateway's own
 *   failing Describe and Sync), and on approval bound and executed again, with the Bind the
 *   client last sent for its portal (one streamed past the relay, over 1 MiB, is not kept: the
 *   write is then refused).
 *
 * The results (RETURNING rows, notices, CommandComplete, the Query's ReadyForQuery) are held
 * until the count is known, at most {@link MAX_HELD_BYTES}; more cannot be held, and the write is
 * refused. Over the limit they are dropped. What the client sends meanwhile waits in the tunnel.
 *
 * The count: the rows of each guarded statement's CommandComplete (`DELETE 60`), or, for a write
 * whose tag does not count it (in a WITH, under EXPLAIN ANALYZE or COPY, what an EXECUTE runs),
 * the rows every table had inserted, updated or deleted in the transaction before (outside a
 * block: from zero) and after it (`pg_stat_get_xact_tuples_*`, which count what triggers write
 * too), by a statement the gateway keeps prepared and proves its own before each use. With
 * `track_counts` off they cannot be counted, and the write is refused.
 *
 * @see https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-EXT-QUERY
 * @see https://www.postgresql.org/docs/current/sql-savepoint.html
 * @see https://www.postgresql.org/docs/current/monitoring-stats.html#MONITORING-PG-STAT-ALL-TABLES-VIEW
 */
import { createHash, randomBytes } from 'node:crypto';
import { ancestorsJsonSql, parseAncestors } from '../../policy/masking/catalog.js';
import type { ChangedTable, WriteGuard } from '../../policy/write-limit.js';
import type { AskOutcome, Ask } from './answers.js';
import { decodeFrontend, type FrontendMessage } from '../wire/frontend-messages.js';
import { Backend, TransactionStatus } from '../wire/codes.js';
import { bindPlain, close, errorResponse, execute, flush, parseNamed, query, SqlState, sync } from '../wire/messages.js';
import type { ReviewAsk, ReviewOutcome } from '../../session/engine.js';
import type { ServerState } from './server-state.js';
import type { PgMessage } from '../wire/reader.js';
import type { Decision, FrontendContext, Stage } from './stages.js';
import { commandTag, parseDataRow } from '../wire/rows.js';
import { RESERVED_STATEMENT_PREFIX } from './gate/names.js';
import { reviewOutcomeError } from './gate/responses.js';
import type { StatementGate } from './statement-gate.js';

const { DATA_ROW, COMMAND_COMPLETE, COPY_IN, ERROR, PARSE_COMPLETE, READY_FOR_QUERY: READY, EMPTY_QUERY, PORTAL_SUSPENDED } = Backend;

/** Most bytes of results held for one guarded message until its rows are counted. */
const MAX_HELD_BYTES = 16 * 1024 * 1024;
/** Binds of portals whose write may be reviewed, kept for a run again after a review: how many, and their bytes in all. */
const MAX_BINDS = 16;
const MAX_BIND_BYTES = 4 * 1024 * 1024;

const op = (o: string): string => `OPERATOR(pg_catalog.${o})`;
/** The rows a table had inserted, updated or deleted so far in the transaction (qualified: a session's search_path cannot put its own function or operator in their place). */
const tuples = (what: string): string => `pg_catalog.pg_stat_get_xact_tuples_${what}(c.oid)`;
/**
 * Whether a table's catalog row was written in this transaction (or one of its subtransactions):
 * a TRUNCATE remakes it, and zeroes the table's counts. Its xmin is no older than the transaction
 * and still in progress (a row another transaction wrote is visible only once it committed).
 * @see https://www.postgresql.org/docs/current/functions-info.html#FUNCTIONS-PG-SNAPSHOT
 */
const REMADE =
  `(CASE WHEN pg_catalog.age(c.xmin) ${op('<=')} 0 THEN pg_catalog.pg_xact_status((pg_catalog.pg_current_xact_id()::pg_catalog.text::pg_catalog.int8 ${op('-')} ` +
  `pg_catalog.age(c.xmin))::pg_catalog.text::pg_catalog.xid8) ${op('=')} 'in progress' ELSE false END)`;
/**
 * One row: whether the server counts rows (`track_counts`), and as JSON each table with rows
 * changed so far in the transaction: `[oid, inserted, updated, deleted, "schema.name", ancestors, remade]` (see `ancestorsJsonSql`, {@link REMADE})
 * (tables, partitioned, materialized and foreign ones, not the system catalogs, oid 11, whose
 * rows DDL changes). The difference is taken per table and never below 0, so that a table whose
 * counts went down (TRUNCATE resets them, a DROP removes them) cannot hide what another had changed.
 * @see https://www.postgresql.org/docs/current/monitoring-stats.html#MONITORING-STATS-FUNCTIONS
 */
const COUNT_SQL =
  `SELECT pg_catalog.current_setting('track_counts'), (SELECT pg_catalog.json_agg(pg_catalog.json_build_array(t.oid, t.ins, t.upd, t.del, t.name, t.anc, t.remade))::pg_catalog.text FROM ` +
  `(SELECT c.oid, ${tuples('inserted')} AS ins, ${tuples('updated')} AS upd, ${tuples('deleted')} AS del, pg_catalog.concat(n.nspname, '.', c.relname) AS name, ${ancestorsJsonSql('c.oid')} AS anc, ${REMADE} AS remade ` +
  `FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid ${op('=')} c.relnamespace ` +
  `WHERE c.relkind ${op('=')} ANY ('{r,p,m,f}'::pg_catalog."char"[]) AND c.relnamespace ${op('<>')} 11 ` +
  `AND (${tuples('inserted')} ${op('+')} ${tuples('updated')} ${op('+')} ${tuples('deleted')} ${op('>')} 0 OR ${REMADE})) t)`;

/** One table of the count: rows inserted, updated, deleted so far in the transaction, its name and its ancestors'. */
interface Counted {
  readonly rows: readonly [number, number, number];
  readonly remade: boolean;
  readonly name: string;
  readonly ancestors: readonly string[];
}

/**
 * Makes the server report (and so zero) its pending counts when it next goes idle (PostgreSQL 15
 * and later: before, they may include transactions it has not reported yet). No column: nothing
 * of it is read as a count.
 * @see https://www.postgresql.org/docs/current/monitoring-stats.html#MONITORING-STATS-FUNCTIONS-TABLE
 */
const REPORT_SQL = 'SELECT FROM pg_catalog.pg_stat_force_next_flush()';

/** Whether a guard reads the server's counts before and after its write: to count its rows, or to check the tables it changed. */
const readsCounts = (guard: WriteGuard): boolean => guard.count === 'stats' || guard.changed !== undefined;

/**
 * One row, `1` when the session's statement `name` is one the gateway prepared, and the server
 * process that answers (a pooler in transaction mode may move the session to another): through the
 * protocol (a client's Parse of a reserved name is refused), not by SQL (what a DO block or a
 * function can PREPARE in its place once it was closed).
 * @see https://www.postgresql.org/docs/current/view-pg-prepared-statements.html
 */
const provesCount = (name: string): string => `SELECT pg_catalog.count(*), pg_catalog.pg_backend_pid() FROM pg_catalog.pg_prepared_statements p WHERE p.name ${op('=')} '${name}' AND NOT p.from_sql`;

/** A client text that may close the session's prepared statements (DEALLOCATE, DISCARD ALL), or one too long to tell: the count is prepared again before its next use. */
const MAY_CLOSE = /dealloc|discard/i;

/** Text no server parses: a Parse of it fails, whatever statements and portals the session holds (code it ran may have made any name). */
const ABORT_SQL = 'hoop: roll back this batch';

/** What a message of the gateway's is to a run: answers swallowed (`pre`, `post`, `quiet`, `rebind`'s BindComplete) or the client's own (`client`, `final`). */
type Role = 'pre' | 'client' | 'settle' | 'mid' | 'post' | 'final' | 'quiet' | 'rebind';

interface Tag {
  readonly run: GuardRun;
  readonly role: Role;
  /** Of a count (`pre`, `post`): the proof its kept statement is the gateway's, the Parse that keeps it, or the report that counts from zero (no count of its own). */
  readonly part?: 'proof' | 'parse' | 'report';
}

/** What the guard needs of the statement gate: its refusals and its reviews. */
type GuardGate = Pick<StatementGate, 'refuseWith' | 'refused' | 'raise' | 'reviews'>;

/** How the guard sends upstream: through the stages after it and the server state, in order. */
type GuardIO = Pick<FrontendContext, 'send' | 'sendAll' | 'flush'>;

/** What the guard decided for a message it runs: it sent it (and its own) itself. */
const SENT: Decision = Object.freeze({ send: Object.freeze([]) });

/** What the guard needs of the server state. */
type GuardState = Pick<ServerState, 'pendingReady' | 'unsynced' | 'batchExecuted' | 'transactionStatus' | 'answered'>;

const frontend = (raw: Buffer): FrontendMessage => decodeFrontend({ type: raw[0]!, body: raw.subarray(5), raw });
/** The count as a Query or Parse of the gateway's own: its answers are read here and no client sees them (masking need not place its columns). */
const counting = (raw: Buffer): FrontendMessage => {
  const m = frontend(raw);
  return m.kind === 'query' || m.kind === 'parse' ? { ...m, own: true } : m;
};

/**
 * One guarded message in flight: what it is, how it was wrapped, what its answers held and
 * counted, and the promise the client side waits on.
 */
class GuardRun {
  readonly held: Buffer[] = [];
  heldBytes = 0;
  /** The most rows one guarded statement changed (tag), or the stats' difference. */
  rows = 0;
  verb = '';
  /** CommandCompletes of the client's Query so far (its statement index). */
  statement = 0;
  /** The counts before and after it, by table oid (undefined: not read, or the server does not count); a settling COMMIT's after its first round too. */
  before: Map<number, Counted> | undefined;
  mid: Map<number, Counted> | undefined;
  after: Map<number, Counted> | undefined;
  /** A rule the tables it changed bring in refuses it (see `WriteGuard.changed`). */
  beyond: { rule: string; reason: string } | undefined;
  /** Why the rows cannot be known (the write is then refused). */
  uncountable: string | undefined;
  /** The gateway's own message before it failed (so the client's failed too, for that alone). */
  preFailed = false;
  failed = false;
  /** An Execute with a row limit stopped at it (PortalSuspended): no tag counts its rows. */
  suspended = false;
  /** The server's counts are read before and after it: to count its rows (by statistics, or an Execute with a row limit, which may end suspended), or to check the tables it changed. */
  readonly counts: boolean;
  /** The client's Query's ReadyForQuery, held until the decision. */
  ready: Buffer | undefined;
  decided = false;
  /** Sent before the ReadyForQuery of the `final` message (the refusal in autocommit). */
  finalError: Buffer | undefined;
  /** A COMMIT that waits for what the deferred triggers changed (`WriteGuard.settles`): its `done`, once it is sent. */
  readonly settles: boolean;
  done: ((outcome: AskOutcome) => void) | undefined;
  /** Settles once what the client sent after it may follow. */
  readonly released: Promise<Decision>;
  release!: () => void;

  constructor(
    readonly m: FrontendMessage,
    readonly guard: WriteGuard,
    readonly sql: string,
    readonly io: GuardIO,
    /** How the write is undone for a review: to the gateway's savepoint, the whole transaction (`all`), or the extended batch. */
    readonly scope: 'savepoint' | 'all' | 'batch' | 'none',
    /** The gateway opened the transaction block (BEGIN) and ends it. */
    readonly wrapped: boolean,
    readonly review: boolean,
    /** For an Execute: the Bind that made its portal, for a run again. */
    readonly bind: Buffer | undefined,
  ) {
    this.released = new Promise((resolve) => (this.release = () => resolve(SENT)));
    this.counts = readsCounts(guard) || (m.kind === 'execute' && m.maxRows > 0);
    this.settles = guard.settles === true;
  }

  /** Holds a result message; past {@link MAX_HELD_BYTES} the results are dropped and the write cannot be counted. */
  hold(r: Buffer): void {
    if (this.heldBytes > MAX_HELD_BYTES) return;
    this.heldBytes += r.length;
    if (this.heldBytes > MAX_HELD_BYTES) {
      this.uncountable = `its results are longer than the ${MAX_HELD_BYTES / (1024 * 1024)} MiB hoop holds until the rows are counted`;
      this.held.length = 0;
      return;
    }
    this.held.push(r);
  }
}

/**
 * The write guard of one session: runs guarded messages ({@link frontend}) and reads the server's
 * answers to them ({@link backend}). See the module documentation.
 */
export class WriteGuardStage implements Stage {
  readonly #state: GuardState;
  readonly #gate: GuardGate;
  /** The name of the guard's own statement, portal and savepoint. */
  readonly #name: string;
  /** A statement name never prepared: its Describe fails a batch. */
  readonly #missing: string;
  /** The name of the count, kept prepared (planning it was most of its cost), and the proof it is still the gateway's. */
  readonly #countName: string;
  readonly #proofSql: string;
  /** The server confirmed the count's Parse, and nothing since may have closed it. */
  #countKept = false;
  /** The server process the count was last proved on; once the session is seen on another (a pooler), the count is prepared with each write. */
  #countPid: string | undefined;
  #moves = false;
  /** A write checked by its changed tables ran in a client's transaction block (or may have): its COMMIT fires their deferred triggers under a count. */
  #blockChecked = false;
  /** Whether an Execute of the batch not yet synced began a transaction block (its status still says 'I'). */
  #batchOpened = false;
  /** Guarded portals -> the Bind that made them (for a run again after a review). */
  get #binds(): Map<string, Buffer> {
    return (this.#bindsMade ??= new Map());
  }
  #bindsMade: Map<string, Buffer> | undefined;
  #bindBytes = 0;
  /** The run whose results are being held: every server message meanwhile waits with them. */
  #holding: GuardRun | undefined;
  /** A COMMIT by Execute failed or refused: its block is rolled back at the client's Sync, which then says idle, as a COMMIT that fails does. */
  #endsAtSync: GuardRun | undefined;
  /** A COPY FROM STDIN whose rows the client is sending: counted again at its CopyDone (or CopyFail). */
  #copying: GuardRun | undefined;

  /**
   * The guard's names are reserved ones (clients may not prepare them) with a random part of
   * their own: the server shows them (pg_prepared_statements, pg_stat_activity), and they must
   * tell nothing of the names of the gate's refusals.
   */
  constructor(o: { state: GuardState; gate: GuardGate }) {
    this.#state = o.state;
    this.#gate = o.gate;
    this.#name = `${RESERVED_STATEMENT_PREFIX}${randomBytes(8).toString('hex')}`;
    // Not derived from the names the server shows: its Parse fails whatever the session holds (see #rollBack).
    this.#missing = `${RESERVED_STATEMENT_PREFIX}${randomBytes(8).toString('hex')}`;
    this.#countName = `${this.#name}_count`;
    this.#proofSql = provesCount(this.#countName);
  }

  /**
   * A whole message the stages before passed: a Bind is kept while its write may go to review (one
   * streamed on, its `msg` absent, forgets what its portal held); a Query or Execute under a row
   * limit is run here, sent with the guard's own messages through `ctx`.
   */
  frontend(m: FrontendMessage, ctx: FrontendContext): Decision | Promise<Decision> | undefined {
    const guarded = ctx.passed?.guard;
    if (this.#countKept && (m.kind === 'query' || m.kind === 'parse') && (m.long || MAY_CLOSE.test(m.sql))) this.#countKept = false;
    const opened = this.#openedBy(m, ctx.passed?.block);
    if (m.kind === 'bind') {
      this.#bound(m.portal, m.msg?.raw, guarded?.guard);
      return undefined;
    }
    if (m.kind === 'sync' && this.#endsAtSync) return this.#rollBackAtSync(m, this.#endsAtSync, ctx);
    if ((m.kind === 'copy-done' || m.kind === 'copy-fail') && this.#copying) return this.#copied(m, this.#copying);
    if (!guarded || (m.kind !== 'query' && m.kind !== 'execute')) return undefined;
    return this.#run(m, guarded.guard, guarded.sql, ctx, ctx.passed?.answered, opened);
  }

  /**
   * Follows BEGIN and COMMIT run by Execute within a batch (pgjdbc sends BEGIN before a block's first
   * statement, in its batch), as the gate says what each Execute's portal holds (`block`): whether
   * `m` runs in a block the batch opened, which the status does not show yet.
   */
  #openedBy(m: FrontendMessage, block: 'begin' | 'end' | undefined): boolean {
    const opened = this.#batchOpened;
    if (m.kind === 'execute' && block !== undefined) this.#batchOpened = block === 'begin';
    else if (m.kind === 'sync' || m.kind === 'query') this.#batchOpened = false;
    return opened;
  }

  /**
   * A Bind that passed: kept when its write may go to review, for a run again (`raw` absent:
   * streamed, or no review: forgotten); the oldest go past {@link MAX_BINDS} or {@link MAX_BIND_BYTES}.
   */
  #bound(portal: string, raw: Buffer | undefined, guard: WriteGuard | undefined): void {
    const old = this.#binds.get(portal);
    if (old) {
      this.#bindBytes -= old.length;
      this.#binds.delete(portal);
    }
    if (!raw || !guard || !this.#reviews(guard) || raw.length > MAX_BIND_BYTES) return;
    this.#binds.set(portal, raw);
    this.#bindBytes += raw.length;
    while (this.#binds.size > MAX_BINDS || this.#bindBytes > MAX_BIND_BYTES) {
      const [oldest, bytes] = this.#binds.entries().next().value!;
      this.#binds.delete(oldest);
      this.#bindBytes -= bytes.length;
    }
  }

  /** Runs a Query or Execute the gate passed under a row limit (`sql`: its text, for a reviewer); a Promise until what the client sent after it may follow. */
  #run(m: FrontendMessage, guard: WriteGuard, sql: string, io: GuardIO, done?: (outcome: AskOutcome) => void, opened = false): Decision | Promise<Decision> {
    const start = (): Decision | Promise<Decision> =>
      guard.settles ? this.#settles(m, guard, sql, io, done, opened) : m.kind === 'execute' ? this.#execute(m, guard, sql, io, done, opened) : this.#query(m, guard, sql, io, done);
    // The transaction status is known once the server has answered everything before (a ROLLBACK or COMMIT pipelined before an Execute ends a block the status still shows).
    const needStatus = m.kind === 'query' || guard.overLimit === 'review' || guard.settles === true || guard.changed !== undefined;
    if (needStatus && this.#state.pendingReady > 0) {
      io.flush();
      return this.#state.answered().then(start);
    }
    return start();
  }

  #query(m: FrontendMessage, guard: WriteGuard, sql: string, io: GuardIO, done?: (outcome: AskOutcome) => void): Decision | Promise<Decision> {
    const status = this.#state.transactionStatus;
    if (this.#state.unsynced > 0) {
      const why = 'a Query under a row limit cannot follow extended-protocol messages not yet synced (it would commit them unseen); send a Sync first';
      io.sendAll(this.#gate.refuseWith(this.#refusal(guard, why), true, guard.rule, why));
      return SENT;
    }
    if (status === 'E') {
      io.send(m, undefined, done);
      return SENT;
    }
    const review = this.#reviews(guard);
    const wrapped = status === 'I' && !guard.opensBlock;
    const scope = status === 'T' ? (review ? 'savepoint' : 'none') : 'all';
    const run = new GuardRun(m, guard, sql, io, scope, wrapped, review, undefined);
    if (guard.changed) this.#blockChecked = !wrapped;
    // Outside a transaction block it is counted from 0: the server's counts include what earlier transactions did until it
    // reports them, which it is made to do as it goes idle before the write (and before the gateway's BEGIN); in a block, counted before too.
    if (run.counts && status === 'I') {
      run.before = new Map();
      io.send(counting(query(REPORT_SQL)), { run, role: 'pre', part: 'report' });
    }
    const pre = [...(wrapped ? ['BEGIN'] : []), ...(scope === 'savepoint' ? [`SAVEPOINT ${this.#name}`] : [])];
    if (pre.length > 0) io.send(frontend(query(pre.join('; '))), { run, role: 'pre' });
    if (run.counts && status !== 'I') this.#count(io, run, 'pre', true);
    io.send(m, { run, role: 'client' }, done);
    if (guard.copyIn) {
      // Its rows follow from the client: they pass, and the count after them waits for its CopyDone.
      this.#copying = run;
      io.flush();
      return SENT;
    }
    this.#after(run);
    return run.released;
  }

  /** The count after a Query's write (deferred constraint triggers fired first in a transaction of the gateway's own: their errors are the client's). */
  #after(run: GuardRun): void {
    if (run.guard.changed && run.wrapped) this.#fireDeferred(run.io, run, true);
    else if (run.counts) this.#count(run.io, run, 'post', true);
    run.io.flush();
  }

  /** The end of a COPY FROM STDIN's rows (`m`, the client's CopyDone or CopyFail): sent, then counted; what the client sends after waits for the decision. */
  #copied(m: FrontendMessage, run: GuardRun): Promise<Decision> {
    this.#copying = undefined;
    run.io.send(m);
    this.#after(run);
    return run.released;
  }

  #execute(m: FrontendMessage & { kind: 'execute' }, guard: WriteGuard, sql: string, io: GuardIO, done?: (outcome: AskOutcome) => void, opened = false): Decision | Promise<Decision> {
    if (guard.copyIn) {
      const why = 'with rules on tables, a COPY FROM STDIN is counted as a Query (its rows pass, then its tables are judged); send it so, not by Execute';
      io.sendAll(this.#gate.refuseWith(this.#refusal(guard, why), false, guard.rule, why));
      return SENT;
    }
    const bind = this.#binds.get(m.portal);
    // A review runs the write again: its Bind must be at hand, and it must be the batch's first Execute (what ran before it would be undone with it).
    const review = this.#reviews(guard) && bind !== undefined && !this.#state.batchExecuted;
    const status = this.#state.transactionStatus;
    if (review && status === 'E') {
      io.send(m, undefined, done);
      return SENT;
    }
    const scope = !review ? 'none' : status === 'T' ? 'savepoint' : 'batch';
    const run = new GuardRun(m, guard, sql, io, scope, false, review, bind);
    // In a batch's implicit transaction too: a BEGIN earlier in the batch may have opened a block.
    if (guard.changed) this.#blockChecked = true;
    if (scope === 'savepoint') this.#own(io, `SAVEPOINT ${this.#name}`, { run, role: 'pre' });
    if (run.counts) this.#count(io, run, 'pre', false);
    io.send(m, { run, role: 'client' }, (outcome) => {
      done?.(outcome);
      // Skipped: an earlier message of the batch failed, and the server drops everything to the Sync.
      if (outcome === 'skipped' && !run.decided) this.#settle(run, []);
    });
    // In the batch's own transaction, deferred constraint triggers fire now, not at its Sync after the count (in a block a BEGIN of the batch opened, at its COMMIT).
    if (guard.changed && status === 'I' && !opened) this.#fireDeferred(io, run, false);
    else if (run.counts) this.#count(io, run, 'post', false);
    io.send(frontend(flush()));
    io.flush();
    return run.released;
  }

  /**
   * A COMMIT or PREPARE TRANSACTION of a client's transaction block in which checked writes ran:
   * the deferred constraint triggers they queued fire first (`SET CONSTRAINTS ALL IMMEDIATE`,
   * which the block's end would have done), between two counts, and it is sent only if what they
   * changed passes; else the block is rolled back and the client told why, as a COMMIT that fails.
   * A second round must change nothing: a trigger that set its constraints deferred again and
   * wrote would leave events for the COMMIT (new events come only from writes, which it counts).
   * In an extended batch that an earlier message failed, the server skips it all: the COMMIT follows, skipped too.
   */
  #settles(m: FrontendMessage, guard: WriteGuard, sql: string, io: GuardIO, done?: (outcome: AskOutcome) => void, opened = false): Decision | Promise<Decision> {
    if ((this.#state.transactionStatus !== 'T' && !opened) || !this.#blockChecked) {
      io.send(m, undefined, done);
      return SENT;
    }
    const simple = m.kind === 'query';
    if (simple && this.#state.unsynced > 0) return this.#query(m, guard, sql, io, done);
    this.#blockChecked = false;
    const run = new GuardRun(m, guard, sql, io, 'none', false, false, undefined);
    run.done = done;
    const skipped = (outcome: AskOutcome): void => {
      if (outcome !== 'skipped' || run.decided) return;
      if (run.preFailed) run.done?.('skipped');
      else io.send(m, undefined, done);
      this.#settle(run, []);
    };
    this.#count(io, run, 'pre', simple);
    this.#fireDeferred(io, run, simple, skipped);
    if (!simple) io.send(frontend(flush()));
    io.flush();
    return run.released;
  }

  /**
   * Fires the deferred constraint triggers of a transaction about to end (`SET CONSTRAINTS ALL
   * IMMEDIATE`), counts, and does so again: what they changed is judged with the write, and the second
   * round must change nothing (a trigger that set its constraints deferred again and wrote would leave
   * events for the end, after the count: `#decide` refuses that).
   */
  #fireDeferred(io: GuardIO, run: GuardRun, simple: boolean, skipped?: (outcome: AskOutcome) => void): void {
    for (const role of ['mid', 'post'] as const) {
      if (simple) io.send(frontend(query('SET CONSTRAINTS ALL IMMEDIATE')), { run, role: 'settle' });
      // Only the first round tells whether the batch had failed before: the second is skipped when the first fails (its error is the client's).
      else this.#own(io, 'SET CONSTRAINTS ALL IMMEDIATE', { run, role: 'settle' }, role === 'mid' ? skipped : undefined);
      this.#count(io, run, role, simple);
    }
  }

  /** Runs `sql` as the gateway's own statement in the extended protocol, on names of its own (the client's unnamed statement and portal stay as they are). */
  #own(io: GuardIO, sql: string, tag: Tag, done?: (outcome: AskOutcome) => void): void {
    const name = this.#name;
    io.send(frontend(close('S', name)), tag, done);
    io.send((tag.part ? counting : frontend)(parseNamed(name, sql)), tag);
    for (const raw of [bindPlain(name, name), execute(name), close('P', name), close('S', name)]) io.send(frontend(raw), tag);
  }

  /**
   * Sends the count, `role` of `run`: its kept statement (prepared again when it may have been
   * closed), run right after a proof, parsed each time, that it is still the gateway's (a DO block
   * could close it and PREPARE another of its name); `alone` ends it with a Sync of its own, beside a Query.
   */
  #count(io: GuardIO, run: GuardRun, role: Role, alone: boolean): void {
    const name = this.#countName;
    const tag: Tag = { run, role };
    if (!this.#countKept) {
      io.send(frontend(close('S', name)), tag);
      io.send(counting(parseNamed(name, COUNT_SQL)), { run, role, part: 'parse' });
    }
    this.#own(io, this.#proofSql, { run, role, part: 'proof' });
    for (const raw of [bindPlain(name, name), execute(name), close('P', name)]) io.send(frontend(raw), tag);
    if (alone) io.send(frontend(sync()), tag);
  }

  #reviews(guard: WriteGuard): boolean {
    return guard.overLimit === 'review' && guard.review !== undefined && this.#gate.reviews;
  }

  /** True when the server message for `ask` must be read whole: the guard holds it, or drops it. */
  wants(_type: number, _length: number, ask: Ask | undefined): boolean {
    return ask?.tag !== undefined || this.#holding !== undefined;
  }

  /**
   * What to hand the client for one server message (`r`: after masking), given the client message
   * it answers: itself, nothing (an answer to the gateway's own message, or held), or what the
   * guard releases with it.
   */
  backend(r: Buffer, _msg: PgMessage, ask: Ask | undefined): Buffer | readonly Buffer[] | undefined {
    const tag = ask?.tag as Tag | undefined;
    if (!tag || !(tag.run instanceof GuardRun)) {
      if (!this.#holding) return r;
      this.#holding.hold(r);
      return undefined;
    }
    const { run, role } = tag;
    const type = r[0]!;
    if (type === ERROR && (role === 'pre' || role === 'mid' || role === 'post')) this.#countKept = false;
    if (tag.part !== undefined && type !== ERROR) return this.#countPart(run, tag.part, r, type);
    switch (role) {
      case 'pre':
        if (type === DATA_ROW) run.before = this.#counted(run, r);
        else if (type === ERROR) {
          // What the client's message then says is only that the transaction failed: the refusal says why.
          run.uncountable ??= 'the gateway could not prepare the count';
          const first = !run.preFailed;
          run.preFailed = true;
          // An Execute's batch is failed now: the server skips it to the client's Sync, and the refusal is the client's error.
          if (first && run.m.kind === 'execute') return this.#overError(run);
        }
        return undefined;
      case 'mid':
        if (type === DATA_ROW) run.mid = this.#counted(run, r);
        else if (type === ERROR) {
          run.uncountable ??= 'the gateway could not read the count';
          // The server skips the rest to the batch's Sync: the Execute is decided now.
          if (run.m.kind === 'execute' && !run.decided) return this.#decide(run);
        }
        return undefined;
      case 'post':
        if (type === DATA_ROW) run.after = this.#counted(run, r);
        else if (type === ERROR) run.uncountable ??= 'the gateway could not read the count';
        // The count is in: at the Query's ReadyForQuery, or the Execute's CommandComplete.
        if (!run.decided && ((run.m.kind === 'query' && type === READY) || (run.m.kind === 'execute' && (type === COMMAND_COMPLETE || type === ERROR)))) return this.#decide(run);
        return undefined;
      case 'client':
        return this.#client(run, r, type);
      case 'settle':
        // The triggers' own error is the client's; one that follows a count of the gateway's that failed (the block aborted) is not.
        if (type !== ERROR) return undefined;
        if (!run.failed && run.uncountable === undefined) {
          run.failed = true;
          run.hold(r);
        }
        // The server skips the count to the batch's Sync: the Execute is decided now.
        return run.m.kind === 'execute' && !run.decided ? this.#decide(run) : undefined;
      case 'final':
        if (type === COMMAND_COMPLETE) return undefined;
        if (type === READY && run.finalError) return [run.finalError, r];
        return r;
      case 'rebind':
        return type === ERROR ? r : undefined;
      case 'quiet':
        return undefined;
    }
  }

  /** An answer to a part of a count other than an error: the Parse (kept once confirmed), the proof (a kept count not the gateway's is prepared again, and this write refused), the report (nothing to read). */
  #countPart(run: GuardRun, part: NonNullable<Tag['part']>, r: Buffer, type: number): undefined {
    if (part === 'parse' && type === PARSE_COMPLETE) this.#countKept = !this.#moves;
    if (part !== 'proof' || type !== DATA_ROW) return undefined;
    const [proved, pid] = parseDataRow(r.subarray(5)).map((f) => f?.toString('utf8'));
    const moved = this.#countPid !== undefined && pid !== this.#countPid;
    this.#countPid = pid;
    if (proved === '1') return undefined;
    this.#countKept = false;
    // A pooler in transaction mode: the count is prepared with each write from now on.
    if (moved) this.#moves = true;
    run.uncountable ??= moved
      ? "the gateway's count was prepared on another server connection than this write ran on (a pooler in transaction mode between the gateway and the database); it is prepared with each write from now on"
      : "the gateway's count was closed in this session by code it ran (it is prepared again for the next write)";
    return undefined;
  }

  /** The count's row (undefined when the server does not count: the write cannot be counted then). */
  #counted(run: GuardRun, r: Buffer): Map<number, Counted> | undefined {
    const [track, json] = parseDataRow(r.subarray(5)).map((f) => f?.toString('utf8'));
    if (track !== 'on') {
      run.uncountable ??= 'the server does not count rows (track_counts is off)';
      return undefined;
    }
    const tables = json ? (JSON.parse(json) as Array<[number, number, number, number, string, string | null, boolean]>) : [];
    const named = (ancestors: string | null): string[] => parseAncestors(ancestors)?.map((a) => `${a.schema}.${a.table}`) ?? [];
    return new Map(tables.map(([oid, ins, upd, del, name, ancestors, remade]) => [oid, { rows: [ins, upd, del], name, ancestors: named(ancestors), remade: remade === true }]));
  }

  /** The tables changed between the two counts, and how: per table and kind, never below 0. */
  #changed(run: GuardRun): ChangedTable[] | undefined {
    const { before, after } = run;
    return before && after ? this.#diff(before, after) : undefined;
  }

  /** The tables changed from count `before` to count `after`. */
  #diff(before: Map<number, Counted>, after: Map<number, Counted>): ChangedTable[] {
    const changed: ChangedTable[] = [];
    for (const [oid, { rows, name, ancestors, remade }] of after) {
      const then = before.get(oid);
      const was = then?.rows ?? [0, 0, 0];
      const [inserted, updated, deleted] = rows.map((n, i) => Math.max(0, n - was[i]!)) as [number, number, number];
      const truncated = remade && !then?.remade;
      if (inserted + updated + deleted > 0 || truncated) changed.push({ name, ancestors, inserted, updated, deleted, ...(truncated ? { truncated } : {}) });
    }
    return changed;
  }

  /** An answer to the guarded message itself: held, counted, and at its end decided on. */
  #client(run: GuardRun, r: Buffer, type: number): Buffer | readonly Buffer[] | undefined {
    // A COPY FROM STDIN asks the client for its rows: that passes now (the count is taken at their end).
    if (type === COPY_IN && run.guard.copyIn) return r;
    this.#holding = run;
    if (type === ERROR) run.failed = true;
    if (type === COMMAND_COMPLETE && run.guard.count === 'tag' && (run.m.kind === 'execute' || run.guard.statements.includes(run.statement))) {
      const { verb, rows } = commandTag(r.subarray(5));
      if (rows >= run.rows) {
        run.rows = rows;
        run.verb = verb;
      }
    }
    if (type === COMMAND_COMPLETE) run.statement++;
    if (run.m.kind === 'query') {
      if (type !== READY) {
        run.hold(r);
        return undefined;
      }
      run.ready = r;
      if (r[5] === TransactionStatus.FAILED) run.failed = true; // ReadyForQuery's status
      return !run.counts || run.failed ? this.#decide(run) : undefined;
    }
    run.hold(r);
    const ended = type === COMMAND_COMPLETE || type === EMPTY_QUERY || type === PORTAL_SUSPENDED || type === ERROR;
    if (type === PORTAL_SUSPENDED) run.suspended = true;
    return ended && (!run.counts || run.failed) ? this.#decide(run) : undefined;
  }

  /** The rows counted once the guarded message ended: over the limit, within it, or failed. */
  #decide(run: GuardRun): Buffer | readonly Buffer[] | undefined {
    if (run.counts && !run.failed && run.uncountable === undefined) {
      const changed = this.#changed(run);
      if (changed === undefined) run.uncountable = 'the gateway could not read the count';
      else {
        if (run.guard.count === 'stats' || run.suspended) run.rows = changed.reduce((n, t) => n + t.inserted + t.updated + t.deleted, 0);
        // Over its own limit it is refused (or held) as that; within it, judged by what it changed.
        if (run.rows <= run.guard.maxRows) run.beyond = run.guard.changed?.(changed);
      }
    }
    if (run.uncountable === undefined && !run.failed && run.mid && run.after && this.#diff(run.mid, run.after).length > 0)
      run.uncountable = 'a deferred trigger set its constraints deferred again and wrote, so hoop cannot tell what the end of the transaction would still run';
    const io = run.io;
    const held = run.held.splice(0);
    if (run.settles) return this.#endBlock(run, held);
    if (run.failed && !run.preFailed) {
      // It failed on its own: its error is the client's; a transaction the gateway opened is rolled back.
      if (run.wrapped) {
        io.send(frontend(query('ROLLBACK')), { run, role: 'final' });
        return this.#settle(run, held);
      }
      return this.#settle(run, run.ready ? [...held, run.ready] : held);
    }
    if (run.uncountable === undefined && run.beyond === undefined && run.rows <= run.guard.maxRows) {
      if (run.wrapped) io.send(frontend(query('COMMIT')), { run, role: 'final' });
      else if (run.scope === 'savepoint') {
        if (run.m.kind === 'query') io.send(frontend(query(`RELEASE SAVEPOINT ${this.#name}`)), { run, role: 'quiet' });
        else this.#own(io, `RELEASE SAVEPOINT ${this.#name}`, { run, role: 'quiet' });
      }
      return this.#settle(run, run.ready && !run.wrapped ? [...held, run.ready] : held);
    }
    // Over the limit, beyond what was judged, or not countable: rolled back, then refused or held for review.
    const error = this.#overError(run);
    const reason = run.uncountable ?? run.beyond?.reason ?? `${this.#what(run)} changed ${run.rows} rows, over the limit of ${run.guard.maxRows}`;
    const rule = run.beyond?.rule ?? run.guard.rule;
    if (run.review && run.uncountable === undefined && run.beyond === undefined) {
      this.#rollBack(run);
      this.#hold(run, reason);
      return this.#settled(run);
    }
    if (run.wrapped) {
      run.finalError = error;
      this.#gate.refused(rule, reason);
      io.send(frontend(query('ROLLBACK')), { run, role: 'final' });
    } else {
      io.sendAll(this.#gate.refuseWith(error, run.m.kind === 'query', rule, reason));
    }
    return this.#settle(run, []);
  }

  /**
   * Decides a COMMIT whose deferred triggers fired (see {@link settles}): sent as the client sent
   * it when what they changed passes; else refused, a Query's block rolled back (the client gets
   * the triggers' own error or the refusal, then ReadyForQuery 'I', as from a COMMIT that failed),
   * an Execute's batch failed (nothing of the block can commit) and the block rolled back at the client's Sync (idle, as there).
   */
  #endBlock(run: GuardRun, held: Buffer[]): readonly Buffer[] | undefined {
    const io = run.io;
    if (!run.failed && run.uncountable === undefined && run.beyond === undefined && run.rows <= run.guard.maxRows) {
      io.send(run.m, undefined, run.done);
      return this.#settle(run, held);
    }
    run.done?.('skipped');
    // The triggers' own error (a deferred constraint) is the client's, as at a COMMIT.
    const own = run.failed && !run.preFailed;
    if (run.beyond) run.beyond = { rule: run.beyond.rule, reason: `the deferred triggers of the transaction's writes fired at its end: ${run.beyond.reason}` };
    const rule = run.beyond?.rule ?? run.guard.rule;
    const reason = run.uncountable ?? run.beyond?.reason ?? '';
    if (run.m.kind === 'execute') {
      // Failed, the server skips to the client's Sync; refused, the gate's failing Describe makes it so.
      if (!own) io.sendAll(this.#gate.refuseWith(this.#overError(run), false, rule, reason));
      this.#endsAtSync = run;
      return this.#settle(run, own ? held : []);
    }
    if (!own) {
      run.finalError = this.#overError(run);
      this.#gate.refused(rule, reason);
    }
    io.send(frontend(query('ROLLBACK')), { run, role: 'final' });
    return this.#settle(run, own ? held : []);
  }

  /** The client's Sync after a COMMIT by Execute that failed: its answer ('E') is the gateway's, and a ROLLBACK's ('I') the client's. */
  #rollBackAtSync(m: FrontendMessage, run: GuardRun, io: GuardIO): Decision {
    this.#endsAtSync = undefined;
    io.send(m, { run, role: 'quiet' });
    io.send(frontend(query('ROLLBACK')), { run, role: 'final' });
    io.flush();
    return SENT;
  }

  /** Undoes the write for a review: to the savepoint, the transaction, or with the failed batch. */
  #rollBack(run: GuardRun): void {
    const io = run.io;
    if (run.m.kind === 'query') {
      io.send(frontend(query(run.scope === 'savepoint' ? `ROLLBACK TO SAVEPOINT ${this.#name}; RELEASE SAVEPOINT ${this.#name}` : 'ROLLBACK')), { run, role: 'quiet' });
    } else if (run.scope === 'savepoint') {
      this.#own(io, `ROLLBACK TO SAVEPOINT ${this.#name}`, { run, role: 'quiet' });
      this.#own(io, `RELEASE SAVEPOINT ${this.#name}`, { run, role: 'quiet' });
    } else {
      // The batch's implicit transaction fails on a Parse of text that is not SQL (it fails whatever the session holds), and its Sync ends it.
      io.send(frontend(parseNamed(this.#missing, ABORT_SQL)), { run, role: 'quiet' });
      io.send(frontend(sync()), { run, role: 'quiet' });
    }
    io.flush();
  }

  /** Holds the rolled-back write for a review; on approval it runs again, else it is refused. */
  #hold(run: GuardRun, reason: string): void {
    const m = run.m;
    const digest = createHash('sha256')
      .update('write-guard\0')
      .update(run.bind ?? Buffer.alloc(0))
      .update(m.msg!.raw)
      .update('\0')
      .update(run.sql)
      .digest('hex');
    const message = `${reason}; it was rolled back and waits for a reviewer`;
    const ask: ReviewAsk = {
      sql: run.sql,
      digest,
      rule: run.guard.rule,
      message,
      reason: `${reason}; rule "${run.guard.rule}" sends writes over ${run.guard.maxRows} rows to review`,
      settings: run.guard.review!,
    };
    const pending = this.#gate.raise(ask)!;
    void pending.decided.then((outcome: ReviewOutcome) => {
      const io = run.io;
      if (outcome.state === 'approved') {
        if (m.kind === 'execute') {
          io.send(frontend(close('P', m.portal)), { run, role: 'quiet' });
          io.send(frontend(run.bind!), { run, role: 'rebind' });
        }
        // Approved: the exact message again, its answers the client's.
        io.send(m);
      } else {
        const verdict = { action: 'review' as const, rule: run.guard.rule, message, reason: ask.reason };
        io.sendAll(this.#gate.refuseWith(reviewOutcomeError(verdict, pending.id, outcome), m.kind === 'query', run.guard.rule, `review ${pending.id}: ${outcome.state}`));
      }
      io.flush();
      run.release();
    });
  }

  /** Ends a run: the client side may go on; `out` is what the client gets now. */
  #settle(run: GuardRun, out: readonly Buffer[]): readonly Buffer[] | undefined {
    this.#settled(run);
    run.io.flush();
    run.release();
    return out.length > 0 ? out : undefined;
  }

  /** A run decided: nothing more of its answers is held. */
  #settled(run: GuardRun): undefined {
    if (run.decided) return undefined;
    run.decided = true;
    if (this.#holding === run) this.#holding = undefined;
    // A COPY that failed before its rows (no such table): no CopyDone of its will come.
    if (this.#copying === run) this.#copying = undefined;
    return undefined;
  }

  #what(run: GuardRun): string {
    return run.verb !== '' && run.guard.count === 'tag' ? `the ${run.verb}` : 'the statement';
  }

  /** The refusal of a write over its limit (or one that could not be counted). */
  #overError(run: GuardRun): Buffer {
    const g = run.guard;
    if (run.uncountable !== undefined) return this.#refusal(g, `${run.uncountable}; it was rolled back`);
    if (run.beyond !== undefined)
      return errorResponse({
        severity: 'ERROR',
        code: SqlState.INSUFFICIENT_PRIVILEGE,
        message: `hoop: denied by rule "${run.beyond.rule}": ${run.beyond.reason}; it was rolled back`,
        detail:
          'with rules on tables, hoop reads which tables a write changed before it commits and judges it again with them (a view or rule replaced since it was judged, or a rule, trigger or function that writes elsewhere)',
        hint: 'the statement did not change anything; write the tables by their own names',
      });
    return errorResponse({
      severity: 'ERROR',
      code: SqlState.INSUFFICIENT_PRIVILEGE,
      message: `hoop: ${this.#what(run)} changed ${run.rows} rows, over the limit of ${g.maxRows} (rule "${g.rule}"); it was rolled back`,
      detail: `rule "${g.rule}" lets one write change at most ${g.maxRows} rows (maxAffectedRows); hoop counts them in the database before they commit`,
      hint: `narrow the WHERE clause, or change the rows in batches of at most ${g.maxRows}${g.overLimit === 'review' ? '; the policy sends such writes to review, but none could be held here' : ''}`,
    });
  }

  #refusal(g: WriteGuard, why: string): Buffer {
    return errorResponse({
      severity: 'ERROR',
      code: SqlState.INSUFFICIENT_PRIVILEGE,
      message: `hoop: denied by rule "${g.rule}": ${why}`,
      detail: Number.isFinite(g.maxRows)
        ? `rule "${g.rule}" lets one write change at most ${g.maxRows} rows (maxAffectedRows); hoop counts them in the database before they commit`
        : 'with rules on tables, hoop reads which tables a write changed before it commits',
      hint: 'the statement did not change anything; the session is still usable',
    });
  }
}
