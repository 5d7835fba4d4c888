/**
 * The recipes of docs/deployment.md, as an operator follows them: for each identity provider,
 * `hoop gateway init --idp …` writes the configuration the page shows, a gateway starts on it, and
 * a token shaped as that provider issues it (its header, audience and claims; signed by a test
 * provider at the issuer URL, since the real ones are not reached) signs a person in with the
 * groups the recipe maps, who reads through the starter policy; that provider's ID token is
 * refused where the recipe takes access tokens. The CI recipes' workload rules map GitHub- and
 * GitLab-shaped tokens.
 */
import { chmodSync, chownSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { spawn, type ChildProcess } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { SignJWT, type JWTPayload } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { startOidc, type TestOidc } from '../harness/oidc.js';
import { freePort, startPgCluster, type PgCluster } from '../harness/postgres.js';
import { runProcess } from '../harness/clients.js';
import { TestBrowser } from '../harness/browser.js';
import { HOOP_BIN } from '../harness/hoop-process.js';
import { eventually } from '../harness/wait.js';
import { runCli } from '../harness/run-cli.js';
import { loadGatewayConfig, parseGatewayConfig } from '../../src/gateway/config/config.js';
import { startGateway, type Gateway } from '../../src/gateway/server.js';
import { TokenVerifier } from '../../src/gateway/identity/verify-token.js';
import { createLogger } from '../../src/log.js';
import { loadPolicyDir } from '../../src/policy/load.js';

const root = resolve(import.meta.dirname, '../..');
const doc = readFileSync(join(root, 'docs/deployment.md'), 'utf8');
const base = mkdtempSync(join(tmpdir(), 'hoop-e2e-deployment-'));
let op: TestOidc;
let pg: PgCluster;

/** The ```yaml block of docs/deployment.md whose first line is `first`. */
function docBlock(first: string): string {
  const block = [...doc.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1]!).find((b) => b.startsWith(first));
  if (!block) throw new Error(`docs/deployment.md has no yaml block starting with ${first}`);
  return block;
}

/** A token signed with the test provider's key, with `header` and `claims` as a provider shapes them. */
function shaped(claims: JWTPayload, header: Record<string, unknown> = { typ: 'JWT' }): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ iss: op.issuer, iat: now, exp: now + 600, ...claims }).setProtectedHeader({ alg: 'RS256', kid: op.signingKey.kid, ...header }).sign(op.signingKey.privateKey);
}

beforeAll(async () => {
  [op, pg] = await Promise.all([startOidc({ audience: 'hoop' }), startPgCluster()]);
  await pg.psql("create table orders (id int primary key, status text, note text); insert into orders values (1, 'paid', 'mail ada@acme.example')", { user: pg.users.scram });
});

/** Processes a test started (the development provider, a login on a terminal), killed at the end. */
const children: ChildProcess[] = [];

afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await Promise.all([op?.close(), pg?.stop()]);
  rmSync(base, { recursive: true, force: true });
});

interface Recipe {
  idp: string;
  /** The first line of the page's block for it. */
  block: string;
  flags: string[];
  /** The group `init` admits (the one the provider's token carries). */
  group: string;
  /** The person's token, as the provider issues it. */
  token: () => Promise<string>;
  /** Who the gateway takes them for. */
  who: { subject: string; groups: string[] };
  /** That provider's ID token, refused where the recipe takes access tokens (by its kind, or by its audience: the client's). */
  idToken?: () => Promise<string>;
  idRefused?: RegExp;
}

const ENTRA_CLIENT = '11111111-2222-3333-4444-555555555555';
const GOOGLE_CLIENT = '123456789012-abcdefghijklmnopqrstuvwxyz012345.apps.googleusercontent.com';

