/**
 * The verifying thread (see ./verify-thread.ts): runs {@link verifyRecording} for each job as it
 * comes, at the lowest CPU priority.
 *
 * @see https://nodejs.org/api/worker_threads.html#workerparentport
 */
import { parentPort } from 'node:worker_threads';
import { lowerThreadPriority } from '../worker-thread.js';
import type { VerifyJob, VerifyReply } from './verify-thread.js';
import { verifyRecording } from './verify.js';

lowerThreadPriority();
const port = parentPort!;
port.on('message', (job: VerifyJob) => {
  verifyRecording(job.dir, job.trusted, job.before, undefined, job.beside).then(
    (check) => port.postMessage({ id: job.id, check } satisfies VerifyReply),
    (err: unknown) => port.postMessage({ id: job.id, error: err instanceof Error ? err.message : String(err) } satisfies VerifyReply),
  );
});
