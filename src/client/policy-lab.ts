/**
 * Where `hoop policy test` runs its masking cases (`masked:`): the gateway's own PostgreSQL engine
 * (src/postgres/gateway/engine.ts) over a real tunnel, on a scratch database that each case's
 * `fixture:` SQL fills, judged and masked as the policy being tested says for the case's identity.
 *
 * - The server is a scratch PostgreSQL of the run's own (made with the binaries `hoop demo` uses,
 *   under `<config dir>/policy-lab/`, and removed with its data when the run ends); each fixture
 *   gets a database of its own. A config repo is not trusted code (a pull request's branch, in CI):
 *   its fixtures and statements run as a role that is not a superuser (no `COPY … TO PROGRAM`, no
 *   server files), owning that database, with a statement timeout.
 * - A case's statements run once, through the engine (what the identity gets), which also hands
 *   the lab each row as the server sent it (`SessionMasking.serverRows`): what the client got is
 *   compared with what the same execution read, so a fixture that answers differently from one
 *   read to the next (a volatile function, a sequence, the session's name) cannot pass a masking
 *   case. A column whose values differ came back masked; its strategy is the one whose output the
 *   gateway's value is (`detector` when only parts of it changed). The masking key of `hash` is a
 *   fixed one of the lab's: hashed values differ from the gateway's, never their shape.
 * - A fixture has a budget of time and of disk ({@link FIXTURE_BUDGET} unless the command says) (its database's size,
 *   watched as it loads; temporary files capped for the role), past which its backend is ended
 *   and the case fails saying which.
 *
 * @see ../policy/test-cases.ts (`masked:`, `fixture:`)
 */
import { realClock } from '../clock.js';
import { randomBytes } from 'node:crypto';
import { createServer, connect, type AddressInfo, type Socket } from 'node:net';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { configDir } from '../auth/paths.js';
import type { PostgresConnection } from '../config/connection.js';
import { startDemoPostgres, runSql, type DemoPostgres } from '../demo/postgres.js';
import { describeError, ErrorCode, isHoopError } from '../errors.js';
import { enforcedFor } from '../gateway/config/policy-source.js';
import type { CliIo } from '../io.js';
import { silentLogger } from '../log.js';
import { accessFor } from '../policy/access.js';
import type { ColumnMask, MaskOutcome } from '../policy/evaluate.js';
import { applyStrategy, MASK_STRATEGIES } from '../policy/masking/strategies.js';
import type { Policy, PolicyTest } from '../policy/schema.js';
import { CancelRegistry } from '../postgres/gateway/cancel-registry.js';
import { PostgresEngine } from '../postgres/gateway/engine.js';
import { PgClient } from '../postgres/wire/client.js';
import { TunnelChannel } from '../tunnel/channel.js';
import { ANY_ROLE } from '../postgres/gateway/database-access.js';
import type { SessionMasking } from '../session/engine.js';

/** The `hash` key of the lab (the policy's own is a secret of the gateway). */
const LAB_KEY = 'hoop-policy-test';

/** The role the repo's SQL runs as: neither superuser nor anything else, its statements cut at a minute. */
const LAB_ROLE = 'hoop_policy_test';

/** What loading one fixture may take by default: wall time, and its database's size on disk (`--fixture-seconds`, `--fixture-mib`). */
export const FIXTURE_BUDGET: FixtureBudget = { ms: 60_000, bytes: 256 * 1024 * 1024 };

/** What loading one fixture may take. */
export interface FixtureBudget {
  ms: number;
  bytes: number;
}

/** A result as the server sent it or the client got it: the last RowDescription's names, and every row as text. */
interface Rows {
  names: string[];
  rows: Array<Array<string | null>>;
}

