/**
 * The eleventh attack on the SSH judge and on matching (issue 72, classes 1 and 2): lines a shell
 * reads otherwise than hoop's parser, shells a line starts that hoop does not model, and two
 * matchers that backtracked. Each case runs the real shell on a scratch directory (never anything
 * outside it), then asks the judge about the same line: every deny counts as matching.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { NO_RECURSIVE_RM } from '../../src/demo/sample.js';
import { readableView } from '../../src/policy/masking/values.js';
import { redactKeyValues } from '../../src/postgres/pipeline/masking/result-masker.js';
import { sshJudgeIn } from '../harness/ssh-judge.js';

const base = mkdtempSync(join(tmpdir(), 'atk2-'));
afterAll(() => rmSync(base, { recursive: true, force: true }));
let n = 0;
/** A directory the line is to delete, and whether it is gone after `run`. */
function victim(): string {
  const dir = join(base, `v${n++}`);
  mkdirSync(dir);
  return dir;
}
/** default allow/deny, an allow list, and both kinds of deny rule on recursive rm. */
const judge = (def: 'allow' | 'deny', allow: string[] = ['ls **', 'echo **']) =>
  sshJudgeIn(
    mkdtempSync(join(base, 'j-')),
    `  default: ${def}\n  rules:\n    - { name: tools, match: { commands: [${allow.map((g) => JSON.stringify(g)).join(', ')}] }, action: allow }\n    - { name: no-rm, match: { patterns: ['${NO_RECURSIVE_RM}'] }, action: deny }\n    - { name: no-rm-glob, match: { commands: ["rm -rf *"] }, action: deny }\n`,
  );
const run = (shell: string, args: string[], input?: string) => spawnSync(shell, args, { input: input ?? '', timeout: 10_000, env: { PATH: '/usr/bin:/bin', SHELL: '/bin/bash' } });

describe('class 2: a line a shell reads otherwise than hoop, or that starts a shell hoop does not model, is uncertain', () => {
  it('F-A: a backquoted command inside double quotes: bash and dash drop the backslash of \\", mvdan-sh keeps it', async () => {
    for (const shell of ['bash', 'dash']) {
      const dir = victim();
      const line = `ls "\`echo \\"x'\\"; rm -rf ${dir}; echo \\"'\\"\`"`;
      run(shell, ['-c', line]);
      expect(existsSync(dir), `${shell} ran rm`).toBe(false);
      const v = (await judge('allow')).decide({ kind: 'exec', command: line }, shell);
      // hoop's parser read `echo "x\"; rm -rf …; echo \""` as one echo: now uncertain.
      expect(v.action).toBe('deny');
    }
  });

  it('F-B: su/runuser -s names the shell that runs the -c string, yet it is read as bash (zsh runs `noglob rm`, `=rm`, `repeat 1 rm`)', async () => {
    for (const script of ['noglob rm -rf DIR', '=rm -rf DIR', 'repeat 1 rm -rf DIR']) {
      const dir = victim();
      // What `su -s /usr/bin/zsh -c SCRIPT root` (or `runuser -s …`) execs: zsh -c SCRIPT.
      run('zsh', ['-c', script.replace('DIR', dir)]);
      expect(existsSync(dir), script).toBe(false);
      const j = await judge('allow');
      for (const line of [`su -s /usr/bin/zsh -c '${script.replace('DIR', dir)}' root`, `runuser --shell=/bin/zsh -c '${script.replace('DIR', dir)}' root`]) {
        expect(j.decide({ kind: 'exec', command: line }, 'bash').action, line).toBe('deny');
      }
    }
  });

  it('F-C: sudo -s/-i re-reads its command through a shell with `$` left live; hoop judges the words literally', async () => {
    const dir = victim();
    const words = ['r$1m', '-rf', dir];
    // sudo's parse_args.c for -s/-i: every byte but [A-Za-z0-9_$-] backslash-escaped, words joined by spaces, run as `$SHELL -c …`.
    const cmnd = words.map((w) => w.replace(/[^A-Za-z0-9_$-]/g, '\\$&')).join(' ');
    run('bash', ['-c', cmnd]);
    expect(existsSync(dir)).toBe(false);
    const j = await judge('allow');
    for (const line of [`sudo -s 'r$1m' -rf ${dir}`, `sudo -i 'r$@m' -rf ${dir}`]) expect(j.decide({ kind: 'exec', command: line }, 'bash').action, line).toBe('deny');
  });

  it('F-D: a wrapper given no command starts $SHELL reading the channel (setarch, unshare, chroot DIR, fakeroot); `bash` alone is opaque, these are not', async () => {
    const dir = victim();
    run('setarch', ['x86_64'], `rm -rf ${dir}\n`);
    expect(existsSync(dir)).toBe(false);
    const open = await judge('allow');
    for (const line of ['setarch x86_64', 'linux64', 'unshare', 'chroot /', 'fakeroot', 'fakeroot-tcp', 'nsenter -t 1 -m', 'pkexec', 'run0'])
      expect(open.decide({ kind: 'exec', command: line }, 'bash').action, line).toBe('deny');
    // With a command, or asked only for help, they start no shell.
    for (const line of ['setarch x86_64 ls', 'unshare -r ls', 'chroot / ls', 'fakeroot ls', 'pkexec --help']) expect(open.decide({ kind: 'exec', command: line }, 'bash').action, line).toBe('allow');
    expect(open.decide({ kind: 'exec', command: 'bash' }, 'bash').action).toBe('deny');
    // An allow list that means "fakeroot of what else is allowed" admits a shell.
    const closed = await judge('deny', ['fakeroot **', 'unshare **', 'ls **']);
    for (const line of ['fakeroot', 'unshare -r']) expect(closed.decide({ kind: 'exec', command: line }, 'bash').action, line).toBe('deny');
    expect(closed.decide({ kind: 'exec', command: 'fakeroot ls' }, 'bash').action).toBe('allow');
  });
});

