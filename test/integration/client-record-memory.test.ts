/**
 * A CLI's record of a short session costs its disk nothing when the gateway takes it in time: the
 * recording thread hands the closed record's archive to the spool, which holds it in memory (listed
 * and read as any closed record) until the time its first checkpoint would have come, then writes
 * it; a command that ends writes what is still held, and a later command uploads it. Real
 * recording thread and files; the spool's timer on a held clock.
 */
import { createPublicKey } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { CLIENT_CHECKPOINT_MS, ClientRecorder, Spool } from '../../src/recording/spool.js';
import { generateSigningKey } from '../../src/recording/sshsig.js';
import { verifyRecording } from '../../src/recording/verify.js';

let root: string;
const { privateKey: key } = generateSigningKey();

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'hoop-record-memory-'));
});
afterAll(() => rm(root, { recursive: true, force: true }));
afterEach(() => vi.useRealTimers());

/** The files of `spool`'s directory (none when it was never made). */
const onDisk = (spool: Spool): Promise<string[]> => readdir(spool.root).catch(() => []);

describe("a CLI's record of a short session", () => {
  it('is held in memory once closed, read and verified from there, and written when its first checkpoint would have come', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const spool = new Spool(join(root, 'due'));
    const recorder = new ClientRecorder({ spool, gateway: 'https://gw.example', key: async () => key });
    try {
      const stream = await recorder.session('short-000001', 'postgres');
      stream.event({ t: 'start', at: Date.now(), side: 'client' });
      stream.event({ t: 'end', at: Date.now(), reason: 'client-closed' });
      await stream.close();
      expect(await onDisk(spool)).toEqual([]);
      const [entry] = await spool.only(['sessions/short-000001'], 'https://gw.example');
      expect(entry?.status).toBe('closed');
      const files = new Map<string, Buffer>();
      for (const f of await entry!.files.names()) files.set(f, (await entry!.files.read(f))!);
      expect(await verifyRecording(files, [createPublicKey(key)], undefined, 'short-000001', ['spool.json'])).toMatchObject({ ok: true, complete: true, events: 2 });
      await vi.advanceTimersByTimeAsync(CLIENT_CHECKPOINT_MS);
      await vi.waitFor(async () => expect(await onDisk(spool)).toEqual(['sessions-short-000001.tar']), { timeout: 10_000 });
      await spool.remove(entry!);
      expect(await onDisk(spool)).toEqual([]);
    } finally {
      await recorder.stop();
    }
  });

  it('taken by the gateway before then, never reaches the disk; one still held when the command ends does', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const spool = new Spool(join(root, 'taken'));
    const recorder = new ClientRecorder({ spool, gateway: 'https://gw.example', key: async () => key });
    try {
      for (const id of ['taken-000001', 'kept-0000001']) {
        const stream = await recorder.session(id, 'postgres');
        stream.event({ t: 'start', at: Date.now(), side: 'client' });
        await stream.close();
      }
      expect(await onDisk(spool)).toEqual([]);
      const [taken] = await spool.only(['sessions/taken-000001']);
      await spool.remove(taken!);
      await spool.persist();
      expect(await onDisk(spool)).toEqual(['sessions-kept-0000001.tar']);
      await vi.advanceTimersByTimeAsync(CLIENT_CHECKPOINT_MS);
      expect(await onDisk(spool)).toEqual(['sessions-kept-0000001.tar']);
      expect((await new Spool(spool.root).entries()).map((e) => [e.meta.id, e.status])).toEqual([['kept-0000001', 'closed']]);
    } finally {
      await recorder.stop();
    }
  });
});
