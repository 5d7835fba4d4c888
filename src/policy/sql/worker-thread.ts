/**
 * The worker thread of {@link analyzeSqlInWorker} (./worker.ts): analyses each SQL text it is
 * sent and posts the analysis back.
 *
 * @see https://nodejs.org/api/worker_threads.html#workerparentport
 */
import { parentPort } from 'node:worker_threads';
import { analyzeSql, loadSqlParser } from './analyze.js';

const ready = loadSqlParser();
parentPort!.on('message', async (m: { id: number; sql: string }) => {
  await ready;
  parentPort!.postMessage({ id: m.id, analysis: analyzeSql(m.sql) });
});