const recipes: Recipe[] = [
  {
    idp: 'keycloak',
    block: '# Keycloak',
    flags: [],
    group: 'dba',
    token: () =>
      shaped({ sub: 'f:7c9:dana', aud: ['hoop', 'account'], azp: 'hoop-cli', typ: 'Bearer', scope: 'openid email profile', groups: ['dba'], email: 'dana@acme.example', email_verified: true }),
    who: { subject: 'f:7c9:dana', groups: ['dba'] },
    idToken: () => shaped({ sub: 'f:7c9:dana', aud: 'hoop', azp: 'hoop-cli', typ: 'ID', nonce: 'n-0S6', groups: ['dba'] }),
  },
  {
    idp: 'entra',
    block: '# Microsoft Entra ID',
    flags: ['--client-id', ENTRA_CLIENT],
    group: 'dba',
    token: () =>
      shaped({
        sub: 'AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ',
        aud: ENTRA_CLIENT,
        ver: '2.0',
        scp: 'access_as_user',
        roles: ['dba'],
        preferred_username: 'dana@acme.example',
        oid: '00000000-0000-0000-66f3-3332eca7ea81',
      }),
    who: { subject: 'AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ', groups: ['dba'] },
    // Entra's ID token: typ JWT and, with one registration, the same audience; a nonce and no scp.
    idToken: () => shaped({ sub: 'AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ', aud: ENTRA_CLIENT, ver: '2.0', nonce: 'n-0S6', roles: ['dba'] }),
  },
  {
    idp: 'okta',
    block: '# Okta',
    flags: ['--client-id', '0oa1b2c3d4e5f6g7h8i9'],
    group: 'dba',
    token: () => shaped({ sub: 'dana@acme.example', aud: 'hoop', cid: '0oa1b2c3d4e5f6g7h8i9', scp: ['openid', 'email', 'offline_access'], groups: ['dba', 'Everyone'], uid: '00u1' }, {}),
    who: { subject: 'dana@acme.example', groups: ['dba', 'Everyone'] },
    idToken: () => shaped({ sub: '00u1', aud: '0oa1b2c3d4e5f6g7h8i9', nonce: 'n-0S6', email: 'dana@acme.example' }, {}),
    idRefused: /your token was issued for another audience/,
  },
  {
    idp: 'google',
    block: '# Google',
    flags: ['--client-id', GOOGLE_CLIENT, '--client-secret', 'GOCSPX-desktop-client-secret'],
    group: 'acme.example',
    token: () => shaped({ sub: '110169484474386276334', aud: GOOGLE_CLIENT, azp: GOOGLE_CLIENT, email: 'dana@acme.example', email_verified: true, hd: 'acme.example', nonce: 'n-0S6' }),
    who: { subject: '110169484474386276334', groups: ['acme.example'] },
  },
  {
    idp: 'generic',
    block: '',
    flags: [],
    group: 'dba',
    token: () => op.token({ subject: 'dana', groups: ['dba'] }),
    who: { subject: 'dana', groups: ['dba'] },
  },
];

