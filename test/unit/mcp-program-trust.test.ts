/**
 * What the gateway runs for an MCP connection it trusts as it trusts its keys (src/mcp/gateway/upstream.ts): a
 * program, or a file an interpreter is given, that another user could replace is not started, named with the fix
 * (the fifteenth attack: a gateway running as root ran a script another user owned, in their directory).
 */
import { chmodSync, chownSync, copyFileSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { McpConnection } from '../../src/config/connection.js';
import { openUpstream } from '../../src/mcp/gateway/upstream.js';

const SERVER = resolve(import.meta.dirname, '../fixtures/attack-mcp-server.mjs');
const base = mkdtempSync(join(tmpdir(), 'hoop-mcp-program-'));
chmodSync(base, 0o755);
let made = 0;

const connection = (command: string[]): McpConnection => ({ name: 'files', type: 'mcp', command, allow: { subjects: [], emails: [], groups: [] } });

/** Opens the connection's server: what became of it, and closes it when it started. */
async function started(command: string[], path = process.env.PATH): Promise<string> {
  const saved = process.env.PATH;
  process.env.PATH = path;
  try {
    const upstream = await openUpstream(connection(command), async () => '', base, { message: () => undefined, closed: () => undefined });
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
    // Found on PATH as the child's PATH finds it.
    expect(await started(['mcp-files'], `${open.dir}:${process.env.PATH}`)).toMatch(/not started: the gateway will not trust/);
    // A node option's file is code too.
    expect(await started([process.execPath, '--import', open.script, SERVER])).toMatch(/not started/);
  });

  it.runIf(process.getuid?.() === 0)('is not started when it is another user’s, in their directory', async () => {
    const theirs = place(0o755, 1001);
    expect(await started([process.execPath, theirs.script])).toMatch(/not started: the gateway will not trust .*: .*belongs to another user \(uid 1001\)/);
    expect(await started([theirs.program])).toMatch(/belongs to another user \(uid 1001\)/);
  });
});
