/**
 * The recording thread (src/recording/thread.ts) as the data path uses it: a PostgreSQL stage
 * copies messages, the thread writes them as records, the recording verifies and reads back as the client
 * saw it; a staging block moved to the thread makes `behind` wait until it is on disk; a failure
 * to write reaches the session at once and the close says so.
 */
import { createPublicKey, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { decodeFrontend } from '../../src/postgres/wire/frontend-messages.js';
import { RECORD_DECODERS } from '../../src/lanes/record-decoders.js';
import { PostgresRecordingStage } from '../../src/postgres/pipeline/recording/stage.js';
import { readEvents } from '../../src/recording/read.js';
import { recordingFiles } from '../../src/recording/recording-files.js';
import { readTar } from '../../src/recording/tar.js';
import { generateSigningKey } from '../../src/recording/sshsig.js';
import { RecordingThread } from '../../src/recording/thread.js';
import { verifyRecording } from '../../src/recording/verify.js';
import { MANIFEST } from '../../src/recording/writer.js';
import { frontendMessage as msg, int32 } from '../harness/pg-frontend.js';
import { eventually } from '../harness/wait.js';

const { privateKey: key } = generateSigningKey();
const root = mkdtempSync(join(tmpdir(), 'hoop-thread-'));
const thread = new RecordingThread();
afterAll(async () => {
  await thread.stop();
  rmSync(root, { recursive: true, force: true });
});

const query = (sql: string) => {
  const raw = msg('Q', sql);
  return decodeFrontend({ type: raw[0]!, body: raw.subarray(5), raw });
};
const rowDescription = (...names: string[]): Buffer => msg('T', names.length, ...names.flatMap((n) => [n, Buffer.alloc(18)]));
const dataRow = (...values: Array<string | null>): Buffer => msg('D', values.length, ...values.flatMap((v) => (v === null ? [int32(-1)] : [int32(Buffer.byteLength(v)), Buffer.from(v)])));

describe('the recording thread', () => {
  it('writes what the stage copied, in order, in a recording that verifies and reads back as events', async () => {
    const dir = join(root, 'one');
    const stream = await thread.open({ dir, id: 'one', key, protocol: 'postgres' });
    const stage = new PostgresRecordingStage({ stream, results: 'masked', rowCap: 2, now: () => 5 });
    stream.event({ t: 'start', at: 1, who: 'alice' });
    for (let i = 0; i < 300; i++) {
      stage.frontend(query(`select name from "customers" where id = ${i}`));
      for (const m of [rowDescription('name'), dataRow(`Zoë "${i}"`), dataRow(null), dataRow('beyond the cap'), msg('C', 'SELECT 3'), msg('Z', 'I')]) {
        if (!stage.wants(m[0]!)) stage.unread(m[0]!, 1);
        else {
          stage.backend(m);
          await stage.behind;
        }
      }
    }
    stage.end();
    stream.event({ t: 'end', at: 9, reason: 'client-terminated' });
    await stream.close();

    const check = await verifyRecording(dir, [createPublicKey(key)]);
    expect(check).toMatchObject({ ok: true, complete: true, problems: [] });
    const events = [];
    for await (const e of readEvents(dir, MANIFEST, RECORD_DECODERS)) events.push(e);
    expect(events[0]).toEqual({ t: 'start', at: 1, who: 'alice' });
    expect(events.at(-1)).toEqual({ t: 'end', at: 9, reason: 'client-terminated' });
    expect(events.filter((e) => e.t === 'query')).toHaveLength(300);
    expect(events.slice(1, 6)).toEqual([
      { t: 'query', at: 5, sql: 'select name from "customers" where id = 0' },
      { t: 'columns', at: 5, names: ['name'], types: [expect.any(Number)] },
      { t: 'row', at: 5, values: ['Zoë "0"'] },
      { t: 'row', at: 5, values: [null] },
      { t: 'complete', at: 5, tag: 'SELECT 3', rows: 3, unrecorded: 1, ms: 0, firstRowMs: 0 },
    ]);
  });

  it('says it is behind until what it was handed is on disk', async () => {
    const stream = await thread.open({ dir: join(root, 'behind'), id: 'behind', key, protocol: 'postgres', maxPendingBytes: 1 });
    stream.event({ t: 'start', at: 1, pad: 'x'.repeat(300_000) });
    expect(stream.behind).toBeInstanceOf(Promise);
    await stream.behind;
    expect(stream.behind).toBeUndefined();
    await stream.close();
  });

  it('tells the session when the recording cannot be written, and its close fails', async () => {
    const dir = join(root, 'gone');
    const stream = await thread.open({ dir, id: 'gone', key, protocol: 'postgres', chunkMs: 10 });
    const failed = new Promise<Error>((resolve) => (stream.onFailure = resolve));
    rmSync(dir, { recursive: true, force: true });
    stream.event({ t: 'start', at: 1, pad: 'x'.repeat(300_000) });
    expect((await failed).message).toMatch(/ENOENT/);
    expect(stream.failure).toBeInstanceOf(Error);
    await expect(stream.close()).rejects.toThrow(/ENOENT/);
  });

  it('opened without waiting and held (a CLI record): what comes before the thread opened it is kept; closed at once, it is one archive with its first file', async () => {
    // In a spool not made yet: its first record makes it.
    const dir = join(root, 'new-spool', 'now');
    const stream = thread.openNow({ dir, id: 'now', key, protocol: 'postgres', held: { name: 'spool.json', text: '{"kind":"sessions"}\n' } });
    stream.event({ t: 'start', at: 1 });
    const stage = new PostgresRecordingStage({ stream, results: 'masked', rowCap: 10, now: () => 2 });
    stage.frontend(query('select 1'));
    stage.end();
    stream.event({ t: 'end', at: 3 });
    await stream.close();
    expect(existsSync(dir)).toBe(false);
    const archive = `${dir}.tar`;
    // `tar -xf` gives the directory back: the files under its name, the first one first.
    expect(readTar(readFileSync(archive), 10).map((e) => e.name)).toEqual(['now/spool.json', 'now/records-000001.gz', 'now/SHA256SUMS.sig', 'now/SHA256SUMS']);
    expect((await recordingFiles(archive).read('spool.json'))!.toString()).toBe('{"kind":"sessions"}\n');
    const check = await verifyRecording(archive, [createPublicKey(key)], undefined, undefined, ['spool.json']);
    expect(check).toMatchObject({ ok: true, complete: true });
    const events = [];
    for await (const e of readEvents(archive, MANIFEST, RECORD_DECODERS)) events.push(e.t);
    expect(events).toEqual(['start', 'query', 'end']);
  });

  it('a held record that signs its first checkpoint goes to its directory, its first file first, and is closed there', async () => {
    const dir = join(root, 'long');
    const stream = thread.openNow({ dir, id: 'long', key, protocol: 'postgres', held: { name: 'spool.json', text: '{"kind":"sessions"}\n' }, chunkMs: 50, checkpointMs: 50, durable: false });
    stream.event({ t: 'start', at: 1 });
    await eventually(() => expect(readdirSync(dir).some((f) => f.startsWith('checkpoint-') && f.endsWith('.sig'))).toBe(true), { timeout: 10_000, interval: 20 });
    expect(readFileSync(join(dir, 'spool.json'), 'utf8')).toBe('{"kind":"sessions"}\n');
    stream.event({ t: 'end', at: 3 });
    await stream.close();
    expect(existsSync(`${dir}.tar`)).toBe(false);
    expect(readdirSync(dir).sort()).toEqual([...readdirSync(dir).filter((f) => f.startsWith('records-')), 'SHA256SUMS', 'SHA256SUMS.sig', 'spool.json'].sort());
    expect(await verifyRecording(dir, [createPublicKey(key)], undefined, undefined, ['spool.json'])).toMatchObject({ ok: true, complete: true });
  });

  it('a held record larger than a mebibyte goes to its directory before it closes', async () => {
    const dir = join(root, 'large');
    const stream = thread.openNow({ dir, id: 'large', key, protocol: 'postgres', held: { name: 'spool.json', text: '{}\n' }, chunkBytes: 256 * 1024, durable: false });
    for (let i = 0; i < 6; i++) stream.event({ t: 'start', at: i, pad: randomBytes(200_000).toString('base64') });
    await eventually(() => expect(existsSync(join(dir, 'spool.json'))).toBe(true), { timeout: 10_000, interval: 20 });
    await stream.close();
    expect(existsSync(`${dir}.tar`)).toBe(false);
    expect(await verifyRecording(dir, [createPublicKey(key)], undefined, undefined, ['spool.json'])).toMatchObject({ ok: true, complete: true, events: 6 });
  });

  it("opened without waiting, a recording that cannot be opened is the stream's failure, and its close fails", async () => {
    const file = join(root, 'a-file');
    writeFileSync(file, 'not a directory');
    const stream = thread.openNow({ dir: join(file, 'rec'), id: 'nowhere', key, protocol: 'postgres' });
    const failed = new Promise<Error>((resolve) => (stream.onFailure = resolve));
    stream.event({ t: 'start', at: 1 });
    expect((await failed).message).toMatch(/ENOTDIR|EEXIST/);
    await expect(stream.ready).rejects.toThrow();
    await expect(stream.close()).rejects.toThrow();
  });
});
