/**
 * What `hoop run [--connect NAME]... -- <command> [args...]` does (src/commands/run.ts declares it): runs a command (an AI agent, a CI job,
 * a script) whose only way to the connections it names is through the gateway. Each connection is
 * served on a local port for the length of the run (as `hoop connect` serves it), and the command
 * starts with the environment its clients read: libpq's `PGHOST`, `PGPORT`, `PGUSER`,
 * `PGDATABASE`, `PGPASSFILE` (the per-run password), `PGSSLMODE`/`PGSSLROOTCERT` on TCP;
 * `DATABASE_URL` (one connection) or `DATABASE_URL_<NAME>` (several); and `HOOP_RUN_ID`, which
 * every tunnel of the run carries, so the gateway's session records name the run.
 *
 * No credential of a database is in that environment: the gateway alone holds them. Inherited
 * libpq variables (`PG*`) and `DATABASE_URL*` are removed first, so none can point the command
 * around the gateway. Stdio is the command's own (a TTY stays a TTY); the signals hoop receives
 * are handed on (on a terminal, Ctrl-C and Ctrl-\ reach the command from the terminal, so hoop
 * does not send them again); hoop exits with the command's exit code (128 + n for signal n), and
 * the ports close when the command exits. With `--direct`, a PostgreSQL connection has no local
 * port: the variables name the gateway's own address and a direct credential minted with the
 * run's credential, which ends with the run.
 *
 * Without `--connect`, the connections are the `connections:` of `.hoop.yaml` in the working
 * directory, else of `hoop.yaml` in the user's hoop config directory.
 *
 * @see https://www.postgresql.org/docs/current/libpq-envars.html
 * @see https://github.com/sindresorhus/execa#readme
 */
import { realClock } from '../clock.js';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { constants, hostname } from 'node:os';
import { join, resolve } from 'node:path';
import * as z from 'zod';
import { configDir } from '../auth/paths.js';
import { locatedProblems, readErrorMessage, readYamlWith, syntaxProblems } from '../config/yaml.js';
import { commandTokenProvider } from './client-config.js';
import { CommandExit, describeError, ErrorCode, HoopError, hoopSays } from '../errors.js';
import { readNamedFile, readTreeFile, type TreePlaces } from '../tree-file.js';
import { getConnection } from '../api-client/connections.js';
import { getRecordingKeys } from '../api-client/sessions.js';
import type { ResolvedTokenProvider } from '../auth/token-provider.js';
import type { RecordingWriter } from '../recording/writer.js';
import { VERSION } from '../version.js';
import { CommandRecords, sshRecordHook } from './client-records.js';
import type { CliIo } from '../io.js';
import { createLogger, levelFromEnv, type Logger } from '../log.js';
import { writePgpass } from '../postgres/local/pgpass.js';
import { runtimeDir, writeRunFile } from '../runtime-files.js';
import { AgentRun } from '../agent/agent-run.js';
import { serverEntry } from './mcp-client-config.js';
import { agentEnvironment, detectContainment, type IsolationMode } from '../agent/containment.js';
import { bridgePorts, gatewayAcceptor, gatewayHostsLine, portInside, type PortAcceptor, type PortBridge } from '../agent/port-bridge.js';
import { egressProxy, type EgressDecision } from '../agent/egress-proxy.js';
import { sandboxMounts, treePlaces, type Mount } from '../agent/sandbox.js';
import { scanTree, sweepTree, type TreeControls } from '../agent/tree-controls.js';
import { notePendingSweep, tellSwept } from '../agent/pending-sweeps.js';
import { type Layer, makeLayer, processStart } from '../agent/layers.js';
import { within } from '../tree-file.js';
import { type Settle, settleLayer } from './run-gate.js';
import { resolveCommand, spawnAgent } from '../agent/spawn-agent.js';
import { agentName } from '../policy/principal.js';
import type { SshPort } from '../ssh/local/port.js';
import { MAX_RUN_PROMPT_CHARS } from '../api/bodies.js';
import { cutText, cutValue } from '../recording/event-line.js';
import type { LocalPolicyOptions } from './connect-policy.js';
import { shellQuote } from '../text-format.js';
import { localUri, openLocalPort, type LocalPort, type PgEndpoint } from './local-port.js';
import { type HttpPort, openHttpPort } from '../http/local/port.js';
import { type ApiRoutes, httpRoutes } from './run-routes.js';
import { mysqlUri, openMysqlPort, writeMysqlHome, type MysqlEndpoint, type MysqlPort } from './connect-mysql.js';
import { directRootCert, gatewayAddress } from './connect-direct.js';
import { mintDirect } from '../api-client/direct.js';

