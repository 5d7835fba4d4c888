import { PassThrough, Readable } from 'node:stream';
import { describe, expect, it, vi } from 'vitest';
import type { CatalogResolver } from '../../src/policy/masking/catalog.js';
import { noteWrittenPayloads, redactKeyValues, ResultMasker } from '../../src/postgres/pipeline/masking/result-masker.js';
import type { ColumnJudge, StatementHints } from '../../src/postgres/pipeline/masking/judging.js';
import { dataRow, parseDataRow, parseRowDescription } from '../../src/postgres/wire/rows.js';
import { MaskingRules, type ColumnOrigin, type MaskingPolicyLike } from '../../src/policy/masking/rules.js';
import { keyedHash, type MaskStrategy } from '../../src/policy/masking/strategies.js';
import { errorResponse, noticeResponse, readyForQuery } from '../../src/postgres/wire/messages.js';
import { MessageReader, parseErrorFields, type PgMessage } from '../../src/postgres/wire/reader.js';
import { BackendPath } from '../../src/postgres/pipeline/relay.js';
import { pump } from '../../src/tunnel/pump.js';
import { collectingOutput, decoded, maskingStageOf, throughMasker } from '../harness/relay.js';
import { copyHints, customersMaskingPolicy, EXACT, MASK, testJudge } from '../harness/masking-policy.js';
import { ticksWhile } from '../harness/event-loop.js';

const KEY = 'unit-key';
const policy = customersMaskingPolicy(KEY);

const CUSTOMERS = 16400;
const origins = new Map<string, ColumnOrigin>([
  ['16400:1', { schema: 'public', table: 'customers', column: 'id' }],
  ['16400:2', { schema: 'public', table: 'customers', column: 'email' }],
  ['16400:3', { schema: 'public', table: 'customers', column: 'ssn' }],
  ['16400:4', { schema: 'public', table: 'customers', column: 'card_number' }],
  ['16400:5', { schema: 'public', table: 'customers', column: 'notes' }],
  ['16400:6', { schema: 'public', table: 'customers', column: 'balance' }],
]);

/** A catalog over a fixed map that answers after a macrotask, and counts lookups. */
class MapCatalog implements CatalogResolver {
  lookups = 0;
  fail = false;
  async columnName(tableOid: number, attnum: number): Promise<ColumnOrigin | undefined> {
    this.lookups++;
    await new Promise((r) => setImmediate(r)); // a lookup that answers on a later macrotask, as a database would
    if (this.fail) throw new Error('catalog down');
    return origins.get(`${tableOid}:${attnum}`);
  }
}

interface Col {
  name: string;
  table?: number;
  attnum?: number;
  type: number;
  format?: number;
}

function msg(type: string, body: Buffer): Buffer {
  const out = Buffer.alloc(5 + body.length);
  out[0] = type.charCodeAt(0);
  out.writeUInt32BE(4 + body.length, 1);
  body.copy(out, 5);
  return out;
}

function rowDescription(cols: Col[]): Buffer {
  const parts: Buffer[] = [Buffer.from([cols.length >> 8, cols.length & 0xff])];
  for (const c of cols) {
    const f = Buffer.alloc(18);
    f.writeUInt32BE(c.table ?? 0, 0);
    f.writeInt16BE(c.attnum ?? 0, 4);
    f.writeUInt32BE(c.type, 6);
    f.writeInt16BE(-1, 10);
    f.writeInt32BE(-1, 12);
    f.writeInt16BE(c.format ?? 0, 16);
    parts.push(Buffer.from(`${c.name}\0`), f);
  }
  return msg('T', Buffer.concat(parts));
}

const text = (...vals: Array<string | null>): Buffer => dataRow(vals.map((v) => (v === null ? null : Buffer.from(v))));
const complete = (tag: string): Buffer => msg('C', Buffer.from(`${tag}\0`));
const cstr = (s: string): Buffer => Buffer.from(`${s}\0`);
const int16 = (n: number): Buffer => Buffer.from([(n >> 8) & 0xff, n & 0xff]);
const int32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n);
  return b;
};

const fe = {
  query: (sql: string) => msg('Q', cstr(sql)),
  parse: (name: string, sql: string) => msg('P', Buffer.concat([cstr(name), cstr(sql), int16(0)])),
  bind: (portal: string, stmt: string, formats: number[]) => msg('B', Buffer.concat([cstr(portal), cstr(stmt), int16(0), int16(0), int16(formats.length), ...formats.map(int16)])),
  describe: (what: 'S' | 'P', name: string) => msg('D', Buffer.concat([Buffer.from(what), cstr(name)])),
  execute: (portal: string, max = 0) => msg('E', Buffer.concat([cstr(portal), int32(max)])),
  sync: () => msg('S', Buffer.alloc(0)),
};

