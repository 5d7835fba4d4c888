/**
 * `hoop demo`: the whole product on one machine, under one directory, from what npm installed.
 *
 * {@link startDemo} brings up, in this process: a certificate authority of the demo's own (for
 * the gateway's TLS), a real PostgreSQL server (`./postgres.ts`: PostgreSQL binaries from npm, or
 * a local installation) holding the `shop` database, an OpenID provider (`./issuer.ts`), a git
 * config repo with the sample policy (`./sample.ts`), the gateway loading that repo, a sign-in as
 * the demo user (the CLI's own login, with the provider's sign-in played by the demo), and
 * `hoop connect demo-db` on a local port. It writes `<dir>/env`, which points a second
 * terminal's `hoop`, `psql` and `PG*` settings at all of it.
 *
 * What persists in the directory across runs: the CA, the database, the config repo (commit to
 * it and the gateway picks it up), the CLI's profile. What is made again on each start: the
 * provider (and so the sign-in), the gateway's certificate, the local port's certificate.
 *
 * @see docs/architecture.md
 */
import { randomBytes } from 'node:crypto';
import { createWriteStream, existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PassThrough } from 'node:stream';
import { login } from '../auth/login.js';
import type { ConnectJson } from '../connect-json.js';
import { shellQuote } from '../text-format.js';
import { ErrorCode, HoopError, describeError } from '../errors.js';
import { loadGatewayConfig } from '../gateway/config/config.js';
import { startGateway, type Gateway } from '../gateway/server.js';
import type { RunCli } from '../io.js';
import { createLogger, type Logger } from '../log.js';
import { createPolicyRepo } from '../policy/git-js.js';
import { processExists } from '../pid.js';
import { certificateFromPem, mintCertificate } from '../x509.js';
import { startDemoIssuer, type DemoIssuer } from './issuer.js';
import { findSshd, sshdGivesTerminals, startSshd, type Sshd } from './sshd.js';
import { DEMO_RECORDING_FLOOR, diskVerdict, freeBytes } from './disk.js';
import { checkChosenPorts, freePort, portHint, targetPorts, type ChosenPorts, type KeptPorts } from './ports.js';
import { detectContainment } from '../agent/containment.js';
import { findMariaDb, startDemoMariaDb, type DemoMariaDb } from './mariadb.js';
import { runSql, startDemoPostgres, type DemoPostgres } from './postgres.js';
import {
  DEMO_ACCOUNTS,
  DEMO_CONNECTION,
  DEMO_SSH_CONNECTION,
  DEMO_MYSQL_CONNECTION,
  DEMO_API_CONNECTION,
  DEMO_FILES_CONNECTION,
  DEMO_DATABASE,
  DEMO_ROLE,
  DEMO_REVIEWER,
  DEMO_USER,
  samplePolicyFiles,
  sampleSchemaSql,
} from './sample.js';
import type { RecordingCheckResult, ReviewedRun } from './script.js';
import { openSqlSession, type SqlSession } from './session.js';
import { type DemoApi, startDemoApi } from './rest-api.js';

/** Options of {@link startDemo}. */
export interface DemoOptions {
  dir: string;
  /** Wipe the directory first. */
  fresh?: boolean;
  /** The ports the user chose: the gateway's (default 8443), `hoop connect`'s (`local`, default 6432), the targets' and the provider's (see ports.ts). */
  ports: ChosenPorts;
  /** The environment the demo's own CLI runs see under its additions (PATH, HOME). */
  env: NodeJS.ProcessEnv;
  /** Progress lines for the user (stderr). */
  say: (line: string) => void;
  /** The CLI's entry, that runs the demo's own commands (`hoop connect`, the user's) in-process. */
  cli: RunCli;
}

/** A running demo. */
export interface RunningDemo {
  dir: string;
  gatewayUrl: string;
  /** `<dir>/env`, and what it exports. */
  envFile: string;
  env: Record<string, string>;
  /** A psql command line that works as it is (also after `source <dir>/env`: plain `psql`). */
  psql: string;
  connection: ConnectJson;
  connections: string[];
  /** `dataDir`: where the server's files are (outside `dir` when the postgres OS user cannot reach it). */
  postgres: { source: 'npm' | 'local'; version: string; port: number; dataDir: string };
  /** A session through the local port, as the demo user (for the scripted agent). */
  openSession(): Promise<SqlSession>;
  /**
   * Waits (up to 10 s) until the gateway has indexed one more session of the demo user than it
   * had `before` (sessions are indexed when they end), then runs `hoop sessions verify last`.
   */
  verifyLastSession(before: number): Promise<RecordingCheckResult>;
  /** How many ended sessions of the demo user the gateway lists. */
  recordedSessions(): Promise<number>;
  /**
   * With an SSH target: `hoop run --connect demo-ssh` with a shell command that runs one command
   * over ssh and then one the policy refuses; resolves what it printed and the replay of its last session.
   */
  runSsh?: (script: string) => Promise<{ code: number; stdout: string; stderr: string; replay: string }>;
  /**
   * An agent wrapped by `hoop run` with `prompt`: `hoop exec <connection> --csv -c <sql>` as its
   * command; resolves what it printed and its exit code, and the replay of the run (its own record first).
   */
  runAgent(prompt: string, sql: string): Promise<WrappedAgent>;
  /**
   * An agent wrapped by `hoop run --agent demo-agent` sending `sql` with `hoop exec --no-wait`;
   * resolves its exit code, what it printed (the review id when held) and, as the reviewer sees
   * it, the review it raised.
   */
  runAgentWrite(sql: string): Promise<{ code: number; stdout: string; review?: Record<string, unknown> }>;
  /**
   * Where runs are contained: an agent under `hoop run --review` running `script` in a project
   * of its own, with no terminal to review on (its changes kept), then `hoop run diff` and `hoop
   * run apply` of its run, as its person would; resolves each, and the project's files after.
   */
  reviewedAgent?: (script: string) => Promise<ReviewedRun>;
  /**
   * As the demo's reviewer (Rae, group dba): waits for the one pending review, then runs `hoop
   * review approve|deny <id>`; resolves its exit code and a line that says what was done.
   */
  review(decision: 'approve' | 'deny', reason?: string, id?: string): Promise<{ code: number; line: string }>;
  /** `hoop runbook run <argv>` as the demo's user. */
  runbook(argv: string[]): Promise<{ code: number; out: string; err: string }>;
  /** An MCP client of `hoop mcp --agent demo-agent`, as the demo's user's agent: the runbook tools it lists, and what calling `tool` answered. */
  runbookAgent(tool: string, args: Record<string, unknown>): Promise<{ tools: string[]; isError: boolean; text: string }>;
  /** `hoop alerts ls --json` as the demo's user (the alerts about them, open ones), once the gateway has raised what it will. */
  alerts(): Promise<{ code: number; alerts: Array<{ id: string; rule: string; count: number; state: string }> }>;
  stop(): Promise<void>;
}

