/**
 * The CLIs' records a gateway takes are bounded (issue 38, class B), with the file store: a
 * record's bytes, the bytes of an identity's records that no signature verified yet, the time such
 * a record may wait, and the disk the gateway records every session on. What is refused is not
 * written; what expires is removed from the disk.
 */
import { createPrivateKey, randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createDeviceKey } from '../../src/auth/device-key.js';
import { ClientRecords, UNVERIFIED_RECORD_TTL_MS } from '../../src/gateway/records/client-records.js';
import { RecordingWriter } from '../../src/recording/writer.js';
import { silentLogger } from '../../src/log.js';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
function dataDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'hoop-client-record-limits-'));
  dirs.push(d);
  return d;
}

const alice = { issuer: 'https://idp.example', subject: 'alice' };
const bob = { issuer: 'https://idp.example', subject: 'bob' };
const noKeys = async (): Promise<never[]> => [];
const chunk = (n: number): string => `events-${String(n).padStart(6, '0')}.jsonl.gz`;
const refusal = (p: Promise<unknown>): Promise<{ status?: number; message?: string } | undefined> =>
  p.then(
    () => undefined,
    (e: { status?: number; message?: string }) => e,
  );
const held = (dir: string, kind: string, id: string): string[] =>
  readdirSync(join(dir, 'client-records', kind, id))
    .filter((f) => f.startsWith('events-'))
    .sort();

