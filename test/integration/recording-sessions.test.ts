/**
 * Sessions recorded at the gateway, end to end: psql through `hoop connect` and the pg driver with
 * the extended protocol; the recording holds each statement (with bind parameters), the policy's
 * refusals, the rows as the client received them (masked), tags, errors and timing; `hoop sessions
 * ls|show|verify|replay|export` read it back; a recording altered on the gateway's disk is refused;
 * a user sees only their own sessions and an auditor everyone's; `results: none` keeps no rows.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExitCode } from '../../src/errors.js';
import { pgClient, psql } from '../harness/clients.js';
import { PolicyGitRepo } from '../harness/policy-git.js';
import { connectionYaml } from '../harness/postgres.js';
import { startStack, type HoopStack } from '../harness/stack.js';
import type { CliResult } from '../harness/run-cli.js';
import type { TunnelChannel } from '../../src/tunnel/channel.js';
import { execute, frontendMessage, int32, parse, sync } from '../harness/pg-frontend.js';
import { CLIENT, PASSED, SERVER } from '../../src/postgres/pipeline/recording/records.js';
import { alterArchivedFile, recordsIn } from '../harness/records.js';
import { eventually, pace } from '../harness/wait.js';

let stack: HoopStack;
let repo: PolicyGitRepo;

function policy(pgPart: string, extra = ''): string {
  return `version: 1
connections:
${pgPart}access:
  - { name: people, subjects: [alice, bob, audrey, erin], connections: [app], mode: read-write }
statements:
  rules:
    - { name: no-drop, match: { kinds: [drop] }, action: deny, message: DROP is not allowed }
masking:
  columns:
    - { table: public.customers, column: email, strategy: redact }
recording:
  auditors: [auditors]
${extra}`;
}

/** `hoop <argv>` against the stack as `subject` (in `groups`). */
async function hoop(argv: string[], subject: string, groups: string[] = []): Promise<CliResult> {
  return stack.run([...argv, '--gateway', stack.gateway.url, '--ca-file', stack.pki.caFile], { HOOP_TOKEN: await stack.token(subject, groups) });
}

/** Waits until the index holds `count` ended sessions of `subject` and none runs; resolves them, newest first. */
/** Runs `sql` in the raw session `opening` opens, then ends it as a client does (Terminate) and waits for it to close. */
async function oneStatement(opening: ReturnType<typeof stack.tunnel>, sql: string): Promise<void> {
  const f = await opening;
  await f.simple(sql);
  f.write(frontendMessage('X'));
  await f.closed();
}

async function sessionsOf(subject: string, count: number): Promise<Array<{ id: string; statements: number; refused: number }>> {
  return eventually(
    async () => {
      const r = await hoop(['sessions', 'ls', '--json'], subject);
      const sessions = (JSON.parse(r.stdout) as { sessions: Array<{ id: string; statements: number; refused: number; endedAt?: string }> }).sessions;
      expect(sessions.length, `sessions of ${subject} in the index`).toBeGreaterThanOrEqual(count);
      expect(
        sessions.filter((s) => s.endedAt === undefined),
        'sessions still running',
      ).toEqual([]);
      return sessions;
    },
    { timeout: 60_000, interval: 100 },
  );
}

beforeAll(async () => {
  repo = new PolicyGitRepo('hoop-recording-policy-');
  stack = await startStack({
    policy: async ({ pg }) => {
      await pg.psql(
        `create table customers (id int primary key, name text, email text);
         insert into customers select g, 'name ' || g, 'user' || g || '@example.com' from generate_series(1, 1500) g;`,
        { user: pg.users.scram },
      );
      repo.commit(policy(connectionYaml(pg, { name: 'app', password: '${env:APP_PASSWORD}' })));
      return `${repo.gatewayBlock(['${env:APP_*}'])}recording: { checkpointSeconds: 1 }\n`;
    },
  });
});
afterAll(async () => {
  await stack?.close();
  if (repo) rmSync(repo.base, { recursive: true, force: true });
});

