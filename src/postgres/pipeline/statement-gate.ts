/**
 * Statement enforcement in the PostgreSQL relay: the gateway reads every frontend message the
 * client sends, judges the SQL it carries against the policy, and refuses what the policy does
 * not allow, inside the protocol and exactly as PostgreSQL itself reports an error, so every
 * client library stays in step with the server. This module is the per-session state machine
 * ({@link StatementGate}, a `Stage` of the relay); its parts live beside it in ./gate/:
 * - what each statement and portal name holds (./gate/names.ts) and the prepared-statement
 *   operations in SQL text (./gate/prepared-ops.ts);
 * - how a refusal is said, with a Describe of a statement that cannot exist
 *   (./gate/describe-refusals.ts), and the ErrorResponses and NoticeResponse the client is told
 *   (./gate/responses.ts);
 * - the reviews a session waits for and the windows approvals open (./gate/review-holds.ts), and
 *   what a reviewer is shown (./gate/review-display.ts);
 * - the server settings the gate relies on (./gate/settings.ts).
 *
 * What is judged:
 * - Query ('Q'): the whole message (the judge sees every statement of a multi-statement string;
 *   one refused statement refuses the message, none of it runs);
 * - Parse ('P'): its SQL; a named statement that was allowed is remembered (name -> SQL), and
 *   judged again on every Bind of that name and every Execute of a portal bound to it, so a
 *   policy that changed in the meantime applies; the unnamed statement likewise;
 * - Bind ('B') of a statement hoop never saw prepared (or whose Parse was refused) is refused
 *   with 26000, as PostgreSQL would answer a statement that does not exist;
 * - SQL-level `PREPARE name AS ...` (judged with its body) is remembered under the same names as
 *   protocol-level statements (PostgreSQL keeps one namespace), `EXECUTE name` (also inside
 *   `EXPLAIN ANALYZE` or `CREATE TABLE ... AS`) is judged again with the prepared body, and
 *   `DEALLOCATE` / `DISCARD ALL` forget;
 * - FunctionCall ('F', libpq's large-object calls: `\lo_import`, `\lo_export`) is judged as the
 *   SQL call it stands for, `select schema.name($1, ...)`, its function named by its OID through
 *   `functionName` (the gateway's catalog); without that (hoop connect's advisory checks) it passes
 *   to the gateway, which judges it; it cannot be held for review (a review verdict refuses it);
 * - everything else passes.
 *
 * SQL is judged as UTF-8 (the parser's encoding); a message that is not valid UTF-8 is refused,
 * which also closes the multi-byte client encodings (SJIS, GBK, BIG5) whose second bytes can
 * look like ASCII quotes or backslashes to a UTF-8 reader.
 *
 * @see https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-EXT-QUERY
 * @see https://www.postgresql.org/docs/current/protocol-message-formats.html
 * @see https://www.postgresql.org/docs/current/sql-prepare.html
 */
import { SIDE_CHANNEL_RULE } from '../../policy/built-in-rules.js';
import { bothChecks, changesRows, opensBlockBefore, unguardable, WRITE_GUARD_RULE, type WriteGuard } from '../../policy/write-limit.js';
import { combineReviewDecisions } from '../../policy/review-combine.js';
import type { TablesTouchedBy } from '../../policy/touched.js';
import { analyzeSql, loadSqlParser, type Analysis } from '../../policy/sql/analyze.js';
import type { PendingReview, ReviewAsk, SessionJudge, StatementVerdict } from '../../session/engine.js';
import { NOTHING, RefusalDescribes, SYNC_MESSAGE } from './gate/describe-refusals.js';
import { type AnswerHook, type Held, MAX_HELD, MAX_NAME_BYTES, MAX_NAMES, PreparedNames, RESERVED_STATEMENT_PREFIX } from './gate/names.js';
import { type PreparedOp, preparedOps } from './gate/prepared-ops.js';
import {
  BuiltinRule,
  type BuiltinRuleName,
  builtinMessage,
  explainCommand,
  refusalError,
  reviewOutcomeError,
  tooLongError,
  tooLongMessage,
  unknownFunctionError,
  unknownStatementError,
  unrecordableError,
} from './gate/responses.js';
import { heldText, PARAMS_TOO_LONG, reviewAsk, reviewParams } from './gate/review-display.js';
import { ReviewHolds } from './gate/review-holds.js';
import { type MaskedValues, SettingsWatch } from './gate/settings.js';
import type { Decision, FrontendContext, Passed, Refusal, Stage } from './stages.js';
import { Backend, Frontend } from '../wire/codes.js';
import type { FrontendMessage } from '../wire/frontend-messages.js';
import type { PgMessage } from '../wire/reader.js';

export type { Refusal };
// The gate's public surface, where its callers and tests have always found it.
export { RESERVED_STATEMENT_PREFIX } from './gate/names.js';
export { type PreparedOp, preparedOps } from './gate/prepared-ops.js';
export { BuiltinRule, explainCommand, refusalError, reviewNotice, reviewOutcomeError } from './gate/responses.js';
export { serverUtf8, unsafeParameter, unsafeSettingValue } from './gate/settings.js';

