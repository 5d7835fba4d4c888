/**
 * What the statement gate tells the client, in PostgreSQL's own messages: the ErrorResponse of a
 * refusal (SQLSTATE 42501, naming the rule), of a gate's own built-in refusal, of a held statement
 * whose review did not approve it, of a FunctionCall (0A000) and of a Bind or EXECUTE of a
 * statement the gate never saw prepared (26000); and the NoticeResponse that says a statement
 * is held for review.
 *
 * @see https://www.postgresql.org/docs/current/protocol-error-fields.html
 * @see https://www.postgresql.org/docs/current/errcodes-appendix.html
 */
import type { ReviewAsk, ReviewOutcome, StatementVerdict } from '../../../session/engine.js';
import { formatDuration, reviewTerms, shellQuote } from '../../../text-format.js';
import { DETECTOR_NAMES } from '../../../policy/masking/detectors.js';
import { redactSql } from '../../../policy/sql/redact.js';
import { errorResponse, noticeResponse, SqlState } from '../../wire/messages.js';
import { MAX_NAME_BYTES, MAX_NAMES, RESERVED_STATEMENT_PREFIX } from './names.js';

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
export type BuiltinRuleName = (typeof BuiltinRule)[keyof typeof BuiltinRule];

/** What a built-in refusal says when its caller has nothing more precise. */
export const builtinMessage: Readonly<Record<BuiltinRuleName, string>> = {
  [BuiltinRule.FUNCTION_CALL]: 'FunctionCall of a function the catalog does not have',
  [BuiltinRule.NOT_UTF8]: 'the statement is not valid UTF-8; hoop judges SQL as UTF-8 (set client_encoding to UTF8)',
  [BuiltinRule.RESERVED_NAME]: `statement names starting with "${RESERVED_STATEMENT_PREFIX}" are reserved by hoop`,
  [BuiltinRule.NAME_TOO_LONG]: `statement and portal names are limited to ${MAX_NAME_BYTES} bytes (PostgreSQL reads only that many)`,
  [BuiltinRule.TOO_MANY_NAMES]: `a session may hold at most ${MAX_NAMES} named statements and portals through hoop`,
  [BuiltinRule.JUDGE_FAILED]: 'the gateway could not judge the statement',
  [BuiltinRule.TOO_LONG]: 'the statement is longer than the gateway judges',
  [BuiltinRule.PORTAL_FETCH]: 'FETCH and MOVE of a portal bound with the extended protocol are not supported through hoop (it would run what was judged at its Execute); run it with Execute',
  [BuiltinRule.LEXING_PENDING]: 'the statement has a backslash and follows, in the same pipeline, statements that may still change standard_conforming_strings; send it after their Sync',
};

/** What a refusal of a Query or Parse longer than the gateway reads says: its length and the limit. */
export function tooLongMessage(length: number, limit: number): string {
  const size = (n: number): string => (n >= 1024 * 1024 ? `${(n / (1024 * 1024)).toFixed(1).replace(/\.0$/, '')} MiB` : `${n} bytes`);
  return `the statement is ${size(length - 4)} long; the gateway reads statements of at most ${size(limit)} (postgres.maxStatementBytes in its configuration)`;
}

/** What to do about a statement over the limit. */
export const TOO_LONG_HINT = "raise postgres.maxStatementBytes in the gateway's configuration (at most 1 GiB, as PostgreSQL), or send the data with COPY or as parameters of a prepared statement";

/**
 * The ErrorResponse for a Query or Parse longer than the gateway reads: SQLSTATE 54000
 * (program_limit_exceeded, as PostgreSQL answers a statement over its own limits), the length, the
 * limit and the setting that raises it. It was dropped unread: the session goes on.
 *
 * @see https://www.postgresql.org/docs/current/errcodes-appendix.html (class 54)
 */
export function tooLongError(length: number, limit: number): Buffer {
  return errorResponse({ severity: 'ERROR', code: SqlState.PROGRAM_LIMIT_EXCEEDED, message: `hoop: ${tooLongMessage(length, limit)}`, hint: `${TOO_LONG_HINT}; the session is still usable` });
}

/** How a refusal says where to ask why, when the statement and connection are not known here. */
const EXPLAIN_ANY = '`hoop policy check --connection <connection> "<statement>"`';

/**
 * The command that explains a refusal of `sql` on `connection`, as a person pastes it: the
 * statement itself when it is one short line that holds nothing a recording redacts (a password,
 * what a detector finds: the refusal is recorded as the client gets it), else a placeholder for it.
 */
export function explainCommand(connection: string | undefined, sql?: string): string {
  if (connection === undefined) return EXPLAIN_ANY;
  const quotable = sql !== undefined && sql.length <= 200 && !/[\r\n]/.test(sql) && !redactSql(sql, 'postgres', { detectors: DETECTOR_NAMES }).redacted;
  const statement = quotable ? shellQuote(sql.trim()) : '"<statement>"';
  return `\`hoop policy check --connection ${shellQuote(connection)} ${statement}\``;
}

/**
 * The ErrorResponse that tells the client a statement was refused: SQLSTATE 42501 with
 * `hoop: denied by rule "<rule>": <message>` or `hoop: approval required (rule "<rule>"):
 * <message>`, the judge's reason as the detail, and a hint (`explain`: the command that says why).
 */
export function refusalError(v: StatementVerdict, explain = EXPLAIN_ANY): Buffer {
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
    hint: `the gateway policy refuses this statement; ${explain} explains why; the session is still usable`,
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
  return noticeResponse({
    severity: 'NOTICE',
    code: '01000',
    message: `hoop: statement held for review ${id}${ask.rule !== undefined ? ` (rule "${ask.rule}")` : ''}: ${ask.message ?? ask.reason}`,
    detail: `${reviewTerms(ask.settings)}; the statement waits here and runs as sent once approved`,
    hint: `a reviewer runs: hoop review approve ${id}   (or: hoop review deny ${id} --reason "…"); cancelling the query withdraws it`,
  });
}

/**
 * The ErrorResponse for a held statement whose review did not approve it: denied (42501, `hoop:
 * denied by reviewer …` with their reason), not decided in time (42501, `hoop: approval
 * required …`), or withdrawn by the client's CancelRequest (57014, as PostgreSQL cancels).
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

/** The ErrorResponse for a FunctionCall of a function the catalog does not have (42883, as PostgreSQL answers). */
export function unknownFunctionError(oid: number): Buffer {
  return errorResponse({
    severity: 'ERROR',
    code: '42883',
    message: `hoop: function with OID ${oid} does not exist in the catalog`,
    hint: 'a function made in the open transaction cannot be called with FunctionCall through hoop: commit first, or call it with SELECT',
  });
}

/** The ErrorResponse for a statement that would run while its recording could not be written (`why`): 53100, disk_full. */
export function unrecordableError(why: string): Buffer {
  return errorResponse({
    severity: 'ERROR',
    code: '53100',
    message: why,
    hint: "nothing ran; try again once the gateway's operators have freed space on its data disk",
  });
}

/** The ErrorResponse for a Bind or EXECUTE of a statement the gate did not see prepared (26000, as PostgreSQL answers). */
export function unknownStatementError(name: string): Buffer {
  return errorResponse({
    severity: 'ERROR',
    code: '26000',
    message: name === '' ? 'unnamed prepared statement does not exist' : `prepared statement "${name}" does not exist`,
    detail: 'hoop did not see this statement prepared (or refused it) in this session, so it does not let it run',
  });
}
