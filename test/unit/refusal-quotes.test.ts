/**
 * What a refusal and a server's error carry into evidence of the client's text: the parsers' complaints say where,
 * never what (a literal there may be a password), on both SQL lanes; and a MariaDB error that quotes a statement whose
 * record redacted a secret (its syntax errors quote the rest of the statement) is recorded with the secret redacted.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { MysqlPacketRecorder } from '../../src/mysql/pipeline/record-tap.js';
import { SERVER_PACKET } from '../../src/mysql/pipeline/records.js';
import { ColumnType, columnDefinition, errPacket, parseColumnDefinition, parseErr } from '../../src/mysql/wire/results.js';
import { analyzeMysql, loadMysqlParser } from '../../src/policy/mysql/analyze.js';
import { analyzeSql, loadSqlParser } from '../../src/policy/sql/analyze.js';
import { Random } from '../harness/random.js';
import { explainCommand, refusalError } from '../../src/postgres/pipeline/gate/responses.js';
import { parseErrorFields } from '../../src/postgres/wire/reader.js';

/** The hint of an ErrorResponse message. */
const hintOf = (message: Buffer): string => parseErrorFields(message.subarray(5)).hint ?? '';
import { redactSql } from '../../src/policy/sql/redact.js';
import { DETECTOR_NAMES } from '../../src/policy/masking/detectors.js';

beforeAll(async () => {
  await Promise.all([loadMysqlParser(), loadSqlParser()]);
});

const SECRET = 'Zq9-hunter2-Xw';

/** Statements that name a secret, each with a typo of some kind somewhere: the parser refuses most of them. */
function broken(r: Random): string {
  const lit = r.pick([`'${SECRET}'`, `"${SECRET}"`, `'${SECRET}' '${SECRET}'`, `_utf8mb4'${SECRET}'`, `x'${Buffer.from(SECRET).toString('hex')}'`]);
  const shape = r.pick([
    `CREATE USER 'u'@'%' IDENTIFIED BY ${lit}`,
    `ALTER USER u IDENTIFIED BY ${lit}`,
    `GRANT ALL ON *.* TO u IDENTIFIED BY ${lit}`,
    `SET PASSWORD FOR u = PASSWORD(${lit})`,
    `CHANGE MASTER TO MASTER_PASSWORD = ${lit}`,
    `CREATE SERVER s FOREIGN DATA WRAPPER mysql OPTIONS (PASSWORD ${lit})`,
    `ALTER ROLE u PASSWORD ${lit}`,
    `CREATE ROLE u WITH LOGIN PASSWORD ${lit} VALID UNTIL 'infinity'`,
    `SELECT * FROM t WHERE card = ${lit}`,
    `INSERT INTO t VALUES (${lit})`,
  ]);
  const words = shape.split(' ');
  const at = r.int(words.length + 1);
  const typo = r.pick(['oops', ',', ')', '(', 'BYY', `'${SECRET}'`, '', ';', 'WHERE', '--', '/*']);
  return [...words.slice(0, at), typo, ...words.slice(at)].join(' ');
}

