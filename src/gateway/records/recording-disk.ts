/**
 * The free space of the disk the gateway records to (its `dataDir`). Below its floor
 * (`recording.minFreeBytes`) no session starts and no client record is taken; below a quarter of
 * it, sessions that may not run unrecorded (`recording.onFailure: close`) stop: a statement is
 * refused before it runs, and a session that cannot refuse one statement alone (an SSH session, a
 * PostgreSQL session without a policy's judge) ends. So what already ran has the last quarter of
 * the floor to be written in, and nothing runs that could not be recorded, as Teleport's strict
 * recording mode promises. Watched every {@link WATCH_MS} while a recorded session is open.
 *
 * @see https://goteleport.com/docs/reference/architecture/session-recording/ (strict mode)
 */
import { statfs } from 'node:fs/promises';
import { realClock } from '../../clock.js';
import { describeError, ErrorCode, HoopError } from '../../errors.js';
import type { Logger } from '../../log.js';

/** How often the free space is read while sessions record. */
const WATCH_MS = 200;
/** Statements stop below the floor divided by this. */
const STOP_PART = 4;

const mib = (n: number): number => Math.floor(n / 1024 / 1024);

/** See the module documentation. */
export class RecordingDisk {
  readonly #dir: string;
  readonly #floor: number;
  readonly #log: Logger;
  readonly #watchMs: number;
  readonly #freeBytes: (dir: string) => Promise<number>;
  /** Free bytes when last read (undefined before the first read), and when. */
  #free: number | undefined;
  #readAt = Number.NEGATIVE_INFINITY;
  /** What each watching session does when the disk falls under the stop line. */
  readonly #watchers = new Set<() => void>();
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;

  /** `freeBytes` reads the free space of `dir` (statfs unless told: a test's disk that fills on cue). */
  constructor(o: { dir: string; floor: number; log: Logger; watchMs?: number; freeBytes?: (dir: string) => Promise<number> }) {
    this.#dir = o.dir;
    this.#floor = o.floor;
    this.#log = o.log;
    this.#watchMs = o.watchMs ?? WATCH_MS;
    this.#freeBytes = o.freeBytes ?? statfsFree;
  }

  /**
   * Whether the disk is over its floor, by a reading at most one watch interval old (a session
   * that starts while others record costs no read of its own).
   * @throws HoopError RECORDING_UNAVAILABLE when the disk is below its floor (`what`: what the gateway then cannot do)
   */
  async check(what: string): Promise<void> {
    const free = this.#free !== undefined && realClock.now() - this.#readAt < this.#watchMs ? this.#free : await this.#read();
    if (free >= this.#floor) return;
    throw new HoopError(ErrorCode.RECORDING_UNAVAILABLE, `hoop: the gateway's data disk has ${mib(free)} MiB free, under its floor of ${mib(this.#floor)} MiB, so it cannot ${what}`, {
      hint: "try again later, and tell the gateway's operators (free space in its dataDir, or lower recording.minFreeBytes)",
    });
  }

  /** Why a recorded statement may not run now (the disk is under a quarter of its floor), or undefined while it may. */
  stopping(): string | undefined {
    if (this.#free === undefined || this.#free >= this.#floor / STOP_PART) return undefined;
    return `hoop: the gateway's data disk has ${mib(this.#free)} MiB free, under a quarter of its floor of ${mib(this.#floor)} MiB, so it runs no statement it might not be able to record`;
  }

  /**
   * Watches the disk while a session records; `stop` (a session that cannot refuse one statement
   * alone) is called when it falls under the stop line, at once if it is under already. Returns
   * what ends the watch.
   */
  watch(stop: () => void = () => undefined): () => void {
    this.#watchers.add(stop);
    if (this.stopping()) queueMicrotask(stop);
    this.#timer ??= setInterval(() => void this.#tick(), this.#watchMs).unref();
    return () => {
      this.#watchers.delete(stop);
      if (this.#watchers.size > 0) return;
      clearInterval(this.#timer);
      this.#timer = undefined;
    };
  }

  async #tick(): Promise<void> {
    try {
      await this.#read();
    } catch (err) {
      this.#log.warn('recording.disk-unreadable', { dir: this.#dir, error: describeError(err) });
      return;
    }
    const why = this.stopping();
    if (why && !this.#stopped) this.#log.error('recording.disk-low', { dir: this.#dir, message: why });
    this.#stopped = why !== undefined;
    if (why) for (const stop of [...this.#watchers]) stop();
  }

  async #read(): Promise<number> {
    this.#free = await this.#freeBytes(this.#dir);
    this.#readAt = realClock.now();
    return this.#free;
  }
}

/** Bytes an unprivileged process may still write on the file system of `dir`. */
async function statfsFree(dir: string): Promise<number> {
  const fs = await statfs(dir);
  return fs.bavail * fs.bsize;
}