function messages(bytes: Buffer, side: 'frontend' | 'backend' = 'backend'): PgMessage[] {
  const r = new MessageReader({ side });
  r.push(bytes);
  const out: PgMessage[] = [];
  for (let m = r.next(); m; m = r.next()) out.push(m);
  expect(r.bufferedBytes).toBe(0);
  return out;
}

/** Feeds the client messages to the masker, then the server bytes; returns the masked server messages. */
async function run(masker: ResultMasker, client: Buffer[], server: Buffer[], hints: StatementHints = EXACT): Promise<PgMessage[]> {
  for (const m of messages(Buffer.concat(client), 'frontend')) masker.frontend(decoded(m.raw), hints);
  return messages(await throughMasker(masker, Buffer.concat(server)));
}

const rows = (ms: PgMessage[]): Array<Array<string | null>> => ms.filter((m) => m.type === 0x44).map((m) => parseDataRow(m.body).map((v) => (v === null ? null : v.toString('utf8'))));

const customerCols: Col[] = [
  { name: 'id', table: CUSTOMERS, attnum: 1, type: 23 },
  { name: 'e', table: CUSTOMERS, attnum: 2, type: 25 },
  { name: 'ssn', table: CUSTOMERS, attnum: 3, type: 25 },
  { name: 'card_number', table: CUSTOMERS, attnum: 4, type: 1043 },
  { name: 'notes', table: CUSTOMERS, attnum: 5, type: 25 },
  { name: 'upper', type: 25 },
];

describe('ResultMasker, simple query, text format', () => {
  it('masks by origin (through an alias), by name, by content; keeps NULLs', async () => {
    const catalog = new MapCatalog();
    const masker = new ResultMasker({ rules: policy, catalog, judge: testJudge() });
    const out = await run(
      masker,
      [fe.query('select ...')],
      [
        rowDescription(customerCols),
        text('1', 'alice@example.com', '123-45-6789', '4111 1111 1111 1111', 'call 4000 0000 0000 0002 or mail bob@example.com', 'ALICE@EXAMPLE.COM'),
        text('2', null, null, null, null, null),
        text('3', 'x', '536-90-4399', '5555555555554444', 'nothing to see', 'PLAIN'),
        complete('SELECT 3'),
        readyForQuery('I'),
      ],
    );
    expect(rows(out)).toEqual([
      ['1', '[redacted]', '***-**-6789', '**** **** **** 1111', `call **** **** **** 0002 or mail ${keyedHash('bob@example.com', KEY)}`, keyedHash('ALICE@EXAMPLE.COM', KEY)],
      ['2', null, null, null, null, null],
      ['3', '[redacted]', '***-**-4399', '************4444', 'nothing to see', 'PLAIN'],
    ]);
    expect(catalog.lookups).toBe(5);
  });

  it("masks every origin-less column under 'mask', only by content under 'detect-only'", async () => {
    const cols: Col[] = [
      { name: 'x', type: 25 },
      { name: 'n', type: 20 },
      { name: 'j', type: 114 },
    ];
    const row = text('hello', '42', '{"a":"carol@example.org"}');
    const mask = await run(new ResultMasker({ rules: policy, judge: testJudge() }), [fe.query('q')], [rowDescription(cols), row, complete('SELECT 1')], MASK);
    expect(rows(mask)).toEqual([['[redacted]', null, '"[redacted]"']]);
    const detectOnly = await run(new ResultMasker({ rules: policy, judge: testJudge() }), [fe.query('q')], [rowDescription(cols), row], EXACT);
    expect(rows(detectOnly)).toEqual([['hello', '42', `{"a":"${keyedHash('carol@example.org', KEY)}"}`]]);
  });

  it('leaves a column whose origin lookup fails (or with no catalog) to the judge, and refuses with it: no value is guessed', async () => {
    const asked: number[][] = [];
    const refusing: ColumnJudge = {
      columns: (_fields, positions) => {
        asked.push([...positions]);
        throw new Error('cannot tell');
      },
      quotes: () => true,
    };
    const catalog = new MapCatalog();
    catalog.fail = true;
    const description = [rowDescription([{ name: 'id', table: CUSTOMERS, attnum: 1, type: 25 }]), text('1')];
    await expect(run(new ResultMasker({ rules: policy, catalog, judge: refusing }), [fe.query('q')], description)).rejects.toThrow('cannot tell');
    await expect(run(new ResultMasker({ rules: policy, judge: refusing }), [fe.query('q')], description)).rejects.toThrow('cannot tell');
    expect(asked).toEqual([[0], [0]]);
  });

  it('turns a detector hit in a scalar non-text column into NULL, and masks many columns', async () => {
    const cols: Col[] = Array.from({ length: 300 }, (_, i) => ({ name: `c${i}`, type: i % 2 ? 20 : 25 }));
    const vals = Array.from({ length: 300 }, (_, i) => (i % 3 === 0 ? '4111111111111111' : i % 3 === 1 ? null : `v${i}`));
    const out = await run(new ResultMasker({ rules: policy, judge: testJudge() }), [fe.query('q')], [rowDescription(cols), text(...vals)]);
    const got = rows(out)[0]!;
    expect(got).toHaveLength(300);
    got.forEach((v, i) => {
      if (i % 3 === 1) expect(v).toBeNull();
      else if (i % 3 === 2) expect(v).toBe(`v${i}`);
      else expect(v).toBe(i % 2 ? null : '************1111');
    });
  });

  it('passes rows through untouched when nothing applies', async () => {
    const masker = new ResultMasker({ rules: { names: [{ pattern: '^ssn', strategy: 'redact' }] }, judge: testJudge() });
    const row = text('a', 'b');
    const out = await run(
      masker,
      [fe.query('q')],
      [
        rowDescription([
          { name: 'a', type: 25 },
          { name: 'b', type: 25 },
        ]),
        row,
      ],
    );
    expect(out[1]!.raw.equals(row)).toBe(true);
  });
});

