/**
 * The gateway with its policy from a config repo: a real git repository made here, the bundle's
 * connections pointing at the stack's PostgreSQL, access by the bundle's rules (deny by default),
 * statements judged through psql, the commit announced in the tunnel's 101 and at /v1/policy, a
 * pulled commit applied to new sessions only, an invalid commit refused, the session limit; and
 * `policy.allowedSecrets`: validated in the gateway configuration, no start on a bundle using a
 * secret it does not admit (none by default), exact entries and globs, `..` never escaping a glob.
 */
import { rmSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCode, HoopError } from '../../src/errors.js';
import { parseGatewayConfig } from '../../src/gateway/config/config.js';
import { startGateway } from '../../src/gateway/server.js';
import { silentLogger } from '../../src/log.js';
import { openTunnel, TunnelRefusedError } from '../../src/tunnel/transport.js';
import { pgClient, psql } from '../harness/clients.js';
import { PolicyGitRepo } from '../harness/policy-git.js';
import { connectionYaml, type PgCluster } from '../harness/postgres.js';
import { HeldClock } from '../harness/held-clock.js';
import { startStack, type HoopStack, type RunningConnect } from '../harness/stack.js';
import { eventually } from '../harness/wait.js';

let base: string;
let policyRepo: PolicyGitRepo;
let stack: HoopStack;
let first: string;
const running: RunningConnect[] = [];

const commit = (text: string): string => policyRepo.commit(text);

const bundle = (pg: PgCluster, extraRules = ''): string => `version: 1
connections:
${connectionYaml(pg, { name: 'app', password: '${env:APP_PASSWORD}' })}access:
  - { name: writers, subjects: [alice], connections: [app], mode: read-write }
  - { name: readers, subjects: [rita], connections: [app], mode: read-only }
  - { name: short, subjects: [sam], connections: [app], mode: read-write, maxSessionSeconds: 60 }
statements:
  rules:
    - name: no-secrets
      match: { tables: [public.secrets] }
      action: deny
      message: the secrets table is off limits
${extraRules}`;

async function get(path: string, token: string): Promise<{ status: number; body: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request(`${stack.gateway.url}${path}`, { ca: stack.pki.ca, headers: { Authorization: `Bearer ${token}` } }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(body) as Record<string, unknown> }));
    });
    req.on('error', reject);
    req.end();
  });
}

async function connect(subject: string): Promise<RunningConnect> {
  const c = await stack.connect('app', await stack.token(subject));
  running.push(c);
  return c;
}

/** Sessions' maximum lengths, up when a test fires them. */
const limits = new HeldClock();

beforeAll(async () => {
  policyRepo = new PolicyGitRepo('hoop-gw-policy-');
  ({ base } = policyRepo);
  stack = await startStack({
    gateway: { clock: limits },
    policy: ({ pg }) => {
      first = commit(bundle(pg));
      return policyRepo.gatewayBlock(['${env:APP_*}']);
    },
  });
  await stack.pg.psql(
    `create table notes(id serial primary key, body text);
     create table secrets(id int, value text);
     insert into notes(body) values ('hello');
     grant all on notes, notes_id_seq, secrets to public`,
    { database: 'app' },
  );
});

afterAll(async () => {
  for (const c of running) await c.stop();
  await stack?.close();
  if (base) rmSync(base, { recursive: true, force: true });
});