describe('recorded sessions', () => {
  let id: string;

  it('records what psql and the pg driver did and saw, and hoop sessions shows and verifies it', async () => {
    const c = await stack.connect('app', await stack.token('alice'));
    const r = await psql(c.info, ['-c', 'select id, email from customers order by id limit 2', '-c', "select count(*) from customers where name like 'name 1%'"]);
    expect(r.code).toBe(0);
    const denied = await psql(c.info, ['-c', 'drop table customers']);
    expect(denied.stderr).toContain('DROP is not allowed');
    const client = await pgClient(c.info);
    await client.query('select name, email from customers where id = $1', [7]);
    await client.query('select id from customers order by id'); // 1500 rows: beyond the row cap
    await client.end();
    await c.stop();

    // Each client connection is a session: psql twice, then the pg driver (newest first).
    const all = await sessionsOf('alice', 3);
    expect(all).toHaveLength(3);
    expect(all.map((s) => [s.statements, s.refused])).toEqual([
      [2, 0],
      [1, 1],
      [2, 0],
    ]);
    id = all[0]!.id;
    const psqlSession = all[2]!.id;
    const byTable = JSON.parse((await hoop(['sessions', 'ls', '--json', '--table', 'public.customers'], 'alice')).stdout) as { sessions: Array<{ id: string; tables: string[]; written: string[] }> };
    expect(byTable.sessions.map((s) => s.id)).toEqual(all.map((s) => s.id));
    expect(byTable.sessions[2]).toMatchObject({ tables: ['customers'], written: [] });
    expect(byTable.sessions[1]).toMatchObject({ tables: ['customers'], written: ['customers'] }); // the DROP it tried
    expect((JSON.parse((await hoop(['sessions', 'ls', '--json', '--table', 'orders'], 'alice')).stdout) as { sessions: unknown[] }).sessions).toEqual([]);
    // The reviewer's question: which sessions received customers.email, and did it leave masked?
    const byColumn = JSON.parse((await hoop(['sessions', 'ls', '--json', '--column', 'customers.email'], 'alice')).stdout) as { sessions: Array<{ id: string; maskedColumns: unknown }> };
    expect(byColumn.sessions.map((s) => s.id)).toEqual([all[0]!.id, all[2]!.id]); // the pg driver's and the first psql's
    expect(byColumn.sessions[0]!.maskedColumns).toEqual([{ column: 'public.customers.email', strategy: 'redact' }]);
    const ls = await hoop(['sessions', 'ls'], 'alice');
    expect(ls.code).toBe(0);
    expect(ls.stdout.split('\n')[0]).toMatch(/^ID\s+STARTED\s+USER\s+VIA\s+CONNECTION\s+STATEMENTS\s+REFUSED\s+ROWS\s+ENDED\s+RECORDING\s+CLI RECORD$/);
    // The pg driver's session: 1 row, then 1,500.
    expect(ls.stdout).toMatch(new RegExp(`${id}\\s+\\S+ \\S+\\s+alice\\s+connect\\s+app\\s+2\\s+0\\s+1501\\s+client-terminated\\s+complete`));
    const refusedSession = (JSON.parse((await hoop(['sessions', 'ls', '--json', '--denied'], 'alice')).stdout) as { sessions: Array<{ id: string; refused: number }> }).sessions;
    expect(refusedSession).toHaveLength(1);
    expect(refusedSession[0]!.refused).toBe(1);

    const show = await hoop(['sessions', 'show', refusedSession[0]!.id], 'alice');
    expect(show.code).toBe(0);
    expect(show.stdout).toMatch(/^recording\s+verified: \d+ chunk\(s\), \d+ events, complete, signed by SHA256:/m);
    expect(show.stdout).toContain('app=> drop table customers');
    expect(show.stdout).toContain('-- hoop: denied by rule "no-drop"');

    // The pg driver's session: what it read, and the columns its statements named.
    const shown = await hoop(['sessions', 'show', id], 'alice');
    expect(shown.stdout).toMatch(/^rows\s+1501 read, 0 changed$/m);
    expect(shown.stdout).toMatch(/^columns\s+customers\.email, customers\.id, customers\.name$/m);
    const first = await hoop(['sessions', 'show', id, '--json'], 'alice');
    const doc = JSON.parse(first.stdout) as { events: Array<Record<string, unknown>>; verification: { ok: boolean } };
    expect(doc.verification.ok).toBe(true);
    const types = doc.events.map((e) => e.t);
    expect(types[0]).toBe('start');
    expect(types.at(-1)).toBe('end');
    expect(doc.events[0]).toMatchObject({ identity: { subject: 'alice' }, connection: 'app' });
    // The extended protocol: the statement, its parameter, and the masked row the client received.
    expect(doc.events).toContainEqual(expect.objectContaining({ t: 'parse', sql: 'select name, email from customers where id = $1' }));
    expect(doc.events).toContainEqual(expect.objectContaining({ t: 'bind', params: ['7'] }));
    expect(doc.events).toContainEqual(expect.objectContaining({ t: 'row', values: ['name 7', '[redacted]'] }));
    expect(doc.events).toContainEqual(expect.objectContaining({ t: 'columns', names: ['name', 'email'], masked: [null, { strategy: 'redact', origin: 'public.customers.email' }] }));
    expect(JSON.stringify(doc.events)).not.toContain('@example.com');
    // 1500 rows sent, 1000 recorded (the default cap), timing kept.
    expect(doc.events).toContainEqual(expect.objectContaining({ t: 'complete', tag: 'SELECT 1500', rows: 1500, unrecorded: 500 }));
    const complete = doc.events.find((e) => e.t === 'complete' && e.tag === 'SELECT 1500')!;
    expect(typeof complete.ms).toBe('number');
    expect(doc.events.filter((e) => e.t === 'row').length).toBe(1 + 1000); // the pg session: id 7, then the capped result
    // As written: the messages as they crossed, rows up to the cap (each DataRow whole), the 500 beyond it counted in one record.
    const raw = recordsIn(join(stack.dir, 'hoop-data', 'recordings', `${id}.tar`));
    const rows = raw.filter((r) => r.kind === SERVER && r.bytes[0] === 0x44);
    expect(rows).toHaveLength(1 + 1000);
    expect(rows[0]!.bytes.includes(Buffer.from('[redacted]'))).toBe(true);
    expect(raw.filter((r) => r.kind === PASSED).map((r) => r.bytes.readUInt32LE(0))).toEqual([500]);
    expect(raw.some((r) => r.kind === CLIENT && r.bytes[0] === 0x50 && r.bytes.includes(Buffer.from('select name, email from customers where id = $1')))).toBe(true);

    const verify = await hoop(['sessions', 'verify', id], 'alice');
    expect(verify.code).toBe(0);
    expect(verify.stdout).toMatch(new RegExp(`^session ${id}: verified: \\d+ chunk\\(s\\), \\d+ events, complete, signed by SHA256:\\S+$`, 'm'));

    const replay = await hoop(['sessions', 'replay', psqlSession, '--no-tty'], 'alice');
    expect(replay.stdout).toContain('app=> select id, email from customers order by id limit 2');
    expect(replay.stdout).toMatch(/^ +1 \| \[redacted\]$/m);
    expect(replay.stdout).toContain('(2 rows)');
    // Every line psql printed is in the replay as psql printed it: numbers right-aligned, text left.
    const replayed = replay.stdout.split('\n');
    for (const line of r.stdout.trimEnd().split('\n')) expect(replayed).toContain(line);

    const extended = await hoop(['sessions', 'replay', id, '--no-tty'], 'alice');
    expect(extended.stdout).toMatch(/^app=> select name, email from customers where id = \$1\n {3}-- parameters: "7"\n/m);
    const cast = (await hoop(['sessions', 'export', id, '--format', 'asciicast'], 'alice')).stdout.trim().split('\n');
    expect(JSON.parse(cast[0]!)).toMatchObject({ version: 2, width: 120, height: 40 });
    const v3 = (await hoop(['sessions', 'export', id, '--format', 'asciicast-v3'], 'alice')).stdout.trim().split('\n');
    expect(JSON.parse(v3[0]!)).toMatchObject({ version: 3, term: { cols: 120, rows: 40 } });
    expect(v3.length).toBe(cast.length);
    expect(cast.slice(1).every((l) => Array.isArray(JSON.parse(l)) && JSON.parse(l)[1] === 'o')).toBe(true);
    const jsonl = (await hoop(['sessions', 'export', id], 'alice')).stdout.trim().split('\n');
    expect(jsonl.length).toBe(doc.events.length);
  });

  it('a running session is listed from its start, and shows and verifies to its last checkpoint', async () => {
    const c = await stack.connect('app', await stack.token('alice'));
    const client = await pgClient(c.info);
    type Listed = { id: string; reason: string; recording: string; statements: number; endedAt?: string };
    let now: Listed | undefined;
    try {
      await client.query('select count(*) from customers');
      for (let i = 0; i < 50 && !now; i++) now = (JSON.parse((await hoop(['sessions', 'ls', '--json'], 'alice')).stdout) as { sessions: Listed[] }).sessions.find((s) => s.endedAt === undefined);
      expect(now).toMatchObject({ reason: 'running', recording: 'running', statements: 1 });
      // The CLI's record is in its spool (`local`) once its recording thread opened it, as the session started.
      await eventually(async () => {
        const ls = await hoop(['sessions', 'ls'], 'alice');
        expect(ls.stdout.split('\n')[1]).toMatch(new RegExp(`^${now!.id}\\s+\\S+ \\S+\\s+alice\\s+connect\\s+app\\s+1\\s+0\\s+1\\s+running\\s+running\\s+local$`)); // first
      });
      expect((await hoop(['sessions', 'ls', '--json'], 'bob')).stdout).not.toContain(now!.id);
      // A checkpoint is signed at least every second here (checkpointSeconds: 1): until one covers the statement, show says there is none yet, or shows less.
      const covered = (r: CliResult): boolean => r.code === 0 && r.stdout.includes('app=> select count(*) from customers');
      let show = await hoop(['sessions', 'show', now!.id], 'alice');
      for (let i = 0; i < 50 && !covered(show); i++) {
        if (show.code !== 0) expect(show.stderr).toContain('is running and its recording has no signed checkpoint yet');
        await pace(200); // poll interval: checked for its message on every round
        show = await hoop(['sessions', 'show', now!.id], 'alice');
      }
      expect(show.code).toBe(0);
      expect(show.stdout).toMatch(/^ended\s+not yet: the session is running$/m);
      expect(show.stdout).toMatch(/^recording\s+verified: \d+ chunk\(s\), \d+ events, running: verified to its last checkpoint/m);
      expect(show.stdout).toContain('app=> select count(*) from customers');
      expect(show.stdout).toContain('-- the session is still running: this is its recording to its last checkpoint');
      const verify = await hoop(['sessions', 'verify', now!.id], 'alice');
      expect(verify.code).toBe(0);
      expect(verify.stdout).toContain('running: verified to its last checkpoint');
      expect(readdirSync(join(stack.dir, 'hoop-data', 'snapshots', now!.id)).length).toBeGreaterThan(0);
    } finally {
      await client.end();
      await c.stop();
    }
    const ended = (await sessionsOf('alice', 4))[0]!;
    expect(ended).toMatchObject({ statements: 1, reason: 'client-terminated', recording: 'complete' });
    // Its snapshots went with its end (one taken as it ended goes once it is written).
    await eventually(() => expect(existsSync(join(stack.dir, 'hoop-data', 'snapshots', now!.id))).toBe(false), { timeout: 10_000, interval: 50 });
  });

  it("others see only their own sessions; an auditor sees everyone's", async () => {
    const bob = await hoop(['sessions', 'ls', '--json'], 'bob');
    expect((JSON.parse(bob.stdout) as { sessions: Array<{ id: string }> }).sessions.map((s) => s.id)).not.toContain(id);
    const peek = await hoop(['sessions', 'show', id], 'bob');
    expect(peek.code).toBe(ExitCode.DATA);
    expect(peek.stderr).toContain(`no session ${id} that you may see`);
    // An id of no session's shape is an unknown session too, not an endpoint the gateway lacks.
    for (const [argv, said] of [
      [['sessions', 'show', 'nope'], 'no session "nope": session ids are 8 to 64 letters'],
      [['sessions', 'replay', 'no.pe'], 'no session "no.pe"'],
      [['review', 'show', 'a_b'], 'no review "a_b"'],
    ] as const) {
      const r = await hoop([...argv], 'bob');
      expect(r.code, argv.join(' ')).toBe(ExitCode.DATA);
      expect(r.stderr, argv.join(' ')).toContain(said);
      expect(r.stderr, argv.join(' ')).not.toContain('upgrade');
    }
    const audrey = await hoop(['sessions', 'ls', '--user', 'alice', '--json'], 'audrey', ['auditors']);
    expect((JSON.parse(audrey.stdout) as { sessions: Array<{ id: string }> }).sessions.map((s) => s.id)).toContain(id);
    expect((await hoop(['sessions', 'verify', id], 'audrey', ['auditors'])).code).toBe(0);
  });

  it('hoop exec returns once the gateway has ended its session: listed as ending or ended at once, and `last` names it', async () => {
    for (let i = 1; i <= 3; i++) {
      const r = await hoop(['exec', 'app', '--csv', '-c', `select ${i} as n`], 'erin');
      expect(r.stdout).toBe(`n\n${i}\n`);
      const listed = (JSON.parse((await hoop(['sessions', 'ls', '--json'], 'erin')).stdout) as { sessions: Array<{ startedAt: string; reason: string }> }).sessions;
      expect(listed).toHaveLength(i);
      expect(listed.toSorted((a, b) => b.startedAt.localeCompare(a.startedAt))[0]!.reason).not.toBe('running');
      const show = await hoop(['sessions', 'show', 'last'], 'erin');
      expect(show.stderr).toBe('');
      expect(show.stdout).toContain(`app=> select ${i} as n`);
    }
  });

  it("a recording altered on the gateway's disk is refused, saying what failed", async () => {
    // One byte of its chunk, inside the archive the gateway keeps it in.
    const putBack = alterArchivedFile(join(stack.dir, 'hoop-data', 'recordings', `${id}.tar`), 'records-000001.gz', (chunk) => {
      chunk[chunk.length >> 1] ^= 0x20;
    });
    try {
      const verify = await hoop(['sessions', 'verify', id], 'alice');
      expect(verify.code).toBe(1);
      expect(verify.stdout).toContain('FAILED: records-000001.gz does not match its SHA-256 in SHA256SUMS');
      const show = await hoop(['sessions', 'show', id], 'alice');
      expect(show.code).toBe(1);
      expect(show.stderr).toContain(`the recording of session ${id} does not verify`);
    } finally {
      putBack();
    }
  });

  it("another session's recording copied over this one's, whole and signed, fails: a recording is bound to its id", async () => {
    const token = await stack.token('alice');
    const other = await stack.tunnel('app', token, { sessionId: 'copied-from-0001' });
    await other.simple('select 42 as other_session');
    other.write(frontendMessage('X'));
    await other.closed();
    await sessionsOf('alice', 2);
    const data = join(stack.dir, 'hoop-data', 'recordings');
    const mine = join(data, `${id}.tar`);
    const saved = readFileSync(mine);
    writeFileSync(mine, readFileSync(join(data, 'copied-from-0001.tar')));
    try {
      const verify = await hoop(['sessions', 'verify', id], 'alice');
      expect(verify.code).toBe(1);
      expect(verify.stdout).toContain(`it is the recording of copied-from-0001, not of ${id} (its files were copied over)`);
      const replay = await hoop(['sessions', 'replay', id], 'alice');
      expect(replay.code).toBe(1);
      expect(replay.stdout).not.toContain('other_session');
    } finally {
      writeFileSync(mine, saved);
    }
    expect((await hoop(['sessions', 'verify', id], 'alice')).code).toBe(0);
  });

  it('verify --file checks a recording on disk (the archive the gateway keeps) with a given key, and refuses another key', async () => {
    const dir = join(stack.dir, 'hoop-data', 'recordings', `${id}.tar`);
    const pem = readFileSync(join(stack.dir, 'hoop-data', 'keys', 'recording-ed25519.pem'), 'utf8');
    const { createPrivateKey } = await import('node:crypto');
    const { sshPublicKeyLine } = await import('../../src/recording/sshsig.js');
    const line = sshPublicKeyLine(createPrivateKey(pem));
    const ok = await stack.run(['sessions', 'verify', '--file', dir, '--key', line]);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toContain(`${dir} (recording ${id}): verified:`);
    // With the id it must be: another id fails.
    expect((await stack.run(['sessions', 'verify', '--file', dir, id, '--key', line])).code).toBe(0);
    const wrong = await stack.run(['sessions', 'verify', '--file', dir, 'someone-else-01', '--key', line]);
    expect(wrong.code).toBe(1);
    expect(wrong.stdout).toContain(`it is the recording of ${id}, not of someone-else-01`);
    const other = await stack.run(['sessions', 'verify', '--file', dir, '--key', 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKnTgBz2uMe2mHZkvFcvkd2fzvQoa4XcNdn93vSKCvc2']);
    expect(other.code).toBe(1);
    expect(other.stdout).toMatch(/FAILED: SHA256SUMS: signed by SHA256:\S+, which is not a trusted key/);
  });

  it('the evidence bundle checks with the commands its README gives (sha256sum, ssh-keygen) and nothing of hoop; altered, it fails them', async () => {
    const exported = await hoop(['sessions', 'export', id, '--format', 'bundle'], 'alice');
    expect(exported.code, exported.stderr).toBe(0);
    const out = join(stack.dir, 'bundle');
    mkdirSync(out, { recursive: true });
    writeFileSync(join(out, 'evidence.tar.gz'), exported.stdoutBytes);
    execFileSync('tar', ['-xzf', 'evidence.tar.gz'], { cwd: out });
    const root = join(out, `hoop-session-${id}`);
    expect(readdirSync(root).sort()).toEqual(['README.txt', 'allowed_signers', 'recording', 'session.json']);
    expect(JSON.parse(readFileSync(join(root, 'session.json'), 'utf8'))).toMatchObject({ id, subject: 'alice' });
    const readme = readFileSync(join(root, 'README.txt'), 'utf8');
    const commands = readme
      .split('\n')
      .filter((l) => l.startsWith('  ') && l.trim() !== '')
      .map((l) => l.trim());
    expect(commands).toEqual(['cd recording', expect.stringMatching(/^sha256sum -c SHA256SUMS$/), expect.stringMatching(/^ssh-keygen -Y verify /)]);
    const check = (): { code: number; out: string } => {
      try {
        return { code: 0, out: execFileSync('bash', ['-c', commands.join(' && ')], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }) };
      } catch (err) {
        const e = err as { status: number; stdout: string; stderr: string };
        return { code: e.status, out: `${e.stdout}${e.stderr}` };
      }
    };
    const good = check();
    expect(good, good.out).toMatchObject({ code: 0 });
    expect(good.out).toMatch(/records-000001\.gz: OK/);
    // An altered manifest fails the check.
    const sums = join(root, 'recording', 'SHA256SUMS');
    writeFileSync(sums, readFileSync(sums, 'utf8').replace(/^[0-9a-f]{64}/, '0'.repeat(64)));
    expect(check().code).not.toBe(0);
    // What stdout received is the gzip stream itself.
    expect(exported.stdoutBytes.subarray(0, 2)).toEqual(Buffer.from([0x1f, 0x8b]));
  });

  it('a million-row result: 1000 rows recorded, the rest counted, the recording small', async () => {
    const known = (await sessionsOf('bob', 0)).length;
    const c = await stack.connect('app', await stack.token('bob'));
    const r = await psql(c.info, ['-At', '-o', '/dev/null', '-c', 'select g, md5(g::text) from generate_series(1, 1000000) g']);
    expect(r.code).toBe(0);
    await c.stop();
    const id = (await sessionsOf('bob', known + 1))[0]!.id;
    const doc = JSON.parse((await hoop(['sessions', 'show', id, '--json'], 'bob')).stdout) as { events: Array<Record<string, unknown>>; verification: { ok: boolean } };
    expect(doc.verification.ok).toBe(true);
    expect(doc.events.filter((e) => e.t === 'row')).toHaveLength(1000);
    expect(doc.events).toContainEqual(expect.objectContaining({ t: 'complete', tag: 'SELECT 1000000', rows: 1_000_000, unrecorded: 999_000 }));
    expect(statSync(join(stack.dir, 'hoop-data', 'recordings', `${id}.tar`)).size).toBeLessThan(200_000);
  });

  it('a raw client on the tunnel: pipelined extended protocol with a binary parameter, a refusal, and SQL shaped like recording events are recorded as they were', async () => {
    const known = (await sessionsOf('bob', 0)).length;
    const f = await stack.tunnel('app', await stack.token('bob'));
    const forged = `select '"}\n{"t":"end","at":0}' as x`;
    const from = f.raw.length;
    f.write(
      Buffer.concat([
        parse('s1', 'select email from customers where id = $1::int'),
        frontendMessage('B', '', 's1', 1, 1, 1, int32(4), int32(3), 0), // one binary int4 parameter: 3
        execute(''),
        sync(),
        frontendMessage('Q', 'drop table customers'),
        frontendMessage('Q', forged),
      ]),
    );
    const got = await f.messagesSince(from, 3);
    const rows = got.filter((m) => m.type === 0x44).map((m) => m.body.toString('latin1'));
    expect(rows[0]).toContain('[redacted]');
    expect(got.some((m) => m.type === 0x45 && m.body.toString().includes('DROP is not allowed'))).toBe(true);
    f.write(frontendMessage('X'));
    await f.closed();
    expect((await stack.pg.psql('select count(*) from customers', { user: stack.pg.users.scram })).trim()).toBe('1500'); // the DROP never ran

    const id = (await sessionsOf('bob', known + 1))[0]!.id;
    const doc = JSON.parse((await hoop(['sessions', 'show', id, '--json'], 'bob')).stdout) as { events: Array<Record<string, unknown>>; verification: { ok: boolean } };
    expect(doc.verification.ok).toBe(true);
    const ts = doc.events.map((e) => e.t);
    expect(ts.filter((t) => t === 'end')).toEqual(['end']); // the forged text is a value, not an event
    expect(ts.at(-1)).toBe('end');
    expect(doc.events).toContainEqual(expect.objectContaining({ t: 'parse', statement: 's1' }));
    expect(doc.events).toContainEqual(expect.objectContaining({ t: 'bind', statement: 's1', params: [`base64:${int32(3).toString('base64')}`] }));
    expect(doc.events).toContainEqual(expect.objectContaining({ t: 'row', values: ['[redacted]'] }));
    expect(doc.events).toContainEqual(expect.objectContaining({ t: 'decision', action: 'deny', rule: 'no-drop', message: 'Q' }));
    expect(doc.events).toContainEqual(expect.objectContaining({ t: 'query', sql: forged }));
    expect(JSON.stringify(doc.events)).not.toContain('@example.com');
  });

  it('a session id already used is never given again: a recording is never written over, even by two tunnels at once', async () => {
    const token = await stack.token('bob');
    const known = (await sessionsOf('bob', 0)).length;
    await oneStatement(stack.tunnel('app', token, { sessionId: 'reused-id-0001' }), 'select 1 as first');
    await sessionsOf('bob', known + 1);
    // The same id again, twice at once.
    const again = [stack.tunnel('app', token, { sessionId: 'reused-id-0001' }), stack.tunnel('app', token, { sessionId: 'reused-id-0001' })];
    for (const f of again) await oneStatement(f, 'select 2 as again');
    const ids = (await sessionsOf('bob', known + 3)).map((s) => s.id);
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids.filter((id) => id === 'reused-id-0001')).toHaveLength(1);
    const doc = JSON.parse((await hoop(['sessions', 'show', 'reused-id-0001', '--json'], 'bob')).stdout) as { events: Array<Record<string, unknown>>; verification: { ok: boolean } };
    expect(doc.verification.ok).toBe(true);
    expect(doc.events).toContainEqual(expect.objectContaining({ t: 'query', sql: 'select 1 as first' }));
    expect(JSON.stringify(doc.events)).not.toContain('again');
  });

  it("an id of the gateway's own shape (a UUID, any case) is never taken from a client: the session gets a new one, and the first recording stays its own", async () => {
    const token = await stack.token('bob');
    const known = (await sessionsOf('bob', 0)).length;
    // A proposal the gateway does not take (too short): the session gets an id the gateway made.
    await oneStatement(stack.tunnel('app', token, { sessionId: 'short' }), 'select 1 as made_by_gateway');
    const made = (await sessionsOf('bob', known + 1))[0]!.id;
    expect(made).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    // That id proposed again, as it is and in capitals, and a UUID nobody had: none is taken.
    const fresh = '0f0e0d0c-0b0a-4909-8807-060504030201';
    for (const proposed of [made, made.toUpperCase(), fresh]) await oneStatement(stack.tunnel('app', token, { sessionId: proposed }), `select '${proposed}' as again`);
    const ids = (await sessionsOf('bob', known + 4)).map((s) => s.id);
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids.filter((id) => id.toLowerCase() === made || id === fresh)).toEqual([made]);
    const doc = JSON.parse((await hoop(['sessions', 'show', made, '--json'], 'bob')).stdout) as { events: Array<Record<string, unknown>>; verification: { ok: boolean } };
    expect(doc.verification.ok).toBe(true);
    expect(doc.events).toContainEqual(expect.objectContaining({ t: 'query', sql: 'select 1 as made_by_gateway' }));
    expect(JSON.stringify(doc.events)).not.toContain('again');
  });

  it("a raw client's context messages: forged event fields refused, at most 256 K characters recorded, then one context-dropped", async () => {
    const token = await stack.token('bob');
    const known = (await sessionsOf('bob', 0)).length;
    const f = await stack.tunnel('app', token);
    const channel = f.stream as TunnelChannel;
    channel.sendControl({ type: 'context', fields: { t: 'end', reason: 'forged' } });
    channel.sendControl({ type: 'context', fields: { at: '0' } });
    channel.sendControl({ type: 'context', fields: { intent: { nested: true } } });
    for (let i = 0; i < 70; i++) channel.sendControl({ type: 'context', fields: { source: 'raw', intent: `${i} ${'x'.repeat(4000)}` } });
    const answered = await f.simple('select 42 as after_contexts');
    expect(answered.some((m) => m.type === 0x44)).toBe(true); // the session goes on
    f.write(frontendMessage('X'));
    await f.closed();
    const id = (await sessionsOf('bob', known + 1))[0]!.id;
    const doc = JSON.parse((await hoop(['sessions', 'show', id, '--json'], 'bob')).stdout) as { events: Array<Record<string, unknown>>; verification: { ok: boolean } };
    expect(doc.verification.ok).toBe(true);
    const types = doc.events.map((e) => e.t);
    expect(types.filter((t) => t === 'end')).toHaveLength(1);
    expect(doc.events.at(-1)).toMatchObject({ t: 'end', reason: 'client-terminated' });
    const contexts = doc.events.filter((e) => e.t === 'context');
    expect(contexts.every((e) => e.source === 'raw')).toBe(true);
    expect(contexts.length).toBe(Math.floor((256 * 1024) / 4005)); // the budget, whole messages
    expect(types.filter((t) => t === 'context-dropped')).toHaveLength(1);
    expect(types.indexOf('context-dropped')).toBeLessThan(types.indexOf('query'));
  });

  it('results: none keeps statements and shapes, no rows', async () => {
    repo.commit(policy(readFileSync(join(repo.dir, 'hoop.yaml'), 'utf8').split('connections:\n')[1]!.split('access:')[0]!, '  results: none\n'));
    await stack.gateway.policy!.refresh();
    const known = (await sessionsOf('bob', 0)).length;
    const c = await stack.connect('app', await stack.token('bob'));
    expect((await psql(c.info, ['-c', 'select id, name from customers order by id limit 3'])).code).toBe(0);
    await c.stop();
    const bobs = (await sessionsOf('bob', known + 1))[0]!.id;
    const doc = JSON.parse((await hoop(['sessions', 'show', bobs, '--json'], 'bob')).stdout) as { events: Array<Record<string, unknown>> };
    expect(doc.events).toContainEqual(expect.objectContaining({ t: 'columns', names: ['id', 'name'] }));
    expect(doc.events).toContainEqual(expect.objectContaining({ t: 'complete', tag: 'SELECT 3', rows: 3, unrecorded: 3 }));
    expect(doc.events.filter((e) => e.t === 'row')).toEqual([]);
  });
});

