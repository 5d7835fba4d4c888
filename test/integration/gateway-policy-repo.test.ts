/**
 * The gateway's config repo end to end, with a real PostgreSQL and `hoop connect` + pg: a
 * connection of the bundle whose password is a `${file:/abs/path}` reference (resolved per
 * session, rotated without a restart, a missing file failing only that connection and never
 * showing a secret), `policy.allowedSigners` (unsigned or foreign-signed commits refused while
 * the old commit stays in force, a correctly signed one adopted, no start on an unsigned head), and
 * `policy.allowedSecrets` (an exact entry and a glob admitted; a commit reaching for another
 * variable, or climbing out of the allowed directory with `..`, refused while the old one stays).
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCode, HoopError } from '../../src/errors.js';
import { parseGatewayConfig } from '../../src/gateway/config/config.js';
import { startGateway } from '../../src/gateway/server.js';
import { createLogger } from '../../src/log.js';
import { openTunnel } from '../../src/tunnel/transport.js';
import { pgClient } from '../harness/clients.js';
import { PolicyGitRepo } from '../harness/policy-git.js';
import { connectionYaml, type PgCluster } from '../harness/postgres.js';
import { startStack, type HoopStack, type RunningConnect } from '../harness/stack.js';

let repo: PolicyGitRepo;
let stack: HoopStack;
let keyA: string;
let keyB: string;
let signers: string;
let secretFile: string;
let first: string;
const ROLE = 'vault_rotor';
/** Every password the tests used: none may appear in a log line or a client's error. */
const secrets: string[] = [];
const running: RunningConnect[] = [];

const newPassword = (): string => {
  const p = `pw-${randomBytes(12).toString('hex')}`;
  secrets.push(p);
  return p;
};

/** Two connections: `app` (env secret) and `vault` (file secret); `rules` is more top-level YAML (statement rules). */
const bundle = (pg: PgCluster, options: { rules?: string; vaultPassword?: string } = {}): string => `version: 1
connections:
${connectionYaml(pg, { name: 'app', password: '${env:APP_PASSWORD}' })}${connectionYaml(pg, { name: 'vault', user: ROLE, password: `"${options.vaultPassword ?? `\${file:${secretFile}}`}"` })}access:
  - { name: team, subjects: [alice], connections: [app, vault], mode: read-write }
${options.rules ?? ''}`;

const NO_SECRETS = `statements:
  rules:
    - name: no-secrets
      match: { tables: [public.secrets] }
      action: deny
      message: the secrets table is off limits
`;

/** The commit `GET /v1/policy` reports. */
async function policyCommit(): Promise<string> {
  const token = await stack.token('alice');
  return new Promise((resolve, reject) => {
    const req = request(`${stack.gateway.url}/v1/policy`, { ca: stack.pki.ca, headers: { Authorization: `Bearer ${token}` } }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve(String((JSON.parse(body) as { commit: unknown }).commit)));
    });
    req.on('error', reject);
    req.end();
  });
}

/** Writes an allowed-signers file admitting the public key of `key` for git signatures. */
function writeSigners(file: string, key: string): void {
  writeFileSync(file, `author@example.org namespaces="git" ${readFileSync(`${key}.pub`, 'utf8').trim()}\n`);
}

async function connect(name: string): Promise<RunningConnect> {
  const c = await stack.connect(name, await stack.token('alice'));
  running.push(c);
  return c;
}

/** Runs `sql` in a fresh session through `c`; resolves the rows or the error's message (with its hint). */
async function query(c: RunningConnect, sql: string): Promise<{ rows?: unknown[]; error?: string }> {
  let client: pg.Client | undefined;
  try {
    client = await pgClient(c.info);
    return { rows: (await client.query(sql)).rows };
  } catch (err) {
    const e = err as Error & { hint?: string };
    return { error: `${e.message}${e.hint ? ` (hint: ${e.hint})` : ''}` };
  } finally {
    await client?.end().catch(() => undefined);
  }
}

const refusedLogs = (commit: string): Record<string, unknown>[] => stack.logs().filter((l) => l.event === 'policy.refused' && l.commit === commit);

