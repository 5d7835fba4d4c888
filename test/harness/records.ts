/**
 * The records a recording of format 3 holds (src/recording/record-chunks.ts), read straight from its chunk files; and
 * every file a gateway keeps, as text, for a test that asserts what none of them holds.
 */
import type { KeyObject } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { GatewayRecordings } from '../../src/gateway/records/recordings.js';
import type { Logger } from '../../src/log.js';
import { Journal } from '../../src/recording/journal.js';
import { splitChunk } from '../../src/recording/record-chunks.js';
import { signingKeyFromPem } from '../../src/recording/sshsig.js';
import { eventRecord } from '../../src/recording/writer.js';
import { isRecordingArchive } from '../../src/recording/recording-files.js';
import { readTar } from '../../src/recording/tar.js';
import { forEachRecord } from '../../src/recording/thread.js';

/** The files of the recording at `path` (an archive or a directory), by name. */
export function recordingFilesIn(path: string): Map<string, Buffer> {
  if (isRecordingArchive(path)) return new Map(readTar(readFileSync(path), 100_000).map((e) => [e.name.slice(e.name.indexOf('/') + 1), e.data]));
  return new Map(readdirSync(path).map((f) => [f, readFileSync(join(path, f))]));
}

/** Changes the file `name` of the recording archive at `path` in place (`change` alters its bytes, not their length); returns what puts the archive back. */
export function alterArchivedFile(path: string, name: string, change: (bytes: Buffer) => void): () => void {
  const original = readFileSync(path);
  const bytes = Buffer.from(original);
  const entry = readTar(bytes, 100_000).find((e) => e.name.endsWith(`/${name}`));
  if (!entry) throw new Error(`${path} holds no ${name}`);
  change(entry.data);
  writeFileSync(path, bytes);
  return () => writeFileSync(path, original);
}

/** One record: its kind, time and bytes. */
export interface RawRecord {
  kind: number;
  at: number;
  bytes: Buffer;
}

/** Every record of the chunks of the recording at `path` (an archive or a directory), in order. */
export function recordsIn(path: string): RawRecord[] {
  const out: RawRecord[] = [];
  const files = recordingFilesIn(path);
  for (const f of [...files.keys()].filter((f) => /^records-\d{6}\.gz$/.test(f)).sort()) {
    const data = gunzipSync(files.get(f)!);
    forEachRecord(data, data.length, (kind, at, bytes, start, end) => void out.push({ kind, at, bytes: Buffer.from(bytes.subarray(start, end)) }), splitChunk(data).records);
  }
  return out;
}

/** Every file under `dir` (a gateway's data directory: recordings, their archives' files, journals, the CLIs' records, the index), gzip read through, as latin1 text. */
export function filesAsText(dir: string): string[] {
  const text = (bytes: Buffer): string => (bytes[0] === 0x1f && bytes[1] === 0x8b ? gunzipSync(bytes) : bytes).toString('latin1');
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return filesAsText(path);
    if (isRecordingArchive(path) && statSync(path).size > 0) return [...recordingFilesIn(path).values()].map(text);
    return [text(readFileSync(path))];
  });
}

/**
 * A gateway's data directory `data` (made here) as a gateway killed mid-session leaves it: its
 * keys, and a journal holding session `id`'s start, committed; resolves the recording key.
 */
export async function crashedMidSession(data: string, id: string, log: Logger): Promise<KeyObject> {
  mkdirSync(data, { mode: 0o700 });
  await (await GatewayRecordings.open(data, log)).stop();
  const key = signingKeyFromPem(readFileSync(join(data, 'keys', 'recording-ed25519.pem'), 'utf8'));
  const j = new Journal(join(data, 'journal'), key, false);
  j.open(1, { id, dir: join(data, 'recordings', id), protocol: 'postgres' });
  j.append(1, eventRecord({ t: 'start', at: 1, session: id } as never));
  await j.commit();
  return key;
}