describe('hoop gateway init, provider by provider, as docs/deployment.md says', () => {
  for (const r of recipes) {
    it(`${r.idp}: init writes the page's configuration; a gateway on it signs the provider's tokens in, the groups mapped, and serves the starter policy`, async () => {
      const dir = join(base, r.idp);
      const url = `https://127.0.0.1:${await freePort()}`;
      const connection = `prod-db=postgres://${pg.users.scram.user}@127.0.0.1:${pg.port}/app?sslmode=disable`;
      const init = await runCli(
        ['gateway', 'init', '--dir', dir, '--url', url, '--idp', r.idp, '--issuer', op.issuer, '--connection', connection, '--group', r.group, ...r.flags],
        { PATH: process.env.PATH },
        base,
      );
      expect(init.code, init.stderr).toBe(0);
      const written = parseYaml(readFileSync(join(dir, 'gateway.yaml'), 'utf8')) as { login: Record<string, unknown>; issuers: Array<Record<string, unknown>> };
      if (r.block) {
        // What init writes is the page's block, but for the addresses and ids of a real deployment.
        const shown = parseYaml(docBlock(r.block)) as { login: Record<string, unknown>; issuers: Array<Record<string, unknown>> };
        const same = (o: Record<string, unknown>): Record<string, unknown> =>
          Object.fromEntries(Object.entries(o).filter(([k]) => !['issuer', 'clientId', 'clientSecret', 'audience', 'scopes'].includes(k)));
        expect(same(written.login)).toEqual(same(shown.login));
        expect(same(written.issuers[0]!)).toEqual(same(shown.issuers[0]!));
        expect(Object.keys(written.login).sort()).toEqual(Object.keys(shown.login).sort());
      }
      const env = { HOOP_DB_PROD_DB_PASSWORD: pg.users.scram.password };
      const gateway: Gateway = await startGateway({
        config: await loadGatewayConfig(join(dir, 'gateway.yaml'), env),
        log: createLogger({ level: 'error', sink: { write: () => {} } }),
        env,
      });
      try {
        const cli = (token: string, argv: string[]) =>
          runCli([...argv, '--gateway', url, '--ca-file', join(dir, 'tls', 'ca.crt')], { PATH: process.env.PATH, HOOP_TOKEN: token, HOOP_CONFIG_DIR: join(dir, 'cli') }, dir);
        const token = await r.token();
        const who = await cli(token, ['whoami', '--json']);
        expect(who.code, who.stderr).toBe(0);
        expect(JSON.parse(who.stdout)).toMatchObject(r.who);
        const read = await cli(token, ['exec', 'prod-db', '--csv', '-c', 'select id, status, note from orders']);
        expect(read.stdout).toBe('id,status,note\n1,paid,mail [redacted]\n');
        const write = await cli(token, ['exec', 'prod-db', '-c', 'delete from orders']);
        expect(write.code).toBe(3); // read-only for the group
        if (r.idToken) {
          const refused = await cli(await r.idToken(), ['whoami']);
          expect(refused.code).not.toBe(0);
          expect(refused.stderr).toMatch(r.idRefused ?? /only access tokens, and this is an ID token/);
        }
      } finally {
        await gateway.close();
      }
    });
  }
});

describe("hoop gateway init's starter policy", () => {
  it('passes its own tests, each refusal by the rule it is meant to prove, and masks the common names of secrets and their variants', async () => {
    const dir = join(base, 'starter');
    const init = await runCli(
      ['gateway', 'init', '--dir', dir, '--url', 'https://127.0.0.1:8443', '--idp', 'dev', '--connection', 'prod-db=postgres://hoop_gateway@127.0.0.1:5432/app'],
      { PATH: process.env.PATH },
      base,
    );
    expect(init.code, init.stderr).toBe(0);
    const repoDir = join(dir, 'policy-repo');
    const tested = await runCli(['policy', 'test', '--offline', '--dir', repoDir], { PATH: process.env.PATH, HOME: base }, repoDir);
    expect(tested.code, tested.stdout + tested.stderr).toBe(0);
    expect(tested.stdout).toMatch(/✓ nobody drops tables \(admins neither\)/);
    const policy = await loadPolicyDir(repoDir);
    expect(policy.tests.filter((t) => t.expect === 'deny' && t.as.subject !== 'stranger').every((t) => t.rule !== undefined)).toBe(true);
    const names = policy.masking.names;
    const masked = (column: string): boolean => names.some((n) => n.regex.test(column));
    for (const column of [
      'password',
      'password_hash',
      'user_password',
      'passwd',
      'pwd',
      'api_key',
      'apiKey',
      'auth_token',
      'refresh_token',
      'secret_key',
      'client_secret',
      'private_key',
      'access_key',
      'credentials',
      'salt',
    ])
      expect(masked(column), column).toBe(true);
    for (const column of ['id', 'name', 'email_verified', 'status', 'created_at']) expect(masked(column), column).toBe(false);
  });
});

