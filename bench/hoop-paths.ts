/**
 * The hoop paths' set-ups: a `hoop gateway` of the bench's own (TLS on, its own CA and OpenID
 * provider), with or without a policy repo, recording, the blast-radius guard, a PostgreSQL store
 * and workers, reached through `hoop connect` or directly with a direct credential; in front of
 * PostgreSQL or, for the MySQL lane, MariaDB (through `hoop connect` only: a MySQL server speaks
 * first, so the gateway's port cannot greet MySQL clients directly).
 *
 * The policy repo (`benchPolicy`), the same for both lanes: read-write access for every identity,
 * statement rules (one deny among them) that judge every statement but match none of the
 * benchmark's, and a masking rule on a table the benchmark does not read, so every result goes
 * through the masking code.
 *
 * Layer: uses ./settings.ts, ./processes.ts and ./measure.ts's types; ./paths.ts, ./idle.ts and
 * ./scp.ts build on it.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { MAX_DIRECT_SECONDS } from '../src/gateway/credentials/direct-credentials.js';
import { CLIENT_CHECKPOINT_MS } from '../src/recording/spool.js';
import type { MariaServer } from '../test/harness/mariadb.js';
import { type PgCluster, startPgCluster } from '../test/harness/postgres.js';
import type { PathSetup } from './measure.js';
import { lastLines, onCleanup, repoRoot, sleep, startProcess, tempDir, waitFor } from './processes.js';
import { CHECKPOINT_SECONDS, HOOP_NODE_ARGS } from './settings.js';

/** What a hoop path's gateway has on. */
export interface HoopOptions {
  /** The policy repo (statement rules and masking); without it, one connection in gateway.yaml. */
  policy: boolean;
  /** Every session recorded (`recording: { enabled }`). */
  recording: boolean;
  /** The blast-radius guard on every write: the access's `maxAffectedRows: 1000` (needs `policy`). */
  guard?: boolean;
  /** The gateway's state in a PostgreSQL store, on a cluster of its own (as it would be on a server of its own). */
  store?: boolean;
  /** `workers: N`. */
  workers?: number;
}

/** A running bench gateway. */
export interface BenchGateway {
  url: string;
  caFile: string;
  /** A token of the bench's OpenID provider, for subject `bench`. */
  token: string;
  dir: string;
  pid: number;
  hoopBin: string;
  stop: () => Promise<void>;
}

/** The database a hoop path's gateway reaches: its connection's fields, and what its policy names. */
interface BenchTarget {
  type: 'postgres' | 'mysql';
  port: number;
  database: string;
  user: string;
  /** The environment variable the gateway reads the password from, and its value. */
  passwordEnv: string;
  password: string;
  /** Where the tables the policy names are: PostgreSQL's `public`, MySQL's database. */
  schema: string;
  /** The server's functions that read its files, which a rule denies. */
  fileFunctions: string[];
  /** More of the connection's fields in the policy (PostgreSQL's pool of signed-in upstream connections). */
  policyFields: string[];
}

/** The bench's PostgreSQL cluster as a hoop connection. */
function pgTarget(pg: PgCluster): BenchTarget {
  return {
    type: 'postgres',
    port: pg.port,
    database: pg.database,
    user: pg.users.scram.user,
    passwordEnv: 'BENCH_PG_PASSWORD',
    password: pg.users.scram.password,
    schema: 'public',
    fileFunctions: ['pg_read_file', 'pg_read_binary_file', 'lo_import'],
    policyFields: ['pool: { idle: 8, idleSeconds: 60 }'],
  };
}

/** The bench's MariaDB server as a hoop connection (its `app` user, which owns the database). */
function mysqlTarget(maria: MariaServer): BenchTarget {
  return {
    type: 'mysql',
    port: maria.port,
    database: maria.database,
    user: maria.users.native.user,
    passwordEnv: 'BENCH_MYSQL_PASSWORD',
    password: maria.users.native.password,
    schema: maria.database,
    fileFunctions: ['load_file'],
    policyFields: [],
  };
}

