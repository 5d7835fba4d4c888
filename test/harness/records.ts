/**
 * The records a recording of format 3 holds (src/recording/record-chunks.ts), read straight from its chunk files; and
 * every file a gateway keeps, as text, for a test that asserts what none of them holds.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { splitChunk } from '../../src/recording/record-chunks.js';
import { forEachRecord } from '../../src/recording/thread.js';

/** One record: its kind, time and bytes. */
export interface RawRecord {
  kind: number;
  at: number;
  bytes: Buffer;
}

/** Every record of the chunks in `dir`, in order. */
export function recordsIn(dir: string): RawRecord[] {
  const out: RawRecord[] = [];
  for (const f of readdirSync(dir)
    .filter((f) => /^records-\d{6}\.gz$/.test(f))
    .sort()) {
    const data = gunzipSync(readFileSync(join(dir, f)));
    forEachRecord(data, data.length, (kind, at, bytes, start, end) => void out.push({ kind, at, bytes: Buffer.from(bytes.subarray(start, end)) }), splitChunk(data).records);
  }
  return out;
}

/** Every file under `dir` (a gateway's data directory: recordings, journals, the CLIs' records, the index), gzip read through, as latin1 text. */
export function filesAsText(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return filesAsText(path);
    const bytes = readFileSync(path);
    return [(bytes[0] === 0x1f && bytes[1] === 0x8b ? gunzipSync(bytes) : bytes).toString('latin1')];
  });
}
