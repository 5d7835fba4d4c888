/**
 * Statement enforcement in the PostgreSQL relay: the gateway reads every frontend message the
 * client sends, judges the SQL it carries, and refuses what the policy does not allow, inside
 * the protocol and exactly as PostgreSQL itself reports an error, so every client library stays
 * in step with the server.
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
 * - FunctionCall ('F') is refused (0A000); everything else passes.
 *
 * How a refusal is said. The gateway never answers on the server's behalf: in place of the
 * refused message it sends the server a Describe of a statement that cannot exist (a
 * per-session random name), which fails with 26000 and no side effect, and replaces that
 * ErrorResponse, when it comes back, with its own 42501. Then:
 * - in the extended protocol every later message up to Sync is dropped and the client's Sync is
 *   forwarded, as PostgreSQL skips to Sync after an error;
 * - a refused Query or FunctionCall is followed by a Sync of the gateway's.
 * The server's ReadyForQuery thus reaches the client with the real transaction status, and:
 * - the error is in order: the responses to the messages of the same pipeline that were
 *   forwarded before the refused one come first, because the server produces them first;
 * - the server's state is what a real error leaves: an implicit transaction (the statements
 *   before the refused one in the same Sync batch) is rolled back, an explicit transaction
 *   block is failed ('E': everything is refused with 25P02 until ROLLBACK, and COMMIT rolls
 *   back), so client and server never disagree about the transaction;
 * - when an earlier message of the batch already failed on the server, the server skips the
 *   Describe as it would have skipped the refused message, and the client sees only the
 *   server's own error, as without hoop.
 * The server's log shows a `prepared statement "hoop_denied_..." does not exist` ERROR for each
 * refusal, which marks where hoop refused a statement.
 *
 * SQL is judged as UTF-8 (the parser's encoding); a message that is not valid UTF-8 is refused,
 * which also closes the multi-byte client encodings (SJIS, GBK, BIG5) whose second bytes can
 * look like ASCII quotes or backslashes to a UTF-8 reader.
 *
 * @see https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-EXT-QUERY
 * @see https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-PIPELINING
 * @see https://www.postgresql.org/docs/current/protocol-message-formats.html
 * @see https://www.postgresql.org/docs/current/sql-prepare.html
 */
import { isUtf8 } from 'node:buffer';
import { createHash, randomBytes } from 'node:crypto';
import { analyzeSql, loadSqlParser, type Analysis } from '../policy/sql/analyze.js';
import { bindParameterSpans, describeMessage, type FrontendMessage } from './wire/frontend-messages.js';
import { errorResponse, noticeResponse, SqlState } from './wire/messages.js';
import { parseErrorFields, type PgMessage } from './wire/reader.js';
import type { GateStage, Refusal } from './stages.js';

export type { Refusal };
import type { AskOutcome } from './answers.js';
import { lexingSafeSetting } from '../policy/sql/lexing.js';
import { shapeProven, sqlShape } from '../policy/sql/shape.js';
import type { PendingReview, ReviewAsk, ReviewOutcome, SessionJudge, StatementVerdict } from '../session/engine.js';
import { changesRows, combineReviewDecisions, opensBlockBefore, unguardable, WRITE_GUARD_RULE, type WriteGuard } from '../policy/decide.js';
import { Backend, Frontend } from './wire/codes.js';
import { formatDuration } from '../text-format.js';

const { QUERY, BIND, FUNCTION_CALL, SYNC } = Frontend;
const { ERROR: ERROR_RESPONSE, PARAMETER_STATUS } = Backend;
/** Longest ParameterStatus body the gate reads; the settings it watches report short values. */
const MAX_PARAMETER_STATUS = 1024;

/** A statement's SQL as remembered: its text, or for a long one (not decoded on the relay's thread) its analysis. */
type Sql = string | Analysis;
/**
 * The SQL a statement or portal name may hold at the server. Usually one; a Parse or PREPARE of
 * a name already held adds to it, since the gateway does not know whether the first one failed
 * (then the server holds the second) or the second will (then it keeps the first). Each is judged.
 */
type Held = readonly Sql[];

/** The names of the gateway's own never-existing statements start with this; clients may not use it. */
export const RESERVED_STATEMENT_PREFIX = 'hoop_denied_';
/** Named statements and portals remembered per session; beyond this a new name is refused. */
const MAX_NAMES = 10_000;
/** SQL texts one name may hold (see {@link Held}) before a new Parse of it is refused. */
const MAX_HELD = 8;
/**
 * PostgreSQL keys prepared statements and portals by their first NAMEDATALEN - 1 bytes: longer
 * names could mean one statement to the server and two to the gateway, so they are refused.
 * @see https://www.postgresql.org/docs/current/sql-syntax-lexical.html#SQL-SYNTAX-IDENTIFIERS
 */
const MAX_NAME_BYTES = 63;
/** Refusals whose ErrorResponse may still come back; older ones are forgotten (their batch failed earlier). */
const MAX_PENDING = 256;
/** The largest server ErrorResponse held back to see whether it answers one of the gateway's Describes. */
const MAX_HELD_ERROR = 64 * 1024;
/** How deep `EXECUTE a` whose body is again an EXECUTE is followed. */
const MAX_DEPTH = 4;
const NOTHING: readonly FrontendMessage[] = [];
const SYNC_RAW = Buffer.from([SYNC, 0, 0, 0, 4]);
const SYNC_MESSAGE: FrontendMessage = { kind: 'sync', msg: { type: SYNC, body: SYNC_RAW.subarray(5), raw: SYNC_RAW } };
const PREPARED_WORDS = /prepare|execute|deallocate|discard/i;
/** SQL that may run a portal by name (a protocol portal shares the namespace of cursors). */
const FETCH_WORDS = /fetch|move/i;
/** A judgement that holds the message for a reviewer's decision (see {@link StatementGate}). */
const REVIEW = Symbol('review');
/** What a review verdict does: hold the message for a reviewer, let it pass (a Parse runs nothing), or refuse it. */
type OnReview = 'hold' | 'pass' | 'refuse';
/** Most of a Bind's parameters a reviewer is shown, all of them together (as text; binary as hex): more is not held, but refused. */
const REVIEW_PARAMS_MAX = 64 * 1024;
/** Statement shapes an approval's window lets run without a review, per session. */
const MAX_WINDOWS = 100;
/** SQL texts a held message's review lists (its own, what it EXECUTEs, what a name may hold). */
const MAX_SEEN = 64;