beforeAll(async () => {
  repo = new PolicyGitRepo('hoop-gw-policy-repo-');
  keyA = repo.sshKey('key-a');
  keyB = repo.sshKey('key-b');
  signers = join(repo.base, 'allowed_signers');
  writeSigners(signers, keyA);
  mkdirSync(join(repo.base, 'secrets'));
  secretFile = join(repo.base, 'secrets', 'vault.pass');
  const initial = newPassword();
  writeFileSync(secretFile, `${initial}\n`, { mode: 0o600 });
  stack = await startStack({
    policy: ({ pg }) => {
      first = repo.commit(bundle(pg, { rules: NO_SECRETS }), keyA);
      return repo.gatewayBlock(['${env:APP_PASSWORD}', `\${file:${repo.base}/secrets/*}`], signers);
    },
  });
  await stack.pg.psql(
    `create role ${ROLE} login password '${initial}';
     create table secrets(id int, value text);
     insert into secrets values (1, 'top');
     grant select on secrets to public`,
    { database: 'app' },
  );
});

afterAll(async () => {
  for (const c of running) await c.stop();
  await stack?.close();
  repo?.remove();
});

describe('a ${file:} password in the policy bundle', () => {
  it('is read per session: rotation needs no restart; a missing file fails that connection only, naming the file but no secret', async () => {
    const vault = await connect('vault');
    const app = await connect('app');
    expect(await query(vault, 'select current_user as who')).toEqual({ rows: [{ who: ROLE }] });

    // The server's password changes first: the gateway still sends the old one from the file.
    const rotated = newPassword();
    await stack.pg.psql(`alter role ${ROLE} password '${rotated}'`);
    const stale = await query(vault, 'select 1');
    expect(stale.error).toContain(`hoop: the gateway could not sign in to "vault"`);
    writeFileSync(secretFile, `${rotated}\n`);
    expect(await query(vault, 'select current_user as who')).toEqual({ rows: [{ who: ROLE }] });

    // The file goes away, turns into a directory (unreadable: chmod means nothing to root), or is
    // emptied: only vault's sessions fail, and say which reference.
    const broken: Array<[string, () => void]> = [
      ['(ENOENT)', () => undefined],
      ['(EISDIR)', () => mkdirSync(secretFile)],
      ['is empty', () => writeFileSync(secretFile, '\n', { mode: 0o600 })],
    ];
    renameSync(secretFile, `${secretFile}.moved`);
    try {
      for (const [why, breakIt] of broken) {
        breakIt();
        const failed = await query(vault, 'select 1');
        expect(failed.error).toContain(`hoop: the gateway could not read the password of "vault"`);
        expect(failed.error).toMatch(new RegExp(`secret file ${secretFile}.*${why.replace(/[()]/g, '\\$&')}`));
        expect(await query(app, 'select 1 as ok')).toEqual({ rows: [{ ok: 1 }] });
        const closed = stack.logs().filter((l) => l.event === 'tunnel.close' && l.connection === 'vault');
        expect(closed.at(-1)).toMatchObject({ reason: 'upstream-unavailable', detail: expect.stringContaining(`secret file ${secretFile}`) });
        for (const text of [failed.error!, stale.error!, JSON.stringify(stack.logs()), vault.stderr(), app.stderr()]) {
          for (const s of [...secrets, stack.pg.users.scram.password]) expect(text).not.toContain(s);
        }
        rmSync(secretFile, { recursive: true, force: true });
      }
    } finally {
      rmSync(secretFile, { recursive: true, force: true });
      renameSync(`${secretFile}.moved`, secretFile);
    }
    expect(await query(vault, 'select current_user as who')).toEqual({ rows: [{ who: ROLE }] });
    expect(await policyCommit()).toBe(first);
  });

  it('refuses a commit whose ${file:} path is relative; takes one whose file the gateway cannot read, that connection unavailable (saying why), the others in force', async () => {
    const relative = repo.commit(bundle(stack.pg, { rules: NO_SECRETS, vaultPassword: '${file:secrets/vault.pass}' }), keyA);
    const r1 = await stack.gateway.policy!.refresh();
    expect(r1).toMatchObject({ changed: false, commit: first, candidate: relative });
    expect(r1.error).toContain('hoop.yaml:17:15: connections.1.password: a ${file:...} reference must be an absolute path on the gateway host');

    expect(refusedLogs(relative)).toHaveLength(1);

    const absent = join(repo.base, 'secrets', 'nowhere.pass');
    const unreadable = repo.commit(bundle(stack.pg, { rules: NO_SECRETS, vaultPassword: `\${file:${absent}}` }), keyA);
    expect(await stack.gateway.policy!.refresh()).toMatchObject({ changed: true, commit: unreadable });
    const lacks = `connections.1.password: secret reference does not resolve: cannot read secret file ${absent} (ENOENT)`;
    expect(stack.logs().find((l) => l.event === 'policy.connection_unavailable' && l.commit === unreadable)).toMatchObject({ connection: 'vault', lacks: [expect.stringContaining(lacks)] });
    const refused = await connect('vault').then(
      () => 'hoop connect vault started',
      (err: Error) => err.message,
    );
    expect(refused).toContain('the connection "vault" is unavailable on this gateway: the gateway lacks a secret or file it needs');
    expect(refused).not.toContain(absent); // what it lacks is in the gateway's log, not said to users
    expect(await query(await connect('app'), 'select 1 as ok')).toEqual({ rows: [{ ok: 1 }] });
    // The file is provided: the next pull loads the same commit again and vault is available.
    writeFileSync(absent, readFileSync(secretFile), { mode: 0o600 });
    try {
      expect(await stack.gateway.policy!.refresh()).toMatchObject({ changed: true, commit: unreadable });
      expect(await query(await connect('vault'), 'select current_user as who')).toEqual({ rows: [{ who: ROLE }] });
      expect(await stack.gateway.policy!.refresh()).toMatchObject({ changed: false, commit: unreadable }); // nothing more to see
    } finally {
      rmSync(absent, { force: true });
    }
    // Back to the bundle the next cases start from.
    first = repo.commit(bundle(stack.pg, { rules: NO_SECRETS }), keyA);
    expect(await stack.gateway.policy!.refresh()).toMatchObject({ changed: true, commit: first });
  });
});

