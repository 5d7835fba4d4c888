/**
 * The tenth attack on the ssh judge (#72), each line run for real on Debian 12: scp's server flags
 * read from an option's value (`scp -i -f …` is a local copy), a file transfer recognised by the
 * program's last path part (`./sftp-server` uploaded by sftp), and a glob taken as text where a
 * program reads code, letters or a subcommand (`tar c* …` beside a file `cIf`, `awk BEGIN*`).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { NO_RECURSIVE_RM } from '../../src/demo/sample.js';
import { fileTransferOf } from '../../src/policy/ssh.js';
import { parseShellLine, SHELL_LINE_MAX_TOKENS } from '../../src/policy/shell-line.js';
import { sshJudgeIn } from '../harness/ssh-judge.js';

const base = mkdtempSync(join(tmpdir(), 'hoop-round-ten-'));
afterAll(() => rmSync(base, { recursive: true, force: true }));
let n = 0;
const judgeOf = (globs: string[], sftp = 'allow', mode: 'read-only' | 'read-write' = 'read-write') =>
  sshJudgeIn(
    mkdtempSync(join(base, `r${n++}-`)),
    `  default: deny\n  sftp: ${sftp}\n  rules:\n    - { name: tools, match: { commands: [${globs.map((g) => `"${g}"`).join(', ')}] }, action: allow }\n    - { name: no-rm, match: { patterns: ['${NO_RECURSIVE_RM}'] }, action: deny }\n`,
    mode,
  );
type Case = [globs: string[], line: string, opts?: { sftp?: string; mode?: 'read-only' | 'read-write' }];
const RO = { mode: 'read-only' as const };
const CASES: Case[] = [
  // An option that takes a value is no server flag: scp runs as a client (a local copy, an ssh with the line's configuration).
  [['ls **'], 'scp -i -f /dev/null /home/deploy/.ssh/authorized_keys', RO],
  [['ls **'], 'scp -c -f -r /etc/skel z/sk', RO],
  [['ls **'], 'scp -if /dev/null y', RO],
  [['ls **'], 'scp -F ./cfg -i -t h:x y'],
  [['ls **'], 'scp -t a b'],
  [['ls **'], 'scp -t -f x'],
  // A program of the line's own, named as the transfer programs are.
  [['ls **'], './sftp-server'],
  [['ls **'], '/home/deploy/bin/sftp-server', RO],
  [['ls **'], './scp -t x'],
  [['ls **'], './rsync --server . x'],
  [['ls **'], 'exec ./scp -f x'],
  [['ls **'], '/tmp/scp -f x', { sftp: 'read-only' }],
  [['ls **'], '/usr/lib/../../tmp/scp -f x', RO],
  [['ls **'], '/usr//lib/openssh/./sftp-server'],
  // A glob where the program reads code, option letters or a subcommand.
  [['tar **'], "tar c* 'touch /tmp/x-1' a.tar f"],
  [['awk **'], 'awk BEGIN* /dev/null'],
  [['make **'], 'make -n x*'],
  [['make **'], 'make -n ./x*'],
  [['git **'], 'git co[m]mit'],
  [['git **'], 'git c*'],
  [['systemctl **'], 'systemctl e* app'],
  [['kubectl **'], 'kubectl e* deploy/x'],
  [['sed **'], 'sed -n /*/* f'],
  // A declaration read alike by bash and dash is judged as the command it is: what it puts in later programs' environment too.
  [['export **', 'git **'], "export GIT_SSH_COMMAND='touch /tmp/x-2'; git fetch"],
  [['readonly **', 'ls **'], 'readonly PATH=/tmp; ls'],
  // The eleventh: a setting and its value past git config's `--`; a value set by printf or read, then exported.
  [['git **'], 'git checkout -q evil; git config -- *; git status'],
  [['git **'], 'git -C ~ config --file .gitconfig -- *'],
  [['export **', 'git **', 'printf **'], "printf -v GIT_ALLOW_PROTOCOL ext; export GIT_ALLOW_PROTOCOL; git ls-remote 'ext::sh -c touch% /tmp/x-3'"],
  [['export **', 'git **', 'read **'], "export GIT_ALLOW_PROTOCOL; read GIT_ALLOW_PROTOCOL; git ls-remote 'ext::sh -c touch% /tmp/x-4'"],
  [['declare **', 'git **', 'read **'], "declare -x GIT_ALLOW_PROTOCOL; read GIT_ALLOW_PROTOCOL; git ls-remote 'ext::sh -c touch% /tmp/x-5'"],
  // The twelfth: a command with a `/` is a program's path (`git x/y` runs `./git-x/y`, `kubectl ./foo` runs `./kubectl-foo`).
  [['git **'], 'git clone -q /tmp/evil.git w; git -C w x/y'],
  [['git **'], 'git ./*'],
  [['kubectl **'], 'kubectl ./*'],
  [['kubectl **'], 'kubectl x/y'],
  // The thirteenth: a plugin named by the words before kubectl's first option, a `=` in them too; a kubeconfig's credential plugin.
  [['kubectl **'], 'kubectl x y/z=1'],
  [['kubectl **'], 'kubectl x=y/z'],
  [['kubectl **'], 'kubectl get po --kubeconfig=k/kc'],
  // The fourteenth: a wrapper's operand or option read as the real program reads it (setarch's ARCH only when its first word is no
  // option, xvfb-run's -l a flag, the last -c of su, runuser and script), a wrapper not listed (zrun), an option whose value is a
  // program, a library or an environment (fakeroot, dbus-run-session, valgrind, strace -E), a configuration file the line may have
  // written (ssh and scp -F, wget --config, man -C), git's templates, work tree inside .git and git-shell.
  [['setarch **', 'ls **'], 'setarch -R touch ls X'],
  [['setarch **'], 'setarch -R rm -rf /tmp/victim'],
  [['xvfb-run **', 'ls **'], 'xvfb-run -l touch ls X'],
  [['su **', 'ls **'], "su -c ls -c 'touch /tmp/x-6'"],
  [['runuser **', 'ls **'], "runuser -u deploy -c ls -c 'touch /tmp/x-7'"],
  [['script **', 'ls **'], "script -qc true -c 'rm -rf /tmp/victim' /dev/null"],
  [['zrun **'], 'zrun rm -rf /tmp/victim'],
  [['fakeroot **', 'ls **'], "fakeroot --faked='touch /tmp/x-8' ls"],
  [['fakeroot **', 'ls **'], "fakeroot -l '$(touch /tmp/x-9)' ls"],
  [['dbus-run-session **', 'ls **'], 'dbus-run-session --dbus-daemon=./evil -- ls'],
  [['valgrind **', 'ls **'], 'valgrind --tool=../../../tmp/evil ls'],
  [['strace **', 'bash **', 'ls **'], "strace -E 'BASH_FUNC_ls%%=() { touch /tmp/x-10; }' bash -c ls"],
  [['strace **', 'git **'], "strace -fE GIT_ALLOW_PROTOCOL=ext git ls-remote 'ext::sh -c touch% /tmp/x-11'"],
  [['ssh **', 'git **'], 'git clone -q /tmp/evil.git w; ssh -F w/cfg host'],
  [['scp **'], 'scp -F ./cfg a host:b'],
  [['wget **'], 'wget --config=./w/rc https://example.com/'],
  [['man **'], 'man -C ./m ls'],
  [['git **'], 'git clone -q /tmp/evil.git w; git init --template=w/tpl y; git -C y status'],
  [['git **'], 'git --work-tree=.git/hooks checkout HEAD -- post-checkout'],
  [['git **'], 'git --work-tree .git restore -s HEAD config'],
  [['git **'], 'git shell -c x'],
  [['git-shell **'], 'git-shell -c x'],
  // The fifteenth: quotes inside a double-quoted `${…}` are letters to the shells (what is between them runs), and a glob beside an
  // expansion is a built word, not file names.
  [['ls **'], `ls *"\${u-'$(touch /tmp/x-12)'}"`, RO],
  [['tail -n 50 **'], `tail -n 50 *"\${u-'$(rm -rf /tmp/victim)'}"`, RO],
  [['du -sh **'], 'du -sh *"${u-\'`touch /tmp/x-13`\'}"'],
  [['echo **'], `echo "\${u-'$(rm -rf /tmp/victim)'}"`],
  [['echo **'], `echo "\${HOME:+'$(touch /tmp/x-14)'}"`],
  [['echo **'], `echo "\${u-$'$(touch /tmp/x-15)'}"`],
  [['echo **', 'touch **'], `echo "\${u-'}"; rm -rf /tmp/victim; "'}"`],
  [['ls **'], 'ls *"$HOME"'],
  // Options whose value is a command line, a program or a library; wrappers not listed before.
  [['split **'], "split --filter='touch /tmp/x-21' in.txt", RO],
  [['split **'], "split --fil='touch /tmp/x-22' in.txt"],
  [['install **'], 'install -s --strip-program=./ev in.txt o'],
  [['install **'], 'install --strip-prog=./ev -s in.txt o'],
  [['diff3 **'], 'diff3 --diff-program=./ev a b c'],
  [['sdiff **'], 'sdiff --diff-program=./ev a b'],
  [['gcc **'], "gcc -wrapper 'sh,-c,touch /tmp/x-23' -x c /dev/null -c -o /dev/null"],
  [['gcc **'], 'gcc -B ./evil -c x.c'],
  [['cc **'], 'cc -fplugin=./ev.so -c x.c'],
  [['gcc **'], 'gcc @opts x.c'],
  [['openssl **'], 'openssl engine ./ev.so'],
  [['openssl **'], 'openssl req -engine ./ev.so -new -subj /CN=x -noenc -keyout k -out r'],
  [['openssl **'], 'openssl x509 -in c.pem -noout -provider-path . -provider ev'],
  [['scriptlive **'], "scriptlive -c 'touch /tmp/x-24' -t /dev/null -I /dev/null"],
  [['scriptlive **'], 'scriptlive -t timing -I log'],
  [['ssh-keygen **'], 'ssh-keygen -D ./ev.so'],
  [['logsave **'], 'logsave /dev/null rm -rf /tmp/victim'],
  [['logsave **'], 'logsave -a log touch /tmp/x-25'],
  [['fstab-decode **'], 'fstab-decode rm -rf /tmp/victim'],
  [['fghack **'], 'fghack rm -rf /tmp/victim'],
  [['cmake **'], 'cmake -E env rm -rf /tmp/victim'],
  [['cmake **'], 'cmake -E chdir . touch /tmp/x-26'],
  [['groff **'], 'groff -U -Tutf8 doc.ms'],
  [['nroff **'], 'nroff -U -man doc.1'],
  [['nm **'], 'nm --plugin ./ev.so a.o'],
  [['ld **'], 'ld -plugin ./ev.so a.o'],
  [['mt-gnu **'], 'mt-gnu --rsh-command=./ev -f h:/dev/st0 status'],
  // The sixteenth attack: a double-byte locale reads a byte above ASCII and the backslash after it as one character (bash, ksh93).
  [['echo **'], 'echo \u4e2d\\;touch /tmp/x-31'],
  [['echo **'], 'echo "\u4e2d\\";touch /tmp/x-32;echo "\u4e2d\\"'],
  [['ls **'], 'ls \ufffd\\;rm -rf /tmp/victim'],
  // A lone backslash ending the line: a letter to bash and dash, dropped by ksh93 and mksh (`..\` is `..`).
  [['ls /srv/app/*'], 'ls /srv/app/..\\'],
  [['chmod -R go+rw /srv/app/*'], 'chmod -R go+rw /srv/app/..\\'],
  // git's diff family writes a file whose every byte --format chooses.
  [['git log **'], "git log -1 --output=.git/config --format='[diff]%n%x09external = touch /tmp/x-33'"],
  [['git log **'], 'git log --outp=.git/config --format=x'],
  [['git show **'], 'git show --output=/home/deploy/.bashrc --format=x'],
  [['git format-patch **'], 'git format-patch -o .git/hooks HEAD~1'],
  [['git archive **'], 'git archive -o .git/config HEAD'],
  // sed's w command and s///w flag write a file (~/.bashrc runs before sshd's next command).
  [['sed -n **'], "sed -n '1s/.*/touch pwned/w .bashrc' in.txt"],
  [['sed -n **'], "sed -n 'w .bashrc' in.txt"],
  [['sed -n **'], "sed -n -e '/x/W .profile' in.txt"],
  // The seventeenth attack: search tools that run a command per file, a pager given as a command line, and wrappers.
  [['rg **'], 'rg --pre rm x data'],
  [['rg **'], 'rg --pre=./ev foo .'],
  [['rg **'], 'rg --hostname-bin=./ev --hyperlink-format=default foo .'],
  [['fdfind **'], "fdfind -x sh -c 'touch pwned' x"],
  [['fd **'], 'fd -1 notes -x rm -rf victim'],
  [['fd **'], 'fd -HX rm -rf'],
  [['fd **'], 'fd --exec-batch rm -rf'],
  [['batcat **'], "batcat --pager 'rm -rf victim' --paging always f"],
  [['bat **'], "BAT_PAGER='rm -rf victim' bat --paging always f"],
  [['rg **'], 'RIPGREP_CONFIG_PATH=./rc rg foo'],
  [['debconf **'], 'debconf rm -rf /tmp/victim'],
  [['fakeroot-sysv **'], 'fakeroot-sysv rm -rf /tmp/victim'],
  [['dpkg-architecture **'], "dpkg-architecture -c 'rm -rf /tmp/victim'"],
  [['gpg-agent **'], 'gpg-agent --daemon rm -rf /tmp/victim'],
  [['gpg-connect-agent **'], "gpg-connect-agent -E 'touch /tmp/x-34' /bye"],
  [['systemd-socket-activate **'], 'systemd-socket-activate -l 127.0.0.1:9 rm -rf /tmp/victim'],
];
it.each(CASES)('refuses under %j: %s', async (globs, line, o = {}) => {
  const judge = await judgeOf(globs, o.sftp, o.mode);
  expect(judge.decide({ kind: 'exec', command: line }, 'bash').action).not.toBe('allow');
});

