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

/**
 * Functions that read rows under no table's name or keep a value under a name of the server's, which
 * masking cannot follow: logical decoding and replication slots and origins (named by a value),
 * the server's files (`pg_read_binary_file` of a table's file), pageinspect's pages and pg_walinspect's
 * WAL records. Under masking, a call of one is refused whatever its arguments.
 */
const UNMASKABLE = new RegExp(
  `^(${[
    'pg_logical_slot_(peek|get)_\\w+',
    'pg_(create|copy)_(logical|physical)_replication_slot',
    'pg_replication_slot_advance',
    'pg_replication_origin_\\w+',
    'pg_create_restore_point',
    'pg_read_(binary_)?file',
    'get_raw_page',
    '\\w+_page_items',
    'heap_page_item_attrs',
    'tuple_data_split',
    'fsm_page_contents',
    'pg_get_wal_\\w+',
  ].join('|')})$`,
);
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
    const unmaskable = facts.functions.map((f) => f.slice(f.lastIndexOf('.') + 1)).find((f) => UNMASKABLE.test(f));
    if (unmaskable !== undefined) return `a call of ${unmaskable}(), which reads rows or keeps a value where no rule masks them`;
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