/** The built-in rule names of refusals that do not come from the policy. */
export const BuiltinRule = {
  FUNCTION_CALL: 'function-call',
  NOT_UTF8: 'not-utf8',
  RESERVED_NAME: 'reserved-name',
  NAME_TOO_LONG: 'name-too-long',
  TOO_MANY_NAMES: 'too-many-names',
  JUDGE_FAILED: 'judge-failed',
  TOO_LONG: 'too-long',
  LEXING_PENDING: 'lexing-pending',
  PORTAL_FETCH: 'portal-fetch',
} as const;

/**
 * Loads the SQL parser the gate judges with (once per process; later calls return at once).
 *
 * @see https://github.com/constructive-io/libpg-query-node
 */
export async function loadStatementGate(): Promise<void> {
  await loadSqlParser();
}

/**
 * A prepared-statement operation found in SQL text, in statement order: `prepare` (its name and
 * the whole PREPARE statement's text, which the judge sees with the body), `execute` (anywhere
 * in a statement: EXPLAIN ANALYZE EXECUTE, CREATE TABLE AS EXECUTE) or `deallocate` (a name, or
 * all named statements for DEALLOCATE ALL and DISCARD ALL).
 *
 * @see https://www.postgresql.org/docs/current/sql-prepare.html
 * @see https://www.postgresql.org/docs/current/sql-execute.html
 * @see https://www.postgresql.org/docs/current/sql-deallocate.html
 */
export type PreparedOp = { op: 'prepare'; name: string; text: string } | { op: 'execute'; name: string } | { op: 'deallocate'; name?: string };

/**
 * The prepared-statement operations in `sql`, read off its analysis (names folded as PostgreSQL
 * folds them), or undefined when `sql` does not parse. SQL without the words PREPARE, EXECUTE,
 * DEALLOCATE or DISCARD has none and is not looked at. Needs {@link loadStatementGate} first.
 *
 * @see https://www.postgresql.org/docs/current/sql-prepare.html
 */
export function preparedOps(sql: string, analysis?: Analysis): PreparedOp[] | undefined {
  if (!analysis && !PREPARED_WORDS.test(sql)) return [];
  const a = analysis ?? analyzeSql(sql);
  if (!a.ok) return undefined;
  const ops: PreparedOp[] = [];
  for (const s of a.statements) {
    if (s.kinds[0] === 'prepare' && s.preparedName !== undefined) ops.push({ op: 'prepare', name: s.preparedName, text: s.text });
    else if (s.preparedName !== undefined) ops.push(s.preparedName === '*' ? { op: 'deallocate' } : { op: 'deallocate', name: s.preparedName });
    else for (const name of s.executes) ops.push({ op: 'execute', name });
  }
  return ops;
}

const rank = { allow: 0, review: 1, deny: 2 } as const;

/** The more restrictive of two verdicts (deny > review > allow); the first on a tie. */
export function stricter(a: StatementVerdict, b: StatementVerdict): StatementVerdict {
  return rank[b.action] > rank[a.action] ? b : a;
}

/**
 * The ErrorResponse that tells the client a statement was refused: SQLSTATE 42501 with
 * `hoop: denied by rule "<rule>": <message>` or `hoop: approval required (rule "<rule>"):
 * <message>`, the judge's reason as the detail, and a hint.
 *
 * @see https://www.postgresql.org/docs/current/protocol-error-fields.html
 * @see https://www.postgresql.org/docs/current/errcodes-appendix.html
 */
export function refusalError(v: StatementVerdict): Buffer {
  const said = v.message ?? v.reason;
  const detail = v.message !== undefined && v.reason && v.reason !== v.message ? v.reason : undefined;
  if (v.action === 'review') {
    return errorResponse({
      severity: 'ERROR',
      code: SqlState.INSUFFICIENT_PRIVILEGE,
      message: v.rule !== undefined ? `hoop: approval required (rule "${v.rule}"): ${said}` : `hoop: approval required: ${said}`,
      ...(detail ? { detail } : {}),
      hint: v.review
        ? 'it could not be held for review here (a Bind of more than 1 MiB, or no reviewer service): send it as a smaller statement, or ask someone whose access allows it'
        : "the policy names no reviewers for this rule (statements.reviewers, or the rule's review.groups), so nobody can approve it: ask the owners of the policy",
    });
  }
  return errorResponse({
    severity: 'ERROR',
    code: SqlState.INSUFFICIENT_PRIVILEGE,
    message: v.rule !== undefined ? `hoop: denied by rule "${v.rule}": ${said}` : `hoop: denied: ${said}`,
    ...(detail ? { detail } : {}),
    hint: 'the gateway policy refuses this statement; `hoop policy check "SQL"` explains why; the session is still usable',
  });
}

/**
 * The NoticeResponse that tells the client at once that its statement is held (psql prints it
 * while it waits): the review's id, the rule, who may approve, how long it waits, and the
 * command a reviewer runs.
 *
 * @see https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-ASYNC
 */
export function reviewNotice(id: string, ask: ReviewAsk): Buffer {
  const s = ask.settings;
  const groups = s.groups.map((g) => `"${g}"`).join(', ');
  return noticeResponse({
    severity: 'NOTICE',
    code: '01000',
    message: `hoop: statement held for review ${id}${ask.rule !== undefined ? ` (rule "${ask.rule}")` : ''}: ${ask.message ?? ask.reason}`,
    detail: `${s.approvals === 1 ? 'one approval' : `${s.approvals} approvals`} from the group${s.groups.length > 1 ? 's' : ''} ${groups}${s.selfApprove ? '' : ' (not yours)'} within ${formatDuration(s.timeoutMs)}; the statement waits here and runs as sent once approved`,
    hint: `a reviewer runs: hoop review approve ${id}   (or: hoop review deny ${id} --reason "…"); cancelling the query withdraws it`,
  });
}