export interface RunOptions extends LocalPolicyOptions {
  connect?: string[];
  /** Serve no connection: the command reaches only the runbooks its agent may run. */
  runbooksOnly?: boolean;
  agent?: string;
  isolation: IsolationMode;
  /** How the contained command's changes reach its tree: through the gate when it ends (the default), kept for `hoop run apply`, or written directly. */
  apply?: 'gate' | 'never' | 'live';
  /** Show the changes as a diff and apply those the person accepts. */
  review?: boolean;
  hide?: string[];
  readOnly?: string[];
  share?: string[];
  sshAgent?: boolean;
  prompt?: string;
  promptFile?: string;
  socket?: string;
  direct?: boolean;
  gateway?: string;
  tokenFile?: string;
  caFile?: string;
  /** Print nothing of hoop's own when all goes well (the run's id included). */
  quiet?: boolean;
  /** Say the run's id (and its connections) as one JSON line on stderr. */
  json?: boolean;
}

/** Hears the egress proxy's decisions: each in the run's record; a refusal told to the gateway and said, once per destination (the command may retry). */
function egressListener(run: AgentRun, record: RecordingWriter | undefined, say: (line: string) => void): (d: EgressDecision) => void {
  const told = new Set<string>();
  return (d) => {
    record?.append({ t: 'egress', at: d.at, host: d.host, port: d.port, allowed: d.allowed, ...(d.why ? { why: d.why } : {}) });
    if (d.allowed) return;
    run.refused(d);
    const where = `${d.host}:${d.port}`;
    if (told.size < 100 && !told.has(where)) say(`refused the command's connection to ${where}: ${d.why}`);
    told.add(where);
  };
}

/** The file in a working directory (and in the user's config directory, `hoop.yaml`) that names a run's connections. */
export const RUN_FILE = '.hoop.yaml';

const RunFile = z.object({ connections: z.array(z.string().min(1)).min(1, { error: 'name at least one connection' }) }, { error: 'must be a mapping with `connections: [NAME, ...]`' }).strict();

/** The connections of `file` (undefined when it does not exist), checked as the gateway and policy files are (src/config/yaml.ts). */
async function connectionsIn(file: string, places: TreePlaces): Promise<string[] | undefined> {
  let text: string;
  try {
    text = await readTreeFile(file, places);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    if (err instanceof HoopError) throw err;
    throw new HoopError(ErrorCode.CONFIG_INVALID, `cannot read ${file}: ${readErrorMessage(err)}`);
  }
  const read = readYamlWith(text, RunFile);
  if ('problems' in read) {
    throw new HoopError(ErrorCode.CONFIG_INVALID, syntaxProblems(file, read.problems).join('\n'));
  }
  if ('invalid' in read) {
    throw new HoopError(ErrorCode.CONFIG_INVALID, locatedProblems(file, read.invalid, read.locator).join('\n'), { hint: 'it reads: connections: [prod-db]' });
  }
  return read.data.connections;
}

/** The connections a run serves: `--connect`, else `.hoop.yaml` here, else the user's `hoop.yaml`. */
async function runConnections(io: CliIo, named: string[] | undefined): Promise<string[]> {
  const names = named?.length
    ? named
    : ((await connectionsIn(join(io.cwd, RUN_FILE), treePlaces(io.env, io.cwd))) ?? (await connectionsIn(join(configDir(io.env, io.cwd), 'hoop.yaml'), { tree: io.cwd, private: [] })));
  if (!names) {
    throw new HoopError(ErrorCode.USAGE, 'hoop run needs to know which connections to serve', {
      hint: `name them with --connect NAME (as \`hoop connections\` lists them), or in ${RUN_FILE} here: connections: [NAME]`,
    });
  }
  const unique = [...new Set(names)];
  // Two names, one variable (`a-b` and `a_b`): the command could not tell them apart.
  const seen = new Map<string, string>();
  for (const name of unique) {
    const other = seen.get(databaseUrlName(name));
    if (other !== undefined) throw new HoopError(ErrorCode.USAGE, `connections "${other}" and "${name}" would both be ${databaseUrlName(name)}`, { hint: 'run them in separate hoop runs' });
    seen.set(databaseUrlName(name), name);
  }
  return unique;
}

/** `DATABASE_URL_<NAME>`: the name upper-cased, anything but letters and digits as `_`. */
export function databaseUrlName(connection: string): string {
  return `DATABASE_URL_${connection.toUpperCase().replace(/[^A-Z0-9]/g, '_')}`;
}

/** The variable an HTTP connection's base URL is in: `<NAME>_URL` (`shop-api` → `SHOP_API_URL`). */
export function httpUrlName(connection: string): string {
  return `${connection.toUpperCase().replace(/[^A-Z0-9]/g, '_')}_URL`;
}

