/**
 * A client's first request line, read before anything is opened for it: a local port checks its
 * per-run path there, the gateway a direct client's credential.
 */
import type { Duplex } from 'node:stream';

/** How long a client has to send its first request line. */
const FIRST_LINE_MS = 30_000;
/** The longest first request line read. */
const MAX_FIRST_LINE = 16 * 1024;

/**
 * The first request line of `stream`'s client (`seen`: its bytes read already), then the stream
 * paused with every byte read put back in it, its reader's first: undefined when none came in
 * time, or it was too long. Put back at once, the bytes keep the stream from ending before its
 * reader comes (a client that sent its requests and ended its side is still read whole).
 */
export function firstLine(stream: Duplex, seen: Buffer = Buffer.alloc(0)): Promise<{ line: string } | undefined> {
  return new Promise((resolve) => {
    let bytes = seen;
    const done = (got: { line: string } | undefined): void => {
      clearTimeout(timer);
      stream.off('data', onData);
      stream.off('end', onEnd);
      stream.pause();
      if (got) stream.unshift(bytes);
      resolve(got);
    };
    const look = (): boolean => {
      const eol = bytes.indexOf('\r\n');
      if (eol >= 0) done({ line: bytes.toString('latin1', 0, eol) });
      else if (bytes.length > MAX_FIRST_LINE) done(undefined);
      else return false;
      return true;
    };
    const onData = (b: Buffer): void => {
      bytes = bytes.length === 0 ? b : Buffer.concat([bytes, b]);
      look();
    };
    const onEnd = (): void => done(undefined);
    const timer = setTimeout(() => done(undefined), FIRST_LINE_MS);
    timer.unref();
    if (look()) return;
    stream.on('data', onData);
    stream.once('end', onEnd);
    stream.resume();
  });
}
