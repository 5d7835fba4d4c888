/**
 * Secrets in long texts a client sent, found off the event loop: the detectors read a text full of
 * matches at a few MB/s, so a statement or a bound value of many megabytes redacted on the loop
 * would hold every session of the process for seconds. {@link redactAhead} redacts texts in one
 * worker thread (each owner's in turn with other owners'), and the recording that follows, on the
 * loop, is lent what it made (`withRedacted`). A worker that dies leaves the texts to the loop.
 *
 * @see ../masking/mask-ahead.ts (the same for masking what a server answers)
 */
import { startWorker, WorkerQueue } from '../../worker-thread.js';
import type { Redacted, RedactOptions, SqlDialect } from './redact.js';

/** One text for the worker: SQL to redact as `redactSql` does (`dialect`), or a value as `redactDetected` does. */
export interface RedactJob {
  text: string;
  dialect?: SqlDialect;
  o: RedactOptions;
}

const redacter = new WorkerQueue<RedactJob, { redacted: Redacted | undefined }>(
  () => startWorker(import.meta.url, 'redact-thread'),
  () => ({ redacted: undefined }),
);

/** Redacts each of `texts` in the worker (SQL of `dialect`, else values), `owner`'s in turn with other owners'; resolves what it made, by text, for `withRedacted`. */
export async function redactAhead(texts: readonly string[], o: RedactOptions, dialect?: SqlDialect, owner = ''): Promise<Map<string, Redacted>> {
  const done = new Map<string, Redacted>();
  // What the worker is told: the key and detectors, and the lexing of SQL (nothing that cannot cross to a thread).
  const told: RedactOptions = { ...(o.key !== undefined ? { key: o.key } : {}), ...(o.detectors ? { detectors: o.detectors } : {}), ...(o.mysqlMode ? { mysqlMode: o.mysqlMode } : {}) };
  await Promise.all(
    [...new Set(texts)].map(async (text) => {
      const { redacted } = await redacter.ask({ text, ...(dialect ? { dialect } : {}), o: told }, owner);
      if (redacted) done.set(text, redacted);
    }),
  );
  return done;
}
