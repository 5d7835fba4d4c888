/**
 * Whether an expression reads the judged rows (the target of a write), for
 * `StatementFacts.missingWhere`: a column reference resolved against the query levels of its
 * {@link WhereCtx} as PostgreSQL resolves it (the innermost level that has the name wins), a
 * cursor position, or a subquery that references them.
 *
 * @see https://www.postgresql.org/docs/17/sql-expressions.html#SQL-EXPRESSIONS-COLUMN-REFS
 * @see https://www.postgresql.org/docs/17/queries-table-expressions.html#QUERIES-LATERAL
 */
import type { ColumnRef, Node, SelectStmt } from 'libpg-query';
import { isSetOperation, list, nodeAs, unwrap } from './ast.js';
import { addSource, newLevel, type WhereCtx, withCtes } from './where-scope.js';

/**
 * Whether a column reference may read the judged rows: qualified, as the innermost source of
 * that name says (a name no source has, e.g. a composite column's field, counts); unqualified,
 * as the innermost level that certainly outputs a column of that name says, unless a level
 * before it has a source whose columns are unknown (a table, a function: the name may be the
 * judged rows' column, so it counts). A write's own level always has such a source, its target.
 */
export function refReadsRows(ref: ColumnRef, w: WhereCtx): boolean {
  const fields = list(ref.fields).map((f) => nodeAs(f, 'String')?.sval);
  if (fields.length >= 2) {
    // a.b: table a; a.b.c: table a (column b, field c) or schema a, table b; a.b.c.d: ... table c.
    const candidates = fields.length >= 3 ? [fields[0], fields[fields.length - 2]] : [fields[0]];
    for (const q of candidates) {
      if (q === undefined) continue;
      for (let i = w.levels.length - 1; i >= 0; i--) {
        const judged = w.levels[i]!.names.get(q);
        if (judged !== undefined) return judged;
      }
    }
    return true;
  }
  const name = fields[0];
  if (name === undefined) return true;
  for (let i = w.levels.length - 1; i >= 0; i--) {
    const level = w.levels[i]!;
    const judged = level.columns.get(name);
    if (judged !== undefined) return judged;
    if (level.opaque) return true;
  }
  return true;
}

/**
 * Whether an expression may read the judged rows (a column of theirs, a cursor position, a
 * subquery that does). Any other node is searched field by field as plain JSON (no node type
 * lists its children), so it takes any value.
 */
export function readsRows(node: unknown, w: WhereCtx): boolean {
  if (Array.isArray(node)) return node.some((n) => readsRows(n, w));
  if (!node || typeof node !== 'object') return false;
  const [type, body] = unwrap(node);
  if (type === 'ColumnRef') return refReadsRows(body, w);
  if (type === 'CurrentOfExpr') return true;
  if (type === 'SelectStmt') return queryReadsRows(body, w);
  return Object.values(type ? body : node).some((v) => readsRows(v, w));
}

/** Whether a subquery (a SELECT body) references the judged rows, its own FROM list shadowing outer names. */
function queryReadsRows(body: SelectStmt, outer: WhereCtx): boolean {
  const withClause = body.withClause;
  const w = withCtes(withClause, outer);
  if (list(withClause?.ctes).some((c) => readsRows(nodeAs(c, 'CommonTableExpr')?.ctequery, w))) return true;
  if (isSetOperation(body)) {
    if ([body.larg, body.rarg].some((b) => b && typeof b === 'object' && queryReadsRows(b, w))) return true;
    return readsRows([body.sortClause, body.limitOffset, body.limitCount], w);
  }
  const level = newLevel();
  const from = list(body.fromClause);
  for (const item of from) addSource(item, level, w, false);
  const inner: WhereCtx = { ...w, levels: [...w.levels, level] };
  if (from.some((item) => fromItemReadsRows(item, w, inner))) return true;
  return Object.entries(body).some(([k, v]) => k !== 'withClause' && k !== 'fromClause' && readsRows(v, inner));
}

/** Whether a FROM item references the judged rows: a non-LATERAL subquery sees only outer levels. */
function fromItemReadsRows(item: Node | undefined, outer: WhereCtx, inner: WhereCtx): boolean {
  const [type, body] = unwrap(item);
  switch (type) {
    case 'RangeVar':
      return false;
    case 'RangeSubselect':
      return readsRows(body.subquery, body.lateral === true ? inner : outer);
    case 'JoinExpr':
      return fromItemReadsRows(body.larg, outer, inner) || fromItemReadsRows(body.rarg, outer, inner) || readsRows(body.quals, inner);
    default:
      // Functions in FROM (LATERAL implicitly), table samples, XMLTABLE, JSON_TABLE.
      return readsRows(body, inner);
  }
}