describe('hoop gateway init --idp dev: a real gateway tried on one machine', () => {
  it('the page shows init --idp dev and the provider; without --issuer the gateway trusts the provider at its default place', async () => {
    const page = readFileSync(join(root, 'docs/deployment.md'), 'utf8');
    const shown = /```sh\n(hoop gateway init --url \S+ --idp dev --dir (\S+) [^\n]*)\nhoop gateway dev-idp --users (\S+)\/dev-users\.yaml\n```/.exec(page);
    expect(shown, 'the block of "A development identity provider"').not.toBeNull();
    expect(shown![3]).toBe(shown![2]);
    const dir = join(base, 'dev-default');
    const init = await runCli(['gateway', 'init', '--dir', dir, '--url', 'https://127.0.0.1:8443', '--idp', 'dev'], { PATH: process.env.PATH }, base);
    expect(init.code, init.stderr).toBe(0);
    const written = parseYaml(readFileSync(join(dir, 'gateway.yaml'), 'utf8')) as { login: { issuer: string }; issuers: Array<{ issuer: string }> };
    expect([written.login.issuer, written.issuers[0]!.issuer]).toEqual(['http://127.0.0.1:9000', 'http://127.0.0.1:9000']);
    // A trial on a loopback URL listens there, not on every interface; a host name's, on every one; --listen says otherwise.
    expect((written as unknown as { listen: string }).listen).toBe('127.0.0.1:8443');
    const listens = async (url: string, more: string[] = []): Promise<string> => {
      const at = join(base, `listen-${Math.random().toString(36).slice(2)}`);
      const r = await runCli(['gateway', 'init', '--dir', at, '--url', url, '--idp', 'dev', ...more], { PATH: process.env.PATH }, base);
      expect(r.code, r.stderr).toBe(0);
      return (parseYaml(readFileSync(join(at, 'gateway.yaml'), 'utf8')) as { listen: string }).listen;
    };
    expect(await listens('https://localhost:9443')).toBe('127.0.0.1:9443');
    expect(await listens('https://[::1]:9443')).toBe('[::1]:9443');
    expect(await listens('https://hoop.acme.example')).toBe('0.0.0.0:443');
    expect(await listens('https://127.0.0.1:9443', ['--listen', '0.0.0.0:9443'])).toBe('0.0.0.0:9443');
    expect((await runCli(['gateway', 'init', '--dir', join(base, 'listen-bad'), '--url', 'https://127.0.0.1:1', '--idp', 'dev', '--listen', 'nowhere'], { PATH: process.env.PATH }, base)).code).toBe(
      64,
    );
    expect(init.stdout).toContain(`hoop gateway dev-idp --users ${join(dir, 'dev-users.yaml')} --port 9000`);
    // --json: what it wrote, and the same next steps.
    const json = await runCli(['gateway', 'init', '--dir', join(base, 'dev-json'), '--url', 'https://127.0.0.1:8443', '--idp', 'dev', '--json'], { PATH: process.env.PATH }, base);
    const said = JSON.parse(json.stdout) as { config: string; devUsers: { file: string; user: string; password: string }; next: string[] };
    expect(said.config).toBe(join(base, 'dev-json', 'gateway.yaml'));
    expect(said.devUsers).toMatchObject({ file: join(base, 'dev-json', 'dev-users.yaml'), user: 'admin' });
    expect(said.next).toContain(`  hoop gateway dev-idp --users ${said.devUsers.file} --port 9000`);
  });

  it('writes a users file and says its password once; the development provider signs that person in with it (and not without), and the gateway serves them', async () => {
    const dir = join(base, 'dev');
    const url = `https://127.0.0.1:${await freePort()}`;
    const idpPort = await freePort();
    const connection = `prod-db=postgres://${pg.users.scram.user}@127.0.0.1:${pg.port}/app?sslmode=disable`;
    const init = await runCli(
      ['gateway', 'init', '--dir', dir, '--url', url, '--idp', 'dev', '--issuer', `http://127.0.0.1:${idpPort}`, '--connection', connection, '--group', 'dba'],
      { PATH: process.env.PATH },
      base,
    );
    expect(init.code, init.stderr).toBe(0);
    const password = /\(password: (\S+), said only here\)/.exec(init.stdout)?.[1];
    expect(password, init.stdout).toBeDefined();
    expect(readFileSync(join(dir, 'dev-users.yaml'), 'utf8')).not.toContain(password!);
    expect(lstatSync(join(dir, 'dev-users.yaml')).mode & 0o777).toBe(0o600);
    const start = /^ {2}(hoop gateway dev-idp --users \S+ --port \d+)$/m.exec(init.stdout)?.[1];
    expect(start).toBe(`hoop gateway dev-idp --users ${join(dir, 'dev-users.yaml')} --port ${idpPort}`);

    // The provider, as init said to start it.
    const idp = spawn(process.execPath, [HOOP_BIN, ...start!.split(' ').slice(1)], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(idp);
    let said = '';
    idp.stderr!.on('data', (b: Buffer) => (said += b.toString()));
    await eventually(() => expect(said).toContain(`development identity provider at http://127.0.0.1:${idpPort} (1 user: admin)`), { timeout: 60_000, interval: 50 });
    const env = { HOOP_DB_PROD_DB_PASSWORD: pg.users.scram.password };
    const gateway = await startGateway({ config: await loadGatewayConfig(join(dir, 'gateway.yaml'), env), log: createLogger({ level: 'error', sink: { write: () => {} } }), env });
    try {
      // hoop login on a terminal, the URL opened by hand in a browser that types the name and password.
      const cli = { PATH: process.env.PATH, HOME: dir, HOOP_CONFIG_DIR: join(dir, 'cli'), HOOP_TOKEN_STORE: 'file' };
      const ca = join(dir, 'tls', 'ca.crt');
      const login = spawn('script', ['-qefc', `${process.execPath} ${HOOP_BIN} login --gateway ${url} --ca-file ${ca} --no-browser`, '/dev/null'], { env: cli, stdio: ['pipe', 'pipe', 'pipe'] });
      children.push(login);
      let out = '';
      login.stdout!.on('data', (b: Buffer) => (out += b.toString()));
      const authUrl = await eventually(
        () => {
          const found = /(http:\/\/127\.0\.0\.1:\d+\/auth\?\S+)/.exec(out)?.[1];
          expect(found, out).toBeDefined();
          return found!;
        },
        { timeout: 60_000, interval: 50 },
      );
      await expect(new TestBrowser().authorize(authUrl, 'admin', { password: 'not-it' })).rejects.toThrow(/Wrong name or password/);
      expect((await new TestBrowser().authorize(authUrl, 'admin', { password: password! })).status).toBe(200);
      expect(await new Promise((r) => (login.exitCode !== null ? r(login.exitCode) : login.on('exit', r)))).toBe(0);
      const who = await runCli(['whoami', '--json'], cli, dir);
      expect(who.code, who.stderr).toBe(0);
      expect(JSON.parse(who.stdout)).toMatchObject({ subject: 'admin', groups: ['dba'] });
      const read = await runCli(['exec', 'prod-db', '--csv', '-c', 'select id, status from orders'], cli, dir);
      expect(read.stdout, read.stderr).toBe('id,status\n1,paid\n');
    } finally {
      await gateway.close();
      idp.kill('SIGINT');
    }
  });
});

describe('hoop gateway init, given awkward input', () => {
  it('writes every value as the string it was given (a group true, a user yes, a database null), and the starter policy says so', async () => {
    const dir = join(base, 'awkward');
    const init = await runCli(
      ['gateway', 'init', '--dir', dir, '--url', 'https://127.0.0.1:8443', '--issuer', op.issuer, '--group', 'true', '--audience', '1e3', '--connection', 'null=postgres://yes@127.0.0.1/null'],
      { PATH: process.env.PATH },
      base,
    );
    expect(init.code, init.stderr).toBe(0);
    const config = parseYaml(readFileSync(join(dir, 'gateway.yaml'), 'utf8')) as { issuers: Array<{ audience: unknown }> };
    expect(config.issuers[0]!.audience).toBe('1e3');
    const policy = await loadPolicyDir(join(dir, 'policy-repo'));
    expect(policy.connections[0]).toMatchObject({ name: 'null', user: 'yes', database: 'null' });
    expect(policy.access[0]!.groups).toEqual(['true']);
  });

  it("checks the database's certificate unless told otherwise, and warns of a plain-http issuer and a connection whose TLS would not notice a server in the middle", async () => {
    const init = (name: string, connection: string, issuer = op.issuer) =>
      runCli(['gateway', 'init', '--dir', join(base, name), '--url', 'https://127.0.0.1:8443', '--issuer', issuer, '--connection', connection], { PATH: process.env.PATH }, base);
    const modeOf = async (name: string) => ((await loadPolicyDir(join(base, name, 'policy-repo'))).connections[0] as { tls?: unknown }).tls;
    const remote = await init('tls-default', 'prod-db=postgres://hoop@db.internal/app');
    expect(remote.code, remote.stderr).toBe(0);
    expect(await modeOf('tls-default')).toMatchObject({ mode: 'verify-full' });
    expect(remote.stderr).not.toContain("prod-db's TLS");
    const weak = await init('tls-require', 'prod-db=postgres://hoop@db.internal/app?sslmode=require');
    expect(weak.stderr).toContain("hoop: warning: prod-db's TLS is require: the gateway would not notice a server in the middle");
    const local = await init('tls-local', 'local=postgres://hoop@127.0.0.1/app');
    expect(await modeOf('tls-local')).toMatchObject({ mode: 'prefer' });
    expect(local.stderr).not.toContain('TLS is');
    // The test's provider is http on loopback: said once, as what it is.
    expect(op.issuer.startsWith('http://')).toBe(true);
    expect(local.stderr.match(/plain http/g)).toHaveLength(1);
  });

  it('with --force, replaces a file planted as a link to another instead of writing through it', async () => {
    const dir = join(base, 'forced');
    const victim = join(base, 'victim.txt');
    writeFileSync(victim, 'keep me');
    mkdirSync(join(dir, 'tls'), { recursive: true });
    symlinkSync(victim, join(dir, 'gateway.yaml'));
    symlinkSync(victim, join(dir, 'tls', 'gateway.key'));
    const args = ['gateway', 'init', '--dir', dir, '--url', 'https://127.0.0.1:8443', '--issuer', op.issuer, '--policy-repo', 'https://git.example/acme/policy.git'];
    const refused = await runCli(args, { PATH: process.env.PATH }, base);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain('gateway.yaml exists');
    const forced = await runCli([...args, '--force'], { PATH: process.env.PATH }, base);
    expect(forced.code, forced.stderr).toBe(0);
    expect(readFileSync(victim, 'utf8')).toBe('keep me');
    for (const f of ['gateway.yaml', 'tls/gateway.key']) {
      expect(lstatSync(join(dir, f)).isFile()).toBe(true);
      expect(lstatSync(join(dir, f)).mode & 0o777).toBe(0o600);
    }
  });

  it('writes its keys, data and policy repo through no directory it did not make: a link planted at tls/, data/ or policy-repo/ is refused, naming it', async () => {
    const elsewhere = join(base, 'elsewhere');
    mkdirSync(elsewhere);
    for (const name of ['tls', 'data', 'policy-repo']) {
      const dir = join(base, `planted-${name}`);
      mkdirSync(dir);
      symlinkSync(elsewhere, join(dir, name));
      const r = await runCli(['gateway', 'init', '--dir', dir, '--url', 'https://127.0.0.1:8443', '--issuer', op.issuer, '--force'], { PATH: process.env.PATH }, base);
      expect(r.code, name).not.toBe(0);
      expect(r.stderr).toContain(`hoop will not use ${join(dir, name)}: it is a symbolic link, not a directory of its own`);
    }
    expect(readdirSync(elsewhere)).toEqual([]);
    // A --dir others may write to, or a policy-repo/ of another user's: another could replace what init writes.
    const open = join(base, 'open-dir');
    mkdirSync(open);
    chmodSync(open, 0o777);
    const shared = await runCli(['gateway', 'init', '--dir', open, '--url', 'https://127.0.0.1:8443', '--issuer', op.issuer], { PATH: process.env.PATH }, base);
    expect(shared.code).not.toBe(0);
    expect(shared.stderr).toContain(`hoop will not write the gateway's keys and policy in ${open}: others may write to it (mode 777)`);
    if (process.getuid?.() === 0) {
      const theirs = join(base, 'theirs');
      mkdirSync(join(theirs, 'policy-repo'), { recursive: true });
      chownSync(join(theirs, 'policy-repo'), 65534, 65534);
      const r = await runCli(['gateway', 'init', '--dir', theirs, '--url', 'https://127.0.0.1:8443', '--issuer', op.issuer], { PATH: process.env.PATH }, base);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toContain(`hoop will not use ${join(theirs, 'policy-repo')}: it belongs to another user (uid 65534)`);
      expect(readdirSync(join(theirs, 'policy-repo'))).toEqual([]);
    }
  });

  it('starts only on files no other user could replace, as sshd’s StrictModes: a data directory others may write, its recordings or keys a link, a TLS key others may write', async () => {
    const dir = join(base, 'strict');
    const init = await runCli(['gateway', 'init', '--dir', dir, '--url', `https://127.0.0.1:${await freePort()}`, '--issuer', op.issuer], { PATH: process.env.PATH }, base);
    expect(init.code, init.stderr).toBe(0);
    const data = join(dir, 'data');
    const start = (): ReturnType<typeof runCli> => runCli(['gateway', '--config', join(dir, 'gateway.yaml')], { PATH: process.env.PATH }, base);
    const refused = async (path: string, why: string, fix: string): Promise<void> => {
      const r = await start();
      expect(r.code, r.stderr).toBe(78);
      expect(r.stderr).toContain(`the gateway will not trust ${path}: ${why}`);
      expect(r.stderr).toContain(fix);
    };
    chmodSync(data, 0o777);
    await refused(data, 'other users may write to it (mode 777)', `chmod go-w ${data}`);
    chmodSync(data, 0o700);
    const elsewhere = join(base, 'strict-elsewhere');
    mkdirSync(elsewhere, { mode: 0o700 });
    symlinkSync(elsewhere, join(data, 'keys'));
    await refused(join(data, 'keys'), 'it is a symbolic link', `make ${join(data, 'keys')} the gateway's own`);
    rmSync(join(data, 'keys'));
    chmodSync(join(dir, 'tls', 'gateway.key'), 0o666);
    await refused(join(dir, 'tls', 'gateway.key'), 'other users may write to it', `chmod go-w ${join(dir, 'tls', 'gateway.key')}`);
  });
});

describe('CI jobs: the workload rules of docs/deployment.md', () => {
  /** The page's issuer block for `first`, with the test provider in the platform's place. */
  async function verifierOf(first: string, platformIssuer: string): Promise<TokenVerifier> {
    const block = docBlock(first).replace(platformIssuer, op.issuer);
    const config = await parseGatewayConfig(`listen: 127.0.0.1:0\n${block}`, join(base, 'ci.yaml'), {});
    return new TokenVerifier(config.issuers);
  }

  it('GitHub Actions: a run of acme/api on main in production is ci:acme/api in deployers; another branch matches no rule', async () => {
    const verifier = await verifierOf('# GitHub Actions', 'https://token.actions.githubusercontent.com');
    const claims = {
      aud: 'hoop',
      sub: 'repo:acme/api:environment:production',
      repository: 'acme/api',
      repository_owner: 'acme',
      ref: 'refs/heads/main',
      ref_type: 'branch',
      environment: 'production',
      job_workflow_ref: 'acme/api/.github/workflows/deploy.yml@refs/heads/main',
    };
    expect(await verifier.verify(await shaped(claims))).toMatchObject({ subject: 'ci:acme/api', kind: 'workload', groups: ['deployers'] });
    await expect(verifier.verify(await shaped({ ...claims, ref: 'refs/heads/feature' }))).rejects.toMatchObject({ reason: 'no-matching-rule' });
  });

  it('GitLab CI: a protected main of acme/api is ci:acme/api in deployers; an unprotected ref matches no rule', async () => {
    const verifier = await verifierOf('# GitLab CI: the workload issuer', 'https://gitlab.com');
    const claims = {
      aud: 'hoop',
      sub: 'project_path:acme/api:ref_type:branch:ref:main',
      project_path: 'acme/api',
      namespace_path: 'acme',
      ref: 'main',
      ref_type: 'branch',
      ref_protected: 'true',
      pipeline_source: 'push',
      user_login: 'dana',
    };
    expect(await verifier.verify(await shaped(claims))).toMatchObject({ subject: 'ci:acme/api', kind: 'workload', groups: ['deployers'] });
    await expect(verifier.verify(await shaped({ ...claims, ref_protected: 'false' }))).rejects.toMatchObject({ reason: 'no-matching-rule' });
    // The job's token reaches hoop login in HOOP_ID_TOKEN, as the page's .gitlab-ci.yml names it.
    expect(parseYaml(docBlock('# .gitlab-ci.yml'))).toMatchObject({ migrate: { id_tokens: { HOOP_ID_TOKEN: { aud: 'hoop' } } } });
  });
});

describe('the gateway as a service', () => {
  it('the systemd unit (deploy/, shown whole in docs/deployment.md) passes systemd-analyze verify, and its exposure is rated OK', async () => {
    const unit = readFileSync(join(root, 'deploy/systemd/hoop-gateway.service'), 'utf8');
    expect(readFileSync(join(root, 'docs/deployment.md'), 'utf8')).toContain(`\`\`\`ini\n${unit}\`\`\``);
    // Where npm install -g puts hoop on this machine: this checkout's, so verify finds the program it starts.
    const dir = mkdtempSync(join(base, 'systemd-'));
    const file = join(dir, 'hoop-gateway.service');
    // The unit names no directory (npm puts hoop in /usr/bin with Debian's Node, /usr/local/bin with nodejs.org's): systemd's search path finds it.
    expect(unit).toMatch(/^ExecStart=hoop gateway /m);
    writeFileSync(file, unit.replace('ExecStart=hoop ', `ExecStart=${join(root, 'bin/hoop.js')} `));
    const verify = await runProcess('systemd-analyze', ['verify', '--man=no', file]);
    expect(verify.stderr).toBe('');
    expect(verify.code).toBe(0);
    const security = await runProcess('systemd-analyze', ['security', '--offline=yes', '--no-pager', file]);
    expect(security.stdout + security.stderr).toMatch(/Overall exposure level for hoop-gateway\.service: [0-3]\.\d OK/);
    const dockerfile = readFileSync(join(root, 'deploy/container/Dockerfile'), 'utf8');
    expect(readFileSync(join(root, 'docs/deployment.md'), 'utf8')).toContain(`\`\`\`dockerfile\n${dockerfile}\`\`\``);
  });
});
