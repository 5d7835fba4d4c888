/**
 * `hoop login`, `whoami`, `logout` and `connect` on top of them, in-process through the CLI's own
 * `main()`, against real parts: an OpenID provider (oidc-provider, with a public `hoop-cli`
 * client) whose pages a headless browser fills in, a workload issuer with a fake GitHub Actions
 * token endpoint, the gateway over TLS and a PostgreSQL cluster behind it.
 *
 * Every test keeps its own configuration directory (HOOP_CONFIG_DIR) and uses the 0600 file
 * store (HOOP_TOKEN_STORE=file), so no test touches the machine's keychain or ~/.config.
 */
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { decodeJwt } from 'jose';
import * as client from 'openid-client';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startRedirectListener } from '../../src/auth/loopback-redirect.js';
import { login } from '../../src/auth/login.js';
import { ProfileStore, profileKey, secretsKeyOf } from '../../src/auth/profiles.js';
import { FileSecretStore, type KeyringFactory, type Secrets } from '../../src/auth/secret-store.js';
import { main } from '../../src/cli.js';
import { loadGatewayConfig } from '../../src/gateway/config/config.js';
import { startGateway, type Gateway } from '../../src/gateway/server.js';
import { createLogger } from '../../src/log.js';
import { TestBrowser } from '../harness/browser.js';
import { createTestPki, type TestPki } from '../harness/certs.js';
import { psql } from '../harness/clients.js';
import { startOidc, type TestOidc } from '../harness/oidc.js';
import { connectionYaml, freePort, startPgCluster, type PgCluster } from '../harness/postgres.js';
import type { ConnectInfo } from '../harness/stack.js';
import { eventually, pace, quietFor } from '../harness/wait.js';
import { startWorkloadIssuer, type WorkloadIssuer } from '../harness/workload-issuer.js';

let dir: string;
let pki: TestPki;
let pg_: PgCluster;
let op: TestOidc;
let wl: WorkloadIssuer;
let gateway: Gateway;
let gateway2: Gateway;
const gatewayLogs: string[] = [];
/** Everything any hoop command printed, to check that no token ever shows up. */
const outputs: string[] = [];
/** Every token the tests saw issued. */
const tokens = new Set<string>();

const RESOURCE = 'urn:hoop-test:gateway';

/** The `connections:` block of a gateway's YAML: the test's database as `app`, for those `allow` admits. */
function appConnection(allow: string): string {
  return `connections:\n${connectionYaml(pg_, { name: 'app', password: '${env:APP_PASSWORD}', extra: [`allow: ${allow}`] })}`;
}

/** The gateway's YAML; `idTokens`: it takes ID tokens (audience = the client id) instead of access tokens. */
async function gatewayConfig(name: string, idTokens: boolean): Promise<string> {
  const cert = await pki.issue(`gateway-${name}`, ['IP:127.0.0.1']);
  const file = join(dir, `${name}.yaml`);
  await writeFile(
    file,
    `listen: 127.0.0.1:0
tls: { cert: ${cert.certFile}, key: ${cert.keyFile} }
dataDir: ./state-${name}
login:
  issuer: ${op.issuer}
  clientId: ${op.clientId}
${idTokens ? '' : `  resource: ${RESOURCE}\n`}issuers:
  - issuer: ${op.issuer}
    audience: ${idTokens ? op.clientId : op.audience}
    tokenType: ${idTokens ? 'id' : 'access'}
    clockToleranceSeconds: 0
  - issuer: ${wl.issuer}
    audience: hoop-ci
    kind: workload
    clockToleranceSeconds: 0
    rules:
      - claims: { repository: acme/api, ref: "refs/heads/*" }
        groups: [deployers]
        subject: "ci:{repository}"
${appConnection('{ subjects: [alice, bob, "ci:acme/api"] }')}`,
  );
  return file;
}

async function bootGateway(name: string, idTokens = false): Promise<Gateway> {
  const env = { APP_PASSWORD: pg_.users.scram.password };
  const config = await loadGatewayConfig(await gatewayConfig(name, idTokens), env);
  const log = createLogger({ level: 'debug', sink: { write: (l: string) => gatewayLogs.push(l) } });
  return startGateway({ config, log, env });
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'hoop-login-'));
  pki = await createTestPki();
  pg_ = await startPgCluster();
  op = await startOidc({
    audience: 'hoop-test',
    accounts: { alice: { groups: ['dba', 'dev'], email: 'alice@example.com' }, bob: { groups: ['dev'] } },
  });
  wl = await startWorkloadIssuer();
  gateway = await bootGateway('one');
  gateway2 = await bootGateway('two', true);
});

afterAll(async () => {
  await Promise.allSettled([gateway?.close(), gateway2?.close()]);
  await Promise.allSettled([op?.close(), wl?.close(), pg_?.stop()]);
  await pki?.cleanup();
  if (dir) await rm(dir, { recursive: true, force: true });
});

afterEach(() => {
  op.lifetimes.accessToken = 600;
  op.lifetimes.idToken = 600;
  op.deviceInterval = 1;
});

