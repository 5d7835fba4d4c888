/**
 * A whole hoop stack for integration tests, from real parts: a test CA (openssl), a PostgreSQL
 * cluster, an OpenID provider, the gateway (in-process, TLS, config loaded from a YAML file) and
 * `hoop connect` run through the CLI's own `main()`.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { main } from '../../src/cli.js';
import { loadGatewayConfig } from '../../src/gateway/config/config.js';
import { startGateway, type Gateway, type GatewayOptions } from '../../src/gateway/server.js';
import { createLogger } from '../../src/log.js';
import { openTunnel } from '../../src/tunnel/transport.js';
import { mintDirect } from '../../src/api-client/direct.js';
import type { DirectCredentialView } from '../../src/api/answers.js';
import { RawFrontend } from './raw-pg.js';
import { type CliResult, runCli } from './run-cli.js';
import { connectionYaml, startPgCluster, type PgCluster } from './postgres.js';
import type { ConnectJson } from '../../src/connect-json.js';
import { PolicyGitRepo } from './policy-git.js';
import { SHARED_AUDIENCE, type SharedOidc, type SharedPki, workerOidc, workerPki } from './worker-shared.js';

/** The JSON line `hoop connect --json` prints. */
export type ConnectInfo = ConnectJson;

/** A `hoop connect` running in-process. */
export interface RunningConnect {
  info: ConnectInfo;
  stderr(): string;
  /** Stops it (as Ctrl-C would) and resolves its exit code. */
  stop(): Promise<number>;
}

/** A running stack. */
export interface HoopStack {
  /** The worker's CA, shared with its other stacks (see {@link workerPki}). */
  pki: SharedPki;
  pg: PgCluster;
  /** The worker's OpenID provider, shared with its other stacks (see {@link workerOidc}). */
  oidc: SharedOidc;
  gateway: Gateway;
  dir: string;
  /** The session runtime directory the stack's CLI runs use (`XDG_RUNTIME_DIR`, 0700, inside `dir`). */
  runtime: string;
  configFile: string;
  /** Every JSON line the gateway logged so far. */
  logs(): Array<Record<string, unknown>>;
  /** A signed access token for `subject` (default alice) in `groups`; `authTime`: when they last signed in (seconds since the epoch). */
  /** A token of the stack's provider (`expiresInSeconds`: its lifetime, else the provider's default). */
  token(subject?: string, groups?: string[], authTime?: number, expiresInSeconds?: number): Promise<string>;
  /**
   * Runs `hoop connect <name> --json` with `token` (and `env`, added to its environment); resolves
   * once it listens. A `--gateway` in `extraArgs` overrides the stack's gateway.
   */
  connect(name: string, token: string, extraArgs?: string[], env?: NodeJS.ProcessEnv): Promise<RunningConnect>;
  /** Runs any hoop command in-process; resolves its exit code and output. */
  run(argv: string[], env?: NodeJS.ProcessEnv): Promise<CliResult>;
  /**
   * A raw frontend straight on a tunnel to `connection` (no CLI), signed in up to ReadyForQuery
   * unless `startup` is false.
   */
  tunnel(
    connection: string,
    token: string,
    options?: { startup?: boolean; params?: Array<[string, string]>; via?: 'connect' | 'exec'; sessionId?: string; detachReviews?: boolean; gateway?: string },
  ): Promise<RawFrontend>;
  /**
   * A raw frontend of a direct client: a direct credential minted for `token` on `connection`,
   * then TLS to the gateway's own port (an SSLRequest, or with `alpn` PostgreSQL 17's direct TLS),
   * signed in (its user and database; `params` added) up to ReadyForQuery unless `startup` is false.
   */
  direct(connection: string, token: string, options?: { startup?: boolean; params?: Array<[string, string]>; seconds?: number; alpn?: boolean }): Promise<DirectFrontend>;
  close(): Promise<void>;
}

/** The ways a client reaches the gateway, each suite of hostile-client tests runs on: `hoop connect`'s port, a raw tunnel, and a direct client at the gateway's own port. */
export const WAYS_IN = ['hoop connect', 'the tunnel', 'direct'] as const;

/** A direct client's raw frontend, with the credential it was given. */
export type DirectFrontend = RawFrontend & { credential: DirectCredentialView };