/** Two ends of one hoop-tunnel/1 connection on loopback: the gateway's and the client's. */
async function tunnelPair(): Promise<{ gateway: TunnelChannel; client: TunnelChannel }> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const accepted = new Promise<Socket>((resolve) => server.once('connection', resolve));
    const socket = connect((server.address() as AddressInfo).port, '127.0.0.1');
    const [gatewaySide] = await Promise.all([accepted, new Promise((resolve, reject) => socket.once('connect', resolve).once('error', reject))]);
    return { gateway: new TunnelChannel(gatewaySide, undefined, { peer: 'client' }), client: new TunnelChannel(socket) };
  } finally {
    server.close();
  }
}

/** A free TCP port on loopback. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** The scratch server, on a free port: a port is free when chosen, not when the server binds it, so one another process took meanwhile is chosen again (three times). */
export async function startScratch(dir: string, say: (line: string) => void, ports: () => Promise<number> = freePort): Promise<DemoPostgres> {
  let said = false;
  const log = (line: string): void => {
    if (said || !/^PostgreSQL \d/.test(line)) return;
    said = true;
    say(`scratch ${line}`);
  };
  for (let tries = 1; ; tries++) {
    try {
      return await startDemoPostgres({ dir, port: await ports(), log });
    } catch (err) {
      if (tries === 3 || !isHoopError(err, ErrorCode.LISTEN_FAILED)) throw err;
    }
  }
}

/** The strategy whose output `masked` is for every changed value of a column, else `detector`. */
function strategyOf(pairs: ReadonlyArray<[string | null, string | null]>): string {
  for (const s of MASK_STRATEGIES) {
    if (pairs.every(([raw, got]) => raw !== null && applyStrategy(raw, s, LAB_KEY, true) === got)) return s;
  }
  return 'detector';
}

/** How each column of `through` (what the client got) differs from `direct` (what the same execution read). @throws Error when the two are not the same result */
function compare(direct: Rows, through: Rows): ColumnMask[] {
  if (direct.names.join('\0') !== through.names.join('\0')) throw new Error(`the result's columns differ: ${direct.names.join(', ')} direct, ${through.names.join(', ')} through hoop`);
  if (direct.rows.length !== through.rows.length) throw new Error(`${direct.rows.length} rows direct, ${through.rows.length} through hoop`);
  return direct.names.map((column, i) => {
    const changed = direct.rows.flatMap((row, r): Array<[string | null, string | null]> => (row[i] !== through.rows[r]![i] ? [[row[i] ?? null, through.rows[r]![i] ?? null]] : []));
    return changed.length === 0 ? { column, masked: false } : { column, masked: true, strategy: strategyOf(changed) };
  });
}

/** A scratch PostgreSQL and the databases made for a run's fixtures. */
export class PolicyLab {
  readonly #pg: DemoPostgres;
  /** The password of {@link LAB_ROLE}, this run's. */
  readonly #password = randomBytes(18).toString('base64url');
  /** The run's directory (the server's data is there, or under the demo's runtime root when the postgres OS user cannot reach it). */
  readonly #dir: string;
  /** Fixture file → its database (made on first use). */
  readonly #databases = new Map<string, Promise<string>>();
  readonly #engine: PostgresEngine;
  readonly #budget: FixtureBudget;

  private constructor(pg: DemoPostgres, dir: string, budget: FixtureBudget) {
    this.#pg = pg;
    this.#dir = dir;
    this.#budget = budget;
    this.#engine = new PostgresEngine({ cancels: new CancelRegistry(), resolveSecret: async () => this.#password });
  }

  /** Starts the scratch server (`say` hears what it does, once). */
  static async open(io: CliIo, say: (line: string) => void, budget: FixtureBudget = FIXTURE_BUDGET): Promise<PolicyLab> {
    const parent = join(configDir(io.env, io.cwd), 'policy-lab');
    await mkdir(parent, { recursive: true, mode: 0o700 });
    const dir = await mkdtemp(join(parent, 'run-'));
    try {
      const pg = await startScratch(dir, say);
      const lab = new PolicyLab(pg, dir, budget);
      await runSql(
        pg,
        'postgres',
        `create role ${LAB_ROLE} login nosuperuser nocreatedb nocreaterole password '${lab.#password}'; alter role ${LAB_ROLE} set statement_timeout = '60s'; alter role ${LAB_ROLE} set temp_file_limit = '${Math.ceil(budget.bytes / 1024)}kB'`,
      );
      return lab;
    } catch (err) {
      await rm(dir, { recursive: true, force: true });
      throw err;
    }
  }

