/**
 * What the relations a statement names read beyond themselves, for the session index, the audit
 * stream and the alerts: a view (or materialized view) reads the columns of the tables under it
 * (through other views), a partition or a child table is read as part of its parents, and a parent
 * (partitioned, or an inheritance parent) reads its descendants at any depth, their same-named
 * columns (the statement's columns of the parent, or those a view reads of it; the index maps them,
 * see {@link Reads}). So "who read `customers.card`" finds a session that read it through a view
 * `v_cards`, "who read `payments_2024.card`" one that ran `select card from payments`, and a
 * `rows-read` alert on `customers` counts the rows of `select * from v_cards`. The parse alone
 * names only `v_cards` (or `payments`), and the server's RowDescription names the view too. The
 * parse does not tell `ONLY payments` (nor COPY TO, which reads only the table): such a read counts
 * its descendants too, a read said that was not, never one missed. A name with more than
 * {@link MAX_DESCENDANTS} descendants reads `*`.
 *
 * Looked up in the connection's catalog ({@link RELATIONS_NAMED_SQL}:
 * a name means every relation so named in any schema, since the session's search_path decides),
 * off the relay's path: a statement whose names are all known is told at once; else it is told
 * once the lookup answers. Answers are kept for {@link TTL_MS} per name, per connection (one cache
 * per connection; the lookups run on the connection's shared catalog connection, which masking's
 * lookups use too, closed when idle). A name the
 * catalog does not know (a temporary relation gone, one made in the session's open transaction)
 * or a lookup that fails reads `*`: anything (as a table named in a string does), never nothing.
 *
 * A statement that may redefine a relation (DDL, a DO block, a CALL) on the connection, from any
 * session, drops what was known ({@link RelationReads.changed}): for {@link SETTLE_MS} after it,
 * and for a lookup it overlaps, names read `*`. So reading through a view and then replacing it,
 * in the same message or the next, never leaves the read counted by the new definition.
 *
 * Functions a statement calls come as `name()` (src/postgres/pipeline/statement-gate.ts): one of
 * the database's own (not in `pg_catalog` or `information_schema`) may read any table, and what it
 * reads is not in the catalog (a function's body is text), so a statement that calls one reads `*`;
 * PostgreSQL's own functions read nothing more.
 *
 * @see https://www.postgresql.org/docs/current/catalog-pg-depend.html
 * @see https://www.postgresql.org/docs/current/catalog-pg-inherits.html
 */
import { realClock } from '../../clock.js';
import type { Relations } from '../../session/catalog-judge.js';
import { CatalogChanges, ROWS_ELSEWHERE, touches, WRITES_BEYOND } from '../../policy/catalog-changes.js';
import type { RoundTripConnection } from '../wire/client.js';
import { type CatalogConnection, textArrayParam } from '../pipeline/masking/catalog-connection.js';

/**
 * Every relation the (lower-case) names in `$1` (text[]) may mean, in any schema, with, for views
 * and materialized views, every column they read through other views (`*` for a whole row), and
 * the tables any of these inherit from (partitioned tables, inheritance parents: `*`): rows of
 * `name, oid, kind` and `schema, table, column` of what is read (null for a plain table). Reading
 * a parent reads its descendants' rows (partitions at any depth, inheritance children): rows with
 * `descends` set name each descendant of the named relation itself (which of its columns are read
 * the statement says: the same-named ones), and a column a view reads of a parent comes with the
 * same-named column of each of the parent's descendants. A name is `table` or `schema.table`, the
 * analysis's lower-cased, quotes gone: it means a relation so named in any schema, and one of that
 * schema and name at any of its dots (`a.b` may be `"a.b"`).
 * @see https://www.postgresql.org/docs/current/catalog-pg-depend.html
 * @see https://www.postgresql.org/docs/current/catalog-pg-inherits.html
 */