/**
 * The ErrorResponse for a held statement whose review did not approve it: denied (42501, `hoop:
 * denied by reviewer …` with their reason), not decided in time (42501, `hoop: approval
 * required …`), or withdrawn by the client's CancelRequest (57014, as PostgreSQL cancels).
 *
 * @see https://www.postgresql.org/docs/current/errcodes-appendix.html
 */
export function reviewOutcomeError(v: StatementVerdict, id: string, o: Exclude<ReviewOutcome, { state: 'approved' }>): Buffer {
  const rule = v.rule !== undefined ? `rule "${v.rule}"` : 'the policy';
  switch (o.state) {
    case 'denied':
      return errorResponse({
        severity: 'ERROR',
        code: SqlState.INSUFFICIENT_PRIVILEGE,
        message: `hoop: denied by reviewer ${o.by} (review ${id})${o.reason ? `: ${o.reason}` : ''}`,
        detail: `${rule} held the statement for review: ${v.message ?? v.reason}`,
        hint: 'the statement did not run; the session is still usable',
      });
    case 'expired':
      return errorResponse({
        severity: 'ERROR',
        code: SqlState.INSUFFICIENT_PRIVILEGE,
        message: o.because
          ? `hoop: approval required (${rule}): review ${id} could not wait (${o.because}), so the statement did not run`
          : `hoop: approval required (${rule}): review ${id} was not decided within ${formatDuration(o.afterMs)}, so the statement did not run`,
        detail: v.message ?? v.reason,
        hint: 'send it again when a reviewer is at hand (`hoop review ls` shows them what waits); the session is still usable',
      });
    case 'withdrawn':
      return errorResponse({
        severity: 'ERROR',
        code: SqlState.QUERY_CANCELED,
        message: 'canceling statement due to user request',
        detail: `hoop withdrew review ${id}; the statement did not run`,
      });
  }
}

const functionCallError = errorResponse({
  severity: 'ERROR',
  code: SqlState.FEATURE_NOT_SUPPORTED,
  message: 'hoop: the fast-path function call interface is not supported through hoop',
  hint: 'call the function with SELECT instead, so the policy can judge it',
});

function unknownStatementError(name: string): Buffer {
  return errorResponse({
    severity: 'ERROR',
    code: '26000',
    message: name === '' ? 'unnamed prepared statement does not exist' : `prepared statement "${name}" does not exist`,
    detail: 'hoop did not see this statement prepared (or refused it) in this session, so it does not let it run',
  });
}

/** What a reviewer is shown of a remembered statement. */
function heldText(held: Held): string | undefined {
  const text = held.find((s): s is string => typeof s === 'string');
  return text;
}

/**
 * A Bind's parameters as a reviewer sees them, whole: text, binary as `\x…` hex; or, when together
 * they are longer than {@link REVIEW_PARAMS_MAX} shown, why they cannot be shown (never a cut
 * value a reviewer would approve without seeing the rest).
 */
function reviewParams(body: Buffer): { params: Array<string | null> } | { unshowable: string } | undefined {
  const spans = bindParameterSpans(body);
  if (!spans) return undefined;
  // Binary values, and text that is not UTF-8 (which a decoder would turn into U+FFFD, so that different bytes read alike), as hex.
  const hex = (p: { start: number; end: number; format: number }): boolean => p.format === 1 || !isUtf8(body.subarray(p.start, p.end));
  let shown = 0;
  for (const p of spans) if (p !== null) shown += (p.end - p.start) * (hex(p) ? 2 : 1) + 2;
  if (shown > REVIEW_PARAMS_MAX) return { unshowable: `its parameters are longer than ${REVIEW_PARAMS_MAX / 1024} KiB` };
  return { params: spans.map((p) => (p === null ? null : hex(p) ? `\\x${body.toString('hex', p.start, p.end)}` : body.toString('utf8', p.start, p.end))) };
}

/**
 * The setting named by a ParameterStatus body (`name\0value\0`) when its value undoes what the
 * gateway's checks rely on (see {@link unsafeSettingValue}). Undefined for anything else.
 *
 * @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-PARAMETERSTATUS
 */
export function unsafeParameter(body: Buffer, readOnly = false): string | undefined {
  const end = body.indexOf(0);
  if (end < 0) return undefined;
  const name = body.toString('latin1', 0, end).toLowerCase();
  const valueEnd = body.indexOf(0, end + 1);
  const value = body.toString('latin1', end + 1, valueEnd < 0 ? body.length : valueEnd);
  return unsafeSettingValue(name, value, readOnly) ? name : undefined;
}

/**
 * True when the server reporting `name = value` undoes what the gateway's checks rely on: a
 * setting under which SQL would lex differently at the gateway and at the server
 * (`standard_conforming_strings` off, a client encoding whose characters can hold a backslash
 * byte: see {@link lexingSafeSetting}), or, for read-only access, `default_transaction_read_only`
 * off (reported by PostgreSQL 14 and later).
 *
 * @see https://www.postgresql.org/docs/current/runtime-config-compatible.html#GUC-STANDARD-CONFORMING-STRINGS
 * @see https://www.postgresql.org/docs/current/runtime-config-client.html#GUC-DEFAULT-TRANSACTION-READ-ONLY
 */
export function unsafeSettingValue(name: string, value: string, readOnly = false): boolean {
  if (readOnly && name.toLowerCase() === 'default_transaction_read_only' && value.trim().toLowerCase() !== 'on') return true;
  return !lexingSafeSetting(name, value);
}

/**
 * The per-session enforcement state machine: judges the client's messages
 * ({@link StatementGate.frontend}) and turns the server's answer to a refused message into the
 * gateway's error ({@link StatementGate.backend}). See the module documentation for the design.
 *
 * @see https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-EXT-QUERY
 */
