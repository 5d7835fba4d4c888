/**
 * `hoop connect` of a MySQL connection against a real MariaDB server: the real `mariadb` client
 * through the local port (TLS verified, the per-run password), what the database holds after,
 * refusals of a wrong password, an unreachable server and a session under a policy hoop cannot
 * yet apply to MySQL, and the session's signed recording read back.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import type { Duplex } from 'node:stream';
import mysql from 'mysql2/promise';
import { MySqlGreeted } from '../../src/mysql/wire/client.js';
import { packet, PacketReader } from '../../src/mysql/wire/packets.js';
import { parseErr } from '../../src/mysql/wire/results.js';
import { openTunnel } from '../../src/tunnel/transport.js';
import { shellQuote } from '../../src/text-format.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMariaDb, type MariaServer } from '../harness/mariadb.js';
import { PolicyGitRepo } from '../harness/policy-git.js';
import { startStack, type HoopStack } from '../harness/stack.js';
import { eventually } from '../harness/wait.js';
import { runSaid, spawnHoop } from '../harness/hoop-process.js';
import { recordingEvents } from '../harness/exported-events.js';
import { filesAsText } from '../harness/records.js';

/** MariaDB Connector/J, from Debian's libmariadb-java. */
const CONNECTOR_J = '/usr/share/java/mariadb-java-client.jar';

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
    connections:
      mysqlYaml('shop', db.port, tls) + mysqlYaml('shop-down', 1, '{ mode: disable }') + mysqlYaml('shop-one', db.port, tls).replace('subjects: [alice] }', 'subjects: [alice], maxSessions: 1 }'),
  });
  repo = new PolicyGitRepo('hoop-mysql-');
  governed = await startStack({
    env: { MARIA_PASSWORD: db.users.native.password },
    policy: () => {
      repo.commit(`version: 1
connections:
${mysqlYaml('shop', db.port, tls).replace(', allow: { subjects: [alice] }', '')}${mysqlYaml('shop-ro', db.port, tls).replace(', allow: { subjects: [alice] }', '')}${mysqlYaml('shop-timed', db.port, tls).replace(', allow: { subjects: [alice] }', '')}${mysqlYaml('shop-guarded', db.port, tls).replace(', allow: { subjects: [alice] }', '')}access:
  - { name: people, subjects: [alice], connections: [shop], mode: read-write }
  - { name: readers, subjects: [alice], connections: [shop-ro], mode: read-only }
  - { name: timed, subjects: [alice], connections: [shop-timed], mode: read-write, statementTimeout: 1s, lockTimeout: 2s, idleInTransactionTimeout: 3s }
  - { name: guarded, subjects: [alice], connections: [shop-guarded], mode: read-write, maxAffectedRows: 2 }
statements:
  reviewers:
    - { groups: [ops], timeout: 30s }
  rules:
    - { name: no-deletes, match: { kinds: [delete] }, action: deny, message: rows are not deleted here }
    - { name: truncates-reviewed, match: { kinds: [truncate] }, action: review, message: a second pair of eyes }
    - { name: bulk-reviewed, match: { tables: [app.reviewed] }, action: allow, maxAffectedRows: 1, overLimit: review }
`);
      return repo.gatewayBlock(['${env:MARIA_*}']);
    },
    extraConfig: 'mysqlListen: 127.0.0.1:0\n',
  });
});

afterAll(async () => {
  for (const c of shared.values()) await (await c).stop();
  await stack?.close();
  await governed?.close();
  repo?.remove();
  await db?.stop();
});

/** The id of the review of `sql` pending on `s`, as a reviewer of group ops lists it. */
async function pendingReview(s: HoopStack, sql: string): Promise<string> {
  return eventually(
    async () => {
      const r = await s.run(['review', 'ls', '--json', '--gateway', s.gateway.url, '--ca-file', s.pki.caFile], { HOOP_TOKEN: await s.token('bob', ['ops']) });
      const found = (JSON.parse(r.stdout) as { reviews: Array<{ id: string; sql?: string }> }).reviews.find((x) => x.sql === sql);
      expect(found, `a review of ${sql}`).toBeDefined();
      return found!.id;
    },
    { timeout: 60_000, interval: 100 },
  );
}

/** A MariaDB Connector/J program: DatabaseMetaData's answers about `items`, and a statement prepared at the server, run with parameters. */
const META_JAVA = `import java.sql.*;
public class Meta {
  public static void main(String[] a) throws Exception {
    for (int i = 0; i < a.length; i += 3) {
      System.out.println("== " + (i / 3));
      run(a[i], a[i + 1], a[i + 2]);
    }
  }
  static void run(String url, String user, String password) throws Exception {
    try (Connection c = DriverManager.getConnection(url, user, password)) {
      DatabaseMetaData m = c.getMetaData();
      print("tables", m.getTables("app", null, "items", new String[] { "TABLE" }));
      print("columns", m.getColumns("app", null, "items", "%"));
      print("primary keys", m.getPrimaryKeys("app", null, "items"));
      try (PreparedStatement p = c.prepareStatement("SELECT id, UPPER(name), id * 2.5 FROM items WHERE id = ?")) {
        for (int i = 1; i <= 3; i++) {
          p.setInt(1, i);
          print("prepared " + i, p.executeQuery());
        }
      }
      try (Statement st = c.createStatement()) {
        print("text", st.executeQuery("SELECT CAST(1.50 AS DECIMAL(5,2)), NULL, DATE '2026-01-02', 'é'"));
      }
    }
  }
  static void print(String what, ResultSet rs) throws SQLException {
    int n = rs.getMetaData().getColumnCount();
    while (rs.next()) {
      StringBuilder b = new StringBuilder(what).append(": [");
      for (int i = 1; i <= n; i++) b.append(i > 1 ? ", " : "").append(rs.getString(i));
      System.out.println(b.append("]"));
    }
    rs.close();
  }
}
`;

/** Runs `java` with `args`; resolves its exit code and output. */
function java(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile('java', args, { timeout: 60_000 }, (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }));
  });
}

