/**
 * A client that bypasses `hoop connect` and speaks MySQL on a tunnel to the gateway itself: what it
 * may not do (sign in as another user, ask for TLS or another database, send commands hoop does
 * not relay, break the protocol) is refused by the gateway, the server is unchanged, and the
 * gateway keeps serving others.
 */
import { randomBytes } from 'node:crypto';
import { connect, createServer, type Server, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { HOOP_BIN } from '../harness/hoop-process.js';
import { readFileSync } from 'node:fs';
import mysql from 'mysql2/promise';
import { type MySqlClient, MySqlGreeted } from '../../src/mysql/wire/client.js';
import { Cap, sslRequest } from '../../src/mysql/wire/handshake.js';
import { packet, type MySqlPacket } from '../../src/mysql/wire/packets.js';
import { Conversation } from '../../src/mysql/pipeline/conversation.js';
import { parseErr, parseOk } from '../../src/mysql/wire/results.js';
import { openTunnel } from '../../src/tunnel/transport.js';
import { startMariaDb, type MariaServer, mariaConnectionYaml } from '../harness/mariadb.js';
import { packets } from '../harness/mysql-packets.js';
import { PolicyGitRepo } from '../harness/policy-git.js';
import { startStack, type HoopStack } from '../harness/stack.js';
import { recordingEvents } from '../harness/exported-events.js';
import { listenOnLoopback } from '../harness/listen.js';

let db: MariaServer;
let stack: HoopStack;
let masked: HoopStack;
let limited: HoopStack;
let repo: PolicyGitRepo;
let limitedRepo: PolicyGitRepo;
let lumping: Server;

/**
 * A TCP proxy to `port` that hands the server's bytes on in lumps (all it sent until it paused for
 * 20 ms), so that a long row's last bytes and the packets after it reach the gateway in one read.
 */
async function lumpingProxy(port: number): Promise<{ server: Server; port: number }> {
  const server = createServer((client) => {
    const up = connect(port, '127.0.0.1');
    client.pipe(up);
    let lump: Buffer[] = [];
    let timer: NodeJS.Timeout | undefined;
    up.on('data', (b: Buffer) => {
      lump.push(b);
      clearTimeout(timer);
      timer = setTimeout(() => {
        client.write(Buffer.concat(lump));
        lump = [];
      }, 20);
    });
    for (const [a, b] of [
      [client, up],
      [up, client],
    ] as const) {
      a.on('error', () => b.destroy());
      a.on('close', () => setTimeout(() => b.destroy(), 50));
    }
  });
  return { server, port: await listenOnLoopback(server) };
}

beforeAll(async () => {
  db = await startMariaDb();
  stack = await startStack({
    gateway: { mysql: { handshakeTimeoutMs: 1500 } },
    extraConfig: 'mysqlListen: 127.0.0.1:0\n',
    env: { MARIA_PASSWORD: db.users.native.password },
    connections: `  - { name: shop, type: mysql, host: 127.0.0.1, port: ${db.port}, database: app, user: app, password: "\${env:MARIA_PASSWORD}", tls: { mode: require }, allow: { subjects: [alice] } }\n`,
  });
  repo = new PolicyGitRepo('hoop-mysql-masked-');
  const lumps = await lumpingProxy(db.port);
  lumping = lumps.server;
  masked = await startStack({
    env: { MARIA_PASSWORD: db.users.native.password },
    policy: () => {
      repo.commit(`version: 1
connections:
${mariaConnectionYaml(db.port)}
${mariaConnectionYaml(lumps.port, 'shop-lumped', '{ mode: disable }')}
access:
  - { name: people, subjects: [alice], connections: [shop, shop-lumped], mode: read-write }
masking:
  columns:
    - { table: app.items, column: name, strategy: redact }
    - { table: app.mcust, column: secret, strategy: redact }
  detectors:
    - { detector: payment-card, strategy: last4 }
recording: { rowCap: 2 }
`);
      return repo.gatewayBlock(['${env:MARIA_*}']);
    },
  });
  limitedRepo = new PolicyGitRepo('hoop-mysql-limited-');
  limited = await startStack({
    env: { MARIA_PASSWORD: db.users.native.password },
    policy: async () => {
      await db.sql('CREATE TABLE app.counted (id int primary key, v int) ENGINE=InnoDB; INSERT INTO app.counted SELECT seq, 0 FROM seq_1_to_5', { database: 'app' });
      limitedRepo.commit(`version: 1
connections:
${mariaConnectionYaml(db.port)}
access:
  - { name: limited, subjects: [alice], connections: [shop], mode: read-write, maxAffectedRows: 2 }
statements:
  unparseable: allow
`);
      return limitedRepo.gatewayBlock(['${env:MARIA_*}']);
    },
  });
});

afterAll(async () => {
  await stack?.close();
  await masked?.close();
  await limited?.close();
  repo?.remove();
  limitedRepo?.remove();
  lumping?.close();
  await db?.stop();
});

/** A raw tunnel to `shop` of stack `on`, as a client that skips the CLI opens it. */
async function tunnel(on: HoopStack = stack): Promise<Duplex> {
  const { channel } = await openTunnel({
    gateway: on.gateway.url,
    connection: 'shop',
    token: await on.token('alice'),
    sessionId: `raw-${randomBytes(6).toString('hex')}`,
    clientVersion: 'test',
    ca: on.pki.ca,
  });
  return channel;
}

/** A client signed in on a raw tunnel (no password: the tunnel is authenticated) as user `whoever`. */
async function signedIn(): Promise<MySqlClient> {
  return (await MySqlGreeted.read(await tunnel())).signIn({ user: 'whoever', password: '', database: 'app' });
}

describe('a client speaking MySQL to the gateway directly', () => {
  it('is signed in as the connection user whatever user it names, and COM_CHANGE_USER is refused', async () => {
    const client = await signedIn();
    expect(await client.query('SELECT CURRENT_USER()')).toMatchObject([{ rows: [['app@%']] }]);
    const stream = client.release();
    const p = packets(stream);
    stream.write(packet(0, Buffer.concat([Buffer.from([0x11]), Buffer.from('root\0\0app\0', 'latin1')])));
    expect(parseErr((await p.next()).payload)).toMatchObject({ code: 1227, message: expect.stringContaining('COM_CHANGE_USER') });
    stream.write(packet(0, Buffer.from([0x99])));
    expect(parseErr((await p.next()).payload).message).toMatch(/command 0x99 is not one hoop relays/);
    // Cursors: their rows come by COM_STMT_FETCH, in an answer hoop does not follow.
    stream.write(packet(0, Buffer.from([0x17, 1, 0, 0, 0, 1, 1, 0, 0, 0])));
    expect(parseErr((await p.next()).payload).message).toMatch(/executed with a cursor is not relayed/);
    stream.write(packet(0, Buffer.from([0x1c, 1, 0, 0, 0, 10, 0, 0, 0])));
    expect(parseErr((await p.next()).payload).message).toMatch(/COM_STMT_FETCH/);
    stream.end();
  });

  it('is refused TLS on the tunnel, and a database other than the connection one', async () => {
    const tls = await tunnel();
    const g = await MySqlGreeted.read(tls);
    expect(g.greeting.capabilities & Cap.SSL).toBe(0);
    const raw = g.signIn({ user: 'x', password: '', tls: { rejectUnauthorized: false } });
    await expect(raw).rejects.toThrow(/does not offer TLS/);
    const forced = await tunnel();
    const fp = packets(forced);
    await fp.next();
    forced.write(packet(1, sslRequest(Cap.PROTOCOL_41 | Cap.SECURE_CONNECTION, 1 << 24, 45)));
    expect(parseErr((await fp.next()).payload).message).toMatch(/the tunnel to the gateway is TLS already/);
    await fp.closed;
    const other = await MySqlGreeted.read(await tunnel());
    await expect(other.signIn({ user: 'x', password: '', database: 'mysql' })).rejects.toMatchObject({ errno: 1044, message: expect.stringContaining('serves the database app, not mysql') });
  });

  it('is cut off when it breaks the protocol, and the gateway serves the next client', async () => {
    const bad = await tunnel();
    const bp = packets(bad);
    await bp.next();
    bad.write(packet(1, Buffer.alloc(40))); // a response without protocol 4.1
    await bp.closed;
    const stream = (await signedIn()).release();
    const p = packets(stream);
    stream.write(packet(3, Buffer.from('\x03SELECT 1', 'latin1'))); // a command whose sequence is not 0
    await p.closed;
    expect(await (await signedIn()).query('SELECT 42')).toMatchObject([{ rows: [['42']] }]);
  });

  it('is cut off at the handshake deadline when it never answers the greeting, not before', async () => {
    const silent = await tunnel();
    const p = packets(silent);
    await p.next();
    const started = Date.now();
    await p.closed;
    const waited = Date.now() - started;
    // At the deadline (handshakeTimeoutMs: 1.5 s here), not before.
    expect(waited).toBeGreaterThanOrEqual(1400);
    expect(waited).toBeLessThan(15_000);
    expect(await (await signedIn()).query('SELECT 7')).toMatchObject([{ rows: [['7']] }]);
  });

  it("at the gateway's MySQL port: a client that never answers is cut at the deadline, one without TLS or with a broken packet is closed, and the next is served", async () => {
    const port = Number(stack.logs().find((l) => l.event === 'gateway.mysql-listening')?.port);
    const raw = async (): Promise<{ socket: Socket; p: ReturnType<typeof packets>; greeting: MySqlPacket }> => {
      const socket = connect({ host: '127.0.0.1', port });
      const p = packets(socket);
      return { socket, p, greeting: await p.next() };
    };
    const silent = await raw();
    const caps = silent.greeting.payload.readUInt16LE(silent.greeting.payload.indexOf(0, 1) + 1 + 4 + 9);
    expect(caps & Cap.SSL).toBe(Cap.SSL);
    const started = Date.now();
    await silent.p.closed;
    expect(Date.now() - started).toBeGreaterThanOrEqual(1400);
    // A packet of 16 MiB announced before TLS, and an SSLRequest followed by no TLS: each closes its own connection.
    const huge = await raw();
    huge.socket.write(Buffer.from([0xff, 0xff, 0xff, 1, 0, 0]));
    await huge.p.closed;
    const notTls = await raw();
    notTls.socket.write(Buffer.concat([packet(1, sslRequest(Cap.PROTOCOL_41 | Cap.SECURE_CONNECTION, 1 << 24, 45)), Buffer.alloc(64, 0x41)]));
    await notTls.p.closed;
    const minted = await stack.run(['connect', 'shop', '--direct', '--once', '--json', '--gateway', stack.gateway.url, '--ca-file', stack.pki.caFile], { HOOP_TOKEN: await stack.token('alice') });
    expect(minted.code, minted.stderr).toBe(0);
    const d = JSON.parse(minted.stdout) as { host: string; port: number; user: string; password: string };
    const driver = await mysql.createConnection({ host: d.host, port: d.port, user: d.user, password: d.password, database: 'app', ssl: { ca: readFileSync(stack.pki.caFile) } });
    expect((await driver.query('SELECT 6 * 7 AS n'))[0]).toEqual([{ n: 42 }]);
    await driver.end();
  });

  it('cannot make the server read a file of the client with LOAD DATA LOCAL INFILE', async () => {
    const greeted = await MySqlGreeted.read(await tunnel());
    expect(greeted.greeting.capabilities & Cap.LOCAL_FILES).toBe(0);
    const client = await greeted.signIn({ user: 'x', password: '', database: 'app', capabilities: Cap.PROTOCOL_41 | Cap.LOCAL_FILES | Cap.SECURE_CONNECTION });
    await expect(client.query("LOAD DATA LOCAL INFILE '/etc/passwd' INTO TABLE items")).rejects.toMatchObject({ errno: expect.any(Number) });
    expect((await db.sql('SELECT count(*) FROM app.items')).trim()).toBe('2');
  });

  it('gets what the policy masks masked: columns by origin, computed columns and views whole, detectors, prepared rows, errors', async () => {
    await db.sql(
      "CREATE OR REPLACE VIEW app.names AS SELECT id, name FROM app.items; CREATE TABLE IF NOT EXISTS app.notes (id int primary key, body text); REPLACE INTO app.notes VALUES (1, 'card 4111 1111 1111 1111 on file'); " +
        'CREATE OR REPLACE TABLE app.shaped (id int primary key, body text)',
    );
    const client = await (await MySqlGreeted.read(await tunnel(masked))).signIn({ user: 'x', password: '', database: 'app' });
    const rows = async (sql: string) => {
      const [r] = await client.query(sql);
      if (!r || !('rows' in r)) throw new Error(`no rows for ${sql}`);
      return r.rows;
    };
    expect(await rows('SELECT id, name FROM items ORDER BY id')).toEqual([
      ['1', '[redacted]'],
      ['2', '[redacted]'],
    ]);
    expect(await rows('SELECT CONCAT(name, name) AS n FROM items WHERE id = 1')).toEqual([['[redacted]']]);
    expect(await rows('SELECT name FROM names WHERE id = 1')).toEqual([['[redacted]']]);
    // Origins the server names wrongly: a derived table's or a CTE's columns name it (or an alias), a UNION's none.
    expect(await rows('SELECT x FROM (SELECT name AS x FROM items) d WHERE d.x IS NOT NULL LIMIT 1')).toEqual([['[redacted]']]);
    expect(await rows('WITH c AS (SELECT name AS q FROM items LIMIT 10) SELECT q FROM c LIMIT 1')).toEqual([['[redacted]']]);
    expect(await rows("SELECT name FROM items WHERE id = 1 UNION SELECT 'x'")).toEqual([['[redacted]'], ['[redacted]']]);
    // What a session could carry a value in from one statement to the next: variables set from an expression, LAST_INSERT_ID(expr).
    for (const carry of [
      'SET @v = (SELECT name FROM items WHERE id = 1)',
      'SET SESSION default_master_connection = (SELECT name FROM items WHERE id = 1)',
      'SELECT LAST_INSERT_ID(CONV(HEX(SUBSTR(name, 1, 8)), 16, 10)) FROM items',
    ]) {
      await expect(client.query(carry), carry).rejects.toMatchObject({ errno: 1227, message: expect.stringContaining('could carry masked values') });
    }
    // So LAST_INSERT_ID() holds only ids the server gave: it reads as it is, as do a session's other diagnostics.
    expect(await rows('SELECT LAST_INSERT_ID() AS id, ROW_COUNT() AS rc, CONNECTION_ID() > 0 AS c')).toEqual([['0', '-1', '1']]);
    await client.query("SET @v = 'kept'");
    expect(await rows('SELECT @v AS v, LAST_INSERT_ID() AS l')).toEqual([['[redacted]', '[redacted]']]);
    // Tables hoop did not know at sign-in (a view made since, the server's own): their columns are redacted whole.
    await db.sql('CREATE OR REPLACE VIEW app.late AS SELECT id, name AS x FROM app.items');
    expect(await rows('SELECT x FROM late WHERE id = 1')).toEqual([['[redacted]']]);
    expect(await rows("SELECT VARIABLE_VALUE FROM information_schema.SESSION_VARIABLES WHERE VARIABLE_NAME = 'SQL_MODE'")).toEqual([['[redacted]']]);
    expect(await rows('SELECT 1 + 1 AS two, COUNT(*) AS n FROM notes')).toEqual([['2', '1']]);
    for (const read of ['SELECT body FROM notes', 'SELECT BINARY body AS body FROM notes']) {
      const [body] = (await rows(read))[0]!;
      expect(body, read).not.toContain('4111 1111 1111 1111');
      expect(body, read).toMatch(/^card .* on file$/);
    }
    // A server's message may quote a masked value: withheld whole when the statement reads what is masked.
    await expect(client.query('SELECT 1 FROM items WHERE id = 1 AND (SELECT name FROM items) > 0')).rejects.toMatchObject({ errno: 1242, message: expect.stringContaining('withheld') });
    // Writes that could carry masked values where they are not masked, or change the masked table, or store code.
    for (const copy of [
      'UPDATE items SET name = name WHERE id = 1',
      'ALTER TABLE items RENAME COLUMN name TO nm',
      'INSERT INTO notes SELECT id + 100, name FROM items',
      'CREATE TABLE copied AS SELECT name FROM items',
      'UPDATE notes SET body = (SELECT name FROM items WHERE id = 1)',
      'INSERT INTO notes VALUES (200, @v)',
      'INSERT INTO late SELECT id, 1 FROM items',
    ]) {
      await expect(client.query(copy), copy).rejects.toMatchObject({ errno: 1227, message: expect.stringContaining('could carry masked values') });
    }
    // Literals copy nothing the server holds, into a table hoop knows or one made since the session opened.
    expect(await client.query("UPDATE notes SET body = 'plain' WHERE id = 999")).toMatchObject([{ ok: { affectedRows: 0n } }]);
    expect(await client.query('INSERT INTO late VALUES (300, 1)')).toMatchObject([{ ok: { affectedRows: 1n } }]);
    expect((await db.sql('SELECT count(*) FROM app.notes')).trim()).toBe('1');
    // A table the session alters is one hoop no longer knows: a write of a shape it allowed before is judged again, and refused.
    for (const id of [1, 2, 3]) expect(await client.query(`UPDATE shaped SET body = CONCAT(body, '') WHERE id = ${id}`)).toMatchObject([{ ok: { affectedRows: 0n } }]);
    await client.query('ALTER TABLE shaped ADD COLUMN extra int');
    await expect(client.query("UPDATE shaped SET body = CONCAT(body, '') WHERE id = 4")).rejects.toMatchObject({ errno: 1227, message: expect.stringContaining('could carry masked values') });
    client.close();
    // A driver's prepared statement (the binary protocol): the masked column is a string now, the others as they were.
    const c = await masked.connect('shop', await masked.token('alice'));
    const info = c.info as unknown as { host: string; port: number; user: string; password: string; sslCa: string };
    const driver = await mysql.createConnection({ host: info.host, port: info.port, user: info.user, password: info.password, database: 'app', ssl: { ca: readFileSync(info.sslCa) } });
    try {
      const [prepared] = await driver.execute('SELECT id, name FROM items WHERE id = ?', [2]);
      expect(prepared).toEqual([{ id: 2, name: '[redacted]' }]);
    } finally {
      await driver.end();
      await c.stop();
    }
  });
  it('masks a value too long to read on the event loop as it masks a short one (the detectors read it in a worker), as a query and prepared', async () => {
    // Through a proxy that lumps the server's bytes: the rows after a long one come in the read that ends it.
    const c = await masked.connect('shop-lumped', await masked.token('alice'));
    const info = c.info as unknown as { host: string; port: number; user: string; password: string; sslCa: string };
    const driver = await mysql.createConnection({ host: info.host, port: info.port, user: info.user, password: info.password, database: 'app', ssl: { ca: readFileSync(info.sslCa) } });
    try {
      const line = 'card 4111 1111 1111 1111, exp 12/28; ';
      const times = Math.ceil((512 * 1024) / line.length);
      // Rows in turn: the short ones after a long one wait for it, in order.
      const sql = `SELECT 1 AS n, REPEAT(?, ${times}) AS v UNION ALL SELECT 2, 'short 4111 1111 1111 1111' UNION ALL SELECT 3, REPEAT(?, ${times})`;
      const long = 'card **** **** **** 1111, exp 12/28; '.repeat(times);
      const want = [
        { n: 1, v: long },
        { n: 2, v: 'short **** **** **** 1111' },
        { n: 3, v: long },
      ];
      const [prepared] = await driver.execute(sql, [line, line]);
      expect(prepared).toEqual(want);
      const [queried] = await driver.query(sql, [line, line]);
      expect(queried).toEqual(want);
    } finally {
      await driver.end();
      await c.stop();
    }
  });

  it('is refused what round 16 copied or hid masked values with: a stored function in a write, results in UTF-32, a MERGE table over a masked one', async () => {
    await db.sql(
      'CREATE TABLE IF NOT EXISTS app.notes (id int primary key, body text); ' +
        'CREATE OR REPLACE FUNCTION app.get_secret(i int) RETURNS text READS SQL DATA RETURN (SELECT name FROM app.items WHERE id = i); ' +
        "CREATE OR REPLACE TABLE app.mcust (id int, secret varchar(30)) ENGINE=MyISAM; INSERT INTO app.mcust VALUES (1, 'SECRET-XYZ'); " +
        'CREATE OR REPLACE TABLE app.mm_dba (id int, x varchar(30)) ENGINE=MRG_MyISAM UNION=(app.mcust)',
    );
    const client = await (await MySqlGreeted.read(await tunnel(masked))).signIn({ user: 'x', password: '', database: 'app' });
    const refused = { errno: 1227, message: expect.stringContaining('hoop:') };
    for (const sql of [
      'INSERT INTO notes VALUES (201, get_secret(1))',
      'UPDATE notes SET body = get_secret(2) WHERE id = 1',
      'REPLACE INTO notes SET id = 202, body = get_secret(1)',
      "INSERT INTO notes VALUES (1, 'x') ON DUPLICATE KEY UPDATE body = app.get_secret(1)",
      'SET character_set_results = utf32',
      'SET SESSION character_set_results = utf16',
      'SET @@character_set_results = ucs2',
      'SET character_set_results = NULL',
      'CREATE TABLE mm (id int, x varchar(30)) ENGINE=MRG_MyISAM UNION=(mcust)',
      'CREATE TEMPORARY TABLE mt (id int, x varchar(30)) ENGINE=MRG_MyISAM UNION=(mcust)',
    ]) {
      await expect(client.query(sql), sql).rejects.toMatchObject(refused);
    }
    expect((await db.sql('SELECT count(*) FROM app.notes WHERE id > 200')).trim()).toBe('0');
    const [cs] = await client.query('SELECT @@character_set_results AS cs');
    expect(cs && 'rows' in cs && cs.rows).toEqual([['utf8mb4']]);
    // A MERGE table another session made is unknown: its columns are redacted whole.
    const [merged] = await client.query('SELECT id, x FROM mm_dba');
    expect(merged && 'rows' in merged && merged.rows).toEqual([['[redacted]', '[redacted]']]);
    client.close();
  });
});

describe("the masked stack's recordings", () => {
  it("keep a result's rows up to the policy's rowCap and count the rest, as they replay", async () => {
    await db.sql('INSERT IGNORE INTO app.items VALUES (101, NULL), (102, NULL), (103, NULL)');
    const id = `rowcap-${randomBytes(4).toString('hex')}`;
    const { channel } = await openTunnel({ gateway: masked.gateway.url, connection: 'shop', token: await masked.token('alice'), sessionId: id, clientVersion: 'test', ca: masked.pki.ca });
    const client = await (await MySqlGreeted.read(channel)).signIn({ user: 'x', password: '', database: 'app' });
    await client.query('SELECT id FROM items WHERE id IN (1, 2, 101, 102, 103) ORDER BY id');
    client.close();
    const lines = await recordingEvents(masked, id);
    expect(lines.filter((e) => e.t === 'row').map((e) => e.values)).toEqual([['1'], ['2']]);
    expect(lines).toContainEqual(expect.objectContaining({ t: 'complete', rows: 5, unrecorded: 3 }));
  });
});

/** A signed-in client of stack `on` that sends commands as it likes and reads each answer whole (its payloads). */
async function commander(on: HoopStack): Promise<{ send(payload: Buffer): Promise<Buffer[]>; query(sql: string): Promise<Buffer[]>; capabilities: number }> {
  const client = await (await MySqlGreeted.read(await tunnel(on))).signIn({ user: 'x', password: '', database: 'app' });
  const stream = client.release();
  const p = packets(stream);
  const conversation = new Conversation(client.capabilities);
  const send = async (payload: Buffer): Promise<Buffer[]> => {
    conversation.command(payload);
    stream.write(packet(0, payload));
    const answer: Buffer[] = [];
    while (conversation.answering) {
      const got = (await p.next()).payload;
      conversation.server(got);
      answer.push(got);
    }
    return answer;
  };
  return { send, query: (sql) => send(Buffer.from(`\x03${sql}`, 'utf8')), capabilities: client.capabilities };
}

describe('a client under a row limit, speaking MySQL to the gateway directly', () => {
  const values = async (): Promise<string> => (await db.sql('SELECT GROUP_CONCAT(v ORDER BY id) FROM app.counted')).trim();
  const over = { code: 1227, message: 'hoop: the UPDATE changed 5 rows, over the limit of 2 (rule "limited"); it was rolled back' };

  it("cannot commit more rows than the limit: not once its transaction ended unseen (an ERR carries no status), nor by MariaDB's statement id -1, nor by SQL hoop cannot read", async () => {
    const c = await commander(limited);
    // A DDL that fails commits the transaction before it fails: the client is in autocommit again, and only the server knows.
    expect(parseOk((await c.query('BEGIN'))[0]!, c.capabilities).status & 1).toBe(1);
    expect(parseErr((await c.query('CREATE TABLE counted (x int)'))[0]!)).toMatchObject({ code: 1050 });
    expect(parseErr((await c.query('UPDATE counted SET v = 1 WHERE id = id'))[0]!)).toEqual({ ...over, sqlState: '42000' });
    expect(await values()).toBe('0,0,0,0,0');
    // COM_STMT_EXECUTE of statement -1: MariaDB runs the statement prepared last.
    const prepared = await c.send(Buffer.from('\x16UPDATE counted SET v = 2 WHERE id = id'));
    expect(prepared[0]![0]).toBe(0);
    const last = Buffer.from([0x17, 0xff, 0xff, 0xff, 0xff, 0, 1, 0, 0, 0]);
    expect(parseErr((await c.send(last))[0]!)).toEqual({ ...over, sqlState: '42000' });
    expect(await values()).toBe('0,0,0,0,0');
    // SQL hoop cannot read may write (unparseable: allow lets it run): under a row limit it is refused.
    for (const sql of ["PREPARE s FROM 'UPDATE counted SET v = 3 WHERE id = id'", "EXECUTE IMMEDIATE 'UPDATE counted SET v = 3 WHERE id = id'"]) {
      expect(parseErr((await c.query(sql))[0]!), sql).toMatchObject({ code: 1227, message: expect.stringContaining('hoop: writes are under a row limit, and hoop must read a statement') });
    }
    expect(await values()).toBe('0,0,0,0,0');
  });

  it("gets a guarded write's own error as the server sent it, in autocommit and in its transaction", async () => {
    const c = await commander(limited);
    const duplicate = { code: 1062, sqlState: '23000', message: "Duplicate entry '2' for key 'PRIMARY'" };
    expect(parseErr((await c.query('UPDATE counted SET id = 2 WHERE id = 3'))[0]!)).toEqual(duplicate);
    await c.query('BEGIN');
    expect(parseErr((await c.query('UPDATE counted SET id = 2 WHERE id = 3'))[0]!)).toEqual(duplicate);
    await c.query('ROLLBACK');
    expect(await values()).toBe('0,0,0,0,0');
  });
});

describe('hoop mcp on a MySQL connection', () => {
  it("describes the connection's database with each masked column marked, runs SQL masked as that says, and answers a server error as a tool error (its words withheld where they could quote what is masked)", async () => {
    const transport = new StdioClientTransport({
      command: process.execPath,
      args: [HOOP_BIN, 'mcp', '--gateway', masked.gateway.url, '--ca-file', masked.pki.caFile],
      env: { PATH: process.env.PATH!, HOOP_TOKEN: await masked.token('alice'), HOOP_CONFIG_DIR: join(masked.dir, 'cli') },
      stderr: 'pipe',
    });
    const client = new Client({ name: 'test-agent', version: '1.0.0' });
    await client.connect(transport);
    try {
      type Answer = { content: Array<{ type: string; text: string }>; isError?: boolean };
      const call = async (name: string, args: Record<string, unknown>): Promise<Answer> => (await client.callTool({ name, arguments: args })) as Answer;
      const json = (a: Answer): unknown => JSON.parse(a.content[0]!.text);
      expect(json(await call('describe_schema', { connection: 'shop', table: 'items' }))).toEqual({
        tables: [
          {
            schema: 'app',
            table: 'items',
            columns: [
              { name: 'id', type: 'int(11)', nullable: false },
              { name: 'name', type: 'text', nullable: true, masked: 'redact' },
            ],
          },
        ],
        masking: {
          detectors: [{ detector: 'payment-card', strategy: 'last4' }],
          detectors_apply: 'values in any column that match a detector are masked with its strategy',
          derived: 'values computed from masked columns are masked',
        },
      });
      expect(json(await call('run_sql', { connection: 'shop', sql: 'SELECT id, name FROM items WHERE id <= 2 ORDER BY id' }))).toEqual({
        columns: ['id', 'name'],
        rows: [
          [1, '[redacted]'],
          [2, '[redacted]'],
        ],
        rowCount: 2,
        truncated: false,
        tag: 'SELECT 2',
      });
      // The catalog's views of names and types are read as they are; one that holds statements' text is not traced.
      expect(json(await call('run_sql', { connection: 'shop', sql: 'SELECT info FROM information_schema.processlist WHERE id = connection_id()' }))).toMatchObject({ rows: [['[redacted]']] });
      // A server error that quotes names alone comes back as the server said it; one that could quote a value is withheld, its code kept.
      const missing = await call('run_sql', { connection: 'shop', sql: 'SELECT * FROM nowhere' });
      expect(missing.isError).toBe(true);
      expect(missing.content[0]!.text).toContain("Table 'app.nowhere' doesn't exist");
      const failed = await call('run_sql', { connection: 'shop', sql: 'SELECT 1 FROM items WHERE id = 1 AND (SELECT name FROM items) > 0' });
      expect(failed.isError).toBe(true);
      expect(failed.content[0]!.text).toContain("hoop: the server's message is withheld, as the statement reads what the policy masks (error 1242)");
    } finally {
      await client.close();
    }
  });
});