  /** Runs `test`'s statements on its fixture, direct and through the engine as its identity, and says how each result column came back. */
  async masks(policy: Policy, test: PolicyTest): Promise<MaskOutcome> {
    if (!test.fixture) return { error: 'masked: without fixture: runs against the connection, which this lab does not do' };
    try {
      const database = await this.#database(test.fixture);
      const { read, got } = await this.#through(policy, test, database);
      return { columns: compare(read, got), where: `on ${test.fixture.file}, through the gateway's engine` };
    } catch (err) {
      return { error: `${test.fixture.file}: ${describeError(err)}` };
    }
  }

  /** Stops the server and removes it, data and all. */
  async close(): Promise<void> {
    await this.#pg.stop();
    if (!this.#pg.dataDir.startsWith(`${this.#dir}/`)) await rm(dirname(this.#pg.dataDir), { recursive: true, force: true });
    await rm(this.#dir, { recursive: true, force: true });
  }

  /** The database of `fixture`: made and filled on first use. */
  #database(fixture: { file: string; sql: string }): Promise<string> {
    let made = this.#databases.get(fixture.file);
    if (!made) {
      const name = `hoop_lab_${randomBytes(6).toString('hex')}`;
      made = (async () => {
        await runSql(this.#pg, 'postgres', `create database ${name} owner ${LAB_ROLE}`);
        await runSql(this.#pg, name, `alter schema public owner to ${LAB_ROLE}`);
        await this.#withinBudget(name, fixture.file, runSql(this.#lab, name, fixture.sql, { timeoutMs: this.#budget.ms + 5_000 }));
        return name;
      })();
      this.#databases.set(fixture.file, made);
    }
    return made;
  }

  /** How the repo's SQL signs in to the scratch server: as {@link LAB_ROLE}. */
  get #lab(): Pick<DemoPostgres, 'host' | 'port' | 'superuser'> {
    return { host: this.#pg.host, port: this.#pg.port, superuser: { user: LAB_ROLE, password: this.#password } };
  }

  /**
   * `loading` (a fixture's SQL on `database`), ended with the fixture's backend once it runs past
   * {@link FIXTURE_BUDGET}'s time or its database grows past its size; rejects saying which.
   */
  async #withinBudget(database: string, file: string, loading: Promise<unknown>): Promise<void> {
    let over: string | undefined;
    const started = realClock.now();
    const watching = (async () => {
      for (let settled = false; !settled; ) {
        settled = await Promise.race([
          loading.then(
            () => true,
            () => true,
          ),
          new Promise<false>((resolve) => setTimeout(() => resolve(false), 250)),
        ]);
        if (settled) return;
        over = await this.#outgrown(database, file);
        if (!over && realClock.now() - started > this.#budget.ms) over = `${file} ran past ${this.#budget.ms / 1000} s, the time a fixture may take to load (--fixture-seconds)`;
        if (over) {
          await runSql(this.#pg, 'postgres', `select pg_terminate_backend(pid) from pg_stat_activity where datname = '${database}' and usename = '${LAB_ROLE}'`);
          return;
        }
      }
    })();
    try {
      await loading;
    } catch (err) {
      await watching.catch(() => undefined);
      throw over ? new Error(over) : err;
    }
    await watching;
    // And as it was left: a load quicker than a look leaves its size to be judged now.
    over ??= await this.#outgrown(database, file);
    if (over) throw new Error(over);
  }

  /** Why `database` is past the disk budget, if it is. */
  async #outgrown(database: string, file: string): Promise<string | undefined> {
    const [size] = await runSql(this.#pg, 'postgres', `select pg_database_size('${database}') as bytes`);
    return Number(size?.bytes) > this.#budget.bytes ? `${file} grew its database past ${this.#budget.bytes / 1024 / 1024} MiB, the disk a fixture may use (--fixture-mib)` : undefined;
  }

  /** The statements through the gateway's engine, as `test.as` on a connection to `database`: the last result as the server sent it (`read`) and as the client got it. */
  async #through(policy: Policy, test: PolicyTest, database: string): Promise<{ read: Rows; got: Rows }> {
    const grant = accessFor(policy, test.as, test.connection);
    if (!grant) throw new Error(`no access rule admits ${test.as.subject} to "${test.connection}"`);
    const declared = policy.connections.find((c) => c.name === test.connection) as PostgresConnection;
    const { unavailable: _unavailable, ...rest } = declared;
    const connection: PostgresConnection = { ...rest, host: this.#pg.host, port: this.#pg.port, database, user: LAB_ROLE, tls: { mode: 'disable' }, allowCleartextWithoutTls: true };
    const { gateway, client } = await tunnelPair();
    const controller = new AbortController();
    const serverRows: Rows['rows'] = [];
    const masked = enforcedFor(policy, test.as, connection, grant, LAB_KEY).masking !== undefined;
    const identity = {
      subject: test.as.subject,
      issuer: 'policy-test',
      kind: 'user' as const,
      groups: test.as.groups,
      ...(test.as.email ? { email: test.as.email } : {}),
      expiresAt: new Date(realClock.now() + 3_600_000),
      claims: {},
    };
    const served = this.#engine.serve({
      id: `policy-test-${randomBytes(6).toString('hex')}`,
      identity,
      connection,
      channel: gateway,
      remoteAddress: 'hoop policy test',
      log: silentLogger,
      signal: controller.signal,
      // Its own role on its scratch database, whatever roles the access allows on the real one; each row as the server sent it told to the lab.
      ...withServerRows(withoutDatabaseAccess(enforcedFor(policy, test.as, connection, grant, LAB_KEY)), (values) => serverRows.push(values.map((v) => v?.toString('utf8') ?? null))),
    });
    try {
      const session = await PgClient.start(client, [
        ['user', ANY_ROLE],
        ['database', database],
      ]);
      let last: { read: Rows; got: Rows } = { read: { names: [], rows: [] }, got: { names: [], rows: [] } };
      for (const text of test.sql!) {
        let names: string[] | undefined;
        const rows: Rows['rows'] = [];
        serverRows.length = 0;
        const failed = await session.run(text, {
          columns: (fields) => void (names = fields.map((f) => f.name)),
          row: (values) => void rows.push(values),
          complete: () => {},
          notice: () => {},
        });
        if (failed) throw new Error(`through hoop: ${failed.message}`);
        // Without masking the engine masks nothing and reads rows it is not told of: they are what the client got.
        if (names) last = { read: { names, rows: masked ? [...serverRows] : rows }, got: { names, rows } };
      }
      session.close();
      return last;
    } finally {
      controller.abort();
      client.destroy();
      await served.catch(() => undefined);
    }
  }
}

/** What a session enforces, its masking telling `rows` each row as the server sent it. */
function withServerRows<T extends { masking?: SessionMasking }>(enforced: T, rows: NonNullable<SessionMasking['serverRows']>): T {
  return enforced.masking ? { ...enforced, masking: { ...enforced.masking, serverRows: rows } } : enforced;
}

/** What a session enforces, but the database roles and databases it may pick (the lab's session has its own). */
function withoutDatabaseAccess<T extends { databaseAccess?: unknown }>(enforced: T): Omit<T, 'databaseAccess'> {
  const { databaseAccess: _own, ...rest } = enforced;
  return rest;
}
