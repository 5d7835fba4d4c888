/**
 * The walk over a statement's parse tree: every field of every node is visited, and the nodes
 * that carry a fact are read on the way (RangeVar: a table; FuncCall: a function, a setting, a
 * side channel; ColumnRef: a reference; A_Const: a numeric literal's place; subqueries and the
 * statements nested in WITH). Queries and writes are read here too: their CTE scope, target
 * table, outputs and (for writes) the MERGE / ON CONFLICT kinds and `missingWhere`.
 *
 * @see https://www.postgresql.org/docs/17/queries-with.html
 * @see https://www.postgresql.org/docs/17/sql-expressions.html
 */
import type { FuncCall, Node } from 'libpg-query';
import type { Acc, Ctx, Scope } from './acc.js';
import { bareRangeVar, columnRefText, list, names, nodeAs, type QueryTag, type Tagged, type TaggedOf, tagged, type WriteTag } from './ast.js';
import { SIDE_CHANNELS, type StatementKind } from './facts.js';
import { writeMayReachAllRows } from './missing-where.js';
import { BARE_FIELDS } from './node-fields.js';
import { isPgSettings, rawSetting, settingChanged, settingText } from './settings.js';
import { addAlias, addRangeVar, addTable, tableName } from './tables.js';

/** The kind each write statement reports. */
export const WRITE_KINDS: Readonly<Record<WriteTag, StatementKind>> = {
  InsertStmt: 'insert',
  UpdateStmt: 'update',
  DeleteStmt: 'delete',
  MergeStmt: 'merge',
};

/** Functions that signal a server process by its pid (see `StatementFacts.signals`). */
const SIGNAL_FUNCTIONS = new Set(['pg_terminate_backend', 'pg_cancel_backend', 'pg_signal_backend']);

/** The process a signal function's first argument names: the caller's own (`pg_backend_pid()`), a pid written as a number, or another. */
function signalTarget(arg: unknown): number | 'own' | 'other' {
  const call = nodeAs(arg, 'FuncCall');
  if (call && list(call.args).length === 0 && names(call.funcname).at(-1)?.toLowerCase() === 'pg_backend_pid' && ['pg_catalog', undefined].includes(names(call.funcname).at(-2)?.toLowerCase()))
    return 'own';
  const constant = nodeAs(arg, 'A_Const');
  const n = constant?.ival !== undefined ? (constant.ival.ival ?? 0) : undefined;
  return n !== undefined ? n : 'other';
}

/**
 * Walks every field of a node's body (or of a bare struct: `type` is then its struct type, or
 * empty), but those in `skip`. The fields are read as plain JSON: a node type's fields are
 * known, but not which of them hold children, so any value is taken.
 */
export function walkFields(type: string, body: object, acc: Acc, ctx: Ctx, skip: readonly string[] = []): void {
  const bare = Object.hasOwn(BARE_FIELDS, type) ? BARE_FIELDS[type] : undefined;
  for (const [key, value] of Object.entries(body)) {
    if (skip.includes(key)) continue;
    if (value === null || typeof value !== 'object') continue;
    const bareType = bare && Object.hasOwn(bare, key) ? bare[key] : undefined;
    if (bareType) {
      for (const item of Array.isArray(value) ? value : [value]) {
        // BARE_FIELDS names the struct type of the field: the pair is a node of that type.
        if (item && typeof item === 'object') walkNode([bareType, item] as Tagged, acc, ctx);
      }
    } else {
      walkValue(value, acc, ctx);
    }
  }
}

function walkValue(value: unknown, acc: Acc, ctx: Ctx): void {
  if (Array.isArray(value)) {
    for (const item of value) walkValue(item, acc, ctx);
    return;
  }
  if (!value || typeof value !== 'object') return;
  const node = tagged(value);
  const rv = node ? undefined : bareRangeVar(value);
  if (node) walkNode(node, acc, ctx);
  else if (rv) addRangeVar(rv, acc, ctx);
  else walkFields('', value, acc, ctx);
}

