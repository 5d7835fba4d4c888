/**
 * WorkerQueue's deadline (the sixteenth attack: one 32 KiB shell line held the gateway's shell
 * reader for 100 s, and every other session's commands waited behind it).
 */
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { startWorker, threadCpuMs, WALL_TIMES, WorkerQueue } from '../../src/worker-thread.js';
import { HeldClock } from '../harness/held-clock.js';

/** A worker that echoes each message, but never answers `hang`. */
const echo = (): Worker => new Worker("const { parentPort } = require('node:worker_threads'); parentPort.on('message', (m) => { if (m !== 'hang') parentPort.postMessage(m); });", { eval: true });

describe('a WorkerQueue with a deadline', () => {
  it('answers a message held past it as lost, ends that worker, and serves the next on a new one', async () => {
    const clock = new HeldClock();
    const started: Worker[] = [];
    const queue = new WorkerQueue<string, string>(
      () => {
        const w = echo();
        started.push(w);
        return w;
      },
      (why) => `lost: ${why}`,
      { ms: 5000, clock },
    );
    const hung = queue.ask('hang', 'mallory');
    const after = queue.ask('ls', 'alice');
    await expect.poll(() => clock.pending).toBe(1);
    expect(clock.fire(5000)).toBe(1);
    expect(await hung).toBe('lost: it took more than 5 s');
    expect(await after).toBe('ls');
    expect(started).toHaveLength(2);
    await expect.poll(() => started[0]!.threadId).toBe(-1);
    await started[1]!.terminate();
  });

  it("counts the worker's CPU time, not the time its line waited: a thread starting or starved is not cut, until six times the deadline", async () => {
    const clock = new HeldClock();
    let used: number | 'starting' = 'starting';
    const queue = new WorkerQueue<string, string>(echo, (why) => `lost: ${why}`, { ms: 5000, clock, cpu: () => used });
    const hung = queue.ask('hang');
    await expect.poll(() => clock.pending).toBe(1);
    // Still starting when its time is up: it has not spent any on the line.
    expect(clock.advance(5000)).toBe(1);
    expect(clock.pending).toBe(1);
    // 1 s of CPU in 10 s: 4 s left (the held clock runs on with real time too: a test stops short of a due time, never a millisecond before it).
    used = 1000;
    expect(clock.advance(5000)).toBe(1);
    expect(clock.advance(3000)).toBe(0);
    used = 5000;
    expect(clock.advance(1000)).toBe(1);
    expect(await hung).toBe('lost: it took more than 5 s');
    // A line the machine starves meets the wall's end.
    used = 0;
    const starved = queue.ask('hang');
    await expect.poll(() => clock.pending).toBe(1);
    for (let waited = 0; waited < 5000 * WALL_TIMES; waited += 5000) clock.advance(5000);
    expect(await starved).toBe('lost: it took more than 5 s');
    expect(clock.pending).toBe(0);
  });

  it('reads the CPU time of a worker it started, which grows while the worker spins', async () => {
    const w = startWorker(import.meta.url, '../fixtures/cpu-thread');
    try {
      await expect.poll(() => threadCpuMs(w), { timeout: 60_000 }).toEqual(expect.any(Number));
      const before = threadCpuMs(w) as number;
      const stop = new Int32Array(new SharedArrayBuffer(4));
      w.postMessage(stop);
      await expect.poll(() => (threadCpuMs(w) as number) - before, { timeout: 60_000 }).toBeGreaterThan(100);
      Atomics.store(stop, 0, 1);
    } finally {
      await w.terminate();
    }
    const unknown = echo();
    expect(threadCpuMs(unknown)).toBeUndefined();
    await unknown.terminate();
  });
});
