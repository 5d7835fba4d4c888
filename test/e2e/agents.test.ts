/**
 * Agents' commands as a user or an agent runs them, the built CLI in its own process:
 * - `hoop run -- <command>` wraps psql, a shell and a small agent on the `pg` driver: the command
 *   finds its connections in its environment and nothing else, its exit code and signals pass
 *   through, the ports close when it exits, and the gateway's sessions carry the run id;
 * - `hoop exec` prints what psql prints (aligned, CSV), JSON lines, exits with documented codes,
 *   and streams a result larger than its heap;
 * - `hoop mcp` driven by the MCP SDK's own client: masked rows, refusals as tool errors, the
 *   agent's intent in the gateway's recording.
 */
import { cpSync, existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { appendFile, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runProcess } from '../harness/clients.js';
import { frontendMessage } from '../harness/pg-frontend.js';
import { RawFrontend } from '../harness/raw-pg.js';
import { alterArchivedFile } from '../harness/records.js';
import { rawTunnel } from '../harness/raw-tunnel.js';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { HOOP_BIN, runSaid, spawnHoop, type HoopProcessResult } from '../harness/hoop-process.js';
import { PolicyGitRepo } from '../harness/policy-git.js';
import { connectionYaml } from '../harness/postgres.js';
import { startStack, type HoopStack } from '../harness/stack.js';
import { eventually } from '../harness/wait.js';

const nodeModules = resolve(import.meta.dirname, '../../node_modules');
let stack: HoopStack;
let token: string;

let repo: PolicyGitRepo;

/** The gateway's flags and this user's token, for a spawned hoop. */
function gatewayArgs(): string[] {
  return ['--gateway', stack.gateway.url, '--ca-file', stack.pki.caFile];
}

/** `hoop run <args>` with only `env` (and PATH). */
function hoopRun(args: string[], options: { env?: NodeJS.ProcessEnv; cwd?: string; onStdout?: Parameters<typeof spawnHoop>[1]['onStdout'] } = {}): Promise<HoopProcessResult> {
  return spawnHoop(['run', '--quiet', ...gatewayArgs(), ...args], {
    env: { HOOP_TOKEN: token, XDG_RUNTIME_DIR: stack.runtime, HOOP_CONFIG_DIR: join(stack.dir, 'cli'), ...options.env },
    cwd: options.cwd ?? stack.dir,
    ...(options.onStdout ? { onStdout: options.onStdout } : {}),
  });
}

/** Whether something listens on 127.0.0.1:`port`. */
function listening(port: number): Promise<boolean> {
  return new Promise((r) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      r(true);
    });
    s.once('error', () => r(false));
  });
}

beforeAll(async () => {
  if (!existsSync(resolve(import.meta.dirname, '../../dist/cli.js'))) throw new Error('run `npm run build` first (npm test does)');
  repo = new PolicyGitRepo('hoop-agents-policy-');
  stack = await startStack({
    policy: async ({ pg }) => {
      await pg.psql(
        `create table agent_items (id int primary key, name text, price numeric, active bool, tags jsonb, note text);
         insert into agent_items values (1, 'pen', 1.50, true, '{"colour": "blue"}', null), (2, 'Zoë''s "pad", ruled', 12, false, '[]', 'two
lines'), (3, '', 100.25, null, null, 'x');
         create table agent_people (id int primary key, email text);
         insert into agent_people values (1, 'ada@example.com'), (2, 'grace@example.com');
         create table agent_cards (id int, card text, ssn text) partition by range (id);
         create table agent_cards_1 partition of agent_cards for values from (0) to (100);
         insert into agent_cards values (1, '4111111111111111', '123-45-6789');
         create table agent_jobs (id int primary key);
         insert into agent_jobs select g from generate_series(1, 3) g;
         grant all on agent_jobs to public;`,
        { user: pg.users.scram },
      );
      repo.commit(`version: 1
connections:
${connectionYaml(pg, { name: 'app', password: '${env:APP_PASSWORD}' })}${connectionYaml(pg, { name: 'app-md5', user: pg.users.md5.user, password: '${env:MD5_PASSWORD}' })}access:
  - { name: people, subjects: [alice], connections: [app, app-md5], mode: read-write }
statements:
  reviewers:
    - { connections: [app-md5], groups: [dba], timeout: 1min }
  rules:
    - { name: no-drop, match: { kinds: [drop] }, action: deny, message: DROP is not allowed }
    - { name: review-deletes, match: { kinds: [delete] }, action: review, message: deletes need a reviewer }
masking:
  columns:
    - { table: public.agent_people, column: email, strategy: redact }
    - { table: public.agent_cards, column: card, strategy: last4 }
  names:
    - { pattern: '^ssn$', strategy: redact }
`);
      return repo.gatewayBlock(['${env:APP_*}', '${env:MD5_*}']);
    },
  });
  token = await stack.token('alice');
});
afterAll(async () => {
  await stack?.close();
  if (repo) rmSync(repo.base, { recursive: true, force: true });
});

