/**
 * `hoop login` as a user runs it: the built CLI (`node bin/hoop.js`) as a child process on a
 * pseudo-terminal (util-linux `script`), the test reading the URL it prints (or the one it hands
 * to $BROWSER) and signing in with the headless browser; then `whoami`, `connect` + psql, `profiles`
 * and `logout` as separate processes, against `hoop gateway` running as a process too.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestBrowser } from '../harness/browser.js';
import { createTestPki, type TestPki } from '../harness/certs.js';
import { runProcess } from '../harness/clients.js';
import { startOidc, type TestOidc } from '../harness/oidc.js';
import { startPgCluster, type PgCluster } from '../harness/postgres.js';
import { eventually } from '../harness/wait.js';

const bin = resolve(import.meta.dirname, '../../bin/hoop.js');

let dir: string;
let pki: TestPki;
let pg: PgCluster;
let op: TestOidc;
let gatewayUrl: string;
const children: ChildProcess[] = [];
const outputs: string[] = [];

/** A child process and everything it printed so far. */
interface Child {
  child: ChildProcess;
  output(): string;
  /** Resolves with the first match of `re` in the output. */
  waitFor(re: RegExp): Promise<RegExpExecArray>;
  exited: Promise<number | null>;
}

function watch(child: ChildProcess, what: string): Child {
  children.push(child);
  let output = '';
  const waiters: Array<() => void> = [];
  const onData = (d: Buffer): void => {
    output += d.toString();
    for (const w of [...waiters]) w();
  };
  child.stdout?.on('data', onData);
  child.stderr?.on('data', onData);
  const exited = new Promise<number | null>((r) =>
    child.on('exit', (code) => {
      outputs.push(output);
      r(code);
      for (const w of [...waiters]) w();
    }),
  );
  return {
    child,
    output: () => output,
    exited,
    waitFor: (re) =>
      new Promise((resolveMatch, reject) => {
        const check = (): void => {
          const m = re.exec(output);
          if (m) resolveMatch(m);
          else if (child.exitCode !== null) reject(new Error(`${what} exited ${child.exitCode} without printing ${re}: ${output}`));
          else return;
          waiters.splice(waiters.indexOf(check), 1);
        };
        waiters.push(check);
        check();
      }),
  };
}

const shellQuote = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

