/**
 * Redaction changes values, never what runs (#72, the seventh attack): the statement written down
 * (and shown to a reviewer) parses, in PostgreSQL's own parser, to the statement the server runs,
 * with only its constants changed, whatever comments, quotes, escapes and joined literals it holds;
 * and what a lexer of the server's reads as a value (an escape, joined parts, a MySQL hex string,
 * the session's sql_mode) is what the redactor reads.
 */
import { loadModule, parseSync } from 'libpg-query';
import { beforeAll, describe, expect, it } from 'vitest';
import { redactSql, secretParameters } from '../../src/policy/sql/redact.js';
import { Random } from '../harness/random.js';

beforeAll(() => loadModule());

/** A parse tree with its constants, names' text and positions taken out: what a statement does, not with which values. */
function shape(sql: string): string | undefined {
  let tree: unknown;
  try {
    tree = parseSync(sql);
  } catch {
    return undefined;
  }
  return JSON.stringify(tree, (k, v) =>
    k === 'location' || k === 'stmt_location' || k === 'stmt_len' ? undefined : k === 'A_Const' ? 'C' : ['sval', 'ival', 'fval', 'boolval', 'bsval'].includes(k) ? 'V' : v,
  );
}

/** The text written down, with each bare marker (a number's, a SET's word) as a constant PostgreSQL parses. */
const parsable = (text: string): string => text.replace(/(?<!')\[redacted:[0-9a-f]{8}\](?!')/g, '0');