describe('the gateway with a policy repo', () => {
  it('announces the commit in the 101 and at /v1/policy, and lists what access admits', async () => {
    const alice = await stack.token('alice');
    const { channel, policyCommit } = await openTunnel({ gateway: stack.gateway.url, connection: 'app', token: alice, sessionId: 'policy-header-1', clientVersion: 'test', ca: stack.pki.ca });
    channel.destroy();
    expect(policyCommit).toBe(first);
    const policy = await get('/v1/policy', alice);
    expect(policy.status).toBe(200);
    expect(policy.body.commit).toBe(first);
    expect(Number.isNaN(Date.parse(String(policy.body.loadedAt)))).toBe(false);
    expect((await get('/v1/connections', alice)).body.connections).toEqual([{ name: 'app', type: 'postgres', database: 'app', mode: 'read-write', clientRecords: true }]);
    expect((await get('/v1/connections', await stack.token('rita'))).body.connections).toEqual([{ name: 'app', type: 'postgres', database: 'app', mode: 'read-only', clientRecords: true }]);
    expect((await get('/v1/connections', await stack.token('mallory'))).body.connections).toEqual([]);
    expect((await get('/v1/connections/app', await stack.token('mallory'))).status).toBe(403);
    expect((await get('/v1/policy', 'not-a-token')).status).toBe(401);
    expect(stack.logs().some((l) => l.event === 'policy.applied' && l.commit === first)).toBe(true);
  });

  it('refuses an identity no access rule admits (403; hoop connect says so)', async () => {
    const token = await stack.token('mallory');
    const refused = await openTunnel({ gateway: stack.gateway.url, connection: 'app', token, sessionId: 'policy-refused-1', clientVersion: 'test', ca: stack.pki.ca }).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(refused).toBeInstanceOf(TunnelRefusedError);
    expect((refused as TunnelRefusedError).status).toBe(403);
    await expect(connect('mallory')).rejects.toThrow(/mallory may not use the connection "app"/);
  });

  it('judges statements: a deny rule, and read-only access refusing an INSERT', async () => {
    const alice = await connect('alice');
    const denied = await psql(alice.info, ['-c', 'select * from secrets']);
    expect(denied.code).not.toBe(0);
    expect(denied.stderr).toContain('hoop: denied by rule "no-secrets": the secrets table is off limits');
    expect((await psql(alice.info, ['-At', '-c', 'select body from notes order by id limit 1'])).stdout.trim()).toBe('hello');

    const rita = await connect('rita');
    const insert = await psql(rita.info, ['-c', "insert into notes(body) values ('nope')"]);
    expect(insert.code).not.toBe(0);
    expect(insert.stderr).toContain('denied by rule "read-only-access"');
    expect((await psql(rita.info, ['-At', '-c', 'show default_transaction_read_only'])).stdout.trim()).toBe('on');
  });

  it('ends a session at its maximum length', async () => {
    const sam = await connect('sam');
    const sleeping = psql(sam.info, ['-c', 'select pg_sleep(10)']);
    // Up once the statement runs: sam's session (1 minute) ends when the test fires its timer.
    await eventually(() => expect(limits.fire(60_000)).toBe(1), { timeout: 60_000 });
    const r = await sleeping;
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('hoop: this session reached its maximum length of 1 minute');
    expect(stack.logs().some((l) => l.event === 'tunnel.close' && l.subject === 'sam' && l.reason === 'session-limit')).toBe(true);
  });

  it('applies a pulled commit to new sessions only, and refuses an invalid one', async () => {
    const alice = await connect('alice');
    const open = await pgClient(alice.info);
    try {
      await open.query('select 1');
      const second = commit(bundle(stack.pg, `    - name: no-notes\n      match: { tables: [notes] }\n      action: deny\n      message: notes are closed\n`));
      expect(await stack.gateway.policy!.refresh()).toMatchObject({ changed: true, commit: second });
      expect(stack.logs().some((l) => l.event === 'policy.applied' && l.commit === second && l.previous === first)).toBe(true);
      expect((await get('/v1/policy', await stack.token('alice'))).body.commit).toBe(second);

      // The session opened before keeps the commit it started with.
      expect((await open.query('select body from notes order by id limit 1')).rows).toEqual([{ body: 'hello' }]);
      const fresh = await psql(alice.info, ['-c', 'select body from notes']);
      expect(fresh.stderr).toContain('hoop: denied by rule "no-notes": notes are closed');

      const bad = commit('version: 1\naccess:\n  - { name: team, connections: [app], mode: sometimes }\n');
      const refused = await stack.gateway.policy!.refresh();
      expect(refused).toMatchObject({ changed: false, commit: second, candidate: bad });
      expect(refused.error).toContain('mode');
      expect((await get('/v1/policy', await stack.token('alice'))).body.commit).toBe(second);
      const still = await psql(alice.info, ['-c', 'select body from notes']);
      expect(still.stderr).toContain('denied by rule "no-notes"');
    } finally {
      await open.end();
    }
  });
});

