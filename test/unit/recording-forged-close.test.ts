/**
 * A journal's CLOSE entry is not signed: one appended to the journal of a session that crashed
 * uncut (the helper's attack) must not make its evidence vanish. Recovery cuts it from what the
 * journal's signed commits bind, and says that the CLOSE was not borne out. Nor may the unsigned
 * index waive verify's check of an ended recording by calling it running.
 */
import { appendFileSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { GatewayRecordings } from '../../src/gateway/records/recordings.js';
import { createLogger } from '../../src/log.js';
import { CLOSE } from '../../src/recording/journal.js';
import { crashedMidSession } from '../harness/records.js';

const base = mkdtempSync(join(tmpdir(), 'hoop-forged-close-'));
afterAll(() => rmSync(base, { recursive: true, force: true }));

it('cuts a session whose journal holds a CLOSE no recording bears out, and says so', async () => {
  const data = join(base, 'data');
  const lines: string[] = [];
  const log = createLogger({ level: 'debug', sink: { write: (l: string) => lines.push(l) } as never });
  const id = 'sess-crashed-0001';
  await crashedMidSession(data, id, log);
  // The forged entry: CLOSE of session 1, no payload.
  const entry = Buffer.alloc(9);
  entry[0] = CLOSE;
  entry.writeUInt32LE(1, 1);
  appendFileSync(join(data, 'journal', readdirSync(join(data, 'journal'))[0]!), entry);
  const recordings = await GatewayRecordings.open(data, log);
  try {
    await recordings.recoverUnindexed();
    expect((await recordings.sessions()).map((s) => [s.id, s.recording])).toEqual([[id, 'truncated']]);
    expect(lines.some((l) => l.includes('recording.close-unproven') && l.includes(id))).toBe(true);
    // An index line edited (appended) to say it runs is read as ended, cut short: no live session is in the index.
    const [summary] = await recordings.sessions();
    appendFileSync(join(data, 'sessions.jsonl'), `${JSON.stringify({ ...summary, recording: 'running' })}\n`);
    expect((await recordings.sessions()).map((s) => [s.id, s.recording])).toEqual([[id, 'truncated']]);
  } finally {
    await recordings.stop();
  }
});