const { QUERY, BIND } = Frontend;
const { PARAMETER_STATUS, ERROR } = Backend;
/** How deep `EXECUTE a` whose body is again an EXECUTE is followed. */
const MAX_DEPTH = 4;
/** SQL that may run a portal by name (a protocol portal shares the namespace of cursors). */
const FETCH_WORDS = /fetch|move/i;
/** A judgement that holds the message for a reviewer's decision (see {@link StatementGate}). */
const REVIEW = Symbol('review');
/** What a review verdict does: hold the message for a reviewer, let it pass (a Parse runs nothing), or refuse it. */
type OnReview = 'hold' | 'pass' | 'refuse';
/** SQL texts a held message's review lists (its own, what it EXECUTEs, what a name may hold). */
const MAX_SEEN = 64;
/** What the gate sends upstream for one message (see {@link StatementGate.frontend}). */
type Sent = FrontendMessage | readonly FrontendMessage[];
/** A judgement: the refusal's ErrorResponse, {@link REVIEW}, or undefined when the message may run. */
type Judged = Buffer | typeof REVIEW | undefined;
type QueryMessage = Extract<FrontendMessage, { kind: 'query' }>;
type ParseMessage = Extract<FrontendMessage, { kind: 'parse' }>;
type BindMessage = Extract<FrontendMessage, { kind: 'bind' }>;
type ExecuteMessage = Extract<FrontendMessage, { kind: 'execute' }>;

/**
 * Loads the SQL parser the gate judges with (once per process; later calls return at once).
 *
 * @see https://github.com/constructive-io/libpg-query-node
 */
export async function loadStatementGate(): Promise<void> {
  await loadSqlParser();
}

const rank = { allow: 0, review: 1, deny: 2 } as const;

/** The more restrictive of two verdicts (deny > review > allow); the first on a tie. */
export function stricter(a: StatementVerdict, b: StatementVerdict): StatementVerdict {
  return rank[b.action] > rank[a.action] ? b : a;
}

/** Whether every text a portal may hold begins a transaction block, or every one ends one (else undefined: it may do neither). */
function blockOf(held: Held | undefined): 'begin' | 'end' | undefined {
  let kind: 'begin' | 'end' | undefined;
  for (const text of held ?? []) {
    const a = typeof text === 'string' ? analyzeSql(text) : text;
    const t = a.ok && a.statements.length === 1 ? a.statements[0]!.transaction : undefined;
    const k = t === 'begin' || t === 'start' ? 'begin' : t === 'commit' || t === 'rollback' || t === 'prepare' ? 'end' : undefined;
    if (k === undefined || (kind !== undefined && k !== kind)) return undefined;
    kind = k;
  }
  return kind;
}

/** What goes with a message that passed with no answer to hear, no row limit and no tables: one object for all of them (the relay's every message). */
const NOTHING_MORE: Passed = Object.freeze({});

/** The messages that run something on the server: refused whole while nothing may run unrecorded. */
const RUNS = new Set<FrontendMessage['kind']>(['query', 'bind', 'execute', 'function-call']);

/**
 * The per-session enforcement state machine: judges the client's messages
 * ({@link StatementGate.frontend}) and turns the server's answer to a refused message into the
 * gateway's error ({@link StatementGate.backend}). See the module documentation for the design.
 *
 * @see https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-EXT-QUERY
 */
export class StatementGate implements Stage {
  readonly #judge: SessionJudge;
  /** What each prepared statement and portal name may hold at the server. */
  readonly #names: PreparedNames;
  /** The Describes sent for refusals, and the errors that replace the server's answers. */
  readonly #describes = new RefusalDescribes();
  /** The server's reported settings the gate relies on. */
  readonly #settings: SettingsWatch;
  /** The review the session waits for, and the windows approvals opened. */
  readonly #reviews: ReviewHolds;
  #discarding = false;
  /** The type of the frontend message being judged. */
  #current = 0;
  /** Refusals so far, by action, for the session log. */
  readonly refusals = { deny: 0, review: 0, builtin: 0 };
  readonly #onRefusal: ((refusal: Refusal) => void) | undefined;
  readonly #functionName: ((oid: number) => Promise<string | undefined>) | undefined;
  readonly #sideChannel: ((analysis: Analysis) => Promise<string | undefined> | undefined) | undefined;
  readonly #stopping: (() => string | undefined) | undefined;
  readonly #connection: string | undefined;
  /** What must hear the server's answer to the message just passed. */
  #hook: AnswerHook | undefined;
  /** Names the message being judged DEALLOCATEs (forgotten once the server confirms). */
  readonly #forget: string[] = [];
  /** While an approved message is judged again: the texts the reviewer saw; review verdicts on them pass (on others, not). */
  #approvedTexts: ReadonlySet<string> | undefined;
  /** The review verdict met while judging the current message. */
  #asking: StatementVerdict | undefined;
  /** Whether the text of the message being judged passes values to a side channel, as its verdict said (undefined: it did not say). */
  #textSideChannel: boolean | undefined;
  /** The SQL texts judged for the current message (its own, those it EXECUTEs, those a Bind's statement may hold). */
  readonly #seen: string[] = [];
  /** The current message judged a text no reviewer could be shown: one too long to decode here, or more texts than {@link MAX_SEEN}. */
  #unshowable: string | undefined;
  /** Portals an approved Bind made -> the texts approved: their Executes pass on those (an EXECUTE whose name now holds another text is held again). */
  get #approvedPortals(): Map<string, ReadonlySet<string>> {
    return (this.#approvedPortalsMade ??= new Map());
  }
  #approvedPortalsMade: Map<string, ReadonlySet<string>> | undefined;
  /** The row limit on what the current message writes (the strictest of its texts'), if any. */
  #guarding: WriteGuard | undefined;
  /** The tables the message being judged reads from, for the statement tally: its texts' (a prepared body an EXECUTE runs too), and for a FETCH its cursors'. */
  #touched: Set<string> | undefined;
  /** Whether the Execute just passed begins or ends a transaction block (what its portal holds, as the names say). */
  #block: 'begin' | 'end' | undefined;
  /** The tables the session's cursors were declared over (SQL DECLARE): a FETCH reads from them. */
  readonly #cursorTables = new Set<string>();
  /** The current message's guard came from what an EXECUTE runs (its tag may not count it). */
  #guardedBody = false;
  /** The current message's SQL, for a reviewer of a write over its limit. */
  #guardSql = '';

