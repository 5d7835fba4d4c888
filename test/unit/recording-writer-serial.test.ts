/**
 * A recording's files have one writer: checkpoints asked for at once, while ticks sign their own
 * and chunks are cut, then a close, write each file once (a second writer of the same checkpoint
 * failed with EEXIST and lost the run's record), and the recording verifies whole.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { createPublicKey } from 'node:crypto';
import { generateSigningKey } from '../../src/recording/sshsig.js';
import { verifyRecording } from '../../src/recording/verify.js';
import { RecordingWriter } from '../../src/recording/writer.js';

const base = mkdtempSync(join(tmpdir(), 'hoop-writer-serial-'));
afterAll(() => rmSync(base, { recursive: true, force: true }));

it.each([
  ['asked for at once', { chunkMs: 60_000, checkpointMs: 60_000 }],
  ['asked for at once, beside its own ticks', { chunkMs: 1, checkpointMs: 1 }],
])('signs each checkpoint once, %s, and closes complete', async (_what, timing) => {
  const { privateKey: key } = generateSigningKey();
  const publicKey = createPublicKey(key);
  const dir = mkdtempSync(join(base, 'rec-'));
  const w = await RecordingWriter.create({ dir, id: 'run-serial', key, ...timing });
  const asked: Array<Promise<void>> = [];
  for (let i = 0; i < 200; i++) {
    w.append({ t: 'statement', at: i, sql: `select ${i}`, decision: 'allow' } as never);
    asked.push(w.checkpoint(), w.checkpoint());
    if (i % 20 === 0) await new Promise((r) => setImmediate(r));
  }
  await Promise.all(asked);
  await w.close();
  const check = await verifyRecording(dir, [publicKey]);
  expect(check.problems).toEqual([]);
  expect({ ok: check.ok, complete: check.complete, events: check.events }).toEqual({ ok: true, complete: true, events: 200 });
});
