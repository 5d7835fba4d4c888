/**
 * A recording's files (docs/recording-format.md) where they are kept: a directory (a download, a
 * running session's snapshot, a data directory written before recordings were archived), or the
 * one ustar file a gateway keeps an ended session's recording in, `recordings/<id>.tar`, whose
 * entries are the same files under `<id>/` (so `tar -xf` gives the directory back, and
 * `sha256sum` and `ssh-keygen` check it there). One file a session: its cut creates no directory
 * and no file per chunk, and is synced with one fdatasync.
 *
 * @see https://pubs.opengroup.org/onlinepubs/9799919799/utilities/pax.html#tag_20_92_13_06 (ustar Interchange Format)
 */
import { open, readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { BLOCK, readHeader } from './tar.js';

/** Reads a recording's files by name. */
export interface RecordingFiles {
  /** The names of its files. @throws Error when they cannot be read (no such directory, an archive that is not one) */
  names(): Promise<string[]>;
  /** One file's bytes; undefined when there is none. */
  read(name: string): Promise<Buffer | undefined>;
}

/** Whether `path` names a recording's archive (else a directory). */
export const isRecordingArchive = (path: string): boolean => path.endsWith('.tar');

/** The files of the recording at `path`: an archive ({@link isRecordingArchive}) or a directory. */
export function recordingFiles(path: string): RecordingFiles {
  return isRecordingArchive(path) ? archiveFiles(path) : directoryFiles(path);
}

/** A recording's files held in memory (a spooled archive read whole, an upload not yet stored). */
export function memoryFiles(files: ReadonlyMap<string, Buffer>): RecordingFiles {
  return { names: async () => [...files.keys()], read: async (name) => files.get(name) };
}

function directoryFiles(dir: string): RecordingFiles {
  return {
    names: () => readdir(dir),
    read: async (name) => {
      try {
        return await readFile(join(dir, name));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
        throw err;
      }
    },
  };
}

/** Where an entry's bytes are in its archive. */
interface Entry {
  at: number;
  size: number;
}

/**
 * The entries of the archive at `path`, read from its headers (once, whatever is asked of it
 * after; and once for all readers while the file stays as it was: see {@link readIndex}); a small
 * archive is read whole once and its files served from those bytes. An
 * archive cut short by a crash (a header or an entry's bytes past its end) ends at its last whole
 * entry. Its entries are the files of one directory: one whose name is not
 * `<dir>/<file>` with the first entry's `<dir>`, a name given twice, a header that fails its
 * checksum or an entry that is not a regular file make it no archive a gateway wrote. (Which
 * recording it is, its chunks say: ./verify.ts checks them against the id asked for.)
 */
function archiveFiles(path: string): RecordingFiles {
  let index: Promise<ArchiveIndex> | undefined;
  const indexed = (): Promise<ArchiveIndex> => (index ??= readIndex(path));
  return {
    names: async () => [...(await indexed()).entries.keys()],
    read: async (name) => {
      // An archive grows as its cut goes on: a name not found is looked for again once it has grown (only then: a
      // hostile archive of many entries asked for as many missing names would be read whole for each).
      let read = await indexed();
      let entry = read.entries.get(name);
      if (
        !entry &&
        (await stat(path).then(
          (s) => s.size,
          () => read.size,
        )) !== read.size
      ) {
        index = undefined;
        read = await indexed();
        entry = read.entries.get(name);
      }
      if (!entry) return undefined;
      if (read.whole) return Buffer.from(read.whole.subarray(entry.at, entry.at + entry.size));
      const file = await open(path, 'r');
      try {
        const data = Buffer.allocUnsafe(entry.size);
        for (let got = 0; got < entry.size; ) {
          const { bytesRead } = await file.read(data, got, entry.size - got, entry.at + got);
          if (bytesRead === 0) throw new Error(`${path}: ${name} is cut short`);
          got += bytesRead;
        }
        return data;
      } finally {
        await file.close();
      }
    },
  };
}

/** An archive's entries, its size when read, and its bytes when it was small enough to be read whole ({@link WHOLE_BYTES}). */
interface ArchiveIndex {
  entries: Map<string, Entry>;
  size: number;
  whole?: Buffer;
}

/** An archive up to this size is read in one read, its files then served from it (a short session's: one read, not one per file and header). */
const WHOLE_BYTES = 256 * 1024;

/** The indexes of the archives read last, by path, with the file's identity, size and time when read. */
const indexes = new Map<string, { key: string; entries: Map<string, Entry>; size: number }>();
/** Archives whose index is kept: a recording's files are asked for one request at a time, and a long one has thousands. */
const INDEXES_KEPT = 64;

/**
 * The entries of the archive at `path` and its size: read from its headers (a small archive read
 * whole), or kept from the last read while the file is the same.
 */
async function readIndex(path: string): Promise<ArchiveIndex> {
  const st = await stat(path);
  const key = `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}`;
  const kept = indexes.get(path);
  if (kept?.key === key) return kept;
  const entries = new Map<string, Entry>();
  const file = await open(path, 'r');
  let size: number;
  let whole: Buffer | undefined;
  try {
    size = (await file.stat()).size;
    if (size <= WHOLE_BYTES) {
      whole = Buffer.allocUnsafe(size);
      let got = 0;
      for (let n = -1; got < size && n !== 0; got += n) n = (await file.read(whole, got, size - got, got)).bytesRead;
      size = got;
    }
    const block = Buffer.alloc(BLOCK);
    const header = async (at: number): Promise<Buffer | undefined> =>
      whole ? (at + BLOCK <= size ? whole.subarray(at, at + BLOCK) : undefined) : (await file.read(block, 0, BLOCK, at)).bytesRead === BLOCK ? block : undefined;
    let dir: string | undefined;
    for (let at = 0, b = await header(0); b; b = await header(at)) {
      const h = readHeader(b, at);
      if (!h) break;
      const [, inDir, name] = /^([^/]+)\/([^/]+)$/.exec(h.name) ?? [];
      dir ??= inDir;
      if (h.type !== '0' || !name || inDir !== dir || dir === '.' || dir === '..' || entries.has(name))
        throw new Error(`the entry ${JSON.stringify(h.name)} at ${at} is not a file of one recording's directory`);
      const data = at + BLOCK;
      if (data + h.size > size) break;
      entries.set(name, { at: data, size: h.size });
      at = data + Math.ceil(h.size / BLOCK) * BLOCK;
    }
  } finally {
    await file.close();
  }
  // Kept without its bytes: the index alone is worth keeping across readers.
  indexes.delete(path);
  indexes.set(path, { key, entries, size });
  if (indexes.size > INDEXES_KEPT) indexes.delete(indexes.keys().next().value!);
  return { entries, size, ...(whole ? { whole } : {}) };
}