function walkNode(node: Tagged, acc: Acc, ctx: Ctx): void {
  switch (node[0]) {
    case 'RangeVar':
      return addRangeVar(node[1], acc, ctx);
    case 'FuncCall':
      return funcCall(node[1], acc, ctx);
    case 'A_Expr':
    case 'SortBy':
    case 'SubLink':
      operatorsOf(node, acc);
      return walkFields(node[0], node[1], acc, ctx);
    case 'TypeCast': {
      const type = names(node[1].typeName?.names).at(-1);
      if (type !== undefined) acc.casts.add(type.toLowerCase());
      return walkFields(node[0], node[1], acc, ctx);
    }
    case 'SelectStmt':
    case 'InsertStmt':
    case 'UpdateStmt':
    case 'DeleteStmt':
    case 'MergeStmt':
      return nested(node, acc, ctx);
    case 'A_Const': {
      const body = node[1];
      if ((body.ival !== undefined || body.fval !== undefined) && typeof body.location === 'number') acc.numericLiterals.push(body.location);
      return;
    }
    case 'ColumnRef':
      if (ctx.runs) acc.refs.add(columnRefText(node[1]));
      return;
    case 'String':
    case 'Integer':
    case 'Float':
    case 'Boolean':
    case 'BitString':
    case 'ParamRef':
    case 'TypeName':
    case 'RoleSpec':
    case 'Alias':
      return;
    default:
      walkFields(node[0], node[1], acc, ctx);
  }
}

/** The operators an expression applies, by symbol (a BETWEEN's are `>=` and `<=`). */
function operatorsOf(node: Tagged, acc: Acc): void {
  const body = node[1] as { name?: Node[]; useOp?: Node[]; operName?: Node[] };
  const op = names(body.name ?? body.useOp ?? body.operName).at(-1);
  if (op === undefined) return;
  for (const symbol of /^[A-Za-z ]+$/.test(op) ? (op.includes('BETWEEN') ? ['>=', '<='] : []) : [op]) acc.operators.add(symbol);
}

/** A function call: the function, a side channel, a set_config(). */
function funcCall(body: FuncCall, acc: Acc, ctx: Ctx): void {
  const parts = names(body.funcname);
  if (parts.length > 0) acc.functions.add(parts.slice(-2).join('.').toLowerCase());
  const fn = parts.at(-1)?.toLowerCase();
  if (fn !== undefined && SIDE_CHANNELS.has(fn)) {
    // Kept to run later (a view, a CHECK, a policy, a default): it sends what it is given each time it runs.
    if (ctx.runs) acc.sideChannel ??= { name: `${fn}()`, where: SIDE_CHANNELS.get(fn)! };
    else acc.code ??= `a call of ${fn}() kept to run later`;
  }
  if (fn !== undefined && SIGNAL_FUNCTIONS.has(fn)) {
    const target = signalTarget(list(body.args)[0]);
    // Which pid is named decides (the session's own, or another's): no other text of this shape shares the verdict.
    if (typeof target === 'number') acc.literalSensitive = true;
    acc.signals.push(target);
  }
  if (fn === 'set_config') {
    const [nameArg, valueArg] = list(body.args);
    settingChanged(settingText(nameArg), settingText(valueArg), acc, ctx, rawSetting(valueArg));
  }
  walkFields('FuncCall', body, acc, ctx, ['funcname']);
}

/** A statement met inside another one (subquery, CTE body, INSERT ... SELECT). */
function nested(node: Tagged, acc: Acc, ctx: Ctx): void {
  switch (node[0]) {
    case 'SelectStmt':
      return query(node, acc, ctx);
    case 'InsertStmt':
    case 'UpdateStmt':
    case 'DeleteStmt':
    case 'MergeStmt':
      if (ctx.runs && ctx.inCte) acc.cteDml = true;
      return dml(node, acc, ctx);
    default:
      walkFields(node[0], node[1], acc, ctx);
  }
}

