/**
 * Checks a recording written by {@link RecordingWriter}: the signature of its manifest (the final
 * `SHA256SUMS`, or else the newest checkpoint, which makes the result "truncated") against trusted
 * keys, the SHA-256 of every chunk the manifest names, and the chain inside the chunks (each names
 * the recording, its number and the hash of the chunk before it). Every problem is said in words
 * that name the file; any problem makes the recording fail.
 *
 * @see ./writer.ts for the format; docs/recording-format.md
 */
import { createHash, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import { gunzip as gunzipCallback } from 'node:zlib';
import { storedGunzip } from './chunk-gzip.js';
import { memoryFiles, type RecordingFiles, recordingFiles } from './recording-files.js';
import { sshVerify } from './sshsig.js';
import { countRecords, splitChunk } from './record-chunks.js';
import { EVENT, forEachRecord } from './thread.js';
import { MANIFEST, NO_PREVIOUS, RECORDING_NAMESPACE, RECORDS_FORMAT, recordChunkName, SEALED, chunkName, type ChunkHeader } from './writer.js';

const gunzip = promisify(gunzipCallback);
/**
 * Most bytes a chunk may hold once decompressed. The writer cuts a chunk at 256 KiB of events (one
 * event can pass that, its values cut at 4 KiB each); a chunk made to inflate without bound (a
 * "zip bomb") is refused instead of filling the memory of whoever verifies it.
 */
export const MAX_CHUNK_TEXT = 64 * 1024 * 1024;

/** Largest file read as stored blocks in the caller's thread (hoop stores chunks under 8 KiB). */
const STORED_READ_MAX = 64 * 1024;

/** A chunk decompressed, at most {@link MAX_CHUNK_TEXT} bytes of it. @throws RangeError beyond that */
export async function chunkBytes(data: Buffer): Promise<Buffer> {
  // A small chunk is stored (./chunk-gzip.ts): read as it lies, with no zlib stream; a large file is zlib's, on its pool's thread.
  return (data.length <= STORED_READ_MAX ? storedGunzip(data, MAX_CHUNK_TEXT) : undefined) ?? gunzip(data, { maxOutputLength: MAX_CHUNK_TEXT });
}
const CHECKPOINT_FILE = /^checkpoint-(\d{6})\.SHA256SUMS$/;
const SUM_LINE = /^([0-9a-f]{64}) {2}(\S+)$/;

/** The outcome of {@link verifyRecording}. */
export interface RecordingCheck {
  ok: boolean;
  /** The recording's id, from its chunks. */
  id?: string;
  /** The final manifest verified: the session ended and was closed properly. */
  complete: boolean;
  /** Only a checkpoint verified: the recording holds up to it, and what came after is unverified. */
  truncated: boolean;
  /** Which manifest was checked. */
  manifest?: string;
  /** `SHA256:…` of the key that signed it. */
  signer?: string;
  /** Chunks that verified. */
  chunks: number;
  /** Events in those chunks (chunk headers not counted). */
  events: number;
  /** Chunk (or half-written checkpoint) files on disk numbered after what the verified manifest signs (written after the last checkpoint). */
  unverified: string[];
  /** What failed, one line each. */
  problems: string[];
}

function manifestLines(text: string): string[] {
  return text.split('\n').filter((l) => l !== '');
}

/**
 * What an earlier check of the same recording verified, for a holder whose chunk files cannot
 * change once held (the gateway's store of uploaded records: other bytes under a held name are
 * refused): the manifest it verified, and the events and recording id it found in its chunks.
 */
export interface VerifiedBefore {
  manifest: string;
  events: number;
  id: string;
}

/**
 * Verifies the recording in `dir` (a path, or files in memory) against `trusted` keys; see the module documentation. With
 * `before`, the chunks of a manifest that begins with `before.manifest` are taken as verified up
 * to there (their hashes, text and chain), and only those it adds are read: a record uploaded
 * checkpoint by checkpoint is read once, not once per checkpoint. With `expected`, the recording
 * must be that id's: another's files copied over it fail. `beside` names the files its keeper holds next to it (its own state), no
 * part of it; any other file the manifest does not name fails.
 */
export async function verifyRecording(
  dir: string | ReadonlyMap<string, Buffer>,
  trusted: readonly KeyObject[],
  before?: VerifiedBefore,
  expected?: string,
  beside: readonly string[] = [],
): Promise<RecordingCheck> {
  const result: RecordingCheck = { ok: false, complete: false, truncated: false, chunks: 0, events: 0, unverified: [], problems: [] };
  const at = typeof dir === 'string' ? recordingFiles(dir) : memoryFiles(dir);
  const where = typeof dir === 'string' ? dir : 'the upload';
  let files: string[];
  try {
    files = await at.names();
  } catch (err) {
    result.problems.push(`cannot read the recording ${where}: ${(err as Error).message}`);
    return result;
  }
  const manifest = await signedManifest(at, files, trusted, result);
  if (!manifest) {
    if (result.problems.length === 0) result.problems.push(`no signed ${MANIFEST} and no signed checkpoint: nothing in ${where} can be verified`);
    return result;
  }
  const lines = manifestLines(manifest.toString('utf8'));
  const chunks = await checkChunks(at, lines, result, before);
  applySeal(result, chunks, lines.length);
  await reportUnnamedFiles(
    at,
    files.filter((f) => !beside.includes(f)),
    manifest,
    chunks,
    trusted,
    result,
  );
  // Bound to the id it is asked for: every chunk names its recording, under the signed manifest's hashes.
  if (expected !== undefined && result.id !== expected) {
    result.problems.push(
      result.id === undefined ? `no chunk names recording ${expected}: nothing binds these files to it` : `it is the recording of ${result.id}, not of ${expected} (its files were copied over)`,
    );
  }
  result.ok = result.problems.length === 0;
  return result;
}

/**
 * The manifest to check, its signature verified: the final one, else the newest checkpoint whose pair is complete. Says in
 * `result` which it is, who signed it, and whether the recording is complete or truncated; a manifest that exists but does not
 * verify is a problem, not a reason to fall back.
 */
async function signedManifest(at: RecordingFiles, files: string[], trusted: readonly KeyObject[], result: RecordingCheck): Promise<Buffer | undefined> {
  const candidates = [
    MANIFEST,
    ...files
      .filter((f) => CHECKPOINT_FILE.test(f))
      .sort()
      .reverse(),
  ];
  for (const name of candidates) {
    const [text, sig] = await Promise.all([at.read(name), at.read(`${name}.sig`)]);
    if (!text && !sig) continue;
    if (!text || !sig) {
      // A checkpoint whose pair was being written when the writer stopped; an older one may hold.
      if (name === MANIFEST) result.problems.push(`${!text ? MANIFEST : `${MANIFEST}.sig`} is missing`);
      continue;
    }
    try {
      result.signer = sshVerify(sig.toString('utf8'), RECORDING_NAMESPACE, text, trusted).fingerprint;
    } catch (err) {
      result.problems.push(`${name}: ${(err as Error).message}`);
      return undefined;
    }
    result.manifest = name;
    result.complete = name === MANIFEST;
    result.truncated = !result.complete;
    return text;
  }
  return undefined;
}

/** What the chunks a manifest names showed: the file names it lists, the format they say (a writer's chunks all say the same), and the last event of its last chunk. */
interface ChunksRead {
  named: Set<string>;
  version: number;
  last: { t?: unknown; chunks?: unknown } | undefined;
}

/** Checks every chunk the manifest's `lines` name, in order, by hash; then the chain inside them. Counts in `result` the chunks and events that verified. */
async function checkChunks(at: RecordingFiles, lines: string[], result: RecordingCheck, before: VerifiedBefore | undefined): Promise<ChunksRead> {
  const read: ChunksRead = { named: new Set(), version: 1, last: undefined };
  const known = linesVerifiedBefore(lines, before, result);
  let prev = NO_PREVIOUS;
  // Every chunk of a recording is of one format, the first one's.
  const nameOf = lines[0]?.includes('  records-') ? recordChunkName : chunkName;
  for (const [i, line] of lines.entries()) {
    const m = SUM_LINE.exec(line);
    const expected = nameOf(i + 1);
    if (!m) {
      result.problems.push(`${result.manifest} line ${i + 1} is not "<sha256>  <file>"`);
      break;
    }
    const [, sum, name] = m as unknown as [string, string, string];
    read.named.add(name);
    if (name !== expected) {
      result.problems.push(`${result.manifest} line ${i + 1} names ${name} where ${expected} belongs`);
      continue;
    }
    if (i < known) result.chunks += 1;
    else await checkChunk(at, { name, seq: i + 1, sum, prev, last: i === lines.length - 1 }, result, read);
    prev = sum;
  }
  return read;
}

/**
 * How many of `lines` a check before verified (they are this manifest's first lines, each the same,
 * and not all of them: the last chunk is always read, since its last event is what seals the
 * recording); takes its recording id and events into `result`.
 */
function linesVerifiedBefore(lines: string[], before: VerifiedBefore | undefined, result: RecordingCheck): number {
  const prior = before ? manifestLines(before.manifest) : [];
  const known = prior.length < lines.length && prior.every((l, i) => l === lines[i]) ? prior.length : 0;
  if (known > 0) {
    result.id = before!.id;
    result.events = before!.events;
  }
  return known;
}

/** One chunk as its manifest line names it: its file, its number, its SHA-256, the SHA-256 of the chunk before it, and whether it is the last. */
interface NamedChunk {
  name: string;
  seq: number;
  sum: string;
  prev: string;
  last: boolean;
}

/** Checks one chunk (its hash, its content, its place in the chain) and counts it and its events, unless it is missing, changed or not gzip. */
async function checkChunk(at: RecordingFiles, chunk: NamedChunk, result: RecordingCheck, read: ChunksRead): Promise<void> {
  const data = await hashedChunk(at, chunk, result);
  if (data === undefined) return;
  const content = chunk.name.startsWith('records-') ? recordsChunk(data, chunk.name) : eventsChunk(data, chunk.name);
  if (typeof content === 'string') result.problems.push(content);
  else {
    read.version = Math.max(read.version, content.header.v ?? 1);
    if (chunk.last) read.last = content.last;
    checkChunkHeader(content.header, chunk, result);
    result.events += content.events;
  }
  result.chunks += 1;
}

/** What a chunk holds: its header, how many events (or records) follow it, and the last one when it is an event. */
interface ChunkContent {
  header: ChunkHeader;
  events: number;
  last: { t?: unknown; chunks?: unknown } | undefined;
}

/** A chunk of JSON lines (formats 1 and 2), or the problem with it. */
function eventsChunk(data: Buffer, name: string): ChunkContent | string {
  const lines = data
    .toString('utf8')
    .split('\n')
    .filter((l) => l !== '');
  try {
    const parsed = lines.map((l) => JSON.parse(l) as unknown);
    if (parsed.length === 0) return `${name} has no header line`;
    if (!parsed.every(isObject)) return `${name} holds a line that is not a JSON object`;
    const last = parsed.length > 1 ? (parsed.at(-1) as ChunkContent['last']) : undefined;
    return { header: parsed[0] as unknown as ChunkHeader, events: Math.max(0, lines.length - 1), last };
  } catch {
    return `${name} holds a line that is not JSON`;
  }
}

/** Whether `v` is a JSON object (not null, not an array). */
function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A chunk of records (format 3), or the problem with it. */
function recordsChunk(data: Buffer, name: string): ChunkContent | string {
  let split: ReturnType<typeof splitChunk>;
  try {
    split = splitChunk(data);
  } catch {
    return `${name} has no header line`;
  }
  if (!isObject(split.header)) return `${name} has a header that is not a JSON object`;
  if (split.header.v !== RECORDS_FORMAT) return `${name} holds records but says it is of format ${split.header.v}`;
  let events: number;
  try {
    events = countRecords(data, split.records);
  } catch {
    return `${name} ends inside a record (it was cut short)`;
  }
  // The gateway's own events (its start, refusals, end) are JSON; the protocol's records are its decoder's to read.
  let last: ChunkContent['last'];
  let broken = false;
  forEachRecord(
    data,
    data.length,
    (kind, _at, bytes, start, end) => {
      last = undefined;
      if (kind !== EVENT) return;
      try {
        const event = JSON.parse(bytes.toString('utf8', start, end)) as unknown;
        if (!isObject(event)) broken = true;
        else last = event as ChunkContent['last'];
      } catch {
        broken = true;
      }
    },
    split.records,
  );
  if (broken) return `${name} holds an event that is not a JSON object`;
  return { header: split.header, events, last };
}

/** The chunk decompressed, when its file is there, matches its SHA-256 in the manifest and decompresses (within {@link MAX_CHUNK_TEXT}); else the problem is said. */
async function hashedChunk(at: RecordingFiles, chunk: NamedChunk, result: RecordingCheck): Promise<Buffer | undefined> {
  const data = await at.read(chunk.name);
  if (!data) {
    result.problems.push(`${chunk.name} is missing`);
    return undefined;
  }
  if (createHash('sha256').update(data).digest('hex') !== chunk.sum) {
    result.problems.push(`${chunk.name} does not match its SHA-256 in ${result.manifest} (it was changed or cut short)`);
    return undefined;
  }
  try {
    return await chunkBytes(data);
  } catch (err) {
    result.problems.push(err instanceof RangeError ? `${chunk.name} decompresses to more than ${MAX_CHUNK_TEXT / 1024 / 1024} MiB: not a chunk hoop writes` : `${chunk.name} is not a gzip file`);
    return undefined;
  }
}

/** The chain inside a chunk: its header names its number, the chunk before it, and the recording (the first chunk's, for all). */
function checkChunkHeader(header: ChunkHeader, chunk: NamedChunk, result: RecordingCheck): void {
  if (header.t !== 'chunk' || header.seq !== chunk.seq) result.problems.push(`${chunk.name} says it is chunk ${header.seq}, not ${chunk.seq}`);
  if (header.prev !== chunk.prev) result.problems.push(`${chunk.name} does not follow the chunk before it (the chain is broken)`);
  result.id ??= header.recording;
  if (header.recording !== result.id) result.problems.push(`${chunk.name} belongs to recording ${header.recording}, not ${result.id}`);
}

/**
 * Complete only as the signed content says: its last event seals it (a checkpoint saved as the final manifest does not). The
 * seal is the writer's mark, not an event of the session.
 */
function applySeal(result: RecordingCheck, read: ChunksRead, chunks: number): void {
  if (result.complete && read.version >= 2 && !(read.last?.t === SEALED && read.last.chunks === chunks)) {
    result.complete = false;
    result.truncated = true;
  }
  if (read.last?.t === SEALED) result.events -= 1;
}

/** The number a chunk or checkpoint file's name carries (a chunk's sequence, a checkpoint's chunk count), if it is one. */
function fileNumber(name: string): number | undefined {
  const m = /^(?:events-|records-|checkpoint-)(\d{6})\./.exec(name);
  return m ? Number(m[1]) : undefined;
}

/** Whether `name` is a checkpoint manifest whose whole lines begin the manifest in force, or its signature over it. */
async function isSignedPrefix(at: RecordingFiles, name: string, manifest: Buffer, trusted: readonly KeyObject[]): Promise<boolean> {
  const base = name.replace(/\.sig$/, '');
  if (!CHECKPOINT_FILE.test(base)) return false;
  const [text, sig] = await Promise.all([at.read(base), at.read(`${base}.sig`)]);
  if (!text || !(text.length === 0 || text.at(-1) === 0x0a) || !manifest.subarray(0, text.length).equals(text)) return false;
  try {
    if (sig) sshVerify(sig.toString('utf8'), RECORDING_NAMESPACE, text, trusted);
    return true;
  } catch {
    return false;
  }
}

/**
 * Every file in the directory is the manifest in force, its signature, a chunk it names, or a checkpoint it extends (with
 * its signature, which must verify): anything else is a problem, except, short of a complete recording, a chunk or
 * checkpoint numbered after what the manifest signs, which is unverified (written after the last checkpoint).
 */
async function reportUnnamedFiles(at: RecordingFiles, files: string[], manifest: Buffer, read: ChunksRead, trusted: readonly KeyObject[], result: RecordingCheck): Promise<void> {
  const own = new Set([result.manifest, `${result.manifest}.sig`, ...read.named]);
  for (const f of files.filter((f) => !own.has(f)).sort()) {
    if (await isSignedPrefix(at, f, manifest, trusted)) continue;
    if (!result.complete && (fileNumber(f) ?? 0) > read.named.size) result.unverified.push(f);
    else result.problems.push(`${f} is not named by ${result.manifest}: no part of the recording`);
  }
}
