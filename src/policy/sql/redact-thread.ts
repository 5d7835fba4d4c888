/**
 * The worker thread of {@link redactAhead} (./redact-ahead.ts): redacts each text it is handed as
 * SQL or as a value, and hands back the result (nothing when that fails: the text is then redacted
 * on the event loop).
 *
 * @see https://nodejs.org/api/worker_threads.html#workerparentport
 */
import { parentPort } from 'node:worker_threads';
import { announceThread } from '../../worker-thread.js';
import type { RedactJob } from './redact-ahead.js';
import { redactDetected, redactSql } from './redact.js';

announceThread();

parentPort!.on('message', (m: RedactJob) => {
  try {
    // A key crosses to the thread as a Uint8Array: a Buffer again, so that it keys the hash as it did.
    const o = m.o.key instanceof Uint8Array ? { ...m.o, key: Buffer.from(m.o.key) } : m.o;
    parentPort!.postMessage({ redacted: m.dialect ? redactSql(m.text, m.dialect, o) : redactDetected(m.text, o) });
  } catch {
    parentPort!.postMessage({ redacted: undefined });
  }
});