/**
 * The run's own variables in the command's environment: the run (`HOOP_RUN_ID`, its credential
 * `HOOP_RUN_TOKEN`, `HOOP_GATEWAY`, `HOOP_CA_FILE`, so that hoop inside acts as the run); its
 * ports (the first PostgreSQL one named is libpq's default, the first MySQL one MariaDB's client's
 * through `MYSQL_HOME`, `DATABASE_URL` for one SQL connection, `DATABASE_URL_<NAME>` for several); with SSH
 * connections their ssh_config as `HOOP_SSH_CONFIG`, for ssh, git (`GIT_SSH_COMMAND`) and rsync
 * (`RSYNC_RSH`). What the command inherits is {@link agentEnvironment}'s to say.
 */
export function runVariables(
  run: { id: string; token: string; gateway: string; caFile?: string | undefined },
  ports: readonly PgEndpoint[],
  pgpassFile: string | undefined,
  sshConfig?: string,
  mysql: { ports: readonly MysqlEndpoint[]; home?: string } = { ports: [] },
): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { HOOP_RUN_ID: run.id, HOOP_RUN_TOKEN: run.token, HOOP_GATEWAY: run.gateway, ...(run.caFile ? { HOOP_CA_FILE: run.caFile } : {}) };
  if (sshConfig) {
    const ssh = `ssh -F ${shellQuote(sshConfig)}`;
    Object.assign(env, { HOOP_SSH_CONFIG: sshConfig, GIT_SSH_COMMAND: ssh, RSYNC_RSH: ssh });
  }
  const urls = [...ports.map((p) => ({ connection: p.connection, url: localUri(p, p.password) })), ...mysql.ports.map((p) => ({ connection: p.connection, url: mysqlUri(p, p.password) }))];
  if (urls.length === 1) env.DATABASE_URL = urls[0]!.url;
  else for (const u of urls) env[databaseUrlName(u.connection)] = u.url;
  const mine = mysql.ports[0];
  if (mine) {
    Object.assign(env, { MYSQL_HOST: mine.host, MYSQL_TCP_PORT: String(mine.port), HOOP_MYSQL_OPTION_FILE: mine.optionFile, ...(mysql.home ? { MYSQL_HOME: mysql.home } : {}) });
  }
  const first = ports[0];
  if (!first || !pgpassFile) return env;
  Object.assign(env, {
    PGHOST: first.host,
    PGPORT: String(first.port),
    PGUSER: first.user,
    PGDATABASE: first.database,
    PGPASSFILE: pgpassFile,
    ...(first.sslrootcert ? { PGSSLMODE: 'verify-full', PGSSLROOTCERT: first.sslrootcert } : {}),
  });
  return env;
}

/** A shell's exit code for how a command ended: its own code, or 128 + the signal's number. */
function exitCodeOf(result: { exitCode?: number | undefined; signal?: string | undefined }): number {
  if (result.signal) return 128 + (constants.signals[result.signal as NodeJS.Signals] ?? 0);
  return result.exitCode ?? 1;
}

/** The process's own stdio stream (file descriptor `fd`) is inherited: the command shares it, a TTY stays a TTY. Another stream is piped. */
function inherited(stream: object, fd: 0 | 1 | 2): 'inherit' | 'pipe' {
  return (stream as { fd?: unknown }).fd === fd ? 'inherit' : 'pipe';
}

/**
 * Opens the run's own record (src/recording/spool.ts) and writes its start: who ran what, where,
 * with which prompt and connections, as which agent and how contained. Resolves undefined when
 * the gateway keeps no records.
 */
async function openRunRecord(
  records: CommandRecords,
  person: ResolvedTokenProvider,
  run: AgentRun,
  what: { command: string[]; cwd: string; connections: string[]; prompt?: string },
): Promise<RecordingWriter | undefined> {
  if (!records.keeps) return undefined;
  // A gateway that records publishes its keys; one that does not would never take the record.
  const recording = await getRecordingKeys({ gateway: person.gateway, ca: person.ca }).then(
    () => true,
    () => false,
  );
  if (!recording) return undefined;
  const writer = await records.recorder.run(run.id);
  records.opened('runs', run.id);
  writer.append({
    t: 'start',
    at: realClock.now(),
    side: 'run',
    run: run.id,
    ...(records.subject ? { subject: records.subject } : {}),
    agent: run.agent,
    isolation: run.isolation,
    command: what.command.map(cutValue),
    cwd: cutValue(what.cwd),
    connections: what.connections,
    ...(what.prompt !== undefined ? { prompt: what.prompt } : {}),
    host: hostname(),
    pid: process.pid,
    cliVersion: VERSION,
  });
  await writer.checkpoint();
  // The gateway takes a run's record only from the person it began the run for.
  await records.claim('runs', run.id);
  return writer;
}

/** A PostgreSQL connection of the run reached directly: the gateway's address, a credential minted with the run's (it ends with the run), the CA in the run's directory. */
async function directEndpoint(run: AgentRun, name: string, runDir: string): Promise<PgEndpoint> {
  const minted = await mintDirect({ gateway: run.provider.gateway, ...(run.provider.ca ? { ca: run.provider.ca } : {}) }, run.token, name);
  const { host, port } = gatewayAddress(run.provider.gateway);
  const { file } = await directRootCert(run.provider.ca, runDir, name, port);
  return { connection: name, host, port, user: minted.user, database: minted.database, password: minted.password, sslrootcert: file };
}

