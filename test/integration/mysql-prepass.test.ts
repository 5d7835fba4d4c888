/**
 * The MySQL lexer pre-pass read as MariaDB reads: each hostile text of test/fixtures runs on a real
 * server as one query, and the statements the pre-pass says it holds run one by one on the same
 * fresh tables; both must leave the tables alike (the pre-pass hides no write and invents none).
 * A text the pre-pass refuses is not compared: the gateway refuses it.
 */
import mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { prepass } from '../../src/policy/mysql/prepass.js';
import { LEXING_CASES, type LexingCase } from '../fixtures/mysql-lexing-cases.js';
import { startMariaDb, type MariaServer } from '../harness/mariadb.js';

let db: MariaServer;
let admin: mysql.Connection;

const FIXTURE = [
  'DROP DATABASE IF EXISTS hp',
  'CREATE DATABASE hp',
  'USE hp',
  'CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(50))',
  "INSERT INTO t VALUES (1, 'a'), (2, 'b'), (3, 'c')",
  'CREATE TABLE t2 (id INT PRIMARY KEY, v VARCHAR(50))',
  "INSERT INTO t2 VALUES (1, 'x')",
  'CREATE TABLE `we``ird` (id INT)',
  'CREATE TABLE action (id INT)',
  'CREATE TABLE `order` (id INT)',
  'INSERT INTO `order` VALUES (1)',
  'CREATE TABLE `1t` (id INT)',
];

beforeAll(async () => {
  db = await startMariaDb();
  admin = await mysql.createConnection({ host: db.host, port: db.port, user: db.root.user, password: db.root.password, multipleStatements: true });
  await admin.query("CREATE USER IF NOT EXISTS lexer@'%' IDENTIFIED BY 'lexer'; GRANT ALL ON hp.* TO lexer@'%'");
});

afterAll(async () => {
  await admin?.end();
  await db?.stop();
});

/** What the tables hold (a dropped table as `gone`). */
async function tables(): Promise<string> {
  const [rows] = await admin.query('SELECT table_name AS n FROM information_schema.tables WHERE table_schema = "hp" ORDER BY table_name');
  const names = (rows as Array<{ n: string }>).map((r) => r.n);
  const t = names.includes('t') ? JSON.stringify((await admin.query('SELECT * FROM hp.t ORDER BY id'))[0]) : 'gone';
  const t2 = names.includes('t2') ? JSON.stringify((await admin.query('SELECT * FROM hp.t2 ORDER BY id'))[0]) : 'gone';
  const order = names.includes('order') ? JSON.stringify((await admin.query('SELECT * FROM hp.`order`'))[0]) : 'gone';
  return JSON.stringify({ names, t, t2, order });
}

/** Runs `texts` in order on a fresh session (sql_mode `mode`, several statements per query when `multi`) over fresh tables, stopping at the first error; resolves what the tables hold after. */
async function run(texts: string[], mode: string | undefined, multi: boolean): Promise<string> {
  await admin.query(FIXTURE.join(';'));
  const c = await mysql.createConnection({ host: db.host, port: db.port, user: 'lexer', password: 'lexer', database: 'hp', multipleStatements: multi });
  try {
    if (mode) await c.query('SET SESSION sql_mode = ?', [mode]);
    for (const text of texts) {
      const ok = await c.query(text).then(
        () => true,
        () => false,
      );
      if (!ok) break;
    }
  } finally {
    await c.end();
  }
  return tables();
}

describe('the MySQL lexer pre-pass against MariaDB', () => {
  it('reads every hostile text as the server does, or refuses it', async () => {
    const refused: string[] = [];
    const differ: string[] = [];
    for (const c of LEXING_CASES as LexingCase[]) {
      const modes = (c.mode ?? '').split(',');
      const read = prepass(c.sql, { ansiQuotes: modes.includes('ANSI_QUOTES'), noBackslashEscapes: modes.includes('NO_BACKSLASH_ESCAPES'), multiStatements: c.multi !== false });
      if ('refused' in read) {
        refused.push(c.id);
        continue;
      }
      const server = await run([c.sql], c.mode, c.multi !== false);
      // The canonical texts need no sql_mode: strings are re-quoted with default escaping, identifiers in backticks.
      const ours = await run(
        read.statements.map((s) => s.text),
        undefined,
        false,
      );
      if (server !== ours) differ.push(`${c.id} ${JSON.stringify(c.sql)}: the server left ${server}, the pre-pass's statements ${ours} (${JSON.stringify(read.statements.map((s) => s.text))})`);
    }
    expect(differ).toEqual([]);
    // The refusals are what the gateway cannot know (a version above the lane's floor decides: 1.07 to 1.11, 1.16)
    // or the server errors on anyway, not a way out of reading: the other 66 texts were compared.
    expect(refused.sort()).toEqual(['1.07', '1.08', '1.09', '1.11', '1.16', '1.17', '1.18', '1.24', '1.25', '1.26', '1.30', '1.33', '2.02', '2.13', '2.14', '3.14', '3.17']);
    expect(LEXING_CASES.length - refused.length).toBe(66);
  });

  it('keeps what the server runs of executable comments, and skips what it does not', () => {
    expect(prepass('/*!50000 DELETE FROM t */')).toEqual({ statements: [{ text: 'DELETE FROM t', compound: false }] });
    expect(prepass('/*!50700 DELETE FROM t */')).toEqual({ statements: [] });
    expect(prepass('/*M!100100 DELETE FROM t */')).toEqual({ refused: expect.stringContaining("depends on the server's version") });
    expect(prepass('/*M!100100 DELETE FROM t */', { trustedVersion: 101119 })).toEqual({ statements: [{ text: 'DELETE FROM t', compound: false }] });
    expect(prepass('SELECT 1 --1; DELETE FROM t', { multiStatements: true })).toMatchObject({ statements: [{ text: 'SELECT 1 - -1' }, { text: 'DELETE FROM t' }] });
    expect(prepass('BEGIN NOT ATOMIC DELETE FROM t; END', { multiStatements: true })).toMatchObject({ statements: [{ text: 'BEGIN NOT ATOMIC DELETE FROM t; END', compound: true }] });
  });
});
