/**
 * Resolving a result column's origin (table OID + attribute number, as RowDescription reports
 * them) to `schema.table.column` through the catalog, with a cache.
 *
 * PostgreSQL reports a view's column as the view's own, not as the table column behind it, so a
 * column rule on `customers.email` would not see `SELECT email FROM customer_view`. Views and
 * materialized views are therefore traced: the view's definition (`pg_get_viewdef`) is described
 * (Parse + Describe, never executed), which names the origin of each of its columns, followed
 * through further views; a column the view computes gets every column the view reads, through
 * views, from the rewrite rule's dependencies in `pg_depend`. A table's stored generated column
 * is traced the same way: it is computed from the columns its expression reads
 * ({@link generatedFromSql}), and masked as such a view column is.
 *
 * @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-ROWDESCRIPTION
 * @see https://www.postgresql.org/docs/current/catalog-pg-attribute.html
 * @see https://www.postgresql.org/docs/current/catalog-pg-class.html
 * @see https://www.postgresql.org/docs/current/catalog-pg-depend.html
 * @see https://www.postgresql.org/docs/current/functions-info.html (pg_get_viewdef)
 */
import { realClock } from '../../clock.js';
import type { ColumnOrigin } from './rules.js';
import { analyzeSql, type ColumnLineage } from '../sql/analyze.js';
import { asRowSource, segmentLineage } from '../sql/analyze/lineage.js';

/**
 * A resolved result column: the relation column RowDescription named, and for a view's column
 * what is behind it.
 * @see https://www.postgresql.org/docs/current/rules-views.html
 */
export interface ResolvedColumn extends ColumnOrigin {
  /** A view column that is a column of a table: that column (through any number of views). */
  base?: ColumnOrigin;
  /**
   * A view column the view computes (or one that could not be traced): every column the view
   * reads, through views; `column` is `*` where it reads a whole row.
   */
  computedFrom?: ColumnOrigin[];
  /**
   * A view column the view computes: what its definition computes it from (see
   * `sql/analyze/lineage.ts`), its relations named as `pg_get_viewdef` prints them for the
   * gateway's connection; absent when the definition could not be traced (then `computedFrom`).
   */
  lineage?: ColumnLineage;
  /**
   * A view column the view computes, where the view (or one it reads through) calls a function of
   * the database's own (outside pg_catalog and information_schema, of no extension): that function's name. Its body may
   * read any column: masked.
   */
  userCode?: string;
  /**
   * A view column whose definition the gateway cannot see as the session sees it (the session
   * replaced or altered a view it reads through, in its open transaction): masked.
   */
  unresolved?: true;
}

/**
 * Resolves a table OID and attribute number to the column's schema, table and name; undefined
 * when the catalog has no such (live) column.
 *
 * @see https://www.postgresql.org/docs/current/catalog-pg-attribute.html
 */
export interface CatalogResolver {
  columnName(tableOid: number, attnum: number): Promise<ResolvedColumn | undefined>;
  /**
   * The answer {@link columnName} would give, when it is known without a query (the relation
   * is cached and loaded); undefined when a query is needed.
   */
  cached?(tableOid: number, attnum: number): { column: ResolvedColumn | undefined } | undefined;
}

/** Runs one parameterized query on a connection of the gateway's own and resolves its rows. */
export type CatalogQuery = (sql: string, params: unknown[]) => Promise<Array<Record<string, unknown>>>;

/** The result columns' origins of a statement, from Parse + Describe (nothing executed). */
export type CatalogDescribe = (sql: string) => Promise<Array<{ tableOid: number; attnum: number }>>;

/** Options of a {@link PgCatalogResolver}. */
export interface PgCatalogResolverOptions {
  /**
   * Describes a statement without running it; used to trace a view's columns to its tables.
   * Without it, every column of a view is treated as computed from all the view reads.
   */
  describe?: CatalogDescribe;
  /** How long a relation's columns stay cached (renames and drops become visible after it). Default 60 s. */
  ttlMs?: number;
  /** Most relations cached at once; the oldest is evicted first. Default 1024. */
  maxRelations?: number;
  /** Clock, for tests. */
  now?: () => number;
  /**
   * The backend process id of the session whose results are planned: a view its open
   * transaction replaced (it holds the view's AccessExclusiveLock) is not traced from the
   * committed definition the gateway's connection sees.
   */
  sessionPid?: () => number | undefined;
}