it('takes the ordinary lines beside them: text above ASCII, an escaped space, git log reading', async () => {
  for (const [globs, line] of [
    [['echo **'], 'echo \u4e2d\u6587 caf\u00e9'],
    [['ls /srv/app/*'], 'ls /srv/app/a\\ b'],
    [['git log **'], 'git log --oneline -5 --format=%h'],
    [['git show **'], 'git show --stat HEAD'],
    [['sed -n **'], "sed -n 's/a/b/w /dev/stdout' in.txt"],
    [['sed -n **'], "sed -n '1,5p' in.txt"],
    [['rg **'], 'rg --pre-glob "*.gz" -n foo .'],
    [['fd **'], 'fd -e md -t f notes'],
    [['bat **'], 'bat --paging never -n f'],
  ] as const) {
    expect((await judgeOf([...globs])).decide({ kind: 'exec', command: line }, 'bash').action, line).toBe('allow');
  }
});

it("takes the transfers OpenSSH's and rsync's clients start, and globs that can only be file names", async () => {
  for (const [line, kind] of [
    ['scp -t -- /srv/in', 'upload'],
    ['scp -v -r -p -d -t -- /srv/in', 'upload'],
    ['scp -f -- /srv/a /srv/b', 'download'],
    ['scp -r -f /srv/dir', 'download'],
    ['/usr/lib/openssh/sftp-server', 'sftp'],
    ['/usr/libexec/openssh/sftp-server -l INFO', 'sftp'],
    ['exec /usr/bin/scp -f x', 'download'],
  ] as const)
    expect(fileTransferOf(line), line).toBe(kind);
  const judge = await judgeOf(['tar **', 'git **', 'awk **'], 'read-only', 'read-only');
  for (const line of ['scp -f -- /srv/a', '/usr/lib/openssh/sftp-server', 'tar cf /tmp/a.tar ./*', 'tar cf /tmp/a.tar -- *', 'git add -- *.py', "awk '{print}' ./*.log"])
    expect(judge.decide({ kind: 'exec', command: line }, 'bash').action, line).toBe('allow');
});

