/**
 * Secrets bound to a MySQL prepared statement are recorded as those typed into SQL are (issue 72,
 * class 8): a COM_STMT_EXECUTE's (or COM_STMT_SEND_LONG_DATA's) value of a parameter its statement
 * takes as a secret, or in which a detector finds something, is recorded as its keyed hash, the rest
 * of the packet as sent; an execute it cannot read has every value redacted.
 */
import { describe, expect, it } from 'vitest';
import { ExecuteSecrets } from '../../src/mysql/pipeline/execute-secrets.js';
import { Cursor, lenencBytes } from '../../src/mysql/wire/packets.js';
import { MysqlPacketRecorder } from '../../src/mysql/pipeline/record-tap.js';
import { redactSql } from '../../src/policy/sql/redact.js';
import { ticksWhile } from '../harness/event-loop.js';

const VAR_STRING = 253;
const LONGLONG = 8;

/** A COM_STMT_EXECUTE of statement `id`: values as [type, bytes] (null: NULL), types bound or not. */
function execute(id: number, values: Array<[number, Buffer] | null>, bound = true): Buffer {
  const head = Buffer.alloc(10);
  head[0] = 0x17;
  head.writeUInt32LE(id, 1);
  head.writeUInt32LE(1, 6);
  const nulls = Buffer.alloc((values.length + 7) >> 3);
  values.forEach((v, i) => {
    if (v === null) nulls[i >> 3]! |= 1 << (i & 7);
  });
  const types = Buffer.alloc(2 * values.length);
  values.forEach((v, i) => (types[2 * i] = v?.[0] ?? 6));
  return Buffer.concat([head, nulls, Buffer.from([bound ? 1 : 0]), ...(bound ? [types] : []), ...values.flatMap((v) => (v ? [v[1]] : []))]);
}

const text = (s: string): [number, Buffer] => [VAR_STRING, lenencBytes(s)];
const bigint = (n: bigint): [number, Buffer] => {
  const b = Buffer.alloc(8);
  b.writeBigInt64LE(n);
  return [LONGLONG, b];
};

/** The values of execute `p` with `n` parameters: strings as text, others as hex, NULL as null. */
function values(p: Buffer, n: number): Array<string | null> {
  const c = new Cursor(p, 10);
  const nulls = c.bytes((n + 7) >> 3);
  expect(c.u8()).toBe(1);
  const types = c.bytes(2 * n);
  const out: Array<string | null> = [];
  for (let i = 0; i < n; i++) {
    if (nulls[i >> 3]! & (1 << (i & 7))) out.push(null);
    else if (types[2 * i] === LONGLONG) out.push(c.bytes(8).toString('hex'));
    else out.push(c.lenencBytesOrNull()!.toString('utf8'));
  }
  expect(c.left).toBe(0);
  return out;
}

const marker = /^\[redacted:[0-9a-f]{8}\]$/;