/**
 * A scalar subquery: the tables the relation whose OID is `oid` (a SQL expression) inherits
 * from, through any number of levels (partitioned tables, inheritance parents), as JSON
 * `[[schema, table], ...]`, or NULL.
 * @see https://www.postgresql.org/docs/current/catalog-pg-inherits.html
 */
export function ancestorsJsonSql(oid: string): string {
  return `(with recursive ${inheritanceWalk('anc', 'inhrelid', 'inhparent', oid)} ${namesJson('anc')})`;
}

/**
 * A scalar subquery: as {@link ancestorsJsonSql}, the tables a relation inherits from and those
 * that inherit from it (its partitions, its children, at any depth): a column rule on either
 * applies to its column (a rule naming a partition masks the column read through its parent,
 * whose rows include the partition's).
 */
export function relativesJsonSql(oid: string): string {
  return `(with recursive ${inheritanceWalk('anc', 'inhrelid', 'inhparent', oid)}, ${inheritanceWalk('des', 'inhparent', 'inhrelid', oid)} ${namesJson('(select oid from anc union select oid from des)')})`;
}

// Operators qualified: the write guard runs these in the client's session, whose search_path could put its own `=` first.
const op = (o: string): string => `operator(pg_catalog.${o})`;

/** A recursive CTE `name(oid, depth)` of the relations `pg_inherits` leads to from `oid`, `from` one column `to` the other, 32 deep at most. */
function inheritanceWalk(name: string, from: string, to: string, oid: string): string {
  return (
    `${name}(oid, depth) as (select i.${to}, 1 from pg_catalog.pg_inherits i where i.${from} ${op('=')} ${oid} ` +
    `union select i.${to}, ${name}.depth ${op('+')} 1 from ${name} join pg_catalog.pg_inherits i on i.${from} ${op('=')} ${name}.oid where ${name}.depth ${op('<')} 32)`
  );
}

/** The `[schema, name]` of each relation of `oids` (a relation of an `oid` column), as JSON text. */
function namesJson(oids: string): string {
  return (
    `select pg_catalog.json_agg(pg_catalog.json_build_array(rn.nspname, rc.relname))::pg_catalog.text from ${oids} r ` +
    `join pg_catalog.pg_class rc on rc.oid ${op('=')} r.oid join pg_catalog.pg_namespace rn on rn.oid ${op('=')} rc.relnamespace`
  );
}

/**
 * A scalar subquery: the columns of its own table that the generated column `attnum` of the
 * relation whose OID is `oid` is computed from, as a JSON array of names (NULL for a column that
 * is not generated): the normal dependencies of its expression in `pg_depend`.
 * @see https://www.postgresql.org/docs/current/ddl-generated-columns.html
 * @see https://www.postgresql.org/docs/current/catalog-pg-attrdef.html
 */
export function generatedFromSql(oid: string, attnum: string, generated: string): string {
  return (
    `(case when ${generated} <> '' then (select pg_catalog.json_agg(ra.attname order by ra.attnum) from pg_catalog.pg_attrdef ad ` +
    "join pg_catalog.pg_depend d on d.classid = 'pg_catalog.pg_attrdef'::pg_catalog.regclass and d.objid = ad.oid " +
    "and d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass and d.refobjid = ad.adrelid and d.refobjsubid > 0 and d.refobjsubid <> ad.adnum " +
    `join pg_catalog.pg_attribute ra on ra.attrelid = ad.adrelid and ra.attnum = d.refobjsubid where ad.adrelid = ${oid} and ad.adnum = ${attnum}) end)`
  );
}

/** What {@link ancestorsJsonSql} returned, as ColumnOrigin.inheritsFrom. */
export function parseAncestors(json: unknown): Array<{ schema: string; table: string }> | undefined {
  if (typeof json !== 'string') return undefined;
  const list = JSON.parse(json) as Array<[string, string]>;
  return list.length > 0 ? list.map(([schema, table]) => ({ schema, table })) : undefined;
}

/**
 * All live user columns of one relation, its kind, for a view the version (xmin) of its rewrite
 * rule, and the tables it inherits from.
 */
const COLUMNS_SQL =
  'select n.nspname as schema, c.relname as table, c.relkind as kind, a.attnum as attnum, a.attname as column, ' +
  "(select r.xmin::text from pg_catalog.pg_rewrite r where r.ev_class = c.oid and r.rulename = '_RETURN') as rule, " +
  `${relativesJsonSql('c.oid')} as ancestors, ${generatedFromSql('c.oid', 'a.attnum', 'a.attgenerated')}::text as generated_from ` +
  'from pg_catalog.pg_attribute a ' +
  'join pg_catalog.pg_class c on c.oid = a.attrelid ' +
  'join pg_catalog.pg_namespace n on n.oid = c.relnamespace ' +
  'where a.attrelid = $1::oid and a.attnum > 0 and not a.attisdropped';