describe('signed commits through the gateway (policy.allowedSigners)', () => {
  it('starts on the signed commit, keeps it while unsigned or foreign-signed commits are pushed, then adopts a signed one', async () => {
    const app = await connect('app');
    const denied = 'hoop: denied by rule "no-secrets": the secrets table is off limits';
    expect((await query(app, 'select value from secrets')).error).toContain(denied);
    const alice = await stack.token('alice');
    const tunnel = await openTunnel({ gateway: stack.gateway.url, connection: 'app', token: alice, sessionId: 'signed-header-1', clientVersion: 'test', ca: stack.pki.ca });
    tunnel.channel.destroy();
    expect(tunnel.policyCommit).toBe(first);

    // Each of these would lift the deny rule; none is taken.
    const pushes: Array<[() => string, (sha: string) => string]> = [
      [() => repo.commit(bundle(stack.pg)), (sha) => `commit ${sha.slice(0, 12)} is not signed (signatures are required by ${signers})`],
      [() => repo.commit(`${bundle(stack.pg)}# signed by a key not in allowed_signers\n`, keyB), (sha) => `commit ${sha.slice(0, 12)} is not signed by a key in ${signers}`],
    ];
    for (const [push, reason] of pushes) {
      const candidate = push();
      const why = reason(candidate);
      const result = await stack.gateway.policy!.refresh();
      expect(result).toMatchObject({ changed: false, commit: first, candidate });
      expect(result.error).toContain(why);
      // A second pull of the same head neither retries nor logs it again.
      expect(await stack.gateway.policy!.refresh()).toMatchObject({ changed: false, commit: first, candidate });
      expect(refusedLogs(candidate)).toHaveLength(1);
      expect(refusedLogs(candidate)[0]).toMatchObject({ kept: first, errors: [expect.stringContaining(why)] });
      expect(await policyCommit()).toBe(first);
      expect((await query(app, 'select value from secrets')).error).toContain(denied);
    }

    const signed = repo.commit(bundle(stack.pg), keyA);
    expect(await stack.gateway.policy!.refresh()).toMatchObject({ changed: true, commit: signed });
    expect(await policyCommit()).toBe(signed);
    expect(await query(app, 'select value from secrets')).toEqual({ rows: [{ value: 'top' }] });
    expect(stack.logs().some((l) => l.event === 'policy.applied' && l.commit === signed && l.previous === first)).toBe(true);
  });
});

