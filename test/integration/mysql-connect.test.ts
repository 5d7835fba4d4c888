/**
 * `hoop connect` of a MySQL connection against a real MariaDB server: the real `mariadb` client
 * through the local port (TLS verified, the per-run password), what the database holds after,
 * refusals of a wrong password, an unreachable server and a session under a policy hoop cannot
 * yet apply to MySQL, and the session's signed recording read back.
 */
import { execFile } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMariaDb, type MariaServer } from '../harness/mariadb.js';
import { PolicyGitRepo } from '../harness/policy-git.js';
import { startStack, type HoopStack } from '../harness/stack.js';
import { eventually } from '../harness/wait.js';

let db: MariaServer;
let stack: HoopStack;
let governed: HoopStack;
let repo: PolicyGitRepo;

const mysqlYaml = (name: string, port: number, tls: string): string =>
  `  - { name: ${name}, type: mysql, host: 127.0.0.1, port: ${port}, database: app, user: app, password: "\${env:MARIA_PASSWORD}", tls: ${tls}, allow: { subjects: [alice] } }\n`;

beforeAll(async () => {
  db = await startMariaDb();
  const tls = `{ mode: verify-full, ca: ${db.caFile}, serverName: localhost }`;
  stack = await startStack({
    env: { MARIA_PASSWORD: db.users.native.password },
    connections: mysqlYaml('shop', db.port, tls) + mysqlYaml('shop-down', 1, '{ mode: disable }'),
  });
  repo = new PolicyGitRepo('hoop-mysql-');
  governed = await startStack({
    env: { MARIA_PASSWORD: db.users.native.password },
    policy: () => {
      repo.commit(`version: 1
connections:
${mysqlYaml('shop', db.port, tls).replace(', allow: { subjects: [alice] }', '')}access:
  - { name: people, subjects: [alice], connections: [shop], mode: read-write }
statements:
  rules:
    - { name: no-drops, match: { kinds: [drop] }, action: deny }
`);
      return repo.gatewayBlock(['${env:MARIA_*}']);
    },
  });
}, 120_000);

afterAll(async () => {
  await stack?.close();
  await governed?.close();
  repo?.remove();
  await db?.stop();
});

/** Runs the real mariadb client with `args`; resolves its exit code and output. */
function mariadb(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile('/usr/bin/mariadb', args, { timeout: 30_000, env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: '/nonexistent' } }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

async function connectMysql(s: HoopStack, name: string) {
  const c = await s.connect(name, await s.token('alice'));
  return { ...c, info: c.info as unknown as { optionFile: string; host: string; port: number; password: string; user: string; database: string; sslCa: string } };
}

describe('hoop connect for a mysql connection', () => {
  it('serves the real mariadb client over TLS with the per-run password: reads and writes reach the server', async () => {
    const c = await connectMysql(stack, 'shop');
    try {
      const read = await mariadb([`--defaults-extra-file=${c.info.optionFile}`, '--batch', '-e', 'SELECT id, name FROM items ORDER BY id; \\s']);
      expect(read.stderr).toBe('');
      expect(read.stdout).toContain('id\tname\n1\tone\n2\ttwo\n');
      expect(read.stdout).toMatch(/SSL:\s+Cipher in use is/);
      const write = await mariadb([`--defaults-extra-file=${c.info.optionFile}`, '-e', "INSERT INTO items VALUES (10, 'through hoop')"]);
      expect(write).toMatchObject({ code: 0, stderr: '' });
      expect((await db.sql('SELECT name FROM app.items WHERE id = 10')).trim()).toBe('through hoop');
    } finally {
      await c.stop();
    }
  });

  it('refuses a wrong password before a statement runs, and says when the server cannot be reached', async () => {
    const c = await connectMysql(stack, 'shop');
    try {
      const wrong = await mariadb([`--defaults-extra-file=${c.info.optionFile}`, '--password=wrong', '-e', "INSERT INTO items VALUES (11, 'never')"]);
      expect(wrong.code).not.toBe(0);
      expect(wrong.stderr).toMatch(/ERROR 1045 .*Access denied/);
      expect((await db.sql('SELECT count(*) FROM app.items WHERE id = 11')).trim()).toBe('0');
    } finally {
      await c.stop();
    }
    const down = await connectMysql(stack, 'shop-down');
    try {
      const r = await mariadb([`--defaults-extra-file=${down.info.optionFile}`, '-e', 'SELECT 1']);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/hoop: the gateway could not open shop-down/);
    } finally {
      await down.stop();
    }
  });

  it('records the session: its statements and the rows the client received, signed, read back by hoop sessions export', async () => {
    const c = await connectMysql(stack, 'shop');
    let session: string;
    try {
      const r = await mariadb([`--defaults-extra-file=${c.info.optionFile}`, '-e', "SELECT name FROM items WHERE id = 2; SELECT 'marker-7' AS m"]);
      expect(r).toMatchObject({ code: 0, stderr: '' });
      const opened = stack.logs().filter((l) => l.event === 'tunnel.open' && l.connection === 'shop');
      session = opened[opened.length - 1]!.session as string;
    } finally {
      await c.stop();
    }
    const token = await stack.token('alice');
    const events = await eventually(
      async () => {
        const r = await stack.run(['sessions', 'export', session, '--format', 'jsonl', '--gateway', stack.gateway.url, '--ca-file', stack.pki.caFile], { HOOP_TOKEN: token });
        expect(r.code, r.stderr).toBe(0);
        const lines = r.stdout
          .trim()
          .split('\n')
          .map((l) => JSON.parse(l) as Record<string, unknown>);
        expect(lines.some((e) => e.t === 'end')).toBe(true);
        return lines;
      },
      { timeout: 30_000, interval: 200 },
    );
    expect(events).toContainEqual(expect.objectContaining({ t: 'query', sql: 'SELECT name FROM items WHERE id = 2' }));
    expect(events).toContainEqual(expect.objectContaining({ t: 'row', values: ['two'] }));
    expect(events).toContainEqual(expect.objectContaining({ t: 'row', values: ['marker-7'] }));
    const verify = await stack.run(['sessions', 'verify', session, '--gateway', stack.gateway.url, '--ca-file', stack.pki.caFile], { HOOP_TOKEN: token });
    expect(verify.code, verify.stdout + verify.stderr).toBe(0);
  });

  it('refuses every statement, relaying none, while a policy governs the session (MySQL statements are not judged yet)', async () => {
    const c = await connectMysql(governed, 'shop');
    try {
      const r = await mariadb([`--defaults-extra-file=${c.info.optionFile}`, '-e', "INSERT INTO items VALUES (12, 'unjudged')"]);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/ERROR 1227 .*hoop: the policy governs this session, and hoop does not yet judge or mask MySQL statements/);
      expect((await db.sql('SELECT count(*) FROM app.items WHERE id = 12')).trim()).toBe('0');
    } finally {
      await c.stop();
    }
  });
});