/** What {@link RunningDemo.runAgent} saw. */
export interface WrappedAgent {
  code: number;
  stdout: string;
  /** `hoop sessions replay <run> --run --no-tty`. */
  replay: string;
}

/** The CLI's launcher, beside the built code (dist/) or the sources (src/). */
const HOOP_BIN = fileURLToPath(new URL('../../bin/hoop.js', import.meta.url));

/** The files under the demo directory. */
function paths(dir: string) {
  return {
    lock: join(dir, 'demo.pid'),
    state: join(dir, 'state.json'),
    ca: join(dir, 'tls', 'ca.crt'),
    caKey: join(dir, 'tls', 'ca.key'),
    gatewayCert: join(dir, 'tls', 'gateway.crt'),
    gatewayKey: join(dir, 'tls', 'gateway.key'),
    postgres: join(dir, 'postgres'),
    secrets: join(dir, 'secrets'),
    rolePassword: join(dir, 'secrets', `${DEMO_ROLE}.password`),
    repo: join(dir, 'policy-repo'),
    gatewayConfig: join(dir, 'gateway.yaml'),
    gatewayData: join(dir, 'gateway'),
    gatewayLog: join(dir, 'gateway.log'),
    cli: join(dir, 'cli'),
    reviewer: join(dir, 'reviewer'),
    env: join(dir, 'env'),
    pgpass: join(dir, 'pgpass'),
    localCa: join(dir, 'tls', 'local.crt'),
    sshd: join(dir, 'sshd'),
    mariadb: join(dir, 'mariadb'),
    mysqlPassword: join(dir, 'secrets', `${DEMO_ROLE}.mysql.password`),
    files: join(dir, 'files'),
    apiToken: join(dir, 'secrets', 'demo-api.token'),
  };
}

/** What the demo remembers between runs: its targets' and provider's ports. */
type DemoState = KeptPorts;

/** Waits for every one of `steps` (each registers its own stop as it starts), then rejects with the first failure, if any. */
async function settledAll<T extends readonly unknown[]>(steps: { [K in keyof T]: Promise<T[K]> }): Promise<T> {
  const settled = await Promise.allSettled(steps);
  const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failed) throw failed.reason;
  return settled.map((s) => (s as PromiseFulfilledResult<unknown>).value) as unknown as T;
}

/** Claims the directory for this process, or says which demo holds it. */
async function claim(dir: string, lock: string): Promise<void> {
  const held = Number((await readFile(lock, 'utf8').catch(() => '')).trim());
  if (Number.isInteger(held) && held > 0 && held !== process.pid && processExists(held)) {
    throw new HoopError(ErrorCode.USAGE, `hoop demo is already running in ${dir} (process ${held})`, {
      hint: `use that one (\`source ${join(dir, 'env')}\` in another terminal), stop it with Ctrl-C, or start another with --dir`,
    });
  }
  await writeFile(lock, `${process.pid}\n`);
}

/** The files under the demo directory, as {@link paths} names them. */
type DemoPaths = ReturnType<typeof paths>;

/** What the steps of {@link startDemo} share: the options, the files, and the stops of what has started so far. */
interface DemoStart {
  options: DemoOptions;
  dir: string;
  p: DemoPaths;
  /** What to stop on failure or at the end, in the order started (stopped in reverse). */
  stops: Array<() => Promise<void>>;
}

/** The CLI as the demo user, in this process; resolves its exit code and output. */
type DemoCli = (argv: string[], as?: Record<string, string>, cwd?: string) => Promise<{ code: number; out: string; err: string }>;

