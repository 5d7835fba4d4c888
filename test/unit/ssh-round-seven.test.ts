/**
 * The seventh attack on the ssh judge (#72). Each refused line ran another program for real on
 * Debian 12 (the attack's proofs): a glob whose file names may start with `-` is read as what it
 * may be (SC2035), `rsync --server` is the server only as its client starts it, git's commands
 * that start the editor are judged as a shell, only the locale, TZ, TERM and colours pass through
 * `env`/`sudo`, and more programs' hooks, shell escapes, pagers and wrappers are known.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { NO_RECURSIVE_RM } from '../../src/demo/sample.js';
import { fileTransferOf } from '../../src/policy/ssh.js';
import { sshJudgeIn } from '../harness/ssh-judge.js';

const base = mkdtempSync(join(tmpdir(), 'hoop-round-seven-'));
afterAll(() => rmSync(base, { recursive: true, force: true }));
let n = 0;
/** A judge whose rules allow `globs` (under `default`) and deny the demo's recursive delete. */
const judgeOf = (globs: string[], fallback = 'deny') =>
  sshJudgeIn(
    mkdtempSync(join(base, `r${n++}-`)),
    `  default: ${fallback}\n  rules:\n    - { name: tools, match: { commands: [${globs.map((g) => `"${g}"`).join(', ')}] }, action: allow }\n    - { name: no-rm, match: { patterns: ['${NO_RECURSIVE_RM}'] }, action: deny }\n`,
  );

const REFUSED: Array<[globs: string[], line: string, terminal?: boolean, fallback?: string]> = [
  [['ls **'], `rsync --exclude --server -e 'sh -c "touch /tmp/x"' x:y /tmp/d`],
  [['ls **'], `rsync -e 'sh -c "touch /tmp/x"' -- --server x:y`],
  [['rsync **'], `rsync --exclude --server -e 'sh -c "touch /tmp/x"' x:y /tmp/d`],
  [['git **'], 'git commit --allow-empty'],
  [['git **'], 'git commit --amend'],
  [['git **'], 'git rebase -i HEAD'],
  [['git **'], 'git tag -a v1'],
  [['git **'], 'git notes add'],
  [['git **'], 'git branch --edit-description'],
  [['git **'], 'git add -p'],
  [['git **'], 'git merge topic', true],
  [['env **', 'git **'], `env GIT_ALLOW_PROTOCOL=ext git ls-remote 'ext::sh -c touch% /tmp/x'`],
  [['env **', 'kubectl get **'], 'env KUBECONFIG=/dev/stdin kubectl get pods'],
  [['env **', 'man **'], 'env MANROFFOPT=-U man -l /dev/stdin'],
  [['env **', 'make **'], 'env MAKEFILES=/dev/stdin make -n nothing'],
  [['sudo **', 'ls **'], 'sudo WGETRC=/dev/stdin ls'],
  [['dpkg-query **'], 'dpkg-query -l', true],
  [['dmesg **'], 'dmesg -H', true],
  [['pydoc3 **'], 'pydoc3 os', true],
  [['ncdu **'], 'ncdu /', true],
  [['systemd-analyze **'], 'systemd-analyze cat-config systemd/system.conf', true],
  [['zip **'], `zip -TqTT 'touch /tmp/x #' x.zip f`],
  [['zip **'], `zip -T -qTT 'touch /tmp/x #' x.zip f`],
  [['apt-get update **'], `apt-get update -o Debug::NoLocking=1 -o APT::Update::Pre-Invoke::='touch /tmp/x'`],
  [['apt **'], `apt update -oAPT::Update::Pre-Invoke::='touch /tmp/x'`],
  [['dpkg **'], `dpkg --pre-invoke='touch /tmp/x' --configure -a`],
  [['dpkg **'], `dpkg --post-inv='touch /tmp/x' -l`],
  [['telnet **'], 'telnet'],
  [['lftp **'], 'lftp'],
  [['cpio **'], 'cpio -o --rsh-command=/bin/bash -F localhost:x'],
  [['mt **'], 'mt --rsh-command=/usr/bin/env -f touch:x status'],
  [['tar **'], 'tar -cf a.tar --rmt-command=/tmp/x -f h:x .'],
  [['tar **'], 'tar cf /tmp/a.tar *'],
  [['tar **'], 'tar cf /tmp/a.tar -* x'],
  [['ls **'], 'choom -n 0 -- rm -rf /tmp/x', false, 'allow'],
  [['ls **'], 'ssh-agent rm -rf /tmp/x', false, 'allow'],
  [['ls **'], 'dbus-run-session rm -rf /tmp/x', false, 'allow'],
  [['expect **'], 'expect'],
  [['ls **'], 'busybox cttyhack rm -rf /tmp/x', false, 'allow'],
  [['ls **'], 'systemd-cat -t x rm -rf /tmp/x', false, 'allow'],
  [['ls **'], 'touch ./-rf; rm *', false, 'allow'],
  [['ls **'], 'rm -f ?*', false, 'allow'],
];

it.each(REFUSED)('refuses under an allow list of %j: %s', async (globs, line, terminal, fallback) => {
  const verdict = (await judgeOf(globs, fallback)).decide({ kind: 'exec', command: line, ...(terminal ? { terminal } : {}) }, 'bash');
  expect(verdict.action).toBe('deny');
});

it('still allows what these programs do without running another: a glob that cannot be an option, the transfer its client starts, a message given', async () => {
  const judge = await judgeOf(['git **', 'tar **', 'cat **', 'rm **', 'env **', 'zip **', 'apt-get **', 'dpkg **', 'rsync **', 'ls **']);
  for (const line of [
    'cat *',
    'cat ./*.log',
    'tar cf /tmp/a.tar ./*',
    'tar cf /tmp/a.tar -- *',
    'rm -f -- *.tmp',
    'ls /var/log/*.log',
    'git commit -m "fix"',
    'git commit -am fix',
    'git commit --amend --no-edit',
    'git tag v1',
    'git tag -a v1 -m release',
    'git merge --no-edit topic',
    'git merge topic',
    'git log --oneline',
    'env LANG=C TZ=UTC LC_ALL=C ls',
    'zip -r x.zip dir',
    'apt-get install -y --no-install-recommends curl',
    'dpkg -l',
    'rsync --server -vlogDtpre.iLsfxCIvu . /srv/x',
  ])
    expect(judge.decide({ kind: 'exec', command: line }, 'bash').action, line).toBe('allow');
  // The demo's policy (default allow): a recursive delete written past a glob's reach is refused, a plain one runs.
  const demo = await judgeOf(['ls **'], 'allow');
  expect(demo.decide({ kind: 'exec', command: 'rm ./*.log' }, 'bash').action).toBe('allow');
  expect(demo.decide({ kind: 'exec', command: 'rm *.log' }, 'bash')).toMatchObject({ action: 'deny', reason: expect.stringContaining('write `./*.log`') });
});

it('takes rsync for a file transfer only as its client starts the server: `--server` first', () => {
  expect(fileTransferOf('rsync --server -vlogDtpre.iLsfxCIvu . /srv/x')).toBe('upload');
  expect(fileTransferOf('rsync --server --sender -vlogDtpre.iLsfxCIvu . /srv/x')).toBe('download');
  expect(fileTransferOf('rsync --server -vlogDtpre.iLsfxCIvu . -- --sender')).toBe('unknown');
  expect(fileTransferOf(`rsync --exclude --server -e 'sh -c x' x:y d`)).toBe('unknown');
  expect(fileTransferOf(`rsync -e 'sh -c x' -- --server x:y`)).toBe('unknown');
});
