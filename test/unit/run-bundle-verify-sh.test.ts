/**
 * The run bundle's verify.sh and a recording's seal, with real sh, jq, zcat, sha256sum and
 * ssh-keygen: a sealed recording is reported complete; one cut short at a checkpoint that was
 * saved under the final manifest's name (its tail dropped) is not, whatever jq's version does
 * with empty input.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { verifyScript } from '../../src/client/run-bundle-check.js';
import { generateSigningKey, sshPublicKeyLine } from '../../src/recording/sshsig.js';
import { verifyRecording } from '../../src/recording/verify.js';
import { cutRecording } from '../../src/recording/record-chunks.js';
import { eventRecord, RECORDING_NAMESPACE, RecordingWriter } from '../../src/recording/writer.js';

const base = mkdtempSync(join(tmpdir(), 'hoop-verify-sh-'));
afterAll(() => rmSync(base, { recursive: true, force: true }));
const { privateKey: key } = generateSigningKey();
const RUN = 'run-aaaaaaaaaaaaaaaaaaaa';

async function runRecord(root: string, o: { close: boolean }): Promise<string> {
  const dir = join(root, 'run');
  const w = await RecordingWriter.create({ dir, id: RUN, key, chunkMs: 60_000 });
  w.append({ t: 'start', at: 1, identity: { subject: 'devin' }, connection: 'prod-db' } as never);
  w.append({ t: 'statement', at: 2, sql: 'select 1', decision: 'allow' } as never);
  await w.checkpoint();
  w.append({ t: 'statement', at: 3, sql: 'delete from customers', decision: 'allow' } as never);
  if (o.close) await w.close();
  else {
    await w.flush();
    w.abandon();
  }
  return dir;
}

function bundle(root: string, manifest: string, args: string[] = []): string {
  writeFileSync(join(root, 'allowed_signers'), `hoop-cli namespaces="${RECORDING_NAMESPACE}" ${sshPublicKeyLine(key)}\n`);
  writeFileSync(join(root, 'verify.sh'), verifyScript(RUN, [{ dir: 'run', id: RUN, manifest, signer: 'hoop-cli' }]));
  return execFileSync('sh', ['verify.sh', ...args], { cwd: root, encoding: 'utf8', env: { PATH: process.env.PATH } });
}

describe("the run bundle's verify.sh and the seal", () => {
  it('a complete, sealed recording (hoop itself says complete) is reported complete by verify.sh', async () => {
    const root = mkdtempSync(join(base, 'complete-'));
    const dir = await runRecord(root, { close: true });
    const check = await verifyRecording(dir, [key]);
    expect(check).toMatchObject({ ok: true, complete: true, manifest: 'SHA256SUMS' });
    const out = bundle(root, 'SHA256SUMS');
    expect(out).toMatch(/ok {3}run: recording \S+, signed by hoop-cli, \d+ chunk\(s\), complete\n/);
  });

  it('a truncated recording (its checkpoint saved under the final name) is not reported complete by verify.sh', async () => {
    const cut = mkdtempSync(join(base, 'cut-'));
    const dir = await runRecord(cut, { close: false });
    const checkpoint = readdirSync(dir).find((f) => /^checkpoint-\d{6}\.SHA256SUMS$/.test(f))!;
    renameSync(join(dir, checkpoint), join(dir, 'SHA256SUMS'));
    renameSync(join(dir, `${checkpoint}.sig`), join(dir, 'SHA256SUMS.sig'));
    // hoop's own verifier sees the missing seal:
    expect(await verifyRecording(dir, [key])).toMatchObject({ complete: false, truncated: true });
    const whole = mkdtempSync(join(base, 'whole-'));
    await runRecord(whole, { close: true });
    const normalise = (s: string): string => s.replace(/\d+ chunk\(s\)/, 'N chunk(s)');
    // Not verified, as hoop sessions verify exits 1 on it (the fifteenth attack: verify.sh exited 0, and the dropped tail was gone)...
    let refused = '';
    try {
      bundle(cut, 'SHA256SUMS');
    } catch (err) {
      refused = String((err as { stdout?: string }).stdout);
    }
    expect(refused).toMatch(
      /FAIL run: recording \S+ is cut short: its final manifest signs no seal of its end: what came after is not evidence \(verify.sh --accept-truncated accepts what it holds\)/,
    );
    expect(refused).toContain('NOT verified');
    // ... unless the auditor accepts what it holds, as hoop sessions verify --accept-truncated does.
    const cutOut = bundle(cut, 'SHA256SUMS', ['--accept-truncated']);
    expect(cutOut).toContain('verified: every record of the run');
    expect(cutOut).not.toMatch(/chunk\(s\), complete\n/);
    expect(normalise(cutOut)).not.toBe(normalise(bundle(whole, 'SHA256SUMS')));
  });

  it('a record of format 3 holding an event that is no JSON object fails verify.sh, as it fails hoop', async () => {
    const root = join(base, 'hostile');
    const dir = join(root, 'run');
    const w = await RecordingWriter.create({ dir, id: RUN, key, chunkMs: 60_000, protocol: 'postgres' });
    w.append({ t: 'start', at: 1 } as never);
    const bad = Buffer.alloc(13 + 4);
    bad[0] = 1;
    bad.writeUInt32LE(4, 1);
    bad.writeDoubleLE(2, 5);
    bad.write('null', 13);
    w.appendRecords(bad);
    await w.close();
    expect((await verifyRecording(dir, [key])).ok).toBe(false);
    let out = '';
    try {
      out = bundle(root, 'SHA256SUMS');
    } catch (err) {
      out = String((err as { stdout?: string }).stdout);
    }
    expect(out).toContain('holds a record cut short, or an event that is no JSON object');
    expect(out).toContain('NOT verified');
  });

  it('holds exactly the run and the sessions its record names: another session, or another file, added to the bundle fails verify.sh', async () => {
    const root = mkdtempSync(join(base, 'exact-'));
    await runRecord(root, { close: true });
    expect(bundle(root, 'SHA256SUMS')).toContain('verified: every record of the run');
    const failing = (): string => {
      try {
        return bundle(root, 'SHA256SUMS');
      } catch (err) {
        return String((err as { stdout?: string }).stdout);
      }
    };
    mkdirSync(join(root, 'sessions', 'other-run-session', 'gateway'), { recursive: true });
    expect(failing()).toMatch(/FAIL the bundle holds sessions \[other-run-session\], the run's record names \[\]/);
    rmSync(join(root, 'sessions'), { recursive: true });
    writeFileSync(join(root, 'extra.json'), '{}');
    expect(failing()).toContain("FAIL extra.json: no part of a run's bundle");
  });

  it("holds of each session its index entry and the records exported of it, nothing else: a client/ record added to a session exported without one, or a file named '*', fails (the thirteenth attack)", async () => {
    const root = mkdtempSync(join(base, 'session-set-'));
    const sid = 'sess-in-run-0001';
    const gw = generateSigningKey().privateKey;
    await cutRecording({ path: join(root, 'run'), id: RUN, protocol: 'run', key, sealed: true, durable: false }, [
      eventRecord({ t: 'start', at: 1, side: 'run' }),
      eventRecord({ t: 'session', at: 2, id: sid }),
      eventRecord({ t: 'end', at: 3, exitCode: 0 }),
    ]);
    await cutRecording({ path: join(root, 'sessions', sid, 'gateway'), id: sid, protocol: 'postgres', key: gw, sealed: true, durable: false }, [
      eventRecord({ t: 'start', at: 1, runId: RUN }),
      eventRecord({ t: 'end', at: 3, reason: 'x' }),
    ]);
    writeFileSync(join(root, 'sessions', sid, 'session.json'), '{}\n');
    writeFileSync(join(root, 'allowed_signers'), `hoop-cli namespaces="${RECORDING_NAMESPACE}" ${sshPublicKeyLine(key)}\nhoop-gateway namespaces="${RECORDING_NAMESPACE}" ${sshPublicKeyLine(gw)}\n`);
    writeFileSync(
      join(root, 'verify.sh'),
      verifyScript(RUN, [
        { dir: 'run', id: RUN, manifest: 'SHA256SUMS', signer: 'hoop-cli' },
        { dir: `sessions/${sid}/gateway`, id: sid, manifest: 'SHA256SUMS', signer: 'hoop-gateway', session: sid },
      ]),
    );
    const run = (): { code: number; out: string } => {
      try {
        return { code: 0, out: execFileSync('sh', ['verify.sh'], { cwd: root, encoding: 'utf8', env: { PATH: process.env.PATH } }) };
      } catch (err) {
        return { code: (err as { status: number }).status, out: String((err as { stdout?: string }).stdout) };
      }
    };
    expect(run()).toMatchObject({ code: 0 });
    mkdirSync(join(root, 'sessions', sid, 'client'));
    writeFileSync(join(root, 'sessions', sid, 'client', 'SHA256SUMS'), 'made up\n');
    expect(run().out).toContain(`FAIL sessions/${sid} holds [client gateway session.json ], where the bundle holds [gateway session.json ]`);
    rmSync(join(root, 'sessions', sid, 'client'), { recursive: true });
    writeFileSync(join(root, 'sessions', sid, '*'), 'anything');
    expect(run()).toMatchObject({ code: 1 });
  });

  it('a file in a record the manifest does not name (a forged chunk, a checkpoint, a hidden file) fails verify.sh, as it fails hoop', async () => {
    const failing = (root: string): string => {
      try {
        return bundle(root, 'SHA256SUMS');
      } catch (err) {
        return String((err as { stdout?: string }).stdout);
      }
    };
    // A chunk that sorts before the real ones (what `zcat run/events-*` shows first), naming another subject.
    const forged = gzipSync(`${JSON.stringify({ t: 'chunk', recording: RUN, seq: 0, prev: '0'.repeat(64), v: 2 })}\n${JSON.stringify({ t: 'start', at: 1, identity: { subject: 'mallory' } })}\n`);
    const extras: Array<[string, Buffer | string]> = [
      ['events-000000.jsonl.gz', forged],
      ['events-000009.jsonl.gz', forged],
      ['checkpoint-000009.SHA256SUMS', 'x'],
      ['.events-000001.jsonl.gz', forged],
    ];
    for (const [name, data] of extras) {
      const root = mkdtempSync(join(base, 'unnamed-'));
      const dir = await runRecord(root, { close: true });
      expect(bundle(root, 'SHA256SUMS')).toContain('verified: every record of the run');
      writeFileSync(join(dir, name), data);
      expect((await verifyRecording(dir, [key])).problems).toContain(`${name} is not named by SHA256SUMS: no part of the recording`);
      const out = failing(root);
      expect(out).toContain(`FAIL run/${name}: not named by SHA256SUMS: no part of the recording`);
      expect(out).toContain('NOT verified');
    }
  });

  it('a checkpoint kept beside the final manifest (as a gateway keeps a record uploaded checkpoint by checkpoint) verifies for both, its lines beginning the manifest and signed', async () => {
    const root = mkdtempSync(join(base, 'kept-'));
    const dir = join(root, 'run');
    const w = await RecordingWriter.create({ dir, id: RUN, key, chunkMs: 60_000 });
    w.append({ t: 'start', at: 1, identity: { subject: 'devin' }, connection: 'prod-db' } as never);
    await w.checkpoint();
    const checkpoint = readdirSync(dir).find((f) => /^checkpoint-\d{6}\.SHA256SUMS$/.test(f))!;
    const kept = [checkpoint, `${checkpoint}.sig`].map((f) => [f, readFileSync(join(dir, f))] as const);
    w.append({ t: 'statement', at: 2, sql: 'select 1', decision: 'allow' } as never);
    await w.close();
    for (const [f, data] of kept) writeFileSync(join(dir, f), data);
    expect(await verifyRecording(dir, [key])).toMatchObject({ ok: true, complete: true });
    expect(bundle(root, 'SHA256SUMS')).toContain('verified: every record of the run');
  });

  it('short of complete, a chunk after the checkpoint in force is no evidence for both verifiers, and a checkpoint copy its signature does not sign is foreign', async () => {
    const root = mkdtempSync(join(base, 'checkpoints-'));
    const dir = await runRecord(root, { close: false });
    const checkpoint = readdirSync(dir).find((f) => /^checkpoint-\d{6}\.SHA256SUMS$/.test(f))!;
    const later = readdirSync(dir)
      .filter((f) => /^events-\d{6}\.jsonl\.gz$/.test(f))
      .sort()
      .at(-1)!;
    // Truncated: the chunk written after the checkpoint is unverified, not foreign, for both.
    const check = await verifyRecording(dir, [key]);
    expect(check).toMatchObject({ ok: true, truncated: true, unverified: [later] });
    const out = bundle(root, checkpoint, ['--accept-truncated']);
    expect(out).toContain(`run/${later}: written after ${checkpoint}, no evidence`);
    expect(out).toContain('verified: every record of the run');
    // A copy of the checkpoint under an older number is no prefix of it signed: foreign.
    const older = checkpoint.replace(/\d{6}/, '000000');
    copyFileSync(join(dir, checkpoint), join(dir, older));
    writeFileSync(join(dir, `${older}.sig`), 'not a signature');
    expect((await verifyRecording(dir, [key])).problems).toContain(`${older}.sig is not named by ${checkpoint}: no part of the recording`);
    let refused = '';
    try {
      bundle(root, checkpoint, ['--accept-truncated']);
    } catch (err) {
      refused = String((err as { stdout?: string }).stdout);
    }
    expect(refused).toContain(`FAIL run/${older}.sig: not named by ${checkpoint}: no part of the recording`);
  });
});
