/**
 * The CLI's record when its relay reads no message (PostgresRawTap): the messages of either
 * direction a record keeps, copied as they pass and framed on the recording thread. Its record
 * must be the one the stage makes on a relay that reads every message (FrontendPath and
 * BackendPath with the stage), however the bytes were cut.
 */
import { describe, expect, it } from 'vitest';
import { createRecordEncoder, PostgresRecorder } from '../../src/postgres/pipeline/recording/encoder.js';
import { decodeWire } from '../../src/recording/wire.js';
import type { EventSink } from '../../src/recording/event-line.js';
import { PostgresRawTap, PostgresRecordingStage } from '../../src/postgres/pipeline/recording/stage.js';
import { PgProtocolError } from '../../src/postgres/wire/protocol-error.js';
import { MessageReader } from '../../src/postgres/wire/reader.js';
import { BackendPath, FrontendPath } from '../../src/postgres/pipeline/relay.js';
import type { RecordingEvent } from '../../src/recording/event-line.js';
import { ByteRun } from '../../src/byte-run.js';
import { loopbackStream, memorySink } from '../harness/memory-sink.js';
import { execute, frontendMessage as msg, int32, parse, sync } from '../harness/pg-frontend.js';

const rowDescription = (...names: string[]): Buffer => msg('T', names.length, ...names.flatMap((n) => [n, Buffer.alloc(18)]));
const dataRow = (...values: string[]): Buffer => msg('D', values.length, ...values.flatMap((v) => [int32(Buffer.byteLength(v)), Buffer.from(v)]));
const complete = (tag: string): Buffer => msg('C', tag);
const ready = (status: 'I' | 'T' | 'E'): Buffer => msg('Z', Buffer.from(status));
const notice = (type: 'N' | 'E', code: string, text: string): Buffer => msg(type, `S${type === 'E' ? 'ERROR' : 'NOTICE'}`, `C${code}`, `M${text}`, Buffer.from([0]));
const bindWith = (portal: string, stmt: string, value: Buffer): Buffer => msg('B', portal, stmt, 0, 1, int32(value.length), value, 0);

/** One session, in the order the relay saw it: each step is what one side sent. */
const SESSION: Array<['client' | 'server', Buffer[]]> = [
  ['server', [msg('R', int32(0)), msg('S', 'server_version', '15'), msg('K', int32(7), int32(9)), ready('I')]],
  ['client', [msg('Q', 'select id, name from t')]],
  ['server', [rowDescription('id', 'name'), dataRow('1', 'a'), dataRow('2', 'b'), complete('SELECT 2'), ready('I')]],
  ['client', [msg('Q', 'begin'), parse('s1', 'select $1'), bindWith('', 's1', Buffer.from('seven')), execute(''), sync()]],
  ['server', [complete('BEGIN'), ready('T'), msg('1'), msg('2'), rowDescription('n'), ...Array.from({ length: 9 }, (_, i) => dataRow(String(i))), complete('SELECT 9'), ready('T')]],
  // A Bind too long to hold: the relay reads its names as it streams.
  ['client', [bindWith('p2', 's1', Buffer.alloc(1024 * 1024 + 10, 'x')), execute('p2', 5), sync()]],
  ['server', [msg('2'), notice('N', '01000', 'careful'), dataRow('x'), msg('s'), ready('T')]],
  ['client', [msg('Q', 'select 1/0'), msg('d', Buffer.from('not read')), msg('F', int32(42), 0, 0, 0)]],
  ['server', [notice('E', '22012', 'division by zero'), ready('E'), msg('A', int32(7), 'chan', 'payload'), msg('H', Buffer.from([0]), 0)]],
  ['client', [msg('Q', 'rollback'), msg('X')]],
  ['server', [complete('ROLLBACK'), ready('I')]],
];

const out = () => ({ run: new ByteRun(), flush: () => undefined });

/** The record a relay that reads every message makes (the stage fed by FrontendPath and BackendPath). */
async function readEveryMessage(rowCap: number, results: 'masked' | 'none'): Promise<RecordingEvent[]> {
  const sink = memorySink();
  const stream = loopbackStream(sink, new PostgresRecorder(sink));
  const recorder = new PostgresRecordingStage({ stream, results, rowCap, now: () => 1 });
  const frontend = new FrontendPath({ reader: new MessageReader({ side: 'frontend' }), recorder });
  const backend = new BackendPath({ reader: new MessageReader({ side: 'backend' }), recorder });
  for (const [side, messages] of SESSION) await (side === 'client' ? frontend : backend).step(Buffer.concat(messages), out());
  recorder.end();
  stream.event({ t: 'end', at: 2 });
  return sink.events();
}

