/**
 * The recording journal (src/recording/journal.ts) and the per-session form it is cut into
 * (src/recording/record-chunks.ts): sessions on one journal write no file of their own while they
 * run, each is cut whole and sealed when it closes, and what a crash leaves is recovered up to the
 * last commit, and no further than the chain and the commit's signature bind.
 */
import { execFileSync } from 'node:child_process';
import { createHash, generateKeyPairSync, pbkdf2 } from 'node:crypto';
import { appendFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { gunzipSync, gzipSync } from 'node:zlib';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RECORD_DECODERS } from '../../src/lanes/record-decoders.js';
import { CLIENT } from '../../src/postgres/pipeline/recording/records.js';
import { Journal } from '../../src/recording/journal.js';
import { recoverJournals } from '../../src/recording/journal-recovery.js';
import { readEvents } from '../../src/recording/read.js';
import { gzipChunk } from '../../src/recording/chunk-gzip.js';
import { cutRecording } from '../../src/recording/record-chunks.js';
import { eventRecord, NO_PREVIOUS, RECORDING_NAMESPACE } from '../../src/recording/writer.js';
import { sshSign } from '../../src/recording/sshsig.js';
import { HEADER, RecordingThread } from '../../src/recording/thread.js';
import { verifyRecording } from '../../src/recording/verify.js';

const { privateKey: key } = generateKeyPairSync('ed25519');
const { privateKey: otherKey } = generateKeyPairSync('ed25519');
let root: string;

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'hoop-journal-'));
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

/** A simple Query message as the client sends it. */
function query(sql: string): Buffer {
  const body = Buffer.from(`${sql}\0`);
  const m = Buffer.alloc(5 + body.length);
  m[0] = 0x51;
  m.writeUInt32BE(4 + body.length, 1);
  body.copy(m, 5);
  return m;
}

/** One record of `kind` holding `bytes`. */
function record(kind: number, at: number, bytes: Buffer): Buffer {
  const r = Buffer.alloc(HEADER + bytes.length);
  r[0] = kind;
  r.writeUInt32LE(bytes.length, 1);
  r.writeDoubleLE(at, 5);
  bytes.copy(r, HEADER);
  return r;
}

async function events(dir: string, manifest: string): Promise<Array<Record<string, unknown>>> {
  const out: Array<Record<string, unknown>> = [];
  for await (const e of readEvents(dir, manifest, RECORD_DECODERS)) out.push(e);
  return out;
}

