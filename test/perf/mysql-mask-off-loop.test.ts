/**
 * How long other MySQL sessions wait while the gateway masks a 12 MiB value full of what the
 * detectors find (npm run bench:tests): the detectors run off the event loop (as for PostgreSQL,
 * ./mask-off-loop.test.ts), so another session's `SELECT 1` answers within a second throughout.
 * test/unit/mysql-result-masker.test.ts checks that long values are masked in the worker, and
 * test/integration/mysql-hostile.test.ts that one comes back masked through the relay.
 */
import { readFileSync } from 'node:fs';
import mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MySqlGreeted } from '../../src/mysql/wire/client.js';
import { newSessionId, openTunnel } from '../../src/tunnel/transport.js';
import { answersWhile } from '../harness/event-loop.js';
import { startMariaDb, type MariaServer, mariaConnectionYaml } from '../harness/mariadb.js';
import { PolicyGitRepo } from '../harness/policy-git.js';
import { startStack, type HoopStack } from '../harness/stack.js';

let db: MariaServer;
let repo: PolicyGitRepo;
let stack: HoopStack;

beforeAll(async () => {
  db = await startMariaDb();
  repo = new PolicyGitRepo('hoop-mysql-bench-');
  stack = await startStack({
    env: { MARIA_PASSWORD: db.users.native.password },
    policy: () => {
      repo.commit(`version: 1
connections:
${mariaConnectionYaml(db.port)}
access:
  - { name: people, subjects: [alice], connections: [shop], mode: read-write }
masking:
  detectors:
    - { detector: email, strategy: redact }
    - { detector: payment-card, strategy: last4 }
`);
      return repo.gatewayBlock(['${env:MARIA_*}']);
    },
  });
});

afterAll(async () => {
  await stack?.close();
  repo?.remove();
  await db?.stop();
});

describe('a 12 MiB MySQL value masked off the event loop', () => {
  it('keeps every answer to another session under a second while it is masked', async () => {
    const c = await stack.connect('shop', await stack.token('alice'));
    const info = c.info as unknown as { host: string; port: number; user: string; password: string; sslCa: string };
    const open = () => mysql.createConnection({ host: info.host, port: info.port, user: info.user, password: info.password, database: 'app', ssl: { ca: readFileSync(info.sslCa) } });
    const [big, other] = [await open(), await open()];
    try {
      const line = 'mail bob@example.com, card 4111 1111 1111 1111; ';
      const times = Math.floor((12 * 1024 * 1024) / line.length);
      const started = Date.now();
      const read = big.query(`SELECT REPEAT('${line}', ${times}) AS v`);
      const { answers, worst } = await answersWhile(() => other.query('SELECT 1'), read);
      const [rows] = (await read) as unknown as [Array<{ v: string }>];
      expect(rows[0]!.v.includes('bob@example.com')).toBe(false);
      expect(rows[0]!.v.includes('**** **** **** 1111')).toBe(true);
      process.stdout.write(`masking a 12 MiB MySQL value: ${Date.now() - started} ms; another session answered ${answers} times, the slowest in ${worst} ms\n`);
      expect(worst).toBeLessThan(1000);
    } finally {
      await big.end();
      await other.end();
      await c.stop();
    }
  });

  it('keeps every answer to another session under a second while a 3 MiB statement full of cards is redacted for the recording', async () => {
    // Raw tunnels to the gateway: no CLI of the test's own process records beside it.
    const signedIn = async () => {
      const { channel } = await openTunnel({ gateway: stack.gateway.url, connection: 'shop', token: await stack.token('alice'), sessionId: newSessionId(), clientVersion: 'test', ca: stack.pki.ca });
      return (await MySqlGreeted.read(channel)).signIn({ user: 'x', password: '', database: 'app' });
    };
    const [big, other] = [await signedIn(), await signedIn()];
    try {
      const line = 'card 4111 1111 1111 1111; ';
      const sql = `SELECT LENGTH('${line.repeat(Math.floor((3 * 1024 * 1024) / line.length))}') AS n`;
      const started = Date.now();
      const { answers, worst } = await answersWhile(() => other.query('SELECT 1'), big.query(sql));
      process.stdout.write(`redacting a 3 MiB MySQL statement: ${Date.now() - started} ms; another session answered ${answers} times, the slowest in ${worst} ms\n`);
      expect(worst).toBeLessThan(1000);
    } finally {
      big.close();
      other.close();
    }
  });
});
