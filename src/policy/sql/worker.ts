/**
 * Analysing long SQL texts off the event loop. Parsing a statement of many megabytes takes the
 * PostgreSQL parser seconds; run on the relay's thread it would stall every other session of the
 * process. {@link analyzeSqlInWorker} runs {@link analyzeSql} in one worker thread (started on
 * first use, unreferenced while idle), one text at a time in arrival order. A worker that fails
 * answers "does not parse", which the policy denies (fail closed), and is started again for the
 * next text.
 *
 * @see https://nodejs.org/api/worker_threads.html
 */
import { Worker } from 'node:worker_threads';
import type { Analysis } from './analyze.js';

interface Job {
  resolve: (analysis: Analysis) => void;
}

let worker: Worker | undefined;
const jobs = new Map<number, Job>();
let seq = 0;

/** The worker's script: the compiled `.js` beside this module, or the `.ts` source under tsx (tests). */
function start(): Worker {
  const ts = import.meta.url.endsWith('.ts');
  const w = new Worker(new URL(ts ? './worker-thread.ts' : './worker-thread.js', import.meta.url), ts ? { execArgv: ['--import', 'tsx'] } : {});
  w.unref();
  w.on('message', (m: { id: number; analysis: Analysis }) => {
    const job = jobs.get(m.id);
    jobs.delete(m.id);
    if (jobs.size === 0) w.unref();
    job?.resolve(m.analysis);
  });
  const failed = (why: string): void => {
    if (worker === w) worker = undefined;
    for (const job of jobs.values()) job.resolve({ ok: false, error: `the SQL analysis worker ${why}` });
    jobs.clear();
  };
  w.on('error', (err) => failed(`failed: ${err.message}`));
  w.on('exit', (code) => failed(`exited (${code})`));
  return w;
}

/**
 * The analysis of `sql` ({@link analyzeSql}), made in a worker thread. Never rejects: a failure
 * of the worker resolves to `{ ok: false }`.
 *
 * @see https://nodejs.org/api/worker_threads.html#class-worker
 */
export function analyzeSqlInWorker(sql: string): Promise<Analysis> {
  worker ??= start();
  worker.ref();
  const id = ++seq;
  return new Promise((resolve) => {
    jobs.set(id, { resolve });
    worker!.postMessage({ id, sql });
  });
}