describe('the recording thread with a journal', () => {
  it('writes no file per session while it runs, then cuts each session whole: it verifies, complete, and reads back as events', async () => {
    const thread = new RecordingThread({ flushMs: 20 });
    const journal = join(root, 'journal');
    const a = await thread.open({ dir: join(root, 'a'), id: 'session-a', key, journal, protocol: 'postgres', checkpointMs: 50 });
    const b = await thread.open({ dir: join(root, 'b'), id: 'session-b', key, journal, protocol: 'postgres', checkpointMs: 50 });
    a.event({ t: 'start', at: 1 });
    b.event({ t: 'start', at: 2 });
    for (let i = 0; i < 200; i++) {
      const q = query(`select ${i}`);
      a.record(CLIENT, 10 + i, q, 0, q.length);
    }
    const q = query('select now()');
    b.record(CLIENT, 5, q, 0, q.length);
    // Both on one journal, none with a file of its own.
    await expect.poll(() => statSync(join(journal, readdirSync(journal)[0]!)).size, { interval: 10 }).toBeGreaterThan(200 * 20);
    expect(readdirSync(journal)).toHaveLength(1);
    expect(() => readdirSync(join(root, 'a'))).toThrow();
    const snap = join(root, 'snap');
    await a.snapshot(snap);
    expect(await verifyRecording(snap, [key])).toMatchObject({ ok: true, truncated: true, id: 'session-a' });

    a.event({ t: 'end', at: 1000, reason: 'client-terminated' });
    await a.close();
    await b.close();
    for (const [dir, id] of [
      [join(root, 'a'), 'session-a'],
      [join(root, 'b'), 'session-b'],
    ] as const) {
      expect(await verifyRecording(dir, [key])).toMatchObject({ ok: true, complete: true, id });
    }
    const got = await events(join(root, 'a'), 'SHA256SUMS');
    expect(got[0]).toMatchObject({ t: 'start' });
    expect(got.filter((e) => e.t === 'query').map((e) => e.sql)).toEqual(Array.from({ length: 200 }, (_, i) => `select ${i}`));
    expect(got.at(-1)).toMatchObject({ t: 'end', reason: 'client-terminated' });
    expect((await events(join(root, 'b'), 'SHA256SUMS')).map((e) => e.t)).toEqual(['start', 'query']);
    // Every session on it cut: the journal stays for the next session a moment later, then goes once nothing opens for a few intervals.
    const kept = readdirSync(journal);
    expect(kept).toHaveLength(1);
    const c = await thread.open({ dir: join(root, 'c'), id: 'session-c', key, journal, protocol: 'postgres', checkpointMs: 50 });
    c.event({ t: 'start', at: 3 });
    await c.close();
    expect(readdirSync(journal)).toEqual(kept);
    expect(await verifyRecording(join(root, 'c'), [key])).toMatchObject({ ok: true, complete: true, id: 'session-c' });
    await expect.poll(() => readdirSync(journal), { timeout: 5000, interval: 20 }).toEqual([]);
    await thread.stop();
  });

  it('cuts the sessions that end together and syncs them as one group: each closes complete, and only then does its journal let it go', async () => {
    const thread = new RecordingThread({ flushMs: 20 });
    const journal = join(root, 'journal');
    const dirs = Array.from({ length: 5 }, (_, i) => join(root, `s${i}`));
    const streams = await Promise.all(dirs.map((dir, i) => thread.open({ dir, id: `session-${i}`, key, journal, protocol: 'postgres', checkpointMs: 20 })));
    streams.forEach((s, i) => s.event({ t: 'start', at: i }));
    // Committed: a crash from here on recovers each session up to its start.
    await expect.poll(() => recoverJournals(journal, [key]).sessions.length, { interval: 5 }).toBe(5);
    await Promise.all(streams.map((s) => s.close()));
    expect(recoverJournals(journal, [key]).sessions).toEqual([]);
    for (const [i, dir] of dirs.entries()) expect(await verifyRecording(dir, [key])).toMatchObject({ ok: true, complete: true, id: `session-${i}` });
    await thread.stop();
  });

  it('a stop removes the journals that hold no open recording, and keeps one that does, as a crash leaves it', async () => {
    const thread = new RecordingThread({ flushMs: 20 });
    const done = join(root, 'done-journal');
    const open = join(root, 'open-journal');
    const a = await thread.open({ dir: join(root, 'a'), id: 'session-a', key, journal: done, protocol: 'postgres', checkpointMs: 60_000 });
    const b = await thread.open({ dir: join(root, 'b'), id: 'session-b', key, journal: open, protocol: 'postgres', checkpointMs: 60_000 });
    a.event({ t: 'start', at: 1 });
    await a.close();
    b.event({ t: 'start', at: 2 });
    expect(readdirSync(done)).toHaveLength(1);
    await thread.stop();
    expect(readdirSync(done)).toEqual([]);
    expect(readdirSync(open)).toHaveLength(1);
  });

  it('a cut the disk does not take is tried again each interval, sealed, once it does', async () => {
    const thread = new RecordingThread({ flushMs: 20 });
    const blocked = join(root, 'blocked');
    writeFileSync(blocked, 'a file where the recording goes');
    const s = await thread.open({ dir: join(blocked, 'rec'), id: 'session-c', key, journal: join(root, 'journal'), protocol: 'postgres', checkpointMs: 50 });
    s.event({ t: 'start', at: 1 });
    await expect(s.close()).rejects.toThrow();
    rmSync(blocked);
    await expect.poll(() => verifyRecording(join(blocked, 'rec'), [key]), { timeout: 5000, interval: 50 }).toMatchObject({ ok: true, complete: true, id: 'session-c' });
    await expect.poll(() => readdirSync(join(root, 'journal')), { timeout: 5000, interval: 50 }).toEqual([]);
    await thread.stop();
  });
});