/** The definition of a view or materialized view. */
const VIEWDEF_SQL = 'select pg_catalog.pg_get_viewdef($1::oid) as def';

/**
 * Every relation column a view reads, through other views (depth-capped): the dependencies of
 * its rewrite rule; `*` where it depends on a whole relation (a whole-row reference); with the
 * tables each relation inherits from.
 * @see https://www.postgresql.org/docs/current/catalog-pg-depend.html
 * @see https://www.postgresql.org/docs/current/catalog-pg-rewrite.html
 */
const VIEW_READS_SQL =
  'with recursive reads(relid, attnum, depth) as (' +
  'select d.refobjid, d.refobjsubid, 1 from pg_catalog.pg_rewrite r ' +
  "join pg_catalog.pg_depend d on d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass and d.objid = r.oid " +
  "where r.ev_class = $1::oid and d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass and d.refobjid <> r.ev_class " +
  'union ' +
  'select d.refobjid, d.refobjsubid, reads.depth + 1 from reads join pg_catalog.pg_rewrite r on r.ev_class = reads.relid ' +
  "join pg_catalog.pg_depend d on d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass and d.objid = r.oid " +
  "where d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass and d.refobjid <> r.ev_class and reads.depth < 32) " +
  "select distinct n.nspname as schema, c.relname as table, coalesce(a.attname, '*') as column, " +
  `${relativesJsonSql('reads.relid')} as ancestors ` +
  'from reads join pg_catalog.pg_class c on c.oid = reads.relid join pg_catalog.pg_namespace n on n.oid = c.relnamespace ' +
  'left join pg_catalog.pg_attribute a on a.attrelid = reads.relid and a.attnum = reads.attnum and reads.attnum > 0';

/**
 * A function of the database's own (outside pg_catalog and information_schema, of no extension) that the view `$1`, or a
 * view it reads through, calls, itself or as an operator's: the first one's name, if any.
 * @see https://www.postgresql.org/docs/current/catalog-pg-depend.html
 */
const VIEW_USER_FUNCTION_SQL =
  'with recursive views(relid, depth) as (select $1::oid, 1 union ' +
  'select d.refobjid, views.depth + 1 from views join pg_catalog.pg_rewrite r on r.ev_class = views.relid ' +
  "join pg_catalog.pg_depend d on d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass and d.objid = r.oid " +
  "where d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass and d.refobjid <> r.ev_class and views.depth < 32) " +
  'select p.proname as name from views join pg_catalog.pg_rewrite r on r.ev_class = views.relid ' +
  "join pg_catalog.pg_depend d on d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass and d.objid = r.oid " +
  "left join pg_catalog.pg_operator o on d.refclassid = 'pg_catalog.pg_operator'::pg_catalog.regclass and o.oid = d.refobjid " +
  "join pg_catalog.pg_proc p on p.oid = case when d.refclassid = 'pg_catalog.pg_proc'::pg_catalog.regclass then d.refobjid else o.oprcode end " +
  "where p.pronamespace not in ('pg_catalog'::pg_catalog.regnamespace, 'information_schema'::pg_catalog.regnamespace) and not exists (select 1 from pg_catalog.pg_depend e " +
  "where e.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass and e.objid = p.oid and e.deptype = 'e') limit 1";

/**
 * The current version of the rewrite rules of some views, and whether the session's backend
 * holds one of them with AccessExclusiveLock (it replaced or altered it in its open transaction).
 * @see https://www.postgresql.org/docs/current/view-pg-locks.html
 */
const VIEWS_CHANGED_SQL =
  'select r.ev_class::int8 as oid, r.xmin::text as rule, exists (select 1 from pg_catalog.pg_locks l where l.pid = $2 and ' +
  "l.locktype = 'relation' and l.relation = r.ev_class and l.mode = 'AccessExclusiveLock') as locked " +
  "from pg_catalog.pg_rewrite r where r.ev_class = any($1::oid[]) and r.rulename = '_RETURN'";

/**
 * What each of a view's `width` columns is computed from, by its definition (one list, a set
 * operation's branches merged); undefined when the definition does not parse as a query of that width.
 */