export class StatementGate implements GateStage {
  readonly #judge: SessionJudge;
  /** Prepared statements (protocol and SQL level, '' for the unnamed one) -> the SQL to judge again (a long one's analysis). */
  get #statements(): Map<string, Held> {
    return (this.#statementsMade ??= new Map());
  }
  #statementsMade: Map<string, Held> | undefined;
  /** Portals -> the SQL of their statement. */
  get #portals(): Map<string, Held> {
    return (this.#portalsMade ??= new Map());
  }
  #portalsMade: Map<string, Held> | undefined;
  /** Names of the gateway's pending Describes -> the ErrorResponse that replaces the server's. */
  get #pending(): Map<string, Buffer> {
    return (this.#pendingMade ??= new Map());
  }
  #pendingMade: Map<string, Buffer> | undefined;
  readonly #prefix = `${RESERVED_STATEMENT_PREFIX}${randomBytes(6).toString('hex')}_`;
  #seq = 0;
  #discarding = false;
  /** The type of the frontend message being judged. */
  #current = 0;
  #unsafeSetting: string | undefined;
  /** Refusals so far, by action, for the session log. */
  readonly refusals = { deny: 0, review: 0, builtin: 0 };
  readonly #onRefusal: ((refusal: Refusal) => void) | undefined;
  readonly #onUnsafeSetting: ((setting: string) => void) | undefined;
  readonly #readOnly: boolean;
  readonly #review: ((ask: ReviewAsk) => PendingReview) | undefined;
  /** The review the session's next message waits for. */
  #held: PendingReview | undefined;
  /**
   * The server's answers reach the gate ({@link takeAnswerHook}): a prepared name changes only as
   * the server confirms (a Parse it skipped never replaces the unnamed statement here, a Close or
   * DEALLOCATE it skipped never forgets one), and a Bind in the same batch as its Parse judges
   * that Parse's text. Without (`hoop connect`'s early checks), names change as messages pass.
   */
  readonly #confirmed: boolean;
  /** Sync and Query messages so far: a batch is what lies between two. */
  #batch = 0;
  /** Name changes so far (a later one makes an earlier one's answer moot). */
  #changes = 0;
  /** Parses sent whose answer has not come: name -> the text, its batch, the change number, what the name held before. */
  get #tentative(): Map<string, { text: Sql; batch: number; change: number; before: Held | undefined }> {
    return (this.#tentativeMade ??= new Map());
  }
  #tentativeMade: Map<string, { text: Sql; batch: number; change: number; before: Held | undefined }> | undefined;
  /** The last change of each name with an answer pending. */
  get #lastChange(): Map<string, number> {
    return (this.#lastChangeMade ??= new Map());
  }
  #lastChangeMade: Map<string, number> | undefined;
  /** Binds sent whose answer has not come: portal -> what it was bound to, its batch, the change number, what it held before. */
  get #tentativePortals(): Map<string, { sql: Held; batch: number; change: number; before: Held | undefined }> {
    return (this.#tentativePortalsMade ??= new Map());
  }
  #tentativePortalsMade: Map<string, { sql: Held; batch: number; change: number; before: Held | undefined }> | undefined;
  /** What must hear the server's answer to the message just passed. */
  #hook: ((outcome: AskOutcome) => void) | undefined;
  /** Names the message being judged DEALLOCATEs (forgotten once the server confirms). */
  readonly #forget: string[] = [];
  /** While an approved message is judged again: the texts the reviewer saw; review verdicts on them pass (on others, not). */
  #approvedTexts: ReadonlySet<string> | undefined;
  /** The review verdict met while judging the current message. */
  #asking: StatementVerdict | undefined;
  /** The SQL texts judged for the current message (its own, those it EXECUTEs, those a Bind's statement may hold). */
  readonly #seen: string[] = [];
  /** The current message judged a text no reviewer could be shown: one too long to decode here, or more texts than {@link MAX_SEEN}. */
  #unshowable: string | undefined;
  /** Portals an approved Bind made -> the texts approved: their Executes pass on those (an EXECUTE whose name now holds another text is held again). */
  get #approvedPortals(): Map<string, ReadonlySet<string>> {
    return (this.#approvedPortalsMade ??= new Map());
  }
  #approvedPortalsMade: Map<string, ReadonlySet<string>> | undefined;
  /** Statement shapes an approval's window lets run -> until when (ms since the epoch). */
  get #windows(): Map<string, number> {
    return (this.#windowsMade ??= new Map());
  }
  #windowsMade: Map<string, number> | undefined;
  /** The row limit on what the current message writes (the strictest of its texts'), if any. */
  #guarding: WriteGuard | undefined;
  /** The current message's guard came from what an EXECUTE runs (its tag may not count it). */
  #guardedBody = false;
  /** The current message's SQL, for a reviewer of a write over its limit. */
  #guardSql = '';

  /**
   * `readOnly`: the session's access is read-only (the server turning it off ends the session).
   * `review`: raises the review of a message a `review` verdict holds; without it such messages are refused.
   */
  constructor(
    judge: SessionJudge,
    options: { onRefusal?: (refusal: Refusal) => void; onUnsafeSetting?: (setting: string) => void; readOnly?: boolean; review?: (ask: ReviewAsk) => PendingReview; confirmed?: boolean } = {},
  ) {
    this.#confirmed = options.confirmed === true;
    this.#judge = judge;
    this.#onRefusal = options.onRefusal;
    this.#onUnsafeSetting = options.onUnsafeSetting;
    this.#readOnly = options.readOnly === true;
    this.#review = options.review;
  }

