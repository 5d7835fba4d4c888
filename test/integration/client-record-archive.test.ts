/**
 * The file store of the CLIs' records keeps a record complete at its first upload (a short
 * session's, sent whole in a batch) as one archive: verified from the upload before anything is
 * written, read back by name, found again by a gateway restarted on the same data directory,
 * never changed, removed whole. A record uploaded file by file keeps its directory; one refused
 * whole leaves its state alone. What a stopped gateway left half done goes at start; no file is
 * left without the state that counts it.
 */
import { createPrivateKey } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createDeviceKey } from '../../src/auth/device-key.js';
import { ClientRecords } from '../../src/gateway/records/client-records.js';
import { silentLogger } from '../../src/log.js';
import { readTar } from '../../src/recording/tar.js';
import { verifyRecording } from '../../src/recording/verify.js';
import { RecordingWriter } from '../../src/recording/writer.js';
import { createPublicKey } from 'node:crypto';

const root = mkdtempSync(join(tmpdir(), 'hoop-client-record-archive-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const alice = { issuer: 'https://idp.example', subject: 'alice' };
const key = createDeviceKey();
const keys = async () => [{ publicKey: key.publicKey }];

/** A closed record of session `id` as the CLI wrote it: its files by name, chunks first. */
async function record(id: string, signedBy = key.privateKey): Promise<Array<{ name: string; data: Buffer }>> {
  const dir = join(root, `cli-${id}`);
  const w = await RecordingWriter.create({ dir, id, key: createPrivateKey(signedBy) });
  w.append({ t: 'start', at: 1, side: 'client' });
  w.append({ t: 'query', at: 2, sql: 'select 1' });
  await w.close();
  return readdirSync(dir).map((name) => ({ name, data: readFileSync(join(dir, name)) }));
}

describe("a CLI's record complete at its first upload", () => {
  it('is one archive that holds its files and its state, reads back, is found again after a restart, and is removed whole', async () => {
    const data = join(root, 'data-one');
    const records = await ClientRecords.open(data, silentLogger, undefined, { reserveBytes: 0 });
    const files = await record('session-whole-0001');
    expect(await records.putFiles('sessions', 'session-whole-0001', files, alice, keys)).toMatchObject({ stored: true, state: { state: 'complete', chunks: 1, events: 2 } });
    const sessions = join(data, 'client-records', 'sessions');
    expect(readdirSync(sessions)).toEqual(['session-whole-0001.tar']);
    const archive = join(sessions, 'session-whole-0001.tar');
    // In the upload order (chunks, manifest, signature), its state last.
    expect(readTar(readFileSync(archive), 10).map((e) => e.name)).toEqual(['events-000001.jsonl.gz', 'SHA256SUMS', 'SHA256SUMS.sig', 'record.json'].map((f) => `session-whole-0001/${f}`));
    // What it holds verifies as it did uploaded; each file reads back as it came.
    expect(await verifyRecording(archive, [createPublicKey(key.publicKey)], undefined, 'session-whole-0001', ['record.json'])).toMatchObject({ ok: true, complete: true });
    expect((await records.files('sessions', 'session-whole-0001')).sort()).toEqual(files.map((f) => f.name).sort());
    for (const f of files) expect((await records.file('sessions', 'session-whole-0001', f.name)) as Buffer).toEqual(f.data);
    // The same bytes again are already stored; other bytes are refused, and it is not changed.
    expect(await records.putFiles('sessions', 'session-whole-0001', files, alice, keys)).toMatchObject({ stored: false });
    const chunk = files.find((f) => f.name.startsWith('events-'))!;
    await expect(records.put('sessions', 'session-whole-0001', chunk.name, Buffer.from('other'), alice, keys)).rejects.toMatchObject({ status: 409 });
    await expect(records.put('sessions', 'session-whole-0001', 'events-000009.jsonl.gz', Buffer.from('more'), alice, keys)).rejects.toMatchObject({ status: 409 });

    // A gateway restarted on the same data directory finds it.
    const again = await ClientRecords.open(data, silentLogger, undefined, { reserveBytes: 0 });
    expect(await again.state('sessions', 'session-whole-0001')).toMatchObject({ state: 'complete', subject: 'alice', chunks: 1, events: 2 });
    expect((await again.file('sessions', 'session-whole-0001', chunk.name)) as Buffer).toEqual(chunk.data);
    await again.remove('sessions', 'session-whole-0001');
    expect(readdirSync(sessions)).toEqual([]);
    expect(await again.state('sessions', 'session-whole-0001')).toBeUndefined();
  });

  it('refused whole (signed by a key not its uploader’s), nothing of it is written but its state; uploaded file by file, it keeps a directory', async () => {
    const data = join(root, 'data-two');
    const records = await ClientRecords.open(data, silentLogger, undefined, { reserveBytes: 0 });
    const forged = await record('session-forged-01', createDeviceKey().privateKey);
    await expect(records.putFiles('sessions', 'session-forged-01', forged, alice, keys)).rejects.toMatchObject({ status: 422 });
    const sessions = join(data, 'client-records', 'sessions');
    expect(readdirSync(join(sessions, 'session-forged-01'))).toEqual(['record.json']);
    expect(await records.state('sessions', 'session-forged-01')).toMatchObject({ state: 'refused', pending: 0 });

    const files = await record('session-parts-001');
    const order = (f: string): number => (f.startsWith('events-') ? 0 : f.endsWith('.sig') ? 2 : 1);
    for (const f of files.sort((a, b) => order(a.name) - order(b.name))) await records.put('sessions', 'session-parts-001', f.name, f.data, alice, keys);
    expect(await records.state('sessions', 'session-parts-001')).toMatchObject({ state: 'complete' });
    expect(existsSync(join(sessions, 'session-parts-001.tar'))).toBe(false);
    expect(readdirSync(join(sessions, 'session-parts-001')).sort()).toEqual([...files.map((f) => f.name), 'record.json'].sort());
  });

  it("a stopped gateway's leftovers go at start: a write's temporary file, a directory its record's archive replaced", async () => {
    const data = join(root, 'data-three');
    const records = await ClientRecords.open(data, silentLogger, undefined, { reserveBytes: 0 });
    const files = await record('session-twice-001');
    await records.putFiles('sessions', 'session-twice-001', files, alice, keys);
    const sessions = join(data, 'client-records', 'sessions');
    // A removal of a refused record's directory that did not reach the disk, and a write cut off.
    mkdirSync(join(sessions, 'session-twice-001'));
    writeFileSync(
      join(sessions, 'session-twice-001', 'record.json'),
      `${JSON.stringify({ kind: 'sessions', id: 'session-twice-001', issuer: alice.issuer, subject: alice.subject, state: 'refused', pending: 0, updatedAt: new Date(0).toISOString() })}\n`,
    );
    writeFileSync(join(sessions, 'session-cut-00001.tar.77.abcdef012345.tmp'), 'half');
    const again = await ClientRecords.open(data, silentLogger, undefined, { reserveBytes: 0 });
    expect(readdirSync(sessions)).toEqual(['session-twice-001.tar']);
    expect(await again.state('sessions', 'session-twice-001')).toMatchObject({ state: 'complete' });
  });

  it('a state the disk refuses takes back the files written before it', async () => {
    const data = join(root, 'data-four');
    const records = await ClientRecords.open(data, silentLogger, undefined, { reserveBytes: 0 });
    const dir = join(data, 'client-records', 'sessions', 'session-nostate-01');
    // record.json cannot be placed: a directory holds its name.
    mkdirSync(join(dir, 'record.json'), { recursive: true });
    const [chunk] = (await record('session-nostate-01')).filter((f) => f.name.startsWith('events-'));
    await expect(records.put('sessions', 'session-nostate-01', chunk!.name, chunk!.data, alice, keys)).rejects.toThrow();
    expect(readdirSync(dir)).toEqual(['record.json']);
  });

  it('a file held without its state (a gateway stopped between them) is said, not taken as stored', async () => {
    const data = join(root, 'data-five');
    const records = await ClientRecords.open(data, silentLogger, undefined, { reserveBytes: 0 });
    const [chunk] = (await record('session-orphan-01')).filter((f) => f.name.startsWith('events-'));
    const dir = join(data, 'client-records', 'sessions', 'session-orphan-01');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, chunk!.name), chunk!.data);
    await expect(records.put('sessions', 'session-orphan-01', chunk!.name, chunk!.data, alice, keys)).rejects.toMatchObject({
      status: 409,
      message: expect.stringContaining('held without its record'),
    });
    await expect(records.put('sessions', 'session-orphan-01', chunk!.name, Buffer.from('other'), alice, keys)).rejects.toMatchObject({ status: 409, message: expect.stringContaining('other bytes') });
  });

  it('a record whose directory cannot be read is refused, not taken as empty', async () => {
    const data = join(root, 'data-six');
    const records = await ClientRecords.open(data, silentLogger, undefined, { reserveBytes: 0 });
    const [chunk] = (await record('session-unread-01')).filter((f) => f.name.startsWith('events-'));
    // Not a directory: listing it fails with ENOTDIR, which is no "nothing held".
    writeFileSync(join(data, 'client-records', 'sessions', 'session-unread-01'), 'not a directory');
    await expect(records.put('sessions', 'session-unread-01', chunk!.name, chunk!.data, alice, keys)).rejects.toMatchObject({ code: 'ENOTDIR' });
    expect(readFileSync(join(data, 'client-records', 'sessions', 'session-unread-01'), 'utf8')).toBe('not a directory');
  });
});
