/**
 * Analysing long SQL texts off the event loop. Decoding and parsing a statement of many
 * megabytes takes the PostgreSQL parser seconds; done on the relay's thread it would stall every
 * other session of the process. {@link analyzeLongSql} hands the message's bytes to one worker
 * thread (moved, not copied, when the message has a buffer of its own) which checks them, decodes
 * and analyses the SQL, and hands the bytes back. The worker is started on first use,
 * unreferenced while idle, and is handed one text at a time in arrival order; one that fails (or
 * whose parser gave up on a text too large for its memory) is replaced for the next text.
 *
 * @see https://nodejs.org/api/worker_threads.html
 */
import { LazyWorker, startWorker } from '../../worker-thread.js';
import type { Analysis } from './analyze.js';

/** What the worker found in a long SQL text. */
export interface LongSqlFacts {
  /** The analysis (statement texts kept for PREPARE only; no literal offsets). */
  analysis: Analysis;
  /** Whether the text is valid UTF-8 (it is not analysed otherwise). */
  utf8: boolean;
  /** Whether the text holds a backslash byte. */
  backslash: boolean;
  /** Whether the text has its terminating NUL (a malformed message otherwise). */
  terminated: boolean;
  /** The message, whose bytes may have moved to the worker and back: use this one. */
  raw: Buffer;
}

/** The worker's answer for one message. */
export interface WorkerReply {
  id: number;
  analysis: Analysis;
  utf8: boolean;
  backslash: boolean;
  terminated: boolean;
  buffer: ArrayBuffer;
  offset: number;
  length: number;
}

interface Job {
  message: { id: number; buffer: ArrayBuffer; offset: number; length: number; from: number };
  resolve: (reply: WorkerReply | undefined) => void;
}

/** A worker that analysed a message larger than this is replaced (see the message handler). */
const RETIRE_AFTER = 8 * 1024 * 1024;

/** The one job the worker holds; jobs wait in `queue` and are handed over one at a time. */
let current: Job | undefined;
const queue: Job[] = [];
let seq = 0;

/** The worker: the compiled `worker-thread.js` beside this module, or its `.ts` source. */
const analyser = new LazyWorker<WorkerReply>(() => startWorker(import.meta.url, 'worker-thread'), {
  message(m, w) {
    const job = current;
    current = undefined;
    // The parser's memory only grows (WebAssembly): after a text this large, or after the parser
    // gave up on one (it ends its module when a statement exhausts its memory), that worker goes
    // and its memory with it.
    if (m.length > RETIRE_AFTER || (!m.analysis.ok && /terminated/i.test(m.analysis.error))) void analyser.retire(w);
    job?.resolve(m);
    next();
  },
  died() {
    const job = current;
    current = undefined;
    job?.resolve(undefined);
    next();
  },
});

/** Hands the next job to the worker (started when needed); the worker holds the process only while it works. */
function next(): void {
  if (current) return;
  const job = queue.shift();
  if (!job) {
    analyser.busy(false);
    return;
  }
  const w = analyser.worker;
  analyser.busy(true);
  current = job;
  w.postMessage(job.message, [job.message.buffer]);
}

/**
 * Checks and analyses the SQL of the message `raw` (a Query or Parse), which starts at byte
 * `from` of its body and ends at the next NUL, in a worker thread.
 *
 * @throws Error when the worker failed while it held the message's bytes (the session must end)
 * @see https://nodejs.org/api/worker_threads.html#portpostmessagevalue-transferlist
 */
export async function analyzeLongSql(raw: Buffer, from: number): Promise<LongSqlFacts> {
  // A buffer of its own is moved to the worker and back; a view into a larger one is copied.
  const own = raw.byteOffset === 0 && raw.byteLength === raw.buffer.byteLength && raw.buffer instanceof ArrayBuffer;
  const sent = own ? raw : Buffer.from(raw);
  const reply = await new Promise<WorkerReply | undefined>((resolve) => {
    queue.push({ message: { id: ++seq, buffer: sent.buffer as ArrayBuffer, offset: sent.byteOffset, length: sent.length, from }, resolve });
    next();
  });
  if (!reply) {
    if (own) throw new Error('the SQL analysis worker failed while it held the statement');
    return { analysis: { ok: false, error: 'the SQL analysis worker failed' }, utf8: true, backslash: true, terminated: true, raw };
  }
  return {
    analysis: reply.analysis,
    utf8: reply.utf8,
    backslash: reply.backslash,
    terminated: reply.terminated,
    raw: own ? Buffer.from(reply.buffer, reply.offset, reply.length) : raw,
  };
}