/** A hoop command running in-process. */
interface Running {
  done: Promise<number>;
  stdout(): string;
  stderr(): string;
  /** Resolves with the first match of `re` in stderr (or stdout), as it arrives. */
  waitFor(re: RegExp, stream?: 'stderr' | 'stdout'): Promise<RegExpExecArray>;
  stop(): Promise<number>;
}

let configSeq = 0;
/** A fresh user: its own config directory, the file store, the test CA. */
function user(): NodeJS.ProcessEnv {
  configSeq += 1;
  return { HOOP_CONFIG_DIR: join(dir, `conf-${configSeq}`), HOOP_TOKEN_STORE: 'file', HOOP_CA_FILE: pki.caFile, XDG_RUNTIME_DIR: dir };
}

function start(argv: string[], env: NodeJS.ProcessEnv, options: { tty?: boolean } = {}): Running {
  const stdin = new PassThrough() as PassThrough & { isTTY?: boolean };
  if (options.tty) stdin.isTTY = true;
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const text = { stdout: '', stderr: '' };
  const waiters: Array<() => void> = [];
  stdout.on('data', (d: Buffer) => {
    text.stdout += d.toString();
    for (const w of [...waiters]) w();
  });
  stderr.on('data', (d: Buffer) => {
    text.stderr += d.toString();
    for (const w of [...waiters]) w();
  });
  const controller = new AbortController();
  const done = main(argv, { stdin, stdout, stderr, env, cwd: dir, signal: controller.signal }).finally(() => {
    outputs.push(text.stdout, text.stderr);
    for (const w of [...waiters]) w();
  });
  let finished = false;
  void done.then(() => (finished = true));
  return {
    done,
    stdout: () => text.stdout,
    stderr: () => text.stderr,
    waitFor(re, stream = 'stderr') {
      return new Promise((resolve, reject) => {
        const check = (): void => {
          const m = re.exec(text[stream]);
          if (m) {
            waiters.splice(waiters.indexOf(check), 1);
            resolve(m);
          } else if (finished) {
            waiters.splice(waiters.indexOf(check), 1);
            reject(new Error(`hoop ${argv[0]} ended without printing ${re}: ${text.stderr}`));
          }
        };
        waiters.push(check);
        check();
      });
    },
    stop() {
      controller.abort();
      return done;
    },
  };
}

async function run(argv: string[], env: NodeJS.ProcessEnv, options: { tty?: boolean } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  const r = start(argv, env, options);
  const code = await r.done;
  return { code, stdout: r.stdout(), stderr: r.stderr() };
}

/** The secrets kept for `subject` (default: the identity used) at gateway `gw`. */
async function secretsOf(env: NodeJS.ProcessEnv, gw: Gateway = gateway, subject?: string): Promise<Secrets | undefined> {
  const origin = new URL(gw.url).origin;
  const at = await new ProfileStore(env.HOOP_CONFIG_DIR!).atGateway(origin);
  const key = subject !== undefined ? profileKey(origin, subject) : at ? secretsKeyOf(at.profile) : origin;
  const s = await new FileSecretStore(env.HOOP_CONFIG_DIR!).read(key);
  for (const t of [s?.accessToken, s?.idToken, s?.refreshToken]) if (t) tokens.add(t);
  return s;
}

/** `hoop login --no-browser` with a TTY, the user signing in as `username` in the test browser. */
async function browserLogin(
  env: NodeJS.ProcessEnv,
  username: string,
  gw: Gateway = gateway,
  browser = new TestBrowser(),
  extra: string[] = [],
): Promise<{ code: number; stdout: string; stderr: string; url: URL }> {
  const login = start(['login', '--gateway', gw.url, '--no-browser', ...extra], env, { tty: true });
  const [, url] = await login.waitFor(/^\s+(http:\/\/127\.0\.0\.1:\d+\/auth\S+)$/m);
  const result = await browser.authorize(url!, username);
  expect(result.status).toBe(200);
  expect(result.body).toContain('You are logged in to hoop');
  const code = await login.done;
  await secretsOf(env, gw);
  return { code, stdout: login.stdout(), stderr: login.stderr(), url: new URL(url!) };
}

/** Waits until `expiry` (ISO 8601 or ms since the epoch) has passed. */
async function pastExpiry(expiry: string | number | undefined): Promise<void> {
  const at = typeof expiry === 'string' ? Date.parse(expiry) : expiry;
  if (at === undefined || Number.isNaN(at)) throw new Error('the login stored no expiry');
  while (Date.now() <= at + 100) await pace(Math.min(250, at + 101 - Date.now()));
}

async function connect(env: NodeJS.ProcessEnv, extra: string[] = []): Promise<{ info: ConnectInfo; running: Running }> {
  const running = start(['connect', 'app', '--json', ...extra], env);
  const [line] = await running.waitFor(/^\{.*\}$/m, 'stdout');
  return { info: JSON.parse(line) as ConnectInfo, running };
}