/**
 * The variables that send a contained command's connections to the egress proxy on `port` of its
 * loopback (HTTP and SOCKS5 on one port; `NODE_USE_ENV_PROXY` for Node's own clients); what is on
 * that loopback (the run's ports, the gateway) is reached directly.
 */
export function proxyVariables(port: number, direct: readonly string[]): NodeJS.ProcessEnv {
  const http = `http://127.0.0.1:${port}`;
  const socks = `socks5h://127.0.0.1:${port}`;
  const none = ['localhost', '127.0.0.1', '::1', ...direct].join(',');
  return { HTTP_PROXY: http, HTTPS_PROXY: http, http_proxy: http, https_proxy: http, ALL_PROXY: socks, all_proxy: socks, NO_PROXY: none, no_proxy: none, NODE_USE_ENV_PROXY: '1' };
}

/** What a contained command's loopback serves (../agent/port-bridge.ts), and how it finds it. */
interface SandboxNetwork {
  bridge: PortBridge;
  /** The gateway there, when the sandbox can stand in for it: its URL for the command, and its port. */
  gateway?: { url: string; port: number };
  /** The egress proxy's variables. */
  env: NodeJS.ProcessEnv;
}

/**
 * Bridges into a contained command's loopback its run's TCP ports (`local`), the gateway under
 * its own name and the egress proxy (../agent/egress-proxy.ts), which lets through what `run` allows and
 * tells each connection to `onEgress`.
 */
async function sandboxNetwork(runDir: string, local: PortAcceptor[], gateway: string, run: AgentRun, onEgress: (d: EgressDecision) => void, apis: ApiRoutes): Promise<SandboxNetwork> {
  const taken = new Set(local.map((p) => p.port));
  const inside = gatewayAcceptor(gateway, portInside(taken, gatewayAddress(gateway).port));
  if (inside) taken.add(inside.acceptor.port);
  const proxy = egressProxy({ port: portInside(taken, 3128), allows: (host, port) => run.allowsEgress(host, port), onDecision: onEgress, routes: apis.routes });
  const bridge = await bridgePorts(runDir, [...local, ...(inside ? [inside.acceptor] : []), proxy]);
  return {
    bridge: { ports: bridge.ports, close: () => (proxy.close(), bridge.close()) },
    ...(inside ? { gateway: { url: inside.url, port: inside.acceptor.port } } : {}),
    env: { ...proxyVariables(proxy.port, inside ? [new URL(gateway).hostname] : []), ...apis.env },
  };
}

/** What a run's steps share: who began it, where its files are, and how its command is contained. */
interface Begun {
  file: string;
  args: string[];
  say: (line: string) => void;
  log: Logger;
  names: string[];
  prompt: string | undefined;
  person: ResolvedTokenProvider;
  containment: ReturnType<typeof detectContainment>;
  command: string;
  commandLine: string;
  /** This run's own files (ports' passwords and certificates, ssh configs, the gateway's CA): the one directory of hoop's the command sees. */
  runDir: string;
  mounts: Mount[];
  /** With --apply live: what git or hoop would act on in the places the command may write: read-only, and swept when it ends. */
  controls: TreeControls | undefined;
  /** Otherwise, contained: the layer its writes go to, applied through the gate when it ends (../agent/gate.ts). */
  layer: Layer | undefined;
  run: AgentRun;
}

/** What a run serves its command: a local port (or a direct endpoint) per PostgreSQL connection, one per SSH connection. */
interface Served {
  ports: LocalPort[];
  /** With --direct: the gateway's own address and a credential of the run's, per PostgreSQL connection. */
  directs: PgEndpoint[];
  sshPorts: SshPort[];
  mysqlPorts: MysqlPort[];
  /** A port per HTTP connection: its base URL in `<NAME>_URL`. */
  httpPorts: HttpPort[];
  /** The run's MCP connections: served to the command by `hoop mcp --connection`, named in its MCP configuration (`HOOP_MCP_CONFIG`). */
  mcp: string[];
}

