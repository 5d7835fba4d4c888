/**
 * A journal's CLOSE entry is not signed: one appended to the journal of a session that crashed
 * uncut (the helper's attack) must not make its evidence vanish. Recovery cuts it from what the
 * journal's signed commits bind, and says that the CLOSE was not borne out. Nor may the unsigned
 * index waive verify's check of an ended recording by calling it running.
 */
import { appendFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { GatewayRecordings } from '../../src/gateway/records/recordings.js';
import { createLogger } from '../../src/log.js';
import { CLOSE, Journal } from '../../src/recording/journal.js';
import { signingKeyFromPem } from '../../src/recording/sshsig.js';
import { eventRecord } from '../../src/recording/writer.js';

const base = mkdtempSync(join(tmpdir(), 'hoop-forged-close-'));
afterAll(() => rmSync(base, { recursive: true, force: true }));

it('cuts a session whose journal holds a CLOSE no recording bears out, and says so', async () => {
  const data = join(base, 'data');
  mkdirSync(data, { mode: 0o700 });
  const lines: string[] = [];
  const log = createLogger({ level: 'debug', sink: { write: (l: string) => lines.push(l) } as never });
  await (await GatewayRecordings.open(data, log)).stop();
  const key = signingKeyFromPem(readFileSync(join(data, 'keys', 'recording-ed25519.pem'), 'utf8'));
  const id = 'sess-crashed-0001';
  const j = new Journal(join(data, 'journal'), key, false);
  j.open(1, { id, dir: join(data, 'recordings', id), protocol: 'postgres' });
  j.append(1, eventRecord({ t: 'start', at: 1, session: id } as never));
  await j.commit();
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
