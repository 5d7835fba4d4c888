/**
 * Long MySQL texts analysed off the event loop: the parser reads about a megabyte a second, so a
 * bulk INSERT of many kilobytes would stall every other session of the process. {@link readLongMysql}
 * hands a text of {@link OFF_LOOP_CHARS} or more to one worker thread (texts queued, one at a time)
 * and keeps its analysis for {@link analyzeMysql}, which then answers at once.
 *
 * @see https://nodejs.org/api/worker_threads.html
 */
import { LazyWorker, startWorker } from '../../worker-thread.js';
import type { Analysis } from '../sql/analyze.js';
import { type MysqlReading, rememberLong } from './analyze.js';

/** Texts this long or longer are analysed in the worker (about 10 ms of parsing on the event loop at most). */
export const OFF_LOOP_CHARS = 8192;

interface Job {
  message: { id: number; text: string; reading: MysqlReading };
  resolve: (analysis: Analysis) => void;
}

let current: Job | undefined;
const queue: Job[] = [];
let seq = 0;

const analyser = new LazyWorker<{ id: number; analysis: Analysis }>(() => startWorker(import.meta.url, 'long-sql-thread', { maxOldGenerationSizeMb: 1024 }), {
  message(m) {
    const job = current;
    current = undefined;
    job?.resolve(m.analysis);
    next();
  },
  died(why) {
    const job = current;
    current = undefined;
    job?.resolve({ ok: false, parser: 'MySQL', error: `the gateway's MySQL reader failed (${why})` });
    next();
  },
});

/** Hands the next text to the worker (started when needed); the worker holds the process only while it works. */
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
  w.postMessage(job.message);
}

/** Analyses `text` as a session reading `reading` lexes it, in the worker, and keeps the analysis for {@link analyzeMysql}. */
export async function readLongMysql(text: string, reading: MysqlReading): Promise<void> {
  const analysis = await new Promise<Analysis>((resolve) => {
    queue.push({ message: { id: ++seq, text, reading: { ...reading } }, resolve });
    next();
  });
  rememberLong(text, reading, analysis);
}
