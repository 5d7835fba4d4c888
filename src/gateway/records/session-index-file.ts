/**
 * The file store's sessions index, `sessions.jsonl`: one JSON line per ended session (a
 * `SessionSummary`), and `{ id, deleted }` when retention removed a session's recording. The
 * file is only ever appended to.
 *
 * Appends are committed in groups: the lines that come while one write and fsync are under way go
 * in the next, with one write and one fsync for all, on a handle kept open; each append resolves
 * once its line is durable. So a gateway that ends a hundred sessions a second does not open,
 * write, fsync and close the file a hundred times.
 *
 * Reads are incremental: the parsed index is kept with the offset it was read to, and only the
 * bytes appended since (up to the last whole line) are read and parsed, so a lookup after each
 * session's end does not parse the whole history again. Each line is read with its schema: one
 * that is not a summary nor a deletion (or not JSON: cut by a crash) is skipped, said in the log
 * with the file and its line number; the others are kept.
 *
 * @see https://jsonlines.org/
 * @see https://man7.org/linux/man-pages/man2/fsync.2.html
 */
import { type FileHandle, open, stat } from 'node:fs/promises';
import * as z from 'zod';
import type { Logger } from '../../log.js';
import { fileRecord, lineJson, recordObject, storedTime } from '../../stored-record.js';

/** What the index holds of a session: at least its id and the state of its recording. */
interface Indexed {
  id: string;
  recording: string;
}

/** The line that says retention removed a session's recording. */
const deletedLine = recordObject({ id: z.string(), deleted: storedTime });

/** A line of the index. */
type IndexLine<S> = S | z.infer<typeof deletedLine>;

/** See the module documentation; `S` is the summary each line holds (recordings.ts's `SessionSummary`). */
export class SessionIndexFile<S extends Indexed> {
  readonly #file: string;
  /** Lines waiting for the next group's write, with whom to tell. */
  #waiting: Array<{ text: string; done: (err?: Error) => void }> = [];
  #writing = false;
  #handle: FileHandle | undefined;
  /** The sessions by id in the order first indexed, the offset of the file read so far, and the lines read to it. */
  #read = { offset: 0, lines: 0, byId: new Map<string, S>() };
  /** The read under way, if any: reads run one after the other. */
  #reading: Promise<void> = Promise.resolve();
  /** The summary's schema, which each line that is not a deletion is read with. */
  readonly #schema: z.ZodType<S>;
  readonly #log: Logger;

  constructor(file: string, schema: z.ZodType<S>, log: Logger) {
    this.#file = file;
    this.#schema = schema;
    this.#log = log;
  }

  /** Appends one line; resolves once it is on disk (fsynced). */
  append(line: IndexLine<S>): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#waiting.push({ text: `${JSON.stringify(line)}\n`, done: (err) => (err ? reject(err) : resolve()) });
      if (!this.#writing) void this.#writeGroups();
    });
  }

  async #writeGroups(): Promise<void> {
    this.#writing = true;
    while (this.#waiting.length > 0) {
      const group = this.#waiting.splice(0);
      try {
        this.#handle ??= await open(this.#file, 'a', 0o600);
        await this.#handle.write(group.map((g) => g.text).join(''));
        await this.#handle.sync();
        for (const g of group) g.done();
      } catch (err) {
        // The next group opens the file again.
        await this.#handle?.close().catch(() => undefined);
        this.#handle = undefined;
        for (const g of group) g.done(err instanceof Error ? err : new Error(String(err)));
      }
    }
    this.#writing = false;
  }

  /** The sessions indexed, in the order first indexed (a deletion marks its session's recording `deleted`). */
  async sessions(): Promise<S[]> {
    await this.#catchUp();
    return [...this.#read.byId.values()];
  }

  /** One session as indexed. */
  async session(id: string): Promise<S | undefined> {
    await this.#catchUp();
    return this.#read.byId.get(id);
  }

  /** Reads what was appended since the last read, after any read under way (so a read after an append sees it). */
  #catchUp(): Promise<void> {
    const next = this.#reading.then(() => this.#readAppended());
    this.#reading = next.catch(() => undefined);
    return next;
  }

  /** Reads what was appended since the last read, up to its last whole line (a file that shrank is read again whole). */
  async #readAppended(): Promise<void> {
    const size = await stat(this.#file).then(
      (s) => s.size,
      (err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? 0 : Promise.reject(err)),
    );
    if (size < this.#read.offset) this.#read = { offset: 0, lines: 0, byId: new Map() };
    if (size === this.#read.offset) return;
    const handle = await open(this.#file, 'r');
    let bytes: Buffer;
    try {
      bytes = Buffer.alloc(size - this.#read.offset);
      const { bytesRead } = await handle.read(bytes, 0, bytes.length, this.#read.offset);
      bytes = bytes.subarray(0, bytesRead);
    } finally {
      await handle.close();
    }
    const whole = bytes.lastIndexOf(0x0a) + 1;
    this.#read.offset += whole;
    const texts = bytes.toString('utf8', 0, whole).split('\n');
    texts.pop(); // what follows the last newline: nothing
    for (const text of texts) {
      const n = ++this.#read.lines;
      if (!text) continue;
      const at = { file: this.#file, line: n };
      const value = lineJson(text, 'session', at, this.#log);
      if (value === undefined) continue;
      const line: IndexLine<S> | undefined =
        typeof value === 'object' && value !== null && 'deleted' in value ? fileRecord(deletedLine, value, 'deletion', at, this.#log) : fileRecord(this.#schema, value, 'session', at, this.#log);
      if (!line) continue;
      if ('deleted' in line) {
        const s = this.#read.byId.get(line.id);
        if (s) this.#read.byId.set(line.id, { ...s, recording: 'deleted' });
      } else {
        const before = this.#read.byId.get(line.id);
        this.#read.byId.set(line.id, before?.recording === 'deleted' ? { ...line, recording: 'deleted' } : line);
      }
    }
  }

  /** Closes the file (after the appends under way). */
  async close(): Promise<void> {
    while (this.#writing) await new Promise((resolve) => setImmediate(resolve));
    await this.#handle?.close();
    this.#handle = undefined;
  }
}