/** The record of a relay that reads no message: the tap copies the bytes of both sides, each cut every `cut` bytes. */
function tapped(rowCap: number, cut: number): RecordingEvent[] {
  const sink = memorySink();
  const stream = loopbackStream(sink, new PostgresRecorder(sink));
  const tap = new PostgresRawTap({ stream, rowCap, now: () => 1 });
  for (const [side, messages] of SESSION) {
    const bytes = Buffer.concat(messages);
    for (let at = 0; at < bytes.length; at += cut) {
      const piece = bytes.subarray(at, at + cut);
      if (side === 'client') tap.client(piece);
      else tap.server(piece);
    }
  }
  tap.end();
  stream.event({ t: 'end', at: 2 });
  return sink.events();
}

/** Each record as a `wire` event, as a CLI's records of format 2 kept them. */
const wireEvents = (sink: EventSink) => ({
  record: (kind: number, at: number, bytes: Buffer, start: number, end: number): void => void sink.append({ t: 'wire', at, k: kind, b: bytes.subarray(start, end).toString('base64') }),
  flush: () => undefined,
});

/** As {@link tapped}, kept as `wire` events (a CLI's record of format 2, src/recording/wire.ts) and read back through the PostgreSQL decoder. */
async function tappedAsWire(rowCap: number, cut: number): Promise<{ kept: RecordingEvent[]; read: RecordingEvent[] }> {
  const sink = memorySink();
  const stream = loopbackStream(sink, wireEvents(sink));
  stream.event({ t: 'start', at: 0, wire: 'postgres' });
  const tap = new PostgresRawTap({ stream, rowCap, now: () => 1 });
  for (const [side, messages] of SESSION) {
    const bytes = Buffer.concat(messages);
    for (let at = 0; at < bytes.length; at += cut) (side === 'client' ? tap.client : tap.server).call(tap, bytes.subarray(at, at + cut));
  }
  tap.end();
  stream.event({ t: 'end', at: 2 });
  const kept = sink.events();
  async function* events(): AsyncGenerator<RecordingEvent> {
    yield* kept;
  }
  const read: RecordingEvent[] = [];
  for await (const e of decodeWire(events(), { postgres: { createRecordEncoder } })) read.push(e);
  return { kept, read };
}

/** A tap whose records' bytes are also kept in `copied`. */
function copyingTap(rowCap: number): { tap: PostgresRawTap; copied: Buffer[]; stream: ReturnType<typeof loopbackStream>; sink: ReturnType<typeof memorySink> } {
  const sink = memorySink();
  const copied: Buffer[] = [];
  const stream = loopbackStream(sink, new PostgresRecorder(sink));
  const record = stream.record;
  stream.record = (kind, at, bytes, start, end) => {
    copied.push(Buffer.from(bytes.subarray(start, end)));
    record(kind, at, bytes, start, end);
  };
  return { tap: new PostgresRawTap({ stream, rowCap, now: () => 1 }), copied, stream, sink };
}