describe('ResultMasker, plans kept for a repeated result shape', () => {
  /** A catalog whose relations are all cached: `cached()` answers from `known`, as PgCatalogResolver does for loaded tables. */
  class CachedCatalog implements CatalogResolver {
    readonly known = new Map<string, ColumnOrigin>();
    async columnName(tableOid: number, attnum: number): Promise<ColumnOrigin | undefined> {
      return this.known.get(`${tableOid}:${attnum}`);
    }
    cached(tableOid: number, attnum: number): { column: ColumnOrigin | undefined } {
      return { column: this.known.get(`${tableOid}:${attnum}`) };
    }
  }
  const cols: Col[] = [{ name: 'x', table: CUSTOMERS, attnum: 2, type: 25 }];
  const result = [rowDescription(cols), text('plain value'), complete('SELECT 1'), readyForQuery('I')];

  it('plans a result again as soon as the catalog gives a column another origin (a relation reloaded after a rename)', async () => {
    const catalog = new CachedCatalog();
    catalog.known.set(`${CUSTOMERS}:2`, { schema: 'public', table: 'customers', column: 'notes' });
    const masker = new ResultMasker({ rules: policy, catalog, judge: testJudge() });
    for (let i = 0; i < 3; i++) expect(rows(await run(masker, [fe.query('select x ...')], result))).toEqual([['plain value']]);
    // The same RowDescription bytes; the column is now `email`, which the policy redacts.
    catalog.known.set(`${CUSTOMERS}:2`, { schema: 'public', table: 'customers', column: 'email' });
    expect(rows(await run(masker, [fe.query('select x ...')], result))).toEqual([['[redacted]']]);
    expect(masker.lastMaskedColumns).toEqual([{ strategy: 'redact', origin: 'public.customers.email' }]);
    // A column the catalog no longer has goes to the judge (here: a statement it masks), not planned from before.
    catalog.known.delete(`${CUSTOMERS}:2`);
    expect(rows(await run(masker, [fe.query('select x ...')], result, MASK))).toEqual([['[redacted]']]);
  });

  it('does not keep a plan that needed a catalog query, and plans it anew once the catalog needs one again', async () => {
    const catalog = new CachedCatalog();
    const origin = { schema: 'public', table: 'customers', column: 'email' };
    let loaded = false;
    catalog.cached = (t, a) => (loaded ? { column: catalog.known.get(`${t}:${a}`) } : undefined) as { column: ColumnOrigin | undefined };
    catalog.known.set(`${CUSTOMERS}:2`, origin);
    const masker = new ResultMasker({ rules: policy, catalog, judge: testJudge() });
    expect(rows(await run(masker, [fe.query('q')], result))).toEqual([['[redacted]']]);
    loaded = true;
    expect(rows(await run(masker, [fe.query('q')], result))).toEqual([['[redacted]']]);
    // Expired (a query is needed again): the answer comes from the lookup, here a column rules do not name.
    loaded = false;
    catalog.known.set(`${CUSTOMERS}:2`, { schema: 'public', table: 'customers', column: 'notes' });
    expect(rows(await run(masker, [fe.query('q')], result))).toEqual([['plain value']]);
  });
});

