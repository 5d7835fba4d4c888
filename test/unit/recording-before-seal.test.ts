/**
 * verifyRecording's `before` path (the gateway's check of an uploaded CLI record, checkpoint by
 * checkpoint) read no chunk it verified before, so it never saw the last event: a checkpoint saved
 * again as SHA256SUMS(.sig), unsealed, was "complete" (issue 72, the thirteenth attack). The last
 * chunk is always read now.
 */
import { generateKeyPairSync } from 'node:crypto';
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { cutRecording } from '../../src/recording/record-chunks.js';
import { verifyRecording } from '../../src/recording/verify.js';
import { eventRecord } from '../../src/recording/writer.js';

it('finds an unsealed recording under `before` as a fresh check does: not complete', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'hoop-before-'));
  const key = generateKeyPairSync('ed25519').privateKey;
  const id = 'sess-client-00001';
  await cutRecording({ path: dir, id, protocol: 'postgres', key, sealed: false, durable: false }, [eventRecord({ t: 'start', at: 1 })]);
  const cp = readdirSync(dir).find((f) => /^checkpoint-\d{6}\.SHA256SUMS$/.test(f))!;
  const first = await verifyRecording(dir, [key], undefined, id);
  expect(first).toMatchObject({ ok: true, truncated: true });
  // The "final" manifest: the checkpoint's bytes and signature under the final names; the checkpoint removed.
  copyFileSync(join(dir, cp), join(dir, 'SHA256SUMS'));
  copyFileSync(join(dir, `${cp}.sig`), join(dir, 'SHA256SUMS.sig'));
  rmSync(join(dir, cp));
  rmSync(join(dir, `${cp}.sig`));
  expect((await verifyRecording(dir, [key], undefined, id)).complete).toBe(false); // control: fresh check sees no seal
  const before = { manifest: readFileSync(join(dir, 'SHA256SUMS'), 'utf8'), events: first.events, id };
  expect(await verifyRecording(dir, [key], before, id)).toMatchObject({ ok: true, complete: false, truncated: true });
  rmSync(dir, { recursive: true, force: true });
});
