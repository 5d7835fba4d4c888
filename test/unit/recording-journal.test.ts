import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { it, expect } from 'vitest';
import { RecordingThread } from '../../src/recording/thread.js';
import { verifyRecording } from '../../src/recording/verify.js';
it('journal', async () => {
  const { privateKey } = generateKeyPairSync('ed25519');
  const root = mkdtempSync(join(tmpdir(), 'j-'));
  const t = new RecordingThread({ flushMs: 50 });
  const a = await t.open({ dir: join(root, 'a'), id: 'aaaaaaaaaa', key: privateKey, journal: join(root, 'journal'), protocol: 'postgres' });
  a.event({ t: 'start', at: Date.now() });
  await a.close();
  console.log(readdirSync(join(root, 'a')), readdirSync(join(root, 'journal')));
  const c = await verifyRecording(join(root, 'a'), [privateKey]);
  console.log(c);
  await t.stop();
});
