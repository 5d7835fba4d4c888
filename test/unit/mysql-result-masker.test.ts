/**
 * The MySQL result masker under a policy that masks columns by name only (`^pii_`): a base table's
 * column a name rule masks is masked whatever alias the result gives it, and what is computed from
 * such a column (or from a view, a subquery, anything the parse cannot trace) is redacted whole,
 * as a column rule's column's is, while what is computed from other columns is not; copies of such
 * tables are refused, and errors of a statement that reads them anywhere are withheld. No origin is trusted in a
 * statement that reads a view. Found by the generated MariaDB differential test
 * (test/integration/mysql-masking-differential.test.ts).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { MysqlResultMasker } from '../../src/mysql/pipeline/result-masker.js';
import type { ServerPacket } from '../../src/mysql/pipeline/conversation.js';
import { lenencBytes } from '../../src/mysql/wire/packets.js';
import { ticksWhile } from '../harness/event-loop.js';
import {
  binaryRow,
  binaryRowSlices,
  binaryValueText,
  type ColumnDefinition,
  columnDefinition,
  ColumnType,
  errPacket,
  parseColumnDefinition,
  parseErr,
  parseTextRow,
  textRow,
} from '../../src/mysql/wire/results.js';
import { analyzeMysql, loadMysqlParser } from '../../src/policy/mysql/analyze.js';
import { MaskingRules } from '../../src/policy/masking/rules.js';
import { REDACTED } from '../../src/policy/masking/strategies.js';
import type { StatementFacts } from '../../src/policy/sql/analyze/facts.js';

beforeAll(async () => {
  await loadMysqlParser();
});

/** The facts of `sql` as the gateway reads it in the database `app`. */
function facts(sql: string): StatementFacts[] {
  const a = analyzeMysql(sql, { database: 'app', multiStatements: true });
  if (!a.ok) throw new Error(a.error);
  return a.statements;
}

/** A masker for name rules only: `app.people` has a `pii_` column, `app.notes` none; `app.v` is a view. */
function masker(): MysqlResultMasker {
  const rules = new MaskingRules({ names: [{ pattern: '^pii_', strategy: 'redact' }] });
  return new MysqlResultMasker(rules, new Set(['app.people', 'app.notes']), new Set(['app.people']));
}

/** A text column's definition: from `orgTable.orgName` of `app` (a computed column's are empty), named `name` in the result. */
const column = (name: string, orgTable = '', orgName = ''): ColumnDefinition => ({
  schema: orgTable ? 'app' : '',
  table: orgTable,
  orgTable,
  name,
  orgName,
  charset: 45,
  length: 400,
  type: ColumnType.VAR_STRING,
  flags: 0,
  decimals: 0,
});

/** Sends the column count and the column definitions `defs` of a result through `m`. */
function sendColumns(m: MysqlResultMasker, defs: ColumnDefinition[]): void {
  m.server({ kind: 'column-count', columns: defs.length }, Buffer.from([defs.length]));
  for (const [i, d] of defs.entries()) m.server({ kind: 'column', last: i === defs.length - 1 }, columnDefinition(d));
}

/** A masker with the card detector on `table`, once it has read `sql` and the columns `defs` of its result. */
function cardResult(table: string, sql: string, defs: ColumnDefinition[]): MysqlResultMasker {
  const rules = new MaskingRules({ detectors: [{ detector: 'payment-card', strategy: 'last4' }] } as never);
  const m = new MysqlResultMasker(rules, new Set([table]), new Set());
  m.statement(facts(sql));
  sendColumns(m, defs);
  return m;
}

/** The values the client gets for one text row `values` of a result with columns `defs`, after the masker read `sql`. */
function row(sql: string, defs: ColumnDefinition[], values: string[]): Array<string | null> {
  const m = masker();
  m.statement(facts(sql));
  sendColumns(m, defs);
  const out = m.server({ kind: 'row', binary: false } satisfies ServerPacket, textRow(values));
  return parseTextRow(out, defs.length).map((v) => (v === null ? null : v.toString('utf8')));
}