  /**
   * The row limit on what the message just passed writes (a Query, a Bind, an Execute), if any;
   * handed out once. An approved review lifts it: the reviewer saw what runs.
   */
  takeGuard(): { guard: WriteGuard; sql: string } | undefined {
    const guard = this.#guarding;
    this.#guarding = undefined;
    return guard && { guard, sql: this.#guardSql };
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
    if (query) return [this.#refuse(error), SYNC_MESSAGE];
    this.#discarding = true;
    return [this.#refuse(error)];
  }

  /**
   * Raises a review for the write guard (a write over its row limit), held like a statement's:
   * a CancelRequest or the session's end withdraws it.
   */
  raise(ask: ReviewAsk): PendingReview | undefined {
    if (!this.#review) return undefined;
    const pending = this.#review(ask);
    this.#held = pending;
    void pending.decided.then(() => {
      if (this.#held === pending) this.#held = undefined;
    });
    return pending;
  }

  /** Whether reviews can be raised (the session has a reviewer service). */
  get reviews(): boolean {
    return this.#review !== undefined;
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

  /** What must hear the server's answer to the message just passed (see {@link #confirmed}); handed out once. */
  takeAnswerHook(): ((outcome: AskOutcome) => void) | undefined {
    const hook = this.#hook;
    this.#hook = undefined;
    return hook;
  }

  /**
   * A Parse of `name` passed: until the server answers, the name may hold `text` or what it held
   * before; then what the server says it holds (see {@link #confirmed}).
   */
  #prepared(name: string, text: Sql): void {
    if (!this.#confirmed) {
      this.#statements.set(name, this.#hold(name, text));
      return;
    }
    const before = this.#statements.get(name);
    const change = ++this.#changes;
    this.#lastChange.set(name, change);
    this.#tentative.set(name, { text, batch: this.#batch, change, before });
    this.#statements.set(name, before === undefined ? [text] : before.includes(text) ? before : [...before, text]);
    this.#hook = (outcome) => {
      if (this.#lastChange.get(name) !== change) return; // a later change of the name decides
      this.#lastChange.delete(name);
      this.#tentative.delete(name);
      if (outcome === 'ok') this.#statements.set(name, [text]);
      // PostgreSQL drops the unnamed statement before it parses a new one, even one that fails.
      else if (outcome === 'failed' && name === '') this.#statements.delete('');
      else if (before === undefined) this.#statements.delete(name);
      else this.#statements.set(name, before);
    };
  }

  /** What statement `name` holds for a Bind: its Parse's text when that Parse is in the Bind's batch (the Bind runs only if it did), else all it may hold. */
  #heldBy(name: string): Held | undefined {
    const t = this.#tentative.get(name);
    if (t && t.batch === this.#batch && this.#lastChange.get(name) === t.change) return [t.text];
    return this.#statements.get(name);
  }

  /**
   * A Bind of `portal` passed: until the server answers, the portal may hold `sql` or what it
   * held before (a Bind that fails leaves the old portal, which a later savepoint rollback can
   * bring back); then what the server says it holds (see {@link #confirmed}).
   */
  #bound(portal: string, sql: Held): void {
    if (!this.#confirmed) {
      this.#portals.set(portal, sql);
      return;
    }
    const before = this.#portals.get(portal);
    const change = ++this.#changes;
    this.#tentativePortals.set(portal, { sql, batch: this.#batch, change, before });
    this.#portals.set(portal, before ? [...new Set([...before, ...sql])] : sql);
    this.#hook = (outcome) => {
      if (this.#tentativePortals.get(portal)?.change !== change) return; // a later Bind of it decides
      this.#tentativePortals.delete(portal);
      if (outcome === 'ok') this.#portals.set(portal, sql);
      else if (before) this.#portals.set(portal, before);
      else this.#portals.delete(portal);
    };
  }

  /** What portal `name` holds for an Execute: its Bind's statement when that Bind is in the Execute's batch (it runs only if the Bind did), else all it may hold. */
  #portalHeld(name: string): Held | undefined {
    const t = this.#tentativePortals.get(name);
    if (t && t.batch === this.#batch) return t.sql;
    return this.#portals.get(name);
  }

  /** Forgets `names` (a Close, a DEALLOCATE) once the server confirms it did (see {@link #confirmed}). */
  #forgetWhenDone(names: readonly string[]): void {
    const changes = names.map((n) => {
      const change = ++this.#changes;
      this.#lastChange.set(n, change);
      return [n, change] as const;
    });
    this.#hook = (outcome) => {
      for (const [n, change] of changes) {
        if (this.#lastChange.get(n) !== change) continue;
        this.#lastChange.delete(n);
        this.#tentative.delete(n);
        if (outcome === 'ok') this.#statements.delete(n);
      }
    };
  }

  /**
   * Withdraws the review the session waits for, if any (the client's CancelRequest, or the
   * session ends): the held message is then refused, or dropped with the session. True when one was.
   */
  withdraw(why: 'cancel' | 'session-ended'): boolean {
    const held = this.#held;
    if (!held) return false;
    held.withdraw(why);
    return true;
  }

  /**
   * The first setting the server reported (ParameterStatus) with a value under which its lexer
   * and the gateway's parser could read SQL differently (see {@link unsafeParameter}); the session
   * must end.
   */
  get unsafeSetting(): string | undefined {
    return this.#unsafeSetting;
  }

  /** True while messages are dropped until the client's Sync, after a refusal in the extended protocol. */
  get discarding(): boolean {
    return this.#discarding;
  }

  /** Refusals whose ErrorResponse has not come back from the server yet. */
  get pendingRefusals(): number {
    return this.#pending.size;
  }

  /**
   * What to send upstream for one complete frontend message: `m` itself when it passes
   * (callers may compare by identity), else the replacement (possibly nothing); a Promise of
   * either while the message is held for a review. `analysis` is the analysis of a Query's or
   * Parse's SQL when the caller made it (a long text). `canHold` false: a review verdict refuses
   * (a Bind streamed past the gate cannot be held).
   *
   * Held for review: a Query (whole), a Bind (with its parameters: the first message that runs a
   * statement) and an Execute of a portal no approved Bind made. A Parse a review rule matches
   * passes, as it runs nothing. On approval the message is judged again with its review verdicts
   * passing (a deny still refuses) and sent as the client sent it; a Bind's portal then runs.
   */
  frontend(m: FrontendMessage, analysis?: Analysis, canHold = true): FrontendMessage | readonly FrontendMessage[] | Promise<FrontendMessage | readonly FrontendMessage[]> {
    const onReview: OnReview = canHold ? 'hold' : 'refuse';
    if (this.#discarding) {
      if (m.kind === 'sync') {
        this.#discarding = false;
        return m;
      }
      return m.kind === 'terminate' ? m : NOTHING;
    }
    this.#current = m.msg?.type ?? BIND;
    this.#hook = undefined;
    this.#forget.length = 0;
    if (m.kind === 'sync' || m.kind === 'query') this.#batch++;
    this.#asking = undefined;
    this.#seen.length = 0;
    this.#unshowable = undefined;
    this.#guarding = undefined;
    this.#guardedBody = false;
    switch (m.kind) {
      case 'query': {
        this.#guardSql = m.sql;
        let refusal = m.utf8 ? this.#judgeString(m.sql, true, 0, analysis, onReview) : this.#builtin(BuiltinRule.NOT_UTF8);
        if (refusal === REVIEW) return this.#holdForReview(m, analysis, m.long ? undefined : m.sql);
        if (!refusal && this.#guardedBody) refusal = this.#checkGuardedQuery(m.sql, analysis);
        if (refusal) return [this.#refuse(refusal), SYNC_MESSAGE];
        if (this.#forget.length > 0) this.#forgetWhenDone([...this.#forget]);
        return m;
      }
      case 'parse': {
        const refusal = !m.utf8 ? this.#builtin(BuiltinRule.NOT_UTF8) : (this.#checkNewName(m.name, this.#statements) ?? (this.#judgeString(m.sql, true, 0, analysis, 'pass') as Buffer | undefined));
        if (refusal) {
          // PostgreSQL drops the unnamed statement before it parses a new one, even one that fails.
          if (m.name === '') this.#statements.delete('');
          this.#discarding = true;
          return [this.#refuse(refusal)];
        }
        this.#prepared(m.name, m.long && analysis ? analysis : m.sql);
        return m;
      }
      case 'bind': {
        const sql = m.utf8 ? this.#heldBy(m.statement) : undefined;
        let refusal: Buffer | typeof REVIEW | undefined;
        if (!m.utf8) refusal = this.#builtin(BuiltinRule.NOT_UTF8);
        else if (Buffer.byteLength(m.portal) > MAX_NAME_BYTES) refusal = this.#builtin(BuiltinRule.NAME_TOO_LONG);
        else if (sql === undefined) refusal = this.#count('builtin', unknownStatementError(m.statement), 'hoop:unknown-statement', 'Bind of a statement hoop did not see prepared');
        else refusal = this.#judgeHeld(sql, 0, onReview);
        this.#guardSql = (sql && heldText(sql)) ?? '';
        if (refusal === REVIEW) {
          // A Bind too large to be held whole here (streamed) has parameters no reviewer could read.
          const shown = m.msg ? reviewParams(m.msg.body) : { unshowable: `its parameters are longer than ${REVIEW_PARAMS_MAX / 1024} KiB` };
          if (shown && 'unshowable' in shown) this.#unshowable ??= shown.unshowable;
          return this.#holdForReview(m, undefined, heldText(sql!), shown && 'params' in shown ? shown.params : undefined);
        }
        if (refusal) {
          this.#discarding = true;
          return [this.#refuse(refusal)];
        }
        // Portals end with their transaction, unseen here; one the gateway forgot could run unjudged, so past the cap a new name is refused.
        if (m.portal !== '' && this.#portals.size >= MAX_NAMES && !this.#portals.has(m.portal)) {
          this.#discarding = true;
          return [this.#refuse(this.#builtin(BuiltinRule.TOO_MANY_NAMES, `a session may hold at most ${MAX_NAMES} named portals through hoop; close portals it no longer uses`))];
        }
        this.#bound(m.portal, sql!);
        if (this.#approvedTexts) this.#approvedPortals.set(m.portal, this.#approvedTexts);
        else this.#approvedPortals.delete(m.portal);
        return m;
      }
      case 'execute': {
        const sql = m.utf8 ? this.#portalHeld(m.portal) : undefined;
        // A portal hoop did not bind is a SQL cursor (its query was judged at DECLARE) or does not exist.
        const approved = this.#approvedPortals.get(m.portal);
        const outer = this.#approvedTexts;
        if (approved) this.#approvedTexts = outer ? new Set([...outer, ...approved]) : approved;
        let refusal: Buffer | typeof REVIEW | undefined;
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
        if (refusal) {
          this.#discarding = true;
          return [this.#refuse(refusal)];
        }
        this.#guardSql = (sql && heldText(sql)) ?? '';
        return m;
      }
      case 'close':
        if (m.target === 'S') {
          if (this.#confirmed) this.#forgetWhenDone([m.name]);
          else this.#statements.delete(m.name);
        } else if (!this.#confirmed) {
          this.#portals.delete(m.name);
          this.#approvedPortals.delete(m.name);
        } else {
          // Forgotten once the server confirms it closed it (a Close it skipped leaves the portal).
          const name = m.name;
          this.#hook = (outcome) => {
            if (outcome !== 'ok' || this.#tentativePortals.has(name)) return;
            this.#portals.delete(name);
            this.#approvedPortals.delete(name);
          };
        }
        return m;
      case 'function-call':
        return this.refuseUnread(FUNCTION_CALL, 0);
      default:
        return m;
    }
  }

  /**
   * What to send instead of a message refused before it was read whole: a FunctionCall, or a
   * Query or Parse whose text is longer than the gateway reads (the rest of it is dropped).
   */
  refuseUnread(type: number, length: number, limit = 0): readonly FrontendMessage[] {
    if (this.#discarding) return NOTHING;
    this.#current = type;
    if (type === FUNCTION_CALL) return [this.#refuse(this.#count('builtin', functionCallError, `hoop:${BuiltinRule.FUNCTION_CALL}`, 'FunctionCall is not supported')), SYNC_MESSAGE];
    const size = (n: number): string => (n >= 1024 * 1024 ? `${(n / (1024 * 1024)).toFixed(1).replace(/\.0$/, '')} MiB` : `${n} bytes`);
    const refusal = this.#builtin(
      BuiltinRule.TOO_LONG,
      `the statement is ${size(length - 4)} long; the gateway judges statements of at most ${size(limit)} (postgres.maxStatementBytes in its configuration)`,
    );
    if (type === QUERY) return [this.#refuse(refusal), SYNC_MESSAGE];
    this.#discarding = true;
    return [this.#refuse(refusal)];
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
    if (m.kind === 'query') return [this.#refuse(refusal), SYNC_MESSAGE];
    this.#discarding = true;
    return [this.#refuse(refusal)];
  }

  /**
   * The server message to hand on for `msg`: an ErrorResponse that answers one of the gateway's
   * Describes (26000, naming it) becomes the refusal; a ParameterStatus is checked for a setting
   * under which SQL would read differently. Everything else passes.
   *
   * @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-ERRORRESPONSE
   */
  backend(msg: PgMessage): PgMessage {
    if (msg.type === PARAMETER_STATUS) {
      if (msg.body.length <= MAX_PARAMETER_STATUS) this.#checkParameter(msg.body);
      return msg;
    }
    if (msg.type !== ERROR_RESPONSE || this.#pending.size === 0 || msg.raw.length > MAX_HELD_ERROR) return msg;
    let fields;
    try {
      fields = parseErrorFields(msg.body);
    } catch {
      return msg;
    }
    if (fields.code !== '26000') return msg;
    for (const [name, refusal] of this.#pending) {
      if (fields.message.includes(name)) {
        this.#pending.delete(name);
        return { type: refusal[0]!, body: refusal.subarray(5), raw: refusal };
      }
    }
    return msg;
  }

  /** Checks a ParameterStatus body; reports the first unsafe setting once. */
  #checkParameter(body: Buffer): void {
    const setting = unsafeParameter(body, this.#readOnly);
    if (setting === undefined || this.#unsafeSetting !== undefined) return;
    this.#unsafeSetting = setting;
    this.#onUnsafeSetting?.(setting);
  }

  /** Registers `error` as the answer to a new Describe and returns that Describe. */
  #refuse(error: Buffer): FrontendMessage {
    const name = `${this.#prefix}${this.#seq++}`;
    this.#pending.set(name, error);
    if (this.#pending.size > MAX_PENDING) this.#pending.delete(this.#pending.keys().next().value!);
    return describeMessage('S', name);
  }

  #count(kind: 'deny' | 'review' | 'builtin', error: Buffer, rule: string, reason: string): Buffer {
    this.refusals[kind]++;
    this.#onRefusal?.({ action: kind === 'review' ? 'review' : 'deny', rule, reason, message: String.fromCharCode(this.#current) });
    return error;
  }

  #builtin(rule: (typeof BuiltinRule)[keyof typeof BuiltinRule], message?: string): Buffer {
    const said = {
      [BuiltinRule.FUNCTION_CALL]: 'the fast-path function call interface is not supported',
      [BuiltinRule.NOT_UTF8]: 'the statement is not valid UTF-8; hoop judges SQL as UTF-8 (set client_encoding to UTF8)',
      [BuiltinRule.RESERVED_NAME]: `statement names starting with "${RESERVED_STATEMENT_PREFIX}" are reserved by hoop`,
      [BuiltinRule.NAME_TOO_LONG]: `statement and portal names are limited to ${MAX_NAME_BYTES} bytes (PostgreSQL reads only that many)`,
      [BuiltinRule.TOO_MANY_NAMES]: `a session may hold at most ${MAX_NAMES} named statements and portals through hoop`,
      [BuiltinRule.JUDGE_FAILED]: 'the gateway could not judge the statement',
      [BuiltinRule.TOO_LONG]: 'the statement is longer than the gateway judges',
      [BuiltinRule.PORTAL_FETCH]: 'FETCH and MOVE of a portal bound with the extended protocol are not supported through hoop (it would run what was judged at its Execute); run it with Execute',
      [BuiltinRule.LEXING_PENDING]: 'the statement has a backslash and follows, in the same pipeline, statements that may still change standard_conforming_strings; send it after their Sync',
    }[rule];
    return this.#count('builtin', refusalError({ action: 'deny', rule: `hoop:${rule}`, message: message ?? said, reason: message ?? said }), `hoop:${rule}`, message ?? said);
  }

  /**
   * Holds `m` for the review its judgement asked for ({@link #asking}): raises it, and settles
   * with what to send once it is decided (see {@link frontend}). `sql`: the statement's text for
   * the reviewer (undefined for a text too long to decode here), `params` a Bind's.
   */
  #holdForReview(m: FrontendMessage, analysis: Analysis | undefined, sql: string | undefined, params?: Array<string | null>): Promise<FrontendMessage | readonly FrontendMessage[]> {
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
      if (m.kind === 'query') return Promise.resolve([this.#refuse(refusal), SYNC_MESSAGE]);
      this.#discarding = true;
      return Promise.resolve([this.#refuse(refusal)]);
    }
    const seen = new Set(this.#seen);
    // The reviewer sees every text that may run: the statements an EXECUTE runs, each text a prepared name may hold.
    const others = this.#seen.filter((t) => t !== sql);
    const digest = createHash('sha256').update(m.msg?.raw ?? Buffer.alloc(0));
    for (const t of this.#seen) digest.update('\0').update(t);
    const pending = this.#review!({
      sql: others.length > 0 ? `${sql}\n-- which runs, or may run:\n${others.join('\n-- or:\n')}` : sql,
      digest: digest.digest('hex'),
      ...(params ? { params } : {}),
      ...(verdict.rule !== undefined ? { rule: verdict.rule } : {}),
      ...(verdict.message !== undefined ? { message: verdict.message } : {}),
      reason: verdict.reason,
      settings: verdict.review!,
    });
    this.#held = pending;
    return pending.decided.then((outcome) => {
      this.#held = undefined;
      if (outcome.state === 'approved') {
        if (outcome.windowMs > 0) this.#openWindow(sql, outcome.windowMs);
        // Judged again: what the reviewer saw passes; anything new it would now run is held again.
        this.#approvedTexts = seen;
        try {
          return this.frontend(m, analysis);
        } finally {
          this.#approvedTexts = undefined;
        }
      }
      this.#current = type;
      const refusal = this.#count('review', reviewOutcomeError(verdict, pending.id, outcome), verdict.rule ?? '(none)', `review ${pending.id}: ${outcome.state}`);
      if (m.kind === 'query') return [this.#refuse(refusal), SYNC_MESSAGE];
      this.#discarding = true;
      return [this.#refuse(refusal)];
    });
  }

  /**
   * Lets statements of `sql`'s shape (its numbers aside) run without a review for `ms`: the shape
   * only when the parse tree shows every digit run of `sql` is a numeric constant (so `t1` and
   * `t2` are never one shape), else the exact text.
   */
  #openWindow(sql: string, ms: number): void {
    const shape = sqlShape(sql);
    const key = shape && shapeProven(shape.runs, analyzeSql(sql), shape.signs) ? shape.key : sql;
    this.#windows.delete(key);
    this.#windows.set(key, Date.now() + ms);
    if (this.#windows.size > MAX_WINDOWS) this.#windows.delete(this.#windows.keys().next().value!);
  }

  /** Whether an approval's window lets `sql` run now. */
  #inWindow(sql: string): boolean {
    if (this.#windows.size === 0) return false;
    const now = Date.now();
    const exact = this.#windows.get(sql);
    if (exact !== undefined && exact > now) return true;
    const until = this.#windows.get(sqlShape(sql)?.key ?? sql);
    return until !== undefined && until > now;
  }

  /** The refusal for what a remembered name may hold (judged again: a test judge may change its mind). */
  #judgeHeld(held: Held, depth = 0, onReview: OnReview = 'refuse'): Buffer | typeof REVIEW | undefined {
    let reviewed = false;
    for (const sql of held) {
      const refusal = typeof sql === 'string' ? this.#judgeString(sql, false, depth, undefined, onReview) : this.#judgeString('', false, depth, sql, onReview);
      if (refusal === REVIEW) reviewed = true;
      else if (refusal) return refusal;
    }
    return reviewed ? REVIEW : undefined;
  }

  /** What statement `name` may hold once `sql` is prepared under it (see {@link Held}); the unnamed statement is replaced. */
  #hold(name: string, sql: Sql, held: Held | undefined = this.#statements.get(name)): Held {
    if (name === '' || held === undefined) return [sql];
    return held.includes(sql) ? held : [...held, sql];
  }

  #checkNewName(name: string, map: Map<string, Held>): Buffer | undefined {
    if (name.startsWith(RESERVED_STATEMENT_PREFIX)) return this.#builtin(BuiltinRule.RESERVED_NAME);
    if (Buffer.byteLength(name) > MAX_NAME_BYTES) return this.#builtin(BuiltinRule.NAME_TOO_LONG);
    if (name !== '' && map.size >= MAX_NAMES && !map.has(name)) return this.#builtin(BuiltinRule.TOO_MANY_NAMES);
    if (name !== '' && (map.get(name)?.length ?? 0) >= MAX_HELD)
      return this.#builtin(BuiltinRule.TOO_MANY_NAMES, `statement "${name}" was prepared ${MAX_HELD} times without being closed; close or deallocate it first`);
    return undefined;
  }

  /**
   * The refusal for `sql`, {@link REVIEW} when a review must decide (see {@link OnReview}), or
   * undefined when it may run; with `record`, remembers what an allowed PREPARE / DEALLOCATE does.
   */
  #judgeString(sql: string, record: boolean, depth: number, analysis?: Analysis, onReview: OnReview = 'refuse'): Buffer | typeof REVIEW | undefined {
    if (sql === '') this.#unshowable ??= 'a statement it runs is longer than 64 KiB';
    else if (!this.#seen.includes(sql)) {
      if (this.#seen.length < MAX_SEEN) this.#seen.push(sql);
      else this.#unshowable ??= `it runs more than ${MAX_SEEN} statements`;
    }
    let verdict: StatementVerdict;
    let ops: PreparedOp[] | undefined;
    /** Something this text EXECUTEs needs a review (it then waits with the text's own). */
    let reviewed = false;
    try {
      verdict = this.#judge.judge(sql, analysis);
      ops = preparedOps(sql, analysis);
    } catch {
      return this.#builtin(BuiltinRule.JUDGE_FAILED);
    }
    if (this.#portals.size > 0 && (analysis !== undefined || FETCH_WORDS.test(sql))) {
      const a = analysis ?? analyzeSql(sql);
      if (a.ok && a.statements.some((st) => st.fetch && st.cursorName !== undefined && (this.#portals.has(st.cursorName) || st.cursorName === '*'))) return this.#builtin(BuiltinRule.PORTAL_FETCH);
    }
    if (ops && ops.length > 0) {
      const local = new Map<string, Held | null>();
      const held = (name: string): Held | undefined => (local.has(name) ? (local.get(name) ?? undefined) : this.#statements.get(name));
      for (const op of ops) {
        if (op.op === 'prepare') {
          const bad = this.#checkNewName(op.name, this.#statements);
          if (bad) return bad;
          local.set(op.name, this.#hold(op.name, op.text, held(op.name)));
        } else if (op.op === 'deallocate') {
          if (op.name !== undefined) local.set(op.name, null);
          else {
            for (const name of [...this.#statements.keys(), ...local.keys()]) if (name !== '') local.set(name, null);
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
      if (record && !reviewed && this.#passes(verdict, sql, onReview, depth === 0 && this.#current === QUERY, analysis)) {
        for (const [name, body] of local) {
          if (body !== null) this.#statements.set(name, body);
          else if (this.#confirmed) this.#forget.push(name);
          else this.#statements.delete(name);
        }
      }
    }
    if (this.#passes(verdict, sql, onReview, depth === 0 && this.#current === QUERY, analysis)) {
      if (verdict.guard && verdict.action === 'allow' && !this.#approvedTexts?.has(sql) && (depth > 0 || !verdict.guard.prepared)) this.#guard(verdict.guard, depth > 0);
      return reviewed ? REVIEW : undefined;
    }
    if (verdict.action === 'review' && onReview === 'hold' && verdict.review && this.#review) return this.#ask(verdict);
    return this.#count(verdict.action as 'deny' | 'review', refusalError(verdict), verdict.rule ?? '(none)', verdict.reason);
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
    this.#guarding = { ...stricter, count: 'stats', statements: [], opensBlock: now.opensBlock };
  }

  /**
   * Adds a review verdict to the one the current message asks for: one review must satisfy
   * every rule it met ({@link combineReviewDecisions}); a refusal when no one group may approve
   * for all of them.
   */
  #ask(verdict: StatementVerdict): Buffer | typeof REVIEW {
    const asking = this.#asking ? combineReviewDecisions(this.#asking, verdict) : verdict;
    if (asking.action === 'deny') return this.#count('deny', refusalError(asking), asking.rule ?? '(none)', asking.reason);
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
    if (this.#approvedTexts?.has(sql) || onReview === 'pass' || this.#inWindow(sql)) return true;
    if (!own) return false;
    const a = analysis ?? (sql !== '' ? analyzeSql(sql) : undefined);
    return a?.ok === true && a.statements.length > 0 && a.statements.every((s) => s.kinds[0] === 'prepare');
  }
}
