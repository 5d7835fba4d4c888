/**
 * Verifying recordings off the event loop. The gateway verifies a record a CLI uploads when its
 * signature comes (src/gateway/records/client-records.ts): every chunk read, hashed, decompressed and each
 * of its lines parsed. For a long session that is seconds of work, and a chunk may claim up to
 * {@link MAX_CHUNK_TEXT} of text: done on the thread that relays every session, it would stall
 * them all, at the will of anyone who may upload a record. {@link verifyOffThread} runs
 * {@link verifyRecording} on one worker thread instead, at the lowest CPU priority (it gives way to
 * the relay), started on first use and unreferenced while idle. The caller bounds how many run at
 * once; they share the worker.
 *
 * @see https://nodejs.org/api/worker_threads.html
 */
import type { KeyObject } from 'node:crypto';
import { LazyWorker, startWorker } from '../worker-thread.js';
import type { RecordingCheck, VerifiedBefore, verifyRecording } from './verify.js';

/** A verification for the worker: the recording's directory (or its files), the keys it may be signed with, and what a check before verified. */
export interface VerifyJob {
  id: number;
  dir: string | Map<string, Buffer>;
  trusted: KeyObject[];
  before?: VerifiedBefore;
  beside: string[];
}

/** The worker's answer: the check, or why it could not be made. */
export type VerifyReply = { id: number; check: RecordingCheck } | { id: number; error: string };

const pending = new Map<number, { resolve: (check: RecordingCheck) => void; reject: (err: Error) => void }>();
let seq = 0;

const verifier = new LazyWorker<VerifyReply>(() => startWorker(import.meta.url, 'verify-worker'), {
  message(m) {
    const job = pending.get(m.id);
    pending.delete(m.id);
    if ('check' in m) job?.resolve(m.check);
    else job?.reject(new Error(m.error));
    if (pending.size === 0) verifier.busy(false);
  },
  // The verifications it held fail (their uploads are answered with an error and tried again); the next one starts a new worker.
  died(why) {
    const error = new Error(`the verifying thread stopped: ${why}`);
    for (const job of pending.values()) job.reject(error);
    pending.clear();
  },
});

/** {@link verifyRecording} of the recording in `dir` (or these files) against `trusted` keys (after what a check `before` verified, the `beside` files its keeper's), on the verifying thread. */
export function verifyOffThread(dir: string | Map<string, Buffer>, trusted: readonly KeyObject[], before: VerifiedBefore | undefined, beside: readonly string[]): Promise<RecordingCheck> {
  const w = verifier.worker;
  const id = ++seq;
  return new Promise((resolve, reject) => {
    pending.set(id, { resolve, reject });
    verifier.busy(true);
    w.postMessage({ id, dir, trusted: [...trusted], beside: [...beside], ...(before ? { before } : {}) } satisfies VerifyJob);
  });
}