describe("MySQL masking of a view's columns", () => {
  it('trusts no origin in a statement that reads a view: MariaDB names its columns by an alias, or a base table under it and an alias', () => {
    // `SELECT notes.email_copy AS c0 FROM v AS notes JOIN notes n ON …` (a copy of `pii_email`): the view's column names its alias, a base table the statement names too.
    expect(row('SELECT notes.email_copy AS c0 FROM v AS notes JOIN notes n ON n.id = notes.id', [column('c0', 'notes', 'email_copy')], ['a@b.c'])).toEqual([REDACTED]);
    // Through a temporary table (ORDER BY): the base table under the view, and the column's alias.
    expect(row('SELECT p.x AS c0 FROM v p JOIN people q ON q.id = p.id ORDER BY 1', [column('c0', 'people', 'c0')], ['secret'])).toEqual([REDACTED]);
    // A statement of base tables alone keeps its origins: a plain column is as the server sent it.
    expect(row('SELECT n.body AS c0 FROM notes n JOIN people q ON q.id = n.id ORDER BY 1', [column('c0', 'notes', 'body')], ['plain'])).toEqual(['plain']);
  });
});

describe("MySQL masking with MariaDB's extended metadata", () => {
  it('reads the type names column definitions carry, and sends a masked column as a string of no extended type', () => {
    const rules = new MaskingRules({ names: [{ pattern: '^pii_', strategy: 'redact' }] });
    const m = new MysqlResultMasker(rules, new Set(['app.people']), new Set(['app.people']), undefined, true);
    m.statement(facts('SELECT pii_doc, doc FROM people'));
    const json = Buffer.from([0x00, 0x04, ...Buffer.from('json')]);
    const def = (name: string): ColumnDefinition => ({ ...column(name, 'people', name), type: ColumnType.BLOB, extended: json });
    m.server({ kind: 'column-count', columns: 2 }, Buffer.from([2]));
    const masked = parseColumnDefinition(m.server({ kind: 'column', last: false }, columnDefinition(def('pii_doc'))), true);
    const plain = parseColumnDefinition(m.server({ kind: 'column', last: true }, columnDefinition(def('doc'))), true);
    expect(masked).toMatchObject({ name: 'pii_doc', type: ColumnType.VAR_STRING, extended: Buffer.alloc(0) });
    expect(plain).toMatchObject({ name: 'doc', type: ColumnType.BLOB, extended: json });
    const out = m.server({ kind: 'row', binary: false }, textRow(['{"ssn": 1}', '{"a": 2}']));
    expect(parseTextRow(out, 2).map((v) => v?.toString('utf8'))).toEqual([REDACTED, '{"a": 2}']);
  });
});

describe('MySQL masking of tables the session makes', () => {
  it('knows a table the session made of columns alone as a base table, masking its columns by name; forgets one it alters', () => {
    const m = masker();
    const read = (sql: string, defs: ColumnDefinition[], values: string[]) => {
      m.statement(facts(sql));
      sendColumns(m, defs);
      return parseTextRow(m.server({ kind: 'row', binary: false }, textRow(values)), defs.length).map((v) => v?.toString('utf8'));
    };
    const defs = [column('v1', 'scratch', 'v1'), column('pii_x', 'scratch', 'pii_x'), column('n')];
    // Unknown: every column redacted, plain or computed.
    expect(read('SELECT v1, pii_x, LENGTH(v1) AS n FROM scratch', defs, ['a', 'b', '1'])).toEqual([REDACTED, REDACTED, REDACTED]);
    const made = facts('CREATE TEMPORARY TABLE scratch (v1 VARCHAR(9), pii_x TEXT)')[0]!;
    m.tableCreated(made.createsTable!.table, made.createsTable!.columns);
    // A computed column is masked by what it is computed from: LENGTH(v1) beside a masked column is exact.
    expect(read('SELECT v1, pii_x, LENGTH(v1) AS n FROM scratch', defs, ['a', 'b', '1'])).toEqual(['a', REDACTED, '1']);
    expect(read('SELECT v1, LENGTH(pii_x) AS n FROM scratch', [defs[0]!, defs[2]!], ['a', '1'])).toEqual(['a', REDACTED]);
    expect(read('SELECT v1, LENGTH(v1) AS n FROM scratch', [defs[0]!, defs[2]!], ['a', '1'])).toEqual(['a', '1']);
    m.tablesChanged(facts('ALTER TABLE scratch ADD COLUMN pii_y TEXT')[0]!.tables);
    expect(read('SELECT v1, pii_x, LENGTH(v1) AS n FROM scratch', defs, ['a', 'b', '1'])).toEqual([REDACTED, REDACTED, REDACTED]);
    expect(facts('CREATE TABLE copy AS SELECT * FROM people')[0]!.createsTable).toBeUndefined();
  });
});