it('reads a declaration bash and dash run alike as the command it is: a safe name is allowed, not "uncertain"', async () => {
  const judge = await judgeOf(['export **', 'ls **']);
  expect(judge.decide({ kind: 'exec', command: 'export LANG=C; ls -l' }, 'bash').action).toBe('allow');
  expect(judge.decide({ kind: 'exec', command: 'export LANG=C TZ=UTC; ls' }, '/bin/sh').action).toBe('allow');
});

it('keeps the wrappers of the fourteenth attack running what they run: setarch with its ARCH, su with one -c, strace without -E', async () => {
  const judge = await judgeOf(['setarch **', 'su **', 'strace **', 'valgrind **', 'ls **', '/bin/ls **', 'git **']);
  for (const line of ['setarch x86_64 -R ls -l', 'setarch -R ls', "su -s /bin/bash -c 'ls -l' deploy", 'strace -f -e trace=open ls', 'valgrind --tool=memcheck ls', 'git --work-tree=/srv/app status'])
    expect(judge.decide({ kind: 'exec', command: line }, 'bash').action, line).toBe('allow');
  const rm = await judgeOf(['setarch **', 'su **', 'ls **']);
  for (const line of ['setarch -R ls -l', "su -s /bin/sh -c 'rm -rf /tmp/x' -c ls"]) expect(rm.decide({ kind: 'exec', command: line }, 'bash').action, line).toBe('allow');
  // Without -s, the -c string runs in the target user's login shell, which hoop does not know (the eleventh attack's zsh): only a program by its path and plain words, which every shell runs alike, are judged.
  expect(judge.decide({ kind: 'exec', command: "su -c '/bin/ls -l' deploy" }, 'bash').action).toBe('allow');
  for (const line of [
    "su -c 'ls -l' deploy",
    "su -c 'noglob ls *' deploy",
    "su -c '/bin/ls $HOME' deploy",
    "su -c '=ls' deploy",
    "su -c 'hup /bin/ls' deploy",
    "su -c ' - /bin/ls' deploy",
    "su -c 'path=/tmp /bin/ls' deploy",
  ])
    expect(judge.decide({ kind: 'exec', command: line }, 'bash').action, line).toBe('deny');
});

