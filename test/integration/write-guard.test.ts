/**
 * The blast-radius guard against real PostgreSQL: writes under `maxAffectedRows` are counted by
 * the database before they commit. Every write kind (UPDATE, DELETE, MERGE, INSERT ... ON
 * CONFLICT, a write in a WITH), outside and inside transactions, with and without RETURNING,
 * through psql (simple protocol), `pg` (extended) and raw frontends: within the limit it commits
 * and the client gets its rows; over it, it is rolled back, the client gets 42501 and no row,
 * and its transaction state is what an error leaves. `overLimit: review` holds it; approved, it
 * runs again.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { psql, pgClient, runProcess } from '../harness/clients.js';
import { PolicyGitRepo } from '../harness/policy-git.js';
import { connectionYaml } from '../harness/postgres.js';
import { startStack, type HoopStack, type RunningConnect } from '../harness/stack.js';
import { reviewCliOf } from '../harness/review-cli.js';
import { query as queryMessage } from '../../src/postgres/wire/messages.js';
import { errorIn } from '../harness/raw-pg.js';
import { parseErrorFields } from '../../src/postgres/wire/reader.js';
import { bind, execute, parse, sync } from '../harness/pg-frontend.js';

let policyRepo: PolicyGitRepo;
let stack: HoopStack;
const running: RunningConnect[] = [];

const bundle = (connection: string): string => `version: 1
connections:
${connection}access:
  - { name: people, subjects: [alice, bob], connections: [app], mode: read-write }
  - { name: agents, subjects: [agent], connections: [app], mode: read-write, maxAffectedRows: 4 }
statements:
  reviewers:
    - { groups: [dba], timeout: 30s }
  rules:
    - { name: small-writes, match: { tables: [public.wg_items] }, action: allow, maxAffectedRows: 3 }
    - { name: wg_ledger-writes, match: { tables: [public.wg_ledger] }, action: allow, maxAffectedRows: 2, overLimit: review }
`;

async function connect(subject = 'alice'): Promise<RunningConnect> {
  const c = await stack.connect('app', await stack.token(subject));
  running.push(c);
  return c;
}

const db = (sql: string): Promise<string> => stack.pg.psql(sql, { database: 'app' });
const sumItems = async (): Promise<string> => (await db("select count(*) || ':' || sum(v) from wg_items")).trim();
const reset = (): Promise<string> =>
  db(`truncate wg_items, wg_ledger; insert into wg_items select g, 0 from generate_series(1, 10) g; insert into wg_ledger select g, 10 from generate_series(1, 3) g`);

const { reviewCli, pendingReview } = reviewCliOf(() => stack);

beforeAll(async () => {
  policyRepo = new PolicyGitRepo('hoop-guard-');
  stack = await startStack({
    policy: ({ pg }) => {
      policyRepo.commit(bundle(connectionYaml(pg, { name: 'app', password: '${env:APP_PASSWORD}' })));
      return policyRepo.gatewayBlock(['${env:APP_*}']);
    },
  });
  await db(`create table wg_items(id int primary key, v int); create table wg_ledger(id int primary key, amount int);
            create table wg_free as select g as id, 0 as v from generate_series(1, 10) g;
            grant all on wg_items, wg_ledger, wg_free to public`);
});

afterAll(async () => {
  for (const c of running) await c.stop();
  await stack?.close();
  policyRepo?.remove();
});

describe('the blast-radius guard, simple protocol (psql)', () => {
  const overLimit = (verb: string, rows: number): string => `ERROR:  hoop: the ${verb} changed ${rows} rows, over the limit of 3 (rule "small-writes"); it was rolled back`;

  it('commits a write within the limit and rolls back one over it, for every write kind', async () => {
    await reset();
    const c = await connect();
    const within = await psql(c.info, ['-c', 'UPDATE wg_items SET v = v + 1 WHERE id <= 3']);
    expect(within.stdout).toContain('UPDATE 3');
    expect(await sumItems()).toBe('10:3');
    const cases: Array<[string, string, number]> = [
      ['UPDATE wg_items SET v = v + 1 WHERE id = id', 'UPDATE', 10],
      ['DELETE FROM wg_items WHERE v >= 0', 'DELETE', 10],
      ['MERGE INTO wg_items t USING (SELECT g FROM generate_series(1, 10) g) s ON t.id = s.g WHEN MATCHED THEN UPDATE SET v = 7', 'MERGE', 10],
      ['INSERT INTO wg_items SELECT g, 9 FROM generate_series(1, 5) g ON CONFLICT (id) DO UPDATE SET v = 9', 'INSERT', 5],
    ];
    for (const [sql, verb, rows] of cases) {
      const r = await psql(c.info, ['-c', sql]);
      expect(r.code, sql).not.toBe(0);
      expect(r.stderr, sql).toContain(overLimit(verb, rows));
      expect(await sumItems(), sql).toBe('10:3');
    }
    // The session goes on: psql reconnects each time, so ask in one session too.
    const one = await psql(c.info, ['-v', 'ON_ERROR_STOP=0', '-c', 'DELETE FROM wg_items', '-c', 'select count(*) as left_ from wg_items']);
    expect(one.stderr).toContain(overLimit('DELETE', 10));
    expect(one.stdout).toMatch(/left_\s*\n-+\n\s*10/);
  });

  it('holds RETURNING rows until the count is known: within, the client gets them; over, none', async () => {
    await reset();
    const c = await connect();
    const within = await psql(c.info, ['-A', '-t', '-c', 'DELETE FROM wg_items WHERE id > 8 RETURNING id']);
    expect(within.stdout.trim().split('\n')).toEqual(['9', '10', 'DELETE 2']);
    const over = await psql(c.info, ['-A', '-t', '-c', 'UPDATE wg_items SET v = 5 RETURNING id, v']);
    expect(over.stdout.trim()).toBe('');
    expect(over.stderr).toContain(overLimit('UPDATE', 8));
    expect(await sumItems()).toBe('8:0');
  });

  it("counts a write inside a WITH (its tag counts the SELECT) from the database's statistics", async () => {
    await reset();
    const c = await connect();
    const over = await psql(c.info, ['-A', '-t', '-c', 'WITH d AS (DELETE FROM wg_items WHERE id > 2 RETURNING id) SELECT count(*) FROM d']);
    expect(over.code).not.toBe(0);
    expect(over.stderr).toContain('ERROR:  hoop: the statement changed 8 rows, over the limit of 3 (rule "small-writes")');
    expect(await sumItems()).toBe('10:0');
    const within = await psql(c.info, ['-A', '-t', '-c', 'WITH d AS (DELETE FROM wg_items WHERE id > 8 RETURNING id) SELECT count(*) FROM d']);
    expect(within.stdout.trim()).toBe('2');
    expect(await sumItems()).toBe('8:0');
  });

  it("inside the client's transaction: within, the transaction goes on; over, it fails as an error would", async () => {
    await reset();
    const c = await connect();
    const r = await psql(c.info, ['-v', 'ON_ERROR_STOP=0'], {
      input:
        "BEGIN;\nUPDATE wg_items SET v = 1 WHERE id = 1;\nUPDATE wg_items SET v = 2 WHERE id > 0;\nSELECT 'still' AS step;\nROLLBACK;\nBEGIN;\nUPDATE wg_items SET v = 3 WHERE id <= 2;\nCOMMIT;\n",
    });
    expect(r.stderr).toContain(overLimit('UPDATE', 10));
    expect(r.stderr).toContain('current transaction is aborted');
    expect(await sumItems()).toBe('10:6'); // the second transaction committed; the first rolled back
  });

  it('refuses a write that shares its message with a COMMIT (it would commit before it is counted)', async () => {
    await reset();
    const c = await connect();
    const r = await psql(c.info, ['-c', 'BEGIN; UPDATE wg_items SET v = 1 WHERE id = 1; COMMIT']);
    expect(r.stderr).toContain('hoop: denied by rule "write-guard"');
    expect(r.stderr).toContain('a COMMIT statement');
    expect(await sumItems()).toBe('10:0');
  });

  it('a raw client that pipelines its COMMIT behind an over-limit write cannot commit it', async () => {
    await reset();
    const raw = await stack.tunnel('app', await stack.token('alice'));
    const from = raw.raw.length;
    raw.write(Buffer.concat([queryMessage('BEGIN'), queryMessage('DELETE FROM wg_items'), queryMessage('COMMIT'), queryMessage('select count(*) from wg_items')]));
    const messages = await raw.messagesSince(from, 4);
    expect(errorIn(messages)?.message).toContain('the DELETE changed 10 rows, over the limit of 3');
    expect(messages.filter((m) => m.type === 0x43).map((m) => m.body.toString('latin1').replace(/\0$/, ''))).toEqual(['BEGIN', 'ROLLBACK', 'SELECT 1']);
    expect(messages.filter((m) => m.type === 0x5a).map((m) => String.fromCharCode(m.body[0]!))).toEqual(['T', 'E', 'I', 'I']);
    expect(await sumItems()).toBe('10:0');
    raw.destroy();
  });

  it('counts what a SQL-level EXECUTE runs', async () => {
    await reset();
    const c = await connect();
    const r = await psql(c.info, ['-v', 'ON_ERROR_STOP=0', '-c', 'PREPARE d AS DELETE FROM wg_items WHERE id > $1', '-c', 'EXECUTE d(8)', '-c', 'EXECUTE d(0)']);
    expect(r.stdout + r.stderr).toContain('DELETE 2');
    expect(r.stderr).toContain('ERROR:  hoop: the statement changed 8 rows, over the limit of 3 (rule "small-writes")');
    expect(await sumItems()).toBe('8:0');
  });

  it("applies the access's limit to every write of the sessions it admits", async () => {
    await reset();
    const c = await connect('agent');
    const r = await psql(c.info, ['-c', 'DELETE FROM wg_items WHERE id > 2']);
    expect(r.stderr).toContain('over the limit of 3 (rule "small-writes")'); // the stricter of the access's 4 and the rule's 3
    const free = await psql(c.info, ['-c', 'UPDATE wg_free SET v = 1']);
    expect(free.stderr).toContain('ERROR:  hoop: the UPDATE changed 10 rows, over the limit of 4 (rule "agents")');
    expect(await sumItems()).toBe('10:0');
    // Another access, without a limit: the same write runs.
    expect((await psql((await connect('bob')).info, ['-c', 'UPDATE wg_free SET v = 1'])).stdout).toContain('UPDATE 10');
  });
});

/** pgjdbc's writes, each mode told on a line: a free table's, then one over the limit of wg_items (3 rows), plainly and as a RETURNING read 2 rows at a time. */
const WRITES_JAVA = `import java.sql.*;
public class Writes {
  static void run(Connection c, String mode, String what) {
    try {
      String line = switch (what) {
        case "plain" -> { try (Statement s = c.createStatement()) { yield "" + s.executeUpdate("UPDATE wg_free SET v = v + 1 WHERE id = 1"); } }
        case "prepared" -> { try (PreparedStatement p = c.prepareStatement("UPDATE wg_free SET v = v + 1 WHERE id = ?")) { int n = 0; for (int i = 0; i < 7; i++) { p.setInt(1, 2); n += p.executeUpdate(); } yield "" + n; } }
        case "batch" -> { try (PreparedStatement p = c.prepareStatement("UPDATE wg_free SET v = v + 1 WHERE id = ?")) { for (int i = 3; i <= 5; i++) { p.setInt(1, i); p.addBatch(); } yield java.util.Arrays.toString(p.executeBatch()); } }
        case "max-rows" -> { try (Statement s = c.createStatement()) { s.setMaxRows(5); yield "" + s.executeUpdate("UPDATE wg_free SET v = v + 1 WHERE id = 6"); } }
        case "returning" -> { try (PreparedStatement p = c.prepareStatement("UPDATE wg_free SET v = v + 1 WHERE id <= ? RETURNING id")) { p.setFetchSize(2); p.setInt(1, 8); ResultSet rs = p.executeQuery(); int n = 0; while (rs.next()) n++; yield "" + n; } }
        case "over" -> { try (Statement s = c.createStatement()) { yield "" + s.executeUpdate("UPDATE wg_items SET v = v + 1 WHERE id <= 5"); } }
        default -> { try (PreparedStatement p = c.prepareStatement("UPDATE wg_items SET v = v + 1 WHERE id <= 5 RETURNING id")) { p.setFetchSize(2); ResultSet rs = p.executeQuery(); int n = 0; while (rs.next()) n++; yield "" + n; } }
      };
      System.out.println(mode + " " + what + " " + line);
    } catch (SQLException e) {
      System.out.println(mode + " " + what + " " + e.getSQLState() + " " + e.getMessage().split("\\n")[0]);
    }
  }
  public static void main(String[] a) throws Exception {
    String[] all = { "plain", "prepared", "batch", "max-rows", "returning", "over", "over-returning" };
    try (Connection c = DriverManager.getConnection(a[0], a[1], a[2])) {
      for (String w : all) run(c, "auto", w);
      c.setAutoCommit(false);
      for (String w : all) { run(c, "tx", w); c.commit(); }
    }
  }
}
`;

