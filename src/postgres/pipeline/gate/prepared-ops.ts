/**
 * The prepared-statement operations in SQL text (PREPARE, EXECUTE, DEALLOCATE, DISCARD ALL), as
 * the statement gate follows them: SQL-level prepared statements share PostgreSQL's one
 * namespace with the protocol's, and an EXECUTE is judged again with the body it runs.
 *
 * @see https://www.postgresql.org/docs/current/sql-prepare.html
 * @see https://www.postgresql.org/docs/current/sql-execute.html
 * @see https://www.postgresql.org/docs/current/sql-deallocate.html
 */
import { analyzeSql, type Analysis } from '../../../policy/sql/analyze.js';

const PREPARED_WORDS = /prepare|execute|deallocate|discard/i;

/**
 * A prepared-statement operation found in SQL text, in statement order: `prepare` (its name and
 * the whole PREPARE statement's text, which the judge sees with the body), `execute` (anywhere
 * in a statement: EXPLAIN ANALYZE EXECUTE, CREATE TABLE AS EXECUTE) or `deallocate` (a name, or
 * all named statements for DEALLOCATE ALL and DISCARD ALL).
 */
export type PreparedOp = { op: 'prepare'; name: string; text: string } | { op: 'execute'; name: string } | { op: 'deallocate'; name?: string };

/**
 * The prepared-statement operations in `sql`, read off its analysis (names folded as PostgreSQL
 * folds them), or undefined when `sql` does not parse. SQL without the words PREPARE, EXECUTE,
 * DEALLOCATE or DISCARD has none and is not looked at. Needs the SQL parser loaded
 * (`loadStatementGate`) first.
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
