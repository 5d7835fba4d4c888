/**
 * Long MySQL texts analysed off the event loop: the parser reads about a megabyte a second, so a
 * bulk INSERT of many kilobytes would stall every other session of the process. {@link readLongMysql}
 * hands a text of {@link OFF_LOOP_CHARS} or more to one worker thread (texts queued, one at a time)
 * and keeps its analysis for {@link analyzeMysql}, which then answers at once.
 *
 * @see https://nodejs.org/api/worker_threads.html
 */
import { startWorker, WorkerQueue } from '../../worker-thread.js';
import type { Analysis } from '../sql/analyze.js';
import { type MysqlReading, rememberLong } from './analyze.js';

/** Texts this long or longer are analysed in the worker (about 10 ms of parsing on the event loop at most). */
export const OFF_LOOP_CHARS = 8192;

const analyser = new WorkerQueue<{ text: string; reading: MysqlReading }, { analysis: Analysis }>(
  () => startWorker(import.meta.url, 'long-sql-thread', { maxOldGenerationSizeMb: 1024 }),
  (why) => ({ analysis: { ok: false, parser: 'MySQL', error: `the gateway's MySQL reader failed (${why})` } }),
);

/** Analyses `text` as a session reading `reading` lexes it, in the worker, and keeps the analysis for {@link analyzeMysql}. */
export async function readLongMysql(text: string, reading: MysqlReading): Promise<void> {
  const { analysis } = await analyser.ask({ text, reading: { ...reading } });
  rememberLong(text, reading, analysis);
}