it("takes a tilde at an argument's start as a directory's path, which an allow rule's `**` word stands for: `ls -la ~` runs under `ls **` (the fourteenth attack's over-refusal)", async () => {
  const judge = await judgeOf(['ls **', 'cat **', 'rm **', 'git **']);
  for (const line of ['ls -la ~', 'ls ~/app ~/etc', 'cat ~/notes.txt', 'ls ~+ ~-']) expect(judge.decide({ kind: 'exec', command: line }, 'bash').action, line).toBe('allow');
  // Not a deny rule's word, nor a tilde with more built (`~$X`), nor one where git reads its words, nor a glob of one segment.
  for (const line of ['rm -rf ~', 'rm -rf ~/app', 'ls ~$X', 'git -C ~/app pull', 'ls a=~']) expect(judge.decide({ kind: 'exec', command: line }, 'bash').action, line).not.toBe('allow');
  const narrow = await judgeOf(['cat /srv/*']);
  expect(narrow.decide({ kind: 'exec', command: 'cat ~/x' }, 'bash').action).not.toBe('allow');
});

it("keeps kubectl's own commands allowed, a resource by its kind and name too", async () => {
  const judge = await judgeOf(['kubectl **']);
  for (const line of ['kubectl get deploy/web -o yaml', 'kubectl -n prod get pods', 'kubectl describe pod/api-1', 'kubectl logs deploy/web --tail 50'])
    expect(judge.decide({ kind: 'exec', command: line }, 'bash').action, line).toBe('allow');
});