/** Options of {@link startStack}. */
export interface StackOptions {
  gateway?: Partial<GatewayOptions>;
  pgConfig?: Record<string, string>;
  /** More fields of the provider's issuer entry, e.g. `{ clockToleranceSeconds: 0, tokenType: 'access' }`. */
  issuer?: Record<string, unknown>;
  /** More top-level YAML of the gateway configuration (e.g. a `login:` block). */
  extraConfig?: string;
  /**
   * A `policy:` block for the gateway configuration (made once PostgreSQL runs); when given, the
   * configuration lists no connections (they come from the policy bundle).
   */
  policy?: (ctx: { pg: PgCluster; dir: string }) => string | Promise<string>;
  /** More entries (YAML list items) of the configuration's `connections:` when there is no `policy`. */
  connections?: string;
  /** More variables of the gateway's environment (the secrets of those connections). */
  env?: Record<string, string>;
}

/** Starts PostgreSQL and the gateway with the connections tests use, on the worker's CA and OpenID provider. */
export async function startStack(options: StackOptions = {}): Promise<HoopStack> {
  const dir = await mkdtemp(join(tmpdir(), 'hoop-stack-'));
  const [{ pki, gateway: gatewayCert }, oidc, pg] = await Promise.all([workerPki(), workerOidc(), startPgCluster(options.pgConfig ? { config: options.pgConfig } : {})]);
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    APP_PASSWORD: pg.users.scram.password,
    MD5_PASSWORD: pg.users.md5.password,
    PLAIN_PASSWORD: pg.users.cleartext.password,
    WRONG_PASSWORD: 'not-the-password',
    ...options.env,
  };
  const conn = (name: string, user: string, password: string, extra: string[] = []): string =>
    connectionYaml(pg, { name, user, password: `\${env:${password}}`, extra: ['allow: { subjects: [alice, bob], groups: [dba] }', ...extra] });
  const configFile = join(dir, 'gateway.yaml');
  const policyBlock = options.policy ? await options.policy({ pg, dir }) : undefined;
  const connectionsBlock = `connections:
${conn('app', pg.users.scram.user, 'APP_PASSWORD')}${conn('app-md5', pg.users.md5.user, 'MD5_PASSWORD')}${conn('app-cleartext', pg.users.cleartext.user, 'PLAIN_PASSWORD', ['allowCleartextWithoutTls: true'])}${conn('wrong-password', pg.users.scram.user, 'WRONG_PASSWORD')}  - name: down
    type: postgres
    host: 127.0.0.1
    port: 1
    database: app
    user: nobody
    password: \${env:APP_PASSWORD}
    tls: { mode: disable }
    allow: { subjects: ["*"] }
  - name: carol-only
    type: postgres
    host: 127.0.0.1
    port: ${pg.port}
    database: app
    user: ${pg.users.scram.user}
    password: \${env:APP_PASSWORD}
    tls: { mode: disable }
    allow: { subjects: [carol] }
${options.connections ?? ''}`;
  await writeFile(
    configFile,
    `listen: 127.0.0.1:0
tls: { cert: ${gatewayCert.certFile}, key: ${gatewayCert.keyFile} }
issuers:
  - issuer: ${oidc.issuer}
    audience: ${SHARED_AUDIENCE}
${Object.entries(options.issuer ?? {})
  .map(([k, v]) => `    ${k}: ${JSON.stringify(v)}\n`)
  .join(
    '',
  )}${options.extraConfig ?? ''}${options.extraConfig && !options.extraConfig.endsWith('\n') ? '\n' : ''}${policyBlock ?? connectionsBlock}${policyBlock && !policyBlock.endsWith('\n') ? '\n' : ''}`,
  );
  const config = await loadGatewayConfig(configFile, env);
  const lines: string[] = [];
  const log = createLogger({ level: 'debug', sink: { write: (l: string) => lines.push(l) } });
  const gateway = await startGateway({ config, log, env, ...options.gateway });

  // The CLI's own state (its spool of records, above all) is this stack's, never the home directory's that other test files share.
  const cliConfig = join(dir, 'cli');
  // A runtime directory of its own, as a session's: a contained run makes it private, while its working directory (dir) stays shared.
  const runtime = join(dir, 'xdg');
  await mkdir(runtime, { mode: 0o700 });
  const run: HoopStack['run'] = (argv, extraEnv = {}) => runCli(argv, { HOOP_CONFIG_DIR: cliConfig, ...extraEnv }, dir);

  const connect: HoopStack['connect'] = async (name, token, extraArgs = [], extraEnv = {}) => {
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    let err = '';
    stderr.on('data', (d: Buffer) => (err += d.toString()));
    const controller = new AbortController();
    const firstLine = new Promise<string>((resolve) => {
      let buf = '';
      stdout.on('data', (d: Buffer) => {
        buf += d.toString();
        const nl = buf.indexOf('\n');
        if (nl >= 0) resolve(buf.slice(0, nl));
      });
    });
    const done = main(['connect', name, '--json', '--gateway', gateway.url, '--ca-file', pki.caFile, ...extraArgs], {
      stdout,
      stderr,
      env: { HOOP_TOKEN: token, XDG_RUNTIME_DIR: runtime, HOOP_CONFIG_DIR: cliConfig, ...extraEnv },
      cwd: dir,
      signal: controller.signal,
    });
    const line = await Promise.race([firstLine, done.then((code) => Promise.reject(new Error(`hoop connect exited ${code}: ${err}`)))]);
    return {
      info: JSON.parse(line) as ConnectInfo,
      stderr: () => err,
      stop: async () => {
        controller.abort();
        return done;
      },
    };
  };

  return {
    pki,
    pg,
    oidc,
    gateway,
    dir,
    runtime,
    configFile,
    logs: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>),
    token: (subject = 'alice', groups = [], authTime?: number, expiresInSeconds?: number) =>
      oidc.token({ subject, groups, ...(authTime !== undefined ? { authTime } : {}), ...(expiresInSeconds !== undefined ? { expiresInSeconds } : {}) }),
    connect,
    run,
    async tunnel(connection, token, o = {}) {
      const { channel } = await openTunnel({
        gateway: o.gateway ?? gateway.url,
        connection,
        token,
        sessionId: o.sessionId ?? `raw-${randomBytes(8).toString('hex')}`,
        clientVersion: 'test',
        ca: pki.ca,
        ...(o.via !== undefined ? { via: o.via } : {}),
        ...(o.detachReviews ? { detachReviews: true } : {}),
      });
      const raw = new RawFrontend(channel);
      if (o.startup !== false) await raw.startup('', o.params);
      return raw;
    },
    async direct(connection, token, o = {}) {
      const credential = await mintDirect({ gateway: gateway.url, ca: pki.ca }, token, connection, o.seconds !== undefined ? { seconds: o.seconds } : {});
      const raw = Object.assign(await RawFrontend.direct(gateway.port, pki.ca, o.alpn), { credential });
      const params = (o.params ?? []).filter(([k]) => k !== 'user' && k !== 'database');
      if (o.startup !== false) await raw.startup(credential.password, [['user', credential.user], ['database', credential.database], ...params]);
      return raw;
    },
    async close() {
      await gateway.close();
      await pg.stop();
      await rm(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });
    },
  };
}

/**
 * A stack whose gateway reads its policy from a git repo of its own (see {@link PolicyGitRepo}),
 * with `allowedCommands` (the MCP servers its bundle may run) and more of the gateway's `env`;
 * `close` removes the repo too.
 */
export async function startRepoStack(
  prefix: string,
  bundle: (pg: PgCluster) => string | Promise<string>,
  allowedSecrets = ['${env:APP_*}'],
  o: { allowedCommands?: string[]; env?: Record<string, string> } = {},
): Promise<HoopStack> {
  const repo = new PolicyGitRepo(prefix);
  const commands = o.allowedCommands?.length ? `  allowedCommands:\n${o.allowedCommands.map((c) => `    - ${JSON.stringify(c)}\n`).join('')}` : '';
  const stack = await startStack({
    ...(o.env ? { env: o.env } : {}),
    policy: async ({ pg }) => {
      repo.commit(await bundle(pg));
      return `${repo.gatewayBlock(allowedSecrets)}${commands}`;
    },
  }).catch((err: unknown) => {
    repo.remove();
    throw err;
  });
  const close = stack.close;
  return {
    ...stack,
    close: async () => {
      await close();
      repo.remove();
    },
  };
}
