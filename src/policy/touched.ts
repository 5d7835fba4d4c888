/**
 * What SQL touches, for the session index and the alerts: the tables it names, those it writes
 * to, and the columns it names ({@link tablesTouched}), read off the parse the policy made.
 */
import type { Analysis, StatementFacts } from './sql/analyze.js';
import { KIND_UMBRELLAS } from './schema.js';

/**
 * Tables (and views) SQL names, lower-case as written; `written`: the ones a write or DDL
 * statement names; `columns`: the columns its statements read or name, as `table.column` (see
 * {@link columnsNamed}).
 */
export interface TablesTouchedBy {
  tables: readonly string[];
  written: readonly string[];
  columns: readonly string[];
  /** It declares a cursor (whose rows a later FETCH reads from its tables). */
  declares?: true;
  /** It fetches from a cursor (FETCH, MOVE): its rows come from the tables of the cursor's DECLARE. */
  fetches?: true;
  /** The functions it calls, lower-case as written (one of the database's own may read any table: the gateway looks them up). */
  functions?: readonly string[];
  /** It may change what a relation reads (DDL, a DO block, a CALL): what the gateway knew of the catalog is stale. */
  redefines?: true;
}

/** Kinds after which what a relation reads may have changed. */
export const REDEFINING_KINDS: ReadonlySet<string> = new Set<string>([...KIND_UMBRELLAS.ddl, 'do', 'call']);

/** The policy's `write` and `ddl` umbrella kinds: a statement of one of these writes to the tables it names. */
const WRITE_KINDS = new Set<string>([...KIND_UMBRELLAS.write, ...KIND_UMBRELLAS.ddl]);

/**
 * The columns one statement names, as `table.column` with the table as the statement names it
 * (`schema.table` or `table`): a reference qualified by a table or its alias (`c.email` with
 * `customers c`); `table.*` for a `*` or a whole row (`row_to_json(c)`). An unqualified reference
 * the parse cannot tie to one table (the parse knows no table's columns) counts for each table
 * the statement names: the index may then say a column was read that was not, never the reverse.
 */
export function columnsNamed(st: Pick<StatementFacts, 'tables' | 'refs' | 'outputs'>, into: Set<string>): void {
  const aliasOf = (name: string): string | undefined => (Object.hasOwn(st.outputs.aliases, name) ? st.outputs.aliases[name] : undefined);
  for (const ref of st.refs) {
    const parts = ref.split('.');
    const column = parts[parts.length - 1]!;
    if (parts.length === 1) {
      // A table's or an alias's name alone is its whole row.
      const whole = aliasOf(column) ?? st.tables.find((t) => t === column || t.endsWith(`.${column}`));
      if (whole !== undefined) into.add(`${whole}.*`);
      else for (const t of st.tables) into.add(`${t}.${column}`);
      continue;
    }
    const qualifier = parts.slice(0, -1).join('.');
    const last = parts[parts.length - 2]!;
    const table = aliasOf(last) ?? st.tables.find((t) => t === qualifier || t.endsWith(`.${qualifier}`));
    if (table !== undefined) into.add(`${table}.${column}`);
  }
}

/** What a decision's `touched` says of an analysis (nothing for SQL that did not parse). */
export function tablesTouched(analysis: Analysis): TablesTouchedBy {
  if (!analysis.ok) return { tables: [], written: [], columns: [] };
  const tables = new Set<string>();
  const written = new Set<string>();
  const columns = new Set<string>();
  let declares = false;
  let fetches = false;
  const functions = new Set<string>();
  let redefines = false;
  for (const st of analysis.statements) {
    redefines ||= st.kinds.some((k) => REDEFINING_KINDS.has(k));
    for (const t of st.tables) tables.add(t);
    for (const f of st.functions) functions.add(f);
    if (st.kinds.some((k) => WRITE_KINDS.has(k))) for (const t of st.tables) written.add(t);
    columnsNamed(st, columns);
    // COPY of a table reads (TO) or writes (FROM) its columns: those listed, else every one.
    if (st.copy?.relation) {
      const { table, schema } = st.copy.relation;
      const name = (schema ? `${schema}.${table}` : table).toLowerCase();
      for (const c of st.copy.columns ?? ['*']) columns.add(`${name}.${c.toLowerCase()}`);
    }
    declares ||= st.kinds.includes('cursor') && !st.fetch;
    fetches ||= st.fetch === true;
  }
  return {
    tables: [...tables],
    written: [...written],
    columns: [...columns],
    ...(declares ? { declares: true as const } : {}),
    ...(fetches ? { fetches: true as const } : {}),
    ...(functions.size > 0 ? { functions: [...functions] } : {}),
    ...(redefines ? { redefines: true as const } : {}),
  };
}
