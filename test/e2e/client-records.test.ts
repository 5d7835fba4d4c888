/**
 * The CLI's own records, the built CLI in its own process against a real gateway and PostgreSQL:
 * - `hoop run` records its sessions' side and the run as a unit, signs them with a key the gateway
 *   knows, uploads them; `sessions ls` marks them, `sessions verify` checks each record and the
 *   two against each other, `sessions replay --run` shows the run's command, prompt and exit code;
 * - a `hoop connect` killed with SIGKILL mid-session leaves a spool that the next command uploads
 *   as truncated, and it still verifies to its last checkpoint;
 * - uploads retry until the gateway answers, and are idempotent per file;
 * - the gateway takes a record only from the session's owner, signed by a key they registered,
 *   naming the session it is uploaded as; a record that tells another story is caught by verify;
 * - a record uploaded a checkpoint at a time is verified as it grows (how long that takes, and that
 *   it stays off the event loop, is measured in test/perf/client-record-verify.test.ts);
 * - closed records go up many in one request (`POST /v1/client-records`), each one judged as its
 *   files' `PUT`s would be, whoever sends it and whatever the archive holds.
 */
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { createServer, connect as netConnect, type Server } from 'node:net';
import { join } from 'node:path';
import { createHash, createPrivateKey } from 'node:crypto';
import { gunzipSync, gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registerDevice } from '../../src/api-client/identity.js';
import { putClientRecordFile, getClientRecord, postClientRecords } from '../../src/api-client/records.js';
import { GatewayApiError } from '../../src/api-client/api-error.js';
import { tarOf } from '../../src/recording/tar.js';
import { recordingFiles } from '../../src/recording/recording-files.js';
import { createDeviceKey } from '../../src/auth/device-key.js';
import { NO_PREVIOUS, RecordingWriter } from '../../src/recording/writer.js';
import { sshSign } from '../../src/recording/sshsig.js';
import { Spool } from '../../src/recording/spool.js';
import { uploadSpool } from '../../src/client/record-upload.js';
import { pgClient, runProcess } from '../harness/clients.js';
import { spawnHoop, type HoopProcessResult } from '../harness/hoop-process.js';
import { PolicyGitRepo } from '../harness/policy-git.js';
import { connectionYaml } from '../harness/postgres.js';
import { startStack, type HoopStack } from '../harness/stack.js';
import { eventually } from '../harness/wait.js';

let stack: HoopStack;
let token: string;
let repo: PolicyGitRepo;
/** This test's CLI configuration (and so its spool). */
let configDir: string;