/** The policy repo's hoop.yaml: see the module documentation. */
function benchPolicy(t: BenchTarget, guard: boolean): string {
  return `version: 1
connections:
  - name: bench
    type: ${t.type}
    host: 127.0.0.1
    port: ${t.port}
    database: ${t.database}
    user: ${t.user}
    password: \${env:${t.passwordEnv}}
    tls: { mode: disable }
${t.policyFields.map((f) => `    ${f}\n`).join('')}access:
  - { name: bench, subjects: ["*"], connections: [bench], mode: read-write, maxSessions: 5000${guard ? ', maxAffectedRows: 1000' : ''} }
statements:
  unparseable: deny
  rules:
    - { name: no-drop, match: { kinds: [drop] }, action: deny, message: DROP is not allowed }
    - { name: truncate-review, match: { kinds: [truncate] }, action: review, message: TRUNCATE needs a reviewer }
    - { name: no-unbounded-writes, match: { kinds: [update, delete], missingWhere: true }, action: deny }
    - { name: no-file-reads, match: { functions: [${t.fileFunctions.join(', ')}] }, action: deny }
    - { name: no-secrets, match: { tables: [${t.schema}.bench_secrets] }, action: deny }
masking:
  columns:
    - { table: ${t.schema}.bench_secrets, column: ssn, strategy: redact }
`;
}

/** Commits `text` as hoop.yaml of a new git repo in `dir`; returns the repo's path. */
export function benchPolicyRepo(dir: string, text: string): string {
  const repo = join(dir, 'policy-repo');
  mkdirSync(repo);
  const env = {
    PATH: process.env.PATH,
    HOME: dir,
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_AUTHOR_NAME: 'hoop bench',
    GIT_AUTHOR_EMAIL: 'bench@example.invalid',
    GIT_COMMITTER_NAME: 'hoop bench',
    GIT_COMMITTER_EMAIL: 'bench@example.invalid',
  };
  const git = (...args: string[]): void => void execFileSync('git', args, { cwd: repo, env, stdio: ['ignore', 'pipe', 'pipe'] });
  git('init', '-q', '-b', 'main');
  writeFileSync(join(repo, 'hoop.yaml'), text);
  git('add', '-A');
  git('commit', '-q', '-m', 'bench policy');
  return repo;
}

/** The gateway.yaml lines (after listen, tls, issuers, dataDir) of a hoop path to `t` with `o` on. */
function gatewayConfig(t: BenchTarget, dir: string, o: HoopOptions): string[] {
  const recording = `recording: { enabled: ${o.recording}${o.recording && CHECKPOINT_SECONDS !== undefined ? `, checkpointSeconds: ${CHECKPOINT_SECONDS}` : ''} }`;
  const password = `"\${env:${t.passwordEnv}}"`;
  const connection = o.policy
    ? ['policy:', `  repo: ${JSON.stringify(benchPolicyRepo(dir, benchPolicy(t, o.guard ?? false)))}`, '  ref: main', `  allowedSecrets: [${password}]`, '  pullIntervalSeconds: 3600']
    : [
        'connections:',
        `  - { name: bench, type: ${t.type}, host: 127.0.0.1, port: ${t.port}, database: ${t.database}, user: ${t.user}, password: ${password}, tls: { mode: disable }, allow: { subjects: ["*"], maxSessions: 5000 } }`,
      ];
  return [
    ...(o.store ? ['store: { kind: postgres, url: "${env:BENCH_STORE_URL}" }'] : []),
    ...(o.workers ? [`workers: ${o.workers}`] : []),
    // MySQL's direct clients have a port of their own.
    ...(t.type === 'mysql' ? ['mysqlListen: 127.0.0.1:0'] : []),
    // The heavy-session measurements send a 100 MB statement (pg-limits.ts).
    'postgres: { maxStatementBytes: 128MiB }',
    recording,
    ...connection,
  ];
}

/** A PostgreSQL cluster of its own with a `hoop_store` database, for the gateway's store; its URL and how to stop it. */
async function startStore(): Promise<{ url: string; stop: () => Promise<void> }> {
  const store = await startPgCluster();
  const stop = onCleanup('store', () => store.stop());
  await store.psql('create database hoop_store');
  return { url: store.url(store.superuser, { database: 'hoop_store' }), stop };
}