/** Runs `argv` (a command and its arguments) as a run of its own, as `opts` say; ends by throwing CommandExit with its exit code. */
export async function runAgent(io: CliIo, argv: string[], opts: RunOptions): Promise<never> {
  const b = await beginRun(io, argv, opts);
  // Swept when the command has ended, or by the next hoop command if this one is killed first.
  const pending = b.controls ? notePendingSweep(io.env, b.run.id, b.controls) : undefined;
  const served: Served = { ports: [], directs: [], sshPorts: [], mysqlPorts: [], httpPorts: [], mcp: [] };
  const state: RunningState = { exitCode: 1, started: realClock.now() };
  try {
    state.records = new CommandRecords(io, b.person, b.log);
    state.records.resume();
    state.runRecord = await openRunRecord(state.records, b.person, b.run, {
      command: [b.file, ...b.args],
      cwd: io.cwd,
      connections: b.names,
      ...(b.prompt?.trim() ? { prompt: b.prompt.trim() } : {}),
    }).catch((err: unknown) => {
      b.say(`this run is not recorded on this machine: ${describeError(err)} (the gateway records its sessions)`);
      return undefined;
    });
    await serveConnections(io, opts, b, state, served);
    // Interrupted while the ports opened: the command never starts.
    if (io.signal.aborted) {
      state.runRecord?.append({ t: 'end', at: realClock.now(), exitCode: 130, reason: 'interrupted before the command started', durationMs: realClock.now() - state.started });
      throw new CommandExit(130);
    }
    state.exitCode = await runCommandOf(io, opts, b, state, served);
    throw new CommandExit(state.exitCode);
  } finally {
    await endRun(io, opts, b, state, served, pending);
  }
}

/** What changes while the command runs, for the run's end to undo. */
interface RunningState {
  exitCode: number;
  started: number;
  records?: CommandRecords;
  /** The run as one unit, signed by this CLI (when the gateway keeps records). */
  runRecord?: RecordingWriter | undefined;
  bridge?: PortBridge | undefined;
  /** The command, once started (the sweep waits for it). */
  agentProcess?: Awaited<ReturnType<typeof spawnAgent>>;
  giveSignals?: (() => void) | undefined;
  /** How the command ended, once it has. */
  ended?: { exitCode?: number | undefined; signal?: NodeJS.Signals | undefined };
}

/** Begins the run at the gateway, the command's containment laid out first: the run's directory, mounts and the tree's controls. */
async function beginRun(io: CliIo, argv: string[], opts: RunOptions): Promise<Begun> {
  const [file, ...args] = argv as [string, ...string[]];
  const log = createLogger({ level: levelFromEnv(io.env, 'warn'), sink: io.stderr, fields: { component: 'run' } });
  const say = (line: string): void => void io.stderr.write(`${hoopSays(line)}\n`);
  if (opts.runbooksOnly && opts.connect?.length) throw new HoopError(ErrorCode.USAGE, '--runbooks-only serves no connection: leave out --connect');
  const names = opts.runbooksOnly ? [] : await runConnections(io, opts.connect);
  const prompt = opts.promptFile !== undefined ? await readNamedFile(opts.promptFile, treePlaces(io.env, io.cwd)) : opts.prompt;
  const person = await commandTokenProvider(io, opts);
  if (person.source === 'run') {
    person.close();
    throw new HoopError(ErrorCode.RUN_FORBIDDEN, 'hoop run inside a run: a run cannot start another', { hint: 'the person who started this run can start another, outside it' });
  }
  const containment = detectContainment(opts.isolation, io.env);
  if (containment.kind === 'none') {
    if (opts.review || (opts.apply !== undefined && opts.apply !== 'live'))
      throw new HoopError(ErrorCode.USAGE, `hoop run ${opts.review ? '--review' : `--apply ${opts.apply}`} needs the command contained, and it is not here (${containment.why})`, {
        hint: 'run it where hoop run can contain it (Linux with bubblewrap), or without that option',
      });
    say(`isolation: none (${containment.why}). The command runs as you do: it can read your hoop login and act as you, outside this run. Where the policy refuses such runs, this one is refused.`);
  }
  const layered = containment.kind === 'bwrap' && opts.apply !== 'live';
  const runtime = await runtimeDir(io.env);
  const command = resolveCommand(file, io.env.PATH, io.cwd);
  const commandLine = [file, ...args].map(shellQuote).join(' ');
  const runDir = await mkdtemp(join(runtime, 'run-'));
  let mounts: Mount[] = [];
  let controls: TreeControls | undefined;
  try {
    if (containment.kind === 'bwrap') {
      // The command's own hosts file: the machine's, with the gateway's name on the sandbox's loopback, where it is bridged in.
      const line = gatewayHostsLine(person.gateway);
      const hosts = line ? await writeRunFile(runDir, 'hosts', '', `${await readFile('/etc/hosts', 'utf8').catch(() => '')}\n${line}\n`) : undefined;
      const share = opts.share ?? [];
      const credentialFiles = opts.tokenFile ? [resolve(io.cwd, opts.tokenFile)] : [];
      if (!layered) controls = scanTree([io.cwd, ...[...share, ...(opts.socket ? [opts.socket] : [])].map((p) => resolve(io.cwd, p))], io.env);
      mounts = sandboxMounts({
        env: io.env,
        cwd: io.cwd,
        runDir,
        programs: [command],
        credentialFiles,
        hide: opts.hide ?? [],
        readOnly: opts.readOnly ?? [],
        share,
        layered,
        ...(opts.socket ? { sockets: opts.socket } : {}),
        sshAgent: opts.sshAgent === true,
        ...(hosts ? { hosts } : {}),
        ...(controls ? { controls } : {}),
      });
    }
    const run = await AgentRun.begin({
      person,
      connections: names,
      agent: agentName(opts.agent ?? file),
      via: 'run',
      isolation: containment.kind,
      command: cutValue(commandLine),
      ...(prompt?.trim() ? { prompt: cutText(prompt.trim(), MAX_RUN_PROMPT_CHARS - 1) } : {}),
      apply: layered ? 'gate' : 'live',
      say,
      log,
    });
    const layer = layered ? await layerOf(io, run, mounts, commandLine, opts.apply === 'never').catch(async (err: unknown) => (await run.end(), Promise.reject(err))) : undefined;
    return { file, args, say, log, names, prompt, person, containment, command, commandLine, runDir, mounts, controls, layer, run };
  } catch (err) {
    await rm(runDir, { recursive: true, force: true });
    person.close();
    throw err;
  }
}

