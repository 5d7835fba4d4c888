/**
 * A sealed recording is not cut shorter from an older journal (issue 72, class 7, the thirteenth
 * attack): someone who can write the data directory (not the key) copies the journal mid-session,
 * lets the session end sealed (its DROP recorded), then deletes the final signature and puts the
 * old journal back. Recovery once removed the sealed files and cut the session again from the old
 * copy, signed. The index says it ended sealed: its files are left, and verify says what fails.
 */
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { GatewayRecordings, summaryFromRecording } from '../../src/gateway/records/recordings.js';
import { silentLogger } from '../../src/log.js';
import { Journal } from '../../src/recording/journal.js';
import { cutRecording } from '../../src/recording/record-chunks.js';
import { signingKeyFromPem } from '../../src/recording/sshsig.js';
import { verifyRecording } from '../../src/recording/verify.js';
import { eventRecord } from '../../src/recording/writer.js';

const base = mkdtempSync(join(tmpdir(), 'hoop-rollback-'));
afterAll(() => rmSync(base, { recursive: true, force: true }));

it('leaves a recording the index says ended sealed as it is, its seal gone and an older journal put back', async () => {
  const data = join(base, 'data');
  mkdirSync(data, { mode: 0o700 });
  await (await GatewayRecordings.open(data, silentLogger)).stop();
  const key = signingKeyFromPem(readFileSync(join(data, 'keys', 'recording-ed25519.pem'), 'utf8'));
  const id = 'sess-dropper-0001';
  const dir = join(data, 'recordings', id);
  const jdir = join(data, 'journal');
  const blocks = [eventRecord({ t: 'start', at: 1, session: id, identity: { subject: 'mallory' } } as never), eventRecord({ t: 'context', at: 2, source: 'mcp', intent: 'harmless read' } as never)];
  const drop = eventRecord({ t: 'decision', at: 3, action: 'allow', sql: 'DROP TABLE customers' } as never);
  const j = new Journal(jdir, key, false);
  j.open(1, { id, dir, protocol: 'postgres' });
  for (const b of blocks) j.append(1, b);
  await j.commit();
  const name = readdirSync(jdir)[0]!;
  copyFileSync(join(jdir, name), join(base, 'stolen.hj')); // the attacker's copy, mid-session
  j.append(1, drop);
  await j.commit();
  // The session ends: cut sealed, the journal goes (as recordings.ts / the thread do).
  await cutRecording({ path: dir, id, protocol: 'postgres', key, sealed: true, durable: false }, [...blocks, drop]);
  j.close?.();
  rmSync(jdir, { recursive: true, force: true });
  expect((await verifyRecording(dir, [key], undefined, id)).complete).toBe(true);
  // Indexed as it ended, sealed.
  const indexing = await GatewayRecordings.open(data, silentLogger);
  await indexing.index({ ...(await summaryFromRecording(id, dir)), recording: 'complete' });
  await indexing.stop();
  // The attack.
  rmSync(join(dir, 'SHA256SUMS.sig'));
  mkdirSync(jdir, { mode: 0o700 });
  copyFileSync(join(base, 'stolen.hj'), join(jdir, name));
  const recordings = await GatewayRecordings.open(data, silentLogger);
  try {
    await recordings.recoverUnindexed();
  } finally {
    await recordings.stop();
  }
  // Not cut again and signed: the sealed files stand, and verify says the signature is missing.
  const check = await verifyRecording(dir, [key], undefined, id);
  expect(check.ok).toBe(false);
  expect(readdirSync(dir)).toContain('SHA256SUMS');
  expect(readFileSync(join(dir, 'SHA256SUMS'), 'utf8')).not.toBe('');
});
