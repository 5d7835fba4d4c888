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

/** How a statement's column references resolve to masked columns (phrases for messages). */
interface MaskedNames {
  /** The masked column (or whole row) a column reference may read. */
  ref(ref: string): string | undefined;
  /** The masked table a qualifier names. */
  tableOf(qualifier: string): string | undefined;
  column(name: string, table?: string): string | undefined;
  row(table: string): string;
}

/**
 * Finds the masked column a statement's computed output is derived from.
 *
 * @see https://www.postgresql.org/docs/17/sql-expressions.html
 */
export class DerivedValueCheck {
  readonly #rules: MaskingRules;

  constructor(policy: MaskingPolicyLike | MaskingRules) {
    this.#rules = policy instanceof MaskingRules ? policy : MaskingRules.of(policy);
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
    const names = this.#names(facts);
    if (!names) return undefined;
    for (const ref of facts.outputs.derived) {
      const hit = names.ref(ref);
      if (hit) return hit;
    }
    for (const name of facts.outputs.bare) {
      const whole = names.tableOf(name);
      if (whole && !names.column(name)) return names.row(whole);
    }
    return undefined;
  }

  /**
   * The masked column (as a phrase, see {@link find}) one of `refs` (column references of
   * `facts`, as the analysis writes them) may read; undefined when none may.
   */
  findIn(facts: StatementFacts, refs: readonly string[]): string | undefined {
    const names = this.#names(facts);
    if (!names) return undefined;
    for (const ref of refs) {
      const hit = names.ref(ref);
      if (hit) return hit;
    }
    return undefined;
  }

  /** How the references of `facts` resolve to masked columns; undefined when none can. */
  #names(facts: StatementFacts): MaskedNames | undefined {
    const masked = new Map<string, Set<string>>();
    for (const table of facts.tables) {
      const columns = this.#rules.columnsOfSqlTable(table);
      if (columns.size > 0) masked.set(table, columns);
    }
    const { aliases, subqueries } = facts.outputs;
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
    const ref = (text: string): string | undefined => {
      const parts = text.split('.');
      const last = parts.at(-1)!;
      if (parts.length === 1) {
        const whole = tableOf(last);
        const hit = whole ? row(whole) : column(last);
        if (hit) return hit;
        return subqueries.length > 0 ? renamed(text) : undefined;
      }
      const qualifier = parts.slice(0, -1).join('.');
      if (subqueries.includes(parts.at(-2)!) && !tableOf(parts.at(-2)!)) return renamed(text);
      const table = tableOf(qualifier) ?? tableOf(parts.at(-2)!);
      if (last === '*') return table ? row(table) : undefined;
      // A qualifier that names no masked table (a subquery or CTE alias) may still carry one.
      return column(last, table);
    };
    return { ref, tableOf, column, row };
  }
}