describe("a parser's complaint, as a refusal carries it", () => {
  it('never quotes the text it found, on either lane, across 2,000 generated statements with a secret and a typo', () => {
    const r = new Random(7214);
    let refused = 0;
    for (let i = 0; i < 2_000; i++) {
      const sql = broken(r);
      for (const analysis of [analyzeMysql(sql), analyzeSql(sql)]) {
        if (analysis.ok) continue;
        refused++;
        expect({ sql, error: analysis.error }).not.toEqual({ sql, error: expect.stringContaining('hunter2') });
      }
    }
    expect(refused).toBeGreaterThan(2_000);
  });

  it("never quotes in the hint what the statement's record redacts (the refusal is recorded as the client gets it: the fifteenth attack)", () => {
    const r = new Random(7215);
    for (let i = 0; i < 2_000; i++) {
      const sql = broken(r).replace('hunter2', r.pick(['hunter2', '4111 1111 1111 1111']));
      const hint = hintOf(refusalError({ action: 'deny', rule: 'unparseable', reason: 'x' }, explainCommand('demo-db', sql)));
      const recorded = redactSql(sql, 'postgres', { detectors: DETECTOR_NAMES }).text;
      for (const secret of ['hunter2', '4111 1111 1111 1111']) if (!recorded.includes(secret)) expect({ sql, hint }).not.toEqual({ sql, hint: expect.stringContaining(secret) });
    }
    // A statement with nothing to redact is still quoted whole, to paste.
    expect(hintOf(refusalError({ action: 'deny', reason: 'x' }, explainCommand('demo-db', 'drop table orders')))).toContain("hoop policy check --connection demo-db 'drop table orders'");
  });

  it('still says where: the line and column, or the character', () => {
    const mysql = analyzeMysql(`CREATE USER 'u'@'%' IDENTIFIED BY '${SECRET}'`);
    expect(mysql).toMatchObject({ ok: false, error: expect.stringMatching(/^a syntax error \(expected .+\) at line 1, column \d+ in a CREATE USER statement$/) });
    const pg = analyzeSql(`ALTER ROLE u PASSWORD '${SECRET}' '${SECRET}'`);
    expect(pg).toMatchObject({ ok: false, error: 'syntax error (at character 40)' });
  });
});

