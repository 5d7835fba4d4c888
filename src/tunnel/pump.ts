/**
 * Moves bytes from a readable to a writable, honouring back-pressure: when the destination's
 * `write()` returns false the source is paused until `drain`, so a slow reader never makes a
 * hop buffer without bound.
 *
 * @see https://nodejs.org/api/stream.html#event-drain
 */
import type { Readable, Writable } from 'node:stream';

/** Turns one received chunk into the buffers to forward (may be none, may throw). */
export type ChunkHandler = (chunk: Buffer) => readonly Buffer[] | Buffer;

/** Counts what a pump moved. */
export interface PumpStats {
  bytes: number;
}

/**
 * Forwards every chunk of `from` to `to` (through `handle` if given) until `from` ends.
 * Errors thrown by `handle` go to `onError`; the pump stops forwarding after one.
 */
export function pump(from: Readable, to: Writable, options: { handle?: ChunkHandler; onError?: (err: unknown) => void } = {}): PumpStats {
  const stats: PumpStats = { bytes: 0 };
  const { handle, onError } = options;
  let waiting = false;
  let failed = false;
  const resume = (): void => {
    waiting = false;
    from.resume();
  };
  const onData = (chunk: Buffer): void => {
    if (failed) return;
    stats.bytes += chunk.length;
    let ok = true;
    if (handle) {
      let out: readonly Buffer[] | Buffer;
      try {
        out = handle(chunk);
      } catch (err) {
        failed = true;
        from.off('data', onData);
        onError?.(err);
        return;
      }
      if (Buffer.isBuffer(out)) ok = to.write(out);
      else if (out.length === 1) ok = to.write(out[0]!);
      else if (out.length > 1) {
        to.cork();
        for (const b of out) ok = to.write(b) && ok;
        to.uncork();
      }
    } else {
      ok = to.write(chunk);
    }
    if (!ok && !waiting && !to.destroyed) {
      waiting = true;
      from.pause();
      to.once('drain', resume);
    }
  };
  from.on('data', onData);
  from.resume();
  return stats;
}
