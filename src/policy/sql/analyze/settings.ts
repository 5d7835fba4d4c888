/**
 * The settings a statement changes (`StatementFacts.settings`, `setting`, `changesLexing`,
 * `readWrite` and the role kinds): SET / RESET / SHOW, set_config(), the options of BEGIN / SET
 * TRANSACTION, a function's `SET name = value` clause, and writes to (or views over)
 * `pg_settings`, whose UPDATE rule calls set_config.
 *
 * @see https://www.postgresql.org/docs/17/sql-set.html
 * @see https://www.postgresql.org/docs/17/sql-reset.html
 * @see https://www.postgresql.org/docs/17/functions-admin.html#FUNCTIONS-ADMIN-SET
 * @see https://www.postgresql.org/docs/17/view-pg-settings.html
 */
import type { Node, RangeVar, TransactionStmt, VariableSetStmt, VariableShowStmt } from 'libpg-query';
import { lexingSafeSetting } from '../lexing.js';
import type { Acc, Ctx } from './acc.js';
import { bareRangeVar, defElemTrue, list, names, nodeAs, unwrap } from './ast.js';

const LEXING_SETTINGS = new Set(['standard_conforming_strings', 'client_encoding']);

/** Settings whose value says whether new transactions may write. */
const READ_ONLY_SETTINGS = new Set(['default_transaction_read_only', 'transaction_read_only']);

/**
 * SET / RESET (and SET ROLE, SET SESSION AUTHORIZATION, SET TRANSACTION, SET SESSION
 * CHARACTERISTICS): its kind, the setting it names, and the value it sets.
 * @see https://www.postgresql.org/docs/17/sql-set.html
 */
export function setStatement(body: VariableSetStmt, acc: Acc, ctx: Ctx): void {
  const name = body.name?.toLowerCase();
  if (name === 'role') acc.kind('set-role', ctx);
  else if (name === 'session_authorization') acc.kind('set-session-authorization', ctx);
  else if (name === 'transaction') acc.kind('transaction', ctx);
  else acc.kind('set', ctx);
  acc.setting ??= name ?? (body.kind === 'VAR_RESET_ALL' ? 'all' : undefined);
  if (body.kind === 'VAR_SET_MULTI') transactionOptions(body.args, acc, ctx);
  else if (name !== undefined) {
    const value = body.kind === 'VAR_SET_VALUE' ? valueText(body.args) : body.kind === 'VAR_SET_CURRENT' ? undefined : 'default';
    settingChanged(name, value, acc, ctx, body.kind === 'VAR_SET_VALUE' ? rawValue(body.args) : undefined);
  }
}

/** SHOW: the setting it reads. */
export function showStatement(body: VariableShowStmt, acc: Acc, ctx: Ctx): void {
  acc.kind('other', ctx);
  acc.setting ??= body.name?.toLowerCase();
}

/**
 * BEGIN, COMMIT, SAVEPOINT, ...: which one, and the options of BEGIN / START TRANSACTION.
 * @see https://www.postgresql.org/docs/17/sql-begin.html
 */
export function transactionStatement(body: TransactionStmt, acc: Acc, ctx: Ctx): void {
  acc.kind('transaction', ctx);
  if (typeof body.kind === 'string') acc.transaction ??= body.kind.replace(/^TRANS_STMT_/, '').toLowerCase();
  if (body.kind === 'TRANS_STMT_COMMIT' || body.kind === 'TRANS_STMT_PREPARE') acc.firesDeferred = true;
  if (body.kind === 'TRANS_STMT_BEGIN' || body.kind === 'TRANS_STMT_START') transactionOptions(body.options, acc, ctx);
}

/**
 * Records that a statement sets `name` (undefined: an expression names it) to `value` (lower-case
 * constant, `default`, or undefined for an expression): the settings list, lexing, role changes
 * and read-write transactions. Whether or not what sets it runs now: a set_config() in a view, a
 * function body or a plain EXPLAIN's target is recorded too (the first two run later; see
 * `StatementFacts.settings`).
 */
