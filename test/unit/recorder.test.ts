/**
 * The PostgreSQL recording stage on its own: a small result is one `result` event, a larger one
 * streams, anything else in between (a notice, the session's end) writes what was held first, in
 * the order the client received it.
 */
import { describe, expect, it } from 'vitest';
import { PostgresRecorder } from '../../src/postgres/pipeline/recording/encoder.js';
import { PostgresRecordingStage } from '../../src/postgres/pipeline/recording/stage.js';
import type { RecordingEvent } from '../../src/recording/event-line.js';
import type { RecordingStream } from '../../src/recording/thread.js';
import { loopbackStream, memorySink } from '../harness/memory-sink.js';
import { decodeFrontend } from '../../src/postgres/wire/frontend-messages.js';
import { bind, execute, frontendMessage as msg, int32, parse } from '../harness/pg-frontend.js';
import { ticksWhile } from '../harness/event-loop.js';

/** A RowDescription of text columns, but `id` and `n` of type int4 (23). */
const rowDescription = (...names: string[]): Buffer =>
  msg(
    'T',
    names.length,
    ...names.flatMap((n) => {
      const field = Buffer.alloc(18);
      field.writeUInt32BE(n === 'id' || n === 'n' ? 23 : 25, 6);
      return [n, field];
    }),
  );
const dataRow = (...values: string[]): Buffer => msg('D', values.length, ...values.flatMap((v) => [int32(Buffer.byteLength(v)), Buffer.from(v)]));
const complete = (tag: string): Buffer => msg('C', tag);
const notice = (text: string): Buffer => msg('N', 'SNOTICE', 'C00000', `M${text}`, Buffer.from([0]));

function recorder(): { events: () => RecordingEvent[]; rec: PostgresRecordingStage; stream: RecordingStream } {
  const sink = memorySink();
  const stream = loopbackStream(sink, new PostgresRecorder(sink));
  const rec = new PostgresRecordingStage({ stream, results: 'masked', rowCap: 1000, now: () => 1 });
  return { events: () => sink.events(), rec, stream };
}

describe('the recording stage', () => {
  it('writes a small result as one event with its columns, rows and outcome', () => {
    const { events, rec } = recorder();
    rec.backend(Buffer.concat([rowDescription('id', 'name'), dataRow('1', 'a'), dataRow('2', 'b'), complete('SELECT 2')]));
    expect(events()).toEqual([
      {
        t: 'result',
        names: ['id', 'name'],
        types: [23, 25],
        values: [
          ['1', 'a'],
          ['2', 'b'],
        ],
        tag: 'SELECT 2',
        rows: 2,
        at: 1,
      },
    ]);
  });

  it('streams a larger result as columns, rows and complete', () => {
    const { events, rec } = recorder();
    const rows = Array.from({ length: 20 }, (_, i) => dataRow(String(i)));
    rec.backend(Buffer.concat([rowDescription('n'), ...rows, complete('SELECT 20')]));
    expect(events().map((e) => e.t)).toEqual(['columns', ...Array(20).fill('row'), 'complete']);
    expect(
      events()
        .filter((e) => e.t === 'row')
        .map((e) => e.values),
    ).toEqual(Array.from({ length: 20 }, (_, i) => [String(i)]));
  });

  it('keeps the order the client saw when a notice comes mid-result, and writes a held result when the session ends', async () => {
    const { events, rec } = recorder();
    rec.backend(Buffer.concat([rowDescription('n'), dataRow('1'), notice('careful'), dataRow('2'), complete('SELECT 2')]));
    expect(events().map((e) => e.t)).toEqual(['columns', 'row', 'notice', 'row', 'complete']);
    const cut = recorder();
    cut.rec.backend(Buffer.concat([rowDescription('n'), dataRow('1')]));
    expect(cut.events()).toEqual([]);
    cut.rec.end();
    await cut.stream.close();
    expect(cut.events()).toEqual([
      { t: 'columns', names: ['n'], types: [23], at: 1 },
      { t: 'row', values: ['1'], at: 1 },
    ]);
  });

  it('writes a Bind and the Execute of its portal right after it as one execute event; any other Bind on its own, in order', () => {
    const { events, rec } = recorder();
    const send = (raw: Buffer): void => void rec.frontend(decodeFrontend({ type: raw[0]!, body: raw.subarray(5), raw }));
    const withParam = msg('B', '', 's1', 0, 1, int32(1), Buffer.from('7'), 0); // no formats (text), one parameter, no result formats
    send(parse('s1', 'select $1'));
    send(withParam);
    send(execute(''));
    send(bind('p2', 's1'));
    send(parse('s2', 'select 2'));
    send(execute('p2', 10));
    rec.backend(complete('SELECT 1'));
    expect(events()).toEqual([
      { t: 'parse', statement: 's1', sql: 'select $1', at: 1 },
      { t: 'execute', portal: '', statement: 's1', params: ['7'], at: 1 },
      { t: 'bind', portal: 'p2', statement: 's1', params: [], at: 1 },
      { t: 'parse', statement: 's2', sql: 'select 2', at: 1 },
      { t: 'execute', portal: 'p2', statement: 's1', maxRows: 10, at: 1 },
      { t: 'complete', tag: 'SELECT 1', rows: 0, ms: 0, at: 1 },
    ]);
  });
});

