/**
 * Strict recording, on a real full disk: the gateway's data directory is a small tmpfs (mounted
 * here, so as root, as CI runs), and something else fills it while a client works through
 * `hoop connect` with the `pg` driver. Below a quarter of `recording.minFreeBytes` no statement
 * runs (53100, nothing reaches the server), every statement the client saw succeed is in the
 * recording, and the session goes on once space is freed. A disk filled to the last byte ends
 * the session; what was sent after never runs. A session that cannot refuse one statement alone
 * (no policy judges its statements) ends when the disk runs low.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pgClient } from '../harness/clients.js';
import { PolicyGitRepo } from '../harness/policy-git.js';
import { connectionYaml } from '../harness/postgres.js';
import type { CliResult } from '../harness/run-cli.js';
import { startStack, type HoopStack } from '../harness/stack.js';
import { eventually } from '../harness/wait.js';

const root = process.getuid?.() === 0;
const MiB = 1024 * 1024;
let stack: HoopStack;
let repo: PolicyGitRepo;
let data: string;
const mounted: string[] = [];

/** A new 40 MiB tmpfs, unmounted after the tests. */
function smallDisk(): string {
  const dir = mkdtempSync(join(tmpdir(), 'hoop-disk-full-'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=40m,mode=0700', 'tmpfs', dir]);
  mounted.push(dir);
  return dir;
}

const free = (dir: string): number => {
  const s = statfsSync(dir);
  return s.bavail * s.bsize;
};

/** Fills the data disk from outside the gateway until `left` bytes are free (0: every byte). */
function fill(name: string, left: number, dir = data): void {
  const file = join(dir, name);
  if (left > 0) return writeFileSync(file, Buffer.alloc(Math.max(0, free(dir) - left)));
  try {
    for (;;) writeFileSync(file, Buffer.alloc(256 * 1024), { flag: 'a' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
  }
}

async function hoop(argv: string[]): Promise<CliResult> {
  return stack.run([...argv, '--gateway', stack.gateway.url, '--ca-file', stack.pki.caFile], { HOOP_TOKEN: await stack.token('alice') });
}

async function rows(): Promise<number[]> {
  return (await stack.pg.psql('select n from notes order by n', { database: 'app' })).split('\n').filter(Boolean).map(Number);
}

describe.skipIf(!root)('a full recording disk (strict recording)', () => {
  beforeAll(async () => {
    data = smallDisk();
    repo = new PolicyGitRepo('hoop-disk-full-');
    stack = await startStack({
      extraConfig: `dataDir: ${data}\nrecording: { minFreeBytes: 16MiB }`,
      policy: ({ pg }) => {
        repo.commit(`version: 1
connections:
${connectionYaml(pg, { name: 'app', password: '${env:APP_PASSWORD}' })}access:
  - { name: people, subjects: [alice], connections: [app], mode: read-write }
`);
        return repo.gatewayBlock(['${env:APP_*}']);
      },
    });
    await stack.pg.psql('create table notes(n int); grant all on notes to public', { database: 'app' });
  });

  afterAll(async () => {
    await stack?.close();
    repo?.remove();
    for (const dir of mounted) {
      execFileSync('umount', ['-l', dir]);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses statements it could not record, records every one that ran, and goes on once there is room', async () => {
    const c = await stack.connect('app', await stack.token('alice'));
    const client: pg.Client = await pgClient(c.info);
    const ran: number[] = [];
    const insert = async (n: number): Promise<string | undefined> => {
      try {
        await client.query('insert into notes values ($1)', [n]);
        ran.push(n);
        return undefined;
      } catch (err) {
        return `${(err as { code?: string }).code}: ${(err as Error).message}`;
      }
    };
    expect(await insert(1)).toBeUndefined();
    fill('filler', 3 * MiB); // under a quarter of the 16 MiB floor
    let n = 1;
    const refusal = await eventually(
      async () => {
        const e = await insert(++n);
        expect(e).toBeDefined();
        return e!;
      },
      { timeout: 60_000, interval: 50 },
    );
    expect(refusal).toMatch(/^53100: hoop: the gateway's data disk has \d MiB free, under a quarter of its floor of 16 MiB/);
    expect(await rows()).toEqual(ran);
    // Nor is a snapshot of the running session written to the low disk to show it: that is refused, saying why.
    const running = (JSON.parse((await hoop(['sessions', 'ls', '--json'])).stdout) as { sessions: Array<{ id: string; endedAt?: string }> }).sessions.find((x) => x.endedAt === undefined)!;
    const show = await hoop(['sessions', 'show', running.id]);
    expect(show.code).not.toBe(0);
    expect(show.stderr).toContain('so it cannot write a snapshot of a running session');

    rmSync(join(data, 'filler'));
    const after = await eventually(
      async () => {
        const k = ++n;
        expect(await insert(k)).toBeUndefined();
        return k;
      },
      { timeout: 60_000, interval: 50 },
    );
    expect(await rows()).toEqual(ran);
    expect(ran.at(-1)).toBe(after);
    await client.end();
    await c.stop();

    const id = await eventually(
      async () => {
        const sessions = (JSON.parse((await hoop(['sessions', 'ls', '--json'])).stdout) as { sessions: Array<{ id: string; endedAt?: string }> }).sessions;
        expect(sessions[0]?.endedAt).toBeDefined();
        return sessions[0]!.id;
      },
      { timeout: 60_000, interval: 100 },
    );
    const verify = await hoop(['sessions', 'verify', id]);
    expect(verify.code, verify.stderr).toBe(0);
    const replay = (await hoop(['sessions', 'replay', id, '--no-tty'])).stdout;
    expect(replay.split('insert into notes values ($1)').length - 1).toBeGreaterThanOrEqual(ran.length);
  });

  it('ends a session once its recording cannot be written at all; what is sent after never runs', async () => {
    const c = await stack.connect('app', await stack.token('alice'));
    const client: pg.Client = await pgClient(c.info);
    client.on('error', () => undefined);
    const before = await rows();
    const ran: number[] = [];
    fill('everything', 0);
    let n = 1000;
    const stopped = await eventually(
      async () => {
        const k = ++n;
        const r = await client.query('insert into notes values ($1)', [k]).then(
          () => undefined,
          (err: Error & { code?: string }) => `${err.code ?? ''} ${err.message}`,
        );
        if (r === undefined) ran.push(k);
        expect(r).toBeDefined();
        return r!;
      },
      { timeout: 60_000, interval: 50 },
    );
    expect(stopped).toMatch(/^(53100|58030) hoop: |Connection terminated/);
    expect(await rows()).toEqual([...before, ...ran]);
    await c.stop();
    rmSync(join(data, 'everything'));
  });

  it('ends a session no policy judges (it cannot refuse one statement alone) once the disk runs low', async () => {
    const dir = smallDisk();
    const plain = await startStack({ extraConfig: `dataDir: ${dir}\nrecording: { minFreeBytes: 16MiB }` });
    try {
      const c = await plain.connect('app', await plain.token('alice'));
      const client: pg.Client = await pgClient(c.info);
      let fatal = '';
      client.on('error', (err) => (fatal ||= err.message));
      expect((await client.query('select 1 as one')).rows).toEqual([{ one: 1 }]);
      fill('filler', 3 * MiB, dir);
      const ended = await eventually(
        async () => {
          const r = await client.query('select 1').then(
            () => undefined,
            (err: Error) => err.message,
          );
          expect(r).toBeDefined();
          return r!;
        },
        { timeout: 60_000, interval: 50 },
      );
      expect(`${fatal} ${ended}`).toContain("hoop: the gateway's data disk is nearly full and this session can no longer be recorded, so the gateway ended it");
      await c.stop();
    } finally {
      await plain.close();
    }
  });
});
