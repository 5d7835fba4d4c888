/**
 * `hoop run -- <command>` as a user runs it: the built CLI wraps psql, a shell and a small agent
 * on the `pg` driver; the command finds its connections in its environment and nothing else, its
 * exit code and signals pass through, the ports close when it exits, and the gateway's sessions
 * carry the run id.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { frontendMessage } from '../harness/pg-frontend.js';
import { startStack, type HoopStack } from '../harness/stack.js';

const bin = resolve(import.meta.dirname, '../../bin/hoop.js');
const nodeModules = resolve(import.meta.dirname, '../../node_modules');
let stack: HoopStack;
let token: string;

interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Starts `node bin/hoop.js run <args>` with only `env` (and PATH); `onStdout` sees its output as it comes. */
function hoopRun(args: string[], options: { env?: NodeJS.ProcessEnv; cwd?: string; onStdout?: (text: string, child: ReturnType<typeof spawn>) => void } = {}): Promise<Ran> {
  const child = spawn(process.execPath, [bin, 'run', '--gateway', stack.gateway.url, '--ca-file', stack.pki.caFile, ...args], {
    env: { PATH: process.env.PATH, HOOP_TOKEN: token, XDG_RUNTIME_DIR: stack.dir, ...options.env },
    cwd: options.cwd ?? stack.dir,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => {
    stdout += d.toString();
    options.onStdout?.(stdout, child);
  });
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((r) => child.on('close', (code) => r({ code, stdout, stderr })));
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
  stack = await startStack();
  token = await stack.token('alice');
}, 120_000);
afterAll(async () => {
  await stack?.close();
});

describe('hoop run', () => {
  it('runs psql against the connection through the gateway, and the gateway\'s sessions carry the run id', async () => {
    const r = await hoopRun(['--connect', 'app', '--', 'sh', '-c', 'echo "run=$HOOP_RUN_ID"; psql -X -At -c "select current_user, 40 + 2"']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`${stack.pg.users.scram.user}|42`);
    const runId = /^run=(run-[A-Za-z0-9_-]+)$/m.exec(r.stdout)![1]!;
    let sessions: Array<{ runId?: string; statements: number; endedAt?: string }> = [];
    for (let i = 0; i < 50 && !sessions.some((s) => s.endedAt); i++) {
      const ls = await stack.run(['sessions', 'ls', '--json', '--run', runId, '--gateway', stack.gateway.url, '--ca-file', stack.pki.caFile], { HOOP_TOKEN: token });
      sessions = (JSON.parse(ls.stdout) as { sessions: typeof sessions }).sessions;
    }
    expect(sessions).toEqual([expect.objectContaining({ runId, statements: 1 })]);
    const other = await stack.run(['sessions', 'ls', '--json', '--run', 'run-of-someone-else', '--gateway', stack.gateway.url, '--ca-file', stack.pki.caFile], { HOOP_TOKEN: token });
    expect((JSON.parse(other.stdout) as { sessions: unknown[] }).sessions).toEqual([]);
  });

  it('the gateway keeps a tunnel\'s run id only in the shape hoop run makes', async () => {
    for (const runId of ['x', 'run id with spaces', `run-${'a'.repeat(80)}`, 'run-ok_12345']) {
      const raw = await stack.tunnel('app', token, { runId });
      raw.write(frontendMessage('X'));
      await raw.closed();
    }
    const ran = new Set<string>();
    for (let i = 0; i < 50 && !ran.has('run-ok_12345'); i++) {
      const ls = await stack.run(['sessions', 'ls', '--json', '--gateway', stack.gateway.url, '--ca-file', stack.pki.caFile], { HOOP_TOKEN: token });
      for (const s of (JSON.parse(ls.stdout) as { sessions: Array<{ runId?: string }> }).sessions) if (s.runId) ran.add(s.runId);
    }
    expect([...ran].filter((r) => !r.startsWith('run-') || r.length !== 20)).toEqual(['run-ok_12345']);
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

  it('exits with the command\'s exit code, 128 + n when a signal ended it, 127 when there is no such command', async () => {
    expect((await hoopRun(['--connect', 'app', '--', 'sh', '-c', 'exit 7'])).code).toBe(7);
    expect((await hoopRun(['--connect', 'app', '--', 'sh', '-c', 'kill -TERM $$'])).code).toBe(143);
    const missing = await hoopRun(['--connect', 'app', '--', 'no-such-command-hoop-test']);
    expect(missing.code).toBe(127);
    expect(missing.stderr).toContain('hoop: cannot run no-such-command-hoop-test: command not found');
  });

  it('hands SIGINT to the command, exits with its code, and closes the port', async () => {
    let port = 0;
    let sent = false;
    const r = await hoopRun(['--connect', 'app', '--', 'sh', '-c', 'trap "echo got-int; exit 3" INT; echo "port=$PGPORT"; while :; do sleep 0.05; done'], {
      onStdout: (text, child) => {
        const m = /^port=(\d+)$/m.exec(text);
        if (m && !sent) {
          sent = true;
          port = Number(m[1]);
          void listening(port).then((up) => {
            expect(up).toBe(true);
            child.kill('SIGINT');
          });
        }
      },
    });
    expect(r.stdout).toContain('got-int');
    expect(r.code).toBe(3);
    expect(await listening(port)).toBe(false);
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
    expect(bad.stderr).toContain('.hoop.yaml: connections:');
    await writeFile(join(project, '.hoop.yaml'), 'connections: [app]\n');
    const ok = await hoopRun(['--', 'psql', '-X', '-At', '-c', 'select 5'], { cwd: project, env: config });
    expect(ok.stderr).toBe('');
    expect(ok.stdout).toBe('5\n');
  });
});