/** GET on the first gateway's API, trusting the test CA. */
async function gatewayGet(path: string, token: string): Promise<unknown> {
  const ca = await readFile(pki.caFile);
  return new Promise((resolve, reject) => {
    const req = httpsRequest(new URL(path, gateway.url), { ca, headers: { authorization: `Bearer ${token}` } }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => (res.statusCode === 200 ? resolve(JSON.parse(body)) : reject(new Error(`HTTP ${res.statusCode}: ${body}`))));
    });
    req.on('error', reject);
    req.end();
  });
}

function pgClient(info: ConnectInfo): pg.Client {
  return new pg.Client({ host: info.host, port: info.port, user: info.user, database: info.database, password: info.password, ssl: false });
}

describe('hoop login in the browser', () => {
  it('login → whoami → connect → psql → logout, with PKCE, state and nonce on a 127.0.0.1 redirect', async () => {
    const env = user();
    const login = await browserLogin(env, 'alice');
    expect(login.code).toBe(0);
    const params = login.url.searchParams;
    expect(params.get('client_id')).toBe(op.clientId);
    expect(params.get('code_challenge_method')).toBe('S256');
    expect(params.get('code_challenge')).toMatch(/^[\w-]{43}$/);
    expect(params.get('state')).toMatch(/^[\w-]{20,}$/);
    expect(params.get('nonce')).toMatch(/^[\w-]{20,}$/);
    expect(params.get('redirect_uri')).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/callback$/);
    expect(params.get('scope')!.split(' ')).toEqual(expect.arrayContaining(['openid', 'offline_access']));
    expect(params.get('resource')).toBe(RESOURCE);
    expect(login.stdout).toContain(`Logged in to ${gateway.url} as alice <alice@example.com> (user).`);
    expect(login.stdout).toMatch(/groups: +dba, dev/);
    expect(login.stdout).toMatch(/tokens: +\S+\/tokens\/[0-9a-f]{16}\.json \(mode 0600\)/);
    expect(login.stdout).toMatch(/device: +SHA256:[A-Za-z0-9+/]{43}\n/);

    const secrets = await secretsOf(env);
    expect(secrets?.accessToken).toBeTruthy();
    expect(secrets?.refreshToken).toBeTruthy();
    expect(secrets?.deviceKey?.privateKey).toContain('PRIVATE KEY');

    const who = await run(['whoami', '--json'], env);
    expect(who.code).toBe(0);
    const whoJson = JSON.parse(who.stdout) as Record<string, unknown> & { device: { fingerprint: string; deviceId: string } };
    expect(whoJson).toMatchObject({ subject: 'alice', email: 'alice@example.com', kind: 'user', groups: ['dba', 'dev'], issuer: op.issuer, gateway: gateway.url, tokenSource: 'profile' });
    expect(whoJson.tokenStore).toMatch(/tokens\/[0-9a-f]{16}\.json \(mode 0600\)$/);
    // The device key the gateway has on record is the one whoami shows.
    const devices = (await gatewayGet('/v1/devices', secrets!.accessToken!)) as { devices: Array<{ fingerprint: string; deviceId: string; publicKey: string }> };
    expect(devices.devices).toHaveLength(1);
    expect(devices.devices[0]).toMatchObject({ deviceId: whoJson.device.deviceId, fingerprint: whoJson.device.fingerprint });
    expect(devices.devices[0]!.publicKey.trim()).toBe(secrets!.deviceKey!.publicKey.trim());
    const text = await run(['whoami'], env);
    expect(text.stdout).toMatch(/^alice <alice@example\.com>\n {2}kind: +user\n {2}groups: +dba, dev\n {2}expires: +\S+ \(in \d+m \d+s\)/);
    expect(text.stdout).toContain(`gateway: ${gateway.url}`);
    expect(text.stdout).toContain(whoJson.device.fingerprint);

    const { info, running } = await connect(env);
    const r = await psql(info, ['-At', '-c', 'select current_user, count(*) from items']);
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe(`${pg_.users.scram.user}|3`);
    expect(await running.stop()).toBe(0);

    const out = await run(['logout'], env);
    expect(out.code).toBe(0);
    expect(out.stdout).toContain(`Logged out of ${gateway.url}`);
    expect(out.stdout).toContain('revoked at the identity provider');
    expect(op.revocations).toContainEqual(expect.objectContaining({ kind: 'RefreshToken', accountId: 'alice', clientId: op.clientId }));
    expect(await secretsOf(env, gateway, 'alice')).toBeUndefined();
    expect(await new ProfileStore(env.HOOP_CONFIG_DIR!).atGateway(gateway.url)).toBeUndefined();

    const after = await run(['whoami', '--gateway', gateway.url], env);
    expect(after.code).toBe(77);
    expect(after.stderr).toContain(`not logged in to ${gateway.url}`);
    expect(after.stderr).toContain(`hoop login --gateway ${gateway.url}`);
    const again = await run(['logout', '--gateway', gateway.url], env);
    expect(again.code).toBe(0);
    expect(again.stdout).toBe(`Not logged in to ${gateway.url}.\n`);
  });

  it('keeps the device key across logins to the same gateway', async () => {
    const env = user();
    await browserLogin(env, 'alice');
    const first = await secretsOf(env);
    const browser = new TestBrowser();
    await browserLogin(env, 'alice', gateway, browser);
    const second = await secretsOf(env);
    expect(second?.deviceKey).toEqual(first?.deviceKey);
    expect(second?.refreshToken).not.toBe(first?.refreshToken);
  });

  it('--reauth: the provider signs the person in anew though it has a session, so the token says a recent auth_time', async () => {
    const env = user();
    const browser = new TestBrowser();
    const authTime = async (): Promise<number> => decodeJwt((await secretsOf(env))!.accessToken!).auth_time as number;
    await browserLogin(env, 'alice', gateway, browser);
    const first = await authTime();
    expect(first).toBeGreaterThan(Date.now() / 1000 - 60);
    // auth_time counts seconds: the sign-ins after this one fall in a later second.
    await pastExpiry((first + 1) * 1000);
    // Single sign-on: the provider's session answers, and the sign-in it tells of is the first one.
    await browserLogin(env, 'alice', gateway, browser);
    expect(await authTime()).toBe(first);
    const again = await browserLogin(env, 'alice', gateway, browser, ['--reauth']);
    expect(again.url.searchParams.get('prompt')).toBe('login');
    expect(again.url.searchParams.get('max_age')).toBe('0');
    expect(await authTime()).toBeGreaterThan(first);
  });

  it('refuses a response with the wrong state (400 page) and keeps waiting for the right one', async () => {
    const env = user();
    const login = start(['login', '--gateway', gateway.url, '--no-browser'], env, { tty: true });
    const [, url] = await login.waitFor(/^\s+(http:\/\/127\.0\.0\.1:\d+\/auth\S+)$/m);
    const forged = new URL(url!);
    forged.searchParams.set('state', 'forged-state-value');
    const bad = await new TestBrowser().authorize(forged.href, 'bob');
    expect(bad.status).toBe(400);
    expect(bad.body).toContain('does not match');
    await login.waitFor(/Ignored a browser response whose state does not match this login; still waiting\./);
    const good = await new TestBrowser().authorize(url!, 'alice');
    expect(good.status).toBe(200);
    expect(await login.done).toBe(0);
    expect(login.stdout()).toContain('as alice');
    await secretsOf(env);
  });

  it('reports a denial on the consent page and a browser that never comes back', async () => {
    const env = user();
    const login = start(['login', '--gateway', gateway.url, '--no-browser'], env, { tty: true });
    const [, url] = await login.waitFor(/^\s+(http:\/\/127\.0\.0\.1:\d+\/auth\S+)$/m);
    const denied = await new TestBrowser().authorize(url!, 'alice', { deny: true });
    expect(denied.status).toBe(400);
    expect(denied.body).toContain('access_denied');
    expect(await login.done).toBe(77);
    expect(login.stderr()).toContain('the identity provider did not log you in: access_denied');

    const slow = await run(['login', '--gateway', gateway.url, '--no-browser', '--timeout', '1'], env, { tty: true });
    expect(slow.code).toBe(69);
    expect(slow.stderr).toContain('no login response came back from the browser within 1 s');
    expect(slow.stderr).toContain('hoop login --device');
  });

  it('the provider refuses a code exchanged without its PKCE verifier, or with another one', async () => {
    const config = await client.discovery(new URL(op.issuer), op.clientId, undefined, client.None(), { execute: [client.allowInsecureRequests] });
    const browser = new TestBrowser();
    /** One authorization as hoop login makes it (S256 challenge); resolves the code, its verifier and redirect URI. */
    const authorization = async (): Promise<{ code: string; verifier: string; redirectUri: string }> => {
      const listener = await startRedirectListener();
      try {
        const verifier = client.randomPKCECodeVerifier();
        const state = client.randomState();
        const url = client.buildAuthorizationUrl(config, {
          redirect_uri: listener.redirectUri,
          scope: 'openid',
          code_challenge: await client.calculatePKCECodeChallenge(verifier),
          code_challenge_method: 'S256',
          state,
          resource: RESOURCE,
        });
        const waiting = listener.wait({ state, timeoutMs: 10_000 });
        const browsing = browser.authorize(url.href, 'alice');
        const callback = await waiting;
        callback.respond(true, 'captured');
        await browsing;
        return { code: callback.url.searchParams.get('code')!, verifier, redirectUri: listener.redirectUri };
      } finally {
        await listener.close();
      }
    };
    const exchange = async (grant: { code: string; redirectUri: string }, codeVerifier: string | undefined): Promise<{ status: number; error?: string; access_token?: string }> => {
      const body = new URLSearchParams({ grant_type: 'authorization_code', code: grant.code, redirect_uri: grant.redirectUri, client_id: op.clientId, resource: RESOURCE });
      if (codeVerifier !== undefined) body.set('code_verifier', codeVerifier);
      const res = await fetch(config.serverMetadata().token_endpoint!, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body });
      return { status: res.status, ...((await res.json()) as { error?: string; access_token?: string }) };
    };
    const missing = await exchange(await authorization(), undefined);
    expect(missing.status).toBe(400);
    expect(missing.error).toMatch(/^invalid_(grant|request)$/);
    const wrong = await exchange(await authorization(), client.randomPKCECodeVerifier());
    expect(wrong.status).toBe(400);
    expect(wrong.error).toBe('invalid_grant');
    // The same exchange with the right verifier works: the verifier alone made the difference.
    const right = await authorization();
    const ok = await exchange(right, right.verifier);
    expect(ok.status).toBe(200);
    expect(ok.access_token).toBeTruthy();
    tokens.add(ok.access_token!);
  });
});

