/**
 * WorkerQueue's deadline (the sixteenth attack: one 32 KiB shell line held the gateway's shell
 * reader for 100 s, and every other session's commands waited behind it).
 */
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { WorkerQueue } from '../../src/worker-thread.js';
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
});