describe('recovering a journal', () => {
  const meta = (id: string): { id: string; dir: string; protocol: string } => ({ id, dir: join(root, id), protocol: 'postgres' });
  const block = (sql: string, at = 1): Buffer => record(CLIENT, at, query(sql));
  const file = (): string => join(root, 'journal', readdirSync(join(root, 'journal'))[0]!);
  /** The journal with the last character of `text` changed, as a disk or a hand could change it. */
  const changeOnDisk = (text: string): void => {
    const bytes = readFileSync(file());
    bytes[bytes.indexOf(Buffer.from(text)) + text.length - 1] ^= 0x0f;
    writeFileSync(file(), bytes);
  };
  /** A journal of small files (2,000 bytes) where session 1 (`long`) wrote one block, then session 2 (`busy`) four that rotated it thrice; committed. */
  const longBesideBusy = async (dir: string, durable: boolean): Promise<Journal> => {
    const j = new Journal(dir, key, durable, 2000);
    j.open(1, meta('long'));
    j.append(1, block('select 1'));
    j.open(2, meta('busy'));
    for (let i = 0; i < 4; i++) j.append(2, block(String(i).repeat(1500)));
    await j.commit();
    return j;
  };
  /** The SQL of each block (one Query record each). */
  const sqlOf = (blocks: Buffer[]): string[] => blocks.map((b) => b.subarray(HEADER + 5, -1).toString());

  it('cuts each session it never cut up to its last commit, as a truncated recording that verifies; a session cut already is left', async () => {
    const j = new Journal(join(root, 'journal'), key, true);
    j.open(1, meta('one'));
    j.open(2, meta('two'));
    j.append(1, eventRecord({ t: 'start', at: 1 }));
    j.append(1, block('select 1'));
    j.append(2, block('select 2'));
    await j.commit();
    j.append(1, block('select after the commit'));
    await cutRecording({ ...meta('two'), path: meta('two').dir, key, sealed: true, durable: false }, j.blocks(2));
    j.closed(2);

    const { sessions, closed, done } = recoverJournals(join(root, 'journal'), [key]);
    expect(sessions.map((s) => s.meta.id)).toEqual(['one']);
    // The one cut already is said closed (its CLOSE is not signed: the caller checks its recording verifies in full).
    expect(closed.map((s) => s.meta.id)).toEqual(['two']);
    await cutRecording({ ...sessions[0]!.meta, path: sessions[0]!.meta.dir, key, sealed: false, durable: false }, sessions[0]!.blocks());
    done();
    expect(readdirSync(join(root, 'journal'))).toEqual([]);
    expect(await verifyRecording(join(root, 'one'), [key])).toMatchObject({ ok: true, truncated: true, complete: false, events: 2 });
    expect((await events(join(root, 'one'), readdirSync(join(root, 'one')).find((f) => f.endsWith('.SHA256SUMS'))!)).map((e) => e.sql ?? e.t)).toEqual(['start', 'select 1']);
  });

  it('recovers no further than the chain binds: a block changed after a commit, or a commit signed by another key, is not taken', async () => {
    const j = new Journal(join(root, 'journal'), key, false);
    j.open(1, meta('one'));
    j.append(1, block('select 1'));
    await j.commit();
    j.append(1, block('select 2'));
    await j.commit();
    // The second block, changed on disk: the second commit no longer matches; the first still does.
    changeOnDisk('select 2');
    let { sessions } = recoverJournals(join(root, 'journal'), [key]);
    expect(sqlOf([...sessions[0]!.blocks()])).toEqual(['select 1']);
    // Trusting another key: no commit verifies, nothing is recovered.
    ({ sessions } = recoverJournals(join(root, 'journal'), [otherKey]));
    expect(sessions).toEqual([]);
  });

  it('keeps what a commit in a later journal binds: a session idle since its commit is recovered after the journals rotated and the file of that commit lost its other sessions', async () => {
    const j = new Journal(join(root, 'journal'), key, false, 2000);
    j.open(1, meta('idle'));
    j.open(2, meta('busy'));
    j.append(1, block('select 1'));
    j.append(2, block('x'.repeat(3000)));
    await j.commit(); // rotates: the commit naming both is the next file's first entry
    j.append(2, block('y'.repeat(3000)));
    j.append(2, block('z')); // rotates again: the file of the commit holds nothing of the idle session but that commit
    await cutRecording({ ...meta('busy'), path: meta('busy').dir, key, sealed: true, durable: false }, j.blocks(2));
    j.closed(2);
    const { sessions } = recoverJournals(join(root, 'journal'), [key]);
    expect(sessions.map((s) => [s.meta.id, s.count])).toEqual([['idle', 1]]);
    // Once the idle one is cut too, no journal is left but the one written now.
    await cutRecording({ ...meta('idle'), path: meta('idle').dir, key, sealed: true, durable: false }, j.blocks(1));
    expect(j.closed(1).length).toBeGreaterThan(0);
    expect(readdirSync(join(root, 'journal'))).toHaveLength(1);
  });

  it('cuts nothing of a session whose blocks changed on disk since they were written: the chain breaks, and recovery takes what its commits still bind', async () => {
    const j = new Journal(join(root, 'journal'), key, false);
    j.open(1, meta('one'));
    j.append(1, block('select 1'));
    await j.commit();
    j.append(1, block('select 2'));
    changeOnDisk('select 2');
    await expect(cutRecording({ ...meta('one'), path: meta('one').dir, key, sealed: true, durable: false }, j.blocks(1))).rejects.toThrow('changed on disk since they were written');
    expect(readdirSync(join(root, 'one')).filter((f) => f.includes('SHA256SUMS'))).toEqual([]);
    const { sessions } = recoverJournals(join(root, 'journal'), [key]);
    expect(sqlOf([...sessions[0]!.blocks()])).toEqual(['select 1']);
  });

  it('reads a recovered session again as it is cut, and cuts nothing of it when its blocks changed on disk since they were recovered', async () => {
    const j = new Journal(join(root, 'journal'), key, false);
    j.open(1, meta('one'));
    j.append(1, block('select 1'));
    j.append(1, block('select 2'));
    await j.commit();
    const { sessions } = recoverJournals(join(root, 'journal'), [key]);
    expect(sessions[0]!.count).toBe(2);
    changeOnDisk('select 2');
    await expect(cutRecording({ ...sessions[0]!.meta, path: sessions[0]!.meta.dir, key, sealed: false, durable: false }, sessions[0]!.blocks())).rejects.toThrow(
      'changed on disk since they were recovered',
    );
    expect(readdirSync(join(root, 'one')).filter((f) => f.includes('SHA256SUMS'))).toEqual([]);
  });

  it('moves a long session to the end of the journal so the files only it held go; a crash before the next commit recovers its earlier commit', async () => {
    const dir = join(root, 'journal');
    const j = await longBesideBusy(dir, false);
    await cutRecording({ ...meta('busy'), path: meta('busy').dir, key, sealed: true, durable: false }, j.blocks(2));
    j.closed(2);
    // The long session alone keeps the first file, though nearly all of it is the busy one's.
    const first = readdirSync(dir).sort()[0]!;
    expect(readdirSync(dir).length).toBeGreaterThan(1);
    expect(await j.compact()).toEqual([]);
    expect(recoverJournals(dir, [key]).sessions.map((s) => [s.meta.id, s.count])).toEqual([['long', 1]]);
    await j.commit();
    expect(await j.compact()).toContain(first);
    expect(readdirSync(dir)).not.toContain(first);
    const { sessions } = recoverJournals(dir, [key]);
    expect(sessions.map((s) => s.meta.id)).toEqual(['long']);
    expect(sqlOf([...sessions[0]!.blocks()])).toEqual(['select 1']);
    expect(sqlOf([...j.blocks(1)])).toEqual(['select 1']);
    j.append(1, block('select 2'));
    await j.commit();
    expect(sqlOf([...recoverJournals(dir, [key]).sessions[0]!.blocks()])).toEqual(['select 1', 'select 2']);
  });

  it('binds what a commit signed though blocks written while it synced come before it in the file, moved or not', async () => {
    for (const compact of [false, true]) {
      const dir = join(root, `journal-${compact}`);
      const j = await longBesideBusy(dir, true);
      j.closed(2);
      if (compact) await j.compact();
      const committing = j.commit();
      j.append(1, block('select 2'));
      await committing;
      if (compact) await j.compact();
      const { sessions } = recoverJournals(dir, [key]);
      expect(sessions.map((s) => s.meta.id)).toEqual(['long']);
      expect(sqlOf([...sessions[0]!.blocks()])).toEqual(['select 1']);
    }
  });

  it('takes no OPEN that names the session with another protocol: what was committed is recovered as it was opened', async () => {
    const dir = join(root, 'journal');
    const j = new Journal(dir, key, false);
    j.open(1, meta('one'));
    j.append(1, block('select 1'));
    await j.commit();
    const forged = Buffer.from(JSON.stringify({ ...meta('one'), protocol: 'ssh' }));
    const head = Buffer.alloc(9);
    head[0] = 1;
    head.writeUInt32LE(1, 1);
    head.writeUInt32LE(forged.length, 5);
    appendFileSync(file(), Buffer.concat([head, forged]));
    const { sessions } = recoverJournals(dir, [key]);
    expect(sessions.map((s) => [s.meta.protocol, s.count])).toEqual([['postgres', 1]]);
  });

  it("binds each session's OPEN inside its chain: the protocol edited in place (same length) leaves nothing a commit binds, and recovery names the session it cannot cut", async () => {
    const dir = join(root, 'journal');
    const j = new Journal(dir, key, false);
    j.open(1, meta('one'));
    j.append(1, block('select 1'));
    j.open(2, meta('two'));
    j.append(2, block('select 2'));
    await j.commit();
    // A one-word edit after a crash: the OPEN of session one says mysql (its length field set to match).
    const bytes = readFileSync(file());
    const payload = bytes.indexOf(Buffer.from(JSON.stringify(meta('one'))));
    expect(payload).toBeGreaterThan(9);
    const edited = Buffer.from(JSON.stringify({ ...meta('one'), protocol: 'mysql' }));
    const header = Buffer.from(bytes.subarray(payload - 9, payload));
    header.writeUInt32LE(edited.length, 5);
    writeFileSync(file(), Buffer.concat([bytes.subarray(0, payload - 9), header, edited, bytes.subarray(payload + JSON.stringify(meta('one')).length)]));
    const { sessions, unbound } = recoverJournals(dir, [key]);
    expect(sessions.map((s) => [s.meta.id, s.meta.protocol])).toEqual([['two', 'postgres']]);
    expect(unbound).toEqual(['one']);
  });

  it('is not broken when a file is removed, or the journal closed, while a sync of it waits for a thread', async () => {
    // Every thread of libuv's pool busy for a moment: the syncs below wait behind them.
    const busy = (): Promise<unknown> => Promise.all(Array.from({ length: Number(process.env.UV_THREADPOOL_SIZE ?? 4) }, () => new Promise((r) => pbkdf2('x', 'y', 200_000, 32, 'sha256', r))));
    const dir = join(root, 'journal');
    const j = new Journal(dir, key, true, 2000);
    j.open(1, meta('a'));
    j.append(1, block('select 1'));
    j.open(2, meta('b'));
    j.append(2, block('x'.repeat(3000)));
    await j.commit();
    j.closed(2);
    await j.compact();
    await j.commit();
    // The moved session is cut while the sync of the commit that bound it waits: that file goes.
    let waiting = busy();
    const compacting = j.compact();
    j.closed(1);
    await expect(compacting).resolves.toBeDefined();
    await waiting;
    expect(j.broken).toBeUndefined();
    // The thread stops while a commit's sync waits.
    j.open(3, meta('c'));
    j.append(3, block('select 3'));
    waiting = busy();
    const committing = j.commit();
    j.close();
    await expect(committing).resolves.toEqual([]);
    await waiting;
    expect(j.broken).toBeUndefined();
  });

  it('moves no session that is as large as what moving it would free, nor one being read', async () => {
    const dir = join(root, 'journal');
    const j = new Journal(dir, key, false, 2000);
    j.open(1, meta('big'));
    for (let i = 0; i < 3; i++) j.append(1, block(String(i).repeat(1500)));
    await j.commit();
    const files = readdirSync(dir).sort();
    expect(await j.compact()).toEqual([]);
    await j.commit();
    expect(await j.compact()).toEqual([]);
    expect(readdirSync(dir).sort()).toEqual(files);
  });

  it('reads up to the last whole entry of a journal a crash cut short', async () => {
    const j = new Journal(join(root, 'journal'), key, false);
    j.open(1, meta('one'));
    j.append(1, block('select 1'));
    await j.commit();
    j.append(1, block('select 2 '.repeat(100)));
    await j.commit();
    truncateSync(file(), statSync(file()).size - 100); // the last commit torn
    const { sessions } = recoverJournals(join(root, 'journal'), [key]);
    expect([...sessions[0]!.blocks()]).toHaveLength(1);
  });
});