describe('the raw tap', () => {
  it('records what the stage on a relay that reads every message records, however the bytes are cut', async () => {
    const expected = await readEveryMessage(4, 'masked');
    expect(expected.map((e) => e.t)).toEqual(
      ['query', 'result', 'query', 'parse', 'execute', 'complete', 'ready', 'result', 'bind', 'execute', 'notice', 'row', 'complete'].concat([
        'query',
        'function-call',
        'error',
        'ready',
        'notification',
        'copy',
        'query',
        'complete',
        'ready',
        'end',
      ]),
    );
    expect(expected.find((e) => e.t === 'bind')).toMatchObject({ portal: 'p2', statement: 's1', params: 'not recorded (streamed)' });
    expect(expected.filter((e) => e.t === 'result')[1]).toMatchObject({ values: [['0'], ['1'], ['2'], ['3']], rows: 9, unrecorded: 5 });
    for (const cut of [1, 3, 7, 64, 1000, 1 << 30]) expect(tapped(4, cut), `cut every ${cut} bytes`).toEqual(expected);
  });

  it('keeps no secret typed into SQL in the bytes it copies: a password redacted as the stage redacts it, however the bytes are cut; a Query over 64 KiB by its length alone', () => {
    const long = `select '${'x'.repeat(70 * 1024)}'`;
    const client = Buffer.concat([msg('Q', "alter role a password 'hunter2'"), parse('s', "create role b password 'hunter2'"), sync(), msg('Q', long), msg('Q', 'select 1')]);
    for (const cut of [1, 5, 64, 1 << 30]) {
      const { tap, copied, sink } = copyingTap(4);
      for (let at = 0; at < client.length; at += cut) tap.client(client.subarray(at, at + cut));
      tap.end();
      expect(Buffer.concat(copied).includes('hunter2'), `cut every ${cut} bytes`).toBe(false);
      expect(Buffer.concat(copied).includes('x'.repeat(1024))).toBe(false);
      expect(sink.events().map((e) => [e.t, e.sql])).toEqual([
        ['query', "alter role a password '[redacted]'"],
        ['parse', "create role b password '[redacted]'"],
        ['query', `(${Buffer.byteLength(long) + 1} bytes, not recorded)`],
        ['query', 'select 1'],
      ]);
    }
  });

  it("keeps no secret the server repeats in the bytes it copies (an error after a typed password, a bound one, a COPY's rows: one marker each), however the bytes are cut", () => {
    const client = Buffer.concat([
      msg('Q', "alter role a password 'hunter2-typed'"),
      parse('s', 'insert into creds (name, password) values ($1, $2)'),
      msg('B', '', 's', 0, 2, int32(1), Buffer.from('a'), int32(12), Buffer.from('hunter2-bind'), 0),
      execute(''),
      sync(),
      msg('Q', 'copy creds2 from stdin'),
    ]);
    const server = Buffer.concat([
      notice('E', '22P02', 'invalid input syntax: "hunter2-typed"'),
      ready('I'),
      msg('1'),
      msg('2'),
      notice('E', '23505', 'duplicate key value violates unique constraint; Key (password)=(hunter2-bind) already exists.'),
      ready('I'),
      msg('G', 0, 0),
      msg('E', 'SERROR', 'C23514', 'Mnew row violates check constraint', 'DFailing row contains (a, hunter2-copy).', 'WCOPY creds2, line 1: "a\thunter2-copy"', Buffer.from([0])),
      ready('I'),
      // A trigger's pg_notify of the value.
      msg('A', int32(7), 'ch', 'hunter2-notify'),
    ]);
    for (const cut of [1, 2, 5, 64, 1 << 30]) {
      const { tap, copied, sink } = copyingTap(4);
      for (let at = 0; at < client.length; at += cut) tap.client(client.subarray(at, at + cut));
      for (let at = 0; at < server.length; at += cut) tap.server(server.subarray(at, at + cut));
      tap.end();
      const bytes = Buffer.concat(copied);
      for (const secret of ['hunter2-typed', 'hunter2-bind', 'hunter2-copy', 'hunter2-notify']) expect(bytes.includes(secret), `${secret}, cut every ${cut} bytes`).toBe(false);
      expect(sink.events().find((e) => e.t === 'notification')).toMatchObject({ channel: 'ch', payload: '[redacted]' });
      const errors = sink.events().filter((e) => e.t === 'error');
      expect(errors.map((e) => e.message)).toEqual(['[redacted]', '[redacted]', '[redacted]']);
      expect(errors.map((e) => e.code)).toEqual(['22P02', '23505', '23514']);
    }
  });

  it('kept as wire events (a CLI record of format 2), reads back as the same record', async () => {
    const expected = await readEveryMessage(4, 'masked');
    for (const cut of [7, 1 << 30]) {
      const { kept, read } = await tappedAsWire(4, cut);
      expect(kept.some((e) => e.t === 'query')).toBe(false);
      expect(kept.filter((e) => e.t === 'wire').length).toBeGreaterThan(5);
      expect(read, `cut every ${cut} bytes`).toEqual([{ t: 'start', at: 0, wire: 'postgres' }, ...expected]);
    }
  });

  it('a wire event is read only by an encoder the record names: else the record is said to be unreadable', async () => {
    async function* events(start: RecordingEvent): AsyncGenerator<RecordingEvent> {
      yield start;
      yield { t: 'wire', at: 1, k: 25, b: msg('Q', 'select 1').toString('base64') };
    }
    const read = async (start: RecordingEvent, decoders = {}) => {
      for await (const _ of decodeWire(events(start), decoders));
    };
    await expect(read({ t: 'start', at: 0, wire: 'mysql' }, { postgres: { createRecordEncoder } })).rejects.toThrow('the record keeps mysql messages, which this hoop cannot read');
    await expect(read({ t: 'start', at: 0 })).rejects.toThrow('the record keeps messages of no protocol it names');
    await expect(read({ t: 'start', at: 0, wire: 'constructor' })).rejects.toThrow('which this hoop cannot read');
  });

  it('keeps no rows when the gateway says none', async () => {
    const expected = await readEveryMessage(0, 'none');
    expect(expected.some((e) => e.t === 'row' || (e.t === 'result' && Array.isArray(e.values) && e.values.length > 0))).toBe(false);
    for (const cut of [5, 1 << 30]) expect(tapped(0, cut)).toEqual(expected);
  });

  it('copies only the client messages a record keeps, and stops reading at bytes that do not frame', async () => {
    const { tap, copied, stream, sink } = copyingTap(4);
    const copyData = msg('d', Buffer.alloc(1000, 'c'));
    tap.client(Buffer.concat([msg('Q', 'select 1'), copyData, copyData, sync()]));
    expect(Buffer.concat(copied).equals(msg('Q', 'select 1'))).toBe(true);
    tap.client(Buffer.from('\x01\xff\xff\xff\xffgarbage'));
    tap.client(msg('Q', 'select 2'));
    stream.event({ t: 'end', at: 2 });
    expect(sink.events()).toEqual([
      { t: 'query', sql: 'select 1', at: 1 },
      { t: 'end', at: 2 },
    ]);
  });

  it('copies only the server messages a record keeps: rows up to the cap, counted beyond it', () => {
    const { tap, copied, stream, sink } = copyingTap(2);
    const rows = Array.from({ length: 50 }, (_, i) => dataRow(`row ${i}`));
    tap.server(Buffer.concat([msg('1'), msg('2'), rowDescription('n'), ...rows, complete('SELECT 50'), ready('I')]));
    tap.end();
    stream.event({ t: 'end', at: 2 });
    // The rows beyond the cap and ParseComplete and BindComplete are not copied: only a count of the rows (4 bytes).
    const kept = Buffer.concat([rowDescription('n'), rows[0]!, rows[1]!]);
    expect(copied.map((b) => b.length)).toEqual([kept.length, 4, complete('SELECT 50').length + ready('I').length]);
    expect(sink.events()[0]).toMatchObject({ t: 'result', values: [['row 0'], ['row 1']], rows: 50, unrecorded: 48 });
  });

  it('refuses server bytes a reader would refuse, before they are copied', () => {
    const bad = [Buffer.from('\x01\x00\x00\x00\x04'), Buffer.from('Z\x00\x00\x00\x09IIIII'), Buffer.from('D\x7f\xff\xff\xff')];
    const why = [/unexpected backend message type 0x01/, /invalid message length 9 for 'Z'/, /exceeds the \d+-byte limit for 'D'/];
    bad.forEach((b, i) => {
      const { tap, copied } = copyingTap(4);
      expect(() => tap.server(Buffer.concat([complete('SELECT 1'), b]))).toThrow(PgProtocolError);
      expect(() => copyingTap(4).tap.server(b)).toThrow(why[i]!);
      // Nothing of the chunk went to the record, not even the whole message before the bad header.
      expect(copied).toEqual([]);
    });
  });
});

describe('a relay that reads every message', () => {
  it('reads the names of a Bind too long to hold wherever its header is cut', async () => {
    const big = bindWith('p9', 's9', Buffer.alloc(1024 * 1024 + 10, 'y'));
    for (const cut of [1, 2, 3, 4, 5, 6, 9]) {
      const sink = memorySink();
      const stream = loopbackStream(sink, new PostgresRecorder(sink));
      const recorder = new PostgresRecordingStage({ stream, results: 'masked', rowCap: 10, now: () => 1 });
      const frontend = new FrontendPath({ reader: new MessageReader({ side: 'frontend' }), recorder });
      const sent = out();
      await frontend.step(big.subarray(0, cut), sent);
      await frontend.step(big.subarray(cut), sent);
      stream.event({ t: 'end', at: 2 });
      expect(sink.events()[0], `cut at ${cut}`).toMatchObject({ t: 'bind', portal: 'p9', statement: 's9' });
      expect(Buffer.concat(sent.run.take()).equals(big), `cut at ${cut}`).toBe(true);
    }
  });
});