describe('hoop login --device', () => {
  it('shows the code and URL, honours slow_down, and logs in once approved', async () => {
    const env = user();
    op.deviceInterval = 1;
    const login = start(['login', '--gateway', gateway.url, '--device'], env, { tty: true });
    const [, uri, userCode] = await login.waitFor(/open (\S+) and enter the code (\S+)/);
    expect(login.stderr()).toContain('checking every 1 s');
    // The provider now wants 3 s between polls: the 1 s poll after the next gets slow_down, and
    // openid-client's loop then waits 1 + 5 = 6 s, slow enough that it never hears it again.
    op.deviceInterval = 3;
    await login.waitFor(/asked hoop to slow down; checking every 6 s/);
    await new TestBrowser().approveDevice(uri!, userCode!, 'bob');
    expect(await login.done).toBe(0);
    expect(login.stderr().match(/slow down/g)).toHaveLength(1);
    expect(login.stderr()).toContain('Approved.');
    expect(login.stdout()).toContain(`Logged in to ${gateway.url} as bob (user).`);
    await secretsOf(env);
    const who = JSON.parse((await run(['whoami', '--json'], env)).stdout) as { subject: string; groups: string[] };
    expect(who).toMatchObject({ subject: 'bob', groups: ['dev'] });
  });

  it('ends cleanly when the code is not approved in time', async () => {
    const env = user();
    const r = await run(['login', '--gateway', gateway.url, '--device', '--timeout', '2'], env, { tty: true });
    expect(r.code).toBe(69);
    expect(r.stderr).toContain('the code was not approved within 2 s');
    expect(r.stderr).toContain('hoop login --device');
  });
});