const RELATIONS_NAMED_SQL =
  'with recursive cand as (select distinct w.name, c.oid, c.relkind from unnest($1::text[]) as w(name) ' +
  // Each relation name the string may end in (the whole, and what follows each dot): joined by equality.
  "cross join lateral (select substring(w.name from p + 1) as rel from generate_series(0, length(w.name) - 1) as p where p = 0 or substring(w.name from p for 1) = '.') as r " +
  'join pg_catalog.pg_class c on lower(c.relname) = r.rel join pg_catalog.pg_namespace n on n.oid = c.relnamespace ' +
  "where (lower(c.relname) = w.name or lower(n.nspname) || '.' || lower(c.relname) = w.name) and c.relkind in ('r','p','v','m','f')), " +
  'reads(root, relid, attnum, depth) as (' +
  'select cand.oid, d.refobjid, d.refobjsubid, 1 from cand join pg_catalog.pg_rewrite r on r.ev_class = cand.oid ' +
  "join pg_catalog.pg_depend d on d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass and d.objid = r.oid " +
  "where d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass and d.refobjid <> r.ev_class " +
  'union select reads.root, d.refobjid, d.refobjsubid, reads.depth + 1 from reads join pg_catalog.pg_rewrite r on r.ev_class = reads.relid ' +
  "join pg_catalog.pg_depend d on d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass and d.objid = r.oid " +
  "where d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass and d.refobjid <> r.ev_class and reads.depth < 32), " +
  // The tables a relation (or one a view reads) inherits from: read as whole rows.
  'anc(root, relid, depth) as (select x.root, i.inhparent, 1 from (select cand.oid as root, cand.oid as rel from cand union select root, relid from reads) x ' +
  'join pg_catalog.pg_inherits i on i.inhrelid = x.rel union select anc.root, i.inhparent, anc.depth + 1 from anc ' +
  'join pg_catalog.pg_inherits i on i.inhrelid = anc.relid where anc.depth < 32), ' +
  // The descendants of a named relation: its rows are theirs too.
  'des(root, relid, depth) as (select cand.oid, i.inhrelid, 1 from cand join pg_catalog.pg_inherits i on i.inhparent = cand.oid ' +
  'union select des.root, i.inhrelid, des.depth + 1 from des join pg_catalog.pg_inherits i on i.inhparent = des.relid where des.depth < 32), ' +
  // The descendants of a table a view reads, with the (same-named) column read.
  "vdes(root, relid, col, depth) as (select reads.root, i.inhrelid, coalesce(a.attname::text, '*'), 1 from reads " +
  'join pg_catalog.pg_inherits i on i.inhparent = reads.relid ' +
  'left join pg_catalog.pg_attribute a on a.attrelid = reads.relid and a.attnum = reads.attnum and reads.attnum > 0 ' +
  'union select vdes.root, i.inhrelid, vdes.col, vdes.depth + 1 from vdes join pg_catalog.pg_inherits i on i.inhparent = vdes.relid where vdes.depth < 32), ' +
  // The tables a write reaches through foreign keys that cascade, set null or set default (at any depth).
  'fk(root, relid, depth) as (select x.root, k.conrelid, 1 from (select cand.oid as root, cand.oid as rel from cand union select root, relid from reads union select root, relid from des) x ' +
  "join pg_catalog.pg_constraint k on k.confrelid = x.rel and k.contype = 'f' and (k.confdeltype in ('c','n','d') or k.confupdtype in ('c','n','d')) " +
  "union select fk.root, k.conrelid, fk.depth + 1 from fk join pg_catalog.pg_constraint k on k.confrelid = fk.relid and k.contype = 'f' and (k.confdeltype in ('c','n','d') or k.confupdtype in ('c','n','d')) where fk.depth < 32) " +
  "select distinct cand.name, cand.oid::int8 as oid, cand.relkind as kind, n.nspname as schema, c.relname as table, case when reads.relid is null then null else coalesce(a.attname::text, '*') end as column, null::text as descends " +
  'from cand left join reads on reads.root = cand.oid left join pg_catalog.pg_class c on c.oid = reads.relid ' +
  'left join pg_catalog.pg_namespace n on n.oid = c.relnamespace ' +
  'left join pg_catalog.pg_attribute a on a.attrelid = reads.relid and a.attnum = reads.attnum and reads.attnum > 0 ' +
  "union select cand.name, cand.oid::int8, cand.relkind, n.nspname, c.relname, '*', null from cand join anc on anc.root = cand.oid " +
  'join pg_catalog.pg_class c on c.oid = anc.relid join pg_catalog.pg_namespace n on n.oid = c.relnamespace ' +
  "union select cand.name, cand.oid::int8, cand.relkind, n.nspname, c.relname, null, '1' from cand join des on des.root = cand.oid " +
  'join pg_catalog.pg_class c on c.oid = des.relid join pg_catalog.pg_namespace n on n.oid = c.relnamespace ' +
  'union select cand.name, cand.oid::int8, cand.relkind, n.nspname, c.relname, vdes.col, null from cand join vdes on vdes.root = cand.oid ' +
  'join pg_catalog.pg_class c on c.oid = vdes.relid join pg_catalog.pg_namespace n on n.oid = c.relnamespace ' +
  "union select cand.name, cand.oid::int8, cand.relkind, n.nspname, c.relname, null, 'w' from cand join fk on fk.root = cand.oid " +
  'join pg_catalog.pg_class c on c.oid = fk.relid join pg_catalog.pg_namespace n on n.oid = c.relnamespace ' +
  // A write that reaches further by other commands: a foreign key's action, or a rule (not a view's own) on what it writes through.
  "union select cand.name, cand.oid::int8, cand.relkind, null, '!', null, 'w' from cand where exists (select 1 from fk where fk.root = cand.oid) " +
  'or exists (select 1 from (select cand.oid as rel union select relid from reads where reads.root = cand.oid) x ' +
  "join pg_catalog.pg_rewrite r on r.ev_class = x.rel and r.rulename <> '_RETURN') " +
  // A foreign table's rows are elsewhere (perhaps a table of this database): one named, or under a view named.
  "union select cand.name, cand.oid::int8, cand.relkind, null, '@', null, 'w' from cand where cand.relkind = 'f' " +
  "or exists (select 1 from reads join pg_catalog.pg_class f on f.oid = reads.relid where reads.root = cand.oid and f.relkind = 'f')";