/** Runs the real mariadb client with `args`; resolves its exit code and output. */
function mariadb(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile('/usr/bin/mariadb', args, { timeout: 30_000, env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: '/nonexistent' } }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

/** The newest session of `connection` the gateway opened. */
const lastSession = (connection: string): string =>
  stack
    .logs()
    .filter((l) => l.event === 'tunnel.open' && l.connection === connection)
    .at(-1)!.session as string;

/** Session `session`'s recording once it ended, as `hoop sessions export --format jsonl` gives it. */
const recordingOf = (session: string): Promise<Array<Record<string, unknown>>> => recordingEvents(stack, session);

/** A client of the governed stack's `shop` on a raw tunnel (session `id`), signed in: its stream, and the payloads it has received. */
async function rawSession(id: string): Promise<{ stream: Duplex; got: Buffer[] }> {
  const { channel } = await openTunnel({ gateway: governed.gateway.url, connection: 'shop', token: await governed.token('alice'), sessionId: id, clientVersion: 'test', ca: governed.pki.ca });
  const stream = (await (await MySqlGreeted.read(channel)).signIn({ user: 'x', password: '', database: 'app' })).release();
  const reader = new PacketReader();
  const got: Buffer[] = [];
  stream.on('data', (b: Buffer) => got.push(...reader.push(b).map((p) => p.payload)));
  return { stream, got };
}

/** `hoop connect` of `name` on stack `s`, started. */
async function openConnect(s: HoopStack, name: string) {
  const c = await s.connect(name, await s.token('alice'));
  return { ...c, info: c.info as unknown as { optionFile: string; host: string; port: number; password: string; user: string; database: string; sslCa: string } };
}

/** The `hoop connect`s the tests share, by stack and connection; stopped after them all. */
const shared = new Map<string, ReturnType<typeof openConnect>>();

/** `hoop connect` of `name` on stack `s`: one per stack and connection, shared by the tests (each client has a session of its own); `own` starts one for the caller alone. */
async function connectMysql(s: HoopStack, name: string, o: { own?: boolean } = {}) {
  if (o.own) return openConnect(s, name);
  const key = `${s.gateway.url} ${name}`;
  if (!shared.has(key)) shared.set(key, openConnect(s, name));
  return { ...(await shared.get(key)!), stop: async () => undefined };
}

/** A mysql2 connection to `c`'s local port (TLS verified, the per-run password, database app), with `extra` options. */
function driverOf(c: { info: { host: string; port: number; user: string; password: string; sslCa: string } }, extra: mysql.ConnectionOptions = {}) {
  return mysql.createConnection({ host: c.info.host, port: c.info.port, user: c.info.user, password: c.info.password, database: 'app', ssl: { ca: readFileSync(c.info.sslCa) }, ...extra });
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
      expect((await mariadb([`--defaults-extra-file=${c.info.optionFile}`, '-e', 'SELECT 1'])).code).toBe(0);
      const opened = (): number => stack.logs().filter((l) => l.event === 'tunnel.open' && l.connection === 'shop').length;
      const before = opened();
      const wrong = await mariadb([`--defaults-extra-file=${c.info.optionFile}`, '--password=wrong', '-e', "INSERT INTO items VALUES (11, 'never')"]);
      expect(wrong.code).not.toBe(0);
      expect(wrong.stderr).toMatch(/ERROR 1045 .*Access denied/);
      // The client was refused on this machine: no session was opened for it at the gateway.
      expect(opened()).toBe(before);
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

  it('tells a client that asked for TLS over TLS when the gateway refuses its session (over its maxSessions)', async () => {
    const c = await connectMysql(stack, 'shop-one');
    // The port's own session (it learns the server's greeting) holds the one slot until the gateway sees it close.
    const held = await eventually(() => mysql.createConnection({ host: c.info.host, port: c.info.port, user: c.info.user, password: c.info.password, ssl: { ca: readFileSync(c.info.sslCa) } }), {
      timeout: 10_000,
      interval: 100,
    });
    try {
      const refused = await mariadb([`--defaults-extra-file=${c.info.optionFile}`, '-e', 'SELECT 1']);
      expect(refused.stderr).toMatch(/ERROR 1105 .*hoop: .*sessions/);
    } finally {
      await held.end();
      await c.stop();
    }
  });

  it('records the session at the gateway and in the CLI, the two records agreeing: its statements and the rows the client received, signed, read back by hoop sessions export and replay', async () => {
    const c = await connectMysql(stack, 'shop', { own: true });
    let session: string;
    try {
      const r = await mariadb([`--defaults-extra-file=${c.info.optionFile}`, '-e', "SELECT name FROM items WHERE id = 2; SELECT 'marker-7' AS m"]);
      expect(r).toMatchObject({ code: 0, stderr: '' });
      session = lastSession('shop');
    } finally {
      await c.stop();
    }
    const events = await recordingOf(session);
    expect(events).toContainEqual(expect.objectContaining({ t: 'query', sql: 'SELECT name FROM items WHERE id = 2' }));
    expect(events).toContainEqual(expect.objectContaining({ t: 'row', values: ['two'] }));
    expect(events).toContainEqual(expect.objectContaining({ t: 'row', values: ['marker-7'] }));
    // The CLI kept its own signed record of the session, and it agrees with the gateway's.
    const verify = await eventually(
      async () => {
        const v = await stack.run(['sessions', 'verify', session, '--gateway', stack.gateway.url, '--ca-file', stack.pki.caFile], { HOOP_TOKEN: await stack.token('alice') });
        expect(v.code, v.stdout + v.stderr).toBe(0);
        expect(v.stdout).toContain("cross-check: the gateway's and the CLI's records agree on 2 statement(s)");
        return v;
      },
      { timeout: 60_000, interval: 250 },
    );
    expect(verify.stdout).not.toContain('DIFFER');
    // Replayed as the mysql client prints it.
    const replay = await stack.run(['sessions', 'replay', session, '--no-tty', '--gateway', stack.gateway.url, '--ca-file', stack.pki.caFile], { HOOP_TOKEN: await stack.token('alice') });
    expect(replay.stdout).toContain(
      ['shop> SELECT name FROM items WHERE id = 2;', '+------+', '| name |', '+------+', '| two  |', '+------+', '1 row in set', '', "shop> SELECT 'marker-7' AS m;"].join('\n'),
    );
  });

  it('records a password typed into SQL as a keyed hash (IDENTIFIED BY), and the CLI record, which holds it as typed, still agrees', async () => {
    const c = await connectMysql(stack, 'shop', { own: true });
    let session: string;
    let typoSession: string;
    try {
      await mariadb([`--defaults-extra-file=${c.info.optionFile}`, '--force', '-e', "ALTER USER 'nobody-here'@'%' IDENTIFIED BY 'hunter2-secret'; SELECT 'after' AS m"]);
      session = lastSession('shop');
      // A typo: MariaDB's error quotes the rest of the statement, the password with it.
      const typo = await mariadb([`--defaults-extra-file=${c.info.optionFile}`, '-e', "ALTER USER 'nobody-here'@'%' IDENTIFIED BYY 'hunter2-typo'"]);
      expect(typo.stderr).toContain("near 'BYY 'hunter2-typo''");
      typoSession = lastSession('shop');
    } finally {
      await c.stop();
    }
    const events = await recordingOf(session);
    expect(JSON.stringify(events)).not.toContain('hunter2-secret');
    const typoEvents = await recordingOf(typoSession);
    expect(JSON.stringify(typoEvents)).not.toContain('hunter2-typo');
    // Once a secret was sent, what the server says is one marker (it may repeat the value in any spelling), its code kept.
    expect(typoEvents).toContainEqual(expect.objectContaining({ t: 'error', message: expect.stringMatching(/^ERROR 1064 \(42000\): \[redacted:[0-9a-f]{8}\]$/) }));
    expect(events).toContainEqual(
      expect.objectContaining({ t: 'query', sql: expect.stringMatching(/^ALTER USER '\[redacted:[0-9a-f]{8}\]'@'\[redacted:[0-9a-f]{8}\]' IDENTIFIED BY '\[redacted:[0-9a-f]{8}\]'$/) }),
    );
    await eventually(
      async () => {
        const v = await stack.run(['sessions', 'verify', session, '--gateway', stack.gateway.url, '--ca-file', stack.pki.caFile], { HOOP_TOKEN: await stack.token('alice') });
        expect(v.code, v.stdout + v.stderr).toBe(0);
        expect(v.stdout).toMatch(/cross-check: the gateway's and the CLI's records agree on [1-9]\d* statement\(s\)/);
      },
      { timeout: 60_000, interval: 250 },
    );
  });

  it("records a secret as the server reads its strings: by the session's sql_mode where the policy governs it (NO_BACKSLASH_ESCAPES), every way it might where not", async () => {
    /** The recording of a session of `s`'s `shop` that sets NO_BACKSLASH_ESCAPES, then sends two statements the backslash does not join. */
    const recorded = async (s: HoopStack): Promise<Array<Record<string, unknown>>> => {
      const c = await connectMysql(s, 'shop', { own: true });
      try {
        const conn = await mysql.createConnection({
          host: c.info.host,
          port: c.info.port,
          user: c.info.user,
          password: c.info.password,
          database: c.info.database,
          ssl: { ca: readFileSync(c.info.sslCa) },
          multipleStatements: true,
        });
        try {
          await conn.query("SET sql_mode = 'NO_BACKSLASH_ESCAPES'");
          const [results] = await conn.query("SELECT 'x\\', 1; SELECT hex(aes_encrypt('d', 'hunter2-mode')) AS h -- '");
          expect((results as unknown[]).length).toBe(2);
        } finally {
          await conn.end();
        }
      } finally {
        await c.stop();
      }
      const session = s
        .logs()
        .filter((l) => l.event === 'tunnel.open' && l.connection === 'shop')
        .at(-1)!.session as string;
      return recordingEvents(s, session);
    };
    const plain = await recorded(stack);
    expect(JSON.stringify(plain)).not.toContain('hunter2-mode');
    const governedEvents = await recorded(governed);
    expect(JSON.stringify(governedEvents)).not.toContain('hunter2-mode');
    // Where the judge read the mode, what ran is in view: the second statement, its key taken.
    expect(governedEvents).toContainEqual(
      expect.objectContaining({ t: 'query', sql: expect.stringMatching(/SELECT hex\(aes_encrypt\('\[redacted:[0-9a-f]{8}\]', '\[redacted:[0-9a-f]{8}\]'\)\) AS h -- '$/) }),
    );
  });

  it("gives the mysql2 driver what the server gives it directly: text and prepared (binary) results, many statements, types, MariaDB's JSON as JSON", async () => {
    const c = await connectMysql(stack, 'shop');
    const viaHoop = { host: c.info.host, port: c.info.port, user: c.info.user, password: c.info.password, database: c.info.database, ssl: { ca: readFileSync(c.info.sslCa) } };
    const direct = { host: db.host, port: db.port, ...db.users.native, database: 'app' };
    const setup = await mysql.createConnection({ ...direct, multipleStatements: true });
    await setup.query(
      "CREATE TABLE IF NOT EXISTS typed (id int primary key, d decimal(10,2), f double, t datetime(6), b blob, u bigint unsigned, n varchar(10)); REPLACE INTO typed VALUES (1, 12.50, -1.25, '2026-11-27 03:04:05.123456', x'00ff10', 18446744073709551615, NULL); " +
        'CREATE TABLE IF NOT EXISTS docs (id int primary key, j json); REPLACE INTO docs VALUES (1, \'{"a": [1, "x"]}\')',
    );
    await setup.end();
    const session = async (options: object) => {
      const conn = await mysql.createConnection({ ...options, multipleStatements: true, supportBigNumbers: true, bigNumberStrings: true, dateStrings: true });
      try {
        const [text] = await conn.query('SELECT * FROM typed; SELECT 1 + 1 AS two');
        const [prepared] = await conn.execute('SELECT * FROM typed WHERE id = ? AND d > ?', [1, 10]);
        const [changed] = await conn.execute('UPDATE items SET name = ? WHERE id = ?', ['one', 1]);
        const refused = await conn.query('SELECT * FROM nowhere').catch((e: { code: string; errno: number }) => [e.code, e.errno]);
        // MariaDB's extended metadata says the column is JSON, which mysql2 then parses.
        const [json] = await conn.query('SELECT j FROM docs');
        const [jsonPrepared] = await conn.execute('SELECT j FROM docs WHERE id = ?', [1]);
        return { text, prepared, changed: (changed as { affectedRows: number }).affectedRows, refused, json, jsonPrepared };
      } finally {
        await conn.end();
      }
    };
    try {
      const [got, want] = [await session(viaHoop), await session(direct)];
      expect(got).toEqual(want);
      expect((want.prepared as Array<Record<string, unknown>>)[0]).toMatchObject({ d: '12.50', u: '18446744073709551615', t: '2026-11-27 03:04:05.123456' });
      expect(got.json).toEqual([{ j: { a: [1, 'x'] } }]);
      expect(got.jsonPrepared).toEqual([{ j: { a: [1, 'x'] } }]);
      // The recording reads the binary rows of the prepared statement as the text protocol would say them.
      const events = await recordingOf(lastSession('shop'));
      expect(events).toContainEqual(expect.objectContaining({ t: 'parse', sql: 'SELECT * FROM typed WHERE id = ? AND d > ?' }));
      expect(events).toContainEqual(expect.objectContaining({ t: 'row', values: ['1', '12.50', '-1.25', '2026-11-27 03:04:05.123456', '0x00ff10', '18446744073709551615', null] }));
    } finally {
      await c.stop();
    }
  });

  it('records a secret a driver binds to a prepared statement as a keyed hash, at the gateway and in the CLI record; no file the gateway keeps holds it', async () => {
    const c = await connectMysql(stack, 'shop', { own: true });
    let session: string;
    try {
      const driver = await driverOf(c);
      // Prepared at the server (COM_STMT_PREPARE), the key bound in COM_STMT_EXECUTE; run twice (the second binds no types).
      for (let i = 0; i < 2; i++) {
        const [rows] = await driver.execute('SELECT LENGTH(AES_ENCRYPT(?, ?)) AS n', ['data', 'hunter3-bound']);
        expect(rows).toEqual([{ n: 16 }]);
      }
      // A bound password the server repeats in its error (a unique key's duplicate entry: a helper's attack) is kept out too.
      await driver.query('CREATE TABLE IF NOT EXISTS creds_bound (name varchar(50), password varchar(100) UNIQUE)');
      const said: string[] = [];
      for (let i = 0; i < 2; i++) await driver.execute('INSERT INTO creds_bound (name, password) VALUES (?, ?)', ['a', 'dup-secret-7345']).catch((e: Error) => void said.push(e.message));
      expect(said.join('')).toContain("Duplicate entry 'dup-secret-7345'");
      await driver.end();
      session = lastSession('shop');
    } finally {
      await c.stop();
    }
    await eventually(
      async () => {
        const v = await stack.run(['sessions', 'verify', session, '--gateway', stack.gateway.url, '--ca-file', stack.pki.caFile], { HOOP_TOKEN: await stack.token('alice') });
        expect(v.stdout).toMatch(/cross-check: the gateway's and the CLI's records agree/);
      },
      { timeout: 60_000, interval: 250 },
    );
    const files = filesAsText(join(stack.dir, 'hoop-data'));
    expect(files.filter((f) => f.includes('AES_ENCRYPT(?, ?)')).length).toBeGreaterThanOrEqual(2);
    expect(files.filter((f) => f.includes('hunter3-bound')).length).toBe(0);
    expect(files.filter((f) => f.includes('dup-secret-7345')).length).toBe(0);
  });

  it("leaves a client's ROW_COUNT(), FOUND_ROWS() and LAST_INSERT_ID() its own, as direct: after sign-in, and after a write the gateway sets the access's timeouts again for", async () => {
    await db.sql('CREATE TABLE IF NOT EXISTS app.diag_direct (id int auto_increment primary key, v int); CREATE TABLE IF NOT EXISTS app.diag_hoop LIKE app.diag_direct');
    const c = await connectMysql(governed, 'shop-timed');
    /** What a client reads of its own statements' effects, on table `t`. */
    const diagnostics = async (conn: mysql.Connection, t: string): Promise<unknown[]> => {
      const out: unknown[] = [];
      const read = async (sql: string): Promise<void> => void out.push((await conn.query(sql))[0]);
      // FOUND_ROWS() before any SELECT is whatever the server's thread held (0 or 1 here, from the connection that used it last): not compared.
      await read('SELECT ROW_COUNT() AS rc, @@warning_count AS w');
      const [[fresh]] = (await conn.query('SELECT FOUND_ROWS() AS fr')) as unknown as [[{ fr: number }]];
      expect(fresh.fr, "not the rows of the gateway's own sign-in statements").toBeLessThanOrEqual(1);
      await conn.query(`INSERT INTO app.${t} (v) VALUES (1), (2), (3)`);
      await read('SELECT ROW_COUNT() AS rc, LAST_INSERT_ID() AS id');
      await conn.query(`UPDATE app.${t} SET v = v + 1 WHERE v > 1`);
      await read('SELECT ROW_COUNT() AS rc');
      await read(`SELECT v FROM app.${t} ORDER BY id`);
      await read('SELECT FOUND_ROWS() AS fr');
      return out;
    };
    const direct = await mysql.createConnection({ host: db.host, port: db.port, ...db.users.native, database: 'app' });
    const viaHoop = await driverOf(c);
    try {
      const want = await diagnostics(direct, 'diag_direct');
      expect(want[1]).toEqual([{ rc: 3, id: 1 }]);
      expect(await diagnostics(viaHoop, 'diag_hoop')).toEqual(want);
    } finally {
      await direct.end();
      await viaHoop.end();
    }
  });

  it('MariaDB Connector/J (JDBC) gets what it gets directly: DatabaseMetaData, statements prepared at the server, types', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hoop-jdbc-'));
    const c = await connectMysql(stack, 'shop');
    try {
      writeFileSync(join(dir, 'Meta.java'), META_JAVA);
      // One JVM (its start is most of the time): direct, then through hoop.
      const url = (port: number, ca: string): string => `jdbc:mariadb://127.0.0.1:${port}/app?useSsl=true&serverSslCert=${ca}&useServerPrepStmts=true`;
      const both = await java([
        '-cp',
        CONNECTOR_J,
        join(dir, 'Meta.java'),
        url(db.port, db.caFile),
        db.users.native.user,
        db.users.native.password,
        url(c.info.port, c.info.sslCa),
        c.info.user,
        c.info.password,
      ]);
      expect(both.stderr).toBe('');
      const [, direct, viaHoop] = both.stdout.split(/^== \d\n/m);
      expect(direct).toContain('prepared 2: [2, TWO, 5.0]');
      expect(direct).toContain('text: [1.50, null, 2026-01-02, é]');
      expect(viaHoop).toBe(direct);
    } finally {
      await c.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('holds a statement for review: it reaches the server only once approved, and a denial is what the client hears', async () => {
    await db.sql('CREATE TABLE IF NOT EXISTS app.scratch (id int); INSERT INTO app.scratch VALUES (1)');
    const c = await connectMysql(governed, 'shop');
    const run = (sql: string) => mariadb([`--defaults-extra-file=${c.info.optionFile}`, '--batch', '-e', sql]);
    const decide = async (sql: string, verdict: 'approve' | 'deny') => {
      const id = await pendingReview(governed, sql);
      expect((await db.sql('SELECT count(*) FROM app.scratch')).trim(), 'nothing ran while held').toBe('1');
      const r = await governed.run(['review', verdict, id, ...(verdict === 'deny' ? ['--reason', 'not today'] : []), '--gateway', governed.gateway.url, '--ca-file', governed.pki.caFile], {
        HOOP_TOKEN: await governed.token('bob', ['ops']),
      });
      expect(r.code, r.stderr).toBe(0);
    };
    try {
      const denied = run('TRUNCATE TABLE scratch');
      await decide('TRUNCATE TABLE scratch', 'deny');
      expect((await denied).stderr).toMatch(/ERROR 1227 .*hoop: the review rv-\S+ ended: denied by bob \(not today\)/);
      expect((await db.sql('SELECT count(*) FROM app.scratch')).trim()).toBe('1');
      // Held statements run once: a prepared one would run as often as the client executes it.
      const driver = await driverOf(c);
      await expect(driver.execute('TRUNCATE scratch')).rejects.toMatchObject({ errno: 1227, message: expect.stringContaining('send it as a query (COM_QUERY), not a prepared statement') });
      // A long statement is read off the event loop and judged as any other (before: refused past 64 KiB); past 4 MiB it is refused.
      const [rows] = (await driver.query(`SELECT '${'x'.repeat(64 * 1024)}' AS x`)) as unknown as [Array<{ x: string }>];
      expect(rows[0]!.x).toHaveLength(64 * 1024);
      await expect(driver.execute(`/* ${'c'.repeat(70 * 1024)} */ TRUNCATE scratch`)).rejects.toMatchObject({ errno: 1227, message: expect.stringContaining('not a prepared statement') });
      await expect(driver.query(`SELECT '${'x'.repeat(4 * 1024 * 1024)}'`)).rejects.toMatchObject({ errno: 1227, message: expect.stringContaining('longer than the 4194304 the gateway judges') });
      await driver.end();
      const approved = run('TRUNCATE scratch');
      await decide('TRUNCATE scratch', 'approve');
      expect(await approved).toMatchObject({ code: 0, stderr: '' });
      // The MySQL protocol has no message a client shows while it waits: hoop connect's terminal says the review and its id.
      expect(c.stderr()).toMatch(/session \S+: statement held for review (rv-[0-9a-f]{16}) \(rule "truncates-reviewed"\).*hoop review approve \1/);
      expect((await db.sql('SELECT count(*) FROM app.scratch')).trim()).toBe('0');
    } finally {
      await c.stop();
    }
  });

  it('^C while hoop exec waits on a review: exit 130, the review withdrawn (the gateway hears the client leave while it holds the command), nothing ran', async () => {
    await db.sql('CREATE TABLE IF NOT EXISTS app.scratch (id int); DELETE FROM app.scratch; INSERT INTO app.scratch VALUES (1)');
    const sql = 'TRUNCATE TABLE scratch';
    let interrupted = false;
    const r = await spawnHoop(['exec', 'shop', '-c', sql, '--gateway', governed.gateway.url, '--ca-file', governed.pki.caFile], {
      env: { HOOP_TOKEN: await governed.token('alice'), HOOP_CONFIG_DIR: join(governed.dir, 'cli') },
      onStderr: (text, child) => {
        if (!interrupted && /held for review/.test(text)) {
          interrupted = true;
          child.kill('SIGINT');
        }
      },
    });
    expect(r.code, r.stderr).toBe(130);
    expect(r.stderr).toContain('interrupted: the session is closed, and a statement it held for review is withdrawn');
    expect(r.stderr).not.toMatch(/write after end|node:events/);
    await eventually(
      async () => {
        const ls = await governed.run(['review', 'ls', '--state', 'all', '--json', '--gateway', governed.gateway.url, '--ca-file', governed.pki.caFile], {
          HOOP_TOKEN: await governed.token('bob', ['ops']),
        });
        expect((JSON.parse(ls.stdout) as { reviews: Array<{ state: string; sql?: string }> }).reviews.find((x) => x.sql === sql)?.state).toBe('withdrawn');
      },
      { timeout: 60_000, interval: 200 },
    );
    expect((await db.sql('SELECT count(*) FROM app.scratch')).trim()).toBe('1');
  });

  it('does not relay COM_RESET_CONNECTION on a governed session (the server would take a sql_mode the judge has not read)', async () => {
    const { stream, got } = await rawSession('raw-reset');
    stream.write(packet(0, Buffer.from([0x1f])));
    await eventually(() => expect(got.length).toBeGreaterThan(0), { timeout: 60_000, interval: 20 });
    expect(parseErr(got[0]!)).toMatchObject({ code: 1227, message: expect.stringContaining('COM_RESET_CONNECTION is not relayed') });
    stream.end();
  });

  it('answers pipelined commands in turn, a refusal after the rows before it, and records them in order', async () => {
    const { stream, got } = await rawSession('raw-pipelined');
    // A slow query, a denied one, a ping and a USE of another database, in one write.
    stream.write(
      Buffer.concat([
        packet(0, Buffer.from('\x03SELECT SLEEP(0.3), 42', 'latin1')),
        packet(0, Buffer.from('\x03DELETE FROM items WHERE id = 1', 'latin1')),
        packet(0, Buffer.from([0x0e])),
        packet(0, Buffer.from('\x02mysql', 'latin1')),
      ]),
    );
    await eventually(() => expect(got.filter((p) => p[0] === 0xff || p[0] === 0x00).length).toBeGreaterThanOrEqual(3), { timeout: 60_000, interval: 20 });
    const errs = got.filter((p) => p[0] === 0xff).map((p) => parseErr(p).message);
    const rowAt = got.findIndex((p) => p.toString('latin1').includes('42'));
    const deniedAt = got.findIndex((p) => p[0] === 0xff);
    expect(rowAt).toBeGreaterThanOrEqual(0);
    expect(deniedAt).toBeGreaterThan(rowAt);
    expect(errs[0]).toMatch(/denied by rule "no-deletes"/);
    expect(errs[1]).toMatch(/serves the database app/);
    stream.end();
    const events = await recordingEvents(governed, 'raw-pipelined');
    expect(events.filter((e) => e.t === 'query' || e.t === 'complete' || e.t === 'error' || e.t === 'row').map((e) => e.t)).toEqual([
      'query',
      'row',
      'complete',
      'query',
      'error',
      'complete',
      'query',
      'error',
    ]);
  });

  it('runs hoop exec on a MySQL connection: results as a table, a refusal with its exit code, nothing of it run', async () => {
    const token = await stack.token('alice');
    const ran = await stack.run(['exec', 'shop', '-c', 'SELECT id, name FROM items WHERE id <= 2 ORDER BY id', '--gateway', stack.gateway.url, '--ca-file', stack.pki.caFile], { HOOP_TOKEN: token });
    expect(ran.code, ran.stderr).toBe(0);
    expect(ran.stdout).toMatch(/ id \| name\s*\n-+\+-+\n +1 \| one\s*\n +2 \| two\s*\n\(2 rows\)/);
    const csv = await stack.run(['exec', 'shop', '--csv', '-c', 'SELECT id, name FROM items WHERE id = 1', '--gateway', stack.gateway.url, '--ca-file', stack.pki.caFile], { HOOP_TOKEN: token });
    expect(csv.stdout).toBe('id,name\n1,one\n');
    // The CLI kept its own record of the session, which agrees with the gateway's.
    const execSession = lastSession('shop');
    await eventually(
      async () => {
        const v = await stack.run(['sessions', 'verify', execSession, '--gateway', stack.gateway.url, '--ca-file', stack.pki.caFile], { HOOP_TOKEN: token });
        expect(v.stdout).toContain("cross-check: the gateway's and the CLI's records agree on 1 statement(s)");
      },
      { timeout: 60_000, interval: 250 },
    );
    const count = (): Promise<string> => db.sql('SELECT count(*) FROM app.items').then((n) => n.trim());
    const before = await count();
    const denied = await governed.run(['exec', 'shop', '-c', 'DELETE FROM items WHERE id >= 1', '--gateway', governed.gateway.url, '--ca-file', governed.pki.caFile], {
      HOOP_TOKEN: await governed.token('alice'),
    });
    expect(denied.code).toBe(3);
    expect(denied.stderr).toMatch(/hoop: denied by rule "no-deletes": rows are not deleted here/);
    expect(await count()).toBe(before);
    const failed = await stack.run(['exec', 'shop', '-c', 'SELECT * FROM nowhere', '--gateway', stack.gateway.url, '--ca-file', stack.pki.caFile], { HOOP_TOKEN: token });
    expect(failed.code).toBe(1);
    expect(failed.stderr).toMatch(/doesn't exist \(MySQL error 1146\)/);
  });

  it("hoop run serves the command the connection in MariaDB's own variables and DATABASE_URL: the mariadb client with no option and mysql2 reach the server, as the run", async () => {
    const token = await stack.token('alice');
    const mysql2 = createRequire(import.meta.url).resolve('mysql2/promise');
    const driver = `const m = require(${JSON.stringify(mysql2)}); (async () => { const c = await m.createConnection(process.env.DATABASE_URL); const [r] = await c.query("SELECT name FROM items WHERE id = 2"); console.log("driver=" + r[0].name); await c.end(); })()`;
    const script = [
      'echo "run=$HOOP_RUN_ID url=${DATABASE_URL%%:*} host=$MYSQL_HOST port=$MYSQL_TCP_PORT"',
      'mariadb --batch -N -e "SELECT name FROM items WHERE id = 1"',
      'mariadb --defaults-extra-file="$HOOP_MYSQL_OPTION_FILE" --batch -N -e "SELECT 40 + 2"',
      `${JSON.stringify(process.execPath)} -e ${shellQuote(driver)}`,
    ].join(' && ');
    const r = await stack.run(['run', '--connect', 'shop', '--gateway', stack.gateway.url, '--ca-file', stack.pki.caFile, '--', 'sh', '-c', script], {
      HOOP_TOKEN: token,
      PATH: process.env.PATH ?? '/usr/bin:/bin',
    });
    expect(r.code).toBe(0);
    const runId = /^run=(run-\S+) url=mysql host=127\.0\.0\.1 port=\d+$/m.exec(r.stdout)?.[1];
    expect(runId, r.stdout).toBeDefined();
    expect(r.stderr).toBe(runSaid(runId!));
    expect(r.stdout).toContain('\none\n42\ndriver=two\n');
    // The gateway's sessions of the run: the mariadb client's two and the driver's, each with its statement and the row it read.
    await eventually(
      async () => {
        const ls = await stack.run(['sessions', 'ls', '--json', '--run', runId!, '--gateway', stack.gateway.url, '--ca-file', stack.pki.caFile], { HOOP_TOKEN: token });
        const sessions = (JSON.parse(ls.stdout) as { sessions: Array<{ runId?: string; statements: number; rowsRead: number; endedAt?: string }> }).sessions.filter((s) => s.statements > 0);
        expect(sessions.map((s) => [s.runId, s.statements, s.rowsRead, s.endedAt !== undefined])).toEqual([0, 1, 2].map(() => [runId, 1, 1, true]));
      },
      { timeout: 60_000, interval: 200 },
    );
  });

  it("sets an access's server timeouts on MariaDB at sign-in: a statement past its time is cut by the server, and no statement may change them", async () => {
    const c = await connectMysql(governed, 'shop-timed');
    const driver = await driverOf(c);
    try {
      const [set] = await driver.query('SELECT @@max_statement_time AS st, @@innodb_lock_wait_timeout AS il, @@lock_wait_timeout AS ml, @@idle_transaction_timeout AS it');
      expect(set).toEqual([{ st: 1, il: 2, ml: 2, it: 3 }]);
      await expect(driver.query('SELECT SLEEP(5)')).rejects.toMatchObject({ errno: 1969 });
      for (const change of [
        'SET SESSION max_statement_time = 0',
        'SET @@idle_transaction_timeout = 100, autocommit = 1',
        'SET STATEMENT max_statement_time = 0 FOR SELECT SLEEP(2)',
        "PREPARE s FROM 'SET lock_wait_timeout = 100'",
      ]) {
        await expect(driver.query(change), change).rejects.toMatchObject({ errno: 1227, message: expect.stringMatching(/^hoop: the access sets server timeouts/) });
      }
      const [still] = await driver.query('SELECT @@max_statement_time AS st, @@idle_transaction_timeout AS it');
      expect(still).toEqual([{ st: 1, it: 3 }]);
    } finally {
      await driver.end();
      await c.stop();
    }
  });

  it('counts the rows of a write under a row limit before they commit: within it the write is kept, over it rolled back and refused, in autocommit, in a transaction and prepared', async () => {
    await db.sql(
      'CREATE TABLE app.guarded (id int primary key, v int) ENGINE=InnoDB; INSERT INTO app.guarded VALUES (1, 0), (2, 0), (3, 0), (4, 0), (5, 0); CREATE TABLE app.loose (id int primary key, v int) ENGINE=MyISAM; INSERT INTO app.loose VALUES (1, 0)',
    );
    const c = await connectMysql(governed, 'shop-guarded');
    const driver = await driverOf(c);
    const values = async (): Promise<string> => (await db.sql('SELECT GROUP_CONCAT(v ORDER BY id) FROM app.guarded')).trim();
    const inTransaction = async (): Promise<number> => ((await driver.query('SELECT @@in_transaction AS t')) as unknown as [Array<{ t: number }>])[0][0]!.t;
    const over = (n: number) => ({ errno: 1227, message: `hoop: the UPDATE changed ${n} rows, over the limit of 2 (rule "guarded"); it was rolled back` });
    try {
      // Autocommit: kept within the limit, committed as the client asked; over it, nothing changed.
      const [kept] = await driver.query('UPDATE guarded SET v = 1 WHERE id <= 2');
      expect(kept).toMatchObject({ affectedRows: 2 });
      expect(await values()).toBe('1,1,0,0,0');
      expect(await inTransaction()).toBe(0);
      await expect(driver.query('UPDATE guarded SET v = 7 WHERE id = id')).rejects.toMatchObject(over(5));
      expect(await values()).toBe('1,1,0,0,0');
      expect(await inTransaction()).toBe(0);
      // In the client's transaction: the write over the limit alone is undone; the transaction goes on.
      await driver.query('BEGIN');
      await driver.query('UPDATE guarded SET v = 2 WHERE id = 3');
      await expect(driver.query('UPDATE guarded SET v = 9 WHERE v < 5')).rejects.toMatchObject(over(5));
      expect(await inTransaction()).toBe(1);
      await driver.query('COMMIT');
      expect(await values()).toBe('1,1,2,0,0');
      // Prepared (the binary protocol): the same count.
      await expect(driver.execute('UPDATE guarded SET v = ? WHERE id >= ?', [8, 1])).rejects.toMatchObject(over(5));
      const [one] = await driver.execute('UPDATE guarded SET v = ? WHERE id >= ?', [8, 5]);
      expect(one).toMatchObject({ affectedRows: 1 });
      expect(await values()).toBe('1,1,2,0,8');
      // A table whose writes cannot be rolled back is not written under a limit; one statement at a time.
      await expect(driver.query('UPDATE loose SET v = 1 WHERE id = 1')).rejects.toMatchObject({ errno: 1227, message: expect.stringContaining('hoop knows app.loose as no InnoDB table') });
      const multi = await mysql.createConnection({
        host: c.info.host,
        port: c.info.port,
        user: c.info.user,
        password: c.info.password,
        database: 'app',
        multipleStatements: true,
        ssl: { ca: readFileSync(c.info.sslCa) },
      });
      await expect(multi.query('UPDATE guarded SET v = 3 WHERE id = 4; SELECT 1')).rejects.toMatchObject({ errno: 1227, message: expect.stringContaining('send it alone') });
      await multi.end();
      expect((await db.sql('SELECT v FROM app.loose')).trim()).toBe('0');
    } finally {
      await driver.end();
      await c.stop();
    }
  });

  // A table renamed or altered since the session opened: the gateway checks, in its transaction before the write, that every table it names is InnoDB now.
  it("does not let a write under a row limit commit more rows through a MyISAM table renamed into an InnoDB table's name", async () => {
    await db.sql(
      'CREATE TABLE app.swapped (id int primary key, v int) ENGINE=InnoDB; CREATE TABLE app.swapped_myisam (id int primary key, v int) ENGINE=MyISAM; INSERT INTO app.swapped_myisam SELECT seq, 0 FROM seq_1_to_5',
      { database: 'app' },
    );
    const c = await connectMysql(governed, 'shop-guarded');
    const driver = await driverOf(c);
    try {
      await driver.query('RENAME TABLE swapped TO swapped_innodb, swapped_myisam TO swapped');
      await expect(driver.query('UPDATE swapped SET v = 1 WHERE id = id')).rejects.toMatchObject({ errno: 1227, message: expect.stringContaining('is no InnoDB table now') });
      await expect(driver.query('UPDATE swapped SET v = 1 WHERE id = 1')).rejects.toMatchObject({ errno: 1227, message: expect.stringContaining('is no InnoDB table now') });
      expect((await db.sql('SELECT GROUP_CONCAT(v ORDER BY id) FROM app.swapped')).trim()).toBe('0,0,0,0,0');
    } finally {
      await driver.end();
      await c.stop();
    }
  });

  // A SET inside stored code (a procedure, a function, a trigger) is not judged: the access's timeouts are set again after what may run it.
  it("does not let stored code the session calls change the access's server timeouts", async () => {
    await db.sql('CREATE PROCEDURE app.untimed() SET max_statement_time = 0');
    const c = await connectMysql(governed, 'shop-timed');
    const driver = await driverOf(c);
    try {
      await driver.query('CALL untimed()');
      await expect(driver.query('SELECT SLEEP(2)')).rejects.toMatchObject({ errno: 1969 });
    } finally {
      await driver.end();
      await c.stop();
    }
  });

  it('holds a write over a row limit of overLimit: review for a reviewer, rolled back meanwhile; approved, it runs as sent', async () => {
    await db.sql('CREATE TABLE app.reviewed (id int primary key, v int) ENGINE=InnoDB; INSERT INTO app.reviewed VALUES (1, 0), (2, 0), (3, 0)');
    const c = await connectMysql(governed, 'shop');
    const sql = 'UPDATE reviewed SET v = 5 WHERE id >= 2';
    try {
      const held = mariadb([`--defaults-extra-file=${c.info.optionFile}`, '--batch', '-e', sql]);
      const id = await pendingReview(governed, sql);
      expect((await db.sql('SELECT GROUP_CONCAT(v ORDER BY id) FROM app.reviewed')).trim(), 'rolled back while held').toBe('0,0,0');
      const r = await governed.run(['review', 'approve', id, '--gateway', governed.gateway.url, '--ca-file', governed.pki.caFile], { HOOP_TOKEN: await governed.token('bob', ['ops']) });
      expect(r.code, r.stderr).toBe(0);
      expect(await held).toMatchObject({ code: 0, stderr: '' });
      expect((await db.sql('SELECT GROUP_CONCAT(v ORDER BY id) FROM app.reviewed')).trim()).toBe('0,5,5');
    } finally {
      await c.stop();
    }
  });

  it('judges each statement by the policy as the server will read it: denied ones never reach it, whatever comment or escape hides them', async () => {
    const c = await connectMysql(governed, 'shop');
    const run = (sql: string) => mariadb([`--defaults-extra-file=${c.info.optionFile}`, '--batch', '-e', sql]);
    try {
      expect(await run("INSERT INTO items VALUES (12, 'judged'); SELECT name FROM items WHERE id = 12")).toMatchObject({ code: 0, stdout: 'name\njudged\n' });
      for (const hidden of [
        'DELETE FROM items WHERE id = 12',
        '/*!50000 DELETE FROM items WHERE id = 12 */',
        'SELECT 1 --1; DELETE FROM items WHERE id = 12',
        "SELECT 'a\\\\'; DELETE FROM items WHERE id = 12; -- '",
      ]) {
        const r = await run(hidden);
        expect(r.code, hidden).not.toBe(0);
        expect(r.stderr, hidden).toMatch(/ERROR 1227 .*hoop: denied by rule "no-deletes": rows are not deleted here/);
      }
      // A driver that sends several statements in one query: the whole query is refused, its first statement too.
      const driver = await driverOf(c, { multipleStatements: true });
      await expect(driver.query("UPDATE items SET name = 'first' WHERE id = 12; DELETE FROM items WHERE id = 12")).rejects.toMatchObject({ errno: 1227 });
      await driver.end();
      expect((await db.sql('SELECT name FROM app.items WHERE id = 12')).trim()).toBe('judged');
      const unreadable = await run("LOAD DATA INFILE '/etc/hostname' INTO TABLE items");
      expect(unreadable.stderr).toMatch(/ERROR 1227 .*could not be parsed as MySQL SQL/);
      expect((await db.sql('SELECT count(*) FROM app.items WHERE id = 12')).trim()).toBe('1');
    } finally {
      await c.stop();
    }
    const ro = await connectMysql(governed, 'shop-ro');
    const runRo = (sql: string) => mariadb([`--defaults-extra-file=${ro.info.optionFile}`, '--batch', '-e', sql]);
    try {
      expect(await runRo('SELECT count(*) AS n FROM items WHERE id = 12')).toMatchObject({ code: 0, stdout: 'n\n1\n' });
      for (const write of ["UPDATE items SET name = 'changed' WHERE id = 12", 'SET SESSION TRANSACTION READ WRITE']) {
        const r = await runRo(write);
        expect(r.stderr, write).toMatch(/ERROR 1227 .*hoop: denied/);
      }
      // What the judge lets through, the server's session refuses too: read-only access opens it read-only.
      expect((await runRo('SELECT @@SESSION.tx_read_only AS ro')).stdout).toBe('ro\n1\n');
      expect((await db.sql('SELECT name FROM app.items WHERE id = 12')).trim()).toBe('judged');
    } finally {
      await ro.stop();
    }
  });
});

describe("a driver's cancel", () => {
  it("KILL QUERY of the id a client was greeted with, from a connection of its own, cuts that session's query alone; an id that is no session of the same person's is refused", async () => {
    for (const s of [stack, governed]) {
      const c = await connectMysql(s, 'shop');
      const [a, b] = [await driverOf(c), await driverOf(c)];
      try {
        // Each client of the local port is greeted with an id of its own.
        expect(a.threadId).not.toBe(b.threadId);
        const sleeping = a.query('SELECT SLEEP(30) AS s').then(
          () => 'ran to its end',
          (e: { errno: number }) => e.errno,
        );
        await eventually(async () => expect((await db.sql("SELECT count(*) FROM information_schema.PROCESSLIST WHERE INFO = 'SELECT SLEEP(30) AS s'")).trim()).toBe('1'));
        await b.query(`KILL QUERY ${a.threadId}`);
        // ER_QUERY_INTERRUPTED, at once; the session goes on.
        expect(await sleeping).toBe(1317);
        expect((await a.query('SELECT 2 AS two'))[0]).toEqual([{ two: 2 }]);
        // The server's own id (`SELECT CONNECTION_ID()`) names the same session.
        const [[{ id }]] = (await a.query('SELECT CONNECTION_ID() AS id')) as unknown as [[{ id: number }]];
        const again = a.query('SELECT SLEEP(30) AS s').then(
          () => 'ran to its end',
          (e: { errno: number }) => e.errno,
        );
        await eventually(async () => expect((await db.sql("SELECT count(*) FROM information_schema.PROCESSLIST WHERE INFO = 'SELECT SLEEP(30) AS s'")).trim()).toBe('1'));
        await b.query(`KILL QUERY ${id}`);
        expect(await again).toBe(1317);
        for (const stray of ['KILL QUERY 4000000000', `KILL ${(b.threadId! + 7919) >>> 0}`, 'KILL CONNECTION 4294967295']) {
          await expect(b.query(stray), stray).rejects.toMatchObject({ errno: 1227, message: expect.stringMatching(/^hoop: KILL \d+: no session of yours on shop/) });
        }
        // A prepared KILL would take its id later, unseen: refused.
        await expect(b.execute('KILL QUERY ?', [a.threadId])).rejects.toMatchObject({ errno: 1227 });
        expect((await a.query('SELECT 3 AS three'))[0]).toEqual([{ three: 3 }]);
      } finally {
        await a.end();
        await b.end();
        await c.stop();
      }
    }
  });
});

describe("a governed session's sql_mode and character set", () => {
  it('are followed when a query sets them to modes hoop knows by name (then each statement is judged as the server reads it under them), refused otherwise', async () => {
    const c = await connectMysql(governed, 'shop');
    const driver = await driverOf(c, { multipleStatements: true });
    try {
      await driver.query("INSERT INTO items VALUES (13, 'followed')");
      await driver.query("SET SESSION sql_mode = 'NO_BACKSLASH_ESCAPES'");
      // Under NO_BACKSLASH_ESCAPES the backslash ends nothing: the server reads a SELECT, then a DELETE; so does the judge, which follows the mode.
      await expect(driver.query("SELECT 'a\\'; DELETE FROM items WHERE id = 13; -- '")).rejects.toMatchObject({ errno: 1227, message: expect.stringMatching(/denied by rule "no-deletes"/) });
      expect((await db.sql('SELECT name FROM app.items WHERE id = 13')).trim()).toBe('followed');
      await driver.query('SET NAMES utf8mb4');
      await driver.query("SELECT 1; SET sql_mode = 'ANSI_QUOTES,STRICT_TRANS_TABLES'");
      const [rows] = await driver.query('SELECT "name" FROM items WHERE id = 13');
      expect(rows).toEqual([{ name: 'followed' }]);
      // What hoop cannot follow stays refused: a mode it cannot read under, a mode by number or expression, a change with statements after it.
      for (const unfollowed of ["SET sql_mode = 'ORACLE'", 'SET sql_mode = 4', "SET sql_mode = CONCAT(@@sql_mode, ',NO_BACKSLASH_ESCAPES')", "SET sql_mode = ''; SELECT 1", 'SET NAMES koi8r']) {
        await expect(driver.query(unfollowed), unfollowed).rejects.toMatchObject({ errno: 1227 });
      }
      const [[mode]] = (await driver.query('SELECT @@SESSION.sql_mode AS m')) as unknown as [[{ m: string }]];
      expect(mode!.m).toBe('ANSI_QUOTES,STRICT_TRANS_TABLES');
    } finally {
      await driver.end();
      await c.stop();
    }
  });
});

describe("hoop connect --direct for a mysql connection: the gateway's MySQL port", () => {
  /** `hoop connect --direct --once --json` of `name` on the governed stack: the credential, its option file. */
  async function direct(name: string) {
    const r = await governed.run(['connect', name, '--direct', '--once', '--json', '--ttl', '120s', '--gateway', governed.gateway.url, '--ca-file', governed.pki.caFile], {
      HOOP_TOKEN: await governed.token('alice'),
    });
    expect(r.code, r.stderr).toBe(0);
    return JSON.parse(r.stdout) as { host: string; port: number; user: string; password: string; database: string; sslCa: string; optionFile: string; id: string };
  }

  it('serves the real mariadb client and mysql2 over verified TLS with a direct credential, under the same policy, each session recorded', async () => {
    const d = await direct('shop');
    expect(d.user).toMatch(/^dc_/);
    const run = (sql: string) => mariadb([`--defaults-extra-file=${d.optionFile}`, '--batch', '-e', sql]);
    const write = await run("INSERT INTO items VALUES (40, 'direct'); SELECT name FROM items WHERE id = 40; \\s");
    expect(write.stderr).toBe('');
    expect(write.stdout).toContain('name\ndirect\n');
    expect(write.stdout).toMatch(/SSL:\s+Cipher in use is/);
    expect((await db.sql('SELECT name FROM app.items WHERE id = 40')).trim()).toBe('direct');
    const denied = await run('/*!50000 DELETE FROM items WHERE id = 40 */');
    expect(denied.stderr).toMatch(/ERROR 1227 .*hoop: denied by rule "no-deletes"/);
    expect((await db.sql('SELECT count(*) FROM app.items WHERE id = 40')).trim()).toBe('1');
    const driver = await mysql.createConnection({ host: d.host, port: d.port, user: d.user, password: d.password, database: 'app', ssl: { ca: readFileSync(d.sslCa) } });
    const [rows] = await driver.execute('SELECT name FROM items WHERE id = ?', [40]);
    expect(rows).toEqual([{ name: 'direct' }]);
    await driver.end();
    // Each session the gateway's: listed as alice's via direct, its statements in its signed recording.
    const listed = await eventually(
      async () => {
        const r = await governed.run(['sessions', 'ls', '--json', '--gateway', governed.gateway.url, '--ca-file', governed.pki.caFile], { HOOP_TOKEN: await governed.token('alice') });
        const all = (JSON.parse(r.stdout) as { sessions: Array<{ id: string; via?: string; connection: string; subject: string; endedAt?: string }> }).sessions;
        const direct = all.filter((x) => x.via === 'direct' && x.connection === 'shop' && x.endedAt !== undefined);
        expect(direct.length).toBeGreaterThanOrEqual(3);
        return direct;
      },
      { timeout: 60_000, interval: 200 },
    );
    expect(listed[0]).toMatchObject({ subject: 'alice' });
    const recorded = (await Promise.all(listed.map((x) => recordingEvents(governed, x.id)))).flat();
    // Values to columns the statement does not name are kept as keyed hashes (short numbers stay).
    expect(recorded.some((e) => e.t === 'query' && /INSERT INTO items VALUES \(40, '\[redacted:[0-9a-f]{8}\]'\)/.test(String(e.sql)))).toBe(true);
  });

  it('refuses a client without TLS, a wrong password, a PostgreSQL credential, and a MySQL credential at the PostgreSQL port; nothing runs', async () => {
    const d = await direct('shop');
    const plain = await mariadb(['--host', d.host, '--port', String(d.port), '--user', d.user, `--password=${d.password}`, '--skip-ssl', '-e', "INSERT INTO items VALUES (41, 'plain')"]);
    expect(plain.stderr).toMatch(/ERROR 3159 .*hoop: the gateway takes MySQL clients over TLS only/);
    const wrong = await mariadb([`--defaults-extra-file=${d.optionFile}`, '--password=wrong', '-e', "INSERT INTO items VALUES (41, 'wrong')"]);
    expect(wrong.stderr).toMatch(/ERROR 1045 .*Access denied for user 'dc_/);
    const nobody = await mariadb([`--defaults-extra-file=${d.optionFile}`, '--user=dc_AAAAAAAAAAAAAAAAAAAAAA', '-e', 'SELECT 1']);
    expect(nobody.stderr).toMatch(/ERROR 1045 .*Access denied for user 'dc_AAAA/);
    // The same credential at the gateway's main port, as a PostgreSQL client would use it: signed in, then refused for its connection's protocol.
    const pg = await new Promise<{ code: number; stderr: string }>((resolve) =>
      execFile(
        'psql',
        [`host=${d.host} port=${new URL(governed.gateway.url).port} user=${d.user} dbname=app sslmode=verify-full sslrootcert=${governed.pki.caFile}`, '-c', 'SELECT 1'],
        { env: { ...process.env, PGPASSWORD: d.password } },
        (err, _out, stderr) => resolve({ code: err ? 1 : 0, stderr }),
      ),
    );
    expect(pg.stderr).toMatch(/"shop" is a mysql connection: its direct clients connect at the gateway's MySQL port/);
    expect((await db.sql('SELECT count(*) FROM app.items WHERE id = 41')).trim()).toBe('0');
  });
});
