/**
 * The worker thread of {@link analyzeLongSql} (./worker.ts): for each message it is handed, finds
 * the SQL (from `from` to the next NUL of the body), checks that it is UTF-8, looks for a
 * backslash, analyses it, and hands the bytes back with what it found.
 *
 * @see https://nodejs.org/api/worker_threads.html#workerparentport
 */
import { isUtf8 } from 'node:buffer';
import { parentPort } from 'node:worker_threads';
import { analyzeSql, loadSqlParser, type Analysis } from './analyze.js';
import type { WorkerReply } from './worker.js';

/** The analysis without what is large and not needed for a long text: literal offsets, texts of statements other than PREPARE. */
function slim(a: Analysis): Analysis {
  if (!a.ok) return a;
  return { ok: true, numericLiterals: [], statements: a.statements.map((s) => (s.kinds[0] === 'prepare' ? s : { ...s, text: '' })) };
}

const ready = loadSqlParser();
parentPort!.on('message', async (m: { id: number; buffer: ArrayBuffer; offset: number; length: number; from: number }) => {
  await ready;
  const body = Buffer.from(m.buffer, m.offset, m.length).subarray(5);
  const end = body.indexOf(0, m.from);
  const bytes = body.subarray(m.from, end < 0 ? body.length : end);
  const utf8 = isUtf8(bytes);
  const reply: WorkerReply = {
    id: m.id,
    analysis: end >= 0 && utf8 ? slim(analyzeSql(bytes.toString('utf8'))) : { ok: false, error: 'not read' },
    utf8,
    backslash: bytes.includes(0x5c),
    terminated: end >= 0,
    buffer: m.buffer,
    offset: m.offset,
    length: m.length,
  };
  parentPort!.postMessage(reply, [m.buffer]);
});