describe('a MariaDB error that quotes a statement whose record redacted a secret', () => {
  const recorded = (sql: string, message: string, code = 1064): string => {
    const packets: Array<[number, Buffer]> = [];
    const recorder = new MysqlPacketRecorder({ record: (kind, _at, bytes, start, end) => void packets.push([kind, Buffer.from(bytes.subarray(start, end))]) }, 100, 0, 0, { key: 'k' });
    recorder.client(Buffer.concat([Buffer.from([0x03]), Buffer.from(sql)]));
    recorder.server({ kind: 'err' }, errPacket({ code, sqlState: '42000', message }));
    return parseErr(packets.filter(([kind]) => kind === SERVER_PACKET).at(-1)![1]).message;
  };

  it('records every error after a secret was sent as one marker: a quote of the statement, the secret in any spelling (a helper: cut, decoded from hex)', () => {
    const sql = `CREATE USER 'u'@'%' IDENTIFIED BYY '${SECRET}'`;
    const message = `You have an error in your SQL syntax; check the manual that corresponds to your MariaDB server version for the right syntax to use near 'BYY '${SECRET}'' at line 1`;
    for (const [statement, said] of [
      [`CREATE USER 'u'@'%' IDENTIFIED BY '${SECRET}'; ${sql}`, message],
      [`ALTER USER u IDENTIFIED BY '${SECRET}' oops`, `... near '${`BY '${SECRET}`.slice(0, 9)}' at line 1`],
      [`SET PASSWORD = PASSWORD('${SECRET}')`, `password ${SECRET.toUpperCase()} is too weak`],
      ["INSERT INTO creds (name, password) VALUES ('h', _utf8mb4 X'4865784d79536563506869')", "Duplicate entry 'HexMySecPhi' for key 'password'"],
    ]) {
      const got = recorded(statement!, said!);
      expect(got).toMatch(/^\[redacted:[0-9a-f]{8}\]$/);
    }
  });

  it("records a column named by the statement's text (MariaDB: SELECT PASSWORD('…')) with the secret redacted, as the statement is (the sixteenth attack)", () => {
    const packets: Array<[number, Buffer]> = [];
    const recorder = new MysqlPacketRecorder({ record: (kind, _at, bytes, start, end) => void packets.push([kind, Buffer.from(bytes.subarray(start, end))]) }, 100, 0, 0, { key: 'k' });
    const column = (name: string): Buffer => columnDefinition({ schema: '', table: '', orgTable: '', name, orgName: '', charset: 33, length: 41, type: ColumnType.VAR_STRING, flags: 0, decimals: 0 });
    for (const sql of [`SELECT PASSWORD('${SECRET}')`, `SELECT AES_ENCRYPT('x', '${SECRET}')`]) {
      recorder.client(Buffer.concat([Buffer.from([0x03]), Buffer.from(sql)]));
      recorder.server({ kind: 'column', last: true }, column(sql.slice(7)));
      const name = parseColumnDefinition(packets.filter(([kind]) => kind === SERVER_PACKET).at(-1)![1]).name;
      expect(name, sql).not.toContain('hunter2');
      expect(name).toMatch(/\[redacted:[0-9a-f]{8}\]/);
    }
    // After it, a name that is a plain identifier stays; in a session that sent no secret, any name is recorded as sent.
    recorder.server({ kind: 'column', last: true }, column('total'));
    expect(parseColumnDefinition(packets.filter(([kind]) => kind === SERVER_PACKET).at(-1)![1]).name).toBe('total');
    const fresh = new MysqlPacketRecorder({ record: (kind, _at, bytes, start, end) => void packets.push([kind, Buffer.from(bytes.subarray(start, end))]) }, 100, 0, 0, { key: 'k' });
    fresh.client(Buffer.concat([Buffer.from([0x03]), Buffer.from("SELECT upper('x')")]));
    fresh.server({ kind: 'column', last: true }, column("upper('x')"));
    expect(parseColumnDefinition(packets.filter(([kind]) => kind === SERVER_PACKET).at(-1)![1]).name).toBe("upper('x')");
  });

  it("records SHOW WARNINGS' messages after a secret was sent as markers, as errors are (MariaDB's notices as rows: a helper's attack, `mariadb --show-warnings`)", () => {
    const packets: Array<[number, Buffer]> = [];
    const recorder = new MysqlPacketRecorder({ record: (kind, _at, bytes, start, end) => void packets.push([kind, Buffer.from(bytes.subarray(start, end))]) }, 100, 0, 0, { key: 'k' });
    const row = (...values: string[]): Buffer => Buffer.concat(values.map((v) => Buffer.concat([Buffer.from([Buffer.byteLength(v)]), Buffer.from(v)])));
    const warning = row('Warning', '1062', "Duplicate entry 'warn-secret-5511' for key 'password'");
    const lastRow = (): string =>
      packets
        .filter(([kind]) => kind === SERVER_PACKET)
        .at(-1)![1]
        .toString('latin1');
    recorder.client(Buffer.concat([Buffer.from([0x03]), Buffer.from('/* hi */ SHOW WARNINGS')]));
    recorder.server({ kind: 'row' } as never, warning);
    expect(lastRow()).toContain('warn-secret-5511'); // no secret sent yet: as the server said it
    recorder.client(Buffer.concat([Buffer.from([0x03]), Buffer.from("INSERT IGNORE INTO creds (name, password) VALUES ('a', 'warn-secret-5511')")]));
    recorder.client(Buffer.concat([Buffer.from([0x03]), Buffer.from('show warnings')]));
    recorder.server({ kind: 'row' } as never, warning);
    expect(lastRow()).not.toContain('warn-secret');
    expect(lastRow()).toMatch(/Warning.*1062.*\[redacted:[0-9a-f]{8}\]/);
    // Another result's rows are results: masked by the policy, not redacted.
    recorder.client(Buffer.concat([Buffer.from([0x03]), Buffer.from('SELECT name FROM t')]));
    recorder.server({ kind: 'row' } as never, row('plain'));
    expect(lastRow()).toContain('plain');
  });

  it('records an error answering a statement with nothing redacted as the server sent it', () => {
    const message = "You have an error in your SQL syntax; ... near 'fromm t' at line 1";
    expect(recorded('select 1 fromm t', message)).toBe(message);
  });
});
