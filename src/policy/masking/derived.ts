/**
 * Values computed from masked columns, told from the statement's lineage before it runs:
 * `upper(email)`, `email::text`, `count(email)`, `row_to_json(c)`, `(SELECT email FROM ...)`, a
 * masked column renamed by a subquery and computed over outside it, a UNION's column. PostgreSQL
 * reports such result columns without an origin, so column rules cannot find them in the result;
 * with `masking.derived: deny` the statement is refused here, before it runs (with `mask`, the
 * masking stage masks them when they come). Also the arguments of calls whose value leaves through
 * another channel (`pg_notify`, `set_config`), refused whatever `derived` says.
 *
 * The parse names no view and knows no table's columns: a column is matched by its relation's name
 * and its own against the rules; one that may belong to several relations counts for each. A view
 * over masked columns is found by the masking stage, in the catalog.
 *
 * @see https://www.postgresql.org/docs/17/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-ROWDESCRIPTION
 * @see https://www.postgresql.org/docs/17/sql-expressions.html
 */
import type { ColumnLineage, ColumnSource, StatementFacts } from '../sql/analyze.js';
import { MaskingRules, type MaskingPolicyLike } from './rules.js';
import { sqlName } from './sources.js';

/** Logical decoding's readers and what moves or copies a slot: `pg_logical_slot_peek_changes` and the like. */
const LOGICAL_DECODING = /^pg_(logical_slot_(peek|get)_|replication_slot_advance$|copy_logical_replication_slot$|create_logical_replication_slot$)/;
/**
 * Finds the masked column a statement's computed output (or a side channel's argument) is derived from.
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
   * What an output of `facts` without an origin is computed from, as a phrase for messages (`the
   * masked column customers.email`, `the whole row of customers`, `the column ssn (masked by
   * name)`); undefined when none is computed from a masked column.
   */
  find(facts: StatementFacts): string | undefined {
    const lineage = facts.lineage;
    // EXPLAIN's result is a plan; a view's query does not run when the view is made.
    if (!lineage || facts.kinds[0] === 'explain' || (facts.ddl?.kind === 'view' && !facts.kinds.includes('select'))) return undefined;
    const several = lineage.branches.length > 1;
    for (const branch of lineage.branches) {
      for (const seg of branch) {
        // A star over a relation, or a column reference outside a set operation: RowDescription gives it its origin.
        if ('relation' in seg || ('lineage' in seg && seg.plain && !several)) continue;
        const hit = this.#in('any' in seg ? seg.any : seg.lineage, lineage.reads);
        if (hit) return hit;
      }
    }
    return undefined;
  }

  /** The masked column a value sent through a side channel (`facts.sideChannel`) is computed from; undefined when none. */
  sideChannel(facts: StatementFacts): string | undefined {
    const side = facts.sideChannel ? facts.lineage?.sideChannel : undefined;
    return side ? this.#in(side, facts.lineage?.reads ?? []) : undefined;
  }

  /**
   * What in a statement would take a masked value from under its rule, as a phrase: a rename of a
   * masked column, of a table or view with one, or of a schema (with rules on tables); a call of
   * dblink (rows another connection reads come back under no table's name); code whose reads and
   * writes hoop does not follow, a foreign table or server made (`facts.code`). Undefined when nothing does.
   */
  moves(facts: StatementFacts): string | undefined {
    if (!this.active) return undefined;
    const ddl = facts.ddl;
    if (ddl?.kind === 'renamed' && ddl.was && this.#rules.columnsOfSqlTable(sqlName(ddl.was)).size > 0) return `a rename of ${sqlName(ddl.was)}, whose columns the policy masks by its name`;
    if (ddl?.kind === 'altered') {
      const columns = this.#rules.columnsOfSqlTable(sqlName(ddl.relation));
      for (const from of Object.values(ddl.renamed ?? {})) {
        if (columns.has('*') || columns.has(from.toLowerCase()) || this.#rules.forName(from)) return `a rename of the masked column ${sqlName(ddl.relation)}.${from}`;
      }
    }
    if (ddl?.kind === 'schema' && this.#rules.hasColumnRules) return 'a rename of a schema, which would take its tables from under the rules that name them';
    // dblink returns the rows another connection reads (this database's too), under no table's name.
    const remote = facts.functions.find((f) => f.slice(f.lastIndexOf('.') + 1).startsWith('dblink'));
    if (remote !== undefined) return `a call of ${remote.slice(remote.lastIndexOf('.') + 1)}(), which returns rows another connection reads`;
    // Logical decoding returns the rows the write-ahead log holds (every column, as written), under no table's name.
    const decoded = facts.functions.map((f) => f.slice(f.lastIndexOf('.') + 1)).find((f) => LOGICAL_DECODING.test(f));
    if (decoded !== undefined) return `a call of ${decoded}(), which returns rows as the write-ahead log holds them`;
    return facts.code;
  }

  /** The masked source of a lineage (an opaque one carries what the statement reads), as a phrase. */
  #in(l: ColumnLineage, reads: readonly ColumnSource[]): string | undefined {
    for (const s of l.sources) {
      const hit = this.#phrase(s);
      if (hit) return hit;
    }
    if (l.opaque) for (const s of reads) if (this.#phrase(s)) return this.#phrase(s);
    return undefined;
  }

  #phrase(s: ColumnSource): string | undefined {
    const table = sqlName(s);
    const columns = this.#rules.columnsOfSqlTable(table);
    if (s.column === '*' && s.position === undefined) return columns.size > 0 ? `the whole row of ${table}` : undefined;
    if (s.column === '*') return columns.size > 0 ? `column ${s.position! + 1} of ${table}, which may be masked` : undefined;
    if (columns.has('*') || columns.has(s.column.toLowerCase())) return `the masked column ${table}.${s.column}`;
    return this.#rules.forName(s.column) ? `the column ${s.column} (masked by name)` : undefined;
  }
}
