/** The harness's launcher runs programs as execFile would, from a process that is not the worker's. */
import { describe, expect, it } from 'vitest';
import { launch } from '../harness/launcher.js';

describe('launch', () => {
  it('runs a program from the launcher, with its stdin, environment and directory, and says how it ended', async () => {
    const r = await launch({ file: 'sh', args: ['-c', 'echo "$PPID $X $(pwd)"; cat; echo err >&2; exit 3'], env: { PATH: process.env.PATH, X: 'x1' }, cwd: '/tmp', input: 'fed\n' });
    const [parent, x, dir] = r.stdout.split('\n')[0]!.split(' ');
    // Forked by the launcher, never by this (large) worker.
    expect(Number(parent)).not.toBe(process.pid);
    expect([x, dir]).toEqual(['x1', '/tmp']);
    expect(r).toMatchObject({ code: 3, stderr: 'err\n' });
    expect(r.stdout).toContain('fed\n');
  });

  it('a program that does not exist, and one killed at its timeout', async () => {
    expect((await launch({ file: '/nonexistent/program', args: [] })).error).toMatchObject({ code: 'ENOENT' });
    const slow = await launch({ file: 'sleep', args: ['10'], timeoutMs: 100 });
    expect(slow).toMatchObject({ code: null, signal: 'SIGTERM', error: { killed: true } });
  });

  it('answers requests made at once, each with its own output', async () => {
    const all = await Promise.all(Array.from({ length: 20 }, (_, i) => launch({ file: 'sh', args: ['-c', `echo ${i}`] })));
    expect(all.map((r) => r.stdout.trim())).toEqual(Array.from({ length: 20 }, (_, i) => String(i)));
  });
});
