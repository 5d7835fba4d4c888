/**
 * The gateway's file stores of runs and direct credentials forget what ended a day ago while they
 * run, as they do at start: a gateway up for months rewrites (at every heartbeat) and counts the
 * day's, not every one it saw.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { FileDirectStore } from '../../src/gateway/credentials/direct-credentials.js';
import { FileRunStore } from '../../src/gateway/runs/runs.js';
import { HeldClock } from '../harness/held-clock.js';
import { loggedLines, storedDirect, storedRun } from '../harness/stored-records.js';

const HOUR = 3_600_000;
let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'hoop-stores-forget-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

it('forgets a run a day after it ended, in memory, by its digests and in runs.json; an open one stays', async () => {
  const clock = new HeldClock();
  const store = await FileRunStore.open(dir, loggedLines().log, clock);
  const [ended, open, next] = [storedRun('run-aaaaaaaaaaaaaaaa', 'a'), storedRun('run-bbbbbbbbbbbbbbbb', 'b'), storedRun('run-cccccccccccccccc', 'c')];
  await store.create(ended, 10);
  await store.create(open, 10);
  await store.end(ended.id, 'ended');
  clock.advance(23 * HOUR);
  await store.heartbeat(open.id);
  expect(await store.get(ended.id)).toBeDefined();
  clock.advance(2 * HOUR);
  await store.create(next, 10);
  expect([await store.get(ended.id), await store.find('run', ended.tokenHash), await store.find('control', ended.controlHash)]).toEqual([undefined, undefined, undefined]);
  expect((JSON.parse(await readFile(join(dir, 'runs.json'), 'utf8')) as Array<{ id: string }>).map((r) => r.id).sort()).toEqual([open.id, next.id]);
  expect(await store.get(open.id)).toBeDefined();
  await store.close();
});

it('forgets a direct credential a day after it expired or ended, in memory and in direct-credentials.json', async () => {
  const clock = new HeldClock();
  const store = await FileDirectStore.open(dir, loggedLines().log, clock);
  const at = (ms: number): string => new Date(clock.now() + ms).toISOString();
  const [expiring, ended, open] = ['dc_aaaaaaaaaaaaaaaaaaaaaa', 'dc_bbbbbbbbbbbbbbbbbbbbbb', 'dc_cccccccccccccccccccccc'];
  await store.create({ ...storedDirect(expiring), expiresAt: at(HOUR) }, 10);
  await store.create(storedDirect(ended), 10);
  clock.advance(HOUR);
  await store.end(ended, 'revoked');
  clock.advance(23 * HOUR);
  await store.create(storedDirect(open), 10);
  expect(await store.get(expiring)).toBeDefined();
  expect(await store.get(ended)).toBeDefined();
  clock.advance(2 * HOUR);
  await store.create({ ...storedDirect('dc_dddddddddddddddddddddd'), expiresAt: at(HOUR) }, 10);
  expect([await store.get(expiring), await store.get(ended)]).toEqual([undefined, undefined]);
  expect((JSON.parse(await readFile(join(dir, 'direct-credentials.json'), 'utf8')) as Array<{ id: string }>).map((r) => r.id).sort()).toEqual([open, 'dc_dddddddddddddddddddddd']);
  await store.close();
});
