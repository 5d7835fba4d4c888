/**
 * How a recording's writer (./writer.ts) places its files, each written once, and removes them:
 * blocking or asynchronous calls, synced or not, or held in memory as a CLI's record of a short
 * session is ({@link HeldFiles}).
 */
import { mkdirSync, unlinkSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { writeFileOnce, writeFileOnceOnThread } from '../durable-file.js';
import { tarOf } from './tar.js';

/** How a writer places its files (each written once) and removes them. */
export interface FileOps {
  once(file: string, data: Uint8Array, dir: string, syncDir: boolean): Promise<void> | void;
  remove(file: string): Promise<void> | void;
}

/** Quick calls that block, fsyncs that do not: for a writer on a thread of its own (see `writeFileOnceOnThread`). */
export const BLOCKING_FILES: FileOps = {
  once: writeFileOnceOnThread,
  remove: (file) => {
    try {
      unlinkSync(file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  },
};

/** As {@link BLOCKING_FILES}, with no fsync: files outlive the process, not the machine. */
export const CACHED_FILES: FileOps = { once: (file, data, dir) => writeFileOnceOnThread(file, data, dir, false, false), remove: BLOCKING_FILES.remove };

/** Asynchronous calls, for a writer on a thread that serves others. */
export const ASYNC_FILES: FileOps = { once: writeFileOnce, remove: (file) => rm(file, { force: true }) };

/** The archive a spooled record that closed while held is written as: its directory's path and `.tar`. */
export const archiveOf = (dir: string): string => `${dir}.tar`;

/** Most bytes a record is held in memory for: a larger one goes to its directory. */
const HELD_BYTES = 1024 * 1024;

/**
 * A record (a CLI's, not synced) held in memory until it closes or signs its first checkpoint. One
 * that closes first is written whole as one archive, `<dir>.tar`, its files under the directory's
 * name (so `tar -xf` in the spool gives the directory back): a short session's record costs the
 * disk one file, placed whole by a temporary name, where its directory cost a dozen calls. One that
 * lives on (its first checkpoint, or more than {@link HELD_BYTES}) goes to its directory, `first`
 * first, and from then on through `then`, as every record did: what a killed process leaves is what
 * it left before (its first checkpoint comes within a second of its first chunk). With `keep`, a
 * record that closes while held is not written: its archive's bytes go to `keep`, whose owner
 * places it (a CLI's spool keeps it in memory until the gateway holds it, ./spool.ts).
 */
export class HeldFiles implements FileOps {
  readonly #dir: string;
  readonly #then: FileOps;
  readonly #keep: ((archive: Buffer) => void) | undefined;
  /** The files held, in the order written; undefined once in the directory. */
  #held: Array<{ name: string; data: Uint8Array }> | undefined;
  #bytes = 0;

  constructor(dir: string, first: { name: string; data: Uint8Array }, then: FileOps, keep?: (archive: Buffer) => void) {
    this.#dir = dir;
    this.#then = then;
    this.#keep = keep;
    this.#held = [first];
  }

  async once(file: string, data: Uint8Array, dir: string, syncDir: boolean): Promise<void> {
    const held = this.#held;
    if (held && dirname(file) === this.#dir) {
      const name = basename(file);
      // The final manifest comes last, after its signature: the record is closed.
      if (name === 'SHA256SUMS') return this.#archive([...held, { name, data }]);
      if (!name.startsWith('checkpoint-') && this.#bytes + data.length <= HELD_BYTES) {
        held.push({ name, data });
        this.#bytes += data.length;
        return;
      }
    }
    await this.#spill();
    return this.#then.once(file, data, dir, syncDir);
  }

  remove(file: string): Promise<void> | void {
    if (!this.#held) return this.#then.remove(file);
    this.#held = this.#held.filter((f) => f.name !== basename(file));
  }

  /** Writes the held files into the directory: from now on, they go there. */
  async #spill(): Promise<void> {
    const held = this.#held;
    if (!held) return;
    this.#held = undefined;
    mkdirSync(this.#dir, { recursive: true, mode: 0o700 });
    for (const f of held) await this.#then.once(join(this.#dir, f.name), f.data, this.#dir, false);
  }

  /** Writes `files` as the record's archive, whole or not at all (or hands it to `keep`). */
  async #archive(files: Array<{ name: string; data: Uint8Array }>): Promise<void> {
    this.#held = undefined;
    const name = basename(this.#dir);
    const archive = tarOf(files.map((f) => ({ name: `${name}/${f.name}`, data: Buffer.from(f.data.buffer, f.data.byteOffset, f.data.byteLength) })));
    if (this.#keep) return this.#keep(archive);
    const write = (): Promise<void> | void => this.#then.once(archiveOf(this.#dir), archive, dirname(this.#dir), false);
    try {
      await write();
    } catch (err) {
      // The spool's first record makes the spool.
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      mkdirSync(dirname(this.#dir), { recursive: true, mode: 0o700 });
      await write();
    }
  }
}