describe('MySQL masking by a name rule', () => {
  it('masks a statement run again as it masked it first, and tells of each masked column each time', () => {
    const told: string[] = [];
    const rules = new MaskingRules({ names: [{ pattern: '^pii_', strategy: 'redact' }] });
    const m = new MysqlResultMasker(rules, new Set(['app.people']), new Set(['app.people']), (column) => told.push(column));
    const defs = [column('pii_email', 'people', 'pii_email'), column('name', 'people', 'name')];
    for (let run = 0; run < 3; run++) {
      m.statement(facts('SELECT pii_email, name FROM people WHERE id = 1'));
      sendColumns(m, defs);
      const out = m.server({ kind: 'row', binary: false }, textRow(['a@b.c', 'Ann']));
      expect(parseTextRow(out, 2).map((v) => v?.toString('utf8'))).toEqual([REDACTED, 'Ann']);
    }
    expect(told).toEqual(['app.people.pii_email', 'app.people.pii_email', 'app.people.pii_email']);
    // The same definition under another statement is planned for that statement: a computed column's alias is no origin.
    m.statement(facts('SELECT LENGTH(pii_email) AS name FROM people'));
    sendColumns(m, [column('name')]);
    expect(parseTextRow(m.server({ kind: 'row', binary: false }, textRow(['5'])), 1).map((v) => v?.toString('utf8'))).toEqual([REDACTED]);
  });

  it("masks a base table's column the rule names under any alias the result gives it", () => {
    expect(row('SELECT pii_email AS e, note FROM people', [column('e', 'people', 'pii_email'), column('note', 'people', 'note')], ['a@b.c', 'hi'])).toEqual([REDACTED, 'hi']);
  });

  it('redacts what is computed from such a column, or read from a view; leaves what is computed from columns no rule masks', () => {
    expect(row('SELECT UPPER(pii_email) AS e FROM people', [column('e')], ['A@B.C'])).toEqual([REDACTED]);
    expect(row('SELECT CONCAT(p.note, q.body) AS e FROM people p JOIN notes q ON q.id = p.id', [column('e')], ['a b'])).toEqual(['a b']);
    expect(row('SELECT CONCAT(p.note, p.pii_email) AS e FROM people p', [column('e')], ['a b'])).toEqual([REDACTED]);
    // Each computed column by what it alone is computed from: an unqualified name may be any table's in FROM; a window's PARTITION BY is read as much as its argument.
    expect(row('SELECT LENGTH(note) AS n, ROW_NUMBER() OVER (PARTITION BY pii_email) AS r FROM people', [column('n'), column('r')], ['2', '1'])).toEqual(['2', REDACTED]);
    expect(row("SELECT CONCAT(note, '!') AS a, UPPER(pii_email) AS b, CASE WHEN id > 1 THEN 'x' END AS c FROM people", [column('a'), column('b'), column('c')], ['n!', 'A@B', 'x'])).toEqual([
      'n!',
      REDACTED,
      'x',
    ]);
    expect(row("SELECT CASE WHEN pii_email LIKE 'a%' THEN 1 END AS c, JSON_OBJECT('n', note) AS j FROM people", [column('c'), column('j')], ['1', '{"n": "x"}'])).toEqual([REDACTED, '{"n": "x"}']);
    // A wildcard beside them: which item a result column is, the parse cannot tell; computed columns are redacted whole as before.
    expect(row('SELECT *, LENGTH(note) AS n, UPPER(pii_email) AS e FROM people', [column('n'), column('e')], ['2', 'A@B'])).toEqual([REDACTED, REDACTED]);
    expect(row('SELECT COUNT(*) AS n, MAX(id) AS m FROM people WHERE pii_email LIKE "a%"', [column('n'), column('m')], ['3', '9'])).toEqual(['3', '9']);
    // What the parse cannot tell: a subquery, a set operation, a derived table.
    expect(row('SELECT (SELECT note FROM notes LIMIT 1) AS n FROM people', [column('n')], ['x'])).toEqual([REDACTED]);
    expect(row('SELECT UPPER(note) AS n FROM people UNION SELECT body FROM notes', [column('n')], ['x'])).toEqual([REDACTED]);
    expect(row('SELECT UPPER(d.note) AS n FROM (SELECT note FROM people) d', [column('n')], ['x'])).toEqual([REDACTED]);
    expect(row('SELECT x FROM v', [column('x', 'v', 'x')], ['from a view'])).toEqual([REDACTED]);
    expect(row('SELECT UPPER(body) AS b FROM notes', [column('b')], ['HI'])).toEqual(['HI']);
    // A user variable may hold what an earlier statement read; a system variable may not (a driver reads them at sign-in).
    expect(row('SELECT @v AS v', [column('v')], ['x'])).toEqual([REDACTED]);
    expect(row('SELECT 1 AS a FROM dual WHERE 1 = 1', [column('a')], ['1'])).toEqual(['1']);
    // A variable set to a literal beside the query reads nothing; one read is what it holds.
    expect(row('SET @a = 1; SELECT 1 AS a', [column('a')], ['1'])).toEqual(['1']);
    expect(row('SET @a = 1; SELECT @a AS a', [column('a')], ['1'])).toEqual([REDACTED]);
    expect(row('SELECT @@max_allowed_packet AS m, @@session.sql_mode AS s', [column('m'), column('s')], ['16777216', 'STRICT'])).toEqual(['16777216', 'STRICT']);
  });

  it("refuses a copy of such a table's values, and withholds the server's messages about reading it", () => {
    const m = masker();
    expect(m.carriesMasked(facts('INSERT INTO notes SELECT id, pii_email FROM people')[0]!)).toMatch(/masks/);
    expect(m.carriesMasked(facts("INSERT INTO notes VALUES (1, 'x')")[0]!)).toBeUndefined();
    // Literals and placeholders copy no value, whatever table they go to: a table made since sign-in, a masked one.
    for (const sql of [
      "INSERT INTO made_since (a, b) VALUES (1, 'x'), (?, NOW()) ON DUPLICATE KEY UPDATE b = VALUES(b)",
      "UPDATE people SET note = 'x' WHERE pii_email LIKE 'a%'",
      'DELETE FROM made_since WHERE id = 1',
      "REPLACE INTO made_since SET a = 1, b = CONCAT('x', ?)",
      'CREATE TEMPORARY TABLE made_since (v1 VARCHAR(16) NOT NULL DEFAULT "x", n1 INT)',
      'INSERT INTO made_since (v1, n1) VALUES ("col v1", NULL)',
      'DROP TABLE made_since',
      'TRUNCATE TABLE made_since',
    ]) {
      expect(m.carriesMasked(facts(sql)[0]!), sql).toBeUndefined();
    }
    // A value read from a column (the table's own, another's, a subquery's) is copied.
    for (const sql of [
      'UPDATE made_since SET a = b',
      'INSERT INTO made_since (a) VALUES ((SELECT pii_email FROM people LIMIT 1))',
      'INSERT INTO made_since (a) SELECT note FROM notes',
      'CREATE TABLE made_since AS SELECT pii_email FROM people',
      'CREATE TABLE made_since (a TEXT, b TEXT AS (UPPER(a)))',
      'ALTER TABLE people RENAME TO elsewhere',
    ]) {
      expect(m.carriesMasked(facts(sql)[0]!), sql).toMatch(/masks|more than one table/);
    }
    // A function that is not the server's own may read what is masked, whatever its arguments (round 16: each copied a masked value into notes).
    for (const sql of [
      'INSERT INTO notes VALUES (1, get_secret(1))',
      'INSERT INTO notes (id, body) VALUES (1, app.get_secret(1))',
      'UPDATE notes SET body = get_secret(2) WHERE id = 1',
      'UPDATE notes SET body = UPPER(get_secret(2)) WHERE id = 1',
      'REPLACE INTO notes SET id = 52, body = get_secret(2)',
      "INSERT INTO notes VALUES (1, 'x') ON DUPLICATE KEY UPDATE body = get_secret(1)",
    ]) {
      expect(facts(sql)[0]!.writesLiteralsOnly, sql).toBeUndefined();
      expect(m.carriesMasked(facts(sql)[0]!), sql).toMatch(/get_secret\(\), a function not the server's own/);
    }
    // Its body may write too: a write that calls one is refused as PostgreSQL's is.
    expect(m.carriesMasked(facts('DELETE FROM notes WHERE id = get_secret(1)')[0]!)).toMatch(/get_secret/);
    expect(m.carriesMasked(facts("INSERT INTO notes VALUES (1, CONCAT(UPPER('x'), NOW()))")[0]!)).toBeUndefined();
    // A table whose storage may be another relation's is no table of columns alone (round 16: a MERGE table read a masked one's rows unmasked).
    for (const sql of [
      'CREATE TABLE made_since (id INT, x TEXT) ENGINE=MRG_MyISAM UNION=(people)',
      'CREATE TEMPORARY TABLE made_since (id INT, x TEXT) ENGINE MERGE UNION (people)',
      "CREATE TABLE made_since (id INT) ENGINE=FEDERATED CONNECTION='mysql://h/app/people'",
      'CREATE TABLE made_since (id INT) ENGINE=SPIDER COMMENT=\'table "people"\'',
      "CREATE TABLE made_since (id INT) ENGINE=MyISAM DATA DIRECTORY='/var/lib/mysql/app'",
    ]) {
      expect(facts(sql)[0]!.createsTable, sql).toBeUndefined();
      expect(m.carriesMasked(facts(sql)[0]!), sql).toMatch(/one hoop does not know/);
    }
    const own = "CREATE TEMPORARY TABLE made_since (id INT) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin COMMENT='x' AUTO_INCREMENT=5 ROW_FORMAT=DYNAMIC";
    expect(facts(own)[0]!.createsTable).toEqual({ table: 'app.made_since', columns: ['id'] });
    expect(m.carriesMasked(facts(own)[0]!)).toBeUndefined();
    m.statement(facts('SELECT 1 FROM people WHERE pii_email > 0'));
    const err = m.server({ kind: 'err' }, errPacket({ code: 1292, sqlState: '22007', message: "Truncated incorrect DOUBLE value: 'a@b.c'" }));
    expect(parseErr(err).message).toMatch(/withheld/);
    // An error that quotes names alone (no such table) is as the server sent it.
    m.statement(facts('SELECT pii_email FROM nowhere'));
    expect(parseErr(m.server({ kind: 'err' }, errPacket({ code: 1146, sqlState: '42S02', message: "Table 'app.nowhere' doesn't exist" }))).message).toBe("Table 'app.nowhere' doesn't exist");
  });
});

describe('MySQL masking by origin, where a name or a spelling could mislead it', () => {
  /** `app.secrets.ssn` masked by origin; `app.other` has an `ssn` of its own, unmasked; the server's statistics table is a base table too. */
  const byOrigin = (): MysqlResultMasker =>
    new MysqlResultMasker(new MaskingRules({ columns: [{ table: 'app.secrets', column: 'ssn', strategy: 'redact' }] }), new Set(['app.secrets', 'app.other', 'mysql.column_stats']), new Set());
  const read = (sql: string, defs: ColumnDefinition[], values: string[]): Array<string | null> => {
    const m = byOrigin();
    m.statement(facts(sql));
    sendColumns(m, defs);
    return parseTextRow(m.server({ kind: 'row', binary: false }, textRow(values)), defs.length).map((v) => (v === null ? null : v.toString('utf8')));
  };

  it('does not take two aliases that differ in case for one (MariaDB tells S from s): what either names is not traced', () => {
    for (const sql of [
      'SELECT upper(S.ssn) AS u FROM secrets S, other s',
      'SELECT upper(S.ssn) AS u FROM secrets AS S JOIN other AS s ON S.id = s.id',
      'SELECT upper(secrets.ssn) AS u FROM secrets JOIN other AS SECRETS ON secrets.id = SECRETS.id',
      'SELECT upper(S.ssn) AS u FROM (secrets S JOIN other s ON S.id = s.id)',
    ]) {
      expect(read(sql, [column('u')], ['SSN-111']), sql).toEqual([REDACTED]);
    }
    // One alias per name, whatever its case: traced, the other table's column exact.
    expect(read('SELECT upper(o.ssn) AS u, upper(S.ssn) AS v FROM secrets S JOIN other o ON S.id = o.id', [column('u'), column('v')], ['x', 'SSN-111'])).toEqual(['x', REDACTED]);
  });

  it('reads a user variable of any name MariaDB reads as one as a value an earlier statement may have read', () => {
    for (const v of ['@é', '@.x', '@ü', '@x', '@`x`']) expect(read(`SELECT ${v} AS v`, [column('v')], ['SSN-111']), v).toEqual([REDACTED]);
    expect(read('SELECT @@max_allowed_packet AS v', [column('v')], ['16777216'])).toEqual(['16777216']);
  });

  it("reads the server's own schemas (column statistics, logs) as tables hoop does not know: their values are redacted whole", () => {
    const stats = { ...column('max_value', 'column_stats', 'max_value'), schema: 'mysql' };
    expect(read("SELECT max_value FROM mysql.column_stats WHERE table_name = 'secrets'", [stats], ['SSN-222'])).toEqual([REDACTED]);
  });
});

describe('MySQL detectors on bytes that are not UTF-8 (the eighth attack)', () => {
  it('reads them as latin1: a card beside a 0xff byte withholds the value, other bytes pass as they are', () => {
    const m = cardResult('app.notes', 'SELECT concat(0xff, body) AS c FROM notes', [column('c')]);
    const got = (value: Buffer) => parseTextRow(m.server({ kind: 'row', binary: false } satisfies ServerPacket, textRow([value])), 1)[0];
    expect(got(Buffer.concat([Buffer.from([0xff]), Buffer.from('4111 1111 1111 1111')]))).toBeNull();
    expect(got(Buffer.from([0xff, 0x61, 0x62, 0x63, 0x64]))).toEqual(Buffer.from([0xff, 0x61, 0x62, 0x63, 0x64]));
  });

  it("reads them as MariaDB's latin1 is, cp1252: a card whose groups an en dash (0x96) or a no-break space (0xa0) joins is withheld (the seventeenth attack read it whole under character_set_results = latin1)", () => {
    const m = cardResult('app.notes', 'SELECT body FROM notes', [column('body')]);
    const got = (value: Buffer) => parseTextRow(m.server({ kind: 'row', binary: false } satisfies ServerPacket, textRow([value])), 1)[0];
    for (const sep of [0x96, 0xa0])
      expect(got(Buffer.from(`card 4111${String.fromCharCode(sep)}1111${String.fromCharCode(sep)}1111${String.fromCharCode(sep)}1111 end`, 'latin1')), sep.toString(16)).toBeNull();
    expect(got(Buffer.from('caf\xe9 4111', 'latin1'))).toEqual(Buffer.from('caf\xe9 4111', 'latin1'));
  });
});

describe('MySQL detectors on the numbers of a binary row (the fourteenth attack)', () => {
  it('withholds a number the detectors find as NULL (a card in a BIGINT came back whole through execute), and passes the others', () => {
    const defs: ColumnDefinition[] = [
      { ...column('id', 'cards', 'id'), type: ColumnType.LONG, flags: 0 },
      { ...column('pan', 'cards', 'pan'), type: ColumnType.LONGLONG, flags: 0 },
      { ...column('score', 'cards', 'score'), type: ColumnType.DOUBLE, flags: 0 },
    ];
    const m = cardResult('app.cards', 'SELECT id, pan, score FROM cards WHERE id = ?', defs);
    const number = (n: bigint | number, size: 4 | 8, double = false): Buffer => {
      const b = Buffer.alloc(size);
      if (double) b.writeDoubleLE(Number(n));
      else if (size === 8) b.writeBigInt64LE(BigInt(n));
      else b.writeInt32LE(Number(n));
      return b;
    };
    const got = (pan: bigint, score: number) => binaryRowSlices(m.server({ kind: 'row', binary: true }, binaryRow([number(7, 4), number(pan, 8), number(score, 8, true)])), defs);
    expect(got(4111111111111111n, 1.5)).toEqual([number(7, 4), null, number(1.5, 8, true)]);
    expect(got(4111111111111111n, 4111111111111111)).toEqual([number(7, 4), null, null]);
    expect(got(1234567890123456n, 2)).toEqual([number(7, 4), number(1234567890123456n, 8), number(2, 8, true)]);
  });
});

describe('MySQL detectors on a text row read as its client reads it (the fifteenth attack)', () => {
  it('withholds a DOUBLE sent in exponent form and JSON masked into no JSON; masks a string as before', () => {
    const defs: ColumnDefinition[] = [
      { ...column('pan', 'cards', 'pan'), type: ColumnType.DOUBLE, flags: 0 },
      { ...column('j', 'cards', 'j'), type: ColumnType.JSON, flags: 0 },
      { ...column('note', 'cards', 'note'), type: ColumnType.VAR_STRING, flags: 0 },
    ];
    const m = cardResult('app.cards', 'SELECT pan, j, note FROM cards', defs);
    const got = (values: string[]) => parseTextRow(m.server({ kind: 'row', binary: false } satisfies ServerPacket, textRow(values.map((v) => Buffer.from(v)))), 3).map((v) => v?.toString() ?? null);
    // mysql2 reads 4.111111111111111e15 as the card; a JSON number masked is no JSON (mysql2 threw and closed the connection).
    expect(got(['4.111111111111111e15', '{"n": 4.111111111111111e15}', 'card 4111 1111 1111 1111'])).toEqual([null, null, 'card **** **** **** 1111']);
    expect(got(['4111111111111111', '{"n": 4111111111111111, "s": "x"}', 'ok'])).toEqual([null, null, 'ok']);
    // A card in a JSON string is masked in place, and the JSON stays JSON.
    expect(got(['1.5', '{"s": "4111 1111 1111 1111"}', 'ok'])).toEqual(['1.5', '{"s": "**** **** **** 1111"}', 'ok']);
  });
});

describe('MySQL long values', () => {
  it('masks a value of 64 KiB or more with the detectors off the event loop, in text and binary rows, as it masks a short one', async () => {
    const line = 'call 4111 1111 1111 1111 today; ';
    const times = Math.ceil((256 * 1024) / line.length);
    const defs = [column('id', 'notes', 'id'), column('body', 'notes', 'body')];
    const m = cardResult('app.notes', 'SELECT id, body FROM notes', defs);
    for (const binary of [false, true]) {
      const values = [Buffer.from('card 4111 1111 1111 1111'), Buffer.from(line.repeat(times))];
      const read = m.ahead({ kind: 'row', binary }, binary ? binaryRow(values.map((v) => lenencBytes(v))) : textRow(values));
      // A Promise while the worker masks it: the loop turns meanwhile (on the loop, it would not).
      expect(read).toBeInstanceOf(Promise);
      const { value, ticks } = await ticksWhile(read!);
      expect(ticks).toBeGreaterThan(0);
      const got = binary ? binaryRowSlices(value, defs).map((s) => binaryValueText(s!, defs[0]!)) : parseTextRow(value, 2);
      expect(got.map((v) => v?.toString('utf8'))).toEqual(['card **** **** **** 1111', 'call **** **** **** 1111 today; '.repeat(times)]);
    }
    // A row of short values is the masker's to mask at once.
    expect(m.ahead({ kind: 'row', binary: false }, textRow([Buffer.from('1'), Buffer.from(line)]))).toBeUndefined();
  });
});