/** A query with an optional WITH: CTE names are in scope for the rest of it. */
export function query(node: TaggedOf<QueryTag>, acc: Acc, ctx: Ctx): void {
  const [type, body] = node;
  const scope = withScope(node, acc, ctx);
  // The target of INSERT/UPDATE/DELETE/MERGE and SELECT INTO is always a real table.
  if (type !== 'SelectStmt' && body.relation) {
    const table = tableName(body.relation);
    addTable(acc, table);
    if (table !== undefined) addAlias(body.relation, table, acc);
    // Its RETURNING reads the rows that were there (an UPDATE's, a DELETE's, an ON CONFLICT DO UPDATE's); an INSERT's returns what it wrote.
    const returns = list((body as { returningList?: unknown[] }).returningList).length > 0;
    const insertOnly = type === 'InsertStmt' && (body as { onConflictClause?: { action?: string } }).onConflictClause?.action !== 'ONCONFLICT_UPDATE';
    if (table !== undefined && returns && !insertOnly) acc.reads.add(table);
  }
  if (type === 'SelectStmt' && body.intoClause?.rel) addTable(acc, tableName(body.intoClause.rel));
  walkFields(type, body, acc, { ...ctx, scope, reading: true }, ['withClause', 'relation', 'intoClause']);
}

/** Walks a query's WITH clause; the CTE names in scope for the rest of the query. */
function withScope(node: TaggedOf<QueryTag>, acc: Acc, ctx: Ctx): Scope {
  const withClause = node[1].withClause;
  if (!withClause) return ctx.scope;
  const ctes = list(withClause.ctes)
    .map((c) => nodeAs(c, 'CommonTableExpr'))
    .filter((c) => c !== undefined);
  const cteNames = ctes.map((b) => b.ctename ?? '');
  const all = new Set([...ctx.scope, ...cteNames]);
  ctes.forEach((cte, i) => {
    // A non-recursive CTE sees only the CTEs before it; a same-named table inside its own
    // body is the real table.
    const visible = withClause.recursive === true ? all : new Set([...ctx.scope, ...cteNames.slice(0, i)]);
    const inner = tagged(cte.ctequery);
    if (inner) nested(inner, acc, { scope: visible, runs: ctx.runs, inCte: true, ...(ctx.body ? { body: true } : {}) });
    walkFields('CommonTableExpr', cte, acc, { ...ctx, scope: visible }, ['ctequery']);
  });
  return all;
}

/** INSERT / UPDATE / DELETE / MERGE: own kind, target table, missing WHERE, MERGE actions. */
export function dml(node: TaggedOf<WriteTag>, acc: Acc, ctx: Ctx): void {
  const [type, body] = node;
  acc.kind(WRITE_KINDS[type], ctx);
  // pg_settings' UPDATE rule calls set_config: a write to it sets a setting hoop cannot name.
  if (isPgSettings(body.relation)) settingChanged(undefined, undefined, acc, ctx);
  if (type === 'MergeStmt') {
    for (const clause of list(body.mergeWhenClauses)) {
      const command = nodeAs(clause, 'MergeWhenClause')?.commandType;
      if (command === 'CMD_UPDATE') acc.kind('update', ctx);
      else if (command === 'CMD_DELETE') acc.kind('delete', ctx);
      else if (command === 'CMD_INSERT') acc.kind('insert', ctx);
    }
  } else if (type === 'InsertStmt' && body.onConflictClause?.action === 'ONCONFLICT_UPDATE') acc.kind('update', ctx);
  const literals = { compared: false };
  const touchesAll = writeMayReachAllRows(node, literals);
  if (ctx.runs && touchesAll) acc.missingWhere = true;
  if (literals.compared) acc.literalSensitive = true;
  query(node, acc, ctx);
}