it('reads the quotes inside a double-quoted ${…} as the shells do: what is between them runs, so a deny rule meets it (the fifteenth attack)', async () => {
  const judge = await sshJudgeIn(
    mkdtempSync(join(base, `d${n++}-`)),
    `  default: allow\n  rules:\n    - { name: no-touch, match: { commands: ["touch *"] }, action: deny }\n    - { name: no-rm, match: { patterns: ['${NO_RECURSIVE_RM}'] }, action: deny }\n`,
    'read-write',
  );
  for (const line of [
    `echo "\${u-'$(touch /tmp/x-16)'}"`,
    'echo "${u:-\'`touch /tmp/x-17`\'}"',
    `x="\${u-'$(touch /tmp/x-18)'}"`,
    `case "\${u-'$(touch /tmp/x-19)'}" in *) ;; esac`,
    `for i in "\${u-'$(rm -rf /tmp/victim)'}"; do :; done`,
    `echo "\${u-'}"; touch /tmp/x-20; "'}"`,
  ])
    for (const login of ['bash', '/bin/sh']) expect(judge.decide({ kind: 'exec', command: line }, login).action, `${login}: ${line}`).not.toBe('allow');
  // A quote in a command substitution inside double quotes is a quote: judged as the command it is.
  expect(judge.decide({ kind: 'exec', command: `echo "$(echo 'a b')"` }, 'bash').action).toBe('allow');
});