describe('retention', () => {
  it('recording.retentionDays deletes older recordings, keeps the sessions listed as deleted, and logs it', async () => {
    const { GatewayRecordings } = await import('../../src/gateway/records/recordings.js');
    const { mkdtempSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { silentLogger } = await import('../../src/log.js');
    const { storedSummary } = await import('../harness/stored-records.js');
    const data = mkdtempSync(join(tmpdir(), 'hoop-retention-'));
    try {
      const recordings = await GatewayRecordings.open(data, silentLogger);
      const day = 86_400_000;
      const now = Date.parse('2026-11-22T12:00:00Z');
      for (const [id, ago] of [
        ['old-session-1', 40],
        ['new-session-1', 3],
      ] as const) {
        const w = await recordings.start(id, 'postgres');
        w.event({ t: 'start', at: now - ago * day });
        await w.close();
        await recordings.index({ ...storedSummary(id), startedAt: new Date(now - ago * day).toISOString(), endedAt: new Date(now - ago * day).toISOString() });
      }
      expect(await recordings.prune(30, now)).toEqual(['old-session-1']);
      // The old recording's files are gone; its empty archive stays, so its id is never reused.
      expect(readdirSync(join(data, 'recordings')).sort()).toEqual(['new-session-1.tar', 'old-session-1.tar']);
      expect(statSync(join(data, 'recordings', 'old-session-1.tar')).size).toBe(0);
      expect(await recordings.recorded('old-session-1')).toBe(true);
      const listed = await recordings.sessions();
      expect(listed.map((s) => [s.id, s.recording])).toEqual([
        ['new-session-1', 'complete'],
        ['old-session-1', 'deleted'],
      ]);
      expect(await recordings.prune(30, now)).toEqual([]); // once
      await recordings.stop();
    } finally {
      rmSync(data, { recursive: true, force: true });
    }
  });
});