/**
 * The layer of run `run` over its places (the `layer` mounts, ../agent/sandbox.ts), held by this
 * process; what the command may not change inside them (read-only, hidden) the gate refuses too.
 */
function layerOf(io: CliIo, run: AgentRun, mounts: readonly Mount[], command: string, kept: boolean): Promise<Layer> {
  const places = mounts.filter((m) => m.kind === 'layer').sort((a, b) => a.layer! - b.layer!);
  const protectedPaths = mounts.filter((m) => m.kind !== 'layer' && m.kind !== 'private' && places.some((p) => within(m.path, p.path))).map((m) => m.path);
  return makeLayer(io.env, {
    run: run.id,
    startedAt: realClock.now(),
    places: places.map((m) => ({ path: m.path, dir: m.dir, dev: m.id!.dev, ino: m.id!.ino })),
    agent: run.agent,
    command,
    cwd: io.cwd,
    pid: process.pid,
    pidStart: processStart(process.pid) ?? '',
    kept,
    protectedPaths,
    allowControls: run.applyControls,
    review: run.review,
  });
}

/** Serves each connection of the run: a local port (or a direct endpoint with --direct) for PostgreSQL, a port for SSH. */
async function serveConnections(io: CliIo, opts: RunOptions, b: Begun, state: RunningState, served: Served): Promise<void> {
  const { run } = b;
  const { runRecord } = state;
  const records = state.records!;
  // What only the CLI knows, said at the start of every session of the run (the gateway keeps 4 KiB of each).
  const said: Record<string, string> = { source: 'run', run: run.id, command: b.commandLine, cwd: io.cwd, ...(b.prompt?.trim() ? { prompt: b.prompt.trim() } : {}) };
  const context = Object.fromEntries(Object.entries(said).map(([k, v]) => [k, cutValue(v)]));
  // On unix sockets each connection has a port number of its own (`.s.PGSQL.<port>`): 5432, 5433, ...
  for (const [i, name] of b.names.entries()) {
    const onSession = (id: string): void => void runRecord?.append({ t: 'session', at: realClock.now(), id, connection: name });
    const info = await getConnection({ gateway: run.provider.gateway, ca: run.provider.ca }, run.token, name);
    const common = { provider: run.provider, name, context, log: b.log, say: b.say, onSession, filesDir: b.runDir };
    if (info.type === 'ssh') {
      const record = info.clientRecords ? sshRecordHook(records, { connection: name, gateway: run.provider.gateway, runId: run.id, say: b.say }) : undefined;
      // Loaded when a run names an SSH connection: the SSH library costs every other run ~50 ms of CPU to load.
      const { openSshPort } = await import('../ssh/local/port.js');
      served.sshPorts.push(await openSshPort({ ...common, env: io.env, hostKeys: info.hostKeys ?? [], ...(info.user ? { user: info.user } : {}), ...(record ? { record } : {}) }));
    } else if (info.type === 'mcp') served.mcp.push(name);
    else if (info.type === 'http') served.httpPorts.push(await openHttpPort({ ...common, ...(info.url ? { upstream: info.url } : {}) }));
    else if (info.type === 'mysql') served.mysqlPorts.push(await openMysqlPort({ ...common, info, env: io.env, records, runId: run.id }));
    else if (opts.direct) served.directs.push(await directEndpoint(run, name, b.runDir));
    else served.ports.push(await openLocalPort({ ...common, io, info, policy: opts, ...(opts.socket ? { socket: opts.socket, port: 5432 + i } : {}), runId: run.id, records }));
  }
}

