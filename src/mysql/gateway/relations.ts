/**
 * What a MySQL connection's relations are, for rules on tables (src/session/catalog-judge.ts): a
 * base table whose engine keeps its own rows is itself; a view is the tables its definition
 * reads, through other views (information_schema.VIEWS, read as MySQL in the view's database); a
 * table whose rows are another's (MERGE, FEDERATED, CONNECT) is ROWS_ELSEWHERE, and a view whose
 * definition the gateway's user may not read and a name the catalog lacks are `*`. Looked up on a connection of
 * the gateway's own with the connection's credentials, shared by its sessions; kept a minute per
 * name; a change through the gateway drops what it may have made stale
 * (src/policy/catalog-changes.ts). MySQL's DDL commits as it runs: a session's change settles once
 * the server answered it.
 *
 * @see https://mariadb.com/kb/en/information-schema-views-table/
 */
import { createHash } from 'node:crypto';
import { realClock } from '../../clock.js';
import type { MysqlConnection } from '../../config/connection.js';
import { CatalogChanges, ROWS_ELSEWHERE, touches } from '../../policy/catalog-changes.js';
import { analyzeMysql, loadMysqlParser, type MysqlReading } from '../../policy/mysql/analyze.js';
import { OWN_ROWS_ENGINES } from '../../policy/mysql/output-reads.js';
import type { Relations } from '../../session/catalog-judge.js';
import type { MySqlClient } from '../wire/client.js';
import { Cap } from '../wire/handshake.js';
import { greetedUpstream, upstreamTls } from './upstream.js';

/** How long what a name is stays known. */
const TTL_MS = 60_000;
/** After a failed lookup, its names are anything this long before they are asked again. */
const RETRY_MS = 5_000;
/** Views followed through views, at most. */
const MAX_DEPTH = 16;
/** Names kept; past it the oldest go. */
const MAX_NAMES = 4096;
const ANY = ['*'];
const ELSEWHERE = [ROWS_ELSEWHERE];

/** A name as the MySQL analysis gives it (`database.table`), as a SQL string literal. */
const literal = (s: string): string => `'${s.replace(/[\\']/g, '\\$&')}'`;

/** One MySQL connection's relations (see the module documentation). */
export class MysqlRelations implements Relations {
  readonly #open: () => Promise<MySqlClient>;
  readonly #reading: MysqlReading;
  readonly #now: () => number;
  #client: Promise<MySqlClient> | undefined;
  /** Lookups in flight, one at a time on the one connection. */
  #queue: Promise<unknown> = Promise.resolve();
  readonly #known = new Map<string, { under: readonly string[]; at: number }>();
  readonly changes = new CatalogChanges();

  /** `open`: a signed-in connection of the gateway's own; `reading`: how the server reads SQL (views' definitions are read so). */
  constructor(open: () => Promise<MySqlClient>, reading: MysqlReading, now: () => number = realClock.now) {
    this.#open = open;
    this.#reading = reading;
    this.#now = now;
  }

  under(name: string): readonly string[] | undefined {
    const k = this.#known.get(name);
    return k && this.#now() - k.at <= TTL_MS ? k.under : undefined;
  }

  prefetch(names: readonly string[]): Promise<void> {
    const missing = [...new Set(names)].filter((n) => this.under(n) === undefined);
    if (missing.length === 0) return Promise.resolve();
    const run = this.#queue.then(() => this.#fetch(missing));
    this.#queue = run.catch(() => undefined);
    return run;
  }

