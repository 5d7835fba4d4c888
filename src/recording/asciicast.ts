/**
 * A recording as an asciicast file, which asciinema plays (`asciinema play`, `asciinema cat`) and
 * its web player shows: version 2 by default, the format every asciinema release reads (Debian's
 * and Ubuntu's 2.2 among them), or version 3 (asciinema 3). Both are a JSON header line, then one
 * JSON array per event: `[time, code, data]`. In v2 the time is seconds since the recording began
 * and the size is `width`/`height`; in v3 it is seconds since the previous event and the size is
 * `term.cols`/`term.rows`. v3 has an exit event (`x`); v2 has none (the exit status becomes a
 * marker).
 *
 * @see https://docs.asciinema.org/manual/asciicast/v2/
 * @see https://docs.asciinema.org/manual/asciicast/v3/
 */

/** One event: output `o`, input `i`, a resize `r` (`COLSxROWS`), a marker `m`, the exit `x` (v3). */
export interface CastFrame {
  /** Milliseconds since the epoch. */
  at: number;
  code: 'o' | 'i' | 'r' | 'm' | 'x';
  data: string;
}

export type CastVersion = 2 | 3;

/** What the header says. */
export interface CastHeader {
  cols: number;
  rows: number;
  /** When the recording began (milliseconds since the epoch). */
  startedAt: number;
  title: string;
}

/** Seconds with millisecond precision, as the players read them. */
const seconds = (ms: number): number => Number((ms / 1000).toFixed(3));

/** The header line. */
export function castHeader(version: CastVersion, h: CastHeader): string {
  const timestamp = Math.floor(h.startedAt / 1000);
  return JSON.stringify(version === 2 ? { version: 2, width: h.cols, height: h.rows, timestamp, title: h.title } : { version: 3, term: { cols: h.cols, rows: h.rows }, timestamp, title: h.title });
}

/**
 * Writes the event lines of one cast: `line(frame)` gives the line of each frame in time order
 * (a frame earlier than the one before it is taken as at the same time).
 */
export function castWriter(version: CastVersion, startedAt: number): (f: CastFrame) => string {
  let last = startedAt;
  return (f) => {
    const at = Math.max(f.at, last);
    const time = version === 2 ? seconds(at - startedAt) : seconds(at - last);
    last = at;
    if (version === 2 && f.code === 'x') return JSON.stringify([time, 'm', `exit ${f.data}`]);
    return JSON.stringify([time, f.code, f.data]);
  };
}

/** The lines of a cast (header, then one per frame). */
export function* castLines(version: CastVersion, header: CastHeader, frames: Iterable<CastFrame>): Generator<string> {
  yield castHeader(version, header);
  const line = castWriter(version, header.startedAt);
  for (const f of frames) yield line(f);
}
