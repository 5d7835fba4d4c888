/**
 * The worker thread of {@link redactedLineAhead} (./line-ahead.ts): writes each agent's line it is
 * handed as the recording keeps it, and hands it back (nothing when that fails).
 *
 * @see https://nodejs.org/api/worker_threads.html#workerparentport
 */
import { parentPort } from 'node:worker_threads';
import { announceThread } from '../../worker-thread.js';
import type { LineJob } from './line-ahead.js';
import { redactedLine } from '../../policy/masking/json-values.js';

announceThread();

parentPort!.on('message', (m: LineJob) => {
  try {
    // A key crosses to the thread as a Uint8Array: a Buffer again, so that it keys the hashes as it did.
    parentPort!.postMessage({ line: redactedLine(m.text, { detectors: [...m.detectors] }, m.key ? Buffer.from(m.key) : undefined) });
  } catch {
    parentPort!.postMessage({ line: undefined });
  }
});