it("reads the quotes inside a here-document's ${…} as letters too, and a restricted or legacy shell's -c script as a shell's (the helper's attack)", async () => {
  const judge = await sshJudgeIn(
    mkdtempSync(join(base, `d${n++}-`)),
    `  default: allow\n  rules:\n    - { name: no-touch, match: { commands: ["touch *"] }, action: deny }\n    - { name: no-rm, match: { patterns: ['${NO_RECURSIVE_RM}'] }, action: deny }\n`,
    'read-write',
  );
  for (const line of [
    `cat <<EOF\n\${u-'$(rm -rf /tmp/victim)'}\nEOF`,
    `cat <<EOF\n\${x:='$(touch /tmp/x-21)'}\nEOF`,
    `cat <<-EOF\n\t\${x%'\`touch /tmp/x-22\`'}\nEOF`,
    "lksh -c 'touch /tmp/x-23'",
    "rksh -c 'touch /tmp/x-24'",
    "rmksh -c 'touch /tmp/x-25'",
    "rzsh -c 'touch /tmp/x-26'",
    "env rzsh -c 'touch /tmp/x-27'",
  ])
    for (const login of ['bash', '/bin/sh']) expect(judge.decide({ kind: 'exec', command: line }, login).action, `${login}: ${line}`).not.toBe('allow');
  // A quoted here-document is read as letters by both; a quote outside ${…} in a body is a letter hoop's parser reads as one too.
  for (const line of [`cat <<'EOF'\n\${u-'$(touch /tmp/x)'}\nEOF`, "cat <<EOF\nit's $HOME\nEOF", "lksh -c 'ls -l'"])
    expect(judge.decide({ kind: 'exec', command: line }, 'bash').action, line).toBe('allow');
});

it('keeps the ordinary uses of the programs the fifteenth attack named allowed', async () => {
  const judge = await judgeOf(['gcc **', 'openssl **', 'split **', 'install **', 'diff3 **', 'cmake **', 'logsave **', 'ls **', 'ssh-keygen **']);
  for (const line of [
    'gcc -O2 -Wall -Werror -c x.c -o x.o',
    'openssl x509 -in c.pem -noout -text',
    'openssl s_client -connect db:5432 -starttls postgres',
    'split -l 100 in.txt part-',
    'install -m 0644 a /tmp/b',
    'diff3 a b c',
    'cmake --build build -j 2',
    'cmake -E echo hi',
    'logsave /tmp/log ls -la',
    'ssh-keygen -lf key.pub',
  ])
    expect(judge.decide({ kind: 'exec', command: line }, 'bash').action, line).toBe('allow');
});