describe('a long Bind at the gateway', () => {
  it('has its values read by the detectors in the worker (the loop turns meanwhile) and recorded as on the loop', async () => {
    const redact = { key: 'k', detectors: ['payment-card' as const] };
    const decoded = (raw: Buffer) => decodeFrontend({ type: raw[0]!, body: raw.subarray(5), raw });
    const long = Buffer.from('card 4111 1111 1111 1111; '.repeat(4000));
    /** The execute event a stage records for the long Bind (`ahead`: in the worker), and what its Bind answered. */
    const recorded = async (ahead: boolean) => {
      const sink = memorySink();
      const rec = new PostgresRecordingStage({ stream: loopbackStream(sink, new PostgresRecorder(sink)), results: 'masked', rowCap: 1000, now: () => 1, redact, ahead });
      void rec.frontend(decoded(parse('s1', 'insert into notes (body, other) values ($1, $2)')));
      const answered = rec.frontend(decoded(msg('B', '', 's1', 0, 2, int32(long.length), long, int32(1), Buffer.from('x'), 0)));
      const ticks = answered instanceof Promise ? (await ticksWhile(answered)).ticks : 0;
      void rec.frontend(decoded(execute('')));
      rec.backend(complete('INSERT 0 1'));
      return { answered, ticks, event: sink.events().find((e) => e.t === 'execute'), rec };
    };
    const inWorker = await recorded(true);
    const onLoop = await recorded(false);
    expect(inWorker.answered).toBeInstanceOf(Promise);
    expect(inWorker.ticks).toBeGreaterThan(0);
    expect(onLoop.answered).toBeUndefined();
    expect(inWorker.event).toEqual(onLoop.event);
    expect(JSON.stringify(inWorker.event)).not.toContain('4111');
    // A short Bind is recorded at once.
    expect(inWorker.rec.frontend(decoded(msg('B', '', 's1', 0, 2, int32(1), Buffer.from('y'), int32(1), Buffer.from('x'), 0)))).toBeUndefined();
  });
});

describe("the server's echo of a redacted secret", () => {
  /** A recorder, and one exchange: the client's Query `sql`, the server's error `text` and ReadyForQuery. */
  const exchanges = () => {
    const { events, rec } = recorder();
    const exchange = (sql: string, text: string): void => {
      const raw = msg('Q', sql);
      rec.frontend(decodeFrontend({ type: raw[0]!, body: raw.subarray(5), raw }));
      rec.backend(Buffer.concat([msg('E', 'SERROR', 'VERROR', 'C22P02', `M${text}`, Buffer.from([0])), msg('Z', 'I')]));
    };
    return { events, exchange };
  };

  it('is recorded as one marker once the client sent a secret, whatever spelling the server gives it (the fifteenth and seventeenth attacks, twelve more of a helper); errors before it as they came', () => {
    const { events, exchange } = exchanges();
    exchange('select y::int from t', 'invalid input syntax for type integer: "plain-word"');
    exchange("select 1 from users where password = 'pw-cast-TTTT'::int::text", 'invalid input syntax for type integer: "pw-cast-TTTT"');
    exchange('select x::int from t', 'invalid input syntax for type integer: "PW-CAST-TTTT"');
    exchange("select 1 from users where password = E'Pw\\x41Bks4Lm'::int", 'invalid input syntax for type integer: "PwABks4Lm"');
    const errors = events().filter((e) => e.t === 'error');
    const text = JSON.stringify(events());
    for (const secret of ['pw-cast', 'PW-CAST', 'Bks4Lm']) expect(text).not.toContain(secret);
    expect(errors.map((e) => e.message)).toEqual(['invalid input syntax for type integer: "plain-word"', '[redacted]', '[redacted]', '[redacted]']);
    expect(errors[1]).toMatchObject({ code: '22P02' });
  });
});
