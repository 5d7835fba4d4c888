/**
 * Values computed from masked columns, told from the parse tree: `upper(email)`, `email::text`,
 * `count(email)`, `row_to_json(c)`, `(SELECT email FROM ...)` as a column of an outer query.
 * PostgreSQL reports such result columns without an origin (RowDescription's table OID is 0), so
 * column rules cannot find them in the result; the policy's `masking.derived` says whether they
 * are masked (every origin-less column of a statement that reads a table with column rules) or
 * the statement is denied, which is decided here, before it runs.
 *
 * The check errs towards finding more: a column reference is matched by name against every
 * masked column of every table the statement reads unless its qualifier names one table;
 * references in a subquery's WHERE count as well as those in its SELECT list; and a column read
 * through a subquery in FROM or a CTE (which may rename a masked column: `SELECT s.e || ''
 * FROM (SELECT email AS e FROM customers) s`) counts as masked whenever the statement reads a
 * table with column rules, or the policy has name rules.
 *
 * @see https://www.postgresql.org/docs/17/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-ROWDESCRIPTION
 * @see https://www.postgresql.org/docs/17/sql-expressions.html
 */
import type { StatementFacts } from '../sql/analyze.js';
import { MaskingRules, type MaskingPolicyLike } from './rules.js';

/**
 * Finds the masked column a statement's computed output is derived from.
 *
 * @see https://www.postgresql.org/docs/17/sql-expressions.html
 */
export class DerivedValueCheck {
  readonly #rules: MaskingRules;

  constructor(policy: MaskingPolicyLike | MaskingRules) {
    this.#rules = policy instanceof MaskingRules ? policy : new MaskingRules(policy);
  }

  /** Whether the policy has anything a derived value could come from. */
  get active(): boolean {
    return this.#rules.hasColumnRules || this.#rules.hasNameRules;
  }

  /**
   * What an output of `facts` is computed from, as a phrase for messages (`the masked column
   * customers.email`, `the whole row of customers`, ...); undefined when no output is computed
   * from a masked column.
   */
  find(facts: StatementFacts): string | undefined {
    const masked = new Map<string, Set<string>>();
    for (const table of facts.tables) {
      const columns = this.#rules.columnsOfSqlTable(table);
      if (columns.size > 0) masked.set(table, columns);
    }
    const { derived, bare, aliases, subqueries } = facts.outputs;
    if (masked.size === 0 && !this.#rules.hasNameRules) return undefined;
    const renamed = (ref: string): string => {
      const table = masked.keys().next().value;
      return `${ref}, which a subquery or CTE may have renamed from a masked column${table ? ` of ${table}` : ''}`;
    };
    const row = (table: string): string => `the whole row of ${table}`;
    /** The masked table a qualifier (alias, table name, or schema.table) names. */
    const tableOf = (qualifier: string): string | undefined => {
      const table = aliases[qualifier] ?? qualifier;
      for (const name of masked.keys()) if (name === table || name.endsWith(`.${table}`) || table.endsWith(`.${name}`)) return name;
      return undefined;
    };
    const column = (name: string, table?: string): string | undefined => {
      for (const [t, cols] of masked) if ((table === undefined || t === table) && (cols.has('*') || cols.has(name))) return `the masked column ${t}.${name}`;
      return this.#rules.forName(name) ? `the column ${name} (masked by name)` : undefined;
    };
    for (const ref of derived) {
      const parts = ref.split('.');
      const last = parts.at(-1)!;
      if (parts.length === 1) {
        const whole = tableOf(last);
        const hit = whole ? row(whole) : column(last);
        if (hit) return hit;
        if (subqueries.length > 0) return renamed(ref);
        continue;
      }
      const qualifier = parts.slice(0, -1).join('.');
      if (subqueries.includes(parts.at(-2)!) && !tableOf(parts.at(-2)!)) return renamed(ref);
      const table = tableOf(qualifier) ?? tableOf(parts.at(-2)!);
      if (last === '*') {
        if (table) return row(table);
        continue;
      }
      // A qualifier that names no masked table (a subquery or CTE alias) may still carry one.
      const hit = column(last, table);
      if (hit) return hit;
    }
    for (const name of bare) {
      const whole = tableOf(name);
      if (whole && !column(name)) return row(whole);
    }
    return undefined;
  }
}