  /**
   * `readOnly`: the session's access is read-only (the server turning it off ends the session).
   * `review`: raises the review of a message a `review` verdict holds; without it such messages are refused.
   * `confirmed`: the server's answers reach the gate (a decision's `answered`), and a prepared name
   * changes only as the server confirms; without (`hoop connect`'s early checks), names change
   * as messages pass (see ./gate/names.ts).
   */
  constructor(
    judge: SessionJudge,
    options: {
      onRefusal?: (refusal: Refusal) => void;
      onUnsafeSetting?: (setting: string) => void;
      readOnly?: boolean;
      /** The session's values are masked: a client encoding in which they are not UTF-8 ends it (masking reads UTF-8). */
      masked?: MaskedValues;
      review?: (ask: ReviewAsk) => PendingReview;
      confirmed?: boolean;
      /** The qualified name of the function with this OID (quoted as SQL writes it), undefined when there is none: for FunctionCall. */
      functionName?: (oid: number) => Promise<string | undefined>;
      /**
       * Why a statement's side channel (`pg_notify`, `set_config`, stored values: `StatementFacts.sideChannel`)
       * would carry a masked value, told with the catalog (through views); undefined when it has none to look up.
       */
      sideChannel?: (analysis: Analysis) => Promise<string | undefined> | undefined;
      /** Why no statement may run now, as it could not be recorded (SessionRecording.stopping); undefined while they may. */
      stopping?: () => string | undefined;
      /** The connection's name, for the command a refusal names (`hoop policy check --connection …`). */
      connection?: string;
    } = {},
  ) {
    this.#names = new PreparedNames(options.confirmed === true);
    this.#judge = judge;
    this.#functionName = options.functionName;
    this.#sideChannel = options.sideChannel;
    this.#stopping = options.stopping;
    this.#connection = options.connection;
    this.#onRefusal = options.onRefusal;
    this.#settings = new SettingsWatch(options.readOnly === true, options.masked, options.onUnsafeSetting);
    this.#reviews = new ReviewHolds(options.review);
  }

  /** Notes what one judged text reads from (its decision carries them); a cursor it declares is remembered for the FETCHes that read it (at most 1,000 tables). */
  #noteTouched(touched: TablesTouchedBy | undefined): void {
    if (!touched) return;
    const into = (this.#touched ??= new Set());
    // The functions it calls go with its tables as `name()`: one of the database's own may read any table (see src/postgres/gateway/relation-reads.ts).
    const read = touched.functions ? [...touched.tables, ...touched.functions.map((f) => `${f}()`)] : touched.tables;
    for (const t of read) into.add(t);
    // Past 1,000 tables the cursors' are not known: a FETCH then reads from any table (`*`, which every alert's table matches).
    if (touched.declares) for (const t of read) this.#cursorTables.add(this.#cursorTables.size < 1000 ? t : '*');
    if (touched.fetches) this.#readCursors();
  }