/** How long what a name reads is taken as known. */
export const TTL_MS = 60_000;
/** Descendants of one name told one by one; past it the name reads anything (`*`): its statements' events stay small. */
const MAX_DESCENDANTS = 1000;
/** Names kept per connection; past it the oldest go. */
const MAX_NAMES = 4096;
/** Statements of a session waiting to be told past which the next are told as reading anything, not looked up. */
const MAX_WAITING = 1000;
/** After a change of the catalog through the gateway, names read anything this long (the change may not be committed yet). */
export const SETTLE_MS = 5_000;
/** After a failed lookup, its names read anything for this long before they are asked again (a down catalog is not asked per statement). */
const RETRY_MS = 5_000;

/**
 * What some relations read beyond themselves: base tables (`schema.table`) and their columns
 * (`schema.table.column`, `schema.table.*`), or `*` for anything; `descendants`: each named
 * relation (`of`, lower-case as the statement names it) with a partition or inheritance child of
 * it at any depth (`table`, `schema.table`, in `tables` too), whose same-named columns a statement
 * reads (or writes) when it reads (or writes) the named one's.
 */
export interface Reads {
  tables: readonly string[];
  columns: readonly string[];
  descendants?: ReadonlyArray<{ of: string; table: string }>;
  /** What a write to them reaches beyond what they read, for a judgment: tables a foreign key's action writes, {@link WRITES_BEYOND} when a write may reach them by other commands (a key's action, a rule), {@link ROWS_ELSEWHERE} when their rows are a foreign table's. */
  writes?: readonly string[];
}

