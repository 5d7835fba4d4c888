/**
 * Rules on tables judge relations through the catalog on MariaDB too: a write or read through a
 * view (through other views, one made or replaced in this session or another) is judged as the
 * tables under it; a table whose rows are another's (MERGE) is any table.
 */
import { readFileSync } from 'node:fs';
import mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMariaDb, type MariaServer, mariaConnectionYaml } from '../harness/mariadb.js';
import { PolicyGitRepo } from '../harness/policy-git.js';
import { startStack, type HoopStack, type RunningConnect } from '../harness/stack.js';
import { eventually } from '../harness/wait.js';

let db: MariaServer;
let stack: HoopStack;
let repo: PolicyGitRepo;
let c: RunningConnect;
const clients: mysql.Connection[] = [];

async function session(): Promise<mysql.Connection> {
  // `hoop connect` of a MySQL connection says where its CA is (its JSON's `sslCa`).
  const info = c.info as unknown as { host: string; port: number; user: string; password: string; sslCa: string };
  const conn = await mysql.createConnection({ host: info.host, port: info.port, user: info.user, password: info.password, database: 'app', ssl: { ca: readFileSync(info.sslCa) } });
  clients.push(conn);
  return conn;
}

/** `ok`, or the error `sql` fails with. */
async function outcome(conn: mysql.Connection, sql: string): Promise<string> {
  try {
    await conn.query(sql);
    return 'ok';
  } catch (err) {
    return `${(err as { errno?: number }).errno}: ${(err as Error).message}`;
  }
}

const count = async (table: string): Promise<number> => Number((await db.sql(`SELECT COUNT(*) FROM app.${table}`, { database: 'app' })).trim());

beforeAll(async () => {
  db = await startMariaDb();
  repo = new PolicyGitRepo('hoop-mysql-views-');
  stack = await startStack({
    env: { MARIA_PASSWORD: db.users.native.password },
    policy: async () => {
      await db.sql(
        'CREATE TABLE app.mv_guarded (id int primary key, v int) ENGINE=InnoDB; INSERT INTO app.mv_guarded SELECT seq, 0 FROM seq_1_to_10; ' +
          'CREATE TABLE app.mv_free (id int primary key, v int) ENGINE=InnoDB; INSERT INTO app.mv_free SELECT seq, 0 FROM seq_1_to_10; ' +
          "CREATE TABLE app.mv_secrets (id int, s text) ENGINE=InnoDB; INSERT INTO app.mv_secrets VALUES (1, 'hunter2'); " +
          'CREATE TABLE app.mv_log (id int, v int) ENGINE=MyISAM; CREATE TABLE app.mv_merged (id int, v int) ENGINE=MERGE UNION=(app.mv_log); ' +
          'CREATE VIEW app.mv_gv AS SELECT * FROM app.mv_guarded; CREATE VIEW app.mv_gv2 AS SELECT id FROM app.mv_gv; CREATE VIEW app.mv_sv AS SELECT s FROM app.mv_secrets; ' +
          'CREATE VIEW app.mv_fv AS SELECT * FROM app.mv_free',
        { database: 'app' },
      );
      repo.commit(`version: 1
connections:
${mariaConnectionYaml(db.port)}
access:
  - { name: people, subjects: [alice], connections: [shop], mode: read-write }
statements:
  rules:
    - { name: keep-guarded, match: { kinds: [delete, update], tables: [app.mv_guarded] }, action: deny, message: rows of mv_guarded are kept }
    - { name: no-secrets, match: { kinds: [select], tables: [app.mv_secrets] }, action: deny }
    - { name: keep-log, match: { kinds: [insert], tables: [app.mv_log] }, action: deny }
`);
      return repo.gatewayBlock(['${env:MARIA_*}']);
    },
  });
  c = await stack.connect('shop', await stack.token('alice'));
});

afterAll(async () => {
  for (const conn of clients) await conn.end().catch(() => undefined);
  await c?.stop();
  await stack?.close();
  repo?.remove();
  await db?.stop();
});

