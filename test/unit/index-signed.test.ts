/**
 * The sessions index is a copy of what a recording signed (issue 72, class 7, the thirteenth
 * attack): an index line appended with another person, connection or address made `hoop sessions
 * show` print them beside "recording: verified"; `verify` now compares each with the signed start.
 */
import { appendFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { readEvents } from '../../src/client/recordings-fetch.js';
import { indexDiffers } from '../../src/client/session-verify.js';
import { archivePath, GatewayRecordings } from '../../src/gateway/records/recordings.js';
import { silentLogger } from '../../src/log.js';
import { Journal } from '../../src/recording/journal.js';
import { signingKeyFromPem } from '../../src/recording/sshsig.js';
import { verifyRecording } from '../../src/recording/verify.js';
import { eventRecord } from '../../src/recording/writer.js';

const base = mkdtempSync(join(tmpdir(), 'hoop-index-signed-'));
afterAll(() => rmSync(base, { recursive: true, force: true }));

it("finds each field an edited index line says otherwise than the session's signed start", async () => {
  const data = join(base, 'data');
  mkdirSync(data, { mode: 0o700 });
  await (await GatewayRecordings.open(data, silentLogger)).stop();
  const key = signingKeyFromPem(readFileSync(join(data, 'keys', 'recording-ed25519.pem'), 'utf8'));
  const id = 'sess-alice-00001';
  const journal = new Journal(join(data, 'journal'), key, false);
  journal.open(1, { id, dir: join(data, 'recordings', id), protocol: 'postgres' });
  journal.append(
    1,
    eventRecord({ t: 'start', at: 1000, session: id, identity: { subject: 'alice', issuer: 'idp', kind: 'user', groups: ['dba'] }, connection: 'prod', type: 'postgres', remote: '10.0.0.5' } as never),
  );
  await journal.commit();
  const recordings = await GatewayRecordings.open(data, silentLogger);
  try {
    await recordings.recoverUnindexed();
    const dir = archivePath(data, id);
    const check = await verifyRecording(dir, [key], undefined, id);
    let start: Record<string, unknown> | undefined;
    for await (const e of readEvents(dir, check.manifest!)) if (e.t === 'start') start = e as Record<string, unknown>;
    const [summary] = await recordings.sessions();
    expect(indexDiffers(summary!, start)).toBeUndefined();
    appendFileSync(join(data, 'sessions.jsonl'), `${JSON.stringify({ ...summary, subject: 'mallory', connection: 'staging', remote: '192.0.2.1' })}\n`);
    const edited = (await recordings.archive.session(id))!;
    expect(edited.subject).toBe('mallory');
    expect(indexDiffers(edited, start)).toBe('subject "mallory" where its signed recording says "alice"');
    for (const [field, value] of [
      ['connection', 'staging'],
      ['remote', '192.0.2.1'],
      ['runId', 'run-x'],
      ['startedAt', new Date(5000).toISOString()],
      ['groups', ['dba', 'admin']],
      ['direct', true],
      ['via', 'run'],
      ['isolated', true],
      ['kind', 'workload'],
    ] as const)
      expect(indexDiffers({ ...summary!, [field]: value }, start), field).toBeDefined();
  } finally {
    await recordings.stop();
  }
});