describe('a hostile chunk of records', () => {
  /** A recording of one chunk whose decompressed content is `content`, signed as this gateway signs. */
  function signed(dir: string, content: Buffer): void {
    mkdirSync(dir, { recursive: true });
    const data = gzipSync(content);
    writeFileSync(join(dir, 'records-000001.gz'), data);
    const manifest = Buffer.from(`${createHash('sha256').update(data).digest('hex')}  records-000001.gz\n`);
    writeFileSync(join(dir, 'SHA256SUMS'), manifest);
    writeFileSync(join(dir, 'SHA256SUMS.sig'), sshSign(key, RECORDING_NAMESPACE, manifest));
  }
  const header = (o: Record<string, unknown> = {}): string => `${JSON.stringify({ t: 'chunk', recording: 'x', seq: 1, prev: NO_PREVIOUS, v: 3, protocol: 'postgres', ...o })}\n`;

  it('is refused, saying why, however it is signed: a header or an event that is no JSON object, a record cut short', async () => {
    const cases: Array<[Buffer, string]> = [
      [Buffer.from('null\n'), 'has a header that is not a JSON object'],
      [Buffer.concat([Buffer.from(header()), eventRecord({ t: 'start', at: 1 }), record(1, 2, Buffer.from('null'))]), 'holds an event that is not a JSON object'],
      [Buffer.concat([Buffer.from(header()), eventRecord({ t: 'start', at: 1 }).subarray(0, 20)]), 'ends inside a record'],
    ];
    for (const [i, [content, problem]] of cases.entries()) {
      const dir = join(root, `hostile-${i}`);
      signed(dir, content);
      const check = await verifyRecording(dir, [key]);
      expect(check.ok, problem).toBe(false);
      expect(check.problems.join('\n')).toContain(problem);
    }
  });
});

describe('gzipChunk', () => {
  it('stores a small chunk and compresses a large one, and gzip and zlib read each back as it was', () => {
    const dir = mkdtempSync(join(tmpdir(), 'hoop-gzip-chunk-'));
    try {
      let seed = 7;
      const random = (): number => {
        seed = (seed * 1103515245 + 12345) % 2 ** 31;
        return seed / 2 ** 31;
      };
      for (const n of [0, 1, 2, 255, 4096, 8191, 8192, 100_000]) {
        const data = Buffer.from(Array.from({ length: n }, () => Math.floor(random() * (random() < 0.5 ? 4 : 256))));
        const z = gzipChunk(data);
        // Stored: header, the block's five bytes, the data, CRC and size.
        if (n < 8192) expect(z.length).toBe(10 + 5 + n + 8);
        expect(gunzipSync(z).equals(data)).toBe(true);
        writeFileSync(join(dir, 'c.gz'), z);
        expect(execFileSync('gzip', ['-t', join(dir, 'c.gz')]).length).toBe(0);
        expect(execFileSync('gzip', ['-dc', join(dir, 'c.gz')], { maxBuffer: 1 << 20 }).equals(data)).toBe(true);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