describe('MySQL rules on tables, through views', () => {
  it('refuses a write or read through a view of a guarded table, at any depth; a view over other tables passes', async () => {
    const s = await session();
    expect(await outcome(s, 'DELETE FROM mv_gv WHERE id = 1')).toMatch(/^1227: .*rows of mv_guarded are kept/);
    expect(await outcome(s, 'UPDATE mv_gv2 SET id = id WHERE id = 2')).toMatch(/^1227: /);
    expect(await outcome(s, 'SELECT * FROM mv_sv')).toMatch(/^1227: .*no-secrets/);
    expect(await count('mv_guarded')).toBe(10);
    expect(await outcome(s, 'DELETE FROM mv_fv WHERE id = 10')).toBe('ok');
    expect(await count('mv_free')).toBe(9);
    // A MERGE table's rows are another table's: any table.
    expect(await outcome(s, 'INSERT INTO mv_merged VALUES (1, 1)')).toMatch(/^1227: .*mv_merged is judged as any table/);
  });

  it('judges a view this session or another replaces by what it is now', async () => {
    const a = await session();
    const b = await session();
    expect(await outcome(b, 'DELETE FROM mv_fv WHERE id = 9')).toBe('ok');
    expect(await outcome(a, 'CREATE OR REPLACE VIEW mv_fv AS SELECT * FROM mv_guarded')).toBe('ok');
    expect(await outcome(a, 'DELETE FROM mv_fv WHERE id = 3')).toMatch(/^1227: .*rows of mv_guarded are kept/);
    expect(await outcome(b, 'DELETE FROM mv_fv WHERE id = 3')).toMatch(/^1227: .*rows of mv_guarded are kept/);
    expect(await outcome(a, 'CREATE VIEW mv_new AS SELECT * FROM mv_gv; DELETE FROM mv_new')).toMatch(/^1227: /);
    expect(await outcome(a, 'CREATE VIEW mv_made AS SELECT * FROM mv_gv')).toBe('ok');
    expect(await outcome(b, 'DELETE FROM mv_made WHERE id = 4')).toMatch(/^1227: .*rows of mv_guarded are kept/);
    expect(await count('mv_guarded')).toBe(10);
    expect(await outcome(a, 'CREATE OR REPLACE VIEW mv_fv AS SELECT * FROM mv_free')).toBe('ok');
    // Once the gateway has read the view again (until then another session's replaced view may be judged as any table, and refused).
    await eventually(async () => expect(await outcome(b, 'DELETE FROM mv_fv WHERE id = 8')).toBe('ok'), { timeout: 30_000, interval: 100 });
    expect(await count('mv_guarded')).toBe(10);
  });

  it('judges a prepared statement again at each execute, by what its views are now', async () => {
    const a = await session();
    const b = await session();
    await db.sql('CREATE VIEW app.mv_pv AS SELECT * FROM app.mv_free; CREATE VIEW app.mv_ps AS SELECT id AS s FROM app.mv_free', { database: 'app' });
    const executed = async (conn: mysql.Connection, sql: string, values: Array<string | number>): Promise<string> => {
      try {
        await conn.execute(sql, values);
        return 'ok';
      } catch (err) {
        return `${(err as { errno?: number }).errno}: ${(err as Error).message}`;
      }
    };
    // Prepared (mysql2 keeps each text's statement) while the views read the free table: judged fine.
    expect(await executed(b, 'DELETE FROM mv_pv WHERE id = ?', [7])).toBe('ok');
    expect(await executed(b, 'SELECT s FROM mv_ps WHERE s = ?', [1])).toBe('ok');
    // Replaced through the gateway by another session: the kept statements now reach the guarded and the secret tables.
    expect(await outcome(a, 'CREATE OR REPLACE VIEW mv_pv AS SELECT * FROM mv_guarded')).toBe('ok');
    expect(await outcome(a, 'CREATE OR REPLACE VIEW mv_ps AS SELECT s FROM mv_secrets')).toBe('ok');
    expect(await executed(b, 'DELETE FROM mv_pv WHERE id = ?', [5])).toMatch(/^1227: .*rows of mv_guarded are kept/);
    expect(await executed(b, 'SELECT s FROM mv_ps WHERE s = ?', ['hunter2'])).toMatch(/^1227: .*no-secrets/);
    expect(await count('mv_guarded')).toBe(10);
    // Pointed back at the free table, the same statements run again, once the gateway has read it again (until then it may judge it as any table, and refuse).
    expect(await outcome(a, 'CREATE OR REPLACE VIEW mv_pv AS SELECT * FROM mv_free')).toBe('ok');
    await eventually(async () => expect(await executed(b, 'DELETE FROM mv_pv WHERE id = ?', [6])).toBe('ok'), { timeout: 30_000, interval: 100 });
    expect(await count('mv_guarded')).toBe(10);
  });

  it('judges a query of a shape allowed before by what its view is now, once another session or its own replaced it', async () => {
    const a = await session();
    const b = await session();
    await db.sql('CREATE VIEW app.mv_kv AS SELECT * FROM app.mv_free', { database: 'app' });
    // From the second text of a shape on, a session judges by the verdict it kept for the shape while nothing it read changed.
    for (const id of [1, 2, 3]) expect(await outcome(b, `UPDATE mv_kv SET v = ${id} WHERE id = ${id}`)).toBe('ok');
    expect(await outcome(a, 'CREATE OR REPLACE VIEW mv_kv AS SELECT * FROM mv_guarded')).toBe('ok');
    expect(await outcome(b, 'UPDATE mv_kv SET v = 4 WHERE id = 4')).toMatch(/^1227: .*rows of mv_guarded are kept/);
    expect(await outcome(b, 'CREATE OR REPLACE VIEW mv_kv AS SELECT * FROM mv_free')).toBe('ok');
    await eventually(async () => expect(await outcome(b, 'UPDATE mv_kv SET v = 5 WHERE id = 5')).toBe('ok'), { timeout: 30_000, interval: 100 });
    expect(await outcome(b, 'UPDATE mv_kv SET v = 6 WHERE id = 6')).toBe('ok');
    expect(await outcome(b, 'CREATE OR REPLACE VIEW mv_kv AS SELECT * FROM mv_guarded')).toBe('ok');
    expect(await outcome(b, 'UPDATE mv_kv SET v = 7 WHERE id = 7')).toMatch(/^1227: .*rows of mv_guarded are kept/);
    expect(Number((await db.sql('SELECT SUM(v) FROM app.mv_guarded', { database: 'app' })).trim())).toBe(0);
  });

  it('lets a session write the tables it makes', async () => {
    const s = await session();
    expect(await outcome(s, 'CREATE TEMPORARY TABLE mv_tmp (id int, v int)')).toBe('ok');
    expect(await outcome(s, 'INSERT INTO mv_tmp VALUES (1, 0), (2, 0)')).toBe('ok');
    expect(await outcome(s, 'UPDATE mv_tmp SET v = 1')).toBe('ok');
    expect(await outcome(s, 'DELETE FROM mv_tmp WHERE id = 1')).toBe('ok');
  });
});
