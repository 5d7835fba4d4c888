/**
 * The recording format end to end: written in chunks as events come, verified by hoop, by
 * `sha256sum -c` and by `ssh-keygen -Y verify` with no hoop; every kind of tampering is named; a
 * writer that stops without closing (a crash) leaves a recording that verifies up to its last
 * checkpoint and says it is truncated; a check that starts from one before reads only the chunks
 * added since; memory stays flat for a million events.
 */
import { execFileSync } from 'node:child_process';
import { cpSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as v8 from 'node:v8';
import { runInNewContext } from 'node:vm';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { eventually } from '../harness/wait.js';
import { runCli } from '../harness/run-cli.js';
import { generateSigningKey, sshPublicKeyLine, sshSign } from '../../src/recording/sshsig.js';
import { verifyRecording } from '../../src/recording/verify.js';
import { MANIFEST, RecordingWriter, chunkName } from '../../src/recording/writer.js';

const base = mkdtempSync(join(tmpdir(), 'hoop-recording-'));
afterAll(() => rmSync(base, { recursive: true, force: true }));
const { privateKey: key } = generateSigningKey();
const other = generateSigningKey().privateKey;
let n = 0;

/** A closed recording of `count` statement events in chunks of about 2 KiB. */
async function recording(count = 200, o: { close?: boolean; checkpointEvery?: number } = {}): Promise<string> {
  const dir = join(base, `r${n++}`);
  const w = await RecordingWriter.create({ dir, id: `rec-${n}`, key, chunkBytes: 2048, chunkMs: 60_000 });
  w.append({ t: 'start', at: 1, identity: { subject: 'devin' }, connection: 'prod-db' });
  for (let i = 0; i < count; i++) {
    w.append({ t: 'statement', at: 2 + i, sql: `select email from customers where id = ${i}`, decision: 'allow' });
    if (o.checkpointEvery && i % o.checkpointEvery === o.checkpointEvery - 1) await w.checkpoint();
  }
  if (o.close === false) {
    await w.flush();
    w.abandon();
  } else {
    w.append({ t: 'end', at: 999, reason: 'client-closed' });
    await w.close();
  }
  return dir;
}

/** Swaps the first two chunks' files (and, with `andManifest`, their manifest lines, so only the chain can tell). */
function swapFirstChunks(d: string, o: { andManifest?: boolean } = {}): void {
  renameSync(join(d, chunkName(1)), join(d, 'x'));
  renameSync(join(d, chunkName(2)), join(d, chunkName(1)));
  renameSync(join(d, 'x'), join(d, chunkName(2)));
  if (!o.andManifest) return;
  const sums = readFileSync(join(d, MANIFEST), 'utf8').split('\n');
  [sums[0], sums[1]] = [sums[1]!.replace(chunkName(2), chunkName(1)), sums[0]!.replace(chunkName(1), chunkName(2))];
  writeFileSync(join(d, MANIFEST), sums.join('\n'));
}

function copy(dir: string): string {
  const to = join(base, `c${n++}`);
  cpSync(dir, to, { recursive: true });
  return to;
}

describe('recordings', () => {
  it('verifies with hoop, sha256sum -c and ssh-keygen -Y verify', async () => {
    const dir = await recording();
    const chunks = readdirSync(dir).filter((f) => f.startsWith('events-'));
    expect(chunks.length).toBeGreaterThan(3);
    expect(await verifyRecording(dir, [other, key])).toMatchObject({ ok: true, complete: true, truncated: false, chunks: chunks.length, events: 202, problems: [], unverified: [] });
    expect(execFileSync('sha256sum', ['-c', MANIFEST], { cwd: dir }).toString()).toContain(`${chunkName(1)}: OK`);
    writeFileSync(join(base, 'allowed_signers'), `gateway ${sshPublicKeyLine(key)}\n`);
    const out = execFileSync('ssh-keygen', ['-Y', 'verify', '-f', join(base, 'allowed_signers'), '-I', 'gateway', '-n', 'hoop-recording', '-s', join(dir, `${MANIFEST}.sig`)], {
      input: readFileSync(join(dir, MANIFEST)),
    });
    expect(out.toString()).toContain('Good "hoop-recording" signature');
  });

  it('names each kind of tampering', async () => {
    const dir = await recording();
    const check = async (damage: (d: string) => void) => {
      const d = copy(dir);
      damage(d);
      return verifyRecording(d, [key]);
    };
    const flipped = await check((d) => {
      const f = join(d, chunkName(2));
      const b = readFileSync(f);
      b[b.length >> 1] ^= 1;
      writeFileSync(f, b);
    });
    expect(flipped.ok).toBe(false);
    expect(flipped.problems).toContain(`${chunkName(2)} does not match its SHA-256 in SHA256SUMS (it was changed or cut short)`);

    const dropped = await check((d) => rmSync(join(d, chunkName(3))));
    expect(dropped.problems).toContain(`${chunkName(3)} is missing`);

    const swapped = await check((d) => {
      swapFirstChunks(d);
    });
    expect(swapped.problems.filter((p) => p.includes('does not match its SHA-256'))).toHaveLength(2);

    const cut = await check((d) => truncateSync(join(d, chunkName(1)), 20));
    expect(cut.problems).toContain(`${chunkName(1)} does not match its SHA-256 in SHA256SUMS (it was changed or cut short)`);

    // A manifest rewritten to match swapped chunks, signed by a key nobody trusts.
    const resigned = await check((d) => {
      swapFirstChunks(d, { andManifest: true });
      writeFileSync(join(d, `${MANIFEST}.sig`), sshSign(other, 'hoop-recording', readFileSync(join(d, MANIFEST))));
    });
    expect(resigned.problems[0]).toMatch(/^SHA256SUMS: signed by SHA256:\S+, which is not a trusted key$/);

    // The same, signed by the trusted key (as someone holding it could): the chain still shows it.
    const chained = await check((d) => {
      swapFirstChunks(d, { andManifest: true });
      writeFileSync(join(d, `${MANIFEST}.sig`), sshSign(key, 'hoop-recording', readFileSync(join(d, MANIFEST))));
    });
    expect(chained.problems).toContain(`${chunkName(1)} says it is chunk 2, not 1`);
    expect(chained.problems).toContain(`${chunkName(2)} does not follow the chunk before it (the chain is broken)`);

    const extra = await check((d) => cpSync(join(d, chunkName(1)), join(d, chunkName(99))));
    expect(extra.problems).toContain(`${chunkName(99)} is not named by SHA256SUMS: no part of the recording`);

    const unsigned = await check((d) => rmSync(join(d, `${MANIFEST}.sig`)));
    expect(unsigned.problems).toContain('SHA256SUMS.sig is missing');

    // A signed chunk made to inflate without bound (80 MiB of zeros in 80 KiB): refused, not inflated.
    const bomb = await check((d) => {
      const data = gzipSync(Buffer.concat([Buffer.from('{"t":"chunk","recording":"x","seq":1,"prev":"0"}\n'), Buffer.alloc(80 * 1024 * 1024)]));
      expect(data.length).toBeLessThan(200 * 1024);
      writeFileSync(join(d, chunkName(1)), data);
      const sums = readFileSync(join(d, MANIFEST), 'utf8').split('\n');
      sums[0] = `${createHash('sha256').update(data).digest('hex')}  ${chunkName(1)}`;
      writeFileSync(join(d, MANIFEST), sums.join('\n'));
      writeFileSync(join(d, `${MANIFEST}.sig`), sshSign(key, 'hoop-recording', readFileSync(join(d, MANIFEST))));
    });
    expect(bomb.problems).toContain(`${chunkName(1)} decompresses to more than 64 MiB: not a chunk hoop writes`);
  });

  it('with what a check before verified, reads only the chunks a later manifest adds to it, and all of them for a manifest that does not begin with it', async () => {
    const dir = await recording();
    const whole = await verifyRecording(dir, [key]);
    const lines = readFileSync(join(dir, MANIFEST), 'utf8')
      .split('\n')
      .filter((l) => l !== '');
    expect(lines.length).toBeGreaterThan(3);
    const flip = (d: string, seq: number): void => {
      const b = readFileSync(join(d, chunkName(seq)));
      b[b.length >> 1] ^= 1;
      writeFileSync(join(d, chunkName(seq)), b);
    };
    // Verified before: the first two chunks, said to hold 50 events.
    const before = { manifest: `${lines.slice(0, 2).join('\n')}\n`, events: 50, id: whole.id! };
    const events12 = whole.events - (await verifyRecording(dir, [key], { ...before, events: 0 })).events;
    expect(await verifyRecording(dir, [key], before)).toMatchObject({ ok: true, chunks: lines.length, events: whole.events - events12 + 50, id: whole.id });
    // A chunk after them is read as ever ...
    const later = copy(dir);
    flip(later, 3);
    expect((await verifyRecording(later, [key], before)).problems).toEqual([`${chunkName(3)} does not match its SHA-256 in SHA256SUMS (it was changed or cut short)`]);
    // ... and the ones before it are not: the holder vouches that they cannot have changed since.
    const earlier = copy(dir);
    flip(earlier, 1);
    expect((await verifyRecording(earlier, [key], before)).ok).toBe(true);
    // A manifest that names other bytes for them is read whole.
    const other = { ...before, manifest: `${'0'.repeat(64)}  ${chunkName(1)}\n${lines[1]}\n` };
    expect((await verifyRecording(earlier, [key], other)).problems).toEqual([`${chunkName(1)} does not match its SHA-256 in SHA256SUMS (it was changed or cut short)`]);
    expect(await verifyRecording(dir, [key], other)).toMatchObject({ ok: true, events: whole.events });
  });

  it("writes each file once: a second writer of the same recording fails, saying so, and leaves the first one's files as they were", async () => {
    const dir = join(base, `r${n++}`);
    const first = await RecordingWriter.create({ dir, id: 'twice', key, chunkMs: 60_000 });
    first.append({ t: 'query', at: 1, sql: 'select 1' });
    await first.close();
    const before = new Map(readdirSync(dir).map((f) => [f, readFileSync(join(dir, f))]));
    const failures: Error[] = [];
    const second = await RecordingWriter.create({ dir, id: 'twice', key, chunkMs: 60_000, onFailure: (e) => failures.push(e) });
    second.append({ t: 'query', at: 2, sql: 'select 2' });
    await second.close().catch(() => undefined);
    expect(failures.map((e) => (e as NodeJS.ErrnoException).code)).toContain('EEXIST');
    expect(
      new Map(
        readdirSync(dir)
          .filter((f) => !f.endsWith('.tmp'))
          .map((f) => [f, readFileSync(join(dir, f))]),
      ),
    ).toEqual(before);
    expect((await verifyRecording(dir, [key], undefined, 'twice')).ok).toBe(true);
  });

  it('a writer that stops without closing leaves a recording verified up to its last checkpoint, marked truncated', async () => {
    const dir = await recording(200, { close: false, checkpointEvery: 60 });
    const files = readdirSync(dir);
    expect(files).not.toContain(MANIFEST);
    expect(files.filter((f) => f.startsWith('checkpoint-') && f.endsWith('.SHA256SUMS'))).toHaveLength(1); // older ones removed
    const r = await verifyRecording(dir, [key]);
    expect(r).toMatchObject({ ok: true, complete: false, truncated: true });
    expect(r.manifest).toMatch(/^checkpoint-\d{6}\.SHA256SUMS$/);
    expect(r.events).toBe(181); // start + 180 statements at the third checkpoint
    expect(r.unverified.length).toBeGreaterThan(0);
    // A checkpoint whose manifest never reached the disk: the one before it holds.
    const d = copy(dir);
    writeFileSync(join(d, 'checkpoint-999999.SHA256SUMS.sig'), 'half-written');
    expect((await verifyRecording(d, [key])).manifest).toBe(r.manifest);
    // hoop sessions verify says so and fails: what came after the checkpoint is no evidence, unless --accept-truncated accepts it.
    const args = ['sessions', 'verify', '--file', dir, '--key', sshPublicKeyLine(key)];
    const cut = await runCli(args, { HOME: base }, base);
    expect(cut).toMatchObject({ code: 1, stdout: expect.stringContaining('truncated at its last checkpoint') });
    expect(cut.stderr).toContain('--accept-truncated');
    expect(await runCli([...args, '--accept-truncated'], { HOME: base }, base)).toMatchObject({ code: 0 });
  });

  it('is complete only as its signed content says: a checkpoint saved under the final name, its tail dropped, verifies as cut short', async () => {
    const whole = await verifyRecording(await recording(200, { checkpointEvery: 60 }), [key]);
    expect(whole).toMatchObject({ ok: true, complete: true, truncated: false });
    const dir = await recording(200, { close: false, checkpointEvery: 60 });
    const checkpoint = readdirSync(dir).find((f) => /^checkpoint-\d{6}\.SHA256SUMS$/.test(f))!;
    // What an attacker with the files can do: the checkpoint's pair named as the final manifest, the unsigned tail removed.
    renameSync(join(dir, checkpoint), join(dir, MANIFEST));
    renameSync(join(dir, `${checkpoint}.sig`), join(dir, `${MANIFEST}.sig`));
    const named = new Set(
      readFileSync(join(dir, MANIFEST), 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((l) => l.split(/\s+/)[1]),
    );
    for (const f of readdirSync(dir)) if (f.startsWith('events-') && !named.has(f)) rmSync(join(dir, f));
    expect(await verifyRecording(dir, [key])).toMatchObject({ ok: true, complete: false, truncated: true });
    // sha256sum and ssh-keygen still pass (the files are the writer's): the seal is what says it ended, and it is not there.
    const lastChunk = [...named].sort().at(-1)!;
    expect(execFileSync('sh', ['-c', `zcat ${join(dir, lastChunk)} | tail -n 1`], { encoding: 'utf8' })).not.toContain('"t":"sealed"');
  });

  it('signs what was written last within the checkpoint interval (and a tick) even when nothing comes after it', async () => {
    const dir = join(base, `r${n++}`);
    const w = await RecordingWriter.create({ dir, id: `rec-${n}`, key, chunkMs: 50, checkpointMs: 300 });
    try {
      w.append({ t: 'start', at: Date.now() } as never);
      await eventually(async () => expect((await verifyRecording(dir, [key])).events).toBe(1), { timeout: 60_000, interval: 25 });
      // Within the interval of that first checkpoint: the next event's chunk lands on disk before a checkpoint may be signed.
      w.append({ t: 'q', at: Date.now(), sql: 'select 1' } as never);
      // Nothing more comes: the idle writer still signs it.
      await eventually(async () => expect(await verifyRecording(dir, [key])).toMatchObject({ ok: true, events: 2, unverified: [] }), { timeout: 60_000, interval: 25 });
    } finally {
      w.abandon();
    }
  });

  it('keeps memory flat for a million events (the live heap, sampled after a full GC)', async () => {
    v8.setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const dir = join(base, 'big');
    const w = await RecordingWriter.create({ dir, id: 'big', key });
    gc();
    const before = process.memoryUsage().heapUsed;
    let peak = 0;
    let bytes = 0;
    for (let i = 0; i < 1_000_000; i++) {
      const event = { t: 'row', at: i, values: [String(i), '[redacted]', '**** **** **** 1111'] };
      bytes += 60;
      if (!w.append(event)) await w.drained();
      if (i % 100_000 === 0) {
        gc();
        peak = Math.max(peak, process.memoryUsage().heapUsed - before);
      }
    }
    await w.close();
    expect(bytes).toBeGreaterThan(50_000_000);
    expect(peak / 1024 / 1024).toBeLessThan(16); // 4 MiB may wait for the disk, then append() says stop
    const r = await verifyRecording(dir, [key]);
    expect(r).toMatchObject({ ok: true, events: 1_000_000 });
  });
});