describe('gateway configuration with policy', () => {
  const header = `listen: 127.0.0.1:0\nissuers:\n  - { issuer: "http://127.0.0.1:1", audience: hoop }\n`;

  it('rejects a configuration that lists connections as well as a policy repo, naming both', async () => {
    const text = `${header}policy: { repo: ./policy }\nconnections:\n  - { name: a, type: postgres, host: h, database: d, user: u, password: "\${env:X}" }\n`;
    const err = await parseGatewayConfig(text, join(base, 'both.yaml'), { X: 'x' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HoopError);
    expect((err as HoopError).code).toBe(ErrorCode.CONFIG_INVALID);
    expect((err as HoopError).message).toMatch(/both\.yaml:5:1: connections: cannot be given together with policy/);
  });

  it('reads the policy block with defaults, and locates its errors', async () => {
    const ok = await parseGatewayConfig(`${header}policy: { repo: ./policy }\n`, join(base, 'ok.yaml'), {});
    expect(ok.policy).toEqual({ repo: join(base, 'policy'), ref: 'main', allowedSecrets: [], allowedCommands: [], pullIntervalSeconds: 60, workDir: join(base, 'hoop-data', 'policy') });
    expect(ok.connections).toEqual([]);
    const url = await parseGatewayConfig(`${header}policy: { repo: "https://git.example.com/p.git", ref: v1, pullIntervalSeconds: 5 }\n`, join(base, 'url.yaml'), {});
    expect(url.policy).toMatchObject({ repo: 'https://git.example.com/p.git', ref: 'v1', pullIntervalSeconds: 5 });
    const bad = (await parseGatewayConfig(`${header}policy:\n  repo: ./p\n  pullIntervalSeconds: 0\n  reff: main\n  allowedSigners: ./missing\n`, join(base, 'bad.yaml'), {}).catch(
      (e: unknown) => e,
    )) as HoopError;
    expect(bad.message).toContain('bad.yaml:6:24: policy.pullIntervalSeconds: must be from 1 to 86400');
    expect(bad.message).toContain('bad.yaml:7:3: policy.reff: unknown key (did you mean "ref"?)');
    expect(bad.message).toMatch(/bad\.yaml:8:19: policy\.allowedSigners: cannot read .*missing: no such file/);
  });

  it('validates policy.allowedSecrets, locating each malformed entry', async () => {
    const entries = [
      '"${env:DB_*}"',
      '" ${file:/run/secrets/hoop/*} "',
      'plain',
      '"${env:*}"',
      '"${env:1X}"',
      '"${file:secrets/*}"',
      '"${file:/run/secrets/hoop/../x}"',
      '"${file:/run/secrets/**}"',
      '"${file:/run/secrets/}"',
      '42',
    ];
    const text = `${header}policy:\n  repo: ./p\n  allowedSecrets:\n${entries.map((e) => `    - ${e}\n`).join('')}`;
    const err = (await parseGatewayConfig(text, join(base, 'secrets.yaml'), {}).catch((e: unknown) => e)) as HoopError;
    expect(err).toBeInstanceOf(HoopError);
    expect(err.code).toBe(ErrorCode.CONFIG_INVALID);
    const at = (i: number): string => `${join(base, 'secrets.yaml')}:${7 + i}:7: policy.allowedSecrets.${i}:`;
    const reference = 'must be a secret reference or a glob of them, like "${env:PROD_DB_*}" or "${file:/run/secrets/hoop/*}"';
    const normalised = 'the path must be normalised: no empty, "." or ".." segments and no trailing /';
    expect(err.message).toBe(
      [
        'invalid gateway configuration (8 problems):',
        `${at(2)} ${reference}`,
        `${at(3)} would admit every variable of the gateway's environment; name them, e.g. \${env:PROD_DB_*}`,
        `${at(4)} \${env:...} takes a variable name of letters, digits and _ (not starting with a digit), with * for any run of them`,
        `${at(5)} \${file:...} takes an absolute path on the gateway host, e.g. \${file:/run/secrets/hoop/*}`,
        `${at(6)} ${normalised}`,
        `${at(7)} ** is not supported: * matches within one path segment (list each directory)`,
        `${at(8)} ${normalised}`,
        `${at(9)} ${reference}`,
      ].join('\n  '),
    );
    const ok = await parseGatewayConfig(
      `${header}policy:\n  repo: ./p\n  allowedSecrets:\n${entries
        .slice(0, 2)
        .map((e) => `    - ${e}\n`)
        .join('')}`,
      join(base, 'ok-secrets.yaml'),
      {},
    );
    expect(ok.policy!.allowedSecrets).toEqual(['${env:DB_*}', '${file:/run/secrets/hoop/*}']);
  });

  it('refuses to start on a bundle using a secret policy.allowedSecrets does not admit (none by default); starts with an exact entry or a glob', async () => {
    const secretsRepo = new PolicyGitRepo('hoop-gw-policy-secrets-');
    try {
      const text =
        'version: 1\nconnections:\n  - { name: db, type: postgres, host: 127.0.0.1, database: d, user: u, password: "${env:DB_PASSWORD}" }\naccess:\n  - { name: team, subjects: [alice], connections: [db] }\n';
      const env = { ...process.env, DB_PASSWORD: 'x' };
      const start = async (name: string, allowed?: string) => {
        const allowList = allowed === undefined ? '' : `  allowedSecrets: [${allowed}]\n`;
        const config = await parseGatewayConfig(`${header}dataDir: ./${name}\npolicy:\n  repo: ${secretsRepo.dir}\n${allowList}`, join(secretsRepo.base, `${name}.yaml`), env);
        return startGateway({ config, log: silentLogger, env, insecureDevHttp: true });
      };
      const refused = async (name: string, allowed?: string): Promise<HoopError> => {
        const err = (await start(name, allowed).catch((e: unknown) => e)) as HoopError;
        expect(err).toBeInstanceOf(HoopError);
        expect(err.code).toBe(ErrorCode.CONFIG_INVALID);
        return err;
      };
      const notAllowed = (written: string, canonical = written): string =>
        `hoop.yaml:3:82: connections.0.password: ${written}${written === canonical ? '' : ` (that is ${canonical})`} is not allowed by the gateway's policy.allowedSecrets; add "${canonical}" (or a glob) there`;

      const sha = secretsRepo.commit(text);
      const none = await refused('none');
      expect(none.message).toBe(
        `the gateway cannot start without a policy: no acceptable policy at main of ${secretsRepo.dir}: commit ${sha.slice(0, 12)} has an invalid policy:\n  ${notAllowed('${env:DB_PASSWORD}')}`,
      );
      expect(none.hint).toContain('the allowed secrets');
      expect((await refused('other', '"${env:DB_PASSWORD_OLD}", "${env:DB}", "${file:/run/secrets/DB_PASSWORD}"')).message).toContain(notAllowed('${env:DB_PASSWORD}'));
      for (const [name, allowed] of [
        ['exact', '"${env:OTHER}", "${env:DB_PASSWORD}"'],
        ['glob', '"${env:DB_*}"'],
      ] as const) {
        const gateway = await start(name, allowed);
        expect(gateway.policy!.current().commit).toBe(sha);
        await gateway.close();
      }

      // `..` is resolved before matching: the reference means /etc/passwd, outside /run/secrets/hoop/*.
      const escape = secretsRepo.commit(text.replace('${env:DB_PASSWORD}', '${file:/run/secrets/hoop/../../../etc/passwd}'));
      expect((await refused('escape', '"${file:/run/secrets/hoop/*}"')).message).toBe(
        `the gateway cannot start without a policy: no acceptable policy at main of ${secretsRepo.dir}: commit ${escape.slice(0, 12)} has an invalid policy:\n  ${notAllowed('${file:/run/secrets/hoop/../../../etc/passwd}', '${file:/etc/passwd}')}`,
      );
      const etc = await start('etc', '"${file:/etc/*}"');
      expect((etc.policy!.current().policy.connections[0] as { password?: unknown }).password).toEqual({ kind: 'file', path: '/etc/passwd' });
      await etc.close();
    } finally {
      secretsRepo.remove();
    }
  });

  it('refuses to start when no valid commit can be loaded', async () => {
    const brokenRepo = new PolicyGitRepo('hoop-gw-policy-broken-');
    brokenRepo.commit('version: 1\nnonsense: true\n');
    const config = await parseGatewayConfig(`${header}dataDir: ./broken-data\npolicy: { repo: ${brokenRepo.dir} }\n`, join(base, 'broken.yaml'), {});
    const err = (await startGateway({ config, log: silentLogger, insecureDevHttp: true }).catch((e: unknown) => e)) as HoopError;
    expect(err).toBeInstanceOf(HoopError);
    expect(err.code).toBe(ErrorCode.CONFIG_INVALID);
    expect(err.message).toMatch(/^the gateway cannot start without a policy: no acceptable policy at main of .*: .*nonsense/s);
    expect(err.message).toContain(brokenRepo.dir);
    brokenRepo.remove();
  });
});
