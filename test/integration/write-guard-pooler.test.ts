/**
 * The write guard behind a pooler in transaction mode (pgbouncer between the gateway and
 * PostgreSQL): each transaction may run on another server connection, where the count the guard
 * keeps prepared is not. The write that meets that is refused, saying why (its rows stay), and the
 * session's count is prepared with each write from then on: every later write runs, wherever it lands.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pgClient } from '../harness/clients.js';
import { PolicyGitRepo } from '../harness/policy-git.js';
import { type Pgbouncer, startPgbouncer } from '../harness/pgbouncer.js';
import { startStack, type HoopStack, type RunningConnect } from '../harness/stack.js';

let stack: HoopStack;
let repo: PolicyGitRepo;
let c: RunningConnect;
let bouncer: Pgbouncer | undefined;

beforeAll(async () => {
  repo = new PolicyGitRepo('hoop-pooler-policy-');
  stack = await startStack({
    policy: async ({ pg: cluster }) => {
      await cluster.psql(
        'create table wp_kept (id int, v int); insert into wp_kept select g, 0 from generate_series(1, 10) g; create table wp_free (id int, v int); insert into wp_free select g, 0 from generate_series(1, 10) g; grant all on wp_kept, wp_free to public',
        { database: 'app' },
      );
      const { user, password } = cluster.users.scram;
      bouncer = await startPgbouncer({ serverPort: cluster.port, database: 'app', user, password, mode: 'transaction', poolSize: 4 });
      repo.commit(`version: 1
connections:
  - { name: pooled, type: postgres, host: 127.0.0.1, port: ${bouncer.port}, database: app, user: ${cluster.users.scram.user}, password: "\${env:APP_PASSWORD}", tls: { mode: disable } }
access:
  - { name: people, subjects: [alice], connections: [pooled], mode: read-write }
statements:
  rules:
    - { name: keep, match: { kinds: [delete], tables: [wp_kept] }, action: deny }
`);
      return repo.gatewayBlock(['${env:APP_*}']);
    },
  });
  c = await stack.connect('pooled', await stack.token('alice'));
});

afterAll(async () => {
  await c?.stop();
  await stack?.close();
  bouncer?.stop();
  repo?.remove();
});

describe('the write guard behind pgbouncer in transaction mode', () => {
  it('refuses the one write that landed where its kept count is not, saying why, then prepares the count with each write', async () => {
    const s = await pgClient(c.info);
    const { user, password } = stack.pg.users.scram;
    const other = new pg.Client({ host: '127.0.0.1', port: bouncer!.port, user, password, database: 'app' });
    await other.connect();
    try {
      expect((await s.query('UPDATE wp_free SET v = v + 1 WHERE id = 1')).rowCount).toBe(1);
      const first = (await s.query('SELECT pg_backend_pid() AS pid')).rows[0].pid as number;
      // Another client holds that server connection in a transaction: the session's next write lands on another.
      await other.query('BEGIN');
      expect((await other.query('SELECT pg_backend_pid() AS pid')).rows[0].pid).toBe(first);
      await expect(s.query('UPDATE wp_free SET v = v + 1 WHERE id = 2')).rejects.toThrow(/prepared on another server connection than this write ran on \(a pooler in transaction mode/);
      await other.query('COMMIT');
      // From now on, wherever each lands.
      for (let i = 0; i < 6; i++) {
        if (i % 2 === 0) await other.query('BEGIN; SELECT 1');
        expect((await s.query('UPDATE wp_free SET v = v + 1 WHERE id = $1', [3])).rowCount).toBe(1);
        if (i % 2 === 0) await other.query('COMMIT');
      }
      await expect(s.query('DELETE FROM wp_kept WHERE id = 1')).rejects.toThrow(/keep/);
    } finally {
      await other.end();
      await s.end();
    }
    expect((await stack.pg.psql("select string_agg(v::text, ',' order by id) from wp_free where id <= 3", { database: 'app' })).trim()).toBe('1,0,6');
    expect((await stack.pg.psql('select count(*) from wp_kept', { database: 'app' })).trim()).toBe('10');
  });
});
