/**
 * An agent's long line as it is recorded, made off the event loop: the detectors read a line full
 * of matches at a few MB/s, so a 4 MiB line redacted on the loop would hold every session of the
 * process for most of a second. {@link redactedLineAhead} makes it in one worker thread (each
 * session's lines in turn with others'); a worker that dies leaves the line to the loop.
 *
 * @see ../../policy/sql/redact-ahead.ts (the same for SQL), ./masking.ts (redactedLine)
 */
import type { DetectorName } from '../../policy/masking/detectors.js';
import { startWorker, WorkerQueue } from '../../worker-thread.js';
import { redactedLine } from '../../policy/masking/json-values.js';

/** One line for the worker, with the session's detectors and the key of its hashes. */
export interface LineJob {
  text: string;
  detectors: readonly DetectorName[];
  key: Buffer | undefined;
}

const lines = new WorkerQueue<LineJob, { line: string | undefined }>(
  () => startWorker(import.meta.url, 'line-thread'),
  () => ({ line: undefined }),
);

/** Agent's line `job.text` as `redactedLine` writes it down, made in the worker (on the loop, when the worker fails); `owner`'s lines take their turn with other owners'. */
export async function redactedLineAhead(job: LineJob, owner: string): Promise<string> {
  const { line } = await lines.ask(job, owner);
  return line ?? redactedLine(job.text, { detectors: [...job.detectors] }, job.key);
}