/** `node bin/hoop.js args` on a pseudo-terminal, so it sees a TTY as in a person's shell. */
function onTerminal(args: string[], env: NodeJS.ProcessEnv): Child {
  // Without a terminal of its own, `script` makes a 0x0 one: give it a size as a shell would have.
  const command = `stty cols 100 rows 30; exec ${[process.execPath, bin, ...args].map(shellQuote).join(' ')}`;
  const child = spawn('script', ['-qefc', command, '/dev/null'], { env: { PATH: process.env.PATH, TERM: 'dumb', ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
  return watch(child, `hoop ${args[0]}`);
}

/** `node bin/hoop.js args` with pipes (no TTY), run to the end. */
async function hoop(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const r = await runProcess(process.execPath, [bin, ...args], { env: { ...env, CI: '' } });
  outputs.push(r.stdout, r.stderr);
  return r;
}

beforeAll(async () => {
  if (!existsSync(resolve(import.meta.dirname, '../../dist/cli.js'))) throw new Error('run `npm run build` first (npm test does)');
  dir = await mkdtemp(join(tmpdir(), 'hoop-e2e-login-'));
  pki = await createTestPki();
  pg = await startPgCluster();
  op = await startOidc({ audience: 'hoop-e2e', accounts: { dana: { groups: ['dev'], email: 'dana@example.com' } } });
  const cert = await pki.issue('gateway', ['IP:127.0.0.1']);
  await writeFile(join(dir, 'db.password'), `${pg.users.scram.password}\n`, { mode: 0o600 });
  await writeFile(
    join(dir, 'gateway.yaml'),
    `listen: 127.0.0.1:0
tls: { cert: ${cert.certFile}, key: ${cert.keyFile} }
login:
  issuer: ${op.issuer}
  clientId: ${op.clientId}
  resource: ${op.resource}
issuers:
  - issuer: ${op.issuer}
    audience: hoop-e2e
    tokenType: access
connections:
  - name: app
    type: postgres
    host: 127.0.0.1
    port: ${pg.port}
    database: app
    user: ${pg.users.scram.user}
    password: \${file:db.password}
    tls: { mode: prefer }
    allow: { groups: [dev] }
`,
  );
  const gw = watch(spawn(process.execPath, [bin, 'gateway', '--config', join(dir, 'gateway.yaml')], { env: { PATH: process.env.PATH }, stdio: ['ignore', 'pipe', 'pipe'] }), 'hoop gateway');
  const [line] = await gw.waitFor(/^\{.*"gateway\.listening".*\}$/m);
  gatewayUrl = (JSON.parse(line) as { url: string }).url;
});

afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await Promise.allSettled([op?.close(), pg?.stop()]);
  await pki?.cleanup();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('hoop login as a process', () => {
  it('--no-browser on a terminal: the user opens the printed URL; then whoami, connect + psql, logout', async () => {
    const env = { HOOP_CONFIG_DIR: join(dir, 'conf-a'), HOOP_TOKEN_STORE: 'file', HOOP_CA_FILE: pki.caFile };
    const login = onTerminal(['login', '--gateway', gatewayUrl, '--no-browser'], env);
    const [, url] = await login.waitFor(/^\s+(http:\/\/127\.0\.0\.1:\d+\/auth\S+?)\r?$/m);
    const page = await new TestBrowser().authorize(url!, 'dana');
    expect(page.status).toBe(200);
    expect(page.body).toContain('You are logged in to hoop');
    expect(await login.exited).toBe(0);
    expect(login.output()).toContain(`Logged in to ${gatewayUrl} as dana <dana@example.com> (user).`);
    expect(login.output()).toContain('tokens are kept in');

    const who = await hoop(['whoami', '--json'], env);
    expect(who.code).toBe(0);
    expect(JSON.parse(who.stdout)).toMatchObject({ subject: 'dana', kind: 'user', groups: ['dev'], gateway: gatewayUrl, tokenSource: 'profile' });

    const conn = watch(
      spawn(process.execPath, [bin, 'connect', 'app', '--json'], { env: { PATH: process.env.PATH, ...env, XDG_RUNTIME_DIR: join(dir, 'run') }, stdio: ['ignore', 'pipe', 'pipe'] }),
      'hoop connect',
    );
    const [line] = await conn.waitFor(/^\{.*\}$/m);
    const info = JSON.parse(line) as { host: string; port: number; pgpassFile: string };
    const r = await runProcess('psql', ['-X', '-At', '-h', info.host, '-p', String(info.port), '-U', 'hoop', '-d', 'app', '-c', 'select count(*) from items'], {
      env: { PGPASSFILE: info.pgpassFile, PGSSLMODE: 'disable' },
    });
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('3');
    conn.child.kill('SIGINT');
    expect(await conn.exited).toBe(0);

    const out = await hoop(['logout'], env);
    expect(out.code).toBe(0);
    expect(out.stdout).toContain('revoked at the identity provider');
    const after = await hoop(['whoami'], env);
    expect(after.code).toBe(77);
    expect(after.stderr).toContain('hoop login');

    const secrets = await readFile(join(dir, 'conf-a', 'profiles.json'), 'utf8');
    expect(secrets).not.toContain(gatewayUrl);
  });

  it('opens the browser through $BROWSER, with the URL as its only argument', async () => {
    const env = { HOOP_CONFIG_DIR: join(dir, 'conf-b'), HOOP_TOKEN_STORE: 'file', HOOP_CA_FILE: pki.caFile, BROWSER: join(dir, 'browser.sh') };
    const opened = join(dir, 'opened-url');
    await writeFile(env.BROWSER, `#!/bin/sh\nprintf '%s' "$1" > '${opened}'\n`);
    await chmod(env.BROWSER, 0o755);
    const login = onTerminal(['login', '--gateway', gatewayUrl], env);
    await login.waitFor(/Waiting for the browser/);
    const url = await eventually(
      async () => {
        const url = await readFile(opened, 'utf8').catch(() => '');
        expect(url, 'the URL $BROWSER was given').not.toBe('');
        return url;
      },
      { timeout: 60_000 },
    );
    expect(login.output()).toContain(url);
    expect((await new TestBrowser().authorize(url, 'dana')).status).toBe(200);
    expect(await login.exited).toBe(0);
    expect(login.output()).toContain(`Logged in to ${gatewayUrl} as dana`);
  });

  it('--device on a terminal: the live view shows the code; approving it on another device logs in', async () => {
    const env = { HOOP_CONFIG_DIR: join(dir, 'conf-d'), HOOP_TOKEN_STORE: 'file', HOOP_CA_FILE: pki.caFile };
    const login = onTerminal(['login', '--gateway', gatewayUrl, '--device'], env);
    // eslint-disable-next-line no-control-regex
    const plain = (): string => login.output().replace(/\u001b\[[0-9;?]*[A-Za-z]/g, '');
    await login.waitFor(/enter the code/);
    const match = await eventually(() => {
      const match = /Open (\S+) and enter the code\s+([A-Z0-9]{4}-[A-Z0-9]{4})/.exec(plain());
      expect(match).not.toBeNull();
      return match;
    });
    expect(plain()).toMatch(/Waiting for approval · \d+:\d\d left · checking every 1 s/);
    await new TestBrowser().approveDevice(match![1]!, match![2]!, 'dana');
    expect(await login.exited).toBe(0);
    expect(plain()).toContain('✔ Approved.');
    expect(plain()).toContain(`Logged in to ${gatewayUrl} as dana`);
  });

  it('refuses to wait for a browser without a terminal, unless asked to (--no-browser)', async () => {
    const r = await hoop(['login', '--gateway', gatewayUrl], { HOOP_CONFIG_DIR: join(dir, 'conf-c'), HOOP_CA_FILE: pki.caFile });
    expect(r.code).toBe(77);
    expect(r.stderr).toContain('not at a terminal');
    expect(r.stderr).toContain('--id-token-file');
  });

  it('two identities at one gateway: both kept and listed, each works when switched to, logging out of one leaves the other', async () => {
    const env = { HOOP_CONFIG_DIR: join(dir, 'conf-two'), HOOP_TOKEN_STORE: 'file', HOOP_CA_FILE: pki.caFile };
    /** `hoop login --no-browser` on a terminal, signed in as `username`; what it printed. */
    const logIn = async (username: string): Promise<string> => {
      const login = onTerminal(['login', '--gateway', gatewayUrl, '--no-browser'], env);
      const [, url] = await login.waitFor(/^\s+(http:\/\/127\.0\.0\.1:\d+\/auth\S+?)\r?$/m);
      expect((await new TestBrowser().authorize(url!, username)).status).toBe(200);
      expect(await login.exited, login.output()).toBe(0);
      return login.output();
    };
    const whoami = async (): Promise<{ subject: string; expiresAt: string }> => {
      const r = await hoop(['whoami', '--json'], env);
      expect(r.code, r.stderr).toBe(0);
      return JSON.parse(r.stdout) as { subject: string; expiresAt: string };
    };
    // Short access tokens: switched back to, the first identity must renew with its own refresh token.
    const lifetime = op.lifetimes.accessToken;
    op.lifetimes.accessToken = 8;
    try {
      const dana = await logIn('dana');
      const danaExpiry = /expires: (\S+)/.exec(dana)![1];
      expect(await logIn('erin')).toContain('kept:    dana at this gateway too');
      expect((await whoami()).subject).toBe('erin');

      const listed = await hoop(['profiles', '--json'], env);
      const { current, profiles } = JSON.parse(listed.stdout) as { current: string; profiles: Array<{ name: string; subject: string; gateway: string; current: boolean; renewable: boolean }> };
      expect(profiles.map((p) => [p.subject, p.gateway, p.current, p.renewable])).toEqual([
        ['dana', gatewayUrl, false, true],
        ['erin', gatewayUrl, true, true],
      ]);
      expect(current).toBe(profiles[1]!.name);
      const table = (await hoop(['profiles'], env)).stdout;
      expect(table).toMatch(new RegExp(`^\\* +${gatewayUrl.replace(/[.]/g, '\\.')} +erin +- +user +(in \\d+s|\\d+s ago, renewed on use)$`, 'm'));
      expect(table).toMatch(/^ +https:\S+ +dana +dana@example\.com +user /m);

      const use = await hoop(['profiles', 'use', 'dana@example.com'], env);
      expect(use.code, use.stderr).toBe(0);
      expect(use.stdout).toBe(`Now current: dana <dana@example.com> at ${gatewayUrl}.\n`);
      // dana's token is renewed with dana's refresh token, and the gateway takes it as dana's.
      await eventually(async () => expect(await whoami()).toMatchObject({ subject: 'dana', expiresAt: expect.not.stringContaining(danaExpiry!) }));
      expect((await hoop(['profiles', 'use', 'erin'], env)).code).toBe(0);
      expect((await whoami()).subject).toBe('erin');

      // Logging in again as erin replaces erin's profile only.
      const listedNow = async (): Promise<Array<{ subject: string; current: boolean; expiresAt: string }>> => JSON.parse((await hoop(['profiles', '--json'], env)).stdout).profiles;
      const danaKept = (await listedNow())[0]!;
      expect(await logIn('erin')).toContain('kept:    dana at this gateway too');
      expect(await listedNow()).toEqual([danaKept, expect.objectContaining({ subject: 'erin', current: true })]);

      const typo = await hoop(['profiles', 'use', 'danna'], env);
      expect(typo.code).toBe(64);
      expect(typo.stderr).toContain('no profile "danna": did you mean "dana"?');

      const revoked = op.revocations.length;
      const out = await hoop(['logout'], env);
      expect(out.code, out.stderr).toBe(0);
      expect(out.stdout).toContain(`Logged out of ${gatewayUrl} as erin:`);
      expect(out.stdout).toContain(`Now current: dana at ${gatewayUrl}`);
      expect(op.revocations.slice(revoked)).toEqual([expect.objectContaining({ kind: 'RefreshToken', accountId: 'erin' })]);
      expect((await whoami()).subject).toBe('dana');
      const left = JSON.parse((await hoop(['profiles', '--json'], env)).stdout) as { profiles: Array<{ subject: string }> };
      expect(left.profiles.map((p) => p.subject)).toEqual(['dana']);
    } finally {
      op.lifetimes.accessToken = lifetime;
    }
  });

  it('printed no token', async () => {
    const files = [join(dir, 'conf-b'), join(dir, 'conf-d'), join(dir, 'conf-two')];
    const text = outputs.join('\n');
    for (const f of files) {
      const tokenDir = join(f, 'tokens');
      if (!existsSync(tokenDir)) continue;
      for (const name of await readdir(tokenDir)) {
        const { secrets } = JSON.parse(await readFile(join(tokenDir, name), 'utf8')) as { secrets: Record<string, string> };
        for (const key of ['accessToken', 'idToken', 'refreshToken']) if (secrets[key]) expect(text.includes(secrets[key])).toBe(false);
      }
    }
  });
});
