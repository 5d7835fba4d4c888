/**
 * A user's mistake is a plain error with an exit code of sysexits(3) and a hint, never "unexpected
 * error … report it" (issue 73): a port another program holds, a key that is not one, and what
 * the system says of the user's machine (a full disk, a read-only file system, a path not theirs).
 */
import { createServer, type Server } from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { systemErrorOf } from '../../src/errors.js';
import { runCli } from '../harness/run-cli.js';

const base = mkdtempSync(join(tmpdir(), 'hoop-user-errors-'));
afterAll(() => rmSync(base, { recursive: true, force: true }));
const env = { PATH: process.env.PATH, HOME: base };

describe("a user's mistake", () => {
  it('a port another program holds: exit 69 and which port, with what to do', async () => {
    const init = await runCli(['gateway', 'init', '--dir', join(base, 'trial'), '--url', 'https://127.0.0.1:8443', '--idp', 'dev'], env, base);
    expect(init.code, init.stderr).toBe(0);
    const holder: Server = createServer();
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    const port = (holder.address() as { port: number }).port;
    try {
      const r = await runCli(['gateway', 'dev-idp', '--users', join(base, 'trial', 'dev-users.yaml'), '--port', String(port)], env, base);
      expect(r.code).toBe(69);
      expect(r.stderr).toContain(`the address is in use (127.0.0.1:${port})`);
      expect(r.stderr).toContain('hint: pick another --port');
      expect(r.stderr).not.toContain('unexpected error');
    } finally {
      holder.close();
    }
  });

  it('a --key that is not a public key: exit 64, saying so', async () => {
    const r = await runCli(['sessions', 'verify', '--file', base, '--key', 'not a key'], env, base);
    expect(r.code).toBe(64);
    expect(r.stderr).toMatch(/--key "not a key" is not an ssh-ed25519 public key/);
    expect(r.stderr).not.toContain('unexpected error');
  });

  it('sessions verify --file of a path that is no directory (none there, or a file): exit 66 and why, never 1 (the code of evidence that does not verify)', async () => {
    const key = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKnTgBz2uMe2mHZkvFcvkd2fzvQoa4XcNdn93vSKCvc2';
    writeFileSync(join(base, 'a-file'), 'x');
    for (const [path, said] of [
      [join(base, 'no-such-dir'), 'no such file or directory'],
      [join(base, 'a-file'), 'not a directory'],
    ]) {
      const r = await runCli(['sessions', 'verify', '--file', path!, '--key', key], env, base);
      expect(r.code, r.stderr).toBe(66);
      expect(r.stderr).toContain(`hoop: ${said} (${path})`);
      expect(r.stderr).toContain('hint: give a recording directory');
      expect(r.stderr).not.toContain('does not verify');
    }
  });

  it('what the system says of the machine: a full disk, a read-only file system, a path not the user’s, each with its exit code', () => {
    const errno = (code: string, path?: string): Error => Object.assign(new Error(`${code}: failed`), { code, ...(path ? { path } : {}) });
    expect(systemErrorOf(errno('ENOSPC', '/var/lib/hoop/x'))).toMatchObject({
      exitCode: 74,
      message: expect.stringMatching(/^the disk is full \(\/var\/lib\/hoop\/x\)/),
      hint: expect.stringContaining('free some space'),
    });
    expect(systemErrorOf(errno('EROFS', '/ro'))).toMatchObject({ exitCode: 73 });
    expect(systemErrorOf(errno('EACCES', '/root/x'))).toMatchObject({ exitCode: 77 });
    expect(systemErrorOf(new Error('a bug'))).toBeUndefined();
    expect(systemErrorOf(errno('ECONNRESET'))).toBeUndefined();
  });
});