describe('policy.allowedSecrets through the gateway', () => {
  it('admits an exact entry and a glob; refuses a commit reaching for another variable or climbing out of the allowed directory, and keeps the policy in force', async () => {
    const inForce = await policyCommit();
    const passwords = Object.fromEntries(stack.gateway.policy!.current().policy.connections.map((c) => [c.name, 'password' in c ? c.password : undefined]));
    expect(passwords).toEqual({ app: { kind: 'env', name: 'APP_PASSWORD' }, vault: { kind: 'file', path: secretFile } });

    // Both references would resolve on the gateway (the file exists, PATH is set): only the allow-list stops them.
    const escape = `${repo.base}/secrets/../allowed_signers`;
    const candidate = repo.commit(bundle(stack.pg, { rules: `${NO_SECRETS}masking:\n  key: "\${env:PATH}"\n`, vaultPassword: `\${file:${escape}}` }), keyA);
    const result = await stack.gateway.policy!.refresh();
    expect(result).toMatchObject({ changed: false, commit: inForce, candidate });
    const problems = [
      `hoop.yaml:17:15: connections.1.password: \${file:${escape}} (that is \${file:${signers}}) is not allowed by the gateway's policy.allowedSecrets; add "\${file:${signers}}" (or a glob) there`,
      `hoop.yaml:28:8: masking.key: \${env:PATH} is not allowed by the gateway's policy.allowedSecrets; add "\${env:PATH}" (or a glob) there`,
    ];
    expect(result.error).toBe(`commit ${candidate.slice(0, 12)} has an invalid policy:\n${problems.map((p) => `  ${p}`).join('\n')}`);
    expect(await stack.gateway.policy!.refresh()).toMatchObject({ changed: false, commit: inForce, candidate });
    expect(refusedLogs(candidate)).toHaveLength(1);
    expect(refusedLogs(candidate)[0]).toMatchObject({ kept: inForce, errors: problems });
    expect(await policyCommit()).toBe(inForce);
    expect(await query(await connect('vault'), 'select current_user as who')).toEqual({ rows: [{ who: ROLE }] });
  });
});

describe('gateway start-up with policy.allowedSigners', () => {
  it('refuses to start on an unsigned head with nothing accepted before, and falls back to the last accepted commit otherwise', async () => {
    const other = new PolicyGitRepo('hoop-gw-policy-start-');
    try {
      const key = other.sshKey('key');
      const allowed = join(other.base, 'allowed_signers');
      writeSigners(allowed, key);
      const text =
        'version: 1\nconnections:\n  - { name: db, type: postgres, host: 127.0.0.1, database: d, user: u, password: "${env:DB_PASSWORD}" }\naccess:\n  - { name: team, subjects: [alice], connections: [db] }\n';
      const env = { ...process.env, DB_PASSWORD: 'x' };
      const lines: string[] = [];
      const log = createLogger({ level: 'debug', sink: { write: (l: string) => lines.push(l) } });
      const start = async (dataDir: string) => {
        const config = await parseGatewayConfig(
          `listen: 127.0.0.1:0\nissuers:\n  - { issuer: "http://127.0.0.1:1", audience: hoop }\ndataDir: ${dataDir}\npolicy: { repo: ${other.dir}, allowedSigners: ${allowed}, allowedSecrets: ["\${env:DB_PASSWORD}"] }\n`,
          join(other.base, 'gateway.yaml'),
          env,
        );
        return startGateway({ config, log, env, insecureDevHttp: true });
      };

      const signed = other.commit(text, key);
      const g1 = await start('./data-1');
      expect(g1.policy!.current().commit).toBe(signed);
      await g1.close();

      const unsigned = other.commit(text.replace('[alice]', '[alice, bob]'));
      lines.length = 0;
      const g2 = await start('./data-1');
      expect(g2.policy!.current().commit).toBe(signed);
      await g2.close();
      const events = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(events.find((l) => l.event === 'policy.refused')).toMatchObject({ commit: unsigned, errors: [expect.stringContaining('is not signed')] });
      expect(events.some((l) => l.event === 'policy.fallback' && l.commit === signed)).toBe(true);

      const err = (await start('./data-2').catch((e: unknown) => e)) as HoopError;
      expect(err).toBeInstanceOf(HoopError);
      expect(err.code).toBe(ErrorCode.CONFIG_INVALID);
      expect(err.message).toBe(
        `the gateway cannot start without a policy: no acceptable policy at main of ${other.dir}: commit ${unsigned.slice(0, 12)} is not signed (signatures are required by ${allowed})`,
      );
    } finally {
      other.remove();
    }
  });
});