/** A hoop gateway for the paths to `t`, with `o` on; its store (if any) is stopped with it. */
async function startPathGateway(t: BenchTarget, o: HoopOptions): Promise<BenchGateway> {
  const { dir } = tempDir('hoop-bench-policy-');
  const store = o.store ? await startStore() : undefined;
  const gw = await startBenchGateway(gatewayConfig(t, dir, o), { [t.passwordEnv]: t.password, ...(store ? { BENCH_STORE_URL: store.url } : {}) });
  return {
    ...gw,
    stop: async () => {
      await gw.stop();
      await store?.stop();
    },
  };
}

/** A hoop gateway started for the bench (TLS on, its own CA and OpenID provider), with `config` lines after its listen/tls/issuers/dataDir. */
export async function startBenchGateway(config: string[], env: NodeJS.ProcessEnv = {}): Promise<BenchGateway> {
  const hoopBin = join(repoRoot, 'bin', 'hoop.js');
  if (!existsSync(join(repoRoot, 'dist', 'cli.js'))) throw new Error('dist/cli.js missing: run `npm run build` first');
  const { createTestPki } = await import('../test/harness/certs.js');
  const { startOidc } = await import('../test/harness/oidc.js');

  const pki = await createTestPki();
  onCleanup('test PKI', () => pki.cleanup());
  const leaf = await pki.issue('gateway', ['IP:127.0.0.1', 'DNS:localhost']);
  const oidc = await startOidc({ audience: 'hoop-bench' });
  onCleanup('oidc provider', async () => {
    await oidc.close();
  });
  const { dir } = tempDir('hoop-bench-gateway-');
  const configFile = join(dir, 'gateway.yaml');
  const head = [
    'listen: 127.0.0.1:0',
    `tls: { cert: ${JSON.stringify(leaf.certFile)}, key: ${JSON.stringify(leaf.keyFile)} }`,
    `issuers: [{ issuer: ${JSON.stringify(oidc.issuer)}, audience: hoop-bench }]`,
    `dataDir: ${JSON.stringify(join(dir, 'data'))}`,
  ];
  writeFileSync(configFile, [...head, ...config, ''].join('\n'));
  const gateway = startProcess(process.execPath, [...HOOP_NODE_ARGS, hoopBin, 'gateway', '--config', configFile], {
    name: 'hoop gateway',
    env: { ...process.env, ...env, HOOP_LOG_LEVEL: process.env.HOOP_LOG_LEVEL ?? 'info' },
  });
  const url = await waitFor(20_000, () => {
    for (const line of gateway.stderr().split('\n')) {
      if (!line.includes('gateway.listening')) continue;
      try {
        const ev = JSON.parse(line) as { event?: string; url?: string };
        if (ev.event === 'gateway.listening' && ev.url) return ev.url;
      } catch {
        /* partial line */
      }
    }
    if (gateway.child.exitCode !== null) throw new Error(`gateway exited ${gateway.child.exitCode}: ${lastLines(gateway.stderr(), 3)}`);
    return undefined;
  }).catch((e: Error) => {
    throw new Error(`gateway did not start: ${e.message}`);
  });
  // Long enough for the longest path (its runs, and the uploads of its CLI's records between them): HOOP_TOKEN is not renewed, and the gateway ends a session when its token expires.
  const token = await oidc.token({ subject: 'bench', groups: [], expiresInSeconds: 3 * 3600 });
  return { url, caFile: pki.caFile, token, dir, pid: gateway.child.pid!, hoopBin, stop: () => gateway.stop() };
}

/** `hoop connect <name> --json` against a bench gateway; resolves its JSON line. */
export async function startBenchConnect<T>(gw: BenchGateway, name: string, env: NodeJS.ProcessEnv = {}): Promise<{ info: T; pid: number; configDir: string; stop: () => Promise<void> }> {
  const configDir = tempDir('hoop-bench-cli-').dir;
  const client = startProcess(process.execPath, [...HOOP_NODE_ARGS, gw.hoopBin, 'connect', name, '--gateway', gw.url, '--ca-file', gw.caFile, '--json'], {
    name: 'hoop connect',
    // A config directory of its own: the records it keeps of its sessions go to a spool of the bench's, not the user's.
    env: { ...process.env, HOOP_TOKEN: gw.token, HOOP_CONFIG_DIR: configDir, ...env },
  });
  const info = await waitFor(20_000, () => {
    const first = client.stdout().split('\n')[0];
    if (first && client.stdout().includes('\n')) return JSON.parse(first) as T;
    if (client.child.exitCode !== null) throw new Error(`hoop connect exited ${client.child.exitCode}: ${lastLines(client.stderr(), 3)}`);
    return undefined;
  }).catch((e: Error) => {
    throw new Error(`hoop connect did not start: ${e.message}`);
  });
  return { info, pid: client.child.pid!, configDir, stop: () => client.stop() };
}