function viewLineage(def: string, width: number): ColumnLineage[] | undefined {
  const a = analyzeSql(def);
  const l = a.ok && a.statements.length === 1 ? a.statements[0]!.lineage : undefined;
  if (!l) return undefined;
  const columns = asRowSource(l.branches);
  if (columns.length !== width || columns.some((c) => !('lineage' in c))) return undefined;
  return columns.map(segmentLineage);
}

/** How many views deep a column is traced before it counts as computed. */
const MAX_VIEW_DEPTH = 16;

interface Entry {
  at: number;
  columns: Promise<Map<number, ResolvedColumn>>;
  /** The columns, once loaded. */
  loaded?: Map<number, ResolvedColumn>;
  /**
   * For a view or materialized view: every view its columns were traced through (itself
   * included), with the version of its rewrite rule then; checked again before each use.
   */
  views?: Map<number, string>;
  /** A check of `views` under way (shared by the columns of one result). */
  checking?: Promise<'same' | 'changed' | 'locked'>;
}

/**
 * A {@link CatalogResolver} over `pg_catalog`, queried through a separate upstream connection.
 * The first lookup of a relation loads all of its columns at once; concurrent lookups of the same
 * relation share one query; a failed query is not cached. A table's columns are kept for `ttlMs`;
 * a view's trace is used only after one query has shown that no view it goes through was replaced
 * since it was traced (and that the session is not replacing one in its open transaction).
 *
 * @see https://www.postgresql.org/docs/current/catalog-pg-attribute.html
 * @see https://www.postgresql.org/docs/current/catalog-pg-rewrite.html
 */
export class PgCatalogResolver implements CatalogResolver {
  private get cache(): Map<number, Entry> {
    return (this.#cache ??= new Map());
  }
  #cache: Map<number, Entry> | undefined;
  private readonly ttlMs: number;
  private readonly maxRelations: number;
  private readonly now: () => number;
  private readonly describe: CatalogDescribe | undefined;
  private readonly sessionPid: () => number | undefined;

  constructor(
    private readonly query: CatalogQuery,
    options: PgCatalogResolverOptions = {},
  ) {
    this.ttlMs = options.ttlMs ?? 60_000;
    this.maxRelations = options.maxRelations ?? 1024;
    this.now = options.now ?? realClock.now;
    this.describe = options.describe;
    this.sessionPid = options.sessionPid ?? (() => undefined);
  }

  /** Forgets every cached relation (e.g. after DDL). */
  clear(): void {
    this.cache.clear();
  }

  /** Every column the view `oid` reads anywhere (its WHERE and joins too), through other views, as it is defined now; `*` for a whole row. */
  async viewReads(oid: number): Promise<ColumnOrigin[]> {
    return (await this.query(VIEW_READS_SQL, [oid])).map((r) => {
      const inheritsFrom = parseAncestors(r.ancestors);
      return { schema: String(r.schema), table: String(r.table), column: String(r.column), ...(inheritsFrom ? { inheritsFrom } : {}) };
    });
  }

  columnName(tableOid: number, attnum: number): Promise<ResolvedColumn | undefined> {
    return this.current(tableOid).then((cols) => cols.get(attnum));
  }

  /** Known without a query only for tables: a view's trace is checked before every use. */
  cached(tableOid: number, attnum: number): { column: ResolvedColumn | undefined } | undefined {
    const hit = this.cache.get(tableOid);
    if (!hit?.loaded || hit.views || this.now() - hit.at >= this.ttlMs) return undefined;
    return { column: hit.loaded.get(attnum) };
  }

  /** A relation's columns for a result about to be handed on: a view's trace checked first. */
  private async current(oid: number): Promise<Map<number, ResolvedColumn>> {
    const entry = this.entry(oid, 0);
    const cols = await entry.columns;
    if (!entry.views) return cols;
    entry.checking ??= this.check(entry.views).finally(() => (entry.checking = undefined));
    const state = await entry.checking;
    if (state === 'same') return cols;
    if (state === 'locked') return new Map([...cols].map(([n, c]) => [n, { schema: c.schema, table: c.table, column: c.column, unresolved: true as const }]));
    for (const view of entry.views.keys()) this.cache.delete(view);
    return this.entry(oid, 0).columns;
  }

  /** Whether the session's open transaction holds the view `oid` to replace or change it. */
  async #lockedBySession(oid: number): Promise<boolean> {
    const pid = this.sessionPid();
    if (pid === undefined) return false;
    const rows = await this.query(VIEWS_CHANGED_SQL, [[oid], pid]);
    return rows.some((r) => r.locked === true || r.locked === 't');
  }