it('meets a deny rule in the command a wrapper of the seventeenth attack runs, under default allow', async () => {
  const judge = await sshJudgeIn(mkdtempSync(join(base, `d${n++}-`)), `  default: allow\n  rules:\n    - { name: no-rm, match: { patterns: ['${NO_RECURSIVE_RM}'] }, action: deny }\n`, 'read-write');
  for (const line of ['debconf rm -rf /tmp/victim', 'debconf -f noninteractive rm -rf /tmp/victim', 'fakeroot-tcp rm -rf /tmp/victim', 'fdfind -1 notes -x rm -rf victim', 'rg --pre rm x data'])
    expect(judge.decide({ kind: 'exec', command: line }, 'bash').action, line).not.toBe('allow');
  expect(judge.decide({ kind: 'exec', command: 'debconf ls -la' }, 'bash').action).toBe('allow');
});

it('reads no line of more words, quotes and expansions than it reads in time: uncertain unread (the seventeenth attack: 16,347 `$a` held the shared reader 10 s)', async () => {
  const judge = await judgeOf(['echo **', 'ls **']);
  for (const line of [`echo ${'$a'.repeat(16_347)}`, `echo ${'"a"'.repeat(5_000)}`, `ls ${'a '.repeat(3_000)}`, 'x -$a;'.repeat(4_000)]) {
    const parsed = parseShellLine(line);
    expect(parsed, line.slice(0, 20)).toEqual({ certain: false, why: `it holds more than ${SHELL_LINE_MAX_TOKENS} words, quotes and expansions, more than the gateway reads in time` });
    expect(judge.decide({ kind: 'exec', command: line }, 'bash').action, line.slice(0, 20)).not.toBe('allow');
  }
  expect(judge.decide({ kind: 'exec', command: `ls ${'a '.repeat(2_000)}` }, 'bash').action).toBe('allow');
});

it('matches no more of a line than its budget on the event loop: a 30 KB line that runs ten commands is uncertain against 21 rules (the seventeenth attack: 0.8 s of the event loop)', async () => {
  const patterns = Array.from({ length: 20 }, (_, i) => `^(\\\\S*/)?prog${i}\\\\s`);
  const judge = await sshJudgeIn(
    mkdtempSync(join(base, `d${n++}-`)),
    `  default: allow\n  rules:\n${patterns.map((p, i) => `    - { name: p${i}, match: { patterns: ['${p}'] }, action: deny }\n`).join('')}    - { name: g, match: { commands: ["rm *"] }, action: deny }\n`,
    'read-write',
  );
  const long = `nice --foo ${'aaaaaaaaaaaaaaa '.repeat(1_900)}`;
  expect(judge.decide({ kind: 'exec', command: long }, 'bash')).toMatchObject({ action: 'deny', reason: expect.stringContaining('more than the gateway matches against its 21 rules in time') });
  // One command of the same length is matched: the budget is what the line runs times the rules.
  expect(judge.decide({ kind: 'exec', command: `ls ${'aaaaaaaaaaaaaaa '.repeat(1_900)}` }, 'bash').action).toBe('allow');
});

it("weighs a pattern by its program: bounded repeats of a thousand make a 32 KiB line uncertain, not 2 s of the event loop (the helper's attack)", async () => {
  const judge = await sshJudgeIn(
    mkdtempSync(join(base, `d${n++}-`)),
    `  default: allow\n  rules:\n    - { name: heavy, match: { patterns: ['[a-z]{1,1000}[0-9]{1,1000}x'] }, action: deny }\n`,
    'read-write',
  );
  // Refused before any matching: the budget is said (the line uncertain, the deny counts as matching).
  const verdict = judge.decide({ kind: 'exec', command: `echo ${'a'.repeat(32 * 1024)}` }, 'bash');
  expect(verdict).toMatchObject({ action: 'deny', reason: expect.stringContaining('more than the gateway matches against its 1 rules in time') });
  // An ordinary line is matched.
  expect(judge.decide({ kind: 'exec', command: 'echo hello' }, 'bash').action).toBe('allow');
});