export function settingChanged(name: string | undefined, value: string | undefined, acc: Acc, ctx: Ctx, raw?: string): void {
  const now: Ctx = { ...ctx, runs: true };
  // A role's name as written (the only setting whose case and spaces the judge compares).
  const named = raw !== undefined && (name === 'role' || name === 'session_authorization');
  acc.settings.push({ ...(name !== undefined ? { name } : {}), ...(value !== undefined ? { value } : {}), ...(named ? { raw } : {}) });
  if (name === undefined || (LEXING_SETTINGS.has(name) && !lexingSafe(name, value))) acc.changesLexing = true;
  if (name === undefined || name === 'role') acc.kind('set-role', now);
  if (name === undefined || name === 'session_authorization') acc.kind('set-session-authorization', now);
  if (name === undefined || (READ_ONLY_SETTINGS.has(name) && !keepsReadOnly(name, value))) acc.readWrite = true;
}

/**
 * Whether setting `name` (one of {@link READ_ONLY_SETTINGS}) to `value` keeps transactions
 * read-only: an on value, or `default` (RESET, TO DEFAULT) for `default_transaction_read_only`
 * only. `transaction_read_only`'s reset value is off (a transaction starts read-only because
 * default_transaction_read_only is on, not from that reset value): RESET makes it read-write.
 * @see https://www.postgresql.org/docs/current/runtime-config-client.html#GUC-DEFAULT-TRANSACTION-READ-ONLY
 */
function keepsReadOnly(name: string, value: string | undefined): boolean {
  return name === 'transaction_read_only' && value === 'default' ? false : isOn(value);
}

/**
 * The `SET name = value` clauses of CREATE FUNCTION / ALTER FUNCTION (DefElems `set`): the value
 * is in force whenever the function runs. `SET name TO DEFAULT` and RESET there only drop the
 * function's own value, so they change nothing.
 * @see https://www.postgresql.org/docs/current/sql-createfunction.html
 */
export function functionSettings(options: readonly Node[] | undefined, acc: Acc, ctx: Ctx): void {
  for (const o of list(options)) {
    const d = nodeAs(o, 'DefElem');
    if (d?.defname !== 'set') continue;
    const v = nodeAs(d.arg, 'VariableSetStmt');
    const name = v?.name?.toLowerCase();
    if (v === undefined || name === undefined) continue;
    if (v.kind === 'VAR_SET_VALUE') settingChanged(name, valueText(v.args), acc, ctx, rawValue(v.args));
    else if (v.kind === 'VAR_SET_CURRENT') settingChanged(name, undefined, acc, ctx);
  }
}

/**
 * ALTER ROLE / ALTER DATABASE / ALTER SYSTEM … SET: a value stored for the sessions that start
 * later, counted as a setting the statement makes (a later session of the role runs with it).
 * @see https://www.postgresql.org/docs/current/sql-alterrole.html
 */
export function storedSetting(setstmt: unknown, acc: Acc, ctx: Ctx): void {
  const v = ((setstmt as { VariableSetStmt?: VariableSetStmt } | undefined)?.VariableSetStmt ?? setstmt) as VariableSetStmt | undefined;
  const name = v?.name?.toLowerCase();
  if (v === undefined || v.kind === 'VAR_RESET_ALL') return;
  if (name === undefined) return settingChanged(undefined, undefined, acc, ctx);
  if (v.kind === 'VAR_SET_VALUE') settingChanged(name, valueText(v.args), acc, ctx, rawValue(v.args));
  else if (v.kind === 'VAR_SET_CURRENT') settingChanged(name, undefined, acc, ctx);
  else settingChanged(name, 'default', acc, ctx);
}

/** The value SET gives: one constant's text, or a list's (`SET search_path = a, b`) joined by commas. */
function valueText(args: readonly Node[] | undefined): string | undefined {
  const items = list(args);
  // SET x = a, b (a list, as for search_path) is one value; only its text matters for single values.
  return items.length === 1 ? settingText(items[0]) : items.map((a) => settingText(a)).join(',');
}