describe('without a terminal', () => {
  it('waits for a browser or a device approval only when asked to (--no-browser, --device): else exit 77 with the CI hint', async () => {
    // Asked for: it prints where to sign in and waits, terminal or not.
    const env = user();
    const login = start(['login', '--gateway', gateway.url, '--no-browser'], env, { tty: false });
    const [, url] = await login.waitFor(/^\s+(http:\/\/127\.0\.0\.1:\d+\/auth\S+)$/m);
    expect((await new TestBrowser().authorize(url!, 'alice')).status).toBe(200);
    expect(await login.done).toBe(0);
    for (const [args, env, tty] of [
      [['login', '--gateway', gateway.url], user(), false],
      [['login', '--gateway', gateway.url], { ...user(), CI: 'true' }, true],
    ] as const) {
      const r = await run([...args], env, { tty });
      expect(r.code).toBe(77);
      expect(r.stderr).toContain('not at a terminal');
      expect(r.stderr).toContain('--id-token-file');
      expect(r.stderr).not.toContain('http://127.0.0.1');
    }
  });
});

describe('tokens over time', () => {
  it('refreshes silently when the access token has expired, saving the rotated refresh token', async () => {
    const env = user();
    op.lifetimes.accessToken = 3;
    expect((await browserLogin(env, 'alice')).code).toBe(0);
    const before = await secretsOf(env);
    await pastExpiry(before?.accessTokenExpiresAt);
    const who = await run(['whoami', '--json'], env);
    expect(who.code).toBe(0);
    expect(JSON.parse(who.stdout)).toMatchObject({ subject: 'alice' });
    const after = await secretsOf(env);
    expect(after?.accessToken).not.toBe(before?.accessToken);
    expect(after?.refreshToken).not.toBe(before?.refreshToken);
    expect(new Date(JSON.parse(who.stdout).expiresAt as string).getTime()).toBeGreaterThan(Date.now());
  });

  it('a gateway that takes ID tokens: presents the ID token and refreshes it too', async () => {
    const env = user();
    op.lifetimes.idToken = 3;
    expect((await browserLogin(env, 'alice', gateway2)).code).toBe(0);
    const before = await secretsOf(env, gateway2);
    expect(before?.idToken).toBeTruthy();
    await pastExpiry(JSON.parse(Buffer.from(before!.idToken!.split('.')[1]!, 'base64url').toString()).exp * 1000);
    const who = await run(['whoami', '--json', '--gateway', gateway2.url], env);
    expect(who.code).toBe(0);
    expect(JSON.parse(who.stdout)).toMatchObject({ subject: 'alice', groups: ['dba', 'dev'] });
    const after = await secretsOf(env, gateway2);
    expect(after?.idToken).not.toBe(before?.idToken);
  });

  it('an expired token that cannot be refreshed: exit 77 and the hint to log in', async () => {
    const env = user();
    // Long enough for the login itself to finish on a busy machine; then it runs out.
    op.lifetimes.accessToken = 3;
    expect((await browserLogin(env, 'bob')).code).toBe(0);
    op.revokeTokens('bob');
    // Until the access token runs out (3 s): then whoami can neither use it nor renew it.
    const who = await eventually(
      async () => {
        const who = await run(['whoami'], env);
        expect(who.code).toBe(77);
        return who;
      },
      { timeout: 60_000, interval: 250 },
    );
    expect(who.stderr).toContain(`your login to ${gateway.url} as bob has expired and cannot be renewed`);
    expect(who.stderr).toContain(`hoop login --gateway ${gateway.url}`);
  });

  it('renews the token of an open tunnel: a session outlives the token it began with', async () => {
    const env = user();
    op.lifetimes.accessToken = 4;
    await browserLogin(env, 'alice');
    const { info, running } = await connect(env);
    const c = pgClient(info);
    const errors: Error[] = [];
    c.on('error', (e) => errors.push(e));
    await c.connect();
    const first = await secretsOf(env);
    expect((await c.query('select 1 as one')).rows).toEqual([{ one: 1 }]);
    // A second session opened after the first renewal, with a fresher token.
    const renewed = await eventually(
      async () => {
        const now = await secretsOf(env);
        expect(now?.accessToken, 'a renewed token in the store').not.toBe(first?.accessToken);
        return now!;
      },
      { timeout: 60_000, interval: 100 },
    );
    const c2 = pgClient(info);
    c2.on('error', (e) => errors.push(e));
    await c2.connect();
    const atC2 = (await secretsOf(env)) ?? renewed;
    // Past the first token's expiry (4 s, no clock tolerance), and the one after: the renewed one c2 began with.
    await pastExpiry(decodeJwt(atC2.accessToken!).exp! * 1000);
    expect((await c.query('select count(*)::int as n from items')).rows).toEqual([{ n: 3 }]);
    expect((await c2.query('select 2 as two')).rows).toEqual([{ two: 2 }]);
    expect(errors).toEqual([]);
    await c2.end();
    const later = await secretsOf(env);
    expect(later?.accessToken).not.toBe(first?.accessToken);
    await c.end();
    expect(await running.stop()).toBe(0);
    expect(running.stderr()).not.toContain('could not renew');
    expect(gatewayLogs.join('\n')).not.toContain(later!.accessToken!);
  });

  it('says once that renewal failed, then the session ends at expiry with how to log in again', async () => {
    const env = user();
    op.lifetimes.accessToken = 4;
    await browserLogin(env, 'bob');
    const { info, running } = await connect(env);
    const c = pgClient(info);
    const ended = new Promise<Error & { code?: string }>((resolve) => c.on('error', resolve));
    await c.connect();
    expect((await c.query('select 1 as one')).rows).toEqual([{ one: 1 }]);
    op.revokeTokens('bob');
    const err = await ended;
    expect(err.code).toBe('28000');
    expect(err.message).toMatch(/^hoop: your token expired at \S+; the session is closed$/);
    await running.waitFor(/session \S+ closed: hoop: your token expired/);
    // A window for a second "could not renew" to show up in, if the connect were to say it again.
    await quietFor(1_000);
    const said = running.stderr().match(/could not renew the token/g) ?? [];
    expect(said).toHaveLength(1);
    expect(running.stderr()).toContain(`hoop login --gateway ${gateway.url}`);
    await c.end().catch(() => undefined);
    expect(await running.stop()).toBe(0);
  });
});