describe('hoop run', () => {
  it("runs psql (and hoop exec) against the connection through the gateway, and the gateway's sessions carry the run id", async () => {
    const exec = `${JSON.stringify(process.execPath)} ${JSON.stringify(HOOP_BIN)} exec app -c "select 1" -c "select 2"`;
    const r = await hoopRun(['--connect', 'app', '--', 'sh', '-c', `echo "run=$HOOP_RUN_ID"; psql -X -At -c "select current_user, 40 + 2"; ${exec} >/dev/null`], {
      env: { HOOP_GATEWAY: stack.gateway.url, HOOP_CA_FILE: stack.pki.caFile },
    });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`${stack.pg.users.scram.user}|42`);
    const runId = /^run=(run-[A-Za-z0-9_-]+)$/m.exec(r.stdout)![1]!;
    let sessions: Array<{ runId?: string; statements: number; endedAt?: string }> = [];
    for (let i = 0; i < 50 && sessions.filter((s) => s.endedAt).length < 2; i++) {
      const ls = await stack.run(['sessions', 'ls', '--json', '--run', runId, ...gatewayArgs()], { HOOP_TOKEN: token });
      sessions = (JSON.parse(ls.stdout) as { sessions: typeof sessions }).sessions;
    }
    // Newest first: hoop exec's session (two statements), then psql's.
    expect(sessions).toEqual([expect.objectContaining({ runId, statements: 2 }), expect.objectContaining({ runId, statements: 1 })]);
    const other = await stack.run(['sessions', 'ls', '--json', '--run', 'run-of-someone-else', ...gatewayArgs()], { HOOP_TOKEN: token });
    expect((JSON.parse(other.stdout) as { sessions: unknown[] }).sessions).toEqual([]);
  });

  it('says its id on stderr as it begins (the command sees the same in HOOP_RUN_ID), as one JSON line with --json, and nothing with --quiet', async () => {
    const env = { HOOP_TOKEN: token, XDG_RUNTIME_DIR: stack.runtime, HOOP_CONFIG_DIR: join(stack.dir, 'cli') };
    const said = await spawnHoop(['run', ...gatewayArgs(), '--connect', 'app', '--', 'sh', '-c', 'echo "$HOOP_RUN_ID"'], { env, cwd: stack.dir });
    expect(said.code, said.stderr).toBe(0);
    expect(said.stderr).toBe(runSaid(said.stdout.trim()));
    const json = await spawnHoop(['run', '--json', ...gatewayArgs(), '--connect', 'app', '--', 'sh', '-c', 'echo "$HOOP_RUN_ID"'], { env, cwd: stack.dir });
    expect(JSON.parse(json.stderr)).toEqual({ run: json.stdout.trim(), connections: ['app'], isolation: expect.any(String) });
    const quiet = await spawnHoop(['run', '-q', ...gatewayArgs(), '--connect', 'app', '--', 'true'], { env, cwd: stack.dir });
    expect(quiet).toEqual({ code: 0, stdout: '', stderr: '' });
  });

  it('--prompt: each session of the run starts with what the run was for; sessions replay --run plays them in order, the prompt first', async () => {
    await writeFile(join(stack.dir, 'prompt.txt'), 'Count the items, then the people.\n');
    const r = await hoopRun([
      '--connect',
      'app',
      '--prompt-file',
      'prompt.txt',
      '--',
      'sh',
      '-c',
      'echo "run=$HOOP_RUN_ID"; psql -X -At -c "select count(*) from agent_items"; psql -X -At -c "select count(*) from agent_people"',
    ]);
    expect(r.code, r.stderr).toBe(0);
    const runId = /^run=(\S+)$/m.exec(r.stdout)![1]!;
    // Both sessions recorded and closed, and the run's own record uploaded: then the replay tells it all.
    const replay = await eventually(
      async () => {
        const r = await stack.run(['sessions', 'replay', runId, '--run', '--no-tty', ...gatewayArgs()], { HOOP_TOKEN: token });
        expect(r.code, r.stderr).toBe(0);
        expect(r.stdout).toContain('agent_people');
        expect(r.stdout).toContain("-- the run's command exited with 0");
        return r.stdout;
      },
      { timeout: 60_000, interval: 200 },
    );
    const lines = replay.split('\n');
    // The run's own record (signed by its CLI) first: the command and its prompt.
    expect(lines[0]).toMatch(new RegExp(`^-- run ${runId} by alice on \\S+ \\(signed by its CLI, SHA256:`));
    expect(lines[1]).toBe('-- the agent: sh, contained (bwrap)');
    expect(lines[2]).toBe('-- the run\'s prompt: "Count the items, then the people."');
    expect(lines[3]).toMatch(new RegExp(`^-- session \\S+ of alice's agent sh via run \\(run ${runId}\\) on app, from `));
    // Then each session, opening with the same claim as the gateway recorded it.
    const context = `-- client (run) says: run="${runId}" command="sh -c 'echo \\"run=$HOOP_RUN_ID\\"; psql`;
    expect(lines[4]).toContain(context);
    expect(lines[4]).toContain('prompt="Count the items, then the people."');
    expect(lines[5]).toBe('app=> select count(*) from agent_items');
    expect(lines.filter(Boolean).at(-1)).toMatch(/^-- the run's command exited with 0 after/);
    expect(replay.indexOf('agent_items')).toBeLessThan(replay.indexOf('agent_people'));
    expect(lines.filter((l) => l.startsWith('-- client (run) says:'))).toHaveLength(2); // at the start of each session
    const none = await stack.run(['sessions', 'replay', 'run-nobody-made', '--run', '--no-tty', ...gatewayArgs()], { HOOP_TOKEN: token });
    expect(none.code).toBe(65);
    expect(none.stderr).toContain('no sessions of run run-nobody-made that you may see');

    // sessions verify <run-id>: the run's own record and each of its sessions, as verify <id> checks one.
    const verify = (id: string) => stack.run(['sessions', 'verify', id, ...gatewayArgs()], { HOOP_TOKEN: token });
    const verified = await verify(runId);
    expect(verified.code, verified.stderr).toBe(0);
    expect(verified.stdout).toMatch(new RegExp(`^run ${runId} \\(the record its CLI signed, SHA256:\\S+\\): verified:`, 'm'));
    const sessionIds = [...verified.stdout.matchAll(/^session (\S+): verified:/gm)].map((m) => m[1]!);
    expect(sessionIds).toHaveLength(2);
    expect(verified.stdout).toContain(`run ${runId}: verified: its record and 2 session(s)`);
    // One of its sessions altered on the gateway's disk: the run does not verify, and the line says which.
    const putBack = alterArchivedFile(join(stack.dir, 'hoop-data', 'recordings', `${sessionIds[1]}.tar`), 'SHA256SUMS', (manifest) => {
      manifest[0] = manifest[0] === 0x30 ? 0x31 : 0x30;
    });
    try {
      const broken = await verify(runId);
      expect(broken.code).toBe(1);
      expect(broken.stdout).toMatch(new RegExp(`^session ${sessionIds[1]}: FAILED`, 'm'));
      expect(broken.stdout).toMatch(new RegExp(`^session ${sessionIds[0]}: verified:`, 'm'));
      expect(broken.stdout).toContain(`run ${runId}: 1 problem(s)`);
    } finally {
      putBack();
    }
    // Another session put under the run by a line appended to the gateway's (unsigned) index: the run's record does not name it, and its signed start says no such run.
    const index = join(stack.dir, 'hoop-data', 'sessions.jsonl');
    const indexed = await readFile(index, 'utf8');
    const stranger = indexed
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { id: string; runId?: string })
      .find((l) => l.runId !== runId && !sessionIds.includes(l.id));
    expect(stranger).toBeDefined();
    await appendFile(index, `${JSON.stringify({ ...stranger, runId })}\n`);
    try {
      const grafted = await verify(runId);
      expect(grafted.code).toBe(1);
      expect(grafted.stderr).toContain(`the gateway lists session ${stranger!.id} under run ${runId}, which the run's record does not name`);
      expect(grafted.stderr).toContain(`session ${stranger!.id} is listed under run ${runId}, but its signed recording says`);
    } finally {
      // The index is only appended to: its own line again puts the session back where it was.
      await appendFile(index, `${JSON.stringify(stranger)}\n`);
    }
    expect((await verify('run-nobody-made-it-0000')).code).toBe(65);
  });

  it("sessions export <run-id> --format bundle: the run's evidence, checked with standard tools alone (sha256sum, ssh-keygen, jq), the CLI's records cross-checked against the gateway's", async () => {
    const r = await hoopRun([
      '--connect',
      'app',
      '--prompt',
      'Count the items; then the people.',
      '--',
      'sh',
      '-c',
      'echo "run=$HOOP_RUN_ID"; psql -X -At -c "select count(*) from agent_items" -c "select nope from agent_items"; psql -X -At -c "select count(*) from agent_people"; git init -q "planted-$HOOP_RUN_ID"',
    ]);
    const runId = /^run=(\S+)$/m.exec(r.stdout)![1]!;
    expect(r.stderr).toContain(`refused: planted-${runId}/.git (and the `);
    expect(r.stderr).toContain(`entries in it): it is a repository the command made, whose configuration and hooks git would take as yours`);
    // Replayed by its id alone: the prompt first, then the sessions in order.
    const replay = await eventually(
      async () => {
        const p = await stack.run(['sessions', 'replay', runId, '--no-tty', ...gatewayArgs()], { HOOP_TOKEN: token });
        expect(p.stdout).toContain("-- the run's command exited with");
        return p.stdout;
      },
      { timeout: 60_000, interval: 200 },
    );
    // What the gate refused of the command's changes is in the run's record too.
    expect(replay).toMatch(new RegExp(`-- the gate refused the command's change to "\\S+/planted-${runId}/\\.git": it is a repository the command made`));
    expect(replay).toContain("-- the run's changes went through the gate: 1 added; 1 refused");
    const items = replay.indexOf('app=> select count(*) from agent_items');
    expect(replay.indexOf('-- the run\'s prompt: "Count the items; then the people."')).toBeLessThan(items);
    expect(items).toBeGreaterThan(0);
    expect(items).toBeLessThan(replay.indexOf('app=> select count(*) from agent_people'));
    const dir = await mkdtemp(join(stack.dir, 'bundle-'));
    /** The run's bundle, exported once its records are in, and unpacked: where it is, and its verify.sh. */
    const unpacked = async (id: string) => {
      await eventually(
        async () => {
          const e = await runProcess('sh', ['-c', `node ${HOOP_BIN} sessions export ${id} --format bundle ${gatewayArgs().join(' ')} > ${dir}/${id}.tar.gz`], {
            env: { ...process.env, HOOP_TOKEN: token },
          });
          expect(e.code, e.stderr).toBe(0);
        },
        { timeout: 60_000, interval: 500 },
      );
      expect((await runProcess('tar', ['xzf', `${dir}/${id}.tar.gz`, '-C', dir])).code).toBe(0);
      const at = join(dir, `hoop-run-${id}`);
      return { root: at, check: () => runProcess('sh', ['verify.sh'], { cwd: at, env: { PATH: process.env.PATH } }) };
    };
    const { root, check } = await unpacked(runId);
    const ok = await check();
    expect(ok.code, ok.stdout).toBe(0);
    expect(ok.stdout).toContain('ok   run: its record names the 2 session(s) the gateway recorded');
    expect(ok.stdout).toMatch(/verified: every record of the run\n$/);
    // The script's cross-check counts what hoop's own does.
    const sessions = (
      JSON.parse((await stack.run(['sessions', 'ls', '--json', '--run', runId, ...gatewayArgs()], { HOOP_TOKEN: token })).stdout) as { sessions: Array<{ id: string; startedAt: string }> }
    ).sessions.sort((a, b) => a.startedAt.localeCompare(b.startedAt));
    for (const s of sessions) {
      const hoops = /agree on (\d+) statement\(s\) and (\d+) outcome\(s\)/.exec((await stack.run(['sessions', 'verify', s.id, ...gatewayArgs()], { HOOP_TOKEN: token })).stdout);
      expect(hoops, `hoop verifies ${s.id}`).not.toBeNull();
      expect(ok.stdout).toContain(`ok   session ${s.id}: the gateway's and the CLI's records agree on ${hoops![1]} statement(s) and ${hoops![2]} outcome(s)`);
    }
    // The first session's CLI record swapped for the second's: its signature holds, its id and its account do not.
    const [first, second] = sessions.map((s) => join(root, 'sessions', s.id, 'client'));
    rmSync(first!, { recursive: true });
    cpSync(second!, first!, { recursive: true });
    const swapped = await check();
    expect(swapped.code).toBe(1);
    expect(swapped.stdout).toContain(`FAIL sessions/${sessions[0]!.id}/client/records-000001.gz: not chunk 1 of recording ${sessions[0]!.id}`);
    expect(swapped.stdout).toMatch(
      new RegExp(
        `FAIL session ${sessions[0]!.id}: the records DIFFER:\n +statement 1: the gateway recorded \\{"t":"query","sql":"select count\\(\\*\\) from agent_items"\\}, the CLI \\{"t":"query","sql":"select count\\(\\*\\) from agent_people"\\}`,
      ),
    );
    expect(swapped.stdout).toMatch(/NOT verified/);
    // A chunk changed: its hash no longer matches the signed manifest.
    const chunk = join(root, 'sessions', sessions[1]!.id, 'gateway', 'records-000001.gz');
    writeFileSync(chunk, Buffer.concat([readFileSync(chunk), Buffer.from([0])]));
    expect((await check()).stdout).toContain(`FAIL sessions/${sessions[1]!.id}/gateway: a file does not match`);

    // With the policy at hand the CLI reads every message (its record keeps them whole) and refuses some itself:
    // compared up to there, and said so.
    const checked = await hoopRun([
      '--connect',
      'app',
      '--policy-dir',
      repo.dir,
      '--',
      'sh',
      '-c',
      'echo "run=$HOOP_RUN_ID"; psql -X -At -c "select count(*) from agent_items" -c "select nope"; psql -X -At -c "select 1" -c "drop table agent_jobs" -c "select 2"',
    ]);
    expect(checked.stderr).toContain('denied by rule "no-drop"');
    const checkedId = /^run=(\S+)$/m.exec(checked.stdout)![1]!;
    const checkedBundle = await unpacked(checkedId);
    const again = await checkedBundle.check();
    expect(again.code, again.stdout).toBe(0);
    const [plain, refused] = (
      JSON.parse((await stack.run(['sessions', 'ls', '--json', '--run', checkedId, ...gatewayArgs()], { HOOP_TOKEN: token })).stdout) as { sessions: Array<{ id: string; startedAt: string }> }
    ).sessions.sort((a, b) => a.startedAt.localeCompare(b.startedAt));
    // The same counts as hoop's own cross-check, the refused session's said to be compared in part.
    for (const s of [plain!, refused!]) {
      const hoops = /agree on (\d+) statement\(s\) and (\d+) outcome\(s\)/.exec((await stack.run(['sessions', 'verify', s.id, ...gatewayArgs()], { HOOP_TOKEN: token })).stdout);
      expect(again.stdout).toContain(`ok   session ${s.id}: the gateway's and the CLI's records agree on ${hoops![1]} statement(s) and ${hoops![2]} outcome(s)`);
    }
    expect(again.stdout).toContain(`ok   session ${plain!.id}: the gateway's and the CLI's records agree on 2 statement(s) and 2 outcome(s)\n`);
    expect(again.stdout).toMatch(
      new RegExp(
        `ok   session ${refused!.id}: .*; compared up to the CLI's own refusal of its statement 2 \\(it never reached the gateway\\): 1 later statement\\(s\\) of the gateway's record and 1 of the CLI's not compared`,
      ),
    );
    // Another run's session added to the first run's bundle: its verify.sh says the bundle is not that run's.
    cpSync(join(checkedBundle.root, 'sessions', plain!.id), join(root, 'sessions', plain!.id), { recursive: true });
    expect((await check()).stdout).toContain(`FAIL the bundle holds sessions [${[...sessions.map((s) => s.id), plain!.id].sort().join(' ')}]`);
  });

  it("a person's session belongs to no run, whatever its request says: the run id and the agent's way in are a run credential's alone", async () => {
    const claims = { Authorization: `Bearer ${token}`, 'Hoop-Session-Id': 'claimed-run-session', 'Hoop-Run-Id': 'run-ok_1234567890123', 'Hoop-Via': 'run' };
    const { channel } = await rawTunnel(stack.gateway.url, stack.pki.ca, 'app', claims);
    const raw = new RawFrontend(channel);
    await raw.startup('');
    raw.write(frontendMessage('X'));
    await raw.closed();
    let session: { runId?: string; via?: string; agent?: string; endedAt?: string } | undefined;
    for (let i = 0; i < 50 && !session?.endedAt; i++) {
      const ls = await stack.run(['sessions', 'ls', '--json', ...gatewayArgs()], { HOOP_TOKEN: token });
      session = (JSON.parse(ls.stdout) as { sessions: Array<typeof session & { id: string }> }).sessions.find((s) => s?.id === 'claimed-run-session');
    }
    expect(session).toMatchObject({ via: 'connect' });
    expect(session).not.toHaveProperty('runId');
    expect(session).not.toHaveProperty('agent');
  });

  it('gives the command its connections and no way around the gateway: inherited PG* and DATABASE_URL are replaced, no credential anywhere', async () => {
    const r = await hoopRun(['--connect', 'app', '--', process.execPath, '-e', 'console.log(JSON.stringify({ env: process.env, argv: process.argv }))'], {
      env: { PGHOST: 'db.internal', PGHOSTADDR: '10.0.0.9', PGPASSWORD: 'inherited-secret', PGSERVICE: 'prod', DATABASE_URL: 'postgres://u:inherited-secret@db.internal/x', KEEP_ME: 'yes' },
    });
    expect(r.code).toBe(0);
    const { env } = JSON.parse(r.stdout) as { env: Record<string, string> };
    expect(env).toMatchObject({ PGHOST: '127.0.0.1', PGUSER: 'hoop', PGDATABASE: 'app', PGSSLMODE: 'verify-full', KEEP_ME: 'yes' });
    expect(env.PGPORT).toMatch(/^\d+$/);
    expect(env.HOOP_RUN_ID).toMatch(/^run-[A-Za-z0-9_-]{16}$/);
    expect(env.PGPASSFILE).toContain(stack.dir);
    expect(env.PGSSLROOTCERT).toContain(stack.dir);
    for (const gone of ['PGHOSTADDR', 'PGPASSWORD', 'PGSERVICE']) expect(env).not.toHaveProperty(gone);
    expect(env.DATABASE_URL).toMatch(new RegExp(`^postgresql://hoop:[^@]+@127\\.0\\.0\\.1:${env.PGPORT}/app\\?sslmode=verify-full&sslrootcert=`));
    expect(r.stdout).not.toContain('inherited-secret');
    expect(r.stdout).not.toContain(stack.pg.users.scram.password); // the database's own password stays at the gateway
    // The run's files are gone with it.
    expect(existsSync(env.PGPASSFILE!)).toBe(false);
    expect(existsSync(env.PGSSLROOTCERT!)).toBe(false);
  });

  it('an agent on the pg driver reaches two connections by DATABASE_URL_<NAME>, with the per-run password and verified TLS', async () => {
    const agent = join(stack.dir, 'agent.js');
    await writeFile(
      agent,
      `const { Client } = require('pg');
(async () => {
  for (const name of ['DATABASE_URL_APP', 'DATABASE_URL_APP_MD5']) {
    const c = new Client({ connectionString: process.env[name] });
    await c.connect();
    const { rows } = await c.query('select current_user as who, $1::int * 2 as n', [21]);
    console.log(name, rows[0].who, rows[0].n);
    await c.end();
  }
})().catch((e) => { console.error(e.message); process.exit(1); });
`,
    );
    const r = await hoopRun(['--connect', 'app', '--connect', 'app-md5', '--', process.execPath, agent], { env: { NODE_PATH: nodeModules } });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`DATABASE_URL_APP ${stack.pg.users.scram.user} 42\nDATABASE_URL_APP_MD5 ${stack.pg.users.md5.user} 42\n`);
  });

  it("exits with the command's exit code, 128 + n when a signal ended it, 127 when there is no such command", async () => {
    const seven = await hoopRun(['--connect', 'app', '--', 'sh', '-c', 'exit 7']);
    expect(seven.code, seven.stderr).toBe(7);
    const killed = await hoopRun(['--connect', 'app', '--', 'sh', '-c', 'kill -TERM $$']);
    expect(killed.code, killed.stderr).toBe(143);
    const missing = await hoopRun(['--connect', 'app', '--', 'no-such-command-hoop-test']);
    expect(missing.code).toBe(127);
    expect(missing.stderr).toContain('hoop: cannot run no-such-command-hoop-test: command not found');
  });

  it('hands SIGINT to the command, exits with its code, and closes the port', async () => {
    let port = 0;
    let sent = false;
    let listened: boolean | undefined;
    const r = await hoopRun(['--connect', 'app', '--', 'sh', '-c', 'trap "echo got-int; exit 3" INT; echo "port=$PGPORT"; while :; do sleep 0.05; done'], {
      onStdout: (text, child) => {
        const m = /^port=(\d+)$/m.exec(text);
        if (m && !sent) {
          sent = true;
          port = Number(m[1]);
          // The signal goes whatever the check says: a failed check is reported below, not by a run that never ends.
          void listening(port).then((up) => {
            listened = up;
            child.kill('SIGINT');
          });
        }
      },
    });
    expect(listened).toBe(true);
    expect(r.stdout, r.stderr).toContain('got-int');
    expect(r.code).toBe(3);
    expect(await listening(port)).toBe(false);
  });

  it('--socket serves each connection on a unix socket of its own: PGHOST is their directory, no TLS variables', async () => {
    const sockets = await mkdtemp(join(stack.dir, 'sock-'));
    const r = await hoopRun([
      '--connect',
      'app',
      '--connect',
      'app-md5',
      '--socket',
      sockets,
      '--',
      'sh',
      '-c',
      'echo "$PGHOST|$PGPORT|$PGSSLMODE|$DATABASE_URL_APP_MD5"; psql -X -At -c "select current_user"; psql -X -At -p 5433 -c "select current_user"',
    ]);
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(
      new RegExp(`^${sockets}\\|5432\\|\\|postgresql://hoop:[^@]+@/app\\?host=${encodeURIComponent(sockets)}&port=5433\n${stack.pg.users.scram.user}\n${stack.pg.users.md5.user}\n$`),
    );
    // Two connections that would share one variable are refused before anything starts.
    const clash = await hoopRun(['--connect', 'app-md5', '--connect', 'app_md5', '--', 'true']);
    expect(clash.code).toBe(64);
    expect(clash.stderr).toContain('connections "app-md5" and "app_md5" would both be DATABASE_URL_APP_MD5');
  });

  it('takes its connections from .hoop.yaml in the working directory, and says what to do without any', async () => {
    const project = await mkdtemp(join(stack.dir, 'project-'));
    const config = { HOOP_CONFIG_DIR: join(stack.dir, 'no-config') };
    const none = await hoopRun(['--', 'true'], { cwd: project, env: config });
    expect(none.code).toBe(64);
    expect(none.stderr).toContain('hoop run needs to know which connections to serve');
    expect(none.stderr).toContain('--connect NAME');
    await writeFile(join(project, '.hoop.yaml'), 'connections: app\n');
    const bad = await hoopRun(['--', 'true'], { cwd: project, env: config });
    expect(bad.code).toBe(78);
    expect(bad.stderr).toMatch(/\.hoop\.yaml:1:\d+: connections: /);
    await writeFile(join(project, '.hoop.yaml'), 'connections: [app]\n');
    const ok = await hoopRun(['--', 'psql', '-X', '-At', '-c', 'select 5'], { cwd: project, env: config });
    expect(ok.stderr).toBe('');
    expect(ok.stdout).toBe('5\n');
  });
});