  /** The message reads from the session's cursors (a FETCH, an Execute of a cursor): from their tables. */
  #readCursors(): void {
    const into = (this.#touched ??= new Set());
    for (const t of this.#cursorTables) into.add(t);
  }

  /** Counts and logs a refusal of the write guard's that it says itself (in place of a ROLLBACK's answer). */
  refused(rule: string, reason: string): void {
    this.#count('deny', Buffer.alloc(0), rule, reason);
  }

  /**
   * Refuses the message in progress with `error` (a Query: a Describe and a Sync; in the extended
   * protocol a Describe, and everything up to the client's Sync is dropped), for the write guard.
   */
  refuseWith(error: Buffer, query: boolean, rule: string, reason: string): readonly FrontendMessage[] {
    this.#count('deny', error, rule, reason);
    return this.#refusing(error, query);
  }

  /**
   * Raises a review for the write guard (a write over its row limit), held like a statement's:
   * a CancelRequest or the session's end withdraws it.
   */
  raise(ask: ReviewAsk): PendingReview | undefined {
    return this.#reviews.raise(ask);
  }

  /** Whether reviews can be raised (the session has a reviewer service). */
  get reviews(): boolean {
    return this.#reviews.available;
  }

  /**
   * Withdraws the review the session waits for, if any (the client's CancelRequest, or the
   * session ends): the held message is then refused, or dropped with the session. True when one was.
   */
  withdraw(why: 'cancel' | 'session-ended'): boolean {
    return this.#reviews.withdraw(why);
  }

  /**
   * The first setting the server reported (ParameterStatus) with a value under which its lexer
   * and the gateway's parser could read SQL differently (see `unsafeParameter`); the session
   * must end.
   */
  get unsafeSetting(): string | undefined {
    return this.#settings.unsafeSetting;
  }

  /** True while messages are dropped until the client's Sync, after a refusal in the extended protocol. */
  get discarding(): boolean {
    return this.#discarding;
  }

  /** Refusals whose ErrorResponse has not come back from the server yet. */
  get pendingRefusals(): number {
    return this.#describes.size;
  }

  /**
   * The gate's decision on one complete frontend message (see {@link Decision}): what to send
   * upstream, and when it passed, what goes with it; a Promise while the message is held for a
   * review. `ctx.analysis` is the analysis of a Query's or Parse's SQL when the caller made it (a
   * long text). A Bind streamed on (its `msg` absent) cannot be held: a review verdict refuses it.
   *
   * Held for review: a Query (whole), a Bind (with its parameters: the first message that runs a
   * statement) and an Execute of a portal no approved Bind made. A Parse a review rule matches
   * passes, as it runs nothing. On approval the message is judged again with its review verdicts
   * passing (a deny still refuses) and sent as the client sent it; a Bind's portal then runs.
   * Before a Query, Parse, Bind or Execute is judged, the judge may look up what its SQL names
   * (`SessionJudge.pending`: the relations, in the catalog).
   */
  frontend(m: FrontendMessage, ctx?: Pick<FrontendContext, 'analysis'>): Decision | Promise<Decision> {
    const judged = (): Decision | Promise<Decision> => {
      const sent = this.#message(m, ctx?.analysis, m.kind !== 'bind' || m.msg !== undefined);
      return sent instanceof Promise ? sent.then((s) => this.#decision(m, s)) : this.#decision(m, sent);
    };
    const looking = this.#lookups(m, ctx?.analysis);
    return looking ? looking.then(judged) : judged();
  }

  /** What the judge must look up before it judges `m`'s SQL (the relations it names, in the catalog), if anything. */
  #lookups(m: FrontendMessage, analysis: Analysis | undefined): Promise<void> | undefined {
    if (!this.#judge.pending || this.#discarding) return undefined;
    const texts: Array<string | Analysis> = [];
    if (m.kind === 'query' || m.kind === 'parse') {
      texts.push(analysis ?? m.sql);
      // What its EXECUTEs run is judged with it.
      for (const op of preparedOps(m.sql, analysis) ?? []) if (op.op === 'execute') texts.push(...(this.#names.heldBy(op.name) ?? []));
    } else if (m.kind === 'bind' && m.utf8) texts.push(...(this.#names.heldBy(m.statement) ?? []));
    else if (m.kind === 'execute' && m.utf8) texts.push(...(this.#names.portalHeld(m.portal) ?? []));
    return texts.length > 0 ? this.#judge.pending(texts) : undefined;
  }

  /** `m` passed as sent, with what goes with it (each handed out once), or what stands in its place. */
  #decision(m: FrontendMessage, sent: Sent): Decision {
    if (sent !== m) return { send: sent as readonly FrontendMessage[] };
    const answered = this.#hook;
    const guard = this.#guarding;
    const touched = this.#touched;
    const block = this.#block;
    if (!answered && !guard && !touched && !block) return { send: [m], passed: NOTHING_MORE };
    this.#hook = undefined;
    this.#guarding = undefined;
    this.#touched = undefined;
    this.#block = undefined;
    const passed: Passed = {};
    if (answered) passed.answered = answered;
    if (guard) passed.guard = { guard, sql: this.#guardSql };
    if (touched) passed.touched = [...touched];
    if (block) passed.block = block;
    return { send: [m], passed };
  }

  /** What to send for `m`: itself when it passes, else what stands in its place; a Promise while held for review. */
  #message(m: FrontendMessage, analysis: Analysis | undefined, canHold: boolean): Sent | Promise<Sent> {
    const onReview: OnReview = canHold ? 'hold' : 'refuse';
    if (this.#discarding) {
      if (m.kind === 'sync') {
        this.#discarding = false;
        return m;
      }
      return m.kind === 'terminate' ? m : NOTHING;
    }
    this.#begin(m);
    const stopped = RUNS.has(m.kind) ? this.#stopping?.() : undefined;
    if (stopped !== undefined) return this.#refusing(unrecordableError(stopped), m.kind === 'query' || m.kind === 'function-call');
    switch (m.kind) {
      case 'query':
        return this.#query(m, analysis, onReview);
      case 'parse':
        return this.#parse(m, analysis);
      case 'bind':
        return this.#bind(m, onReview);
      case 'execute':
        return this.#execute(m, onReview);
      case 'close':
        this.#close(m);
        return m;
      case 'function-call':
        return this.#functionCall(m);
      default:
        return m;
    }
  }

  /** Starts judging `m`: what was kept of the message before is dropped. */
  #begin(m: FrontendMessage): void {
    this.#current = m.msg?.type ?? BIND;
    this.#hook = undefined;
    this.#forget.length = 0;
    if (m.kind === 'sync' || m.kind === 'query') this.#names.nextBatch();
    this.#asking = undefined;
    this.#textSideChannel = undefined;
    this.#seen.length = 0;
    this.#unshowable = undefined;
    this.#guarding = undefined;
    this.#guardedBody = false;
    this.#touched = undefined;
  }

  /** A Query: judged whole; held for review, refused, or passed (what it DEALLOCATEs then forgotten once the server confirms). */
  #query(m: QueryMessage, analysis: Analysis | undefined, onReview: OnReview): Sent | Promise<Sent> {
    this.#guardSql = m.sql;
    let refusal = m.utf8 ? this.#judgeString(m.sql, true, 0, analysis, onReview) : this.#builtin(BuiltinRule.NOT_UTF8);
    if (refusal === REVIEW) return this.#holdForReview(m, analysis, m.long ? undefined : m.sql);
    if (!refusal && this.#guardedBody) refusal = this.#checkGuardedQuery(m.sql, analysis);
    if (refusal) return [this.#describes.describe(refusal), SYNC_MESSAGE];
    if (this.#forget.length > 0) this.#hook = this.#names.forgetWhenDone([...this.#forget]);
    return this.#checkSideChannel(m, analysis, true);
  }

  /**
   * `m` once its side channel is known to carry no masked value the catalog shows (a view's), else
   * its refusal (rule `masking-side-channel`); `m` at once when it has none.
   */
  #checkSideChannel(m: QueryMessage | ParseMessage, analysis: Analysis | undefined, query: boolean): Sent | Promise<Sent> {
    // A text its verdict says calls no side channel is not parsed again for it (a verdict of its shape, cached, says so too).
    if (this.#textSideChannel === false && analysis === undefined) return m;
    const check = this.#sideChannel?.(analysis ?? analyzeSql(m.sql));
    if (!check) return m;
    const type = this.#current;
    return check.then((reason) => {
      if (reason === undefined) return m;
      this.#current = type;
      const refusal = this.#count('deny', refusalError({ action: 'deny', rule: SIDE_CHANNEL_RULE, message: reason, reason }), SIDE_CHANNEL_RULE, reason, m.sql);
      return this.#refusing(refusal, query);
    });
  }

  /** A Parse: its name checked and its SQL judged (a review passes: it runs nothing); remembered when it passes. */
  #parse(m: ParseMessage, analysis: Analysis | undefined): Sent | Promise<Sent> {
    const statements = this.#names.statements;
    const refusal = !m.utf8 ? this.#builtin(BuiltinRule.NOT_UTF8) : (this.#checkNewName(m.name, statements) ?? (this.#judgeString(m.sql, true, 0, analysis, 'pass') as Buffer | undefined));
    if (refusal) {
      // PostgreSQL drops the unnamed statement before it parses a new one, even one that fails.
      if (m.name === '') statements.delete('');
      return this.#refusing(refusal, false);
    }
    this.#hook = this.#names.prepared(m.name, m.long && analysis ? analysis : m.sql);
    return this.#checkSideChannel(m, analysis, false);
  }

  /** A Bind: what its statement may hold is judged again; held for review with its parameters, refused, or bound. */
  #bind(m: BindMessage, onReview: OnReview): Sent | Promise<Sent> {
    const sql = m.utf8 ? this.#names.heldBy(m.statement) : undefined;
    let refusal: Judged;
    if (!m.utf8) refusal = this.#builtin(BuiltinRule.NOT_UTF8);
    else if (Buffer.byteLength(m.portal) > MAX_NAME_BYTES) refusal = this.#builtin(BuiltinRule.NAME_TOO_LONG);
    else if (sql === undefined) refusal = this.#count('builtin', unknownStatementError(m.statement), 'hoop:unknown-statement', 'Bind of a statement hoop did not see prepared');
    else refusal = this.#judgeHeld(sql, 0, onReview);
    this.#guardSql = (sql && heldText(sql)) ?? '';
    if (refusal === REVIEW) {
      // A Bind too large to be held whole here (streamed) has parameters no reviewer could read.
      const shown = m.msg ? reviewParams(m.msg.body) : { unshowable: PARAMS_TOO_LONG };
      if (shown && 'unshowable' in shown) this.#unshowable ??= shown.unshowable;
      return this.#holdForReview(m, undefined, heldText(sql!), shown && 'params' in shown ? shown.params : undefined);
    }
    if (refusal) return this.#refusing(refusal, false);
    // Portals end with their transaction, unseen here; one the gateway forgot could run unjudged, so past the cap a new name is refused.
    const portals = this.#names.portals;
    if (m.portal !== '' && portals.size >= MAX_NAMES && !portals.has(m.portal)) {
      return this.#refusing(this.#builtin(BuiltinRule.TOO_MANY_NAMES, `a session may hold at most ${MAX_NAMES} named portals through hoop; close portals it no longer uses`), false);
    }
    this.#hook = this.#names.bound(m.portal, sql!);
    if (this.#approvedTexts) this.#approvedPortals.set(m.portal, this.#approvedTexts);
    else this.#approvedPortals.delete(m.portal);
    return m;
  }

  /** An Execute: what its portal may hold is judged again (what an approved Bind made passes on the texts approved). */
  #execute(m: ExecuteMessage, onReview: OnReview): Sent | Promise<Sent> {
    const sql = m.utf8 ? this.#names.portalHeld(m.portal) : undefined;
    // A portal hoop did not bind is a SQL cursor (its query was judged at DECLARE) or does not exist: its rows come from the cursors' tables.
    if (sql === undefined) this.#readCursors();
    const approved = this.#approvedPortals.get(m.portal);
    const outer = this.#approvedTexts;
    if (approved) this.#approvedTexts = outer ? new Set([...outer, ...approved]) : approved;
    let refusal: Judged;
    try {
      refusal = sql === undefined ? undefined : this.#judgeHeld(sql, 0, onReview);
    } finally {
      this.#approvedTexts = outer;
    }
    if (refusal === REVIEW) {
      // Reviews are held at the Bind, where the parameters are: an Execute that needs one now
      // (a window ran out, the policy changed) runs parameters no reviewer saw, so it is refused.
      this.#unshowable ??= 'its parameters were bound before a review was needed, so a reviewer could not see them; bind it again';
      return this.#holdForReview(m, undefined, heldText(sql!));
    }
    if (refusal) return this.#refusing(refusal, false);
    this.#guardSql = (sql && heldText(sql)) ?? '';
    this.#block = blockOf(sql);
    return m;
  }

  /**
   * A FunctionCall: judged as the SQL call it stands for (see the module documentation), once its
   * function's name is looked up. A function the catalog does not know is refused, as the server
   * would refuse it.
   */
  #functionCall(m: FrontendMessage): Sent | Promise<Sent> {
    const lookup = this.#functionName;
    if (!lookup) return m;
    const body = m.msg!.body;
    const oid = body.length >= 6 ? body.readUInt32BE(0) : 0;
    const args = body.length >= 6 ? functionCallArgs(body) : -1;
    const refuse = (refusal: Buffer): Sent => [this.#describes.describe(refusal), SYNC_MESSAGE];
    return lookup(oid).then(
      (name) => {
        this.#begin(m);
        if (name === undefined || args < 0)
          return refuse(this.#count('builtin', unknownFunctionError(oid), `hoop:${BuiltinRule.FUNCTION_CALL}`, `FunctionCall of function ${oid}, which the catalog does not have`));
        const sql = `select ${name}(${Array.from({ length: args }, (_, i) => `$${i + 1}`).join(', ')})`;
        const refusal = this.#judgeString(sql, false, 0, undefined, 'refuse');
        return refusal ? refuse(refusal as Buffer) : m;
      },
      () => {
        this.#begin(m);
        return refuse(this.#builtin(BuiltinRule.JUDGE_FAILED, 'the function a FunctionCall names could not be looked up; run it as SQL, or retry'));
      },
    );
  }

  /** A Close: the statement or portal is forgotten (once the server confirms it closed it, with `confirmed`). */
  #close(m: { target: 'S' | 'P'; name: string }): void {
    const names = this.#names;
    if (m.target === 'S') {
      if (names.confirmed) this.#hook = names.forgetWhenDone([m.name]);
      else names.statements.delete(m.name);
    } else if (!names.confirmed) {
      names.portals.delete(m.name);
      this.#approvedPortals.delete(m.name);
    } else {
      // Forgotten once the server confirms it closed it (a Close it skipped leaves the portal).
      const name = m.name;
      this.#hook = (outcome) => {
        if (outcome !== 'ok' || names.binding(name)) return;
        names.portals.delete(name);
        this.#approvedPortals.delete(name);
      };
    }
  }

  /** What to send instead of a Query or Parse whose text is longer than the gateway reads (the rest of it is dropped). */
  refuseTooLong(type: number, length: number, limit = 0): readonly FrontendMessage[] {
    if (this.#discarding) return NOTHING;
    this.#current = type;
    const said = tooLongMessage(length, limit);
    const refusal = this.#count('builtin', tooLongError(length, limit), `hoop:${BuiltinRule.TOO_LONG}`, said);
    return this.#refusing(refusal, type === QUERY);
  }

  /**
   * What to send instead of a Query or Parse whose text has a backslash while a Bind or Execute
   * before it in the same unsynced batch may still change `standard_conforming_strings` (its
   * ParameterStatus only comes with the batch's ReadyForQuery).
   */
  refuseLexingPending(m: FrontendMessage): readonly FrontendMessage[] {
    if (this.#discarding) return NOTHING;
    this.#current = m.msg?.type ?? 0;
    const refusal = this.#builtin(BuiltinRule.LEXING_PENDING);
    return this.#refusing(refusal, m.kind === 'query');
  }

  /** Whether the gate reads a server message whole: an ErrorResponse while a refusal's is due, every ParameterStatus. */
  wants(type: number): boolean {
    return type === ERROR ? this.#describes.size > 0 : type === PARAMETER_STATUS;
  }

  /**
   * The bytes to hand on for server message `msg`: an ErrorResponse that answers one of the
   * gateway's Describes (26000, naming it) becomes the refusal; a ParameterStatus is checked for a
   * setting under which SQL would read differently. Everything else passes.
   *
   * @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-ERRORRESPONSE
   */
  backend(bytes: Buffer, msg: PgMessage): Buffer {
    if (msg.type === PARAMETER_STATUS) {
      this.#settings.check(msg.body);
      return bytes;
    }
    const answer = this.#describes.answer(msg);
    return answer === msg ? bytes : answer.raw;
  }

  /**
   * What to send in place of a refused message: a Describe that stands for `error`, and for a
   * Query a Sync of the gateway's; in the extended protocol everything up to the client's Sync
   * is then dropped.
   */
  #refusing(error: Buffer, query: boolean): readonly FrontendMessage[] {
    if (query) return [this.#describes.describe(error), SYNC_MESSAGE];
    this.#discarding = true;
    return [this.#describes.describe(error)];
  }

  /** Counts and logs a refusal; returns its `error`. */
  #count(kind: 'deny' | 'review' | 'builtin', error: Buffer, rule: string, reason: string, sql?: string): Buffer {
    this.refusals[kind]++;
    this.#onRefusal?.({ action: kind === 'review' ? 'review' : 'deny', rule, reason, message: String.fromCharCode(this.#current), ...(sql !== undefined ? { sql } : {}) });
    return error;
  }

  /** The refusal of one of the gate's built-in rules, counted; `message` in place of the rule's own. */
  #builtin(rule: BuiltinRuleName, message?: string): Buffer {
    const said = message ?? builtinMessage[rule];
    return this.#count('builtin', refusalError({ action: 'deny', rule: `hoop:${rule}`, message: said, reason: said }), `hoop:${rule}`, said);
  }

  /**
   * A Query whose row limit comes from what it EXECUTEs: refused when the guard cannot count it
   * as written (see {@link unguardable}); else its guard counts by statistics.
   */
  #checkGuardedQuery(sql: string, analysis: Analysis | undefined): Buffer | undefined {
    const a = analysis ?? analyzeSql(sql);
    const guard = this.#guarding!;
    if (!a.ok) return undefined;
    const first = a.statements.findIndex((st) => st.executes.length > 0 || changesRows(st));
    const problem = unguardable(a.statements, Math.max(first, 0), guard);
    if (problem !== undefined) return this.#count('deny', refusalError({ action: 'deny', rule: WRITE_GUARD_RULE, message: problem, reason: problem }), WRITE_GUARD_RULE, problem);
    this.#guarding = { ...guard, count: 'stats', statements: [], opensBlock: opensBlockBefore(a.statements, Math.max(first, 0)) };
    return undefined;
  }

  /**
   * Holds `m` for the review its judgement asked for ({@link #asking}): raises it, and settles
   * with what to send once it is decided (see {@link frontend}). `sql`: the statement's text for
   * the reviewer (undefined for a text too long to decode here), `params` a Bind's.
   */
  #holdForReview(m: FrontendMessage, analysis: Analysis | undefined, sql: string | undefined, params?: Array<string | null>): Promise<Sent> {
    const verdict = this.#asking!;
    this.#asking = undefined;
    const type = this.#current;
    // Fail closed: a reviewer must be able to read everything they approve.
    if (sql === undefined || this.#unshowable !== undefined) {
      const unshowable = sql === undefined ? 'it is longer than 64 KiB' : this.#unshowable!;
      const refusal = this.#count(
        'review',
        refusalError({ ...verdict, review: undefined, message: `${verdict.message ?? verdict.reason}; it cannot be held for review, as a reviewer could not read all it runs (${unshowable})` }),
        verdict.rule ?? '(none)',
        `not held: ${unshowable}`,
      );
      return Promise.resolve(this.#refusing(refusal, m.kind === 'query'));
    }
    const seen = new Set(this.#seen);
    const pending = this.#reviews.hold(reviewAsk(m.msg?.raw, sql, this.#seen, params, verdict));
    return pending.decided.then((outcome) => {
      this.#reviews.decided();
      if (outcome.state === 'approved') {
        if (outcome.windowMs > 0) this.#reviews.windows.open(sql, outcome.windowMs);
        // Judged again: what the reviewer saw passes; anything new it would now run is held again.
        const again = (): Sent | Promise<Sent> => {
          this.#approvedTexts = seen;
          try {
            return this.#message(m, analysis, true);
          } finally {
            this.#approvedTexts = undefined;
          }
        };
        // The relations it names are looked up again: the review took its time.
        const looking = this.#lookups(m, analysis);
        return looking ? looking.then(again) : again();
      }
      this.#current = type;
      const refusal = this.#count('review', reviewOutcomeError(verdict, pending.id, outcome), verdict.rule ?? '(none)', `review ${pending.id}: ${outcome.state}`);
      return this.#refusing(refusal, m.kind === 'query');
    });
  }

  /** The refusal for what a remembered name may hold (judged again: a test judge may change its mind). */
  #judgeHeld(held: Held, depth = 0, onReview: OnReview = 'refuse'): Judged {
    let reviewed = false;
    for (const sql of held) {
      const refusal = typeof sql === 'string' ? this.#judgeString(sql, false, depth, undefined, onReview) : this.#judgeString('', false, depth, sql, onReview);
      if (refusal === REVIEW) reviewed = true;
      else if (refusal) return refusal;
    }
    return reviewed ? REVIEW : undefined;
  }

  /** The refusal of a new statement name a Parse or PREPARE takes: reserved, too long, or one too many. */
  #checkNewName(name: string, map: Map<string, Held>): Buffer | undefined {
    if (name.startsWith(RESERVED_STATEMENT_PREFIX)) return this.#builtin(BuiltinRule.RESERVED_NAME);
    if (Buffer.byteLength(name) > MAX_NAME_BYTES) return this.#builtin(BuiltinRule.NAME_TOO_LONG);
    if (name !== '' && map.size >= MAX_NAMES && !map.has(name)) return this.#builtin(BuiltinRule.TOO_MANY_NAMES);
    if (name !== '' && (map.get(name)?.length ?? 0) >= MAX_HELD)
      return this.#builtin(BuiltinRule.TOO_MANY_NAMES, `statement "${name}" was prepared ${MAX_HELD} times without being closed; close or deallocate it first`);
    return undefined;
  }

  /** Notes `sql` among the texts a reviewer of the current message must see (see {@link #unshowable}). */
  #see(sql: string): void {
    if (sql === '') this.#unshowable ??= 'a statement it runs is longer than 64 KiB';
    else if (!this.#seen.includes(sql)) {
      if (this.#seen.length < MAX_SEEN) this.#seen.push(sql);
      else this.#unshowable ??= `it runs more than ${MAX_SEEN} statements`;
    }
  }

  /**
   * The refusal for `sql`, {@link REVIEW} when a review must decide (see {@link OnReview}), or
   * undefined when it may run; with `record`, remembers what an allowed PREPARE / DEALLOCATE does.
   */
  #judgeString(sql: string, record: boolean, depth: number, analysis?: Analysis, onReview: OnReview = 'refuse'): Judged {
    this.#see(sql);
    let verdict: StatementVerdict;
    let ops: PreparedOp[] | undefined;
    try {
      verdict = this.#judge.judge(sql, analysis);
      if (depth === 0) this.#textSideChannel = verdict.sideChannel;
      this.#noteTouched(verdict.touched);
      ops = preparedOps(sql, analysis);
    } catch {
      return this.#builtin(BuiltinRule.JUDGE_FAILED);
    }
    if (this.#fetchesPortal(sql, analysis)) return this.#builtin(BuiltinRule.PORTAL_FETCH);
    /** Something this text EXECUTEs needs a review (it then waits with the text's own). */
    let reviewed = false;
    if (ops && ops.length > 0) {
      const followed = this.#followPreparedOps(ops, verdict, depth, onReview);
      if (Buffer.isBuffer(followed)) return followed;
      reviewed = followed.reviewed;
      if (record && !reviewed && this.#passes(verdict, sql, onReview, depth === 0 && this.#current === QUERY, analysis)) this.#record(followed.local);
    }
    if (this.#passes(verdict, sql, onReview, depth === 0 && this.#current === QUERY, analysis)) {
      if (verdict.guard && verdict.action === 'allow' && !this.#approvedTexts?.has(sql) && (depth > 0 || !verdict.guard.prepared)) this.#guard(verdict.guard, depth > 0);
      return reviewed ? REVIEW : undefined;
    }
    if (verdict.action === 'review' && onReview === 'hold' && verdict.review && this.#reviews.available) return this.#ask(verdict);
    return this.#count(verdict.action as 'deny' | 'review', refusalError(verdict, explainCommand(this.#connection, sql)), verdict.rule ?? '(none)', verdict.reason, sql);
  }

  /** Whether `sql` FETCHes or MOVEs a portal bound with the extended protocol (which would run what was judged at its Execute). */
  #fetchesPortal(sql: string, analysis: Analysis | undefined): boolean {
    const portals = this.#names.portals;
    if (portals.size === 0 || (analysis === undefined && !FETCH_WORDS.test(sql))) return false;
    const a = analysis ?? analyzeSql(sql);
    return a.ok && a.statements.some((st) => st.fetch && st.cursorName !== undefined && (portals.has(st.cursorName) || st.cursorName === '*'));
  }

  /**
   * Follows a text's prepared-statement operations in order: what each PREPARE and DEALLOCATE
   * would make of the names (`local`: null for a name forgotten), and each EXECUTE judged with
   * the body it runs. A refusal, or whether something it EXECUTEs needs a review.
   */
  #followPreparedOps(ops: readonly PreparedOp[], verdict: StatementVerdict, depth: number, onReview: OnReview): Buffer | { local: Map<string, Held | null>; reviewed: boolean } {
    const statements = this.#names.statements;
    const local = new Map<string, Held | null>();
    const held = (name: string): Held | undefined => (local.has(name) ? (local.get(name) ?? undefined) : statements.get(name));
    let reviewed = false;
    for (const op of ops) {
      if (op.op === 'prepare') {
        const bad = this.#checkNewName(op.name, statements);
        if (bad) return bad;
        local.set(op.name, this.#names.hold(op.name, op.text, held(op.name)));
      } else if (op.op === 'deallocate') {
        if (op.name !== undefined) local.set(op.name, null);
        else {
          for (const name of [...statements.keys(), ...local.keys()]) if (name !== '') local.set(name, null);
        }
      } else {
        const body = held(op.name);
        if (body === undefined) return this.#count('builtin', unknownStatementError(op.name), 'hoop:unknown-statement', 'EXECUTE of a statement hoop did not see prepared');
        if (depth >= MAX_DEPTH) return this.#builtin(BuiltinRule.JUDGE_FAILED, 'prepared statements nest too deep to judge');
        const inner = this.#judgeHeld(body, depth + 1, onReview);
        // A review of what it executes joins the text's own (every EXECUTE is looked at); a text the policy denies anyway is refused.
        if (inner === REVIEW) {
          if (verdict.action === 'deny') break;
          reviewed = true;
        } else if (inner) return inner;
      }
    }
    return { local, reviewed };
  }

  /** Remembers what an allowed text's PREPAREs and DEALLOCATEs made of the names (a DEALLOCATE once the server confirms it, with `confirmed`). */
  #record(local: ReadonlyMap<string, Held | null>): void {
    const names = this.#names;
    for (const [name, body] of local) {
      if (body !== null) names.statements.set(name, body);
      else if (names.confirmed) this.#forget.push(name);
      else names.statements.delete(name);
    }
  }

  /** Adds a text's row limit to the current message's: the strictest applies; what an EXECUTE runs is counted by statistics. */
  #guard(guard: WriteGuard, body: boolean): void {
    if (body) this.#guardedBody = true;
    const now = this.#guarding;
    if (!now) {
      this.#guarding = guard;
      return;
    }
    const stricter = guard.maxRows < now.maxRows || (guard.maxRows === now.maxRows && guard.overLimit === 'deny') ? guard : now;
    const changed = bothChecks(now.changed, guard.changed);
    this.#guarding = { ...stricter, count: 'stats', statements: [], opensBlock: now.opensBlock, ...(changed ? { changed } : {}) };
  }

  /**
   * Adds a review verdict to the one the current message asks for: one review must satisfy
   * every rule it met ({@link combineReviewDecisions}); a refusal when no one group may approve
   * for all of them.
   */
  #ask(verdict: StatementVerdict): Buffer | typeof REVIEW {
    const asking = this.#asking ? combineReviewDecisions(this.#asking, verdict) : verdict;
    if (asking.action === 'deny') return this.#count('deny', refusalError(asking, explainCommand(this.#connection)), asking.rule ?? '(none)', asking.reason);
    this.#asking = asking;
    return REVIEW;
  }

  /**
   * Whether a verdict lets `sql` run: allow, or a review that was approved (or whose window is
   * open), or one on what runs nothing: a Parse, or a Query's own text (`own`: not a body an
   * EXECUTE runs, nor the statement a Bind runs, which for a name PREPAREd in SQL is its PREPARE
   * text) that only PREPAREs (its EXECUTE is held).
   */
  #passes(verdict: StatementVerdict, sql: string, onReview: OnReview, own: boolean, analysis?: Analysis): boolean {
    if (verdict.action === 'allow') return true;
    if (verdict.action !== 'review') return false;
    if (this.#approvedTexts?.has(sql) || onReview === 'pass' || this.#reviews.windows.has(sql)) return true;
    if (!own) return false;
    const a = analysis ?? (sql !== '' ? analyzeSql(sql) : undefined);
    return a?.ok === true && a.statements.length > 0 && a.statements.every((s) => s.kinds[0] === 'prepare');
  }
}

/**
 * How many arguments a FunctionCall body passes (-1 when the body is malformed: the server refuses it).
 * @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-FUNCTIONCALL
 */
function functionCallArgs(body: Buffer): number {
  const formats = body.readUInt16BE(4);
  const at = 6 + 2 * formats;
  return at + 2 <= body.length ? body.readUInt16BE(at) : -1;
}
