import { beforeAll, describe, expect, it } from 'vitest';
import { StatementJudge } from '../../src/policy/decide.js';
import { analyzeMysql, loadMysqlParser, rememberLong } from '../../src/policy/mysql/analyze.js';
import type { Analysis, StatementFacts } from '../../src/policy/sql/analyze/facts.js';
import { emptyPolicy } from '../harness/policy.js';

beforeAll(async () => {
  await loadMysqlParser();
});

const facts = (sql: string, multi = false): StatementFacts[] => {
  const a: Analysis = analyzeMysql(sql, { multiStatements: multi });
  if (!a.ok) throw new Error(a.error);
  return a.statements;
};
const one = (sql: string): StatementFacts => facts(sql)[0]!;

describe('MySQL statements as the policy judges them', () => {
  it('shares the facts of texts that differ only in numeric literals, never of ones whose digits are in a name, a string or a comment', () => {
    expect(one('SELECT c FROM shaped WHERE id = 4711 LIMIT 1')).toMatchObject({ kinds: ['select'], tables: ['shaped'], text: 'SELECT c FROM shaped WHERE id = 4711 LIMIT 1' });
    expect(one('SELECT c FROM shaped WHERE id = 99 LIMIT 5')).toMatchObject({ kinds: ['select'], tables: ['shaped'], text: 'SELECT c FROM shaped WHERE id = 99 LIMIT 5' });
    expect(one('DELETE FROM shaped WHERE id = 7')).toMatchObject({ kinds: ['delete'], missingWhere: false });
    expect(one('DELETE FROM shaped WHERE id = 8')).toMatchObject({ kinds: ['delete'], missingWhere: false });
    // The same shape, other facts: a digit in a quoted name, in a string, in a comment is not a literal.
    expect(one('SELECT a FROM `1` WHERE id = 5').tables).toEqual(['1']);
    expect(one('SELECT a FROM `2` WHERE id = 5').tables).toEqual(['2']);
    expect(one("SELECT a FROM t WHERE name = '1' AND id = 5").tables).toEqual(['t']);
    expect(one("SELECT a FROM u WHERE name = '2' AND id = 5").tables).toEqual(['u']);
    expect(one('SELECT a FROM v /* 1 */ WHERE id = 5').tables).toEqual(['v']);
    expect(one('SELECT a FROM w /* 2 */ WHERE id = 5').tables).toEqual(['w']);
    // A text of a known shape is not parsed: its facts are the shape's (decisions are kept by that), with its own text.
    const again = analyzeMysql('SELECT c FROM shaped WHERE id = 31337 LIMIT 1');
    expect(again.ok && again.sameShapeAs).toBeTruthy();
    const other = analyzeMysql('SELECT c FROM shaped WHERE id = 4242 LIMIT 1');
    expect(other.ok && again.ok && other.sameShapeAs === again.sameShapeAs).toBe(true);
    // A reading frozen (as a session's is) finds the same caches as an equal one not frozen.
    const frozen = Object.freeze({ flavor: 'mariadb' as const });
    const parsed = analyzeMysql('SELECT c FROM frozen_reading WHERE k = 1', frozen);
    expect(analyzeMysql('SELECT c FROM frozen_reading WHERE k = 1', { flavor: 'mariadb' })).toBe(parsed);
    expect(analyzeMysql('SELECT c FROM frozen_reading WHERE k = 1', frozen)).toBe(parsed);
    expect(analyzeMysql('SELECT c FROM frozen_reading WHERE k = 1', Object.freeze({ flavor: 'mariadb' as const, ansiQuotes: true }))).not.toBe(parsed);
  });

  it("finds a long text's analysis made off the event loop by any equal reading, frozen or not, whatever readings were used between", () => {
    const session = Object.freeze({ flavor: 'mariadb' as const, database: 'kept' });
    expect(analyzeMysql('SELECT 1', session).ok).toBe(true);
    for (let i = 0; i < 20; i++) analyzeMysql('SELECT 1', { database: `other_${i}` });
    const long = `SELECT a FROM t WHERE b = '${'x'.repeat(10_000)}'`;
    const made: Analysis = { ok: false, parser: 'MySQL', error: 'the analysis the worker made' };
    rememberLong(long, { flavor: 'mariadb', database: 'kept' }, made);
    expect(analyzeMysql(long, session)).toBe(made);
  });

  it('gives each statement its kinds, including what REPLACE, ON DUPLICATE KEY UPDATE and CREATE OR REPLACE also do', () => {
    const kinds: Array<[string, string[]]> = [
      ['SELECT a FROM t', ['select']],
      ['SHOW TABLES', ['select']],
      ['DESCRIBE t', ['select']],
      ["INSERT INTO t VALUES (1, 'a')", ['insert']],
      ["REPLACE INTO t VALUES (1, 'a')", ['insert', 'delete']],
      ["INSERT INTO t VALUES (1, 'a') ON DUPLICATE KEY UPDATE v = 'b'", ['insert', 'update']],
      ['UPDATE t SET v = 1 WHERE id = 2', ['update']],
      ['DELETE FROM t WHERE id = 2', ['delete']],
      ['TRUNCATE t', ['truncate']],
      ['DROP TABLE t', ['drop']],
      ['CREATE TABLE u (id int)', ['create']],
      // MariaDB drops the table there is, rows and all (a rule denying drop refused DROP TABLE and let this run).
      ['CREATE OR REPLACE TABLE t (id int)', ['create', 'drop']],
      ['ALTER TABLE t ADD COLUMN w int', ['alter']],
      ['ALTER TABLE t DROP COLUMN w', ['alter', 'drop']],
      ['GRANT SELECT ON app.* TO x', ['grant']],
      ['CALL p()', ['call']],
      ['LOCK TABLES t WRITE', ['lock']],
      ['START TRANSACTION', ['transaction']],
      ['SET autocommit = 0', ['set']],
      ['SET GLOBAL max_connections = 10', ['alter']],
      ['SET @@global.max_connections = 10', ['alter']],
    ];
    for (const [sql, want] of kinds) expect(one(sql).kinds, sql).toEqual(want);
  });

  it('names the tables and functions, qualified as written and lower-case', () => {
    expect(one('SELECT f(a), COUNT(*) FROM App.T JOIN u ON 1').tables).toEqual(['app.t', 'u']);
    expect(one('SELECT f(a), COUNT(*) FROM App.T JOIN u ON 1').functions).toEqual(['f', 'count']);
    expect(one('DELETE t FROM t JOIN `we``ird` w ON t.id = w.id').tables).toEqual(expect.arrayContaining(['t', 'we`ird']));
    expect(one('UPDATE t SET v = (SELECT max(v) FROM s)').tables).toEqual(['t', 's']);
  });

  it('marks a write whose WHERE cannot restrict it', () => {
    expect(one('DELETE FROM t').missingWhere).toBe(true);
    expect(one('DELETE FROM t WHERE 1 = 1').missingWhere).toBe(true);
    expect(one('UPDATE t SET v = 1').missingWhere).toBe(true);
    expect(one('DELETE FROM t WHERE id = 1').missingWhere).toBe(false);
    // REPLACE and ON DUPLICATE KEY UPDATE fed by every row of a table rewrite them all (the fifteenth attack), as PostgreSQL's ON CONFLICT DO UPDATE.
    expect(one("INSERT INTO t SELECT * FROM t ON DUPLICATE KEY UPDATE s = 'dup'").missingWhere).toBe(true);
    expect(one("REPLACE INTO t SELECT id, 'rep' FROM t").missingWhere).toBe(true);
    expect(one("REPLACE INTO t SELECT id, 'rep' FROM t UNION SELECT 1, 'x'").missingWhere).toBe(true);
    expect(one("REPLACE INTO t SELECT id, 'rep' FROM t WHERE id = 3").missingWhere).toBe(false);
    expect(one("INSERT INTO t VALUES (1, 'x') ON DUPLICATE KEY UPDATE s = 'x'").missingWhere).toBe(false);
    expect(one("REPLACE INTO t SELECT 1, 'x'").missingWhere).toBe(false);
    expect(one('INSERT INTO t SELECT * FROM s').missingWhere).toBe(false);
  });

  it('marks a write whose WHERE reads no column of its target, or holds for every row, as PostgreSQL does (round 16: each reached every row)', () => {
    const reachesAll = [
      'DELETE FROM plain WHERE id = id',
      'DELETE FROM plain WHERE id <=> id',
      'DELETE FROM plain WHERE `ID` = id',
      'DELETE FROM plain WHERE id IS NULL OR id IS NOT NULL',
      'DELETE FROM plain WHERE id BETWEEN id AND id OR id IS NULL',
      'DELETE FROM plain WHERE id < 5 OR id >= 5 OR id IS NULL',
      'DELETE FROM plain WHERE id < 5 OR 5 <= id',
      'DELETE FROM plain WHERE id IS NOT NULL OR TRUE',
      "DELETE FROM plain WHERE v LIKE '%' OR v IS NULL",
      "DELETE FROM plain WHERE v LIKE 'a%' OR v NOT LIKE 'a%'",
      'DELETE FROM plain WHERE id IN (1, 2) OR id NOT IN (1, 2)',
      'DELETE FROM plain WHERE NOT (id <> id)',
      'DELETE FROM plain WHERE (id = 1) IS NOT TRUE OR id = 1',
      'DELETE FROM plain WHERE id = id XOR 0',
      'DELETE FROM plain WHERE id = id && 1',
      'DELETE FROM plain WHERE id = 1 || 1',
      'DELETE FROM plain WHERE COALESCE(1)',
      'DELETE FROM plain WHERE NOW()',
      'DELETE FROM plain WHERE ABS(1)',
      'DELETE FROM plain WHERE ISNULL(NULL)',
      'DELETE FROM plain WHERE @@autocommit',
      'DELETE FROM plain WHERE @@session.autocommit = 1',
      'DELETE FROM plain WHERE @x = 1',
      'DELETE FROM plain WHERE EXISTS (SELECT 1)',
      'DELETE FROM plain WHERE (SELECT 1)',
      'DELETE FROM plain WHERE EXISTS (SELECT 1 FROM customers c WHERE c.id = 1)',
      "UPDATE plain SET v = 'y' WHERE COALESCE(1)",
      "UPDATE plain SET v = 'z' WHERE v = v OR v IS NULL",
      'DELETE plain FROM plain JOIN customers WHERE customers.id = 1',
      'DELETE p FROM plain p JOIN customers c ON c.id = 1 WHERE c.id = 1',
      'REPLACE INTO plain SELECT * FROM plain WHERE id = id',
      'REPLACE INTO plain SELECT * FROM plain WHERE COALESCE(1)',
      'DELETE FROM plain WHERE id = id LIMIT 1000',
      // A long OR is keyed, not compared pair by pair: its complements are found however far apart.
      `DELETE FROM plain WHERE ${Array.from({ length: 300 }, (_, i) => `id = ${i}`).join(' OR ')} OR (id) <> 0`,
    ];
    for (const sql of reachesAll) expect(one(sql).missingWhere, sql).toBe(true);
    const restricts = [
      'DELETE FROM plain WHERE id = 5',
      'DELETE FROM plain WHERE id IN (1, 2)',
      "DELETE FROM plain WHERE v LIKE 'x%'",
      'DELETE FROM plain WHERE id < 5 OR id >= 6',
      'DELETE t FROM t JOIN o WHERE t.a = o.b AND o.id = 3',
      'DELETE t FROM t JOIN o ON t.a = o.b WHERE o.id = 3',
      'DELETE t FROM t JOIN o USING (a) WHERE o.id = 3',
      'UPDATE t JOIN o ON t.a = o.b SET t.v = 1 WHERE o.id = 3',
      'DELETE FROM plain WHERE EXISTS (SELECT 1 FROM customers c WHERE c.id = plain.id)',
      "REPLACE INTO plain SELECT * FROM plain WHERE v = 'x'",
    ];
    for (const sql of restricts) expect(one(sql).missingWhere, sql).toBe(false);
  });

  it('shares no verdict between texts that differ only in the numbers a tautology compared', () => {
    expect(one('DELETE FROM shaped WHERE id < 5 OR id >= 6').missingWhere).toBe(false);
    expect(one('DELETE FROM shaped WHERE id < 5 OR id >= 5').missingWhere).toBe(true);
  });

  it('refuses results in a character set whose ASCII is not one byte a character (round 16: utf32 hid a card from every detector)', () => {
    const judge = new StatementJudge(emptyPolicy(), { subject: 'alice', groups: [] }, 'shop', 'read-write');
    for (const sql of [
      'SET character_set_results = utf32',
      'SET character_set_results = utf16',
      'SET character_set_results = utf16le',
      'SET character_set_results = ucs2',
      "SET SESSION character_set_results = 'utf32'",
      'SET @@character_set_results = utf16',
      'SET @@session.character_set_results = ucs2',
      'SET character_set_results = NULL',
      'SET character_set_results = binary',
      'SET character_set_results = DEFAULT',
      'SET character_set_results = @cs',
      'SET autocommit = 1, character_set_results = utf32',
    ]) {
      expect(one(sql).changesLexing, sql).toBe(true);
      expect(judge.judge(sql, analyzeMysql(sql)).action, sql).toBe('deny');
    }
    for (const sql of ['SET character_set_results = utf8mb4', 'SET character_set_results = utf8', 'SET character_set_results = latin1']) expect(one(sql).changesLexing, sql).toBe(false);
  });

  it('tells read-write transactions and what changes how later text is read', () => {
    expect(one('SET SESSION TRANSACTION READ WRITE').readWrite).toBe(true);
    expect(one('START TRANSACTION READ WRITE').readWrite).toBe(true);
    expect(one('SET tx_read_only = 0').readWrite).toBe(true);
    expect(one('START TRANSACTION READ ONLY').readWrite).toBe(false);
    expect(one("SET sql_mode = 'ANSI_QUOTES'").changesLexing).toBe(true);
    expect(one('SET NAMES gbk').changesLexing).toBe(true);
    expect(one('SET NAMES utf8mb4').changesLexing).toBe(false);
    expect(one('SET character_set_client = sjis').changesLexing).toBe(true);
    // What mysqldump (and the mysql2 suite) send first: saving the settings reads them, and more statements may follow.
    const saved = analyzeMysql('SET @OLD_CHARACTER_SET_CLIENT=@@CHARACTER_SET_CLIENT; SET @OLD_SQL_MODE=@@SQL_MODE; SELECT 1', { multiStatements: true });
    expect(saved.ok && saved.statements.map((s) => s.changesLexing)).toEqual([false, false, false]);
    for (const sql of [
      "SET @@session.sql_mode := 'ANSI'; SELECT 1",
      "SET `sql_mode`=''; SELECT 1",
      'SET SESSION character_set_client /* c */ = latin1; SELECT 1',
      'SET @a = 1, NAMES latin1; SELECT 1',
      'SET CHARACTER SET koi8r; SELECT 1',
    ]) {
      expect(analyzeMysql(sql, { multiStatements: true }), sql).toMatchObject({ ok: false, error: expect.stringContaining('is followed by more statements') });
    }
  });

  it('reads what the server runs, or says why it cannot', () => {
    expect(facts('/*!50000 DELETE FROM t */')[0]!.kinds).toEqual(['delete']);
    expect(analyzeMysql('SELECT 1; DELETE FROM t')).toMatchObject({ ok: false, parser: 'MySQL', error: expect.stringContaining('several statements') });
    expect(analyzeMysql("LOAD DATA INFILE 'x' INTO TABLE t")).toMatchObject({ ok: false, parser: 'MySQL' });
    expect(analyzeMysql("SELECT 'a\\'; DELETE FROM t; -- '", { noBackslashEscapes: true, multiStatements: true })).toMatchObject({
      ok: true,
      statements: [{ kinds: ['select'] }, { kinds: ['delete'] }],
    });
  });

  it('is judged by the same rules as PostgreSQL: deny, read-only, unparseable', () => {
    const policy = emptyPolicy({
      statements: {
        unparseable: 'deny',
        rules: [
          { name: 'no-drops', match: { kinds: ['drop'] }, action: 'deny' },
          { name: 'cards', match: { tables: ['app.cards'] }, action: 'deny' },
        ],
      },
    });
    const who = { subject: 'alice', groups: [] };
    const rw = new StatementJudge(policy, who, 'shop', 'read-write');
    const judged = (j: StatementJudge, sql: string) => j.judge(sql, analyzeMysql(sql, { multiStatements: true })).action;
    expect(judged(rw, 'SELECT * FROM t')).toBe('allow');
    expect(judged(rw, '/*!50000 DROP TABLE t */')).toBe('deny');
    expect(judged(rw, 'SELECT * FROM App.Cards')).toBe('deny');
    expect(judged(rw, 'HANDLER t OPEN')).toBe('deny');
    const ro = new StatementJudge(policy, who, 'shop', 'read-only');
    expect(judged(ro, 'SELECT * FROM t')).toBe('allow');
    expect(judged(ro, "REPLACE INTO t VALUES (1, 'a')")).toBe('deny');
    expect(judged(ro, 'SET SESSION TRANSACTION READ WRITE')).toBe('deny');
    // A change of how text is read is refused in MySQL's words, not PostgreSQL's (the mysql2 suite's SET sql_mode, SET NAMES koi8r).
    for (const sql of ["SET sql_mode = 'ALLOW_INVALID_DATES'", 'SET NAMES koi8r']) {
      const denied = rw.judge(sql, analyzeMysql(sql, { multiStatements: true }));
      expect(denied, sql).toMatchObject({ action: 'deny', rule: 'parser-consistency', message: expect.stringMatching(/^sql_mode must stay as the session began/) });
      expect(denied.message, sql).not.toMatch(/standard_conforming_strings|client_encoding|COPY/);
    }
  });

  it('refuses what it does not read rather than calling it something: EXECUTE IMMEDIATE, blocks, KILL, what the parser misreads', () => {
    for (const sql of ["EXECUTE IMMEDIATE 'DELETE FROM t'", 'IF 1 THEN DELETE FROM t; END IF', 'CASE WHEN 1 THEN DELETE FROM t; END CASE', 'KILL 5', 'SHOW INDEX FROM secret', 'FLUSH TABLES']) {
      expect(analyzeMysql(sql, { multiStatements: true }), sql).toMatchObject({ ok: false, parser: 'MySQL' });
    }
    expect(analyzeMysql('SELECT 1;'.repeat(101), { multiStatements: true })).toMatchObject({ ok: false, error: expect.stringContaining('more than the 100') });
  });

  it('reads what hides writes or tables: WITH … DELETE, EXPLAIN ANALYZE, RENAME, SHOW CREATE, CREATE … LIKE, SET PASSWORD', () => {
    expect(one('WITH d AS (SELECT 1) DELETE FROM t').kinds).toEqual(['select', 'delete']);
    expect(one('EXPLAIN ANALYZE DELETE FROM t').kinds).toEqual(['explain', 'delete']);
    expect(one('RENAME TABLE secret TO loot').tables).toEqual(['secret', 'loot']);
    expect(one('SHOW CREATE TABLE secret').tables).toEqual(['secret']);
    expect(one('SHOW COLUMNS FROM secret').tables).toEqual(['secret']);
    expect(one('CREATE TABLE x LIKE secret').tables).toEqual(expect.arrayContaining(['secret', 'x']));
    expect(one("SET PASSWORD = PASSWORD('x')").kinds).toEqual(['grant']);
  });

  it('marks a statement that reads a row source other than a named table, whose columns the server names by an alias', () => {
    for (const sql of [
      'SELECT d.a FROM (SELECT a FROM t) d',
      'WITH c AS (SELECT a FROM t) SELECT a FROM c',
      "SELECT j.x FROM t r, JSON_TABLE(r.doc, '$[*]' COLUMNS (x TEXT PATH '$')) AS j",
      'SELECT 1 FROM t WHERE EXISTS (SELECT 1 FROM (SELECT 2) d)',
    ]) {
      expect(one(sql).derived, sql).toBe(true);
    }
    for (const sql of [
      'SELECT a FROM t',
      'SELECT t.a FROM t JOIN (u JOIN v ON v.id = u.id) ON u.id = t.id',
      'SELECT a FROM t WHERE id IN (SELECT id FROM u)',
      'UPDATE t JOIN u ON u.id = t.id SET t.a = 1',
    ]) {
      expect(one(sql).derived, sql).toBeUndefined();
    }
  });

  it('puts an unqualified table in the session database, so rules on db.* see it', () => {
    expect(analyzeMysql('UPDATE items SET v = 1 WHERE id = 1', { database: 'app' })).toMatchObject({ ok: true, statements: [{ tables: ['app.items'] }] });
    expect(analyzeMysql('SELECT * FROM other.t', { database: 'app' })).toMatchObject({ ok: true, statements: [{ tables: ['other.t'] }] });
    expect(analyzeMysql('USE other', { database: 'app' })).toMatchObject({ ok: true, statements: [{ settings: [{ name: 'database', value: 'other' }] }] });
  });

  it('takes only a UTF-8 character set as safe to switch to, and reads MySQL 8 comments by MySQL rules', () => {
    expect(one('SET NAMES latin1').changesLexing).toBe(true);
    expect(one('SET NAMES utf8mb4').changesLexing).toBe(false);
    expect(analyzeMysql('/*!80000 DELETE FROM t */', { flavor: 'mysql' })).toMatchObject({ ok: false, error: expect.stringContaining("depends on the server's version") });
    expect(analyzeMysql('/*!50700 SET SESSION TRANSACTION READ WRITE */', { flavor: 'mysql' })).toMatchObject({ ok: false });
    expect(analyzeMysql('/*!40101 SET NAMES utf8mb4 */', { flavor: 'mysql' })).toMatchObject({ ok: true });
  });
});
