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
import type { MaskingPolicyLike } from './rules.js';

function globToRegExp(glob: string): RegExp {
  return new RegExp(`^${glob.toLowerCase().split('*').map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`);
}

interface TableRule {
  schema: RegExp;
  table: RegExp;
  column: string;
}

/**
 * Finds the masked column a statement's computed output is derived from.
 *
 * @see https://www.postgresql.org/docs/17/sql-expressions.html
 */
export class DerivedValueCheck {
  readonly #tables: TableRule[];
  readonly #names: RegExp[];

  constructor(policy: MaskingPolicyLike) {
    this.#tables = (policy.columns ?? []).map((c) => {
      const t = c.table.toLowerCase();
      const dot = t.lastIndexOf('.');
      return {
        schema: dot < 0 ? /^.*$/ : globToRegExp(t.slice(0, dot)),
        table: globToRegExp(dot < 0 ? t : t.slice(dot + 1)),
        column: c.column.toLowerCase(),
      };
    });
    this.#names = (policy.names ?? []).map((n) => new RegExp(n.pattern, 'i'));
  }

  /** Whether the policy has anything a derived value could come from. */
  get active(): boolean {
    return this.#tables.length > 0 || this.#names.length > 0;
  }

  /**
   * What an output of `facts` is computed from, as a phrase for messages (`the masked column
   * customers.email`, `the whole row of customers`, ...); undefined when no output is computed
   * from a masked column.
   */
  find(facts: StatementFacts): string | undefined {
    const masked = new Map<string, Set<string>>();
    for (const table of facts.tables) {
      const columns = this.#maskedColumns(table);
      if (columns.size > 0) masked.set(table, columns);
    }
    const { derived, bare, aliases, subqueries } = facts.outputs;
    if (masked.size === 0 && this.#names.length === 0) return undefined;
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
      return this.#names.some((p) => p.test(name)) ? `the column ${name} (masked by name)` : undefined;
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

  /** The masked column names (`*` for all) of a table as the statement names it. */
  #maskedColumns(name: string): Set<string> {
    const dot = name.lastIndexOf('.');
    const schema = dot < 0 ? undefined : name.slice(0, dot);
    const table = dot < 0 ? name : name.slice(dot + 1);
    const out = new Set<string>();
    for (const r of this.#tables) if (r.table.test(table) && (schema === undefined || r.schema.test(schema))) out.add(r.column);
    return out;
  }
}