describe('the blast-radius guard, extended protocol', () => {
  it('pg: within the limit the rows come back; over it the query fails and nothing changed', async () => {
    await reset();
    const client = await pgClient((await connect()).info);
    try {
      const within = await client.query('UPDATE wg_items SET v = $1 WHERE id <= $2 RETURNING id', [4, 2]);
      expect(within.rowCount).toBe(2);
      expect(within.rows.map((r: { id: number }) => r.id)).toEqual([1, 2]);
      await expect(client.query('DELETE FROM wg_items WHERE id > $1', [0])).rejects.toThrow(/the DELETE changed 10 rows, over the limit of 3/);
      expect(await sumItems()).toBe('10:8');
      // In a transaction: the error fails it, as any error would.
      await client.query('BEGIN');
      await client.query('UPDATE wg_items SET v = $1 WHERE id = $2', [0, 1]);
      await expect(client.query('UPDATE wg_items SET v = $1', [0])).rejects.toThrow(/over the limit of 3/);
      await expect(client.query('SELECT 1')).rejects.toThrow(/current transaction is aborted/);
      await client.query('ROLLBACK');
      expect((await client.query('SELECT count(*)::int AS n FROM wg_items')).rows[0].n).toBe(10);
    } finally {
      await client.end();
    }
    expect(await sumItems()).toBe('10:8');
  });

  it('pgjdbc: executeUpdate (an Execute of at most 1 row), batches, setMaxRows and a RETURNING read 2 rows at a time, in autocommit and in a transaction; over the limit refused', async () => {
    await reset();
    const before = Number((await db('select sum(v) from wg_free')).trim());
    const c = await connect();
    const dir = mkdtempSync(join(tmpdir(), 'hoop-wg-jdbc-'));
    writeFileSync(join(dir, 'Writes.java'), WRITES_JAVA);
    try {
      const url = `jdbc:postgresql://${c.info.host}:${c.info.port}/${c.info.database}?sslmode=disable`;
      const r = await runProcess('java', ['-cp', '/usr/share/java/postgresql.jar', join(dir, 'Writes.java'), url, c.info.user, c.info.password], { cwd: dir, timeoutMs: 120_000 });
      expect(r.stderr).toBe('');
      const said = (mode: string): string[] => [
        `${mode} plain 1`,
        `${mode} prepared 7`,
        `${mode} batch [1, 1, 1]`,
        `${mode} max-rows 1`,
        `${mode} returning 8`,
        `${mode} over 42501 ERROR: hoop: the UPDATE changed 5 rows, over the limit of 3 (rule "small-writes"); it was rolled back`,
        // A fetch size applies in a transaction only: there the portal stops after 2 rows, and the rows are counted by statistics.
        `${mode} over-returning 42501 ERROR: hoop: the ${mode === 'tx' ? 'statement' : 'UPDATE'} changed 5 rows, over the limit of 3 (rule "small-writes"); it was rolled back`,
      ];
      expect(r.stdout.trim().split('\n')).toEqual([...said('auto'), ...said('tx')]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    // Each mode's free writes, and nothing of the refused ones.
    expect(Number((await db('select sum(v) from wg_free')).trim()) - before).toBe(40);
    expect(await sumItems()).toBe('10:0');
  });

  it('a raw pipeline: an over-limit Execute fails its batch, and what came after it in the batch never runs', async () => {
    await reset();
    const raw = await stack.tunnel('app', await stack.token('alice'));
    const from = raw.raw.length;
    raw.write(
      Buffer.concat([
        parse('', 'UPDATE wg_items SET v = 1'),
        bind('', ''),
        execute(''),
        parse('', 'UPDATE wg_items SET v = 2 WHERE id = 1'),
        bind('', ''),
        execute(''),
        sync(),
        queryMessage('select sum(v) from wg_items'),
      ]),
    );
    const messages = await raw.messagesSince(from, 2);
    expect(errorIn(messages)?.message).toContain('the UPDATE changed 10 rows, over the limit of 3');
    expect(messages.filter((m) => m.type === 0x43).map((m) => m.body.toString('latin1').replace(/\0$/, ''))).toEqual(['SELECT 1']);
    expect(messages.filter((m) => m.type === 0x5a).map((m) => String.fromCharCode(m.body[0]!))).toEqual(['I', 'I']);
    expect(await sumItems()).toBe('10:0');
    raw.destroy();
  });
});

describe('the guard against clients that try to lose it (found by an adversarial review)', () => {
  const tags = (ms: Array<{ type: number; body: Buffer }>): string[] => ms.filter((m) => m.type === 0x43).map((m) => m.body.toString('latin1').replace(/\0$/, ''));

  it('a protocol portal run by SQL FETCH or MOVE is refused', async () => {
    await reset();
    const raw = await stack.tunnel('app', await stack.token('alice'));
    const from = raw.raw.length;
    raw.write(Buffer.concat([queryMessage('BEGIN'), parse('', 'DELETE FROM wg_items RETURNING id'), bind('p', ''), sync(), queryMessage('/* x */ MOVE ALL IN p'), queryMessage('COMMIT')]));
    const messages = await raw.messagesSince(from, 4);
    expect(errorIn(messages)?.message).toContain('FETCH and MOVE of a portal bound with the extended protocol are not supported');
    expect(await sumItems()).toBe('10:0');
    raw.destroy();
  });

  it('a portal the server kept (its re-Bind failed, then a savepoint brought it back) is still judged as what it holds', async () => {
    await reset();
    const raw = await stack.tunnel('app', await stack.token('alice'));
    const from = raw.raw.length;
    raw.write(
      Buffer.concat([
        queryMessage('BEGIN'),
        parse('s', 'DELETE FROM wg_items'),
        parse('harmless', 'SELECT 1'),
        bind('p', 's'),
        sync(),
        queryMessage('SAVEPOINT a'),
        bind('p', 'harmless'),
        sync(), // portal "p" already exists: the Bind fails
        queryMessage('ROLLBACK TO SAVEPOINT a'),
        execute('p'),
        sync(),
        queryMessage('COMMIT'),
      ]),
    );
    const messages = await raw.messagesSince(from, 7);
    expect(tags(messages)).not.toContain('DELETE 10');
    expect(messages.some((m) => m.type === 0x45 && parseErrorFields(m.body).message.includes('the DELETE changed 10 rows, over the limit of 3'))).toBe(true);
    expect(await sumItems()).toBe('10:0');
    raw.destroy();
  });

  it('counts by statistics per table: a TRUNCATE of another table in the message cannot hide the rows', async () => {
    await reset();
    const raw = await stack.tunnel('app', await stack.token('alice'));
    const from = raw.raw.length;
    raw.write(
      Buffer.concat([
        queryMessage('BEGIN'),
        queryMessage('CREATE TEMP TABLE wg_scratch(x int)'),
        queryMessage('INSERT INTO wg_scratch SELECT generate_series(1, 1000)'),
        queryMessage('WITH d AS (DELETE FROM wg_items RETURNING 1) SELECT count(*) FROM d; TRUNCATE wg_scratch'),
        queryMessage('COMMIT'),
      ]),
    );
    const messages = await raw.messagesSince(from, 5);
    expect(errorIn(messages)?.message).toContain('the statement changed 10 rows, over the limit of 3');
    expect(tags(messages)).toContain('ROLLBACK');
    expect(await sumItems()).toBe('10:0');
    // The gateway's own statements leave nothing behind that names its refusals: only the count it keeps, by a name of its own.
    raw.write(queryMessage("select coalesce(string_agg(name, ' '), '') from pg_prepared_statements where name like 'hoop%'"));
    const left = await raw.messagesSince(raw.raw.length, 1);
    expect(
      left
        .find((m) => m.type === 0x44)!
        .body.subarray(6)
        .toString(),
    ).toMatch(/^hoop_denied_[0-9a-f]{16}_count$/);
    raw.destroy();
  });

  it('counts a text that opens its own transaction by its own rows, not by rows of earlier transactions the server has not reported yet', async () => {
    await reset();
    const c = await pgClient((await connect()).info);
    try {
      // Just added after a report, these 8 rows are in the server's counts until it reports them again (when idle, at most once a second).
      await c.query('SELECT pg_stat_force_next_flush()');
      await c.query('INSERT INTO wg_items SELECT g, 0 FROM generate_series(11, 18) g');
      // Counted by statistics (its tag does not count a WITH's rows).
      await expect(c.query('BEGIN; WITH d AS (DELETE FROM wg_items WHERE id > 0 RETURNING 1) SELECT count(*) FROM d')).rejects.toThrow(/changed 18 rows, over the limit of 3/);
      await c.query('ROLLBACK');
      // In autocommit, in the gateway's own transaction, the same: its 3 rows, not the 8 before them.
      await c.query('SELECT pg_stat_force_next_flush()');
      await c.query('INSERT INTO wg_items SELECT g, 0 FROM generate_series(19, 26) g');
      expect((await c.query('WITH d AS (DELETE FROM wg_items WHERE id > 23 RETURNING 1) SELECT count(*) FROM d')).rows).toEqual([{ count: '3' }]);
    } finally {
      await c.end();
    }
    expect(await sumItems()).toBe('23:0');
  });
});

describe('overLimit: review', () => {
  it('holds an over-limit write rolled back; approved, it runs again and the client gets its result', async () => {
    await reset();
    const c = await connect();
    const result = psql(c.info, ['-c', 'UPDATE wg_ledger SET amount = amount + 1']);
    const id = await pendingReview('UPDATE wg_ledger SET amount = amount + 1');
    const show = JSON.parse((await reviewCli(['show', id, '--json'])).stdout) as { message: string };
    expect(show.message).toContain('the UPDATE changed 3 rows, over the limit of 2');
    expect((await db('select sum(amount) from wg_ledger')).trim()).toBe('30'); // rolled back while it waits
    await reviewCli(['approve', id]);
    const r = await result;
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('UPDATE 3');
    expect(r.stderr).toContain(`held for review ${id}`);
    expect((await db('select sum(amount) from wg_ledger')).trim()).toBe('33');
  });

  it('in a transaction: the write alone is rolled back to a savepoint; denied, the transaction fails', async () => {
    await reset();
    const c = await connect();
    const result = psql(c.info, ['-v', 'ON_ERROR_STOP=0'], { input: 'BEGIN;\nUPDATE wg_ledger SET amount = 0 WHERE id = 1;\nDELETE FROM wg_ledger;\nSELECT 1;\nROLLBACK;\n' });
    const id = await pendingReview('DELETE FROM wg_ledger');
    await reviewCli(['deny', id, '--reason', 'too many']);
    const r = await result;
    expect(r.stderr).toContain(`hoop: denied by reviewer bob (review ${id}): too many`);
    expect(r.stderr).toContain('current transaction is aborted');
    expect((await db('select sum(amount) from wg_ledger')).trim()).toBe('30');
  });

  it("pg: the extended protocol's write is held and, approved, bound and executed again", async () => {
    await reset();
    const client = await pgClient((await connect()).info);
    try {
      const pending = client.query('DELETE FROM wg_ledger WHERE id > $1 RETURNING id', [0]);
      const id = await pendingReview('DELETE FROM wg_ledger WHERE id > $1');
      expect((await db('select count(*) from wg_ledger')).trim()).toBe('3');
      await reviewCli(['approve', id]);
      const done = await pending;
      expect(done.rowCount).toBe(3);
      expect(done.rows.map((r: { id: number }) => r.id).sort()).toEqual([1, 2, 3]);
      expect((await client.query('SELECT 1 AS one')).rows[0].one).toBe(1);
    } finally {
      await client.end();
    }
    expect((await db('select count(*) from wg_ledger')).trim()).toBe('0');
  });

  it('pg, in a transaction: rolled back to the savepoint while it waits, run again once approved, and the transaction commits', async () => {
    await reset();
    const client = await pgClient((await connect()).info);
    try {
      await client.query('BEGIN');
      await client.query('UPDATE wg_ledger SET amount = $1 WHERE id = $2', [1, 1]);
      const pending = client.query('UPDATE wg_ledger SET amount = amount + $1', [100]);
      const id = await pendingReview('UPDATE wg_ledger SET amount = amount + $1');
      await reviewCli(['approve', id]);
      expect((await pending).rowCount).toBe(3);
      await client.query('COMMIT');
    } finally {
      await client.end();
    }
    expect((await db("select string_agg(amount::text, ',' order by id) from wg_ledger")).trim()).toBe('101,110,110');
  });
});
