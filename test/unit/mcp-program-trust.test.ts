/**
 * What the gateway runs for an MCP connection it trusts as it trusts its keys (src/mcp/gateway/upstream.ts): a
 * program, or a file an interpreter is given, that another user could replace is not started, named with the fix
 * (the fifteenth attack: a gateway running as root ran a script another user owned, in their directory).
 */
import { chmodSync, chownSync, copyFileSync, mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { McpConnection } from '../../src/config/connection.js';
import { openUpstream } from '../../src/mcp/gateway/upstream.js';

const SERVER = resolve(import.meta.dirname, '../fixtures/attack-mcp-server.mjs');
const base = mkdtempSync(join(tmpdir(), 'hoop-mcp-program-'));
chmodSync(base, 0o755);
let made = 0;

const connection = (command: string[], cwd?: string, env?: Record<string, string>): McpConnection => ({
  name: 'files',
  type: 'mcp',
  command,
  ...(cwd ? { cwd } : {}),
  ...(env ? { env: Object.fromEntries(Object.entries(env).map(([k, text]) => [k, { text }])) } : {}),
  allow: { subjects: [], emails: [], groups: [] },
});

/** Opens the connection's server (with `env` set as gateway.yaml sets a connection's): what became of it, and closes it when it started. */
async function started(command: string[], path = process.env.PATH, cwd?: string, env?: Record<string, string>): Promise<string> {
  const saved = process.env.PATH;
  process.env.PATH = path;
  try {
    const upstream = await openUpstream(connection(command, cwd, env), async () => '', base, { message: () => undefined, closed: () => undefined });
    await upstream.close();
    return 'started';
  } catch (err) {
    return (err as Error).message;
  } finally {
    process.env.PATH = saved;
  }
}

/** A directory holding a copy of the test server and a program, made as `mode` says (and another user's, where this runs as root). */
function place(mode: number, owner?: number): { dir: string; script: string; program: string } {
  const dir = join(base, `p${made++}`);
  mkdirSync(dir);
  const script = join(dir, 'server.mjs');
  copyFileSync(SERVER, script);
  const program = join(dir, 'mcp-files');
  writeFileSync(program, `#!/bin/sh\nexec ${process.execPath} ${SERVER}\n`, { mode: 0o755 });
  chmodSync(dir, mode);
  if (owner !== undefined) for (const p of [dir, script, program]) chownSync(p, owner, owner);
  return { dir, script, program };
}

afterAll(() => chmodSync(base, 0o700));

describe('the program of an MCP connection', () => {
  it('starts when it and what it is given are the gateway’s to trust', async () => {
    const ok = place(0o755);
    expect(await started([process.execPath, ok.script])).toBe('started');
    expect(await started([ok.program])).toBe('started');
    expect(await started(['mcp-files'], `${ok.dir}:${process.env.PATH}`)).toBe('started');
  });

  it('is not started when another user may replace it, the file its interpreter runs, or a directory above either', async () => {
    const open = place(0o777);
    expect(await started([process.execPath, open.script])).toMatch(new RegExp(`not started: the gateway will not trust ${open.dir}: other users may write`));
    expect(await started([open.program])).toMatch(/not started: the gateway will not trust .*: other users may write/);
    // Found on PATH as the child's PATH finds it; a relative or empty entry, searched from the child's directory, is refused (a helper's attack: `../shared` ran another user's program).
    expect(await started(['mcp-files'], `${open.dir}:${process.env.PATH}`)).toMatch(/not started: the gateway will not trust/);
    for (const path of [`../shared:${process.env.PATH}`, `:${process.env.PATH}`, `${process.env.PATH}:.`])
      expect(await started(['mcp-files'], path)).toMatch(/not started: the MCP server's PATH .* has a relative or empty entry/);
    // A node option's file is code too.
    expect(await started([process.execPath, '--import', open.script, SERVER])).toMatch(/not started/);
  });

  it.runIf(process.getuid?.() === 0)('is not started when it is another user’s, in their directory', async () => {
    const theirs = place(0o755, 1001);
    expect(await started([process.execPath, theirs.script])).toMatch(/not started: the gateway will not trust .*: .*belongs to another user \(uid 1001\)/);
    expect(await started([theirs.program])).toMatch(/belongs to another user \(uid 1001\)/);
  });
});

describe.runIf(process.getuid?.() === 0)('what the program runs, however it is named (the sixteenth attack)', () => {
  // A directory of root's (0755) holding code of another user's: each form below ran it as root.
  const srv = place(0o755).dir;
  const theirs = (file: string, text = 'process.exit(9);\n'): string => {
    writeFileSync(file, text);
    chownSync(file, 1001, 1001);
    return file;
  };
  mkdirSync(join(srv, 'pkg'));
  writeFileSync(join(srv, 'pkg', 'package.json'), '{"main":"index.js"}');
  const index = theirs(join(srv, 'pkg', 'index.js'));
  const server = theirs(join(srv, 'server.js'));
  const preload = theirs(join(srv, 'preload.mjs'));
  // A cwd of root's holding a module of theirs (python -m), and one holding a package of theirs (npx).
  const py = place(0o755).dir;
  const tool = theirs(join(py, 'mcp_tool.py'));
  const js = place(0o755).dir;
  mkdirSync(join(js, 'node_modules', 'evil-mcp'), { recursive: true });
  writeFileSync(join(js, 'node_modules', 'evil-mcp', 'package.json'), '{"name":"evil-mcp","version":"1.0.0","bin":{"evil-mcp":"cli.js"}}');
  const cli = theirs(join(js, 'node_modules', 'evil-mcp', 'cli.js'));

  const refusedFile = (file: string) => new RegExp(`not started: the gateway will not trust ${file}: it belongs to another user \\(uid 1001\\)`);

  it('is refused, naming the file, when it is another user’s: a directory, a name without its extension, --import=, env, npx or python -m from the cwd', async () => {
    const refused = refusedFile;
    expect(await started([process.execPath, join(srv, 'pkg')])).toMatch(refused(index));
    expect(await started([process.execPath, join(srv, 'server')])).toMatch(refused(server));
    expect(await started([process.execPath, `--import=${preload}`, SERVER])).toMatch(refused(preload));
    expect(await started(['/usr/bin/env', 'node', preload])).toMatch(refused(preload));
    expect(await started(['python3', '-m', 'mcp_tool'], process.env.PATH, py)).toMatch(refused(tool));
    expect(await started(['npx', '--offline', '-y', 'evil-mcp'], process.env.PATH, js)).toMatch(refused(cli));
  });

  it('is refused when what the script loads beside it, or what the environment names, is another user’s (the seventeenth attack: each ran their code as root)', async () => {
    const main = join(srv, 'main.mjs');
    copyFileSync(SERVER, main);
    expect(await started([process.execPath, main])).toMatch(/not started: the gateway will not trust .*: it belongs to another user \(uid 1001\)/);
    expect(await started([process.execPath, SERVER], process.env.PATH, undefined, { NODE_OPTIONS: `--max-old-space-size=256 --import=${preload}` })).toMatch(refusedFile(preload));
    expect(await started(['python3', '-m', 'json.tool'], process.env.PATH, undefined, { PYTHONPATH: `${place(0o755).dir}:${py}` })).toMatch(refusedFile(tool));
    expect(await started([process.execPath, SERVER], process.env.PATH, undefined, { NODE_OPTIONS: '--max-old-space-size=256' })).toBe('started');
  });

  it('refuses a shell’s -c script and env -S: the gateway does not read what a command line runs', async () => {
    expect(await started(['sh', '-c', `exec ${process.execPath} ${preload}`])).toMatch(/not started: a shell's -c script is not run/);
    expect(await started(['/usr/bin/env', '-S', `node ${preload}`])).toMatch(/not started: env -S or -C is not run/);
    expect(await started(['/usr/bin/env', '-C', srv, 'node', 'server'])).toMatch(/not started: env -S or -C is not run/);
  });

  it('starts the ordinary forms: npx of a package in the gateway’s node_modules on a directory of its own, node on a file of root’s', async () => {
    // A cwd is checked whole (at most 10,000 entries): one whose node_modules links to the checkout's.
    const cwd = place(0o755).dir;
    symlinkSync(resolve(import.meta.dirname, '../../node_modules'), join(cwd, 'node_modules'));
    const data = place(0o755).dir;
    expect(await started(['npx', '--offline', '-y', '@modelcontextprotocol/server-filesystem', data], process.env.PATH, cwd)).toBe('started');
    expect(await started([process.execPath, place(0o755).script])).toBe('started');
  });

  it('refuses an interpreter’s code given in its words (node -e, python3 -c, perl -E): the gateway does not read what code loads', async () => {
    for (const command of [
      [process.execPath, '-e', 'import("/tmp/x.mjs")'],
      [process.execPath, '--eval=1'],
      [process.execPath, '-pe', '1'],
      ['python3', '-c', 'import helper'],
      ['python3', '-u', '-c', 'import helper'],
      ['perl', '-E', 'say 1'],
    ])
      expect(await started(command), command.join(' ')).toMatch(/not started: an interpreter's code given in its words \(-[a-zA-Z-]+.*\) is not run/);
    // The script's own words are its own.
    expect(await started([process.execPath, SERVER, '-e', 'x'])).toBe('started');
  });

  it('refuses a directory an interpreter runs that holds more than it can check; a directory given as data is not walked', async () => {
    const big = place(0o755).dir;
    for (let i = 0; i <= 10_000; i++) writeFileSync(join(big, `f${i}`), '');
    expect(await started([process.execPath, big])).toMatch(/holds over 10000 entries, too many to check/);
    expect(await started([process.execPath, SERVER, big])).toBe('started');
  });
});
