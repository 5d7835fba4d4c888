/**
 * What a statement's result columns are computed from (`OutputFacts`): the column references
 * inside each entry of a SELECT list or RETURNING list, told apart from the entries that are a
 * plain column reference (to which RowDescription gives an origin), and the top-level SELECT's
 * columns by position.
 *
 * @see https://www.postgresql.org/docs/17/sql-select.html#SQL-SELECT-LIST
 * @see https://www.postgresql.org/docs/17/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-ROWDESCRIPTION
 */
import type { ColumnRef, Node, ResTarget, SelectStmt } from 'libpg-query';
import type { Acc } from './acc.js';
import { isSetOperation, list, nodeAs, unwrap } from './ast.js';

/** A ColumnRef as written, lower-case: `a`, `a.b`, `a.*`, `*`. */
export function columnRefText(ref: ColumnRef): string {
  return list(ref.fields)
    .map((f) => {
      const [type, body] = unwrap(f);
      if (type === 'A_Star') return '*';
      return (type === 'String' && typeof body.sval === 'string' ? body.sval : '?').toLowerCase();
    })
    .join('.');
}

/**
 * Every ColumnRef under a node (subqueries included). The walk visits every field of every node
 * it meets as plain JSON (no node type lists its children), so it takes any value.
 */
export function columnRefsIn(node: unknown, into: Set<string>): void {
  if (Array.isArray(node)) {
    for (const item of node) columnRefsIn(item, into);
    return;
  }
  if (!node || typeof node !== 'object') return;
  const [type, body] = unwrap(node);
  if (type === 'ColumnRef') {
    into.add(columnRefText(body));
    return;
  }
  for (const value of Object.values(type ? body : node)) if (value && typeof value === 'object') columnRefsIn(value, into);
}

/** The entries of a SELECT list or RETURNING list (each is a ResTarget). */
function resTargets(targets: readonly Node[] | undefined): ResTarget[] {
  return list(targets).map((t) => nodeAs(t, 'ResTarget') ?? {});
}

/** `OutputFacts.columns` of a top-level SELECT; undefined when its columns cannot be told by position. */
export function resultColumns(select: SelectStmt): Array<readonly string[] | null> | undefined {
  if (isSetOperation(select) || select.valuesLists || select.intoClause) return undefined;
  const columns: Array<readonly string[] | null> = [];
  for (const res of resTargets(select.targetList)) {
    const ref = nodeAs(res.val, 'ColumnRef');
    if (ref) {
      if (columnRefText(ref).endsWith('*')) return undefined;
      columns.push(null);
      continue;
    }
    const refs = new Set<string>();
    columnRefsIn(res.val, refs);
    columns.push([...refs]);
  }
  return columns;
}

/** Records what a SELECT list or RETURNING list is computed from (`OutputFacts`). */
export function addOutputs(targets: readonly Node[] | undefined, acc: Acc): void {
  for (const res of resTargets(targets)) {
    const ref = nodeAs(res.val, 'ColumnRef');
    if (ref) {
      const text = columnRefText(ref);
      if (!text.includes('.') && text !== '*') acc.bare.add(text);
      continue;
    }
    columnRefsIn(res.val, acc.derived);
  }
}