const cliEnv = (extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv => ({
  HOOP_TOKEN: token,
  HOOP_GATEWAY: stack.gateway.url,
  HOOP_CA_FILE: stack.pki.caFile,
  HOOP_CONFIG_DIR: configDir,
  XDG_RUNTIME_DIR: stack.runtime,
  ...extra,
});
const hoop = (args: string[], extra: NodeJS.ProcessEnv = {}, o: { onStdout?: Parameters<typeof spawnHoop>[1]['onStdout'] } = {}): Promise<HoopProcessResult> =>
  spawnHoop(args, { env: cliEnv(extra), cwd: stack.dir, ...o });
const spoolEntries = (): string[] => (existsSync(join(configDir, 'spool')) ? readdirSync(join(configDir, 'spool')).filter((f) => f !== 'failed') : []);
const endpoint = () => ({ gateway: stack.gateway.url, ca: stack.pki.ca });
/** Where the gateway keeps a session's CLI record: its directory, or the one archive of a record complete at its first upload. */
const gatewayCopy = (id: string): string => {
  const dir = join(stack.dir, 'hoop-data', 'client-records', 'sessions', id);
  return existsSync(`${dir}.tar`) ? `${dir}.tar` : dir;
};

interface Listed {
  id: string;
  runId?: string;
  clientRecord?: string;
  endedAt?: string;
}
async function sessionsOfRun(runId: string): Promise<Listed[]> {
  let sessions: Listed[] = [];
  // Until they ended and their CLI records are in; the caller says what it expects of them if they never are.
  await eventually(
    async () => {
      const ls = await hoop(['sessions', 'ls', '--json', '--run', runId]);
      sessions = (JSON.parse(ls.stdout) as { sessions: Listed[] }).sessions;
      expect(sessions.length > 0 && sessions.every((s) => s.endedAt && s.clientRecord)).toBe(true);
    },
    { timeout: 60_000, interval: 100 },
  ).catch(() => undefined);
  return sessions;
}

beforeAll(async () => {
  repo = new PolicyGitRepo('hoop-client-records-policy-');
  stack = await startStack({
    policy: async ({ pg }) => {
      await pg.psql("create table cr_items (id int primary key, name text); insert into cr_items values (1, 'pen'), (2, 'pad');", { user: pg.users.scram });
      repo.commit(`version: 1
connections:
${connectionYaml(pg, { name: 'app', password: '${env:APP_PASSWORD}' })}access:
  - { name: people, subjects: [alice, bob], connections: [app], mode: read-write }
statements:
  rules:
    - { name: no-drop, match: { kinds: [drop] }, action: deny, message: DROP is not allowed }
`);
      return repo.gatewayBlock(['${env:APP_*}']);
    },
  });
  token = await stack.token('alice');
  configDir = await mkdtemp(join(stack.dir, 'cli-'));
});
afterAll(async () => {
  await stack?.close();
  if (repo) rmSync(repo.base, { recursive: true, force: true });
});

/** A session of alice's through the gateway, ended, with no CLI record yet; resolves its id. */
async function endedSession(sql: string): Promise<string> {
  const listed = async (): Promise<Array<Listed & { statements: number }>> =>
    (JSON.parse((await hoop(['sessions', 'ls', '--json'])).stdout) as { sessions: Array<Listed & { statements: number }> }).sessions;
  // The session this call makes: one not listed before it (on a busy machine an earlier one may still be the newest ended).
  const before = new Set((await listed()).map((s) => s.id));
  const raw = await stack.tunnel('app', token);
  await raw.simple(sql);
  raw.write(Buffer.from([0x58, 0, 0, 0, 4]));
  await raw.closed();
  return eventually(
    async () => {
      const found = (await listed()).find((s) => s.endedAt && !s.clientRecord && !before.has(s.id));
      expect(found, 'the session just ended').toBeDefined();
      return found!.id;
    },
    { timeout: 60_000, interval: 100 },
  );
}

describe("the CLI's own records", () => {
  it('hoop run records its sessions and itself, signed, uploaded; verify cross-checks the two records; replay --run shows the prompt and the exit code', async () => {
    const agent = `psql -X -At -c "select name from cr_items order by id" -c "drop table cr_items" ; psql -X -At -c "select count(*) from cr_items"; echo "run=$HOOP_RUN_ID"; exit 7`;
    const r = await hoop(['run', '--connect', 'app', '--prompt', 'List the items, then try to drop them.', '--', 'sh', '-c', agent]);
    expect(r.code, r.stderr).toBe(7);
    expect(r.stdout).toContain('pen\npad\n');
    expect(r.stderr).toContain('denied by rule "no-drop"');
    expect(r.stderr).not.toContain('not uploaded');
    const runId = /^run=(\S+)$/m.exec(r.stdout)![1]!;
    // Everything reached the gateway before hoop exited: the spool is empty.
    expect(spoolEntries()).toEqual([]);

    const sessions = await sessionsOfRun(runId);
    expect(sessions).toHaveLength(2);
    expect(sessions.map((s) => s.clientRecord)).toEqual(['complete', 'complete']);
    const table = await hoop(['sessions', 'ls', '--run', runId]);
    expect(table.stdout.split('\n')[0]).toMatch(/RECORDING\s+CLI RECORD$/);
    expect(table.stdout.split('\n')[1]).toMatch(/signed$/);

    // The first session (the one with the refusal): both records verify, and they agree.
    const first = sessions[sessions.length - 1]!.id;
    const verify = await hoop(['sessions', 'verify', first]);
    expect(verify.stderr).toBe('');
    expect(verify.code).toBe(0);
    const out = verify.stdout.split('\n');
    expect(out[0]).toMatch(new RegExp(`^session ${first}: verified: \\d+ chunk\\(s\\), \\d+ events, complete, signed by SHA256:`));
    expect(out[1]).toMatch(/^CLI record: verified: \d+ chunk\(s\), \d+ events, complete, signed by SHA256:/);
    expect(out[0].split('signed by ')[1]).not.toBe(out[1]!.split('signed by ')[1]); // two different keys
    expect(out[2]).toMatch(/^cross-check: the gateway's and the CLI's records agree on 2 statement\(s\) and \d+ outcome\(s\)$/);
    const json = JSON.parse((await hoop(['sessions', 'verify', first, '--json'])).stdout) as {
      ok: boolean;
      client: { ok: boolean; complete: boolean };
      crossCheck: { agree: boolean; statements: number };
    };
    expect(json).toMatchObject({ ok: true, client: { ok: true, complete: true }, crossCheck: { agree: true, statements: 2 } });

    // The gateway keeps the CLI's record in the same format (one archive: `tar -xf` gives its directory): sha256sum and ssh-keygen check it without hoop.
    const copy = gatewayCopy(first);
    expect(copy.endsWith('.tar')).toBe(true);
    const unpacked = await mkdtemp(join(stack.dir, 'unpacked-'));
    expect((await runProcess('tar', ['-xf', copy, '-C', unpacked])).code).toBe(0);
    const recordDir = join(unpacked, first);
    const check = await runProcess('sh', ['-c', `cd ${recordDir} && sha256sum -c SHA256SUMS`]);
    expect(check.code).toBe(0);
    const signer = (JSON.parse(await readFile(join(recordDir, 'record.json'), 'utf8')) as { signer: string }).signer;
    const keygen = await runProcess('sh', [
      '-c',
      `cd ${recordDir} && echo "alice ${signer}" > /tmp/hoop-cr-signers && ssh-keygen -Y verify -f /tmp/hoop-cr-signers -I alice -n hoop-recording -s SHA256SUMS.sig < SHA256SUMS`,
    ]);
    expect(keygen.stdout).toContain('Good "hoop-recording" signature for alice');

    // The run as a unit: who ran what, with which prompt, and how it ended, around its sessions.
    const replay = await hoop(['sessions', 'replay', runId, '--run', '--no-tty']);
    expect(replay.code).toBe(0);
    const lines = replay.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(new RegExp(`^-- run ${runId} by alice on \\S+ \\(signed by its CLI, SHA256:[^)]+\\): "sh -c 'psql -X -At`));
    expect(lines[0]).toContain(`in ${JSON.stringify(stack.dir)}`);
    expect(lines[1]).toMatch(/^-- the agent: sh, (contained \(bwrap\)|not contained \(isolation: none\))$/);
    expect(lines[2]).toBe('-- the run\'s prompt: "List the items, then try to drop them."');
    expect(lines[lines.length - 2]).toBe(
      `-- the run's tunnels carried 2 session(s): ${[...sessions]
        .reverse()
        .map((s) => s.id)
        .join(', ')}`,
    );
    expect(lines[lines.length - 1]).toMatch(/^-- the run's command exited with 7 after \d+\.\d s$/);
    expect(replay.stdout.indexOf('drop table cr_items')).toBeLessThan(replay.stdout.indexOf('select count(*) from cr_items'));
  });

  it('hoop exec records its session too, uploads it before it exits, and the two records agree', async () => {
    const r = await hoop(['exec', 'app', '--csv', '-c', 'select count(*) from cr_items', '-c', 'select 2 as two']);
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('count\n2\ntwo\n2\n');
    expect(spoolEntries()).toEqual([]);
    let session: Listed | undefined;
    for (let i = 0; i < 50 && !session; i++) {
      session = (JSON.parse((await hoop(['sessions', 'ls', '--json'])).stdout) as { sessions: Array<Listed & { statements: number }> }).sessions.find(
        (s) => s.endedAt && s.statements === 2 && s.clientRecord === 'complete',
      );
    }
    expect(session).toBeDefined();
    const verify = await hoop(['sessions', 'verify', session!.id]);
    expect(verify.code).toBe(0);
    expect(verify.stdout).toMatch(/cross-check: the gateway's and the CLI's records agree on 2 statement\(s\) and 2 outcome\(s\)\n/);
  });

  it('a hoop connect killed with SIGKILL mid-session leaves its record in the spool; the next command uploads it as truncated, and it verifies to its last checkpoint', async () => {
    let session = '';
    const killed = await hoop(
      ['connect', 'app', '--json'],
      {},
      {
        onStdout: (text, child) => {
          if (session || !text.includes('\n')) return;
          session = 'starting';
          const info = JSON.parse(text.split('\n')[0]!) as { host: string; port: number; pgpassFile: string; user: string; database: string; sslrootcert: string };
          const env = { PGPASSFILE: info.pgpassFile, PGSSLMODE: 'verify-full', PGSSLROOTCERT: info.sslrootcert };
          // A session that stays open: one statement, then a wait while hoop is killed.
          void runProcess('psql', ['-X', '-At', '-h', info.host, '-p', String(info.port), '-U', info.user, '-d', info.database, '-c', 'select 41 + 1', '-c', 'select pg_sleep(5)'], {
            env: { ...process.env, ...env },
          });
          // Killed once a signed checkpoint of its record covers the first statement, while pg_sleep(5) keeps the session open.
          void eventually(
            async () => {
              const [entry] = spoolEntries();
              expect(entry).toBeDefined();
              const at = join(configDir, 'spool', entry!);
              const files = await readdir(at);
              // The signature is written first, then the manifest: a checkpoint is whole once its manifest is there.
              const covered = Math.max(0, ...files.map((f) => Number(/^checkpoint-(\d{6})\.SHA256SUMS$/.exec(f)?.[1] ?? 0)));
              const chunks = files.filter((f) => Number(/^events-(\d{6})\.jsonl\.gz$/.exec(f)?.[1] ?? Infinity) <= covered);
              const text = (await Promise.all(chunks.map(async (f) => gunzipSync(await readFile(join(at, f))).toString()))).join('');
              expect(text).toContain('select 41 + 1');
            },
            { timeout: 4_500, interval: 50 },
          )
            .catch(() => undefined)
            .finally(() => child.kill('SIGKILL'));
        },
      },
    );
    expect(killed.code).toBe(null); // killed
    const left = spoolEntries();
    expect(left).toHaveLength(1);
    const dir = join(configDir, 'spool', left[0]!);
    const files = await readdir(dir);
    expect(files).not.toContain('SHA256SUMS.sig');
    expect(files.some((f) => /^checkpoint-\d{6}\.SHA256SUMS\.sig$/.test(f))).toBe(true);
    const id = left[0]!.replace(/^sessions-/, '');

    // The next hoop command (here `sessions ls`) uploads it.
    await eventually(async () => expect((JSON.parse((await hoop(['sessions', 'ls', '--json'])).stdout) as { sessions: Listed[] }).sessions.find((s) => s.id === id)?.clientRecord).toBe('truncated'), {
      timeout: 30_000,
      interval: 100,
    });
    expect(spoolEntries()).toEqual([]);
    const verify = await hoop(['sessions', 'verify', id]);
    expect(verify.code).toBe(0);
    expect(verify.stdout).toMatch(/CLI record: verified: \d+ chunk\(s\), \d+ events, truncated at its last checkpoint/);
    expect(verify.stdout).toMatch(/cross-check: the gateway's and the CLI's records agree on [12] statement\(s\) and \d+ outcome\(s\); the CLI's record was cut short: compared up to there/);
  });

  it('uploads retry until the gateway answers, and a file sent twice is stored once', async () => {
    const raw = await stack.tunnel('app', token);
    await raw.simple('select 7');
    raw.write(Buffer.from([0x58, 0, 0, 0, 4]));
    await raw.closed();
    let id = '';
    for (let i = 0; i < 50 && !id; i++) {
      const all = (JSON.parse((await hoop(['sessions', 'ls', '--json'])).stdout) as { sessions: Array<Listed & { statements: number }> }).sessions;
      id = all.find((s) => s.endedAt && !s.clientRecord && s.statements === 1)?.id ?? '';
    }
    expect(id).not.toBe('');

    // The gateway behind a port where nothing listens for a while, then a forwarder to it.
    const holder = createServer();
    await new Promise<void>((r) => holder.listen(0, '127.0.0.1', () => r()));
    const port = (holder.address() as { port: number }).port;
    await new Promise<void>((r) => holder.close(() => r()));
    const origin = `https://127.0.0.1:${port}`;

    // A closed record in a spool, as hoop writes one, signed by a key alice registered.
    const pair = createDeviceKey();
    await registerDevice(endpoint(), token, { ...pair, name: 'test device' });
    const spool = new Spool(await mkdtemp(join(stack.dir, 'spool-')));
    const dir = await spool.create({ kind: 'sessions', id, gateway: origin, signer: 'test' });
    const writer = await RecordingWriter.create({ dir, id, key: createPrivateKey(pair.privateKey) });
    writer.append({ t: 'start', at: Date.now(), side: 'client' });
    writer.append({ t: 'query', at: Date.now(), sql: 'select 7' });
    writer.append({ t: 'complete', at: Date.now(), tag: 'SELECT 1' });
    await writer.close();

    const gatewayPort = Number(new URL(stack.gateway.url).port);
    let forwarder: Server | undefined;
    setTimeout(() => {
      forwarder = createServer((c) => {
        const up = netConnect(gatewayPort, '127.0.0.1');
        c.pipe(up).pipe(c);
        c.on('error', () => up.destroy());
        up.on('error', () => c.destroy());
      }).listen(port, '127.0.0.1');
    }, 1200);
    const started = Date.now();
    const report = await uploadSpool(spool, { endpoint: { gateway: origin, ca: stack.pki.ca }, token: async () => token, origin }, { deadline: Date.now() + 120_000 });
    forwarder?.close();
    expect(report).toMatchObject({ left: [], setAside: [] });
    expect(report.uploaded).toHaveLength(1);
    expect(Date.now() - started).toBeGreaterThanOrEqual(1000);
    expect(await spool.entries()).toEqual([]);
    const held = await getClientRecord(endpoint(), token, 'sessions', id);
    expect(held.record).toMatchObject({ state: 'complete', subject: 'alice', chunks: 1, events: 3 });

    // Idempotent: the same bytes again are "already stored"; other bytes under the same name are refused.
    const chunk = held.files.find((f) => f.startsWith('events-'))!;
    const bytes = (await recordingFiles(gatewayCopy(id)).read(chunk))!;
    expect(await putClientRecordFile(endpoint(), token, 'sessions', id, chunk, bytes)).toMatchObject({ stored: false });
    const conflict = await putClientRecordFile(endpoint(), token, 'sessions', id, chunk, Buffer.from('other')).catch((e: unknown) => e);
    expect(conflict).toBeInstanceOf(GatewayApiError);
    expect((conflict as GatewayApiError).status).toBe(409);
    expect((await getClientRecord(endpoint(), token, 'sessions', id)).record).toMatchObject({ state: 'complete' });

    const verify = await hoop(['sessions', 'verify', id]);
    expect(verify.stdout).toContain("cross-check: the gateway's and the CLI's records agree on 1 statement(s) and 1 outcome(s)");
  });

  it("the gateway takes a record only from the session's owner, signed by their registered key, as the record of that session; a record that differs is caught", async () => {
    const a = await endedSession('select 1');
    const record = async (key: string, id: string, sql: string): Promise<string> => {
      const dir = await mkdtemp(join(stack.dir, 'forged-'));
      const w = await RecordingWriter.create({ dir, id, key: createPrivateKey(key) });
      w.append({ t: 'start', at: Date.now(), side: 'client' });
      w.append({ t: 'query', at: Date.now(), sql });
      await w.close();
      return dir;
    };
    const upload = async (dir: string, id: string, who = token): Promise<unknown> => {
      for (const f of ['events-000001.jsonl.gz', 'SHA256SUMS', 'SHA256SUMS.sig']) {
        const r = await putClientRecordFile(endpoint(), who, 'sessions', id, f, await readFile(join(dir, f))).catch((e: unknown) => e);
        if (r instanceof Error) return r;
      }
      return undefined;
    };
    // Signed by a key nobody registered: refused, and its signature not kept.
    const stranger = createDeviceKey();
    const unregistered = (await upload(await record(stranger.privateKey, a, 'select 1'), a)) as GatewayApiError;
    expect(unregistered.status).toBe(422);
    expect(unregistered.message).toContain('does not verify with SHA256SUMS.sig');
    expect((await getClientRecord(endpoint(), token, 'sessions', a)).files).not.toContain('SHA256SUMS.sig');
    // Bob may not upload alice's session's record.
    const bob = await stack.token('bob');
    const asBob = (await upload(await record(stranger.privateKey, a, 'select 1'), a, bob)) as GatewayApiError;
    expect(asBob.status).toBe(404); // he may not even see it
    // Alice's key, but the record of another session uploaded as this one: refused.
    const mine = createDeviceKey();
    await registerDevice(endpoint(), token, { ...mine, name: 'alice laptop' });
    const b = await endedSession('select 2');
    const swapped = (await upload(await record(mine.privateKey, a, 'select 2'), b)) as GatewayApiError;
    expect(swapped.status).toBe(422);
    expect(swapped.message).toContain(`it is the record of ${a}, not of ${b}`);
    // A record first signed (to a checkpoint) with one of alice's keys is not finished with another of hers.
    const second = createDeviceKey();
    await registerDevice(endpoint(), token, { ...second, name: 'alice desktop' });
    const partDir = await mkdtemp(join(stack.dir, 'part-'));
    const part = await RecordingWriter.create({ dir: partDir, id: b, key: createPrivateKey(mine.privateKey) });
    part.append({ t: 'query', at: Date.now(), sql: 'select 2' });
    await part.checkpoint();
    for (const f of ['events-000001.jsonl.gz', 'checkpoint-000001.SHA256SUMS', 'checkpoint-000001.SHA256SUMS.sig'])
      await putClientRecordFile(endpoint(), token, 'sessions', b, f, await readFile(join(partDir, f)));
    expect((await getClientRecord(endpoint(), token, 'sessions', b)).record).toMatchObject({ state: 'truncated' });
    part.abandon();
    // The same chunks, their final manifest signed by alice's other key.
    const manifest = await readFile(join(partDir, 'checkpoint-000001.SHA256SUMS'));
    await putClientRecordFile(endpoint(), token, 'sessions', b, 'SHA256SUMS', manifest);
    const resigned = await putClientRecordFile(endpoint(), token, 'sessions', b, 'SHA256SUMS.sig', Buffer.from(sshSign(createPrivateKey(second.privateKey), 'hoop-recording', manifest))).catch(
      (e: unknown) => e as GatewayApiError,
    );
    expect((resigned as GatewayApiError).status).toBe(422);
    expect((resigned as GatewayApiError).message).toContain('as it was first');
    expect((await getClientRecord(endpoint(), token, 'sessions', b)).record).toMatchObject({ state: 'truncated' });

    // Alice's own key over a record that says something else happened: accepted (she signed it), and verify shows the difference.
    expect(await upload(await record(mine.privateKey, a, 'select 42'), a)).toBeUndefined();
    const verify = await hoop(['sessions', 'verify', a]);
    expect(verify.code).toBe(1);
    expect(verify.stdout).toContain('cross-check: the records DIFFER:');
    expect(verify.stdout).toContain('statement 1: the gateway recorded "query select 1", the CLI "query select 42"');
    expect(verify.stderr).toContain("the gateway's and the CLI's records of session");

    // Her key over messages this hoop cannot read (a protocol it does not know): signed, yet nothing in it can be compared.
    const c = await endedSession('select 3');
    const odd = await mkdtemp(join(stack.dir, 'odd-'));
    const w = await RecordingWriter.create({ dir: odd, id: c, key: createPrivateKey(mine.privateKey) });
    w.append({ t: 'start', at: Date.now(), side: 'client', wire: 'oracle' });
    w.append({ t: 'wire', at: Date.now(), k: 25, b: Buffer.from('Q').toString('base64') });
    await w.close();
    expect(await upload(odd, c)).toBeUndefined();
    const unreadable = await hoop(['sessions', 'verify', c]);
    expect(unreadable.code, unreadable.stderr).toBe(1);
    expect(unreadable.stderr).toContain(`the records of session ${c} cannot be compared: the record keeps oracle messages, which this hoop cannot read`);
  });

  it('a record uploaded a checkpoint at a time is verified as it grows: truncated at its first checkpoint, complete at its manifest', async () => {
    const id = await endedSession('select 3');
    const pair = createDeviceKey();
    await registerDevice(endpoint(), token, { ...pair, name: 'alice growing records' });
    const sign = (manifest: Buffer): Buffer => Buffer.from(sshSign(createPrivateKey(pair.privateKey), 'hoop-recording', manifest));
    const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
    const put = (name: string, data: Buffer) => putClientRecordFile(endpoint(), token, 'sessions', id, name, data);
    const rows = 20_000;
    const first = gzipSync(`${JSON.stringify({ t: 'chunk', recording: id, seq: 1, prev: NO_PREVIOUS })}\n${'{"t":"row","values":[1,2,3,4,5,6,7,8]}\n'.repeat(rows)}`);
    const checkpoint = Buffer.from(`${sha256(first)}  events-000001.jsonl.gz\n`);
    await put('events-000001.jsonl.gz', first);
    await put('checkpoint-000001.SHA256SUMS', checkpoint);
    expect((await put('checkpoint-000001.SHA256SUMS.sig', sign(checkpoint))).record).toMatchObject({ state: 'truncated', chunks: 1, events: rows });
    const second = gzipSync(`${JSON.stringify({ t: 'chunk', recording: id, seq: 2, prev: sha256(first) })}\n{"t":"end","at":2}\n`);
    const manifest = Buffer.concat([checkpoint, Buffer.from(`${sha256(second)}  events-000002.jsonl.gz\n`)]);
    await put('events-000002.jsonl.gz', second);
    await put('SHA256SUMS', manifest);
    expect((await put('SHA256SUMS.sig', sign(manifest))).record).toMatchObject({ state: 'complete', chunks: 2, events: rows + 1 });
  });

  it('records of sessions that close together go up together: fewer requests than sessions, each record complete', async () => {
    const batches = () => stack.logs().filter((l) => l.event === 'client-record.batch' && l.subject === 'alice') as unknown as Array<{ records: number }>;
    const before = batches().length;
    const c = await stack.connect('app', token, [], { HOOP_CONFIG_DIR: configDir });
    try {
      const clients = await Promise.all(Array.from({ length: 6 }, () => pgClient(c.info)));
      for (const [i, client] of clients.entries()) await client.query(`select ${i}`);
      await Promise.all(clients.map((client) => client.end()));
      // Each record waits a moment for the others: the six go up in one request, or a few (a busy machine closes them further apart, and one closed while an upload is under way waits for it).
      await eventually(
        () =>
          expect(
            batches()
              .slice(before)
              .reduce((n, b) => n + b.records, 0),
          ).toBe(6),
        { timeout: 30_000, interval: 50 },
      );
      // Fewer requests than sessions (how many fewer is the machine's: record-gather.test.ts holds the rule on a held clock).
      expect(batches().length - before).toBeLessThan(6);
    } finally {
      await c.stop();
    }
  });

  it('closed records go up together in one request, each complete, and leave the spool', async () => {
    const pair = createDeviceKey();
    await registerDevice(endpoint(), token, { ...pair, name: 'alice batch' });
    const origin = new URL(stack.gateway.url).origin;
    const spool = new Spool(await mkdtemp(join(stack.dir, 'spool-batch-')));
    const ids: string[] = [];
    for (const sql of ['select 11', 'select 12', 'select 13']) {
      const id = await endedSession(sql);
      ids.push(id);
      const dir = await spool.create({ kind: 'sessions', id, gateway: origin, signer: 'test' });
      const w = await RecordingWriter.create({ dir, id, key: createPrivateKey(pair.privateKey) });
      w.append({ t: 'start', at: Date.now(), side: 'client' });
      w.append({ t: 'query', at: Date.now(), sql });
      await w.close();
    }
    const batchesBefore = stack.logs().filter((l) => l.event === 'client-record.batch').length;
    // A limit for what hangs: beside a busy loop the three records took longer than 10 s to go up.
    const report = await uploadSpool(spool, { endpoint: endpoint(), token: async () => token, origin }, { deadline: Date.now() + 120_000 });
    expect(report).toMatchObject({ left: [], setAside: [] });
    expect(report.uploaded.map((e) => e.meta.id).sort()).toEqual([...ids].sort());
    expect(await spool.entries()).toEqual([]);
    const batches = stack
      .logs()
      .filter((l) => l.event === 'client-record.batch')
      .slice(batchesBefore);
    expect(batches).toEqual([expect.objectContaining({ subject: 'alice', records: 3, refused: 0 })]);
    for (const id of ids) expect((await getClientRecord(endpoint(), token, 'sessions', id)).record).toMatchObject({ state: 'complete', chunks: 1, events: 2 });
  });

  it('a record the gateway still does not know a week after it began is set aside and kept; a newer one waits in the spool', async () => {
    const pair = createDeviceKey();
    const origin = new URL(stack.gateway.url).origin;
    const spool = new Spool(await mkdtemp(join(stack.dir, 'spool-unknown-')));
    const [old, recent] = ['run-0123456789abcdef', 'run-fedcba9876543210'];
    for (const id of [old, recent]) {
      const dir = await spool.create({ kind: 'runs', id, gateway: origin, signer: 'test' });
      const w = await RecordingWriter.create({ dir, id, key: createPrivateKey(pair.privateKey) });
      w.append({ t: 'start', at: Date.now(), side: 'client' });
      await w.close();
    }
    // The first began eight days ago (as its spool.json says).
    const meta = join(spool.dir('runs', old), 'spool.json');
    await writeFile(meta, (await readFile(meta, 'utf8')).replace(/"startedAt":"[^"]+"/, `"startedAt":"${new Date(Date.now() - 8 * 86_400_000).toISOString()}"`));
    const report = await uploadSpool(spool, { endpoint: endpoint(), token: async () => token, origin }, { deadline: Date.now() + 120_000 });
    expect(report.setAside.map((a) => [a.entry.meta.id, a.error])).toEqual([[old, expect.stringMatching(/404|not found|unknown/i)]]);
    expect(report.left.map((a) => a.entry.meta.id)).toEqual([recent]);
    expect(readdirSync(report.setAside[0]!.dir)).toContain('spool.json');
    expect((await spool.entries()).map((e) => e.meta.id)).toEqual([recent]);
  });

  it("a batch sent without the CLI gets each record judged as its PUTs would be: another's, unsigned by a known key, two signatures, not an archive", async () => {
    const key = createDeviceKey();
    await registerDevice(endpoint(), token, { ...key, name: 'alice raw batch' });
    const stranger = createDeviceKey();
    const recordFiles = async (id: string, privateKey: string, sql: string): Promise<Array<{ name: string; data: Buffer }>> => {
      const dir = await mkdtemp(join(stack.dir, 'raw-batch-'));
      const w = await RecordingWriter.create({ dir, id, key: createPrivateKey(privateKey) });
      w.append({ t: 'start', at: Date.now(), side: 'client' });
      w.append({ t: 'query', at: Date.now(), sql });
      await w.checkpoint();
      await w.close();
      const names = (await readdir(dir)).filter((f) => f !== 'checkpoint-000001.SHA256SUMS' && f !== 'checkpoint-000001.SHA256SUMS.sig');
      return Promise.all(names.map(async (f) => ({ name: `sessions/${id}/${f}`, data: await readFile(join(dir, f)) })));
    };
    const good = await endedSession('select 21');
    const forged = await endedSession('select 22');
    const twice = await endedSession('select 23');
    // Bob's session, in alice's batch.
    const bob = await stack.token('bob');
    const raw = await stack.tunnel('app', bob);
    await raw.simple('select 24');
    raw.write(Buffer.from([0x58, 0, 0, 0, 4]));
    await raw.closed();
    let bobs = '';
    await eventually(async () => {
      const ls = JSON.parse((await hoop(['sessions', 'ls', '--json'], { HOOP_TOKEN: bob })).stdout) as { sessions: Listed[] };
      bobs = ls.sessions.find((s) => s.endedAt)?.id ?? '';
      expect(bobs).not.toBe('');
    });
    const twoSigs = await recordFiles(twice, key.privateKey, 'select 23');
    const checkpointDir = await mkdtemp(join(stack.dir, 'raw-batch-cp-'));
    const cp = await RecordingWriter.create({ dir: checkpointDir, id: twice, key: createPrivateKey(key.privateKey) });
    cp.append({ t: 'start', at: Date.now(), side: 'client' });
    await cp.checkpoint();
    cp.abandon();
    twoSigs.push({ name: `sessions/${twice}/checkpoint-000001.SHA256SUMS.sig`, data: await readFile(join(checkpointDir, 'checkpoint-000001.SHA256SUMS.sig')) });
    const archive = tarOf([
      ...(await recordFiles(good, key.privateKey, 'select 21')),
      ...(await recordFiles(forged, stranger.privateKey, 'select 22')),
      ...(await recordFiles(bobs, key.privateKey, 'select 24')),
      ...twoSigs,
    ]);
    const answers = await postClientRecords(endpoint(), token, archive);
    const of = (id: string) => answers.find((a) => a.id === id);
    expect(answers.map((a) => a.id)).toEqual([good, forged, bobs, twice]);
    expect(of(good)).toMatchObject({ stored: true, record: { state: 'complete', subject: 'alice' } });
    expect(of(forged)?.failure).toMatchObject({ status: 422, message: expect.stringContaining('does not verify with SHA256SUMS.sig') });
    expect(of(bobs)?.failure).toMatchObject({ status: 404 });
    expect(of(twice)?.failure).toMatchObject({ status: 400, message: expect.stringContaining('2 signatures') });
    // What was refused was not kept: the gateway's disk holds the good record alone (a refused one keeps its state alone, what it cost its owner's day).
    const held = async (id: string) =>
      (
        await recordingFiles(gatewayCopy(id))
          .names()
          .catch(() => [] as string[])
      ).filter((f) => f !== 'record.json');
    // Its events, then the seal of its end in a chunk of its own (the first was signed by the checkpoint).
    expect((await held(good)).sort()).toEqual(['SHA256SUMS', 'SHA256SUMS.sig', 'events-000001.jsonl.gz', 'events-000002.jsonl.gz']);
    expect(await held(forged)).toEqual([]);
    expect(await held(bobs)).toEqual([]);
    expect(await held(twice)).toEqual([]);
    // Another record under the same id once it is complete: refused (a record is never written over).
    expect((await postClientRecords(endpoint(), token, tarOf(await recordFiles(good, key.privateKey, 'select 21')))).at(0)?.failure).toMatchObject({ status: 409 });

    // Not an archive, or an archive of something else: 400 for the request, and the gateway serves on.
    for (const body of [Buffer.from('not a tar'), tarOf([{ name: '../../etc/passwd', data: Buffer.from('x') }]), tarOf([{ name: `sessions/${good}/x/y`, data: Buffer.from('x') }])]) {
      const refused = await postClientRecords(endpoint(), token, body).catch((e: unknown) => e);
      expect(refused).toBeInstanceOf(GatewayApiError);
      expect((refused as GatewayApiError).status).toBe(400);
    }
    // A file no record holds (the gateway's own state file, say): that record refused, nothing written over.
    const [stateFile] = await postClientRecords(endpoint(), token, tarOf([{ name: `sessions/${good}/record.json`, data: Buffer.from('{}') }]));
    expect(stateFile?.failure).toMatchObject({ status: 400, message: expect.stringContaining('a record holds no file record.json') });
    expect((await getClientRecord(endpoint(), token, 'sessions', good)).record).toMatchObject({ state: 'complete' });
  });
});