describe('the second attack: plain words some shell reads otherwise, and programs that run what hoop does not see', () => {
  it("runs tcsh's hup, zsh's `-` and zsh's tied path= as those shells do: a su -c string is judged only as a program by its path and plain words", async () => {
    for (const [shell, script] of [
      ['tcsh', 'hup rm -rf DIR'],
      ['zsh', ' - rm -rf DIR'],
    ] as const) {
      const dir = victim();
      run(shell, ['-c', script.replace('DIR', dir)]);
      expect(existsSync(dir), `${shell} ran rm`).toBe(false);
    }
    const j = await judge('allow');
    for (const line of ["su -c 'hup rm -rf /tmp/x' root", "su -s /bin/tcsh -c 'hup rm -rf /tmp/x' root", "runuser -c ' - rm -rf /tmp/x' root", "su -c 'path=/tmp ls -l' root"])
      expect(j.decide({ kind: 'exec', command: line }, 'bash').action, line).toBe('deny');
    const closed = await judge('deny', ['ls **', '/bin/ls **', 'su **', 'dirs **']);
    expect(closed.decide({ kind: 'exec', command: "su -c 'dirs -L /tmp/f' root" }, 'bash').action).toBe('deny');
    expect(closed.decide({ kind: 'exec', command: "su -c '/bin/ls -l /srv' root" }, 'bash').action).toBe('allow');
  });

  it("judges as uncertain what starts a shell or runs what hoop does not see: sg GROUP, machinectl shell, systemd-run --shell, run-parts, dtach, abduco, openvt, parallel reading its commands (a command ssh runs on another host is that host's to judge)", async () => {
    const j = await judge('allow');
    for (const line of [
      'sg root',
      'machinectl shell root@ /bin/rm -rf /x',
      'systemd-run --shell',
      'busybox run-parts /tmp/d',
      'run-parts /tmp/d',
      'dtach -c /tmp/s rm -rf /x',
      'abduco -c s rm -rf /x',
      'openvt -- rm -rf /x',
      'parallel',
    ])
      expect(j.decide({ kind: 'exec', command: line }, 'bash').action, line).toBe('deny');
    expect(j.decide({ kind: 'exec', command: 'sg adm ls' }, 'bash').action).toBe('allow');
  });
});

describe('class 1: matching linear in its input', () => {
  /** How long `f` takes. */
  const ms = (f: () => unknown) => {
    const s = performance.now();
    f();
    return performance.now() - s;
  };
  // A bound far from both: linear, tens of milliseconds even beside a busy loop; quadratic, minutes (a ratio of two timings was noise on a busy machine).
  it('F-E: readableView (MCP results, MySQL text, COPY, json) reads 2 MiB of backslashes at once (it backtracked: 64 KiB took 2.7 s, 2 MiB would take most of an hour)', () => {
    expect(ms(() => readableView('\\'.repeat(2048 * 1024)))).toBeLessThan(5_000);
  });
  it('F-F: redactKeyValues reads a 512 KiB error detail of `Key (` + `)=(`… at once (it backtracked: 64 KiB took 1.76 s, 512 KiB nearly two minutes)', () => {
    const detail = (k: number) => `Key (${')=('.repeat(k / 3)}X`;
    expect(ms(() => redactKeyValues(detail(512 * 1024)))).toBeLessThan(5_000);
    expect(redactKeyValues('Key (email)=(a@b.c) already exists.')).toBe('Key (email)=([redacted]) already exists.');
  });
});
