/**
 * The tables a statement touches (`StatementFacts.tables`) and the aliases it gives them
 * (`OutputFacts.aliases`): read off every RangeVar that is not a CTE's name, and off the object
 * names of the utility statements that take a table by a qualified name (DROP, COMMENT, SECURITY
 * LABEL, GRANT ... ON ALL TABLES IN SCHEMA).
 *
 * @see https://www.postgresql.org/docs/17/sql-syntax-lexical.html#SQL-SYNTAX-IDENTIFIERS
 * @see https://www.postgresql.org/docs/17/queries-table-expressions.html#QUERIES-TABLE-ALIASES
 */
import type { Node, RangeVar } from 'libpg-query';
import type { Acc, Ctx } from './acc.js';
import { list, names, nodeAs } from './ast.js';

/** Object types whose objects are tables as rules name them (tables, views, sequences, ...). */
export const TABLE_OBJECTS: ReadonlySet<string> = new Set(['OBJECT_TABLE', 'OBJECT_VIEW', 'OBJECT_MATVIEW', 'OBJECT_FOREIGN_TABLE', 'OBJECT_SEQUENCE']);

/** A RangeVar's name as `StatementFacts.tables` holds it: `schema.table` or `table`, lower-case. */
export function tableName(rv: RangeVar): string | undefined {
  const rel = rv.relname;
  if (rel === undefined) return undefined;
  const schema = rv.schemaname;
  return (schema ? `${schema}.${rel}` : rel).toLowerCase();
}

export function addTable(acc: Acc, name: string | undefined): void {
  if (name !== undefined) acc.tables.add(name);
}

/** A table read or written (with its alias), unless it names a CTE in scope; read, when met in a query. */
export function addRangeVar(rv: RangeVar, acc: Acc, ctx: Ctx): void {
  const rel = rv.relname;
  if (rel === undefined) return;
  if (!rv.schemaname && !rv.catalogname && ctx.scope.has(rel)) return;
  const name = tableName(rv)!;
  acc.tables.add(name);
  if (ctx.reading) acc.reads.add(name);
  addAlias(rv, name, acc);
}

/** A RangeVar's alias: an alias of `table`, or a renaming of its columns. */
export function addAlias(rv: RangeVar, table: string, acc: Acc): void {
  const alias = rv.alias;
  const name = alias?.aliasname;
  if (name === undefined) return;
  // `t AS x(a, b)` renames t's columns: x is no plain alias of t.
  if (list(alias!.colnames).length === 0) acc.aliases.set(name.toLowerCase(), table);
}

/**
 * The table an object name of DROP / COMMENT / SECURITY LABEL names (a List of String nodes,
 * `[catalog.]schema.table`): its last two parts, lower-case; undefined for any other node.
 * @see https://www.postgresql.org/docs/17/sql-droptable.html
 */
export function objectTableName(object: Node | undefined): string | undefined {
  const parts = names(nodeAs(object, 'List')?.items);
  return parts.length > 0 ? parts.slice(-2).join('.').toLowerCase() : undefined;
}