describe('workload login', () => {
  const claims = (extra: Record<string, unknown> = {}) => ({ aud: 'hoop-ci', sub: 'repo:acme/api:ref:refs/heads/main', repository: 'acme/api', ref: 'refs/heads/main', ...extra });

  it('--id-token-file: checked with the gateway, recorded as a source, never stored; connect uses it', async () => {
    const env = user();
    const file = join(dir, 'ci-token');
    const token = await wl.token(claims());
    tokens.add(token);
    await writeFile(file, `${token}\n`);
    const r = await run(['login', '--gateway', gateway.url, '--id-token-file', file], env);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`Logged in to ${gateway.url} as ci:acme/api (workload).`);
    expect(r.stdout).toMatch(/groups: +deployers/);
    expect(r.stdout).toContain(`the token file ${file}, read again each time (not stored)`);
    const profile = await new ProfileStore(env.HOOP_CONFIG_DIR!).get(profileKey(gateway.url, 'ci:acme/api'));
    expect(profile).toMatchObject({ kind: 'workload', subject: 'ci:acme/api', workload: { kind: 'file', path: file } });
    const stored = await readFile(new FileSecretStore(env.HOOP_CONFIG_DIR!).fileOf(profileKey(gateway.url, 'ci:acme/api')), 'utf8');
    expect(stored).not.toContain(token);
    expect(JSON.parse(stored).secrets.deviceKey.privateKey).toContain('PRIVATE KEY');

    // The file is read again: a rotated token is used by the next command.
    const rotated = await wl.token(claims({ run: 2 }));
    tokens.add(rotated);
    await writeFile(file, rotated);
    const who = JSON.parse((await run(['whoami', '--json'], env)).stdout) as Record<string, unknown>;
    expect(who).toMatchObject({ subject: 'ci:acme/api', kind: 'workload', groups: ['deployers'], tokenSource: 'workload' });

    const { info, running } = await connect(env);
    const q = await psql(info, ['-At', '-c', 'select 42']);
    expect(q.stdout.trim()).toBe('42');
    expect(await running.stop()).toBe(0);
  });

  it('HOOP_ID_TOKEN, and a token no rule admits', async () => {
    const token = await wl.token(claims());
    tokens.add(token);
    const env = { ...user(), HOOP_ID_TOKEN: token };
    const r = await run(['login', '--gateway', gateway.url], env);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('as ci:acme/api (workload)');
    expect(r.stdout).toContain('$HOOP_ID_TOKEN, read again each time');

    const stranger = await wl.token(claims({ repository: 'evil/fork' }));
    tokens.add(stranger);
    const refused = await run(['login', '--gateway', gateway.url], { ...user(), HOOP_ID_TOKEN: stranger });
    expect(refused.code).toBe(77);
    expect(refused.stderr).toContain('none of its rules matches');
  });

  it("GitHub Actions: asks the token endpoint for the gateway's audience", async () => {
    const endpoint = wl.githubActionsEndpoint();
    const env: NodeJS.ProcessEnv = { ...user(), ACTIONS_ID_TOKEN_REQUEST_URL: endpoint.url, ACTIONS_ID_TOKEN_REQUEST_TOKEN: endpoint.bearer, CI: 'true' };
    const hitsBefore = wl.hits.get('/github/token') ?? 0;
    const r = await run(['login', '--gateway', gateway.url], env);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain('with GitHub Actions');
    expect(r.stdout).toContain('as ci:acme/api (workload)');
    expect(wl.hits.get('/github/token')).toBe(hitsBefore + 1);
    const profile = await new ProfileStore(env.HOOP_CONFIG_DIR!).get(profileKey(gateway.url, 'ci:acme/api'));
    expect(profile?.workload).toEqual({ kind: 'github', audience: 'hoop-ci' });
    // Each command asks again.
    expect((await run(['whoami', '--json'], env)).code).toBe(0);
    expect(wl.hits.get('/github/token')).toBe(hitsBefore + 2);

    const bad = await run(['login', '--gateway', gateway.url], { ...env, ACTIONS_ID_TOKEN_REQUEST_TOKEN: 'wrong' });
    expect(bad.code).toBe(77);
    expect(bad.stderr).toContain('id-token: write');
  });
});

