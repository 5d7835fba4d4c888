/**
 * The content detectors on long texts, never on the event loop: a masked value may be 64 MiB, which
 * the detectors read at 40 to 180 MB/s (and a text full of matches takes a keyed hash each), so on
 * the loop one value would hold every session of the process for seconds. {@link maskAhead} masks
 * each text of {@link AHEAD_CHARS} or more in one worker thread (texts queued, each owner's in turn
 * with other owners') and hands back what it made of each, which the masking that follows, on the
 * loop, is lent (`MaskingRules.withMasked`) to answer at once. A worker that dies leaves the text
 * to be masked on the loop: slower, never unmasked.
 *
 * @see ../sql/worker.ts (the same for long SQL), ../shell-lines.ts (for shell lines)
 */
import { startWorker, WorkerQueue } from '../../worker-thread.js';
import { AHEAD_CHARS, type Detection, type MaskedText, type MaskingRules } from './rules.js';

const masker = new WorkerQueue<{ text: string; detection: Detection }, { masked: MaskedText | undefined }>(
  () => startWorker(import.meta.url, 'mask-thread'),
  () => ({ masked: undefined }),
);

/** Masks each of `texts` that is {@link AHEAD_CHARS} long or more by `rules`' detectors in the worker, for `rules.withMasked` to lend `rules.maskText`; `owner`'s texts take their turn with other owners'. Resolves to what the worker masked, by text. */
export async function maskAhead(texts: readonly string[], rules: MaskingRules, owner = ''): Promise<Map<string, MaskedText>> {
  const done = new Map<string, MaskedText>();
  await Promise.all(
    texts
      .filter((text) => text.length >= AHEAD_CHARS)
      .map(async (text) => {
        const { masked } = await masker.ask({ text, detection: rules.detection }, owner);
        if (masked) done.set(text, masked);
      }),
  );
  return done;
}

/** `fn`, once the worker has masked those of `texts` that are {@link AHEAD_CHARS} long or more, with what it made lent to `rules.maskText`; at once when there are none. */
export function withMaskedAhead<T>(texts: readonly string[], rules: MaskingRules, owner: string, fn: () => T): T | Promise<T> {
  const long = texts.filter((text) => text.length >= AHEAD_CHARS);
  return long.length === 0 ? fn() : maskAhead(long, rules, owner).then((masked) => rules.withMasked(masked, fn));
}
