/**
 * A command's closed records wait a moment for others before they go up, so that sessions that
 * close one after another share a request; a command that ends sends what waits at once. On a
 * held clock: the upload is the only thing replaced.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { ResolvedTokenProvider } from '../../src/auth/token-provider.js';
import { CommandRecords, UPLOAD_GATHER_MS } from '../../src/client/client-records.js';
import type { CliIo } from '../../src/io.js';
import { silentLogger } from '../../src/log.js';

const uploads = vi.hoisted(() => ({ calls: [] as Array<string[]> }));
vi.mock('../../src/client/record-upload.js', async (original) => ({
  ...(await original<typeof import('../../src/client/record-upload.js')>()),
  uploadSpool: async (_spool: unknown, _target: unknown, o: { only?: Set<string> }) => {
    uploads.calls.push([...(o.only ?? [])].sort());
    return { uploaded: [], left: [], setAside: [] };
  },
}));

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'hoop-gather-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));
afterEach(() => {
  vi.useRealTimers();
  uploads.calls.length = 0;
});

function records(): CommandRecords {
  const io = { env: { HOOP_CONFIG_DIR: dir }, cwd: dir } as unknown as CliIo;
  const provider = { gateway: 'https://gw.example', source: 'profile', current: async () => ({ token: 't' }) } as unknown as ResolvedTokenProvider;
  return new CommandRecords(io, provider, silentLogger);
}

describe("a command's closed records", () => {
  it('go up together once the first has waited for others, not one request each', async () => {
    vi.useFakeTimers();
    const r = records();
    for (const id of ['a', 'b', 'c']) r.opened('sessions', id);
    r.closed('sessions', 'a');
    await vi.advanceTimersByTimeAsync(UPLOAD_GATHER_MS / 2);
    r.closed('sessions', 'b');
    expect(uploads.calls).toEqual([]);
    await vi.advanceTimersByTimeAsync(UPLOAD_GATHER_MS / 2);
    expect(uploads.calls).toEqual([['sessions/a', 'sessions/b']]);
    r.closed('sessions', 'c');
    await vi.advanceTimersByTimeAsync(UPLOAD_GATHER_MS);
    expect(uploads.calls).toEqual([['sessions/a', 'sessions/b'], ['sessions/c']]);
  });

  it('go up at once when the command ends', async () => {
    vi.useFakeTimers();
    const r = records();
    r.opened('sessions', 'd');
    r.closed('sessions', 'd');
    const finished = r.finish(() => undefined);
    await vi.advanceTimersByTimeAsync(0);
    expect(uploads.calls[0]).toEqual(['sessions/d']);
    await vi.runAllTimersAsync();
    await finished;
  });
});