/** Starts everything; see the module documentation. */
export async function startDemo(options: DemoOptions): Promise<RunningDemo> {
  const dir = options.dir;
  const p = paths(dir);
  const gatewayPort = options.ports.gateway ?? 8443;
  const localPort = options.ports.local ?? 6432;
  await claimDirectory(options, p);
  const start: DemoStart = { options, dir, p, stops: [] };
  const stopAll = async (): Promise<void> => {
    for (const stop of start.stops.splice(0).reverse()) await stop().catch(() => undefined);
    await rm(p.lock, { force: true });
  };
  try {
    const low = diskVerdict(dir, await freeBytes(dir));
    if (low) options.say(`warning: ${low}`);
    await checkChosenPorts({ ...options.ports, gateway: gatewayPort, local: localPort });
    const state = await loadState(dir, p, options.ports);
    await mintGatewayCertificate(p);
    // The targets start side by side (each says what it does), on ports kept from the first start.
    const [pg, sshd, maria] = await settledAll([startPostgres(start, state), startSshTarget(start, state), startMysqlTarget(start, state)] as const);
    await ensureDemoFiles(p);
    const api = await startApi(start, state);
    await ensurePolicyRepo(p, pg, sshd, maria, api);

    // The OpenID provider and the gateway.
    const gatewayUrl = `https://127.0.0.1:${gatewayPort}`;
    const issuer = await startIssuer(start, state, gatewayUrl);
    // With MariaDB, the gateway's MySQL port too: MySQL clients sign in there with a direct credential (hoop connect demo-mysql --direct).
    const mysqlPort = maria ? (options.ports.gatewayMysql ?? (await freePort([gatewayPort, localPort, ...Object.values(state)]))) : undefined;
    await writeGatewayConfig(p, gatewayPort, gatewayUrl, issuer, mysqlPort);
    await startDemoGateway(start, gatewayPort, gatewayUrl);

    // The CLI as the demo user: its own login, with the provider's sign-in played here.
    const env = cliEnvironment(dir, p, gatewayUrl);
    const cliEnv = { ...options.env, ...env };
    await signInAs(start, issuer, gatewayUrl, DEMO_USER, cliEnv);
    // The reviewer (group dba) decides the statements the review rule holds: a CLI login of its own.
    const reviewerEnv = { ...cliEnv, HOOP_CONFIG_DIR: p.reviewer };
    await signInAs(start, issuer, gatewayUrl, DEMO_REVIEWER, reviewerEnv);
    env.HOOP_DEMO_REVIEWER = p.reviewer;

    const connection = await openLocalPort(start, cliEnv, localPort);
    const psql = await writeTerminalEnv(p, connection, env);
    const work = await agentWorkDir(start);
    const cli = demoCli(options, env, work);
    const policyText = await readFile(join(p.repo, 'hoop.yaml'), 'utf8');
    const hasSsh = sshd !== undefined && policyText.includes(`name: ${DEMO_SSH_CONNECTION}`);
    const hasMysql = maria !== undefined && policyText.includes(`name: ${DEMO_MYSQL_CONNECTION}`);
    const hasFiles = policyText.includes(`name: ${DEMO_FILES_CONNECTION}`);
    const hasApi = policyText.includes(`name: ${DEMO_API_CONNECTION}`);
    const sessionTarget = await sessionTargetOf(connection);
    return {
      dir,
      gatewayUrl,
      envFile: p.env,
      env,
      psql,
      connection,
      connections: [
        DEMO_CONNECTION,
        ...(hasSsh ? [DEMO_SSH_CONNECTION] : []),
        ...(hasMysql ? [DEMO_MYSQL_CONNECTION] : []),
        ...(hasFiles ? [DEMO_FILES_CONNECTION] : []),
        ...(hasApi ? [DEMO_API_CONNECTION] : []),
      ],
      postgres: { source: pg.source, version: pg.version, port: pg.port, dataDir: pg.dataDir },
      openSession: () => openSqlSession(sessionTarget),
      recordedSessions: () => recordedSessionCount(cli),
      ...(hasSsh ? { runSsh: (script: string) => runSshScript(cli, options.env, script) } : {}),
      ...(detectContainment('auto', { ...options.env, ...env }).kind === 'bwrap' ? { reviewedAgent: (script: string) => runReviewedAgent(cli, work, script) } : {}),
      runAgent: (prompt, sql) => runWrappedAgent(cli, prompt, sql),
      runAgentWrite: (sql) => runAgentWrite(cli, p.reviewer, sql),
      review: (decision, reason, given) => decideReview(cli, p.reviewer, decision, reason, given),
      alerts: () => openAlerts(cli),
      runbook: (argv) => cli(['runbook', 'run', ...argv]),
      runbookAgent: (tool, args) => runbookAsAgent({ ...options.env, ...env }, work, tool, args),
      verifyLastSession: (before) => verifyLastSession(cli, before),
      stop: stopAll,
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}

/** Makes and claims the demo directory, emptying it first when asked for a fresh start. */
async function claimDirectory(options: DemoOptions, p: DemoPaths): Promise<void> {
  const dir = options.dir;
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await claim(dir, p.lock);
  if (options.fresh) {
    options.say(`starting afresh: removing what ${dir} held`);
    for (const entry of await readdir(dir)) if (entry !== 'demo.pid') await rm(join(dir, entry), { recursive: true, force: true });
  }
}

/** Writes what the demo remembers to state.json. */
async function saveState(p: DemoPaths, state: DemoState): Promise<void> {
  await writeFile(p.state, `${JSON.stringify(state)}\n`);
}

/** What the demo remembers (its ports: chosen or free on a first start), saved, and the directories for TLS and secrets. */
async function loadState(dir: string, p: DemoPaths, chosen: ChosenPorts): Promise<DemoState> {
  const kept = existsSync(p.state) ? (JSON.parse(await readFile(p.state, 'utf8')) as DemoState) : undefined;
  const state = await targetPorts(kept, chosen, dir);
  await saveState(p, state);
  await mkdir(join(dir, 'tls'), { recursive: true, mode: 0o700 });
  await mkdir(p.secrets, { recursive: true, mode: 0o700 });
  return state;
}

/** The demo's CA (kept) and the gateway's certificate (minted on each start). */
async function mintGatewayCertificate(p: DemoPaths): Promise<void> {
  if (!existsSync(p.ca)) {
    const ca = mintCertificate({ commonName: 'hoop demo CA', ca: true, validDays: 3650 });
    await writeFile(p.caKey, ca.key, { mode: 0o600 });
    await writeFile(p.ca, ca.cert);
  }
  const ca = certificateFromPem(await readFile(p.ca, 'utf8'), await readFile(p.caKey, 'utf8'));
  const gatewayCert = mintCertificate({ commonName: 'hoop demo gateway', altNames: ['127.0.0.1', 'localhost'], validDays: 30, issuer: ca });
  await writeFile(p.gatewayKey, gatewayCert.key, { mode: 0o600 });
  await writeFile(p.gatewayCert, gatewayCert.cert);
}

/** PostgreSQL (its stop registered), with the shop database on first start. */
async function startPostgres(start: DemoStart, state: DemoState): Promise<DemoPostgres> {
  const { options, p } = start;
  options.say('starting PostgreSQL');
  let pg: DemoPostgres;
  try {
    pg = await startDemoPostgres({ dir: p.postgres, owner: options.dir, port: state.postgresPort, log: (line) => options.say(`  ${line}`) });
  } catch (err) {
    throw err instanceof HoopError ? err : new HoopError(ErrorCode.INTERNAL, `PostgreSQL did not start: ${describeError(err)}`);
  }
  start.stops.push(() => pg.stop());
  if (!existsSync(p.rolePassword)) await createShopDatabase(pg, p.rolePassword);
  return pg;
}

/** The demo's role and the shop database with the sample schema; the role's password kept in `rolePassword`. */
async function createShopDatabase(pg: DemoPostgres, rolePassword: string): Promise<void> {
  const password = randomBytes(18).toString('base64url');
  // CREATE DATABASE cannot run inside the implicit transaction of a multi-statement Query.
  await runSql(pg, 'postgres', `create role ${DEMO_ROLE} login password '${password}'`);
  await runSql(pg, 'postgres', `create database ${DEMO_DATABASE} owner ${DEMO_ROLE}`);
  await runSql({ ...pg, superuser: { user: DEMO_ROLE, password } }, DEMO_DATABASE, sampleSchemaSql());
  await writeFile(rolePassword, `${password}\n`, { mode: 0o600 });
}

/** OpenSSH's sshd, when installed: the SSH target (its keys kept beside the database; its stop registered). */
async function startSshTarget(start: DemoStart, state: DemoState): Promise<Sshd | undefined> {
  const { options, p } = start;
  if (!findSshd()) {
    options.say("no SSH target: OpenSSH's server is not installed (Debian, Ubuntu: sudo apt-get install openssh-server; Fedora: sudo dnf install openssh-server)");
    return undefined;
  }
  options.say('starting sshd (the SSH target)');
  const sshd = await startSshd({ dir: p.sshd, port: state.sshdPort! }).catch((err: unknown) => {
    options.say(`  no SSH target: sshd did not start (${describeError(err)})`);
    return undefined;
  });
  if (sshd) start.stops.push(() => sshd.stop());
  if (sshd && !sshdGivesTerminals()) options.say('  sshd gives no terminals here (as a user other than root, where /dev/pts is not mounted with gid=tty): shells run without one');
  return sshd;
}

/** MariaDB's server, when installed: the MySQL target, over the same shop data (its data under the demo directory; its stop registered). */
async function startMysqlTarget(start: DemoStart, state: DemoState): Promise<DemoMariaDb | undefined> {
  const { options, p } = start;
  if (!findMariaDb()) {
    options.say("no MySQL target: MariaDB's server is not installed (Debian, Ubuntu: sudo apt-get install mariadb-server; then hoop demo --fresh)");
    return undefined;
  }
  options.say('starting MariaDB (the MySQL target)');
  const maria = await startDemoMariaDb({ dir: p.mariadb, port: state.mariadbPort!, passwordFile: p.mysqlPassword, log: (line) => options.say(`  ${line}`) }).catch((err: unknown) => {
    options.say(`  no MySQL target: MariaDB did not start (${describeError(err)})`);
    return undefined;
  });
  if (maria) start.stops.push(() => maria.stop());
  return maria;
}

/** The shop's REST API (./rest-api.ts), on its kept port (its stop registered). */
async function startApi(start: DemoStart, state: DemoState): Promise<DemoApi> {
  start.options.say('starting the shop API (the HTTP target)');
  const api = await startDemoApi({ port: state.apiPort ?? 0, tokenFile: start.p.apiToken });
  start.stops.push(() => api.stop());
  return api;
}

/** How the gateway runs the reference MCP filesystem server over the demo's files, when it is installed. */
function filesCommand(p: DemoPaths): string[] | undefined {
  try {
    const server = join(dirname(createRequire(import.meta.url).resolve('@modelcontextprotocol/server-filesystem/package.json')), 'dist', 'index.js');
    return [process.execPath, server, p.files];
  } catch {
    return undefined;
  }
}

/** The directory the demo's MCP connection serves, with a few files (once; kept: the user may change them). */
async function ensureDemoFiles(p: DemoPaths): Promise<void> {
  if (existsSync(p.files)) return;
  await mkdir(p.files, { mode: 0o700 });
  await writeFile(
    join(p.files, 'README.md'),
    `# The demo's files\n\nThe ${DEMO_FILES_CONNECTION} connection serves this directory's files to agents, through hoop:\nthey read freely; a change waits for a reviewer.\n`,
  );
  await writeFile(join(p.files, 'refunds.csv'), 'customer,card,amount\nAda Lovelace,4111 1111 1111 1111,120.00\n');
}

/** The config repo with the sample policy, made once (kept: the user may commit to it). */
async function ensurePolicyRepo(p: DemoPaths, pg: DemoPostgres, sshd: Sshd | undefined, maria: DemoMariaDb | undefined, api: DemoApi): Promise<void> {
  if (existsSync(p.repo)) return;
  await createPolicyRepo(
    p.repo,
    samplePolicyFiles({
      port: pg.port,
      passwordFile: p.rolePassword,
      ...(sshd ? { ssh: { port: sshd.port, user: sshd.user, keyFile: sshd.clientKeyFile, hostKey: sshd.hostKey } } : {}),
      ...(maria ? { mysql: { port: maria.port, passwordFile: p.mysqlPassword } } : {}),
      ...(filesCommand(p) ? { files: { command: filesCommand(p)! } } : {}),
      api: { port: api.port, tokenFile: p.apiToken },
    }),
    { name: 'hoop demo', email: 'demo@hoop.invalid' },
    'The demo policy',
  );
}

/** The OpenID provider, on its remembered port when that is free (its stop registered, its port remembered). */
async function startIssuer(start: DemoStart, state: DemoState, gatewayUrl: string): Promise<DemoIssuer> {
  const issuerOptions = { accounts: DEMO_ACCOUNTS, audience: 'hoop-demo', resource: gatewayUrl };
  const chosen = start.options.ports.issuer;
  // A chosen port or nothing; a kept one when it is still free, else any.
  const issuer: DemoIssuer = await startDemoIssuer({ ...issuerOptions, port: state.issuerPort ?? 0 }).catch(() => {
    if (chosen !== undefined) throw portHint('issuer', chosen);
    return startDemoIssuer(issuerOptions);
  });
  start.stops.push(() => issuer.close());
  state.issuerPort = Number(new URL(issuer.issuer).port);
  await saveState(start.p, state);
  return issuer;
}

/** Writes the gateway's configuration (gateway.yaml), anew on each start. */
async function writeGatewayConfig(p: DemoPaths, gatewayPort: number, gatewayUrl: string, issuer: DemoIssuer, mysqlPort: number | undefined): Promise<void> {
  const q = (value: string): string => JSON.stringify(value); // a YAML string, quoted as JSON
  await writeFile(
    p.gatewayConfig,
    `# written by hoop demo on each start
listen: 127.0.0.1:${gatewayPort}
${mysqlPort !== undefined ? `mysqlListen: 127.0.0.1:${mysqlPort}\n` : ''}tls: { cert: ${q(p.gatewayCert)}, key: ${q(p.gatewayKey)} }
dataDir: ${q(p.gatewayData)}
recording: { minFreeBytes: ${DEMO_RECORDING_FLOOR} }
log: { level: info }
login: { issuer: ${q(issuer.issuer)}, clientId: ${q(issuer.clientId)}, resource: ${q(gatewayUrl)} }
issuers:
  - { issuer: ${q(issuer.issuer)}, audience: hoop-demo, tokenType: access }
policy:
  repo: ${q(p.repo)}
  ref: main
  pullIntervalSeconds: 5
  allowedSecrets: [${q(`\${file:${p.secrets}/*}`)}, ${q(`\${file:${p.sshd}/client_key}`)}]
  allowedCommands: [${filesCommand(p) ? q(filesCommand(p)!.join(' ')) : ''}]
`,
  );
}

/** The gateway, in this process, logging to gateway.log (the log's and the gateway's stops registered). */
async function startDemoGateway(start: DemoStart, gatewayPort: number, gatewayUrl: string): Promise<Gateway> {
  const { options, p } = start;
  options.say(`starting the gateway on ${gatewayUrl}`);
  const gatewayLog = createWriteStream(p.gatewayLog, { flags: 'a', mode: 0o600 });
  start.stops.push(() => new Promise<void>((resolve) => gatewayLog.end(resolve)));
  const log: Logger = createLogger({ level: 'info', sink: gatewayLog, fields: { component: 'gateway' } });
  let gateway: Gateway;
  try {
    gateway = await startGateway({ config: await loadGatewayConfig(p.gatewayConfig, options.env), log, env: options.env });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE' || /EADDRINUSE/.test(describeError(err))) throw portHint('gateway', gatewayPort);
    throw err;
  }
  start.stops.push(() => gateway.close());
  return gateway;
}

/** The demo's additions to the CLI's environment (later also the reviewer's and PostgreSQL's settings). */
function cliEnvironment(dir: string, p: DemoPaths, gatewayUrl: string): Record<string, string> {
  return {
    HOOP_CONFIG_DIR: p.cli,
    HOOP_TOKEN_STORE: 'file',
    HOOP_GATEWAY: gatewayUrl,
    HOOP_CA_FILE: p.ca,
    HOOP_POLICY_REPO: p.repo,
    // The demo's directory (its policy repo, secrets, logins): what `hoop run` keeps from an agent as hoop's own.
    HOOP_DEMO_DIR: dir,
  };
}

/** `hoop login` as `account` into the CLI configuration of `loginEnv`, with the provider's sign-in played here. */
async function signInAs(start: DemoStart, issuer: DemoIssuer, gatewayUrl: string, account: string, loginEnv: NodeJS.ProcessEnv): Promise<void> {
  start.options.say(`signing in as "${account}"`);
  // The browser's part runs beside login(), which listens for the redirect only once the URL was "opened".
  const signIn = new AbortController();
  let signingIn: Promise<void> = Promise.resolve();
  const openUrl = async (url: string): Promise<boolean> => {
    signingIn = issuer.signIn(url, account).catch((err: unknown) => {
      signIn.abort();
      throw new HoopError(ErrorCode.INTERNAL, `the demo's sign-in as "${account}" failed: ${describeError(err)}`);
    });
    signingIn.catch(() => undefined);
    return true;
  };
  try {
    await login({ gateway: gatewayUrl, caFile: start.p.ca, timeoutSeconds: 30 }, { env: loginEnv, cwd: start.dir, interactive: true, signal: signIn.signal, say: () => undefined, openUrl });
  } catch (err) {
    await signingIn; // its error says more than "login cancelled"
    throw err;
  }
}

/** `hoop connect demo-db`, in this process: resolves its JSON line once it listens (its stop registered then). */
async function openLocalPort(start: DemoStart, cliEnv: NodeJS.ProcessEnv, localPort: number): Promise<ConnectJson> {
  const { options, dir } = start;
  options.say(`opening ${DEMO_CONNECTION} on 127.0.0.1:${localPort}`);
  const connectStop = new AbortController();
  const out = new PassThrough();
  const err = new PassThrough();
  let said = '';
  err.on('data', (b: Buffer) => (said += b.toString('utf8')));
  const ready = new Promise<ConnectJson>((resolve, reject) => {
    let buffered = '';
    out.on('data', (b: Buffer) => {
      buffered += b.toString('utf8');
      const line = buffered.split('\n').find((l) => l.startsWith('{'));
      if (line) resolve(JSON.parse(line) as ConnectJson);
    });
    // Without the policy repo: every statement goes to the gateway, which judges and records it
    // (an early check on this side would refuse a DROP before the gateway's recording sees it).
    const { HOOP_POLICY_REPO: _repo, ...connectEnv } = cliEnv;
    void options
      .cli(['connect', DEMO_CONNECTION, '--port', String(localPort), '--json'], { stdout: out, stderr: err, env: connectEnv, cwd: dir, signal: connectStop.signal })
      .then((code) =>
        reject(/in use|EADDRINUSE/.test(said) ? portHint('local', localPort) : new HoopError(ErrorCode.INTERNAL, `hoop connect ${DEMO_CONNECTION} ended (exit ${code}): ${said.trim()}`)),
      );
  });
  const connection = await ready;
  start.stops.push(async () => connectStop.abort());
  return connection;
}

/**
 * The environment of a second terminal (`<dir>/env`, and PG* settings added to `env`), with the local
 * port's password and certificate at paths that stay the same across restarts (their contents change
 * with each start); returns a psql command line that works as it is.
 */
async function writeTerminalEnv(p: DemoPaths, connection: ConnectJson, env: Record<string, string>): Promise<string> {
  await writeFile(p.pgpass, await readFile(connection.pgpassFile), { mode: 0o600 });
  if (connection.sslrootcert) await writeFile(p.localCa, await readFile(connection.sslrootcert));
  Object.assign(env, {
    PGHOST: connection.host,
    PGPORT: String(connection.port),
    PGUSER: connection.user,
    PGDATABASE: connection.database,
    PGPASSFILE: p.pgpass,
    ...(connection.sslrootcert ? { PGSSLMODE: 'verify-full', PGSSLROOTCERT: p.localCa } : {}),
  });
  await writeFile(
    p.env,
    `# hoop demo: \`source ${p.env}\` to use hoop, psql and PostgreSQL drivers as "${DEMO_USER}" through the demo\n` +
      Object.entries(env)
        .map(([k, v]) => `export ${k}=${shellQuote(v)}`)
        .join('\n') +
      '\n',
  );
  await chmod(p.env, 0o600);
  return `PGPASSFILE=${shellQuote(p.pgpass)} psql ${shellQuote(`host=${connection.host} port=${connection.port} user=${connection.user} dbname=${connection.database}${connection.sslrootcert ? ` sslmode=verify-full sslrootcert=${p.localCa}` : ''}`)}`;
}

/** Where the demo's agents work (`hoop run`'s working directory): a project directory of their own, never the demo's (hidden from agents) nor the home; removed on stop. */
async function agentWorkDir(start: DemoStart): Promise<string> {
  const work = await mkdtemp(join(tmpdir(), 'hoop-demo-work-'));
  start.stops.push(() => rm(work, { recursive: true, force: true }));
  return work;
}

/** The CLI as the demo user, in this process, in `work`, with `env` as it is at each call. */
function demoCli(options: DemoOptions, env: Record<string, string>, work: string): DemoCli {
  return async (argv, as = {}, cwd = work) => {
    let out = '';
    let err = '';
    const stdout = new PassThrough().on('data', (b: Buffer) => (out += b.toString()));
    const stderr = new PassThrough().on('data', (b: Buffer) => (err += b.toString()));
    const code = await options.cli(argv, { stdout, stderr, env: { ...options.env, ...env, ...as }, cwd, signal: new AbortController().signal });
    return { code, out, err };
  };
}

/** A session target for {@link openSqlSession}: the local port of `hoop connect`, as the demo user. */
async function sessionTargetOf(connection: ConnectJson): Promise<Parameters<typeof openSqlSession>[0]> {
  return {
    host: connection.host,
    port: connection.port,
    user: connection.user,
    database: connection.database,
    password: connection.password,
    tls: connection.sslrootcert ? { mode: 'verify-full' as const, ca: await readFile(connection.sslrootcert) } : { mode: 'disable' as const },
  };
}

/** How many ended sessions of the demo user the gateway lists. */
async function recordedSessionCount(cli: DemoCli): Promise<number> {
  const r = await cli(['sessions', 'ls', '--json']);
  return r.code === 0 ? (JSON.parse(r.out) as { sessions: Array<{ endedAt?: string }> }).sessions.filter((s) => s.endedAt !== undefined).length : 0;
}

/** Whether the newest ended session's CLI record reached the gateway. */
async function newestHasClientRecord(cli: DemoCli): Promise<boolean> {
  const r = await cli(['sessions', 'ls', '--json']);
  return r.code === 0 && (JSON.parse(r.out) as { sessions: Array<{ endedAt?: string; clientRecord?: string }> }).sessions.find((s) => s.endedAt !== undefined)?.clientRecord === 'complete';
}

/** {@link RunningDemo.runSsh}: `hoop run --connect demo-ssh` with `script`, and the replay of its last session. */
async function runSshScript(cli: DemoCli, baseEnv: NodeJS.ProcessEnv, script: string): Promise<{ code: number; stdout: string; stderr: string; replay: string }> {
  // The script's ssh, sh and uname by their usual places too (the demo may run with only node on PATH).
  const path = [dirname(findSshd()!.ssh), '/usr/bin', '/bin', baseEnv.PATH].filter(Boolean).join(':');
  const run = await cli(['run', '--connect', DEMO_SSH_CONNECTION, '--', 'sh', '-c', script], { PATH: path });
  // The script's last session is the one that started last; the gateway may still be ending it.
  let replay = '';
  for (let i = 0; i < 50 && !replay; i++) {
    const ls = await cli(['sessions', 'ls', '--json', '--connection', DEMO_SSH_CONNECTION]);
    const sessions = ls.code === 0 ? (JSON.parse(ls.out) as { sessions: Array<{ id: string; startedAt: string; endedAt?: string }> }).sessions : [];
    const last = sessions.reduce<(typeof sessions)[number] | undefined>((a, b) => (a === undefined || b.startedAt > a.startedAt ? b : a), undefined);
    if (last?.endedAt !== undefined) replay = (await cli(['sessions', 'replay', last.id, '--no-tty'])).out;
    else await new Promise((r) => setTimeout(r, 100));
  }
  return { code: run.code, stdout: run.out, stderr: run.err, replay };
}

/** {@link RunningDemo.runAgent}: an agent wrapped by `hoop run` running `hoop exec --csv -c <sql>`, and the replay of the run. */
async function runWrappedAgent(cli: DemoCli, prompt: string, sql: string): Promise<WrappedAgent> {
  const run = await cli(['run', '--connect', DEMO_CONNECTION, '--prompt', prompt, '--', process.execPath, HOOP_BIN, 'exec', DEMO_CONNECTION, '--csv', '-c', sql]);
  const ls = await cli(['sessions', 'ls', '--json']);
  const runId = ls.code === 0 ? (JSON.parse(ls.out) as { sessions: Array<{ runId?: string }> }).sessions.find((s) => s.runId)?.runId : undefined;
  if (!runId) return { code: run.code, stdout: run.out, replay: 'no session of the run is listed' };
  // The run's own record reaches the gateway as its CLI uploads it: until its end is there, the replay shows less.
  let replay = { out: '', err: '' };
  for (let i = 0; i < 50; i++) {
    replay = await cli(['sessions', 'replay', runId, '--run', '--no-tty']);
    if (replay.out.includes("-- the run's command exited")) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  return { code: run.code, stdout: run.out, replay: replay.out || replay.err };
}

/** {@link RunningDemo.runAgentWrite}: `hoop exec --no-wait` under `hoop run --agent demo-agent`, and the review it raised as the reviewer sees it. */
async function runAgentWrite(cli: DemoCli, reviewerDir: string, sql: string): Promise<{ code: number; stdout: string; review?: Record<string, unknown> }> {
  const run = await cli(['run', '--agent', 'demo-agent', '--connect', DEMO_CONNECTION, '--', process.execPath, HOOP_BIN, 'exec', DEMO_CONNECTION, '--no-wait', '-c', sql]);
  const id = run.out.trim();
  const ls = await cli(['review', 'ls', '--json'], { HOOP_CONFIG_DIR: reviewerDir });
  const review = ls.code === 0 ? (JSON.parse(ls.out) as { reviews: Array<Record<string, unknown>> }).reviews.find((r) => r.id === id) : undefined;
  return { code: run.code, stdout: run.out, ...(review ? { review } : {}) };
}

/** {@link RunningDemo.reviewedAgent}: see there. */
async function runReviewedAgent(cli: DemoCli, work: string, script: string): Promise<ReviewedRun> {
  const project = await mkdtemp(join(work, 'project-'));
  const run = await cli(
    ['run', '--review', '--agent', 'demo-agent', '--connect', DEMO_CONNECTION, '--', 'sh', '-c', script],
    { PATH: ['/usr/bin', '/bin', process.env.PATH].filter(Boolean).join(':') },
    project,
  );
  const id = /`hoop run diff (run-[A-Za-z0-9_-]+)`/.exec(run.err)?.[1];
  const none = { code: 1, out: '', err: 'no run was kept' };
  const diff = id ? await cli(['run', 'diff', id], {}, project) : none;
  const apply = id ? await cli(['run', 'apply', id], {}, project) : none;
  return { run, diff, apply, files: (await readdir(project)).sort() };
}

/** {@link RunningDemo.review}: as the reviewer, waits for the pending review (unless `given`) and decides it with the CLI. */
async function decideReview(cli: DemoCli, reviewerDir: string, decision: 'approve' | 'deny', reason?: string, given?: string): Promise<{ code: number; line: string }> {
  // The reviewer finds the statement the agent's session waits on, and decides it with the CLI.
  const asReviewer = { HOOP_CONFIG_DIR: reviewerDir };
  let id = given;
  for (let i = 0; i < 100 && id === undefined; i++) {
    const ls = await cli(['review', 'ls', '--json'], asReviewer);
    id = ls.code === 0 ? (JSON.parse(ls.out) as { reviews: Array<{ id: string }> }).reviews[0]?.id : undefined;
    if (id === undefined) await new Promise((r) => setTimeout(r, 100));
  }
  if (id === undefined) return { code: 1, line: 'no review waited for a decision' };
  const r = await cli(['review', decision, id, ...(reason ? ['--reason', reason] : [])], asReviewer);
  return { code: r.code, line: `hoop review ${decision} ${id}${reason ? ` --reason ${JSON.stringify(reason)}` : ''}: ${(r.out || r.err).trim()}` };
}

/** {@link RunningDemo.runbookAgent}: a real `hoop mcp` process and the MCP SDK's client, as an agent's. */
async function runbookAsAgent(env: NodeJS.ProcessEnv, cwd: string, tool: string, args: Record<string, unknown>): Promise<{ tools: string[]; isError: boolean; text: string }> {
  const { Client } = await import('@modelcontextprotocol/sdk/client/index.js');
  const { StdioClientTransport } = await import('@modelcontextprotocol/sdk/client/stdio.js');
  const client = new Client({ name: 'demo-agent', version: '1' });
  await client.connect(new StdioClientTransport({ command: process.execPath, args: [HOOP_BIN, 'mcp', '--agent', 'demo-agent'], env: env as Record<string, string>, cwd, stderr: 'ignore' }));
  try {
    // hoop mcp lists the runbooks once the client has initialized: asked again for a moment until they are there.
    let tools: string[] = [];
    for (let i = 0; i < 100 && !tools.includes(tool); i++) {
      if (i > 0) await new Promise((r) => setTimeout(r, 100));
      tools = (await client.listTools()).tools.map((t) => t.name).filter((n) => n.startsWith('runbook_'));
    }
    const r = await client.callTool({ name: tool, arguments: args });
    const text = (r.content as Array<{ type: string; text?: string }>).map((c) => c.text ?? '').join('\n');
    return { tools, isError: r.isError === true, text };
  } finally {
    await client.close();
  }
}

/** {@link RunningDemo.alerts}: the demo user's open alerts (asked again for a moment while none is there: the gateway raises it as the refusal comes). */
async function openAlerts(cli: DemoCli): Promise<{ code: number; alerts: Array<{ id: string; rule: string; count: number; state: string }> }> {
  for (let i = 0; ; i++) {
    const r = await cli(['alerts', 'ls', '--json']);
    const alerts = r.code === 0 ? (JSON.parse(r.out) as { alerts: Array<{ id: string; rule: string; count: number; state: string }> }).alerts : [];
    if (alerts.length > 0 || i >= 50) return { code: r.code, alerts };
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** {@link RunningDemo.verifyLastSession}: waits for one more ended session (and its CLI record), then `hoop sessions verify last`. */
async function verifyLastSession(cli: DemoCli, before: number): Promise<RecordingCheckResult> {
  for (let i = 0; i < 100 && (await recordedSessionCount(cli)) <= before; i++) await new Promise((r) => setTimeout(r, 100));
  // hoop connect uploads its own record of the session as it ends: verify checks both, and that they agree.
  for (let i = 0; i < 50 && !(await newestHasClientRecord(cli)); i++) await new Promise((r) => setTimeout(r, 100));
  const r = await cli(['sessions', 'verify', 'last']);
  return { ok: r.code === 0 && r.out.includes("cross-check: the gateway's and the CLI's records agree"), detail: (r.out || r.err).trim() };
}