describe('profiles and the token store', () => {
  it('two gateways, two profiles: logging in to the second never overwrites the first', async () => {
    const env = user();
    await browserLogin(env, 'alice', gateway);
    await browserLogin(env, 'bob', gateway2);
    const file = await new ProfileStore(env.HOOP_CONFIG_DIR!).read();
    expect(Object.keys(file.profiles).sort()).toEqual([profileKey(gateway.url, 'alice'), profileKey(gateway2.url, 'bob')].sort());
    expect(file.current).toBe(profileKey(gateway2.url, 'bob'));
    const one = JSON.parse((await run(['whoami', '--json', '--gateway', gateway.url], env)).stdout) as { subject: string };
    const two = JSON.parse((await run(['whoami', '--json'], env)).stdout) as { subject: string };
    expect([one.subject, two.subject]).toEqual(['alice', 'bob']);
    expect((await secretsOf(env, gateway))?.accessToken).not.toBe((await secretsOf(env, gateway2))?.accessToken);

    const out = await run(['logout', '--gateway', gateway2.url], env);
    expect(out.code).toBe(0);
    const left = await new ProfileStore(env.HOOP_CONFIG_DIR!).read();
    expect(Object.keys(left.profiles)).toEqual([profileKey(gateway.url, 'alice')]);
    expect(left.current).toBe(profileKey(gateway.url, 'alice'));
    const all = await run(['logout', '--all'], env);
    expect(all.stdout).toContain(`Logged out of ${gateway.url}`);
    expect((await run(['logout', '--all'], env)).stdout).toBe('Not logged in.\n');
  });

  it('keeps tokens in a 0600 file in a 0700 directory and says where, once', async () => {
    const env = user();
    const first = await browserLogin(env, 'alice');
    const tokenFile = new FileSecretStore(env.HOOP_CONFIG_DIR!).fileOf(profileKey(gateway.url, 'alice'));
    expect(first.stderr).toContain(`hoop: tokens are kept in ${tokenFile} (mode 0600), because HOOP_TOKEN_STORE=file; hoop says this once`);
    expect((await stat(tokenFile)).mode & 0o777).toBe(0o600);
    expect((await stat(join(env.HOOP_CONFIG_DIR!, 'tokens'))).mode & 0o777).toBe(0o700);
    expect((await stat(join(env.HOOP_CONFIG_DIR!, 'profiles.json'))).mode & 0o777).toBe(0o600);
    const second = await browserLogin(env, 'alice');
    expect(second.stderr).not.toContain('tokens are kept in');
    expect(second.stdout).toContain(`tokens:  ${tokenFile} (mode 0600)`);
    const third = await browserLogin(env, 'bob', gateway2);
    expect(third.stderr).not.toContain('tokens are kept in');
  });
});

