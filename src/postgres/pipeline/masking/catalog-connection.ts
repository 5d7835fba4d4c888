/**
 * The gateway's own connection for catalog lookups (masking's column origins, what relations
 * read): simple queries, prepared ones with text results, and Parse + Describe of a statement that
 * is never executed, one round trip at a time.
 *
 * What lives on a server connection lives with it: each opened connection is a {@link Link}
 * holding the names of the statements prepared on it, so a connection that was ended (unused too
 * long, the last session gone, the server's idle_session_timeout, a network error) takes its
 * prepared statements with it and the next lookup prepares them again on the next one. A round trip
 * on a link that was opened earlier and turns out dead is tried once more on a new one, so a
 * lookup after a long quiet fails only when the database cannot be reached.
 *
 * @see https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-EXT-QUERY
 * @see https://www.postgresql.org/docs/current/runtime-config-client.html#GUC-IDLE-SESSION-TIMEOUT
 */
import { describeError, ErrorCode, HoopError } from '../../../errors.js';
import { roundTrip, type RoundTrip, type RoundTripConnection } from '../../wire/client.js';
import { bindText, describePortalUnnamed, describeUnnamed, execute, parseNamed, parseUnnamed, query as queryMessage, sync, terminate } from '../../wire/messages.js';

/** How long one catalog round trip may take before the lookup fails. */
const CATALOG_TIMEOUT_MS = 10_000;
/** SQLSTATE invalid_sql_statement_name: a prepared statement the server does not have. */
const NO_SUCH_STATEMENT = '26000';

/** A text[] parameter in PostgreSQL's array syntax, every element quoted. @see https://www.postgresql.org/docs/current/arrays.html#ARRAYS-IO */
export function textArrayParam(items: readonly string[]): string {
  return `{${items.map((i) => `"${i.replace(/["\\]/g, '\\$&')}"`).join(',')}}`;
}

/** What one catalog round trip returned. */
export interface CatalogResult {
  rows: Array<Record<string, string | null>>;
  /** The RowDescription's origins (table OID, attribute number), when there was one. */
  origins: Array<{ tableOid: number; attnum: number }>;
}

/** One server connection, and what was prepared on it. */
interface Link {
  connection: Promise<RoundTripConnection>;
  /** Statement names by SQL text, prepared on this connection. */
  prepared: Map<string, string>;
  /** A round trip has completed on it (a failure then may be the connection's age, not the database). */
  used: boolean;
}

/** Options of a {@link CatalogConnection}. */
export interface CatalogConnectionOptions {
  /** A connection unused this long is ended, sessions or not (the next lookup opens another). */
  idleMs?: number;
  /** After the last session let go ({@link CatalogConnection.release}), the connection ends this much later (default: `idleMs`, at most 1 s). */
  lingerMs?: number;
  /** One round trip's deadline (default 10 s). */
  timeoutMs?: number;
}

/** The failure of a catalog lookup: what it was and why it failed. */
export class CatalogLookupError extends HoopError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super(ErrorCode.UPSTREAM_UNAVAILABLE, message, options);
  }
}

/**
 * A connection of the gateway's own for catalog lookups, shared by the sessions of one
 * connection and credentials: opened when a lookup needs it (or a session warms it), ended when
 * unused for `idleMs` or soon after the last session lets go, so that it never holds a database
 * open long (DROP DATABASE waits up to 5 s for other sessions to leave).
 */
export class CatalogConnection {
  readonly #open: () => Promise<RoundTripConnection>;
  readonly #idleMs: number | undefined;
  readonly #lingerMs: number;
  readonly #timeoutMs: number;
  #link: Link | undefined;
  #chain: Promise<unknown> = Promise.resolve();
  #closed = false;
  #idle: NodeJS.Timeout | undefined;
  /** Round trips asked for and not answered yet. */
  #busy = 0;
  /** Sessions that hold it ({@link acquire}). */
  #holders = 0;
  #statementCount = 0;

  constructor(open: () => Promise<RoundTripConnection>, options: CatalogConnectionOptions = {}) {
    this.#open = open;
    this.#idleMs = options.idleMs;
    this.#lingerMs = options.lingerMs ?? Math.min(options.idleMs ?? 1000, 1000);
    this.#timeoutMs = options.timeoutMs ?? CATALOG_TIMEOUT_MS;
  }

  /** Whether a server connection is open (or opening). */
  get open(): boolean {
    return this.#link !== undefined;
  }

