/**
 * The eighth attack on the ssh judge (#72): each line ran another program, or deleted a tree, for real
 * on Debian 12. An rsync server is a transfer only as its client starts it, `--` may be an option's
 * value, a wrapper's `--` is not its command's, a bracket glob may be split by quotes, wrappers that set
 * the environment by option or directory are read, git's signing options take the rest of their word.
 * And the ninth, on those models.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { NO_RECURSIVE_RM } from '../../src/demo/sample.js';
import { sshJudgeIn } from '../harness/ssh-judge.js';

const base = mkdtempSync(join(tmpdir(), 'hoop-round-eight-'));
afterAll(() => rmSync(base, { recursive: true, force: true }));
let n = 0;
const judgeOf = (globs: string[], fallback = 'deny', sftp = 'allow', mode: 'read-only' | 'read-write' = 'read-write') =>
  sshJudgeIn(
    mkdtempSync(join(base, `r${n++}-`)),
    `  default: ${fallback}\n  sftp: ${sftp}\n  rules:\n    - { name: tools, match: { commands: [${globs.map((g) => `"${g}"`).join(', ')}] }, action: allow }\n    - { name: no-rm, match: { patterns: ['${NO_RECURSIVE_RM}'] }, action: deny }\n`,
    mode,
  );
type Case = [globs: string[], line: string, opts?: { fallback?: string; terminal?: boolean; sftp?: string; mode?: 'read-only' | 'read-write' }];
const A = { fallback: 'allow' };
const CASES: Case[] = [
  // An rsync daemon or an option its client never sends: not a file transfer.
  [['ls **'], `rsync --server --daemon --log-file-format --sender --config=/etc/systemd/journald.conf -M path=/tmp/s1 -M 'pre-xfer exec=touch /tmp/x-21' -M 'use chroot=no' .`, { sftp: 'read-only' }],
  [['ls **'], `rsync --server --daemon --log-file-format --sender --config=/etc/systemd/journald.conf -M path=/tmp/s1 -M 'pre-xfer exec=touch /tmp/x-21' .`, { mode: 'read-only' }],
  [['ls **'], `rsync --server --daemon --config=/tmp/g1/.git/config -M path=/tmp/s1 -M 'pre-xfer exec=touch /tmp/x-20' .`],
  [['rsync **'], `rsync --daemon --no-detach --port=8730 --config=/etc/systemd/journald.conf -M path=/tmp -M 'pre-xfer exec=touch /tmp/x'`],
  [['ls **'], 'rsync --server --sender -logDtpre.iLsfxCIvu --remove-source-files . /tmp/victim/', { sftp: 'read-only' }],
  // `--` as an option's value.
  [['tar **'], `tar -x --exclude -- --to-command='touch /tmp/x-1' -f a.tar`],
  [['tar **'], 'tar -cf -- *'],
  [['rsync **'], `rsync --exclude -- -e 'sh -c "touch /tmp/x-2"' x:y /tmp/d`],
  [['git **'], `git grep -e -- --open-files-in-pager='touch /tmp/x-3'`],
  // A wrapper's own `--`.
  [['ls **'], 'env -- rm -f *', A],
  [['ls **'], 'nice -- rm -f *', A],
  [['ls **'], 'timeout -- 9 rm -f *', A],
  [['ls **'], 'sudo -- rm -f *', A],
  [['ls **'], 'command -- rm -f *', A],
  [['env **', 'tar **'], 'env -- tar cf a.tar *'],
  // find's file names are its expressions.
  [['ls **'], 'find -- *', A],
  // A bracket expression split by quotes.
  [['ls **'], 'rm ["-"]rf d', A],
  [['ls **'], "rm [''-]rf d", A],
  [['tar **'], 'tar cf a.tar x.sh ["-"]-checkpoint=1 ["-"]-checkpoint-action=exec=sh\\\\ x.sh'],
  // Wrappers that set the environment.
  [['envdir **', 'git **'], `envdir envd git ls-remote 'ext::sh -c touch% /tmp/x-7'`],
  [['chpst **', 'git **'], `chpst -e envd git ls-remote 'ext::sh -c touch% /tmp/x-8'`],
  [['systemd-run **', 'git **'], `systemd-run --pipe -E GIT_ALLOW_PROTOCOL=ext git ls-remote 'ext::sh -c touch% /tmp/x'`],
  [['run0 **', 'git **'], `run0 --setenv=GIT_ALLOW_PROTOCOL=ext git ls-remote 'ext::sh -c touch% /tmp/x'`],
  [['firejail **', 'git **'], `firejail --env=GIT_ALLOW_PROTOCOL=ext git ls-remote 'ext::sh -c touch% /tmp/x'`],
  [['env **', 'dpkg-reconfigure **'], 'env DEBIAN_FRONTEND=editor dpkg-reconfigure tzdata'],
  // git's editor.
  [['git **'], 'git commit --allow-empty -Sm'],
  [['git **'], 'git tag -um v1'],
  [['git **'], 'git merge --continue'],
  [['git **'], 'git rebase --continue'],
  // Wrappers' options that take values.
  [['ls **'], 'fakeroot -b 3 rm -rf d', A],
  [['ls **'], 'xvfb-run -f x rm -rf d', A],
  [['ls **'], 'tini -s -e 143 -- rm -rf d', A],
  [['fakeroot **', 'echo **'], 'fakeroot -b echo rm -rf d'],
  [['xvfb-run **', 'echo **'], 'xvfb-run -f echo rm -rf d'],
  // Programs whose words are commands.
  [['ls **'], 'rlwrap rm -rf d', A],
  [['ls **'], "pee 'rm -rf d'", A],
  [['ls **'], "mispipe 'rm -rf d' cat", A],
  [['ls **'], 'entr rm -rf d', A],
  [['zless **'], 'zless /etc/passwd', { terminal: true }],
  // The ninth attack: an rsync server reading its arguments from its input (-s), options among its paths; tar's old-style f taking `--`;
  // git notes' subcommand after its options, an interactive rebase by pull; git help's man; systemd-run's other ways to set the environment.
  [['ls **'], 'rsync --server -s .'],
  [['ls **'], 'rsync --server --sender -s .', { sftp: 'read-only' }],
  [['ls **'], 'rsync --server --sender -sre.iLsfxCIvu .', { mode: 'read-only' }],
  [['ls **'], `rsync --server . --daemon --config=/etc/systemd/journald.conf --dparam=path=/tmp/s1 '--dparam=pre-xfer exec=touch /tmp/x' '--dparam=use chroot=no'`],
  [['ls **'], 'rsync --server --sender -re.iLsfxCIvu . --remove-source-files /tmp/v/', { mode: 'read-only' }],
  [['ls **'], `rsync --server --sender -r . --log-file=/tmp/f '--log-file-format=;touch /tmp/x;' /tmp/v/`, { mode: 'read-only' }],
  [['tar **'], 'tar cf -- *'],
  [['tar **'], 'tar cbf 20 -- *'],
  [['tar **'], `tar cf -- --to-command='touch /tmp/x' d`],
  [['git **'], 'git notes --ref x edit'],
  [['git **'], 'git notes --ref=x add'],
  [['git **'], 'git pull --rebase=interactive'],
  [['git **'], 'git --no-pager help log', { terminal: true }],
  [['systemd-run **', 'git **'], `systemd-run --pipe -pEnvironment=GIT_ALLOW_PROTOCOL=ext git ls-remote 'ext::sh -c touch% /tmp/x'`],
  [['systemd-run **', 'git **'], `systemd-run --pipe --property=Environment=GIT_ALLOW_PROTOCOL=ext git ls-remote 'ext::sh -c touch% /tmp/x'`],
  [['systemd-run **', 'git **'], `systemd-run --pipe -p EnvironmentFile=/tmp/e git ls-remote 'ext::sh -c touch% /tmp/x'`],
  [['systemd-run **', 'git **'], `systemd-run --pipe --set=GIT_ALLOW_PROTOCOL=ext git ls-remote 'ext::sh -c touch% /tmp/x'`],
  [['systemd-run **', 'git **'], `systemd-run --pipe -qE GIT_ALLOW_PROTOCOL=ext git ls-remote 'ext::sh -c touch% /tmp/x'`],
  [['systemd-run **', './script.sh **'], "systemd-run -E 'COLUMNS=a[$(touch /tmp/x)]' ./script.sh"],
  [['systemctl **'], 'systemctl edit x'],
  // Already refused: an integer variable's subscript runs.
  [['env **', './script.sh **'], "env COLUMNS='a[$(touch /tmp/x-40)]' ./script.sh"],
];
it.each(CASES)('refuses under %j: %s', async (globs, line, o = {}) => {
  const judge = await judgeOf(globs, o.fallback, o.sftp, o.mode);
  expect(judge.decide({ kind: 'exec', command: line, ...(o.terminal ? { terminal: true } : {}) }, 'bash').action).not.toBe('allow');
});

it("keeps the common forms allowed: SC2035's spelling, a message given, the locale, no pager", async () => {
  const judge = await judgeOf(['rm **', 'git **', 'env **', 'node **', 'journalctl **', 'rsync **', 'ls **']);
  for (const [line, terminal] of [
    ['rm -f -- *.tmp', false],
    ['rm ./*.log', false],
    ['git add -- *.py', false],
    ['git commit -S -m fix', false],
    ['env NODE_ENV=production node app.js', false],
    ['env LANG=C ls', false],
    ['journalctl --no-pager -u app', true],
    ['git --no-pager log', true],
  ] as const)
    expect(judge.decide({ kind: 'exec', command: line, ...(terminal ? { terminal } : {}) }, 'bash').action, line).toBe('allow');
});
