/**
 * A list of records in one JSON file of the data directory, owned by the one gateway process that
 * holds the data directory's lock (agents' runs, direct credentials): read once at start, then
 * rewritten whole for each change (atomically, fsynced), one change at a time, so that a change is
 * kept in memory only once the file holds it.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../../durable-file.js';
import { describeError, ErrorCode, HoopError } from '../../errors.js';

export class RecordFile<T> {
  readonly path: string;
  readonly #dir: string;
  #writing: Promise<void> = Promise.resolve();

  constructor(dir: string, name: string) {
    this.#dir = dir;
    this.path = join(dir, name);
  }

  /** The records the file holds; none when there is no file yet. @throws HoopError CONFIG_INVALID when it cannot be read */
  async read(): Promise<T[]> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw new HoopError(ErrorCode.CONFIG_INVALID, `cannot read ${this.path}: ${describeError(err)}`);
    }
    return JSON.parse(text) as T[];
  }

  /** Runs `change` once every change before it is done (failed or not); resolves (or rejects) as it does. */
  serially<R>(change: () => Promise<R>): Promise<R> {
    const done = this.#writing.then(change);
    this.#writing = done.then(
      () => undefined,
      () => undefined,
    );
    return done;
  }

  /** Replaces the file's records with `records`. */
  write(records: readonly T[]): Promise<void> {
    return writeFileAtomic(this.path, JSON.stringify(records), this.#dir);
  }

  /** Resolves once the changes under way are done. */
  close(): Promise<void> {
    return this.#writing;
  }
}