const NOTHING: Reads = { tables: [], columns: [] };
const ANYTHING: Reads = { tables: ['*'], columns: [] };

/** A function's name as the statements' tables carry it: `name()` (see the module documentation). */
const isFunction = (name: string): boolean => name.endsWith('()');
/** `name` of `schema.name()`. */
const functionName = (f: string): string => f.slice(f.lastIndexOf('.') + 1, -2);

/**
 * The functions of `$1` (text[], bare lower-case names) that the database defines outside its own
 * schemas, in any schema: the ones that may read any table.
 * @see https://www.postgresql.org/docs/current/catalog-pg-proc.html
 */
const OWN_FUNCTIONS_SQL =
  'select distinct lower(p.proname) as name from pg_catalog.pg_proc p join pg_catalog.pg_namespace n on n.oid = p.pronamespace ' +
  "where lower(p.proname) = any($1::text[]) and n.nspname not in ('pg_catalog', 'information_schema')";

/** What one connection's relations read, by name: see the module documentation. */
export class RelationReads implements Relations {
  readonly #catalog: CatalogConnection;
  readonly #now: () => number;
  readonly #settleMs: number;
  readonly #known = new Map<string, { reads: Reads; at: number }>();
  /** When a statement last may have redefined a relation here. */
  #changedAt = Number.NEGATIVE_INFINITY;
  /** What changed through the gateway, and what open transactions are redefining. */
  readonly changes = new CatalogChanges();

  /** `catalog`: the connection's catalog connection of the gateway's own, with its credentials; `settleMs`: how long names read anything after a change ({@link SETTLE_MS} unless told). */
  constructor(catalog: CatalogConnection, now: () => number = realClock.now, settleMs = SETTLE_MS) {
    this.#catalog = catalog;
    this.#now = now;
    this.#settleMs = settleMs;
  }

