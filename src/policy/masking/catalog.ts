/**
 * Resolving a result column's origin (table OID + attribute number, as RowDescription reports
 * them) to `schema.table.column` through the catalog, with a cache.
 *
 * @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-ROWDESCRIPTION
 * @see https://www.postgresql.org/docs/current/catalog-pg-attribute.html
 * @see https://www.postgresql.org/docs/current/catalog-pg-class.html
 */
import type { ColumnOrigin } from './rules.js';

/**
 * Resolves a table OID and attribute number to the column's schema, table and name; undefined
 * when the catalog has no such (live) column.
 *
 * @see https://www.postgresql.org/docs/current/catalog-pg-attribute.html
 */
export interface CatalogResolver {
  columnName(tableOid: number, attnum: number): Promise<ColumnOrigin | undefined>;
}

/** Runs one parameterized query on a connection of the gateway's own and resolves its rows. */
export type CatalogQuery = (sql: string, params: unknown[]) => Promise<Array<Record<string, unknown>>>;

/** Options of a {@link PgCatalogResolver}. */
export interface PgCatalogResolverOptions {
  /** How long a relation's columns stay cached (renames and drops become visible after it). Default 60 s. */
  ttlMs?: number;
  /** Most relations cached at once; the oldest is evicted first. Default 1024. */
  maxRelations?: number;
  /** Clock, for tests. */
  now?: () => number;
}

/** All live user columns of one relation. */
const COLUMNS_SQL =
  'select n.nspname as schema, c.relname as table, a.attnum as attnum, a.attname as column ' +
  'from pg_catalog.pg_attribute a ' +
  'join pg_catalog.pg_class c on c.oid = a.attrelid ' +
  'join pg_catalog.pg_namespace n on n.oid = c.relnamespace ' +
  'where a.attrelid = $1::oid and a.attnum > 0 and not a.attisdropped';

interface Entry {
  at: number;
  columns: Promise<Map<number, ColumnOrigin>>;
}

/**
 * A {@link CatalogResolver} over `pg_catalog`, queried through a separate upstream connection.
 * The first lookup of a table loads all of its columns at once; concurrent lookups of the same
 * table share one query; a failed query is not cached.
 *
 * @see https://www.postgresql.org/docs/current/catalog-pg-attribute.html
 */
export class PgCatalogResolver implements CatalogResolver {
  private readonly cache = new Map<number, Entry>();
  private readonly ttlMs: number;
  private readonly maxRelations: number;
  private readonly now: () => number;

  constructor(
    private readonly query: CatalogQuery,
    options: PgCatalogResolverOptions = {},
  ) {
    this.ttlMs = options.ttlMs ?? 60_000;
    this.maxRelations = options.maxRelations ?? 1024;
    this.now = options.now ?? Date.now;
  }

  /** Forgets every cached relation (e.g. after DDL). */
  clear(): void {
    this.cache.clear();
  }

  columnName(tableOid: number, attnum: number): Promise<ColumnOrigin | undefined> {
    return this.relation(tableOid).then((cols) => cols.get(attnum));
  }

  private relation(oid: number): Promise<Map<number, ColumnOrigin>> {
    const hit = this.cache.get(oid);
    const now = this.now();
    if (hit && now - hit.at < this.ttlMs) return hit.columns;
    if (hit) this.cache.delete(oid);
    const columns = this.query(COLUMNS_SQL, [oid]).then((rows) => {
      const map = new Map<number, ColumnOrigin>();
      for (const r of rows) map.set(Number(r.attnum), { schema: String(r.schema), table: String(r.table), column: String(r.column) });
      return map;
    });
    const entry: Entry = { at: now, columns };
    this.cache.set(oid, entry);
    columns.catch(() => {
      if (this.cache.get(oid) === entry) this.cache.delete(oid);
    });
    while (this.cache.size > this.maxRelations) this.cache.delete(this.cache.keys().next().value!);
    return columns;
  }
}
