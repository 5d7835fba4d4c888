/**
 * Whether a write may reach every row of its target (`StatementFacts.missingWhere`): an UPDATE or
 * DELETE whose WHERE is missing or cannot restrict, a MERGE whose join or unconditioned UPDATE /
 * DELETE action cannot, an INSERT ... SELECT ... ON CONFLICT DO UPDATE whose SELECT may yield
 * every row it reads and whose DO UPDATE WHERE cannot restrict. The scope of the conditions is
 * built in `where-scope.ts`, the tautologies are told in `where-tautologies.ts`.
 *
 * @see https://www.postgresql.org/docs/17/sql-update.html
 * @see https://www.postgresql.org/docs/17/sql-delete.html
 * @see https://www.postgresql.org/docs/17/sql-merge.html
 * @see https://www.postgresql.org/docs/17/sql-insert.html#SQL-ON-CONFLICT
 */
import type { InsertStmt, MergeStmt, Node } from 'libpg-query';
import { isSetOperation, list, nodeAs, type TaggedOf, unwrap, type WriteTag } from './ast.js';
import { mayBeAllRows } from './where-tautologies.js';
import { addSource, type Literals, newLevel, type WhereCtx, withCtes, writeScope } from './where-scope.js';

/**
 * Whether a write may reach every row of its target. `literals.compared` is set when the verdict
 * compared numeric constants' values.
 */
export function writeMayReachAllRows(write: TaggedOf<WriteTag>, literals: Literals): boolean {
  switch (write[0]) {
    case 'MergeStmt':
      return mergeMayReachAllRows(write, literals);
    case 'InsertStmt':
      return upsertMayReachAllRows(write, literals);
    default:
      return whereIsMissing(write[1].whereClause, writeScope(write, literals));
  }
}

/**
 * A MERGE may reach every row of its target when its join is always true, or when one of its
 * UPDATE / DELETE actions has no condition of its own (a source that is the target itself
 * matches every row: the join alone does not bound it).
 */
function mergeMayReachAllRows(merge: readonly ['MergeStmt', MergeStmt], literals: Literals): boolean {
  const body = merge[1];
  const w = writeScope(merge, literals);
  let writes = false;
  for (const clause of list(body.mergeWhenClauses)) {
    const when = nodeAs(clause, 'MergeWhenClause') ?? {};
    if ((when.commandType === 'CMD_UPDATE' || when.commandType === 'CMD_DELETE') && when.matchKind !== 'MERGE_WHEN_NOT_MATCHED_BY_TARGET') {
      writes = true;
      if (whereIsMissing(when.condition, w)) return true;
    }
  }
  return writes && mayBeAllRows(body.joinCondition, w);
}

/** INSERT ... SELECT ... ON CONFLICT DO UPDATE updates every existing row the SELECT names. */
function upsertMayReachAllRows(insert: readonly ['InsertStmt', InsertStmt], literals: Literals): boolean {
  const conflict = insert[1].onConflictClause;
  if (conflict?.action !== 'ONCONFLICT_UPDATE') return false;
  return selectMayBeAllRows(insert[1].selectStmt, literals) && whereIsMissing(conflict.whereClause, writeScope(insert, literals));
}

/**
 * Whether an INSERT's source may yield every row of what it reads, or many rows: a set
 * operation; a FROM list whose WHERE does not restrict the rows of that FROM list; no FROM and a
 * function call in its SELECT list (it may return a set: `generate_series`, `unnest`, or any
 * function of the database). VALUES, and a SELECT of constants, yield the rows written.
 */
function selectMayBeAllRows(select: Node | undefined, literals: Literals): boolean {
  const body = nodeAs(select, 'SelectStmt');
  if (body === undefined || body.valuesLists) return false;
  if (isSetOperation(body)) return true;
  const from = list(body.fromClause);
  if (from.length === 0 && !callsFunction(body.targetList)) return false;
  const w = withCtes(body.withClause, { levels: [], ctes: new Map(), literals });
  const level = newLevel();
  for (const item of from) addSource(item, level, w, true);
  return whereIsMissing(body.whereClause, { ...w, levels: [level] });
}

/** Whether a function is called anywhere under a node (searched field by field as plain JSON: any value). */
function callsFunction(node: unknown): boolean {
  if (Array.isArray(node)) return node.some(callsFunction);
  if (!node || typeof node !== 'object') return false;
  const [type, body] = unwrap(node);
  if (type === 'FuncCall') return true;
  return Object.values(type ? body : node).some(callsFunction);
}

/** Whether a write's condition is missing or may hold for every judged row. */
function whereIsMissing(where: Node | undefined, w: WhereCtx): boolean {
  return where === undefined || where === null || mayBeAllRows(where, w);
}
