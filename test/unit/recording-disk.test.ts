/**
 * The watch of the recording disk (src/gateway/records/recording-disk.ts) on a clock and a disk of the
 * test's own: the free space is read every watchMs while a session records, and not once no
 * session records; a session that cannot refuse one statement alone is stopped under a quarter of
 * the floor, said once in the log; statements are refused meanwhile, and run again once space is back.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ErrorCode, HoopError } from '../../src/errors.js';
import { RecordingDisk } from '../../src/gateway/records/recording-disk.js';
import { createLogger } from '../../src/log.js';

const MiB = 1024 * 1024;
const FLOOR = 400 * MiB;

function disk(o: { free: number; watchMs?: number }) {
  const state = { free: o.free, reads: 0 };
  const lines: Array<Record<string, unknown>> = [];
  const log = createLogger({ level: 'debug', sink: { write: (l: string) => void lines.push(JSON.parse(l) as Record<string, unknown>) } });
  const d = new RecordingDisk({
    dir: '/recordings',
    floor: FLOOR,
    log,
    ...(o.watchMs !== undefined ? { watchMs: o.watchMs } : {}),
    freeBytes: async (dir) => {
      expect(dir).toBe('/recordings');
      state.reads++;
      return state.free;
    },
  });
  return { d, state, lines };
}

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe('RecordingDisk', () => {
  it('refuses to start what it could not record below the floor, and says how much is free', async () => {
    const { d, state } = disk({ free: FLOOR });
    await d.check('start a session');
    state.free = FLOOR - 1;
    // A reading younger than the watch interval serves the next start: no read of its own.
    await vi.advanceTimersByTimeAsync(199);
    await d.check('start a session');
    expect(state.reads).toBe(1);
    await vi.advanceTimersByTimeAsync(1);
    const e = await d.check('start a session').catch((x: unknown) => x);
    expect(state.reads).toBe(2);
    expect(e).toBeInstanceOf(HoopError);
    expect(e).toMatchObject({ code: ErrorCode.RECORDING_UNAVAILABLE });
    expect((e as HoopError).message).toContain('399 MiB free, under its floor of 400 MiB, so it cannot start a session');
  });

  it('reads the disk every watchMs while a session records, and not at all once none does', async () => {
    const { d, state } = disk({ free: FLOOR, watchMs: 200 });
    const end = d.watch();
    await vi.advanceTimersByTimeAsync(199);
    expect(state.reads).toBe(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(state.reads).toBe(1);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(state.reads).toBe(6);
    // A second session shares the one watch; the watch ends with the last.
    const endSecond = d.watch();
    await vi.advanceTimersByTimeAsync(200);
    expect(state.reads).toBe(7);
    end();
    await vi.advanceTimersByTimeAsync(200);
    expect(state.reads).toBe(8);
    endSecond();
    expect(vi.getTimerCount()).toBe(0);
    await vi.advanceTimersByTimeAsync(10_000);
    expect(state.reads).toBe(8);
  });

  it('watches every 200 ms unless told', async () => {
    const { d, state } = disk({ free: FLOOR });
    const end = d.watch();
    await vi.advanceTimersByTimeAsync(1_000);
    expect(state.reads).toBe(5);
    end();
  });

  it('stops the sessions that cannot refuse a statement under a quarter of the floor, at the next read, saying so once; statements run again once space is back', async () => {
    const { d, state, lines } = disk({ free: FLOOR, watchMs: 200 });
    const stopped: string[] = [];
    const endA = d.watch(() => stopped.push('a'));
    const endB = d.watch(() => stopped.push('b'));
    await vi.advanceTimersByTimeAsync(200);
    expect(d.stopping()).toBeUndefined();
    // Under the floor but above a quarter of it: statements still run.
    state.free = FLOOR / 4;
    await vi.advanceTimersByTimeAsync(200);
    expect(d.stopping()).toBeUndefined();
    expect(stopped).toEqual([]);
    state.free = FLOOR / 4 - 1;
    await vi.advanceTimersByTimeAsync(199);
    expect(stopped).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(stopped).toEqual(['a', 'b']);
    expect(d.stopping()).toContain('under a quarter of its floor of 400 MiB, so it runs no statement it might not be able to record');
    await vi.advanceTimersByTimeAsync(400);
    expect(lines.filter((l) => l.event === 'recording.disk-low')).toHaveLength(1);
    // A session that starts watching now is stopped at once.
    const late: string[] = [];
    const endLate = d.watch(() => late.push('late'));
    await vi.advanceTimersByTimeAsync(0);
    expect(late).toEqual(['late']);
    state.free = FLOOR;
    await vi.advanceTimersByTimeAsync(200);
    expect(d.stopping()).toBeUndefined();
    for (const end of [endA, endB, endLate]) end();
  });

  it('goes on watching when the disk cannot be read, and says so', async () => {
    const lines: Array<Record<string, unknown>> = [];
    let fail = true;
    const d = new RecordingDisk({
      dir: '/recordings',
      floor: FLOOR,
      watchMs: 200,
      log: createLogger({ level: 'debug', sink: { write: (l: string) => void lines.push(JSON.parse(l) as Record<string, unknown>) } }),
      freeBytes: async () => {
        if (fail) throw new Error('EIO');
        return 0;
      },
    });
    const stopped: string[] = [];
    const end = d.watch(() => stopped.push('s'));
    await vi.advanceTimersByTimeAsync(200);
    expect(lines.filter((l) => l.event === 'recording.disk-unreadable')).toHaveLength(1);
    expect(stopped).toEqual([]);
    fail = false;
    await vi.advanceTimersByTimeAsync(200);
    expect(stopped).toEqual(['s']);
    end();
  });
});
