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
/** Files sent in memory arrive as plain byte arrays: read as buffers, in place. */
const asBuffers = (files: Map<string, Uint8Array>): Map<string, Buffer> => new Map([...files].map(([name, data]) => [name, Buffer.from(data.buffer, data.byteOffset, data.byteLength)]));

port.on('message', (job: VerifyJob) => {
  verifyRecording(typeof job.dir === 'string' ? job.dir : asBuffers(job.dir), job.trusted, job.before, undefined, job.beside).then(
    (check) => port.postMessage({ id: job.id, check } satisfies VerifyReply),
    (err: unknown) => port.postMessage({ id: job.id, error: err instanceof Error ? err.message : String(err) } satisfies VerifyReply),
  );
});