describe('ResultMasker, extended protocol', () => {
  const binCols: Col[] = [
    { name: 'email', table: CUSTOMERS, attnum: 2, type: 25, format: 1 },
    { name: 'balance', table: CUSTOMERS, attnum: 6, type: 1700, format: 1 },
    { name: 'doc', type: 3802, format: 1 },
    { name: 'big', type: 20, format: 1 },
    { name: 'id', table: CUSTOMERS, attnum: 1, type: 23, format: 1 },
  ];
  const big = Buffer.alloc(8);
  big.writeBigInt64BE(4111111111111111n);
  const small = Buffer.alloc(8);
  small.writeBigInt64BE(42n);
  const id = int32(7);
  const jsonb = Buffer.concat([Buffer.from([1]), Buffer.from('{"mail": "dave@example.com"}')]);

  it('masks binary values: text-like rewritten, other types NULL, int8 inspected', async () => {
    const masker = new ResultMasker({ rules: policy, catalog: new MapCatalog(), judge: testJudge() });
    const out = await run(
      masker,
      [fe.parse('', 'q'), fe.bind('', '', [1]), fe.describe('P', ''), fe.execute(''), fe.sync()],
      [
        msg('1', Buffer.alloc(0)),
        msg('2', Buffer.alloc(0)),
        rowDescription(binCols),
        dataRow([Buffer.from('alice@example.com'), Buffer.from([0, 1, 0, 0, 0, 0, 0, 0, 0, 42]), jsonb, big, id]),
        dataRow([null, null, null, small, id]),
        complete('SELECT 2'),
        readyForQuery('I'),
      ],
    );
    const [r1, r2] = out.filter((m) => m.type === 0x44).map((m) => parseDataRow(m.body));
    expect(r1![0]!.toString()).toBe('[redacted]');
    expect(r1![1]).toBeNull();
    expect(r1![2]![0]).toBe(1);
    expect(r1![2]!.subarray(1).toString()).toBe(`{"mail": "${keyedHash('dave@example.com', KEY)}"}`);
    expect(r1![3]).toBeNull();
    expect(r1![4]!.equals(id)).toBe(true);
    expect(r2).toEqual([null, null, null, small, id]);
  });

  it('uses Bind formats for a statement described before binding, across portal suspension', async () => {
    const masker = new ResultMasker({ rules: policy, catalog: new MapCatalog(), judge: testJudge() });
    const cols: Col[] = [
      { name: 'email', table: CUSTOMERS, attnum: 2, type: 25 },
      { name: 'b', type: 20 },
    ];
    const out = await run(
      masker,
      [fe.parse('s1', 'q'), fe.describe('S', 's1'), fe.sync(), fe.bind('p1', 's1', [0, 1]), fe.execute('p1', 1), fe.execute('p1', 1), fe.sync()],
      [
        msg('1', Buffer.alloc(0)),
        msg('t', int16(0)),
        rowDescription(cols),
        readyForQuery('I'),
        msg('2', Buffer.alloc(0)),
        // The masker's own Describe of the portal before each Execute (the statement's may be stale).
        rowDescription(cols),
        dataRow([Buffer.from('a@example.com'), big]),
        msg('s', Buffer.alloc(0)),
        rowDescription(cols),
        dataRow([Buffer.from('b@example.com'), small]),
        msg('s', Buffer.alloc(0)),
        readyForQuery('T'),
      ],
    );
    const got = out.filter((m) => m.type === 0x44).map((m) => parseDataRow(m.body));
    expect(got[0]).toEqual([Buffer.from('[redacted]'), null]);
    expect(got[1]).toEqual([Buffer.from('[redacted]'), small]);
  });

  it('after an error skips to Sync and keeps tracking', async () => {
    const masker = new ResultMasker({ rules: policy, judge: testJudge() });
    const out = await run(
      masker,
      [fe.parse('', 'bad'), fe.bind('', '', []), fe.execute(''), fe.sync(), fe.query('select')],
      [
        errorResponse({ severity: 'ERROR', code: '42601', message: 'syntax error' }),
        readyForQuery('I'),
        rowDescription([{ name: 'x', type: 25 }]),
        text('secret'),
        complete('SELECT 1'),
        readyForQuery('I'),
      ],
      MASK,
    );
    expect(rows(out)).toEqual([['[redacted]']]);
  });
});