  /** Whether the views of a trace are as they were traced. */
  private async check(views: Map<number, string>): Promise<'same' | 'changed' | 'locked'> {
    const rows = await this.query(VIEWS_CHANGED_SQL, [[...views.keys()], this.sessionPid() ?? 0]);
    if (rows.some((r) => r.locked === true || r.locked === 't')) return 'locked';
    const now = new Map(rows.map((r) => [Number(r.oid), String(r.rule)]));
    for (const [oid, rule] of views) if (now.get(oid) !== rule) return 'changed';
    return 'same';
  }

  private entry(oid: number, depth: number): Entry {
    const hit = this.cache.get(oid);
    const now = this.now();
    if (hit && (hit.views || now - hit.at < this.ttlMs)) return hit;
    if (hit) this.cache.delete(oid);
    const entry: Entry = { at: now, columns: undefined as unknown as Entry['columns'] };
    entry.columns = this.query(COLUMNS_SQL, [oid]).then(async (rows) => {
      const map = new Map<number, ResolvedColumn>();
      const inheritsFrom = parseAncestors(rows[0]?.ancestors);
      for (const r of rows) {
        const at = { schema: String(r.schema), table: String(r.table), ...(inheritsFrom ? { inheritsFrom } : {}) };
        // A stored generated column carries what it is computed from, as a view's computed column does.
        const from = typeof r.generated_from === 'string' ? (JSON.parse(r.generated_from) as string[]) : undefined;
        map.set(Number(r.attnum), { ...at, column: String(r.column), ...(from ? { computedFrom: from.map((column) => ({ ...at, column })) } : {}) });
      }
      const kind = rows[0]?.kind;
      if (kind === 'v' || kind === 'm') {
        // A view the session is replacing is not traced: its definition is not the committed one, and reading it would wait for the session's own lock.
        if (await this.#lockedBySession(oid)) {
          if (this.cache.get(oid) === entry) this.cache.delete(oid);
          return new Map([...map].map(([n, c]) => [n, { ...c, unresolved: true as const }]));
        }
        entry.views = new Map([[oid, String(rows[0]!.rule)]]);
        await this.traceView(oid, map, depth, entry.views);
      }
      return map;
    });
    this.cache.set(oid, entry);
    entry.columns.then(
      (loaded) => void (entry.loaded = loaded),
      () => {
        if (this.cache.get(oid) === entry) this.cache.delete(oid);
      },
    );
    while (this.cache.size > this.maxRelations) this.cache.delete(this.cache.keys().next().value!);
    return entry;
  }

  /** Fills in `base` or `computedFrom` for each column of the view `oid`; adds the views traced through to `views`. */
  private async traceView(oid: number, columns: Map<number, ResolvedColumn>, depth: number, views: Map<number, string>): Promise<void> {
    const reads = await this.viewReads(oid);
    const userCode = (await this.query(VIEW_USER_FUNCTION_SQL, [oid]))[0]?.name;
    let origins: Array<{ tableOid: number; attnum: number }> = [];
    let lineage: ColumnLineage[] | undefined;
    if (this.describe && depth < MAX_VIEW_DEPTH) {
      const def = (await this.query(VIEWDEF_SQL, [oid]))[0]?.def;
      if (typeof def === 'string') {
        origins = await this.describe(def);
        lineage = viewLineage(def, columns.size);
      }
    }
    for (const [attnum, col] of columns) {
      const o = origins[attnum - 1];
      let behind: ResolvedColumn | undefined;
      if (o && o.tableOid !== 0) {
        const inner = this.entry(o.tableOid, depth + 1);
        behind = (await inner.columns).get(o.attnum);
        for (const [v, rule] of inner.views ?? []) views.set(v, rule);
      }
      if (behind && !behind.computedFrom) {
        col.base = behind.base ?? { schema: behind.schema, table: behind.table, column: behind.column, ...(behind.inheritsFrom ? { inheritsFrom: behind.inheritsFrom } : {}) };
      } else {
        col.computedFrom = behind?.computedFrom ?? reads;
        const computed = behind ? behind.lineage : lineage?.[attnum - 1];
        if (computed) col.lineage = computed;
        if (typeof userCode === 'string') col.userCode = userCode;
      }
    }
  }
}