/**
 * Resolves once `hoop connect`'s spool (`<configDir>/spool`) holds no session record: the records
 * of the sessions a run ended are uploaded (and verified by the gateway) before the next run is
 * measured, which would otherwise pay for them (a `-C` run leaves hundreds). A record is held in
 * the CLI's memory until the time its first checkpoint would have come, and on the disk from then
 * until the gateway holds it: that time passes first.
 */
async function spoolEmptied(configDir: string): Promise<void> {
  await sleep(CLIENT_CHECKPOINT_MS + 100);
  const spool = join(configDir, 'spool');
  const pending = (): number => (existsSync(spool) ? readdirSync(spool).filter((d) => d.startsWith('sessions-')).length : 0);
  const until = Date.now() + 120_000;
  while (pending() > 0 && Date.now() < until) await sleep(200);
}

/** A hoop path through `hoop connect` to `gw`'s connection `bench`: clients reach the CLI's local port (without TLS, as on every path), the CLI the gateway. */
async function connectPath(gw: BenchGateway): Promise<PathSetup> {
  const client = await startBenchConnect<{ host: string; port: number; user: string; database: string; password: string }>(gw, 'bench').catch(async (err: unknown) => {
    await gw.stop();
    throw err;
  });
  const { info } = client;
  return {
    endpoint: { host: info.host, port: info.port, user: info.user, password: info.password, database: info.database },
    close: async () => {
      await client.stop();
      await gw.stop();
    },
    pids: { gateway: gw.pid, connect: client.pid },
    relay: { server: gw.pid, client: client.pid },
    settle: () => spoolEmptied(client.configDir),
  };
}

/** A PostgreSQL path through `hoop connect`. */
export async function setupHoopConnect(pg: PgCluster, o: HoopOptions): Promise<PathSetup> {
  return connectPath(await startPathGateway(pgTarget(pg), o));
}

/** A MySQL path through `hoop connect` to the bench's MariaDB (no guard: hoop does not apply row limits to MySQL yet). */
export async function setupMysqlHoopConnect(maria: MariaServer, o: HoopOptions): Promise<PathSetup> {
  return connectPath(await startPathGateway(mysqlTarget(maria), { ...o, guard: false }));
}

/** A hoop path reached directly: a direct credential minted for the bench's token, TLS to the gateway's port (MySQL's: its MySQL port), no `hoop connect`. */
async function setupDirect(t: BenchTarget, o: HoopOptions): Promise<PathSetup> {
  const gw = await startPathGateway(t, o);
  const { mintDirect } = await import('../src/api-client/direct.js');
  const minted = await mintDirect({ gateway: gw.url, ca: readFileSync(gw.caFile) }, gw.token, 'bench', { seconds: MAX_DIRECT_SECONDS });
  const url = new URL(gw.url);
  return {
    endpoint: { host: url.hostname, port: minted.mysqlPort ?? Number(url.port), user: minted.user, password: minted.password, database: minted.database, sslRootCert: gw.caFile },
    close: () => gw.stop(),
    relay: { server: gw.pid },
  };
}

/** `hoop direct` to PostgreSQL: see {@link setupDirect}. */
export function setupHoopDirect(pg: PgCluster, o: HoopOptions): Promise<PathSetup> {
  return setupDirect(pgTarget(pg), o);
}

/** `hoop direct` to MySQL, at the gateway's MySQL port: see {@link setupDirect}. */
export function setupMysqlHoopDirect(maria: MariaServer, o: HoopOptions): Promise<PathSetup> {
  return setupDirect(mysqlTarget(maria), o);
}