describe('hoop exec', () => {
  /** `hoop exec <args>` with alice's token. */
  const hoopExec = (args: string[], o: { input?: string; nodeArgs?: string[] } = {}): Promise<HoopProcessResult> =>
    spawnHoop(['exec', ...args, ...gatewayArgs()], { env: { HOOP_TOKEN: token, HOOP_CONFIG_DIR: join(stack.dir, 'cli') }, cwd: stack.dir, ...o });
  /** What psql prints for the same statements, through hoop run. */
  const psqlSays = (args: string[]): Promise<HoopProcessResult> => hoopRun(['--connect', 'app', '--', 'psql', '-X', ...args]);

  it('prints results as psql does: aligned tables with numbers on the right, command tags, CSV', async () => {
    const sql = 'select id, name, price, active, tags, note from agent_items order by id; create temp table t (a int); select 1 as one where false; select';
    const [exec, psql] = await Promise.all([hoopExec(['app', '-c', sql]), psqlSays(['-c', sql])]);
    expect(exec.stderr).toBe('');
    expect(exec.code).toBe(0);
    expect(exec.stdout).toBe(psql.stdout);
    expect(exec.stdout).toContain(' id |');
    const [csv, psqlCsv] = await Promise.all([
      hoopExec(['app', '--csv', '-c', 'select id, name, note, active from agent_items order by id']),
      psqlSays(['--csv', '-c', 'select id, name, note, active from agent_items order by id']),
    ]);
    expect(csv.stdout).toBe(psqlCsv.stdout);
    expect(csv.stdout.split('\n')[0]).toBe('id,name,note,active');
  });

  it('--json: one object per row, numbers, booleans and JSON as themselves; statements from a file or stdin', async () => {
    const r = await hoopExec(['app', '--json', '-c', 'select id, name, price, active, tags, note, 9007199254740993::int8 as big from agent_items order by id']);
    expect(r.code).toBe(0);
    const rows = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(rows[0]).toEqual({ id: 1, name: 'pen', price: '1.50', active: true, tags: { colour: 'blue' }, note: null, big: '9007199254740993' });
    expect(rows[1]).toMatchObject({ name: 'Zoë\'s "pad", ruled', active: false, tags: [], note: 'two\nlines' });
    await writeFile(join(stack.dir, 'q.sql'), 'select count(*) from agent_items;\n');
    expect((await hoopExec(['app', '-f', 'q.sql', '--csv'])).stdout).toBe('count\n3\n');
    expect((await hoopExec(['app', '--csv'], { input: 'select 2 * 21 as answer' })).stdout).toBe('answer\n42\n');
  });

  it('exits 1 on a database error, 3 when the policy refuses, 4 when a reviewer must approve, saying why on stderr', async () => {
    const failed = await hoopExec(['app', '-c', 'select * from no_such_table']);
    expect(failed.code).toBe(1);
    expect(failed.stderr).toContain('ERROR:  relation "no_such_table" does not exist');
    const refused = await hoopExec(['app', '-c', 'drop table agent_items']);
    expect(refused.code).toBe(3);
    expect(refused.stderr).toContain('ERROR:  hoop: denied by rule "no-drop": DROP is not allowed');
    const review = await hoopExec(['app', '-c', 'delete from agent_items']);
    expect(review.code).toBe(4);
    expect(review.stderr).toContain('ERROR:  hoop: approval required (rule "review-deletes")');
    expect((await hoopExec(['app', '--csv', '-c', 'select count(*) from agent_items'])).stdout).toBe('count\n3\n'); // nothing was dropped or deleted
    const nothing = await hoopExec(['app']);
    expect(nothing.code).toBe(64);
    expect(nothing.stderr).toContain('no statements: give -c SQL, -f FILE, or pipe them in');
  });

  it('waits for a review saying where it stands; --no-wait exits 4 with the review id, and once approved the same statement runs once', async () => {
    const sql = 'begin; delete from agent_jobs; rollback';
    const approve = async (id: string): Promise<void> => {
      const r = await stack.run(['review', 'approve', id, ...gatewayArgs()], { HOOP_TOKEN: await stack.token('bob', ['dba']) });
      expect(r.code).toBe(0);
    };
    const pending = async (): Promise<string> =>
      eventually(
        async () => {
          const ls = JSON.parse((await stack.run(['review', 'ls', '--json', ...gatewayArgs()], { HOOP_TOKEN: token })).stdout) as { reviews: Array<{ id: string }> };
          expect(ls.reviews[0], 'a pending review').toBeDefined();
          return ls.reviews[0]!.id;
        },
        { timeout: 60_000, interval: 100 },
      );
    // Waiting: the status lines on stderr, the results once approved.
    const waiting = hoopExec(['app-md5', '-c', sql]);
    await approve(await pending());
    const waited = await waiting;
    expect(waited.code).toBe(0);
    expect(waited.stdout).toBe('BEGIN\nDELETE 3\nROLLBACK\n');
    expect(waited.stderr).toMatch(/hoop: statement held for review (rv-[0-9a-f]{16}) \(rule "review-deletes"\): waiting for one approval from dba within 1 min/);
    expect(waited.stderr).toMatch(/hoop: review rv-[0-9a-f]{16} approved by bob: the statement runs/);

    // Not waiting: exit 4 and the id; the review goes on without the session.
    const left = await hoopExec(['app-md5', '--no-wait', '-c', sql]);
    expect(left.code).toBe(4);
    const id = left.stdout.trim();
    expect(id).toMatch(/^rv-[0-9a-f]{16}$/);
    expect(left.stderr).toContain(`send the same statement again`);
    const shown = JSON.parse((await stack.run(['review', 'show', id, '--json', ...gatewayArgs()], { HOOP_TOKEN: token })).stdout) as { state: string; detached: boolean };
    expect(shown).toMatchObject({ state: 'pending', detached: true });
    await approve(id);
    const followed = await stack.run(['review', 'show', id, '--wait', '5', ...gatewayArgs()], { HOOP_TOKEN: token });
    expect(followed.code).toBe(0);
    // The same statement, sent again, runs once on that approval; a third time needs a new one.
    const again = await hoopExec(['app-md5', '-c', sql]);
    expect(again.code).toBe(0);
    expect(again.stdout).toBe('BEGIN\nDELETE 3\nROLLBACK\n');
    expect(again.stderr).toContain(`review ${id} approved by bob: the statement runs`);
    const third = await hoopExec(['app-md5', '--no-wait', '-c', sql]);
    expect(third.code).toBe(4);
    expect(third.stdout.trim()).not.toBe(id);
    // Another statement is not covered by it either.
    const other = await hoopExec(['app-md5', '--no-wait', '-c', 'begin; delete from agent_jobs where id = 1; rollback']);
    expect(other.code).toBe(4);
    expect((await hoopExec(['app-md5', '--csv', '-c', 'select count(*) from agent_jobs'])).stdout).toBe('count\n3\n');
  });

  it('^C while a statement waits for its review: exec exits 130 at once, and the review is withdrawn (nothing ran)', async () => {
    const sql = 'begin; delete from agent_jobs; rollback';
    let interrupted = false;
    const waiting = spawnHoop(['exec', 'app-md5', '-c', sql, ...gatewayArgs()], {
      env: { HOOP_TOKEN: token, HOOP_CONFIG_DIR: join(stack.dir, 'cli') },
      cwd: stack.dir,
      onStderr: (text, child) => {
        if (!interrupted && /held for review/.test(text)) {
          interrupted = true;
          child.kill('SIGINT');
        }
      },
    });
    const started = Date.now();
    const r = await waiting;
    expect(r.code).toBe(130);
    expect(Date.now() - started).toBeLessThan(20_000);
    expect(r.stderr).toContain('interrupted: the session is closed, and a statement it held for review is withdrawn');
    await eventually(
      async () => {
        const ls = JSON.parse((await stack.run(['review', 'ls', '--state', 'all', '--json', ...gatewayArgs()], { HOOP_TOKEN: token })).stdout) as { reviews: Array<{ state: string; sql: string }> };
        expect(ls.reviews.find((x) => x.sql === sql)?.state).toBe('withdrawn');
      },
      { timeout: 60_000, interval: 200 },
    );
    expect((await hoopExec(['app-md5', '--csv', '-c', 'select count(*) from agent_jobs'])).stdout).toBe('count\n3\n');
  });

  it('stops quietly when the reader of its output goes away (| head), as Unix tools do (141)', async () => {
    const script = `set -o pipefail; ${JSON.stringify(process.execPath)} ${JSON.stringify(HOOP_BIN)} exec app --csv -c 'select g from generate_series(1, 2000000) g' --gateway ${stack.gateway.url} --ca-file ${stack.pki.caFile} | head -2; echo "status=\${PIPESTATUS[0]}"`;
    const r = await runProcess('bash', ['-c', script], { env: { HOOP_TOKEN: token } }); // not spawnSync: the gateway runs in this process
    expect(r.stdout).toBe('g\n1\nstatus=141\n');
    expect(r.stderr).toBe('');
  });

  it('every command writes all its output into a pipe before it exits, and ends quietly (141) when the reader goes away: replay and export of a large session', async () => {
    // One session with 100 results of 100 rows: its transcript (over 256 KiB) is far larger than a pipe holds.
    const statements = Array.from({ length: 100 }, (_, i) => `select g, ${i} as n, repeat('y', 40) from generate_series(1, 100) g;`).join('\n');
    const made = await hoopExec(['app', '--csv', '-c', statements]);
    expect(made.code).toBe(0);
    // exec returns once the gateway has ended its session: listed as ending (its recording being cut) or ended, never running; `last` names it.
    const listed = JSON.parse((await stack.run(['sessions', 'ls', '--json', ...gatewayArgs()], { HOOP_TOKEN: token })).stdout) as { sessions: Array<{ statements: number; reason: string }> };
    expect(listed.sessions.find((s) => s.statements === 100)?.reason).not.toBe('running');
    const hoop = `${JSON.stringify(process.execPath)} ${JSON.stringify(HOOP_BIN)}`;
    const gw = `--gateway ${stack.gateway.url} --ca-file ${stack.pki.caFile}`;
    const file = join(stack.dir, 'replay.txt');
    for (const command of [`sessions replay last ${gw}`, `sessions export last --format jsonl ${gw}`]) {
      const script = `set -o pipefail; ${hoop} ${command} > ${file}; echo "file=$(wc -c < ${file})"; ${hoop} ${command} | wc -c | sed 's/^/piped=/'; ${hoop} ${command} | head -c 10 > /dev/null; echo "status=\${PIPESTATUS[0]}"`;
      const r = await runProcess('bash', ['-c', script], { env: { HOOP_TOKEN: token } });
      expect(r.stderr, command).toBe('');
      const size = Number(/file=(\d+)/.exec(r.stdout)?.[1]);
      expect(size, command).toBeGreaterThan(256 * 1024);
      expect(Number(/piped=(\d+)/.exec(r.stdout)?.[1]), command).toBe(size);
      expect(r.stdout, command).toMatch(/status=(0|141)\n/);
    }
  });

  it('streams a result larger than its heap', async () => {
    // ~43 MB of rows through a CLI whose heap may not exceed 32 MB: only streaming fits.
    const r = await hoopExec(['app', '--csv', '-c', "select g, repeat('x', 50) from generate_series(1, 700000) g"], { nodeArgs: ['--max-old-space-size=32'] });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const lines = r.stdout.split('\n');
    expect(lines.length).toBe(700_002); // header, the rows, the final newline
    expect(lines[700_000]).toBe(`700000,${'x'.repeat(50)}`);
  });
});

