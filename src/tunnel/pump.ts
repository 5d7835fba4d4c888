/**
 * Moves bytes from a readable to a writable through a step that may rewrite them, honouring
 * back-pressure: when the destination's `write()` returns false the source is paused until
 * `drain`, so a slow reader never makes a hop buffer without bound. A step may also wait (a
 * catalog lookup, a statement held until the server answers what came before it): the source is
 * paused until it settles, chunks are handled one after the other, and bytes are never reordered.
 *
 * @see https://nodejs.org/api/stream.html#event-drain
 */
import type { Readable, Writable } from 'node:stream';
import { ByteRun } from '../byte-run.js';

/** Where a step puts the bytes to forward; `flush()` writes what it holds now (before a wait). */
export interface PumpOutput {
  readonly run: ByteRun;
  flush(): void;
}

/** Handles one received chunk: adds the bytes to forward to `out`; may return a Promise to wait. */
export type PumpStep = (chunk: Buffer, out: PumpOutput) => void | Promise<void>;

/** Counts what a pump moved, and stops it. */
export interface PumpStats {
  /** Bytes received from the source. */
  bytes: number;
  /** Stops forwarding and lets go of both streams (their listeners removed; the source left paused), to hand them to someone else. */
  detach(): void;
}

/**
 * Forwards every chunk of `from` to `to` through `step` until `from` ends; `initial` is handled
 * first, as if it had been received. A step that throws or rejects goes to `onError`, and the
 * pump stops forwarding.
 */
export function pump(from: Readable, to: Writable, options: { step: PumpStep; onError?: (err: unknown) => void; initial?: Buffer }): PumpStats {
  const stats: PumpStats = {
    bytes: 0,
    detach: () => {
      failed = true;
      queue.length = 0;
      from.off('data', onData);
      to.off('drain', onDrain);
      from.pause();
    },
  };
  const { step, onError } = options;
  const queue: Buffer[] = [];
  let busy = false;
  let waiting = false;
  let failed = false;
  let paused = false;
  const pause = (): void => {
    if (!paused) {
      paused = true;
      from.pause();
    }
  };
  const maybeResume = (): void => {
    if (paused && !busy && !waiting && !failed) {
      paused = false;
      from.resume();
    }
  };
  const onDrain = (): void => {
    waiting = false;
    maybeResume();
  };
  const out: PumpOutput = {
    run: new ByteRun(),
    flush() {
      const parts = out.run.take();
      if (parts.length === 0 || to.destroyed) return;
      let ok = true;
      if (parts.length === 1) ok = to.write(parts[0]!);
      else {
        to.cork();
        for (const b of parts) ok = to.write(b) && ok;
        to.uncork();
      }
      if (!ok && !waiting) {
        waiting = true;
        pause();
        to.once('drain', onDrain);
      }
    },
  };
  const fail = (err: unknown): void => {
    if (failed) return;
    failed = true;
    out.run.take();
    from.off('data', onData);
    onError?.(err);
  };
  /** Handles one chunk; false when the step must be waited for (or failed). */
  const handle = (chunk: Buffer): boolean => {
    let r: void | Promise<void>;
    try {
      r = step(chunk, out);
    } catch (err) {
      fail(err);
      return false;
    }
    if (r instanceof Promise) {
      busy = true;
      pause();
      r.then(
        () => {
          busy = false;
          if (failed) return;
          out.flush();
          run();
        },
        (err: unknown) => {
          busy = false;
          fail(err);
        },
      );
      return false;
    }
    out.flush();
    return true;
  };
  const run = (): void => {
    while (queue.length > 0 && !failed) if (!handle(queue.shift()!)) return;
    maybeResume();
  };
  const onData = (chunk: Buffer): void => {
    if (failed) return;
    stats.bytes += chunk.length;
    if (busy || queue.length > 0) queue.push(chunk);
    else handle(chunk);
  };
  from.on('data', onData);
  if (options.initial) {
    // Bytes that came before the pump (or none, to let the step handle what its reader holds);
    // the source is resumed once they are handled.
    paused = true;
    queue.push(options.initial);
    run();
  } else from.resume();
  return stats;
}
