/**
 * A list of records in one JSON file of the data directory, owned by the one gateway process that
 * holds the data directory's lock (agents' runs, direct credentials): read once at start, then
 * rewritten whole for each change (atomically, fsynced), one change at a time, so that a change is
 * kept in memory only once the file holds it. Each record is read back with its schema: an entry
 * that is not of it is skipped, said in the log with the file and the entry (../../stored-record.ts).
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../../durable-file.js';
import type * as z from 'zod';
import { describeError, ErrorCode, HoopError } from '../../errors.js';
import type { Logger } from '../../log.js';
import { fileRecords } from '../../stored-record.js';

/** What a {@link RecordFile} holds: the schema of its records, and what one is called (for the log). */
export interface RecordFileKind<T> {
  schema: z.ZodType<T>;
  what: string;
}

export class RecordFile<T> {
  readonly path: string;
  readonly #dir: string;
  readonly #kind: RecordFileKind<T>;
  readonly #log: Logger;
  #writing: Promise<void> = Promise.resolve();

  constructor(dir: string, name: string, kind: RecordFileKind<T>, log: Logger) {
    this.#dir = dir;
    this.path = join(dir, name);
    this.#kind = kind;
    this.#log = log;
  }

  /**
   * The records the file holds, each read with its schema (one that is not of it skipped, said);
   * none when there is no file yet.
   *
   * @throws HoopError CONFIG_INVALID when it cannot be read, or is not a JSON array
   */
  async read(): Promise<T[]> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw new HoopError(ErrorCode.CONFIG_INVALID, `cannot read ${this.path}: ${describeError(err)}`);
    }
    return fileRecords(this.#kind.schema, text, this.#kind.what, this.path, this.#log);
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