describe('hoop mcp', () => {
  it('an MCP client lists connections, describes a table, and runs SQL: rows masked, refusals as tool errors, its intent recorded', async () => {
    const transport = new StdioClientTransport({
      command: process.execPath,
      args: [HOOP_BIN, 'mcp', ...gatewayArgs()],
      env: { PATH: process.env.PATH!, HOOP_TOKEN: token, HOOP_CONFIG_DIR: join(stack.dir, 'cli') },
      stderr: 'pipe',
    });
    const client = new Client({ name: 'test-agent', version: '1.0.0' });
    await client.connect(transport);
    try {
      type Answer = { content: Array<{ type: string; text: string }>; isError?: boolean };
      const call = async (name: string, args: Record<string, unknown> = {}): Promise<Answer> => (await client.callTool({ name, arguments: args })) as Answer;
      const json = (a: Answer): unknown => JSON.parse(a.content[0]!.text);
      expect((await client.listTools()).tools.map((t) => t.name).sort()).toEqual(['describe_schema', 'http_request', 'list_connections', 'run_sql', 'wait_for_review']);
      expect(json(await call('list_connections'))).toEqual(expect.arrayContaining([expect.objectContaining({ name: 'app', type: 'postgres', database: 'app' })]));

      // Compact JSON, each masked column with its strategy: by its table, by its partitioned table, by its name.
      const people = await call('describe_schema', { connection: 'app', table: 'agent_people' });
      expect(people.content[0]!.text).not.toContain('\n');
      expect(json(people)).toEqual({
        tables: [
          {
            schema: 'public',
            table: 'agent_people',
            columns: [
              { name: 'id', type: 'integer', nullable: false },
              { name: 'email', type: 'text', nullable: true, masked: 'redact' },
            ],
          },
        ],
        masking: { derived: 'values computed from masked columns are masked' },
      });
      const cards = json(await call('describe_schema', { connection: 'app', schema: 'public' })) as { tables: Array<{ table: string; columns: Array<{ name: string; masked?: string }> }> };
      const maskedOf = (t: string): Array<[string, string | undefined]> => cards.tables.find((x) => x.table === t)!.columns.map((col) => [col.name, col.masked]);
      expect(maskedOf('agent_cards')).toEqual([
        ['id', undefined],
        ['card', 'last4'],
        ['ssn', 'redact'],
      ]);
      expect(maskedOf('agent_cards_1')).toEqual(maskedOf('agent_cards')); // the partition: its parent's rule
      // What describe_schema says is what run_sql gets.
      expect(json(await call('run_sql', { connection: 'app', sql: 'select id, card, ssn from agent_cards_1' }))).toMatchObject({ rows: [[1, '************1111', '[redacted]']] });
      const injected = await call('describe_schema', { connection: 'app', table: "x' or '1'='1" });
      expect(injected.isError).toBe(true);
      expect(injected.content[0]!.text).toContain('table must be a plain identifier');

      const intent = 'find who to email about the outage';
      const emails = await call('run_sql', { connection: 'app', sql: 'select id, email from agent_people order by id', intent });
      expect(emails.isError).toBeFalsy();
      expect(json(emails)).toEqual({
        columns: ['id', 'email'],
        rows: [
          [1, '[redacted]'],
          [2, '[redacted]'],
        ],
        rowCount: 2,
        truncated: false,
        tag: 'SELECT 2',
      });

      const many = json(await call('run_sql', { connection: 'app', sql: 'select g from generate_series(1, 5000) g', max_rows: 10 })) as { rows: unknown[]; rowCount: number; truncated: boolean };
      expect([many.rows.length, many.rowCount, many.truncated]).toEqual([10, 5000, true]);

      const dropped = await call('run_sql', { connection: 'app', sql: 'drop table agent_people', intent: 'clean up' });
      expect(dropped.isError).toBe(true);
      expect(dropped.content[0]!.text).toContain('ERROR:  hoop: denied by rule "no-drop": DROP is not allowed');
      const deleted = await call('run_sql', { connection: 'app', sql: 'delete from agent_people' });
      expect(deleted.isError).toBe(true);
      expect(deleted.content[0]!.text).toContain('hoop: approval required (rule "review-deletes")');
      expect(json(await call('run_sql', { connection: 'app', sql: 'select count(*) from agent_people' }))).toMatchObject({ rows: [[2]] }); // nothing dropped or deleted
      // Numbers, booleans and JSON as themselves where exact; the rest as the server wrote it.
      const items = json(
        await call('run_sql', { connection: 'app', sql: "select id, price, active, tags, 12345678901234567::int8 as big, 0.1::float8 as f, 'NaN'::numeric as nan from agent_items order by id" }),
      ) as {
        rows: unknown[][];
      };
      expect(items.rows).toEqual([
        [1, '1.50', true, { colour: 'blue' }, '12345678901234567', 0.1, 'NaN'],
        [2, 12, false, [], '12345678901234567', 0.1, 'NaN'],
        [3, 100.25, null, null, '12345678901234567', 0.1, 'NaN'],
      ]);

      // Where reviewers are named, run_sql answers a pending review at once; the agent waits for it, then sends the same SQL again.
      const held = 'begin; delete from agent_jobs where id > 1; rollback';
      const asked = await call('run_sql', { connection: 'app-md5', sql: held, intent: 'tidy the queue' });
      expect(asked.isError).toBeFalsy();
      const pending = json(asked) as { pending_review: { id: string; rule: string; reviewers: string[] }; ran: boolean; next: string };
      expect(pending).toMatchObject({ pending_review: { rule: 'review-deletes', reviewers: ['dba'] }, ran: false });
      expect(pending.next).toContain('Call wait_for_review');
      const waiting = json(await call('wait_for_review', { id: pending.pending_review.id, timeout_seconds: 0 })) as { state: string };
      expect(waiting.state).toBe('pending');
      const waited = call('wait_for_review', { id: pending.pending_review.id, timeout_seconds: 30 });
      expect((await stack.run(['review', 'approve', pending.pending_review.id, '--reason', 'fine in a transaction', ...gatewayArgs()], { HOOP_TOKEN: await stack.token('bob', ['dba']) })).code).toBe(
        0,
      );
      expect(json(await waited)).toMatchObject({ state: 'approved', decisions: [{ by: 'bob', decision: 'approve', reason: 'fine in a transaction' }] });
      const ran = json(await call('run_sql', { connection: 'app-md5', sql: held })) as Array<{ tag: string }>;
      expect(ran.map((r) => r.tag)).toEqual(['BEGIN', 'DELETE 2', 'ROLLBACK']);

      // The gateway's recording of the first run_sql holds the agent's intent before the statement.
      let doc: { events: Array<Record<string, unknown>> } | undefined;
      for (let i = 0; i < 50 && !doc; i++) {
        const ls = JSON.parse((await stack.run(['sessions', 'ls', '--json', ...gatewayArgs()], { HOOP_TOKEN: token })).stdout) as { sessions: Array<{ id: string; via: string; endedAt?: string }> };
        // Only hoop mcp's sessions (each one verified as it is shown: a few, not the whole file's).
        for (const s of ls.sessions.filter((x) => x.endedAt && x.via === 'mcp')) {
          const shown = JSON.parse((await stack.run(['sessions', 'show', s.id, '--json', ...gatewayArgs()], { HOOP_TOKEN: token })).stdout) as { events: Array<Record<string, unknown>> };
          if (shown.events.some((e) => e.t === 'context' && e.intent === intent)) doc = shown;
        }
      }
      const types = doc!.events.map((e) => e.t);
      expect(doc!.events[types.indexOf('context')]).toMatchObject({ t: 'context', source: 'mcp', tool: 'run_sql', intent });
      // hoop mcp with no run around it began one of its own: the agent is the MCP client, by its name, not the person.
      expect(doc!.events[0]).toMatchObject({ t: 'start', via: 'mcp', agent: 'test-agent', isolated: false, runId: expect.stringMatching(/^run-/) });
      expect(doc!.events[types.indexOf('context') + 1]).toMatchObject({ t: 'query', sql: 'select id, email from agent_people order by id' });
      expect(JSON.stringify(doc!.events)).not.toContain('@example.com');
      const id = (JSON.parse((await stack.run(['sessions', 'ls', '--json', ...gatewayArgs()], { HOOP_TOKEN: token })).stdout) as { sessions: Array<{ id: string }> }).sessions.find(
        (x) => doc!.events[0]!.session === x.id,
      )!.id;
      const transcript = (await stack.run(['sessions', 'replay', id, '--no-tty', '--speed', '1000', ...gatewayArgs()], { HOOP_TOKEN: token })).stdout;
      expect(transcript).toContain(`-- client (mcp run_sql) says: "${intent}"\napp=> select id, email from agent_people order by id`);
    } finally {
      await client.close();
    }
  });
});
