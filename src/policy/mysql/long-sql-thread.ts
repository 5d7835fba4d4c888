/**
 * The worker thread of {@link readLongMysql} (./long-sql.ts): analyses each text it is handed as
 * its session lexes it, and hands the analysis back.
 *
 * @see https://nodejs.org/api/worker_threads.html#workerparentport
 */
import { parentPort } from 'node:worker_threads';
import { analyzeMysql, loadMysqlParser, type MysqlReading } from './analyze.js';

const ready = loadMysqlParser();
parentPort!.on('message', async (m: { text: string; reading: MysqlReading }) => {
  await ready;
  parentPort!.postMessage({ analysis: analyzeMysql(m.text, m.reading) });
});