  /** A session uses it from now on; with `warm`, the connection opens now, so that its first lookup does not wait for it. */
  acquire(warm: boolean): void {
    this.#holders++;
    if (this.#closed || !warm) return;
    this.#linkNow();
    this.#armIdle();
  }

  /** A session that {@link acquire}d it ended: with none left, the connection ends shortly. */
  release(): void {
    this.#holders = Math.max(0, this.#holders - 1);
    this.#armIdle();
  }

  /** Runs `sql` (no parameters) and resolves its rows; serialised with earlier queries. */
  async query(sql: string): Promise<Array<Record<string, string | null>>> {
    return (await this.#serial(() => queryMessage(sql))).rows;
  }

  /**
   * Runs `sql` with its `$n` parameters bound as text and resolves its rows. The statement is
   * prepared once per server connection: planning a catalog query costs more than running it
   * (about 4 ms against 1 ms for the view lookup), and PostgreSQL keeps a generic plan once it pays.
   * @see https://www.postgresql.org/docs/current/sql-prepare.html (plan_cache_mode)
   */
  async prepared(sql: string, params: ReadonlyArray<string | null>): Promise<Array<Record<string, string | null>>> {
    const build = (link: Link): Buffer => {
      const known = link.prepared.get(sql);
      const name = known ?? `hoop_catalog_${++this.#statementCount}`;
      if (!known) link.prepared.set(sql, name);
      return Buffer.concat([...(known ? [] : [parseNamed(name, sql)]), bindText('', name, params), describePortalUnnamed(), execute(''), sync()]);
    };
    return (await this.#serial(build, sql)).rows;
  }

  /**
   * The result columns' origins of `sql` as the server would report them, from Parse and
   * Describe of the unnamed statement: nothing is executed.
   */
  async describe(sql: string): Promise<Array<{ tableOid: number; attnum: number }>> {
    return (await this.#serial(() => Buffer.concat([parseUnnamed(sql), describeUnnamed(), sync()]))).origins;
  }

  /** Ends the connection (Terminate) if it was opened; no lookup runs after. */
  close(): void {
    this.#closed = true;
    clearTimeout(this.#idle);
    this.#end();
  }

  /** Sends what `build` makes once earlier round trips are done; `prepared`: the SQL of the prepared statement it uses. */
  #serial(build: (link: Link) => Buffer, prepared?: string): Promise<CatalogResult> {
    this.#busy++;
    clearTimeout(this.#idle);
    const run = this.#chain.then(
      () => this.#run(build, prepared),
      () => this.#run(build, prepared),
    );
    this.#chain = run.catch(() => undefined);
    void this.#chain.then(() => {
      this.#busy--;
      this.#armIdle();
    });
    return run;
  }

  /** The current link, opened when there is none. */
  #linkNow(): Link {
    if (this.#link) return this.#link;
    const link: Link = { connection: this.#open(), prepared: new Map(), used: false };
    this.#link = link;
    link.connection.then(
      (c) => c.socket.once('close', () => this.#drop(link)),
      () => this.#drop(link),
    );
    return link;
  }

  /** Forgets `link` (if it is the current one); its server connection is ended. */
  #drop(link: Link): void {
    if (this.#link !== link) return;
    this.#link = undefined;
    link.connection.then(
      (c) => {
        if (!c.socket.destroyed && !c.socket.writableEnded) c.socket.end(terminate());
      },
      () => undefined,
    );
  }

  /** Ends the connection once unused for `idleMs`, or for the linger once no session holds it. */
  #armIdle(): void {
    if (this.#busy > 0 || !this.#link) return;
    const wait = this.#holders === 0 ? this.#lingerMs : this.#idleMs;
    clearTimeout(this.#idle);
    if (wait === undefined) return;
    this.#idle = setTimeout(() => {
      if (this.#busy === 0) this.#end();
    }, wait);
    this.#idle.unref();
  }

  #end(): void {
    if (this.#link) this.#drop(this.#link);
  }

  /** One round trip; tried again on a new connection when one opened earlier has died meanwhile (or lost a prepared statement). */
  async #run(build: (link: Link) => Buffer, prepared: string | undefined): Promise<CatalogResult> {
    for (let attempt = 1; ; attempt++) {
      if (this.#closed) throw new CatalogLookupError('the gateway is stopping');
      const link = this.#linkNow();
      const again = attempt === 1 && link.used;
      let answer: RoundTrip;
      try {
        const connection = await link.connection;
        answer = await roundTrip(connection, build(link), this.#timeoutMs);
      } catch (err) {
        this.#drop(link);
        if (again && !/no answer within/.test(describeError(err))) continue;
        throw new CatalogLookupError(`the catalog connection failed: ${describeError(err)}`);
      }
      link.used = true;
      if (answer.error) {
        // The statement may not exist (its Parse failed, or the server lost it): prepared again next time.
        if (prepared !== undefined) link.prepared.delete(prepared);
        if (answer.error.code === NO_SUCH_STATEMENT && attempt === 1) continue;
        throw new CatalogLookupError(`the catalog query failed: ${answer.error.message}`);
      }
      const names = answer.fields.map((f) => f.name);
      return {
        rows: answer.rows.map((row) => Object.fromEntries(row.map((v, i) => [names[i] ?? String(i), v]))),
        origins: answer.fields.map((f) => ({ tableOid: f.tableOid, attnum: f.attnum })),
      };
    }
  }
}