describe("CLIs' records", () => {
  it("a record holds at most its kind's bytes: a run's 1 MiB", async () => {
    const dir = dataDir();
    const records = await ClientRecords.open(dir, silentLogger, undefined, { reserveBytes: 0 });
    for (let i = 1; i <= 4; i++) await records.put('runs', 'run-limits-0001', chunk(i), Buffer.alloc(256 * 1024, i), alice, noKeys);
    expect(await refusal(records.put('runs', 'run-limits-0001', chunk(5), Buffer.alloc(1024), alice, noKeys))).toMatchObject({
      status: 413,
      message: expect.stringContaining('would pass the 1 MiB a record of this kind may hold'),
    });
    expect(held(dir, 'runs', 'run-limits-0001')).toEqual([1, 2, 3, 4].map(chunk));
  });

  it("an identity's unverified records hold at most so many bytes; another's are not held back", async () => {
    const dir = dataDir();
    const records = await ClientRecords.open(dir, silentLogger, undefined, { reserveBytes: 0, unverifiedBytesPerIdentity: 1024 * 1024 });
    await records.put('sessions', 'session-a-0001', chunk(1), Buffer.alloc(600 * 1024, 1), alice, noKeys);
    await records.put('sessions', 'session-b-0001', chunk(1), Buffer.alloc(300 * 1024, 2), alice, noKeys);
    const third = await refusal(records.put('sessions', 'session-c-0001', chunk(1), Buffer.alloc(300 * 1024, 3), alice, noKeys));
    expect(third).toMatchObject({ status: 429, message: 'alice has 0.9 MiB of records that no signature verified yet, and may have 1.0 MiB' });
    expect(readdirSync(join(dir, 'client-records', 'sessions')).sort()).toEqual(['session-a-0001', 'session-b-0001']);
    await records.put('sessions', 'session-d-0001', chunk(1), Buffer.alloc(600 * 1024, 4), bob, noKeys);
  });

  it("an identity's quota holds when its uploads come at once, and counts what a record took since its last verified signature", async () => {
    const dir = dataDir();
    const records = await ClientRecords.open(dir, silentLogger, undefined, { reserveBytes: 0, unverifiedBytesPerIdentity: 1024 * 1024 });
    const all = await Promise.all(
      Array.from({ length: 20 }, (_, i) => refusal(records.put('sessions', `session-race-${String(i).padStart(4, '0')}`, chunk(1), Buffer.alloc(900 * 1024, i), alice, noKeys))),
    );
    expect(all.filter((r) => r === undefined)).toHaveLength(1);
    expect(all.filter((r) => r?.status === 429)).toHaveLength(19);

    // A record that verified once (a signed checkpoint), then takes unsigned chunks: they count.
    const other = dataDir();
    const verified = await ClientRecords.open(other, silentLogger, undefined, { reserveBytes: 0, unverifiedBytesPerIdentity: 1024 * 1024 });
    const key = createDeviceKey();
    const spool = join(other, 'spool');
    const w = await RecordingWriter.create({ dir: spool, id: 'session-tail-0001', key: createPrivateKey(key.privateKey), checkpointMs: 3_600_000 });
    w.append({ t: 'start', at: Date.now(), side: 'client' });
    await w.checkpoint();
    w.abandon();
    const keys = async () => [{ publicKey: key.publicKey }];
    for (const f of ['events-000001.jsonl.gz', 'checkpoint-000001.SHA256SUMS', 'checkpoint-000001.SHA256SUMS.sig'])
      await verified.put('sessions', 'session-tail-0001', f, readFileSync(join(spool, f)), bob, keys);
    expect(await verified.state('sessions', 'session-tail-0001')).toMatchObject({ state: 'truncated', pending: 0 });
    await verified.put('sessions', 'session-tail-0001', chunk(2), Buffer.alloc(600 * 1024, 1), bob, keys);
    expect(await refusal(verified.put('sessions', 'session-tail-0001', chunk(3), Buffer.alloc(600 * 1024, 2), bob, keys))).toMatchObject({ status: 429 });
  });

  it("an identity's daily budget counts every byte it has the gateway keep, signed or not: records signed with a device key of its own do not go past it", async () => {
    const dir = dataDir();
    const records = await ClientRecords.open(dir, silentLogger, undefined, { reserveBytes: 0, dailyBytesPerIdentity: 2 * 1024 * 1024 });
    const key = createDeviceKey();
    const keys = async () => [{ publicKey: key.publicKey }];
    /** A complete record of `size` bytes of junk, signed by alice's own key. */
    const signed = async (id: string, size: number): Promise<Array<[string, Buffer]>> => {
      const spool = join(dir, `spool-${id}`);
      const w = await RecordingWriter.create({ dir: spool, id, key: createPrivateKey(key.privateKey), chunkBytes: 64 * 1024 * 1024 });
      w.append({ t: 'start', at: Date.now(), side: 'client', junk: randomBytes(size).toString('base64') });
      await w.close();
      // The chunks first, the signed manifest last (it is verified as it comes).
      const order = (f: string): number => (f.startsWith('events-') ? 0 : f.endsWith('.sig') ? 2 : 1);
      return readdirSync(spool)
        .sort((a, b) => order(a) - order(b))
        .map((f) => [f, readFileSync(join(spool, f))]);
    };
    const put = async (id: string, files: Array<[string, Buffer]>) => {
      for (const [f, data] of files) {
        const refused = await refusal(records.put('sessions', id, f, data, alice, keys));
        if (refused) return refused;
      }
      return undefined;
    };
    expect(await put('session-junk-0001', await signed('session-junk-0001', 700 * 1024))).toBeUndefined();
    expect(await records.state('sessions', 'session-junk-0001')).toMatchObject({ state: 'complete', pending: 0 });
    expect(await put('session-junk-0002', await signed('session-junk-0002', 700 * 1024))).toBeUndefined();
    // Signed, so no unverified quota counts them; the day's budget does.
    expect(await put('session-junk-0003', await signed('session-junk-0003', 700 * 1024))).toMatchObject({
      status: 429,
      message: expect.stringMatching(/alice has had the gateway keep \d+\.\d MiB of records within a day/),
    });
    // Another identity's budget is its own.
    expect(await refusal(records.put('sessions', 'session-bobs-0001', chunk(1), Buffer.alloc(1024, 1), bob, noKeys))).toBeUndefined();
  });

  it("an identity's daily budget counts what uploads that never verified made the gateway write and check: the third 400 KiB upload in a 1 MiB day is refused; a day later the tombstones go", async () => {
    const dir = dataDir();
    const records = await ClientRecords.open(dir, silentLogger, undefined, { reserveBytes: 0, dailyBytesPerIdentity: 1024 * 1024, unverifiedBytesPerIdentity: 1024 * 1024 });
    const statuses: Array<number | 'stored'> = [];
    for (let i = 0; i < 3; i++) {
      const files = [
        { name: chunk(1), data: randomBytes(400 * 1024) },
        { name: 'SHA256SUMS', data: Buffer.from(`${'0'.repeat(64)}  ${chunk(1)}\n`) },
        { name: 'SHA256SUMS.sig', data: Buffer.from('-----BEGIN SSH SIGNATURE-----\nbogus\n-----END SSH SIGNATURE-----\n') },
      ];
      const id = `session-refused-${String(i).padStart(3, '0')}`;
      statuses.push(
        await records.putFiles('sessions', id, files, alice, noKeys).then(
          () => 'stored' as const,
          (e: { status?: number }) => e.status ?? 0,
        ),
      );
    }
    // Written, checked (422: does not verify) and dropped, twice; the third would pass the day's megabyte.
    expect(statuses).toEqual([422, 422, 429]);
    // A gateway started again counts what its disk holds: the day's budget is still spent.
    const again = await ClientRecords.open(dir, silentLogger, undefined, { reserveBytes: 0, dailyBytesPerIdentity: 1024 * 1024, unverifiedBytesPerIdentity: 1024 * 1024 });
    expect(await refusal(again.putFiles('sessions', 'session-refused-009', [{ name: chunk(1), data: randomBytes(400 * 1024) }], alice, noKeys))).toMatchObject({ status: 429 });
    expect(readdirSync(join(dir, 'client-records', 'sessions', 'session-refused-000'))).toEqual(['record.json']);
    expect(await records.state('sessions', 'session-refused-000')).toMatchObject({ state: 'refused', pending: 0 });
    expect(await records.expireUnverified(Date.now() + UNVERIFIED_RECORD_TTL_MS + 60_000)).toHaveLength(2);
    expect(await records.state('sessions', 'session-refused-000')).toBeUndefined();
  });

  it('a record that no signature verified within a day is removed, files and all', async () => {
    const dir = dataDir();
    const records = await ClientRecords.open(dir, silentLogger, undefined, { reserveBytes: 0 });
    await records.put('sessions', 'session-old-001', chunk(1), Buffer.from('never signed'), alice, noKeys);
    expect(await records.expireUnverified(Date.now() + UNVERIFIED_RECORD_TTL_MS - 60_000)).toEqual([]);
    expect(await records.expireUnverified(Date.now() + UNVERIFIED_RECORD_TTL_MS + 60_000)).toEqual([{ kind: 'sessions', id: 'session-old-001' }]);
    expect(readdirSync(join(dir, 'client-records', 'sessions'))).toEqual([]);
    expect(await records.state('sessions', 'session-old-001')).toBeUndefined();
  });

  it('an upload that would take the last free space of the data disk is refused 507, and nothing is written', async () => {
    const dir = dataDir();
    const records = await ClientRecords.open(dir, silentLogger, undefined, { reserveBytes: Number.MAX_SAFE_INTEGER });
    expect(await refusal(records.put('sessions', 'session-full-01', chunk(1), Buffer.from('x'), alice, noKeys))).toMatchObject({
      status: 507,
      message: expect.stringContaining("the gateway's disk is too full to keep this record"),
    });
    expect(readdirSync(join(dir, 'client-records', 'sessions'))).toEqual([]);
    expect(await records.state('sessions', 'session-full-01')).toBeUndefined();
  });

  it('files of one record taken together are all checked before any is written: one refused leaves nothing of the others, on disk or in the quota', async () => {
    const dir = dataDir();
    const records = await ClientRecords.open(dir, silentLogger, undefined, { reserveBytes: 0, unverifiedBytesPerIdentity: 1024 * 1024 });
    const files = (extra: { name: string; data: Buffer }) => [{ name: chunk(1), data: Buffer.alloc(900 * 1024, 1) }, extra];
    for (let i = 0; i < 5; i++) {
      const refused = await refusal(records.putFiles('sessions', `session-batch-${String(i).padStart(4, '0')}`, files({ name: 'SHA256SUMS', data: Buffer.alloc(4 * 1024 * 1024 + 1) }), alice, noKeys));
      expect(refused).toMatchObject({ status: 413 });
    }
    // An unverified signature over a manifest too large: neither the checkpoint pair before it nor anything else is kept.
    const sig = await refusal(
      records.putFiles(
        'sessions',
        'session-batch-sig1',
        [
          { name: 'checkpoint-000001.SHA256SUMS', data: Buffer.from('x') },
          { name: 'checkpoint-000001.SHA256SUMS.sig', data: Buffer.from('not a signature') },
          { name: 'SHA256SUMS', data: Buffer.alloc(4 * 1024 * 1024 + 1) },
        ],
        alice,
        noKeys,
      ),
    );
    expect(sig).toMatchObject({ status: 413 });
    expect(readdirSync(join(dir, 'client-records', 'sessions'))).toEqual([]);
    // The quota still holds its whole MiB.
    await records.putFiles('sessions', 'session-batch-okay', [{ name: chunk(1), data: Buffer.alloc(900 * 1024, 2) }], alice, noKeys);
    expect(await refusal(records.putFiles('sessions', 'session-batch-over', [{ name: chunk(1), data: Buffer.alloc(200 * 1024, 3) }], alice, noKeys))).toMatchObject({ status: 429 });
  });
});