/** Starts the command in its environment (contained: on a network of its own), hands it the signals, and resolves its exit code. */
async function runCommandOf(io: CliIo, opts: RunOptions, b: Begun, state: RunningState, served: Served): Promise<number> {
  const { run, person, runDir, containment, log } = b;
  const { ports, directs, sshPorts, mysqlPorts, httpPorts } = served;
  const contained = containment.kind === 'bwrap';
  // Contained, the command has a network of its own: its TCP ports, the gateway and the egress proxy come in through the run's directory.
  const net = contained
    ? await sandboxNetwork(
        runDir,
        [...ports.filter((p) => !p.socketPath), ...sshPorts, ...mysqlPorts, ...httpPorts],
        person.gateway,
        run,
        egressListener(run, state.runRecord, b.say),
        await httpRoutes(httpPorts, runDir, io.env),
      )
    : undefined;
  state.bridge = net?.bridge;
  const clients: PgEndpoint[] = [...ports, ...directs.map((d) => (net?.gateway ? { ...d, port: net.gateway.port } : d))];
  const pgpassFile = clients.length > 0 ? await writePgpass({ dir: runDir, name: 'run', entries: clients }) : undefined;
  // Several SSH connections: one ssh_config that includes each port's.
  const sshConfig = sshPorts.length > 1 ? await writeRunFile(runDir, 'run', '.ssh_config', sshPorts.map((p) => `Include "${p.configFile}"\n`).join('')) : sshPorts[0]?.configFile;
  const caFile = person.ca ? await writeRunFile(runDir, 'gateway', '.crt', person.ca.toString('utf8')) : undefined;
  log.info('run.start', { run: run.id, connections: b.names, command: b.file, isolation: containment.kind });
  if (opts.json) io.stderr.write(`${JSON.stringify({ run: run.id, connections: b.names, isolation: containment.kind })}\n`);
  else if (!opts.quiet) b.say(`run ${run.id}: \`hoop sessions ls --run ${run.id}\` lists its sessions`);
  const mysqlHome = mysqlPorts[0] ? await writeMysqlHome(runDir, mysqlPorts[0].optionFile) : undefined;
  // The run's MCP connections as the command's MCP servers (`claude --mcp-config "$HOOP_MCP_CONFIG" --strict-mcp-config`): each `hoop mcp --connection`, as the run.
  const mcpConfig = served.mcp.length
    ? await writeRunFile(runDir, 'mcp', '.json', `${JSON.stringify({ mcpServers: Object.fromEntries(served.mcp.map((n) => [n, serverEntry('claude-code', ['--connection', n], {})])) }, null, 2)}\n`)
    : undefined;
  if (mcpConfig) b.say(`the run's MCP servers are in ${mcpConfig} ($HOOP_MCP_CONFIG): ${served.mcp.join(', ')}`);
  const own = runVariables({ id: run.id, token: run.token, gateway: net?.gateway?.url ?? person.gateway, caFile }, clients, pgpassFile, sshConfig, {
    ports: mysqlPorts,
    ...(mysqlHome ? { home: mysqlHome } : {}),
  });
  for (const p of httpPorts) own[httpUrlName(p.connection)] = p.url;
  const env = agentEnvironment(io.env, { ...own, ...(mcpConfig ? { HOOP_MCP_CONFIG: mcpConfig } : {}), ...net?.env }, { contained, sshAgent: opts.sshAgent === true });
  const stdio = { stdin: io.stdin ? inherited(io.stdin, 0) : ('ignore' as const), stdout: inherited(io.stdout, 1), stderr: inherited(io.stderr, 2) };
  // On a terminal, Ctrl-C and Ctrl-\ reach the command from the terminal itself (its process group): not sent twice.
  const terminal = [io.stdin, io.stdout, io.stderr].some((s) => (s as { isTTY?: boolean } | undefined)?.isTTY === true);
  // The signals are the command's from before it starts: one that comes while it starts (it may already write) is handed on once it has.
  let spawned: Awaited<ReturnType<typeof spawnAgent>> | undefined;
  const early: NodeJS.Signals[] = [];
  state.giveSignals = io.takeSignals?.((signal) => {
    if (terminal && (signal === 'SIGINT' || signal === 'SIGQUIT')) return;
    if (spawned) spawned.kill(signal);
    else early.push(signal);
  });
  const agent = await spawnAgent({ file: b.command, args: b.args, env, cwd: io.cwd, stdio, containment, runDir, mounts: b.mounts, layer: b.layer, ports: state.bridge?.ports ?? [] });
  state.agentProcess = agent;
  spawned = agent;
  for (const signal of early.splice(0)) agent.kill(signal);
  // Streams that are not this process's own descriptors (hoop run called from another program) are piped.
  agent.stdout?.pipe(io.stdout, { end: false });
  agent.stderr?.pipe(io.stderr, { end: false });
  if (agent.child.stdin && io.stdin) io.stdin.pipe(agent.child.stdin);
  const result = await agent.exited;
  // Its sandbox never started it (what failed was said by the sandbox's launch, ../agent/layers.ts).
  if (!result.error && !agent.started()) {
    state.runRecord?.append({ t: 'end', at: realClock.now(), exitCode: 126, reason: "the command's sandbox could not start", durationMs: realClock.now() - state.started });
    throw new HoopError(ErrorCode.SANDBOX_FAILED, `hoop run could not start the command's sandbox (exit ${result.exitCode ?? result.signal}): nothing of the command ran`, {
      hint: 'what failed is said above; a place that changed as the run began can simply be tried again',
    });
  }
  if (result.error) {
    state.runRecord?.append({ t: 'end', at: realClock.now(), exitCode: 126, reason: 'cannot run the command', durationMs: realClock.now() - state.started });
    throw new HoopError(ErrorCode.USAGE, `cannot run ${b.file}: ${result.error.message}`, { hint: 'check that it is an executable the current user may run', exitCode: 126 });
  }
  log.info('run.end', { run: run.id, exitCode: result.exitCode, signal: result.signal });
  state.ended = result;
  const exitCode = exitCodeOf(result);
  state.runRecord?.append({ t: 'end', at: realClock.now(), exitCode, ...(result.signal ? { signal: result.signal } : {}), durationMs: realClock.now() - state.started });
  return exitCode;
}