  changed(names: readonly string[]): void {
    const only = this.changes.note(this.#now(), names);
    if (!only) return this.#known.clear();
    for (const [name, k] of this.#known) if (touches(only, name, k.under)) this.#known.delete(name);
  }

  /** Closes the gateway's own connection. */
  close(): void {
    void this.#client?.then((c) => c.close()).catch(() => undefined);
    this.#client = undefined;
  }

  async #fetch(names: readonly string[]): Promise<void> {
    const started = this.#now();
    let found: Map<string, readonly string[]>;
    try {
      found = await this.#lookUp(names);
    } catch {
      this.close();
      const at = this.#now() - TTL_MS + RETRY_MS;
      for (const name of names) this.#remember(name, ANY, at);
      return;
    }
    const stale = this.changes.staleSince(started);
    if (!stale) return;
    const at = this.#now();
    for (const name of names) {
      const under = found.get(name) ?? ANY;
      if (!stale(name, under)) this.#remember(name, under, at);
    }
  }

  /** What `names` are (see the module documentation), following views through views. */
  async #lookUp(names: readonly string[]): Promise<Map<string, readonly string[]>> {
    await loadMysqlParser();
    this.#client ??= this.#open();
    const client = await this.#client;
    /** Each relation looked up: `[]` a table of its own rows, the tables a view reads, or `*`. */
    const direct = new Map<string, readonly string[]>();
    let wanted = [...new Set(names)];
    for (let depth = 0; wanted.length > 0 && depth < MAX_DEPTH; depth++) {
      const list = wanted.map(literal).join(',');
      const [rows] = await client.query(
        "SELECT LOWER(CONCAT(t.TABLE_SCHEMA, '.', t.TABLE_NAME)), t.TABLE_SCHEMA, t.TABLE_TYPE, LOWER(COALESCE(t.ENGINE, '')), v.VIEW_DEFINITION " +
          'FROM information_schema.TABLES t LEFT JOIN information_schema.VIEWS v ON v.TABLE_SCHEMA = t.TABLE_SCHEMA AND v.TABLE_NAME = t.TABLE_NAME ' +
          `WHERE LOWER(CONCAT(t.TABLE_SCHEMA, '.', t.TABLE_NAME)) IN (${list})`,
      );
      for (const name of wanted) direct.set(name, ANY);
      const next: string[] = [];
      for (const [name, schema, type, engine, definition] of rows && 'rows' in rows ? rows.rows : []) {
        if (!name) continue;
        const prior = direct.get(name);
        const these = type === 'VIEW' ? this.#viewReads(definition, schema ?? '') : type === 'SYSTEM VIEW' || OWN_ROWS_ENGINES.has(engine ?? '') ? [] : ELSEWHERE;
        // Two relations whose names differ by case only (the server's may): both.
        direct.set(name, prior && prior !== ANY ? [...new Set([...prior, ...these])] : these);
        for (const t of these) if (t !== '*' && t !== ROWS_ELSEWHERE && !direct.has(t)) next.push(t);
      }
      wanted = [...new Set(next)];
    }
    const closure = (name: string, seen: Set<string>): string[] => {
      const under = direct.get(name) ?? ANY;
      return under.flatMap((t) => (t === '*' || t === ROWS_ELSEWHERE || seen.has(t) ? [t] : [t, ...closure(t, new Set([...seen, t]))]));
    };
    return new Map(names.map((n) => [n, [...new Set(closure(n, new Set([n])))]]));
  }

  /** The tables a view's definition reads (in its database), or `*` when it cannot be read (the gateway's user may not see it). */
  #viewReads(definition: string | null | undefined, schema: string): readonly string[] {
    if (!definition) return ANY;
    const analysis = analyzeMysql(definition, { ...this.#reading, database: schema, multiStatements: false });
    if (!analysis.ok) return ANY;
    return [...new Set(analysis.statements.flatMap((st) => st.tables.map((t) => t.toLowerCase())))];
  }

  #remember(name: string, under: readonly string[], at: number): void {
    this.#known.delete(name);
    this.#known.set(name, { under, at });
    if (this.#known.size > MAX_NAMES) this.#known.delete(this.#known.keys().next().value!);
  }
}

/** Per connection and credentials, for the gateway's life: its relations, looked up on a connection of the gateway's own made with `password`. */
export class MysqlRelationsByConnection {
  readonly #by = new Map<string, MysqlRelations>();

  for(connection: MysqlConnection, password: string, reading: MysqlReading): MysqlRelations {
    const key = JSON.stringify([connection.host, connection.port, connection.user, connection.database, createHash('sha256').update(password).digest('hex')]);
    let relations = this.#by.get(key);
    if (!relations) {
      relations = new MysqlRelations(() => openCatalog(connection, password), reading);
      this.#by.set(key, relations);
      // Connections changed by policy reloads leave theirs behind: the oldest go.
      if (this.#by.size > 64) {
        const [oldest, old] = this.#by.entries().next().value!;
        old.close();
        this.#by.delete(oldest);
      }
    }
    return relations;
  }
}

/** A signed-in connection of the gateway's own to `c`'s server, for catalog lookups (not keeping the gateway alive). */
async function openCatalog(c: MysqlConnection, password: string): Promise<MySqlClient> {
  const greeted = await greetedUpstream(c, 10_000);
  const tls = upstreamTls(c, (greeted.greeting.capabilities & Cap.SSL) !== 0);
  const client = await greeted.signIn({ user: c.user, password, database: c.database, attributes: { program_name: 'hoop-catalog' }, ...(tls && { tls }) });
  client.unref();
  return client;
}