/**
 * Whether a view's query (or an ON SELECT rule's actions) reads `pg_settings`, in any schema
 * (a same-named relation elsewhere counts too): such a view passes an UPDATE on to pg_settings,
 * whose rule calls set_config. It looks at every RangeVar anywhere below, so it walks the tree as
 * plain JSON (any value).
 * @see https://www.postgresql.org/docs/current/view-pg-settings.html
 */
export function readsPgSettings(node: unknown): boolean {
  if (Array.isArray(node)) return node.some(readsPgSettings);
  if (!node || typeof node !== 'object') return false;
  if (isPgSettings(bareRangeVar(node))) return true;
  return Object.values(node).some((v) => v !== null && typeof v === 'object' && readsPgSettings(v));
}

/** Whether a RangeVar names `pg_settings` (any schema, any case). */
export function isPgSettings(rv: RangeVar | undefined): boolean {
  return rv?.relname?.toLowerCase() === 'pg_settings';
}

/** The options of BEGIN / START TRANSACTION / SET TRANSACTION / SET SESSION CHARACTERISTICS (DefElems). */
function transactionOptions(options: readonly Node[] | undefined, acc: Acc, ctx: Ctx): void {
  for (const o of list(options)) {
    const d = nodeAs(o, 'DefElem');
    if (d === undefined) continue;
    const name = d.defname?.toLowerCase();
    if (name === 'transaction_read_only') settingChanged(name, defElemTrue(d.arg) ? 'on' : 'off', acc, ctx);
  }
}

/** Whether a boolean setting's constant text (or `default`, the session's start value) means on. */
function isOn(value: string | undefined): boolean {
  return value === 'default' || (value !== undefined && ['on', 'true', 'yes', '1', 't', 'tr', 'tru', 'y', 'ye'].includes(value));
}

/**
 * The text a constant argument hands the server as a setting's name or value, lower-case and
 * trimmed: a string or number constant as written (`SET x = 0.5` passes `0.5`), possibly cast to
 * `text` or `varchar` without a length (which leave the text as it is). Undefined for anything
 * else, casts that could change the text included (`'0.59'::char(3)` is `0.5`, a `name` is cut
 * at 63 bytes).
 * @see https://www.postgresql.org/docs/current/sql-set.html
 */
export function settingText(node: Node | undefined): string | undefined {
  const [type, body] = unwrap(node);
  if (type !== 'TypeCast') return constantText(node);
  const typeName = body.typeName;
  const parts = names(typeName?.names).map((n) => n.toLowerCase());
  const plain = parts.length === 1 || (parts.length === 2 && parts[0] === 'pg_catalog');
  if (!plain || !['text', 'varchar'].includes(parts.at(-1)!) || list(typeName?.typmods).length > 0 || typeName?.arrayBounds !== undefined) return undefined;
  return constantText(body.arg);
}

/** One constant value as written (a role's name is case- and space-sensitive); undefined for anything else or a list. */
export function rawValue(args: readonly Node[] | undefined): string | undefined {
  const items = list(args);
  return items.length === 1 ? rawSetting(items[0]) : undefined;
}

/** A string constant's text exactly as written (through a plain text cast too); undefined for anything else. */
export function rawSetting(node: Node | undefined): string | undefined {
  const [type, body] = unwrap(node);
  const c = nodeAs(type === 'TypeCast' ? body.arg : node, 'A_Const');
  const text = c?.sval?.sval;
  return typeof text === 'string' && settingText(node) !== undefined ? text : undefined;
}

/** A string or number constant's text as written, lower-case and trimmed; undefined for anything else. */
function constantText(node: Node | undefined): string | undefined {
  const c = nodeAs(node, 'A_Const');
  if (c === undefined || c.isnull === true) return undefined;
  const text = c.sval?.sval ?? c.fval?.fval;
  if (typeof text === 'string') return text.trim().toLowerCase();
  if (c.ival) return String(c.ival.ival ?? 0);
  return undefined;
}

/** Whether setting `name` to `value` keeps the server's lexing equal to this parser's. */
function lexingSafe(name: string, value: string | undefined): boolean {
  if (value === undefined) return false;
  return lexingSafeSetting(name, value);
}