describe('a MySQL execute as it is recorded', () => {
  it("replaces a secret parameter's value, text or number, by its keyed hash; the types bound once are remembered", () => {
    const s = new ExecuteSecrets({ key: 'k' });
    s.preparing('select encode(?, ?), ?');
    s.prepared(7, 3);
    const out = s.client(execute(7, [text('data'), text('hunter2'), null]));
    expect(out.toString('latin1')).not.toContain('hunter2');
    expect(values(out, 3)).toEqual(['data', expect.stringMatching(marker), null]);
    // Bound before: this execute sends no types.
    const again = s.client(execute(7, [text('data'), text('hunter2'), text('x')], false));
    expect(values(again, 3)).toEqual(['data', values(out, 3)[1], 'x']);
    s.preparing('update users set api_token = ? where id = ?');
    s.prepared(8, 2);
    const numeric = s.client(execute(8, [bigint(123456789n), bigint(5n)]));
    // A statement naming a token: every value is taken.
    expect(values(numeric, 2)).toEqual([expect.stringMatching(marker), expect.stringMatching(marker)]);
    // MariaDB's id -1: the statement prepared last.
    expect(values(s.client(execute(0xffffffff, [bigint(1n), bigint(2n)])), 2)[0]).toMatch(marker);
  });

  it('replaces what the detectors find in a string parameter of any statement, and keeps a packet with nothing to redact as it came', () => {
    const s = new ExecuteSecrets({ key: 'k', detectors: ['payment-card'] });
    s.preparing('insert into cards (number, note) values (?, ?)');
    s.prepared(1, 2);
    expect(values(s.client(execute(1, [text('4111 1111 1111 1111'), text('ok')])), 2)).toEqual([expect.stringMatching(marker), 'ok']);
    const plain = execute(1, [text('nothing'), text('ok')]);
    expect(s.client(plain)).toBe(plain);
    // Long data comes in pieces a card may span: with detectors, each piece is kept as its hash.
    const long = Buffer.concat([Buffer.from([0x18, 1, 0, 0, 0, 0, 0]), Buffer.from('card 4111 1111')]);
    expect(s.client(long).toString('latin1')).toMatch(/^\x18\x01\0\0\0\0\0\[redacted:[0-9a-f]{8}\]$/);
    // …and the execute after it carries no value for that parameter: the rest are read in their places.
    const after = execute(1, [[VAR_STRING, Buffer.alloc(0)], text('ok')]);
    expect(s.client(after)).toBe(after);
    // Without the long data before it, the same bytes read one value short: every value is redacted.
    expect(s.client(after).equals(after)).toBe(false);
  });

  it('reads a number parameter as its type says: a card bound as a BIGINT or as a DOUBLE (as mysql2 binds a JavaScript number) is redacted', () => {
    const s = new ExecuteSecrets({ key: 'k', detectors: ['payment-card'] });
    s.preparing('insert into cards (pan, note) values (?, ?)');
    s.prepared(2, 2);
    const double = (n: number): [number, Buffer] => {
      const b = Buffer.alloc(8);
      b.writeDoubleLE(n);
      return [5, b];
    };
    expect(values(s.client(execute(2, [bigint(4111111111111111n), text('ok')])), 2)).toEqual([expect.stringMatching(marker), 'ok']);
    expect(values(s.client(execute(2, [double(4111111111111111), text('ok')])), 2)).toEqual([expect.stringMatching(marker), 'ok']);
    const plain = execute(2, [double(1.5), text('ok')]);
    expect(s.client(plain)).toBe(plain);
  });

  it('redacts every value of an execute it cannot read: a statement it did not see prepared, a packet cut short', () => {
    const s = new ExecuteSecrets({ key: 'k' });
    expect(s.client(execute(9, [text('hunter2')])).toString('latin1')).not.toContain('hunter2');
    s.preparing('select aes_encrypt(?, ?)');
    s.prepared(2, 2);
    expect(s.client(execute(2, [text('data'), text('hunter2')], false)).toString('latin1')).not.toContain('hunter2'); // no types bound yet
    s.preparing('select aes_encrypt(?, ?)');
    s.prepared(3, 2);
    expect(s.client(execute(3, [text('data'), text('hunter2')]).subarray(0, 25)).toString('latin1')).not.toContain('hunter');
    // A statement closed is forgotten.
    s.client(Buffer.from([0x19, 3, 0, 0, 0]));
    expect(s.client(execute(3, [text('data')])).toString('latin1')).not.toContain('data');
  });
});

describe('a long MySQL statement or bound value as it is recorded', () => {
  it('is redacted in the worker before the packet is recorded (the loop turns meanwhile), as it would be on the loop', async () => {
    const records: Buffer[] = [];
    const r = new MysqlPacketRecorder({ record: (_k: number, _at: number, b: Buffer, from: number, to: number) => void records.push(Buffer.from(b.subarray(from, to))) } as never, 0, 0, 0, {
      key: 'k',
      detectors: ['payment-card'],
    });
    const sql = `INSERT INTO notes VALUES ('${'card 4111 1111 1111 1111; '.repeat(4000)}')`;
    const query = Buffer.concat([Buffer.from([0x03]), Buffer.from(sql)]);
    const read = r.ahead(query);
    expect(read).toBeInstanceOf(Promise);
    expect((await ticksWhile(read!)).ticks).toBeGreaterThan(0);
    // What the worker made answers; the same as the loop makes.
    const recorded = r.client(query);
    expect(recorded).toBe(redactSql(sql, 'mysql', { key: 'k', detectors: ['payment-card'] }).text);
    expect(recorded).not.toContain('4111');
    // A long execute's string values.
    r.client(Buffer.concat([Buffer.from([0x16]), Buffer.from('insert into notes values (?, ?)')]));
    r.server({ kind: 'prepared', statement: 9, columns: 0, params: 2 }, Buffer.alloc(0));
    const long = 'card 4111 1111 1111 1111; '.repeat(4000);
    const exec = execute(9, [text(long), text('card 5555 5555 5555 4444')]);
    const values2 = r.ahead(exec);
    expect(values2).toBeInstanceOf(Promise);
    await values2;
    r.client(exec);
    const last = records.at(-1)!;
    expect(last.toString('latin1')).not.toMatch(/4111|5555/);
    // A short packet is recorded at once.
    expect(r.ahead(Buffer.from([0x03, 0x31]))).toBeUndefined();
  });
});