describe('a keychain that refuses', () => {
  it('falls back to the 0600 file and says why, once per configuration directory', async () => {
    const env = user();
    delete env.HOOP_TOKEN_STORE;
    const refusing: KeyringFactory = () => ({
      getPassword: () => null,
      setPassword: () => {
        throw new Error("Couldn't access platform storage: AccessDenied");
      },
      deletePassword: () => false,
    });
    const said: string[] = [];
    const browsed: Array<Promise<unknown>> = [];
    const ctx = {
      env,
      cwd: dir,
      interactive: true,
      say: (t: string) => said.push(t),
      keyring: refusing,
      openUrl: async (url: string) => {
        browsed.push(new TestBrowser().authorize(url, 'alice'));
        return true;
      },
    };
    const first = await login({ gateway: gateway.url }, ctx);
    await Promise.all(browsed);
    expect(first.profile.store).toBe('file');
    expect(first.fileStoreNotice).toContain("no OS keychain answered (Couldn't access platform storage: AccessDenied)");
    expect(said.filter((l) => l.includes('tokens are kept in'))).toHaveLength(1);
    expect(said.join('\n')).not.toContain('Could not start a browser');
    const second = await login({ gateway: gateway.url }, ctx);
    await Promise.all(browsed);
    expect(second.fileStoreNotice).toBeUndefined();
    expect(said.filter((l) => l.includes('tokens are kept in'))).toHaveLength(1);
    outputs.push(...said);
    await secretsOf(env);
  });
});

describe('secrets stay secret', () => {
  it('no token ever appears in what hoop printed', () => {
    expect(tokens.size).toBeGreaterThan(10);
    const all = outputs.join('\n');
    for (const token of tokens) expect(all.includes(token)).toBe(false);
    for (const token of tokens) expect(gatewayLogs.join('\n').includes(token)).toBe(false);
  });
});

describe('a provider that wants the client secret of an installed app (Google)', () => {
  it('login.clientSecret, redirectPort and authorizationParams: the CLI sends the secret with the code and refresh grants, listens on the port, asks for offline access as told; logs in, presents the ID token, refreshes it', async () => {
    const port = await freePort();
    const google = await startOidc({ clientId: 'hoop-desktop.apps.example', clientSecret: 'GOCSPX-not-a-secret', accounts: { carol: { groups: [], email: 'carol@acme.example' } } });
    const cert = await pki.issue('gateway-google', ['IP:127.0.0.1']);
    const file = join(dir, 'google.yaml');
    const gatewayYaml = (secret: string): string => `listen: 127.0.0.1:0
tls: { cert: ${cert.certFile}, key: ${cert.keyFile} }
dataDir: ./state-google
login:
  issuer: ${google.issuer}
  clientId: ${google.clientId}
${secret}issuers:
  - issuer: ${google.issuer}
    audience: ${google.clientId}
    tokenType: id
${appConnection('{ emails: [carol@acme.example] }')}`;
    const boot = async (secret: string): Promise<Gateway> => {
      await writeFile(file, gatewayYaml(secret));
      const env = { APP_PASSWORD: pg_.users.scram.password };
      return startGateway({ config: await loadGatewayConfig(file, env), log: createLogger({ level: 'error', sink: { write: () => {} } }), env });
    };
    // Without the secret, the provider refuses the code exchange, and the CLI says so.
    const without = await boot('');
    try {
      const login = start(['login', '--gateway', without.url, '--no-browser'], user(), { tty: true });
      const [, url] = await login.waitFor(/^\s+(http:\/\/127\.0\.0\.1:\d+\S+)$/m);
      expect((await new TestBrowser().authorize(url!, 'carol')).status).toBe(400);
      expect(await login.done).not.toBe(0);
      expect(login.stderr()).toMatch(/refused to .*invalid_client/);
    } finally {
      await without.close();
    }
    const gw = await boot(`  clientSecret: GOCSPX-not-a-secret\n  redirectPort: ${port}\n  authorizationParams: { access_type: offline, prompt: consent }\n  scopes: [openid, profile, email]\n`);
    try {
      const env = user();
      google.lifetimes.idToken = 3;
      const login = await browserLogin(env, 'carol', gw);
      expect(login.code).toBe(0);
      expect(new URL(login.url.searchParams.get('redirect_uri')!).port).toBe(String(port));
      expect([login.url.searchParams.get('access_type'), login.url.searchParams.get('prompt'), login.url.searchParams.get('scope')]).toEqual(['offline', 'consent', 'openid profile email']);
      const before = await secretsOf(env, gw);
      await pastExpiry(JSON.parse(Buffer.from(before!.idToken!.split('.')[1]!, 'base64url').toString()).exp * 1000);
      const who = await run(['whoami', '--json', '--gateway', gw.url], env);
      expect(JSON.parse(who.stdout)).toMatchObject({ subject: 'carol', email: 'carol@acme.example' });
      expect((await secretsOf(env, gw))?.idToken).not.toBe(before?.idToken); // refreshed, with the secret
    } finally {
      await gw.close();
      await google.close();
    }
  });
});