describe('ResultMasker, notices, notifications, errors', () => {
  it('masks message, detail, hint and notification payloads', async () => {
    const masker = new ResultMasker({ rules: policy, judge: testJudge() });
    const out = await run(
      masker,
      [],
      [
        noticeResponse({ severity: 'NOTICE', code: '00000', message: 'card 4111 1111 1111 1111', hint: 'ssn 123-45-6789' }),
        msg('A', Buffer.concat([int32(99), cstr('ch'), cstr('pay 5555555555554444')])),
        errorResponse({ severity: 'ERROR', code: '23505', message: 'duplicate key', detail: 'Key (email)=(alice@example.com) already exists.' }),
      ],
    );
    const n = parseErrorFields(out[0]!.body);
    expect(n.message).toBe('card **** **** **** 1111');
    expect(n.hint).toBe('ssn [redacted]');
    // Under column rules a payload no client wrote is withheld: what sent it (a trigger's row_to_json) may carry a masked column.
    expect(out[1]!.body.subarray(4).toString()).toMatch(/^ch\0hoop: withheld \(masking rules are on[^\0]*\0$/);
    // One a client wrote (NOTIFY or pg_notify with a literal) is read as written, through the detectors.
    noteWrittenPayloads("select 1; NOTIFY ch, 'pay 5555555555554444'");
    const again = await run(new ResultMasker({ rules: policy, judge: testJudge() }), [], [msg('A', Buffer.concat([int32(99), cstr('ch'), cstr('pay 5555555555554444')]))]);
    expect(again[0]!.body.subarray(4).toString()).toBe('ch\0pay ************4444\0');
    expect(parseErrorFields(out[2]!.body).detail).toBe(`Key (email)=(${keyedHash('alice@example.com', KEY)}) already exists.`);
  });

  it('redacts key values and failing rows of tables with column rules', async () => {
    const fields = Buffer.concat([...['SERROR', 'C23502', 'Mnull value in column "id"', 'DFailing row contains (null, some secret note).', 'spublic', 'tcustomers'].map(cstr), Buffer.from([0])]);
    const out = await run(new ResultMasker({ rules: policy, judge: testJudge() }), [], [msg('E', fields)]);
    const f = parseErrorFields(out[0]!.body);
    expect(f.detail).toBe('Failing row contains ([redacted]).');
    expect(f.fields.get('t')).toBe('customers');
    expect(redactKeyValues('Key (lower(email))=(x, y) is not present in table "t".')).toBe('Key (lower(email))=([redacted]) is not present in table "t".');
  });
});

describe('ResultMasker, COPY out', () => {
  const copyOut = (format: number, n: number): Buffer => msg('H', Buffer.concat([Buffer.from([format]), int16(n), ...Array.from({ length: n }, () => int16(format))]));
  const copyData = (s: string | Buffer): Buffer => msg('d', typeof s === 'string' ? Buffer.from(s) : s);
  const copyText = (ms: PgMessage[]): string =>
    ms
      .filter((m) => m.type === 0x64)
      .map((m) => m.body.toString())
      .join('');
  const rules = MaskingRules.of(policy, KEY);
  /** Each column's strategy as the judge would give it for these columns of customers. */
  const strategies = (...c: string[]): Array<MaskStrategy | undefined> => c.map((column) => rules.forOrigin({ schema: 'public', table: 'customers', column }) ?? rules.forName(column));

  it('text format: by column position when origins are known, detectors otherwise; escapes kept', async () => {
    const masker = new ResultMasker({ rules: policy, judge: testJudge(() => strategies('id', 'email', 'card_number', 'notes')) });
    const out = await run(
      masker,
      [fe.query('copy')],
      [copyOut(0, 4), copyData('1\talice@example.com\t4111111111111111\tline\\none\\tbob@example.com\n'), copyData('2\t\\N\t\\N\t\\N\n'), msg('c', Buffer.alloc(0)), complete('COPY 2')],
      copyHints({ format: 'text' }),
    );
    expect(copyText(out)).toBe(`1\t[redacted]\t************1111\tline\\none\\t${keyedHash('bob@example.com', KEY)}\n2\t\\N\t\\N\t\\N\n`);
  });

  it('text and binary format: a card in a hex bytea, a float in its exponent form or a float8 of eight bytes is withheld (the eighth attack)', async () => {
    const hex = Buffer.from('4111 1111 1111 1111').toString('hex');
    const text = await run(
      new ResultMasker({ rules: policy, judge: testJudge() }),
      [fe.query('copy')],
      [copyOut(0, 3), copyData(`1\t\\\\x${hex}\t4.111111111111111e+15\n`), msg('c', Buffer.alloc(0)), complete('COPY 1')],
      copyHints({ format: 'text' }),
    );
    expect(copyText(text)).toBe('1\t\\N\t\\N\n');
    const f8 = Buffer.alloc(8);
    f8.writeDoubleBE(4111111111111111);
    const header = Buffer.concat([Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1'), Buffer.alloc(8)]);
    const tuple = Buffer.concat([int16(1), Buffer.from([0, 0, 0, 8]), f8]);
    const binary = await run(
      new ResultMasker({ rules: policy, judge: testJudge() }),
      [fe.query('copy')],
      [copyOut(1, 1), copyData(Buffer.concat([header, tuple, int16(-1)])), msg('c', Buffer.alloc(0)), complete('COPY 1')],
      copyHints({ format: 'binary' }),
    );
    const body = Buffer.concat(binary.filter((m) => m.type === 0x64).map((m) => m.body));
    expect(body.includes(f8)).toBe(false);
  });

  it('a field of 64 KiB or more, in text or binary, in one CopyData or split across two, is read by the detectors in the worker and masked as a short one', async () => {
    const line = 'call 4000 0000 0000 0002 or mail bob@example.com; ';
    const times = Math.ceil((128 * 1024) / line.length);
    const copying = async (format: number): Promise<ResultMasker> => {
      const masker = new ResultMasker({ rules: policy, judge: testJudge() });
      masker.frontend(decoded(fe.query('copy')), copyHints({ format: format === 1 ? 'binary' : 'text' }));
      const started = masker.backend(messages(copyOut(format, 2))[0]!);
      if (started instanceof Promise) await started;
      return masker;
    };
    /** What `masker` makes of CopyData `body` sent in two at `cut`: the first part carried (a Buffer at once), the rest read in the worker (the loop turns meanwhile). */
    const inTwo = async (masker: ResultMasker, body: Buffer, cut: number): Promise<PgMessage[]> => {
      const first = masker.backend(messages(copyData(body.subarray(0, cut)))[0]!);
      expect(first).toBeInstanceOf(Buffer);
      const read = masker.backend(messages(copyData(body.subarray(cut)))[0]!);
      expect(read).toBeInstanceOf(Promise);
      const { value, ticks } = await ticksWhile(read as Promise<Buffer>);
      expect(ticks).toBeGreaterThan(0);
      return messages(Buffer.concat([first as Buffer, value]));
    };
    const textBody = Buffer.from(`1\t${line.repeat(times)}\n2\tbob@example.com\n`);
    for (const cut of [0, 1000]) {
      const masked = copyText(await inTwo(await copying(0), textBody, cut));
      expect(masked).toBe(`1\t${`call **** **** **** 0002 or mail ${keyedHash('bob@example.com', KEY)}; `.repeat(times)}\n2\t${keyedHash('bob@example.com', KEY)}\n`);
    }
    // A row the server never ended (no newline before CopyDone) is read in the worker too.
    const unended = await copying(0);
    expect(unended.backend(messages(copyData(textBody.subarray(0, 100_000)))[0]!)).toBeInstanceOf(Buffer);
    const done = unended.backend(messages(msg('c', Buffer.alloc(0)))[0]!);
    expect(done).toBeInstanceOf(Promise);
    expect(copyText(messages(await (done as Promise<Buffer>)))).not.toContain('bob@example.com');
    // A binary COPY's field cannot be rewritten in place: withheld, as a short one is.
    const header = Buffer.concat([Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1'), Buffer.alloc(8)]);
    const long = Buffer.from(line.repeat(times));
    const tuple = Buffer.concat([int16(2), int32(1), Buffer.from('7'), int32(long.length), long]);
    const binary = await inTwo(await copying(1), Buffer.concat([header, tuple, int16(-1)]), 500);
    expect(Buffer.concat(binary.map((m) => m.body))).toEqual(Buffer.concat([header, int16(2), int32(1), Buffer.from('7'), int32(-1), int16(-1)]));
  });

  it("csv format, with a header, quotes, rows split across CopyData, and 'mask' for unknown columns", async () => {
    const masker = new ResultMasker({ rules: policy, judge: testJudge() });
    const out = await run(
      masker,
      [fe.query('copy')],
      [copyOut(0, 3), copyData('id,email,notes\n'), copyData('1,"alice@example.com","a, ""quoted"" note'), copyData(' with 4111 1111 1111 1111"\n2,,\n'), msg('c', Buffer.alloc(0))],
      copyHints({ format: 'csv', header: true }),
    );
    expect(copyText(out)).toBe(`id,email,notes\n1,${keyedHash('alice@example.com', KEY)},"a, ""quoted"" note with **** **** **** 1111"\n2,,\n`);
    const masksAll = testJudge(() => ['redact', 'redact']);
    const all = await run(new ResultMasker({ rules: policy, judge: masksAll }), [fe.query('copy')], [copyOut(0, 2), copyData('1,x\n'), msg('c', Buffer.alloc(0))], copyHints({ format: 'csv' }));
    expect(copyText(all)).toBe('[redacted],[redacted]\n');
  });

  it('passes a COPY with nothing to mask through unparsed (no detectors, no masked column)', async () => {
    const columnsOnly: MaskingPolicyLike = { columns: [{ table: 'public.customers', column: 'email', strategy: 'redact' }] };
    const masker = new ResultMasker({ rules: columnsOnly, judge: testJudge() });
    masker.frontend(decoded(fe.query('copy')), copyHints({ format: 'text' }));
    const path = new BackendPath({ reader: new MessageReader({ side: 'backend' }), masking: maskingStageOf(masker) });
    const out = collectingOutput();
    // Half a row: a masking COPY parser would hold it back until the row is complete; a pass-through does not.
    const half = copyData('1\tnot an email 4111 ');
    await path.step(Buffer.concat([copyOut(0, 2), half]), out);
    out.flush();
    expect(copyText(messages(Buffer.concat(out.writes.splice(0))))).toBe('1\tnot an email 4111 ');
    // A CopyData that nothing can change goes on as its bytes arrive, even before it is complete.
    const rest = copyData('1111 1111 1111\n');
    await path.step(rest.subarray(0, 9), out);
    out.flush();
    expect(Buffer.concat(out.writes.splice(0)).equals(rest.subarray(0, 9))).toBe(true);
    await path.step(Buffer.concat([rest.subarray(9), msg('c', Buffer.alloc(0))]), out);
    out.flush();
    expect(Buffer.concat(out.writes).equals(Buffer.concat([rest.subarray(9), msg('c', Buffer.alloc(0))]))).toBe(true);
  });

  it('binary format: masked columns and detector hits become NULL', async () => {
    const header = Buffer.concat([Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1'), int32(0), int32(0)]);
    const tuple = (...f: Array<string | null>): Buffer => Buffer.concat([int16(f.length), ...f.flatMap((v) => (v === null ? [int32(-1)] : [int32(Buffer.byteLength(v)), Buffer.from(v)]))]);
    const masker = new ResultMasker({ rules: policy, judge: testJudge(() => strategies('id', 'email', 'notes')) });
    const body = Buffer.concat([header, tuple('1', 'alice@example.com', 'ok'), tuple('2', 'x', 'card 4111111111111111'), int16(-1)]);
    const out = await run(masker, [fe.query('copy')], [copyOut(1, 3), copyData(body.subarray(0, 30)), copyData(body.subarray(30)), msg('c', Buffer.alloc(0))], copyHints({ format: 'binary' }));
    const got = Buffer.concat(out.filter((m) => m.type === 0x64).map((m) => m.body));
    expect(got.equals(Buffer.concat([header, tuple('1', null, 'ok'), tuple('2', null, null), int16(-1)]))).toBe(true);
  });
});

describe('rows whose shape is not known, and portals nobody described', () => {
  it('adds a Describe before an Execute of an undescribed portal, consumes its answer, and masks by it', async () => {
    const masker = new ResultMasker({ rules: policy, catalog: new MapCatalog(), judge: testJudge() });
    const sent: string[] = [];
    for (const raw of [fe.parse('', 'q'), fe.bind('', '', []), fe.execute(''), fe.sync()]) {
      for (const b of masker.frontend(decoded(raw)) ?? []) sent.push(`${String.fromCharCode(b.msg!.type)}${b.msg!.body.toString('latin1')}`);
      sent.push(String.fromCharCode(raw[0]!));
    }
    expect(sent).toEqual(['P', 'B', 'DP\0', 'E', 'S']);
    const out = messages(
      await throughMasker(
        masker,
        Buffer.concat([msg('1', Buffer.alloc(0)), msg('2', Buffer.alloc(0)), rowDescription(customerCols.slice(0, 2)), text('1', 'alice@example.com'), complete('SELECT 1'), readyForQuery('I')]),
      ),
    );
    expect(out.map((m) => String.fromCharCode(m.type)).join('')).toBe('12DCZ');
    expect(rows(out)).toEqual([['1', '[redacted]']]);
    // A portal described after its Bind gets no extra Describe; one whose statement only was
    // described does (SQL may have replaced the statement since), and so does a second Execute.
    for (const raw of [fe.parse('s', 'q'), fe.describe('S', 's'), fe.bind('p', 's', []), fe.describe('P', 'p'), fe.execute('p')]) expect(masker.frontend(decoded(raw))).toBeUndefined();
    expect(masker.frontend(decoded(fe.execute('p')))).toHaveLength(1);
    for (const raw of [fe.bind('p2', 's', [])]) expect(masker.frontend(decoded(raw))).toBeUndefined();
    expect(masker.frontend(decoded(fe.execute('p2')))).toHaveLength(1);
  });

  it('hands on a DataRow that no RowDescription described as NULLs (fail closed)', async () => {
    let unknown = 0;
    const masker = new ResultMasker({ rules: policy, catalog: new MapCatalog(), judge: testJudge(), onUnknownRow: () => unknown++ });
    masker.frontend(decoded(fe.query('q')));
    const out = messages(await throughMasker(masker, Buffer.concat([text('1', 'alice@example.com'), complete('SELECT 1'), readyForQuery('I')])));
    expect(rows(out)).toEqual([[null, null]]);
    expect(unknown).toBe(1);
  });
});

describe('long values', () => {
  it('masks a value of 64 KiB or more with the detectors off the event loop, as it masks a short one', async () => {
    const line = 'call 4000 0000 0000 0002 or mail bob@example.com; ';
    const long = line.repeat(Math.ceil((256 * 1024) / line.length));
    const masked = `call **** **** **** 0002 or mail ${keyedHash('bob@example.com', KEY)}; `;
    const masker = new ResultMasker({ rules: policy, catalog: new MapCatalog(), judge: testJudge() });
    masker.frontend(decoded(fe.query('select ...')), EXACT);
    const described = masker.backend(messages(rowDescription(customerCols))[0]!);
    if (described instanceof Promise) await described;
    const row = messages(text('1', 'x', null, null, long, 'short: bob@example.com'))[0]!;
    const read = masker.backend(row);
    // A Promise while the worker masks it: the loop turns meanwhile (on the loop, it would not).
    expect(read).toBeInstanceOf(Promise);
    const { value, ticks } = await ticksWhile(read as Promise<Buffer>);
    expect(ticks).toBeGreaterThan(0);
    const [, , , , notes, upper] = parseDataRow(messages(value)[0]!.body).map((v) => v?.toString('utf8'));
    expect(notes).toBe(masked.repeat(Math.ceil((256 * 1024) / line.length)));
    expect(upper).toBe(`short: ${keyedHash('bob@example.com', KEY)}`);
    // A row of short values is masked on the loop, at once.
    expect(masker.backend(messages(text('2', 'x', null, null, line, 'y'))[0]!)).toBeInstanceOf(Buffer);
  });

  it("masks a function call's long result in the worker too", async () => {
    const line = 'call 4000 0000 0000 0002; ';
    const long = Buffer.from(line.repeat(Math.ceil((128 * 1024) / line.length)));
    const masker = new ResultMasker({ rules: policy, catalog: new MapCatalog(), judge: testJudge() });
    // lo_get (oid 3458), a function of the system's: its value goes through the detectors.
    masker.frontend(decoded(msg('F', Buffer.concat([int32(3458), int16(0), int16(0), int16(0)]))));
    const read = masker.backend(messages(msg('V', Buffer.concat([int32(long.length), long])))[0]!);
    expect(read).toBeInstanceOf(Promise);
    const { value, ticks } = await ticksWhile(read as Promise<Buffer>);
    expect(ticks).toBeGreaterThan(0);
    const body = messages(value)[0]!.body;
    expect(body.subarray(4).toString()).toBe('call **** **** **** 0002; '.repeat(Math.ceil((128 * 1024) / line.length)));
  });
});

describe('streaming', () => {
  const stream = (): Buffer[] => [
    rowDescription(customerCols),
    text('1', 'alice@example.com', '123-45-6789', '4111 1111 1111 1111', 'n 5555555555554444', 'X'),
    text('2', 'é€😀@example.com', null, '', 'ünïcödé', 'plain'),
    complete('SELECT 2'),
    noticeResponse({ severity: 'NOTICE', code: '00000', message: 'x 123-45-6789' }),
    msg('A', Buffer.concat([int32(1), cstr('c'), cstr('bob@example.com')])),
    readyForQuery('I'),
  ];

  it('gives the same, well-framed output at every split point', async () => {
    const whole = Buffer.concat(stream());
    const mk = (): ResultMasker => {
      const m = new ResultMasker({ rules: policy, catalog: new MapCatalog(), judge: testJudge() });
      m.frontend(decoded(fe.query('q')));
      return m;
    };
    const expected = await throughMasker(mk(), whole);
    const parsed = messages(expected);
    expect(parsed.map((m) => String.fromCharCode(m.type)).join('')).toBe('TDDCNAZ');
    expect(parsed[1]!.raw.length).not.toBe(stream()[1]!.length);
    for (let i = 1; i < whole.length; i++) {
      expect((await throughMasker(mk(), whole, [i])).equals(expected), `split at ${i}`).toBe(true);
    }
  });

  it('the pump holds the stream during catalog lookups and keeps order', async () => {
    const masker = new ResultMasker({ rules: policy, catalog: new MapCatalog(), judge: testJudge() });
    masker.frontend(decoded(fe.query('q')));
    masker.frontend(decoded(fe.query('q')));
    const input = Buffer.concat([...stream(), ...stream()]);
    const chunks: Buffer[] = [];
    for (let i = 0; i < input.length; i += 7) chunks.push(input.subarray(i, i + 7));
    const to = new PassThrough();
    const out: Buffer[] = [];
    to.on('data', (c: Buffer) => out.push(c));
    const from = Readable.from(chunks);
    const path = new BackendPath({ reader: new MessageReader({ side: 'backend' }), masking: maskingStageOf(masker) });
    pump(from, to, { step: path.step });
    await vi.waitFor(() => expect(messages(Buffer.concat(out))).toHaveLength(14));
    const ms = messages(Buffer.concat(out));
    expect(ms.map((m) => String.fromCharCode(m.type)).join('')).toBe('TDDCNAZTDDCNAZ');
    expect(rows(ms)[2]![1]).toBe('[redacted]');
    expect(parseRowDescription(ms[0]!.body)).toHaveLength(6);
  });
});