  /**
   * A statement may have redefined a relation (`names`: those, bare and lower-case; none: any):
   * what is known of them (and of what reads through them) goes, and names read anything for a while.
   */
  changed(names?: readonly string[]): void {
    const at = this.#now();
    this.#changedAt = at;
    const only = this.changes.note(at, names);
    if (!only) return this.#known.clear();
    for (const [name, k] of this.#known) if (touches(only, name, [...k.reads.tables, ...(k.reads.writes ?? [])])) this.#known.delete(name);
  }

  /**
   * What a statement naming `name` (lower-case) is judged to reach beyond it: the relations under
   * it as {@link Reads.tables}, `['*']` when the catalog does not have it; undefined when it is
   * not known now. Unlike {@link known}, a change's settling does not make it anything: a judgment
   * asks the catalog again after a change ({@link prefetch}), and names an open transaction
   * redefines are held apart ({@link redefining}).
   */
  under(name: string): readonly string[] | undefined {
    const k = this.#known.get(name);
    if (!k || this.#now() - k.at > TTL_MS) return undefined;
    return k.reads.writes ? [...k.reads.tables, ...k.reads.writes] : k.reads.tables;
  }

  /** Looks up those of `names` (lower-case) not known now, even while a change settles. */
  async prefetch(names: readonly string[]): Promise<void> {
    const missing = [...new Set(names)].filter((n) => this.under(n) === undefined);
    if (missing.length > 0) await this.#fetch(missing);
  }

  /** What `names` read, if every one is known now; undefined when a lookup is needed. */
  known(names: readonly string[]): Reads | undefined {
    if (this.#now() - this.#changedAt < this.#settleMs && names.some((n) => n !== '*')) return ANYTHING;
    const parts: Reads[] = [];
    for (const name of names) {
      if (name === '*') continue; // anything already
      const k = this.#known.get(name.toLowerCase());
      if (!k || this.#now() - k.at > TTL_MS) return undefined;
      parts.push(k.reads);
    }
    return merged(parts);
  }

  /** What `names` read, looked up for those not known now. */
  async lookup(names: readonly string[]): Promise<Reads> {
    const wanted = [...new Set(names.map((n) => n.toLowerCase()))].filter((n) => n !== '*');
    const missing = wanted.filter((n) => this.known([n]) === undefined);
    const since = this.#changedAt;
    if (missing.length > 0) await this.#fetch(missing);
    // A change during the lookup: what it answered may be the new definition, not the one the statement read.
    if (this.#changedAt !== since) return ANYTHING;
    return this.known(wanted) ?? ANYTHING;
  }

  async #fetch(names: readonly string[]): Promise<void> {
    const started = this.#now();
    const catalog = this.#catalog;
    const relations = names.filter((n) => !isFunction(n));
    const functions = names.filter(isFunction);
    let rows: Array<Record<string, string | null>> = [];
    let own: Set<string>;
    try {
      if (relations.length > 0) rows = await catalog.prepared(RELATIONS_NAMED_SQL, [textArrayParam(relations)]);
      const bare = functions.map(functionName);
      own = new Set(bare.length > 0 ? (await catalog.prepared(OWN_FUNCTIONS_SQL, [textArrayParam(bare)])).map((r) => r.name ?? '') : []);
    } catch {
      // These read anything until they are asked again, a few seconds on.
      const at = this.#now() - TTL_MS + RETRY_MS;
      for (const name of names) this.#remember(name, { reads: ANYTHING, at });
      return;
    }
    // A change during the lookup: the answers it may have made stale are not kept.
    const stale = this.changes.staleSince(started);
    if (!stale) return;
    const changedSince = this.#changedAt >= started;
    const at = this.#now();
    for (const f of functions) if (!changedSince) this.#remember(f, { reads: own.has(functionName(f)) ? ANYTHING : NOTHING, at });
    const found = new Map<string, { tables: Set<string>; columns: Set<string>; descendants: Set<string>; writes: Set<string> }>();
    for (const r of rows) {
      if (r.name === null || r.name === undefined) continue;
      const f = found.get(r.name) ?? { tables: new Set<string>(), columns: new Set<string>(), descendants: new Set<string>(), writes: new Set<string>() };
      found.set(r.name, f);
      if (r.table === null || r.table === undefined) continue;
      if (r.descends === 'w') {
        f.writes.add(r.table === WRITES_BEYOND || r.table === ROWS_ELSEWHERE ? r.table : `${r.schema}.${r.table}`);
        continue;
      }
      const table = `${r.schema}.${r.table}`;
      // A descendant of the named relation: the statement's columns of the name are its columns too.
      if (r.descends) {
        f.tables.add(table);
        f.descendants.add(table);
        continue;
      }
      // A plain table (no column): it reads only itself, which the statement names already.
      if (r.column === null || r.column === undefined) continue;
      f.tables.add(table);
      f.columns.add(`${table}.${r.column}`);
    }
    for (const name of relations) {
      const f = found.get(name);
      if (stale(name, [...(f?.tables ?? []), ...(f?.writes ?? [])])) continue;
      if (!f || f.descendants.size > MAX_DESCENDANTS) {
        this.#remember(name, { reads: ANYTHING, at });
        continue;
      }
      const descendants = [...f.descendants].map((table) => ({ of: name, table }));
      const writes = f.writes.size > 0 ? { writes: [...f.writes] } : {};
      this.#remember(name, { reads: { tables: [...f.tables], columns: [...f.columns], ...(descendants.length > 0 ? { descendants } : {}), ...writes }, at });
    }
  }

  #remember(name: string, entry: { reads: Reads; at: number }): void {
    this.#known.delete(name);
    this.#known.set(name, entry);
    if (this.#known.size > MAX_NAMES) this.#known.delete(this.#known.keys().next().value!);
  }
}

function merged(parts: readonly Reads[]): Reads {
  if (parts.every((p) => p.tables.length === 0)) return NOTHING;
  const descendants = parts.flatMap((p) => p.descendants ?? []);
  return {
    tables: [...new Set(parts.flatMap((p) => p.tables))],
    columns: [...new Set(parts.flatMap((p) => p.columns))],
    ...(descendants.length > 0 ? { descendants } : {}),
  };
}

/** How long a connection's shared catalog connection stays open unused (while sessions hold it). */
export const CATALOG_IDLE_MS = 30_000;

/**
 * Per connection and credentials, for the gateway's life: the catalog connection of the gateway's
 * own that its sessions' masking and relation reads share (open while sessions hold it, ended
 * after `idleMs` unused or soon after the last session), and what its relations read.
 */
export class CatalogsByConnection {
  readonly #by = new Map<string, { catalog: CatalogConnection; reads: RelationReads }>();

  /** `settleMs`: how long a connection's names read anything after a change of its catalog ({@link SETTLE_MS} unless told). */
  constructor(
    private readonly make: (open: () => Promise<RoundTripConnection>) => CatalogConnection,
    private readonly settleMs = SETTLE_MS,
  ) {}

  /** The ones for `key` (what the connection is and signs in with), made with `open` the first time. */
  for(key: string, open: () => Promise<RoundTripConnection>): { catalog: CatalogConnection; reads: RelationReads } {
    let entry = this.#by.get(key);
    if (!entry) {
      const catalog = this.make(open);
      entry = { catalog, reads: new RelationReads(catalog, realClock.now, this.settleMs) };
      this.#by.set(key, entry);
      // Connections changed by policy reloads leave theirs behind: the oldest go.
      if (this.#by.size > 64) {
        const [oldest, old] = this.#by.entries().next().value!;
        old.catalog.close();
        this.#by.delete(oldest);
      }
    }
    return entry;
  }
}

/**
 * Passes each statement's end on with what its relations read (its `tables` and the `reads`
 * told), in the order the statements ended: one whose names are known goes at once, unless an
 * earlier one still waits for its lookup.
 */
export class StatementReads<S extends { tables: readonly string[] }> {
  #told: Promise<void> | undefined;
  /** Statements waiting to be told. */
  #waiting = 0;

  constructor(
    private readonly reads: RelationReads,
    private readonly onStatement: (statement: S) => void,
    private readonly onReads: ((reads: Reads) => void) | undefined,
  ) {}

  readonly tell = (statement: S): void => {
    const known = statement.tables.length === 0 ? NOTHING : this.reads.known(statement.tables);
    if (known && !this.#told) return this.#pass(statement, known);
    // A client that sends new names faster than they are looked up gets no more lookups: its statements read anything.
    const lookup = this.#waiting >= MAX_WAITING ? (): Promise<Reads> => Promise.resolve(ANYTHING) : (): Promise<Reads> => this.reads.lookup(statement.tables);
    this.#waiting++;
    const told = (this.#told ?? Promise.resolve())
      .then(async () => this.#pass(statement, known ?? (await lookup())))
      .catch(() => undefined)
      .finally(() => this.#waiting--);
    this.#told = told;
    void told.then(() => {
      if (this.#told === told) this.#told = undefined;
    });
  };

  /** Settles once every statement told so far was passed on (undefined: none waits). */
  settled(): Promise<void> | undefined {
    return this.#told;
  }

  #pass(statement: S, reads: Reads): void {
    const named = statement.tables.some(isFunction) ? statement.tables.filter((t) => !isFunction(t)) : statement.tables;
    if (reads.tables.length === 0) return this.onStatement(named === statement.tables ? statement : { ...statement, tables: named });
    this.onReads?.(reads);
    this.onStatement({ ...statement, tables: [...new Set([...named, ...reads.tables])] });
  }
}
