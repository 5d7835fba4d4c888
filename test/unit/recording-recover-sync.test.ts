/**
 * A gateway that died after cutting a session whole but before syncing its archive leaves the
 * journal that holds it: the next start finds the recording whole and, before it drops that
 * journal, makes the archive durable (otherwise a power loss soon after would lose a recording
 * whose only other copy had just been dropped). Seen with strace: the archive's `fdatasync` comes
 * before the journal's `unlink`.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, expect, it } from 'vitest';
import { archivePath } from '../../src/gateway/records/recordings.js';
import { createLogger } from '../../src/log.js';
import { recoverJournals } from '../../src/recording/journal-recovery.js';
import { cutRecording } from '../../src/recording/record-chunks.js';
import { crashedMidSession } from '../harness/records.js';

const base = mkdtempSync(join(tmpdir(), 'hoop-recover-sync-'));
afterAll(() => rmSync(base, { recursive: true, force: true }));
const root = fileURLToPath(new URL('../..', import.meta.url));

it.skipIf(!existsSync('/usr/bin/strace'))('syncs a recording it finds whole before it drops the journal that holds it', async () => {
  const data = join(base, 'data');
  const id = 'sess-cut-unsynced-1';
  const key = await crashedMidSession(data, id, createLogger({ level: 'error', sink: { write: () => undefined } as never }));
  // The session cut whole, unsynced (the last run died before its sync group), its journal still there.
  const [s] = recoverJournals(join(data, 'journal'), [key]).sessions;
  await cutRecording({ path: archivePath(data, id), id, protocol: 'postgres', key, sealed: true, durable: false }, s!.blocks());
  const [journal] = readdirSync(join(data, 'journal'));

  const script = `import { GatewayRecordings } from ${JSON.stringify(join(root, 'src/gateway/records/recordings.ts'))};
    const r = await GatewayRecordings.open(${JSON.stringify(data)}, { info() {}, warn() {}, error(...a) { console.error(a) }, debug() {}, child() { return this } });
    await r.recoverUnindexed();
    await r.stop();`;
  const trace = join(base, 'strace.out');
  execFileSync('strace', ['-f', '-y', '-o', trace, '-e', 'trace=fdatasync,fsync,unlink,unlinkat', process.execPath, '--import', 'tsx', '--input-type=module', '-e', script], {
    cwd: root,
    stdio: ['ignore', 'ignore', 'pipe'],
    timeout: 60_000,
  });
  const lines = readFileSync(trace, 'utf8').split('\n');
  const synced = lines.findIndex((l) => /fdatasync\(\d+<[^>]*\.tar>\) = 0/.test(l) && l.includes(`${id}.tar`));
  const dropped = lines.findIndex((l) => l.includes(journal!) && /unlink/.test(l));
  expect(synced, 'the archive was synced').toBeGreaterThanOrEqual(0);
  expect(dropped, 'the journal was dropped').toBeGreaterThan(synced);
  expect(existsSync(join(data, 'journal', journal!))).toBe(false);
});