/**
 * Ends the run whatever happened, each step whatever the one before did: the bridge and ports
 * close, the run ends, the command is gone, its layer is settled through the gate (or, with
 * --apply live, what it made is swept), the run's directory goes, the records are closed and
 * uploaded. What could not be moved aside, or a layer the gate could not read, fails the run.
 */
async function endRun(io: CliIo, opts: RunOptions, b: Begun, state: RunningState, served: Served, pending: { done(): void } | undefined): Promise<void> {
  const { say } = b;
  const step = (what: string, fn: () => Promise<unknown> | void): Promise<void> =>
    Promise.resolve()
      .then(fn)
      .then(
        () => undefined,
        (err: unknown) => say(`${what}: ${describeError(err)}`),
      );
  state.giveSignals?.();
  await step('closing the bridge into the sandbox', () => state.bridge?.close());
  for (const port of [...served.ports, ...served.sshPorts, ...served.mysqlPorts, ...served.httpPorts]) await step(`closing the port of ${port.connection}`, () => port.close());
  await step('ending the run', () => b.run.end());
  // Nothing of the command runs any more (its namespace ended with it) when what it made is moved aside.
  const agentProcess = state.agentProcess;
  if (agentProcess) {
    if (agentProcess.child.exitCode === null && agentProcess.child.signalCode === null) agentProcess.kill('SIGKILL');
    await agentProcess.exited;
  }
  const swept = b.controls ? sweepTree(b.controls) : [];
  tellSwept(swept, say, 'this run');
  for (const s of swept) state.runRecord?.append({ t: 'swept', at: realClock.now(), path: s.path, ...(s.to ? { to: s.to } : {}), ...(s.error ? { error: s.error } : {}) });
  if (!swept.some((s) => s.error)) pending?.done();
  let gateFailed = false;
  // A command whose sandbox never started wrote nothing: its layer goes.
  if (b.layer && !state.agentProcess?.started()) b.layer.remove();
  else if (b.layer) {
    try {
      await settleLayer(io, b.layer, settleOf(opts, b, state), { say, record: state.runRecord, quiet: opts.quiet === true });
    } catch (err) {
      gateFailed = true;
      await b.layer.update({ kept: true, pid: 0, pidStart: '' }).catch(() => undefined);
      say(`run ${b.run.id}: the command's changes were not applied: ${describeError(err)}; they are kept (\`hoop run diff ${b.run.id}\`, \`hoop run discard ${b.run.id}\`)`);
    }
  }
  await step("removing the run's directory", () => rm(b.runDir, { recursive: true, force: true }));
  const recorded = state.runRecord;
  if (recorded) await step("this machine's record of the run could not be closed", async () => (await recorded.close(), state.records?.closed('runs', b.run.id)));
  await step('uploading records', () => state.records?.finish(say));
  b.person.close();
  // What could not be moved aside (the next hoop command tries again), or a gate that could not read the layer, fails the run, whatever the command did.
  if (swept.some((s) => s.error) || gateFailed) throw new CommandExit(state.exitCode === 0 ? 1 : state.exitCode);
}

/** What becomes of a layered run's changes as it ends: kept when its command did not end by itself or the person said so, reviewed where asked, else applied. */
function settleOf(opts: RunOptions, b: Begun, state: RunningState): Settle {
  if (state.ended?.signal) return { how: 'keep', why: `the command was ended by ${state.ended.signal}` };
  if (!state.ended) return { how: 'keep', why: 'the command did not run to its end' };
  if (opts.apply === 'never') return { how: 'keep', why: '--apply never' };
  return opts.review || b.run.review ? { how: 'review' } : { how: 'apply' };
}