describe('what redaction writes down', () => {
  it('is the statement PostgreSQL runs, with only its values changed, however comments and strings are written (generated inputs)', () => {
    const r = new Random(0x1b873593);
    const pick = <T>(xs: readonly T[]): T => r.pick(xs);
    // Between words: blanks, line comments ended by \n or \r, nested block comments.
    const gaps = [' ', '\n', ' --c\r', ' --c\n', " -- 'x\r", "/* a /* 'b */ c */", ' --\r\n', '\t'];
    const literals = ["'x'", "'a''b'", "E'\\''", "E'a\\\\'", "e'\\x41'", '$$q$$', "$t$ ' $t$", "'a'\n'b'", "U&'\\0041'", '123456789', "'--'", "'/*'"];
    const templates = [
      (g: () => string, l: () => string) => `update accounts${g()}set password = ${l()}${g()}where id = ${l()}${g()}or id > 0`,
      (g: () => string, l: () => string) => `delete from accounts where id::text = ${g()}${l()}${g()}or 'token' <> ${l()}`,
      (g: () => string, l: () => string) => `insert into creds${g()}values (${l()},${g()}${l()})`,
      (g: () => string, l: () => string) => `select pgp_sym_encrypt(${l()},${g()}${l()}) from t where a = ${l()}${g()}or true`,
      (g: () => string, l: () => string) => `alter role r${g()}password ${l()}`,
      (_g: () => string, l: () => string) => `set app.token = ${l()}`,
    ];
    const changed: string[] = [];
    let compared = 0;
    for (let round = 0; round < 3000; round++) {
      const sql = pick(templates)(
        () => pick(gaps),
        () => pick(literals),
      );
      const before = shape(sql);
      if (before === undefined) continue;
      compared++;
      const out = redactSql(sql, 'postgres', { key: 'k', detectors: ['payment-card'] }).text;
      if (shape(parsable(out)) !== before) changed.push(JSON.stringify(sql));
    }
    expect(changed.slice(0, 5)).toEqual([]);
    expect(compared).toBeGreaterThan(1500);
  });

  it('ends a line comment where PostgreSQL does (a carriage return too): the SQL after it stays in view', () => {
    const sql = "delete from accounts where id::text = --\r'\n' or id > 0 or 'token' <> 'x'";
    const out = redactSql(sql, 'postgres', { key: 'k' }).text;
    expect(out).toContain('or id > 0');
    expect(out).not.toContain("'x'");
  });

  it("keeps an UPDATE's columns and conditions in view when its values are taken: only a SET statement's bare words are values", () => {
    const out = redactSql("update users set password_hash = 'x' where username = 'alice' or true", 'postgres', { key: 'k' }).text;
    expect(out).toMatch(/^update users set password_hash = '\[redacted:[0-9a-f]{8}\]' where username = '\[redacted:[0-9a-f]{8}\]' or true$/);
    expect(redactSql('set app.api_token = abcdef', 'postgres', { key: 'k' }).text).not.toContain('abcdef');
    expect(redactSql('alter role r set app.token to abcdef', 'postgres', { key: 'k' }).text).not.toContain('abcdef');
  });

  it('finds an INSERT with no column list by its tokens: comments, quoted and qualified names, a partition, a query', () => {
    for (const [sql, dialect] of [
      ["insert/**/into creds values ('alice', 'hunter2')", 'postgres'],
      ["insert into \"my schema\".creds values ('alice', 'hunter2')", 'postgres'],
      ["insert into public.\"my creds\" values ('alice', 'hunter2')", 'postgres'],
      ["insert into creds -- c\n values ('alice', 'hunter2')", 'postgres'],
      ["insert into creds ((select 'alice', 'hunter2'))", 'postgres'],
      ["with x as (select 1) insert into creds values ('alice', 'hunter2')", 'postgres'],
      ["insert into `my db`.creds values ('alice', 'hunter2')", 'mysql'],
      ["insert into creds partition (p0) values ('alice', 'hunter2')", 'mysql'],
      ["insert/**/creds values ('alice', 'hunter2')", 'mysql'],
    ] as const) {
      expect(redactSql(sql, dialect, { key: 'k' }).text, sql).not.toContain('hunter2');
    }
    expect(secretParameters('insert/**/into creds values ($1, $2)', 'postgres')).toBe('all');
    expect(redactSql("insert into notes (body) values ('hello')", 'postgres', { key: 'k' }).text).toContain('hello');
    expect(redactSql("select replace(name, 'a', 'b') from t", 'postgres', { key: 'k' }).text).toContain("'b'");
  });

  it('reads a literal as the server does: short octal escapes, parts joined across a newline, MySQL hex strings and joined literals', () => {
    for (const [sql, dialect] of [
      ["create subscription s connection E'postgresql://u\\72hunter2@h/db' publication p", 'postgres'],
      ["create subscription s connection 'postgresql://u:hunter2'\n'@h/db' publication p", 'postgres'],
      ["create table t (a int) engine=federated connection='mysql://u:hunter2' '@h:3306/db/t'", 'mysql'],
      [`create table t (a int) engine=federated connection=0x${Buffer.from('mysql://u:hunter2@h:3306/db/t').toString('hex')}`, 'mysql'],
    ] as const) {
      expect(redactSql(sql, dialect, { key: 'k' }).text, sql).not.toMatch(/hunter2|68756e74657232/);
    }
    for (const sql of [
      "insert into orders(c) values ('4111 1111'\n' 1111 1111')",
      "insert into orders(c) values (E'4111 1111 1111 111\\61')",
      "insert into orders(c) values (E'411111111111111\\61')",
    ]) {
      expect(redactSql(sql, 'postgres', { key: 'k', detectors: ['payment-card'] }).text, sql).not.toMatch(/1111'|111\\61/);
    }
  });

  it("reads MySQL's strings by the session's sql_mode: NO_BACKSLASH_ESCAPES ends a string at its quote, ANSI_QUOTES makes \" a name", () => {
    const sql = "select 'x\\', 1; select hex(aes_encrypt('d', 'hunter2')) -- '";
    const read = redactSql(sql, 'mysql', { key: 'k', mysqlMode: { noBackslashEscapes: true, ansiQuotes: false } }).text;
    expect(read).not.toContain('hunter2');
    expect(read).toContain('select hex(aes_encrypt(');
    expect(redactSql("alter user bob identified by 'hunter2\\'", 'mysql', { key: 'k', mysqlMode: { noBackslashEscapes: true, ansiQuotes: false } }).text).not.toContain('hunter2');
    expect(redactSql('select "password" from t where "password" = \'hunter2\'', 'mysql', { key: 'k', mysqlMode: { noBackslashEscapes: false, ansiQuotes: true } }).text).not.toContain('hunter2');
  });
});

describe('what redaction writes down, against the eighth attack', () => {
  /** `sql` redacted as PostgreSQL's session writes it down parses to the statements the server runs. */
  const sameShape = (sql: string): void => {
    const out = redactSql(sql, 'postgres', { key: 'k' }).text;
    expect(shape(parsable(out)), `${JSON.stringify(sql)} written as ${JSON.stringify(out)}`).toBe(shape(sql));
  };

  it('reads a dollar tag of any length, and only ASCII blanks as blanks (U+00A0 is a letter of a name to PostgreSQL)', () => {
    const tag = `$${'T'.repeat(300)}$`;
    sameShape(`select ${tag} ' ${tag}; drop table audit2; select ${tag} ' ${tag} -- password`);
    expect(redactSql(`alter role r password ${tag}hunter2${tag}`, 'postgres', { key: 'k' }).text).not.toContain('hunter2');
    sameShape('select 1 \u00a0$a$; drop table audit_log; select 2 \u00a0$a$ -- password');
  });

  it("reads MariaDB's versioned comments by the server's version, and `--` before DEL as a comment", () => {
    const skipped = redactSql("select 1 /*!99999 ' */; drop table t2; select 2 /*!99999 ' */ -- password", 'mysql', { key: 'k', mysqlMode: {} }).text;
    expect(skipped).toContain('drop table t2');
    const del = redactSql("select 1 --\x7f '\n, 2; drop table t1; select 3 --\x7f '\n -- password", 'mysql', { key: 'k', mysqlMode: {} }).text;
    expect(del).toContain('drop table t1');
  });

  it("takes a connection string's password after a quoted value, and numbers as PostgreSQL 16 reads them", () => {
    expect(redactSql("create subscription s connection E'host=''h''pa\\ssword=hunter2' publication p", 'postgres', { key: 'k' }).text).not.toContain('hunter2');
    for (const n of ['4111_1111_1111_1111', '0o164660424532170707'])
      expect(redactSql(`insert into orders(c) values (${n})`, 'postgres', { key: 'k', detectors: ['payment-card'] }).text, n).not.toContain(n);
  });

  it('reads a number in exponent or decimal form as the digits it is stored as: 4.111111111111111e15 in a bigint column is a card (the seventeenth attack), on both lanes', () => {
    for (const dialect of ['postgres', 'mysql'] as const)
      for (const n of ['4.111111111111111e15', '41111111111111.11e2', '4111111111111111.4', '0.4111111111111111E16'])
        expect(redactSql(`insert into orders(c) values (${n})`, dialect, { key: 'k', detectors: ['payment-card'] }).text, `${dialect} ${n}`).toMatch(
          /^insert into orders\(c\) values \(\[redacted:[0-9a-f]{8}\]\)$/,
        );
    // Numbers that are no card stay: a price, a ratio, a card's number times ten.
    for (const sql of ['select 12.50, 1e3, 0.75 from t', 'insert into orders(c) values (4.111111111111111e16)'])
      expect(redactSql(sql, 'postgres', { key: 'k', detectors: ['payment-card'] }).text).toBe(sql);
  });

  it('takes time linear in the statement: 256 KiB of the shapes that were quadratic redact in well under a second each', () => {
    const shapes = [
      `select '${"'://'".repeat(1)}' ${'://'.repeat(87_000)}`,
      `select ${'('.repeat(40_000)}${"'a',".repeat(30_000)} -- key`,
      `insert t partition ( ${'insert t partition ( '.repeat(12_000)}`,
      `select "x ${'://'.repeat(87_000)}`,
    ];
    for (const [i, sql] of shapes.entries()) {
      const started = performance.now();
      redactSql(sql, i === 2 || i === 3 ? 'mysql' : 'postgres', { key: 'k' });
      expect(performance.now() - started, `shape ${i}`).toBeLessThan(3000);
    }
  });
});
