/**
 * The ssh judge reads a command line as the target's shell will run it (issue 38, class A): an
 * allow glob matches only a simple command, every command a line runs is judged (the most
 * restrictive decision wins), a deny pattern sees each command with its quotes and escapes
 * removed and may match what is built when it runs, and a line the gateway cannot parse is
 * matched by no allow rule. The spellings are the same table the real-sshd test runs.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ansiC, parseShellLine, SHELL_LINE_MAX_BYTES } from '../../src/policy/shell-line.js';
import { readShellLine, shellLineOf } from '../../src/policy/shell-lines.js';
import { ticksWhile } from '../harness/event-loop.js';
import { fileTransferOf } from '../../src/policy/ssh.js';
import { sshJudgeIn } from '../harness/ssh-judge.js';
import { RM_LOOKALIKES, RM_SPELLINGS, spelled } from '../fixtures/shell-spellings.js';

const base = mkdtempSync(join(tmpdir(), 'hoop-shell-judge-'));
afterAll(() => rmSync(base, { recursive: true, force: true }));
let n = 0;
const judgeOf = (ssh: string, mode: 'read-only' | 'read-write' = 'read-write') => sshJudgeIn(mkdtempSync(join(base, `r${n++}-`)), ssh, mode);

const ALLOW_READS = `    - { name: reads, match: { commands: ["ls **", "cat **", "echo **"] }, action: allow }\n`;
const NO_RECURSIVE_RM = `    - { name: no-recursive-rm, match: { patterns: ['\\brm\\s+(-\\S+\\s+)*(-[a-zA-Z]*[rR]|--recursive)'] }, action: deny }\n`;
const exec = (command: string) => ({ kind: 'exec' as const, command: spelled(command, '/srv/victim') });

describe('the commands a line runs', () => {
  it('are every simple command, in lists, pipelines, substitutions, here-documents, functions and wrappers', () => {
    const texts = (line: string) => {
      const p = parseShellLine(line);
      return p.certain ? p.commands.map((c) => `${c.text}${c.simple ? '' : ' (not simple)'}${c.via ? ` via ${c.via}` : ''}`) : p.why;
    };
    expect(texts('ls -l \'a b\' "c\\$d" e\\ f')).toEqual(['ls -l a b c$d e f']);
    expect(texts('ls; cat x | grep y && echo $(id) > f')).toEqual(['ls', 'cat x', 'grep y', 'echo $(id) (not simple)', 'id']);
    expect(texts('cat <<EOF\n`id`\nEOF')).toEqual(['cat (not simple)', 'id']);
    // The command a wrapper runs is simple when its words are known (#72(2): allow rules judge it as a command of the line).
    expect(texts("sudo -u root sh -c 'rm -rf /x; touch y'")).toEqual(['sudo -u root sh -c rm -rf /x; touch y', 'sh -c rm -rf /x; touch y via sudo', 'rm -rf /x via sh -c', 'touch y via sh -c']);
    expect(texts('find . -name x -exec rm {} +')).toEqual(['find . -name x -exec rm {} +', 'rm {} (not simple) via find -exec']);
    expect(texts('X=1 ls')).toEqual(['ls (not simple)']);
    expect(texts('for f in a; do ls $f; done')).toEqual(['for f in a; do ls $f; done (not simple)', 'ls $f (not simple)']);
    expect(texts('ls (')).toMatch(/^it is not a complete shell command line/);
    expect(texts('ls\0; rm x')).toMatch(/NUL/);
    expect(texts(`ls ${'x'.repeat(33_000)}`)).toMatch(/longer than 32 KiB/);
  });

  it('know which commands are built when they run, or run code they read', () => {
    const opaque = (line: string) => {
      const p = parseShellLine(line);
      return p.certain ? p.commands.map((c) => c.opaque ?? '') : [p.why];
    };
    expect(opaque('$a -rf x')).toEqual(['`$a` is built when it runs']);
    expect(opaque('r{m,} x')).toEqual(['`r{m,}` is built when it runs']);
    expect(opaque('/bin/r[m] x')).toEqual(['`/bin/r[m]` is built when it runs']);
    expect(opaque('[ -d x ]')).toEqual(['']);
    // A glob's file names may start with `-` (options: SC2035), unless written ./*, dir/*, a* or after `--`.
    expect(opaque('ls *.log /x')).toEqual(['`*.log` is a glob whose file names may start with `-`, read as options (write `./*.log`, or `--` before it)']);
    expect(opaque('ls -- *.log ./*.log /x/* a*')).toEqual(['']);
    // A tilde is the home directory the shell finds when it runs (`~root`, `~/x`).
    expect(opaque('ls ~/x')).toEqual(['`~/x` is built when it runs']);
    expect(opaque('cp $a $b $c $d x')).toEqual(['`$a`, `$b`, `$c` and 1 more are built when it runs']);
    expect(opaque('echo x | sh')).toEqual(['', 'it runs commands it reads from its input']);
    expect(opaque('bash -s < f')).toEqual(['it runs commands it reads from its input']);
    expect(opaque('. ./env.sh')).toEqual(['it runs commands it reads from a file']);
    expect(opaque('xargs rm')).toEqual(['', 'xargs adds words it reads from its input']);
  });

  it("decode $'…' as bash does", () => {
    expect(ansiC("\\x72\\155\\u00e9\\n\\t\\\\\\'\\cA\\e")).toBe("rm\u00e9\n\t\\'\x01\x1b");
  });
});

describe('an allow list, a deny pattern and read-only access', () => {
  it(`refuse each of ${RM_SPELLINGS.length} spellings of a recursive delete`, async () => {
    const allowList = await judgeOf(`  default: deny\n  rules:\n${ALLOW_READS}`);
    const denyList = await judgeOf(`  default: allow\n  rules:\n${NO_RECURSIVE_RM}`);
    const readOnly = await judgeOf(`  default: allow\n  rules:\n${ALLOW_READS}`, 'read-only');
    expect(RM_SPELLINGS.length).toBeGreaterThanOrEqual(60);
    const admitted = RM_SPELLINGS.flatMap((line) =>
      [
        ['allow list', allowList],
        ['deny pattern', denyList],
        ['read-only', readOnly],
      ].flatMap(([name, judge]) => ((judge as typeof allowList).decide(exec(line), 'bash').action === 'allow' ? [`${name}: ${JSON.stringify(line.slice(0, 60))}`] : [])),
    );
    expect(admitted).toEqual([]);
    // Look-alikes run another program (or nothing): whatever the judge says, it answers.
    for (const line of RM_LOOKALIKES) expect(['allow', 'deny']).toContain(allowList.decide(exec(line), 'bash').action);
  });

  it('let an allow glob admit simple commands, quoted as the user likes, and lines of them', async () => {
    const allowList = await judgeOf(`  default: deny\n  rules:\n${ALLOW_READS}`);
    for (const line of ['ls -la /tmp', "cat '/tmp/a b'", 'echo \'a;b\' "c|d" e\\&f', 'ls /tmp | cat -n', 'ls && echo done', 'ls /var/log/*.log'])
      expect(allowList.decide(exec(line), 'bash')).toMatchObject({ action: 'allow', rule: 'reads' });
    expect(allowList.decide(exec('ls > /tmp/x'), 'bash')).toMatchObject({ action: 'deny', reason: 'no ssh rule matches; the default is deny' });
    expect(allowList.decide(exec('ls; touch /tmp/x'), 'bash')).toMatchObject({ action: 'deny', reason: 'no ssh rule matches `touch /tmp/x`, which this command line runs; the default is deny' });
    expect(allowList.decide(exec('ls ('), 'bash')).toMatchObject({
      action: 'deny',
      reason: expect.stringMatching(/^no allow rule matches a command line the gateway cannot parse as a shell would \(it is not a complete shell command line/),
    });
  });

  it('name the command a deny rule matches, and say why it may match what is built when it runs', async () => {
    const denyList = await judgeOf(`  default: allow\n  rules:\n${NO_RECURSIVE_RM}`);
    expect(denyList.decide(exec('ls /tmp; r"m" -r /x'), 'bash')).toMatchObject({
      action: 'deny',
      rule: 'no-recursive-rm',
      reason: 'ssh rule "no-recursive-rm" matches `rm -r /x`, which this command line runs',
    });
    expect(denyList.decide(exec(`sudo sh -c "r''m -r /x"`), 'bash')).toMatchObject({
      action: 'deny',
      reason: 'ssh rule "no-recursive-rm" matches `rm -r /x`, which this command line runs (through sh -c)',
    });
    expect(denyList.decide(exec('echo $HOME'), 'bash')).toMatchObject({
      action: 'deny',
      reason: 'ssh rule "no-recursive-rm" may match `echo $HOME`: `$HOME` is built when it runs, so the gateway cannot tell',
    });
    expect(denyList.decide(exec('ls -la /tmp | grep x'), 'bash')).toMatchObject({ action: 'allow' });
    // `shellSyntax: allow` on a deny rule reads the line as sent, as before: what is built when it runs passes.
    const asSent = await judgeOf(`  default: allow\n  rules:\n    - { name: no-rm, match: { patterns: ['\\brm\\s'], shellSyntax: allow }, action: deny }\n`);
    expect(asSent.decide(exec('echo $HOME'), 'bash').action).toBe('allow');
    expect(asSent.decide(exec('ls; rm x'), 'bash').action).toBe('deny');
  });

  it('let a rule opt into matching the whole line, shell syntax and all, and still refuse what a deny rule matches', async () => {
    const judge = await judgeOf(`  default: deny
  rules:
    - { name: deploys, match: { commands: ["./deploy.sh *"], shellSyntax: allow }, action: allow }
${NO_RECURSIVE_RM}`);
    expect(judge.decide(exec('./deploy.sh v2 && ./deploy.sh --verify v2 2>&1'), 'bash')).toMatchObject({ action: 'allow', rule: 'deploys' });
    expect(judge.decide(exec('./deploy.sh v2; rm -rf /srv'), 'bash')).toMatchObject({ action: 'deny', rule: 'no-recursive-rm' });
    expect(judge.decide(exec('ls; ./deploy.sh v2'), 'bash').action).toBe('deny');
    expect(judge.decide(exec('./deploy.sh ('), 'bash').action).toBe('deny');
  });

  it("admits by an allow rule no line bash and a POSIX sh (dash, ash) would run differently: $'…', [[ ]], &>, <(…)", async () => {
    const allowList = await judgeOf(`  default: deny\n  rules:\n${ALLOW_READS}`);
    // bash reads one echo; dash reads `echo $` and a quoted `a\`, then runs id.
    for (const line of ["echo $'a\\';id;#'", 'echo x &> /tmp/y', '[[ -f /etc/hosts ]] && cat /etc/hosts', 'cat <(id)'])
      expect(allowList.decide(exec(line), 'bash'), line).toMatchObject({ action: 'deny', reason: expect.stringMatching(/bash and a POSIX sh \(dash, ash\) would run it differently/) });
    expect(allowList.decide(exec('ls -la /tmp && cat /etc/hosts | echo done'), 'bash')).toMatchObject({ action: 'allow' });
  });

  it("reads a line as bash and dash read it where hoop's parser would not: a # right after a quote or a substitution, a carriage return, a brace of quoted parts", async () => {
    const allowList = await judgeOf(`  default: deny\n  rules:\n${ALLOW_READS}    - { name: pub, match: { commands: ["cat /srv/pub/**"] }, action: allow }\n`);
    // What bash makes of each (a stub `id` is not needed: bash's own printf shows the words it passes).
    const bashWords = (line: string): string[] =>
      execFileSync('bash', ['-c', `printf '%s\\n' ${line}`], { encoding: 'utf8' })
        .split('\n')
        .slice(0, -1);
    expect(bashWords("/srv/pub/{'note',../secret}")).toEqual(['/srv/pub/note', '/srv/pub/../secret']);
    // Backslash-newlines the shells join where the parser did not: in `"$\⏎(…)"`, `$\⏎NAME`, `$\⏎'…'`, and a comment ending in one (which continues nothing).
    const joined = ['echo "$\\\n(id)"', 'ls #x\\\nid', 'cat /srv/pub/x$\\\nIFS/etc/shadow', "cat /srv/pub/$\\\n'\\x2f..\\x2fsecret'"];
    expect(bashWords('x$\\\nIFS/etc/shadow'.replace('x', '/srv/pub/x'))).toEqual(['/srv/pub/x', '/etc/shadow']);
    for (const line of [
      "echo 'x'#;id",
      'echo "x"#;id',
      'echo $(echo x)#;id',
      'echo x\r#;id',
      "cat /srv/pub/{'note',../secret}",
      'cat /srv/pub/note\r#;cat /srv/secret',
      "{'cat',/etc/shadow}",
      ...joined,
    ])
      expect(allowList.decide({ kind: 'exec', command: line }, 'bash'), JSON.stringify(line)).toMatchObject({ action: 'deny' });
    // A # that starts a word is a comment to every reader alike; one inside a plain word is a letter to every reader.
    expect(allowList.decide({ kind: 'exec', command: 'echo x # note' }, 'bash').action).toBe('allow');
    expect(allowList.decide({ kind: 'exec', command: 'echo a#b' }, 'bash').action).toBe('allow');
    expect(allowList.decide({ kind: 'exec', command: "echo '{a,b}' \\{c,d}" }, 'bash').action).toBe('allow');
  });

  it("makes a deny or review rule, and ssh.sftp, see through a brace of quoted parts: bash runs {'rm',-rf,/tmp/x} as rm -rf /tmp/x", async () => {
    const judge = await judgeOf(
      `  default: allow\n  rules:\n    - { name: no-rm, match: { commands: ["rm *"] }, action: deny }\n    - { name: deploys, match: { commands: ["./deploy.sh *"] }, action: review, review: { groups: [dba] } }\n`,
    );
    expect(judge.decide({ kind: 'exec', command: "{'rm',-rf,/tmp/x}" }, 'bash').action).toBe('deny');
    // A backslash-newline and a tilde are read as the shells read them too.
    expect(judge.decide({ kind: 'exec', command: 'ls #\\\nrm /srv/db.sqlite' }, 'bash').action).toBe('deny');
    const noRoot = await judgeOf('  default: allow\n  rules:\n    - { name: not-root, match: { commands: ["cat /root/**"] }, action: deny }\n');
    expect(noRoot.decide({ kind: 'exec', command: 'cat ~root/.ssh/id_rsa' }, 'bash').action).toBe('deny');
    expect(judge.decide({ kind: 'exec', command: "{'./deploy.sh',v2}" }, 'bash').action).not.toBe('allow');
    expect(fileTransferOf('{"sc"p,-t,/tmp/x}')).toBe('unknown');
    const noTransfers = await judgeOf('  default: allow\n  sftp: deny\n');
    expect(noTransfers.decide({ kind: 'exec', command: '{"sc"p,-t,/tmp/x}' }, 'bash').action).toBe('deny');
  });

  it('under read-only access, run a line only when a rule allows each command in it', async () => {
    const judge = await judgeOf(`  default: allow\n  rules:\n${ALLOW_READS}`, 'read-only');
    expect(judge.decide(exec('ls /tmp | cat -n'), 'bash').action).toBe('allow');
    expect(judge.decide(exec('ls /tmp | tee /tmp/x'), 'bash')).toMatchObject({ action: 'deny', rule: 'hoop:read-only-access' });
    // Process substitution is bash's alone: a line sh would read otherwise is not certain, and read-only refuses it.
    expect(judge.decide(exec('cat <(ls)'), 'bash').action).toBe('deny');
    // A line it cannot parse may run a file transfer too: read-only sftp says so.
    expect(judge.decide(exec('ls "'), 'bash')).toMatchObject({ action: 'deny', rule: 'hoop:ssh-sftp' });
  });
});

describe("the target user's login shell", () => {
  const NO_RM_RF = `    - { name: no-rm-rf, match: { commands: ["rm -rf *"] }, action: deny }\n`;

  it('is the grammar lines are read in: bash, dash, ash and ksh are modelled; zsh, fish, tcsh, csh and an unknown one make every line uncertain', async () => {
    const judge = await judgeOf(`  default: deny\n  rules:\n${ALLOW_READS}${NO_RM_RF}`);
    for (const shell of ['bash', '/bin/bash', '/bin/sh', '/usr/bin/dash', '/bin/ash', '/bin/ksh', '/usr/bin/mksh'])
      expect(judge.decide(exec('cat /etc/hosts'), shell), shell).toMatchObject({ action: 'allow', rule: 'reads' });
    for (const shell of ['/usr/bin/zsh', '/usr/bin/fish', '/bin/tcsh', '/bin/csh', '/usr/local/bin/nu', undefined]) {
      // fish runs `cat (id)` as cat of id's output; zsh `=id` is a path; tcsh reads `!` as history: no allow rule trusts a line to another grammar.
      for (const line of ['cat /etc/hosts', 'cat (id)', 'ls =id', 'echo !!'])
        expect(judge.decide(exec(line), shell), `${line} under ${shell}`).toMatchObject({
          action: 'deny',
          reason: expect.stringMatching(shell ? /login shell is \w+, whose grammar hoop does not model/ : /does not know the target user's login shell/),
        });
    }
    const open = await judgeOf(`  default: allow\n  rules:\n${NO_RM_RF}`);
    expect(open.decide(exec('ls'), '/usr/bin/fish')).toMatchObject({ action: 'deny', rule: 'no-rm-rf', reason: expect.stringMatching(/cannot parse .* so ssh rule "no-rm-rf" may match it/) });
    // A ksh login shell also asks the Korn grammar: `print -r` runs alike, a line mksh reads otherwise is not certain.
    expect(judge.decide(exec('echo ok'), '/bin/ksh').action).toBe('allow');
  });

  it('makes the -c script of a shell hoop does not model, and what such a shell reads, unknown code that every deny rule matches', async () => {
    const judge = await judgeOf(`  default: allow\n  rules:\n${NO_RM_RF}`);
    for (const line of [
      "fish -c 'rm -rf /srv'",
      "zsh -c '=rm -rf /srv'",
      "tcsh -c 'rm -rf /srv'",
      "csh -c 'rm -rf /srv'",
      "env fish --command='rm -rf /srv'",
      "sudo -u app zsh -c 'rm -rf /srv'",
      'echo rm -rf /srv | fish',
      'exec zsh',
      "busybox sh -c 'rm -rf /srv'",
    ])
      expect(judge.decide(exec(line), 'bash'), line).toMatchObject({ action: 'deny', rule: 'no-rm-rf' });
    expect(judge.decide(exec("sh -c 'ls /srv'"), 'bash').action).toBe('allow');
  });

  it('refuses a line with an unknown word only where that word stands where a deny or review rule needs one', async () => {
    const judge = await judgeOf(`  default: allow\n  rules:\n${NO_RM_RF}    - { name: deploys, match: { commands: ["./deploy.sh *"] }, action: review, review: { groups: [dba] } }\n`);
    for (const line of ['ls -d $HOME', 'echo $0', 'cat "$HOME/.profile"', 'ls $(pwd)', 'echo ~', 'cp a{1,2}', 'rm -r $X'])
      expect(judge.decide(exec(line), 'bash'), line).toMatchObject({ action: 'allow' });
    for (const line of ['rm -rf $X', 'rm -rf "$HOME"/x', '$X -rf /', 'r{m,} -rf /', 'eval "$X"', 'sudo $X', 'xargs rm -rf < list', '. ./script', '$(echo rm) -rf /', 'find . -name $X'])
      expect(judge.decide(exec(line), 'bash'), line).toMatchObject({ action: 'deny', rule: 'no-rm-rf' });
    expect(judge.decide(exec('$X -rf /'), 'bash').reason).toMatch(/may match `\$X -rf \/`: `\$X` is built when it runs/);
    expect(judge.decide(exec('./deploy.sh $VERSION'), 'bash')).toMatchObject({ action: 'review', rule: 'deploys' });
  });
});

describe('file transfers', () => {
  it('are known as the shell runs them, or else are ones hoop cannot judge', () => {
    expect(["s'c'p -t /x", 'sc\\p -f /x', 'rs"ync" --server . /x'].map((c) => fileTransferOf(c))).toEqual(['upload', 'download', 'upload']);
    expect(['$x -t /x', 'bash -c "$(echo scp -t /x)"', 'ls (', 'nice s""cp -t /x'].map((c) => fileTransferOf(c))).toEqual(['unknown', 'unknown', 'unknown', 'unknown']);
    expect(['ls -t', 'echo $HOME', 'cat rsync.conf'].map((c) => fileTransferOf(c))).toEqual([undefined, undefined, undefined]);
  });
});

describe('builtins, arithmetic, aliases and variables that run code hoop cannot see (issue 72, class 2)', () => {
  const NO_RM = `    - { name: no-rm-rf, match: { commands: ["rm -rf *"] }, action: deny }\n${NO_RECURSIVE_RM}`;
  // Allow rules a reader might write for harmless builtins: none of them may admit the lines below.
  const ALLOW_BUILTINS = `    - { name: builtins, match: { commands: ${JSON.stringify(['test **', '[ **', 'printf **', 'echo *', 'read **', 'unset **', 'getopts **', 'wait **', 'mapfile **', 'shift **', 'alias **', 'hash **', 'x **', 'ls **', 'set **', 'shopt **', 'jobs **', ': **', 'sh **', 'su **', 'enable **'])} }, action: allow }\n`;
  /** Each runs `rm -rf /srv/victim` in bash, dash, ash, ksh or mksh (the differential test runs several). */
  const RUNS_RM: Record<string, string[]> = {
    // F1: a word read as a variable's name or arithmetic, whose subscript's `$(…)` runs.
    names: [
      "test -v 'a[$(rm -rf /srv/victim)]'",
      "[ -v 'a[$(rm -rf /srv/victim)]' ]",
      "test -v $'a[$(\\x72m -rf /srv/victim)]'",
      "printf -v 'a[$(rm -rf /srv/victim)]' x",
      "printf -v$'a[$(\\x72m -rf /srv/victim)]' x",
      "read 'a[$(rm -rf /srv/victim)]'",
      "unset 'a[$(rm -rf /srv/victim)]'",
      "getopts a 'a[$(rm -rf /srv/victim)]'",
      "wait -p 'a[$(rm -rf /srv/victim)]'",
      "shift 'a[$(rm -rf /srv/victim)]'",
      "x='a[$(rm -rf /srv/victim)]'; [ x -eq 1 ]",
      "x='a[$(rm -rf /srv/victim)]'; test 1 -lt x",
      "RANDOM=$'a[$(\\x72m -rf /srv/victim)]'",
      "OPTIND='a[$(rm -rf /srv/victim)]'",
      "command test -v 'a[$(rm -rf /srv/victim)]'",
      'test -v "$X"',
      "mapfile -C 'rm -rf /srv/victim' -c 1 x",
      "trap 'rm -rf /srv/victim' EXIT",
    ],
    // F2: arithmetic on a variable works out its value, subscripts and all.
    arithmetic: [
      "x=$'a[$(\\x72m -rf /srv/victim)]'; echo $((x))",
      "x='a[$(rm -rf /srv/victim)]'; echo $(( x + 1 ))",
      'echo $(( $X ))',
      'echo "$[x]"',
      'cat <<EOF\n$((x))\nEOF',
      'ls > /tmp/$((x))',
      'y=$((x))',
      'case $((x)) in 1) ;; esac',
    ],
    // F3: an earlier command changes what a later name runs.
    aliases: [
      'alias x=rm\nx -rf /srv/victim',
      "alias x=$'\\x72m'\nx -rf /srv/victim",
      'hash -p /bin/rm x; x -rf /srv/victim',
      'shopt -s expand_aliases\nalias x=rm\nx -rf /srv/victim',
      'set -k; ls',
      'enable -f ./evil.so ls; ls',
      'jobs -x rm -rf /srv/victim',
      "eval 'alias x=rm'\nx -rf /srv/victim",
    ],
    // F4: a variable a shell, the loader or an interpreter reads as code or as where code is.
    variables: [
      "env 'BASH_FUNC_ls%%=() { rm -rf /srv/victim; }' bash -c ls",
      "PS4='$(rm -rf /srv/victim)'; set -x; :",
      "SHELLOPTS=xtrace PS4='$(rm -rf /srv/victim)' bash -c :",
      'BASH_ENV=./f bash -c ls',
      'ENV=./f sh -i',
      "PROMPT_COMMAND='rm -rf /srv/victim' bash -i",
      'LD_PRELOAD=./x.so ls',
      'sudo LD_PRELOAD=./x.so ls',
      'env PATH=/tmp/x ls',
      'PATH=/tmp/x ls',
      'PATH=.; ls',
      'unset PATH; ls',
      'read PATH; ls',
      'for PATH in /tmp/x; do ls; done',
      'IFS=/ ls',
      'NODE_OPTIONS=--require=./x.js node -e 1',
      'GIT_SSH_COMMAND=./x git fetch',
      'echo rm -rf /srv/victim | su',
      'echo rm -rf /srv/victim | sh',
      'sudo -i',
    ],
  };

  it('refuses each by a deny glob and the docs rm pattern, and admits none by allow rules for the builtins', async () => {
    const denyList = await judgeOf(`  default: allow\n  rules:\n${NO_RM}`);
    const globOnly = await judgeOf(`  default: allow\n  rules:\n    - { name: no-rm-rf, match: { commands: ["rm -rf *"] }, action: deny }\n`);
    const allowList = await judgeOf(`  default: deny\n  rules:\n${ALLOW_BUILTINS}`);
    const admitted: string[] = [];
    for (const [finding, lines] of Object.entries(RUNS_RM))
      for (const line of lines)
        for (const shell of ['bash', '/bin/sh', '/bin/mksh'])
          for (const [name, judge] of [
            ['deny glob and pattern', denyList],
            ['deny glob', globOnly],
            ['allow list', allowList],
          ] as const)
            if (judge.decide({ kind: 'exec', command: line }, shell).action === 'allow') admitted.push(`${finding} (${name}, ${shell}): ${JSON.stringify(line)}`);
    expect(admitted).toEqual([]);
    expect(globOnly.decide({ kind: 'exec', command: "test -v 'a[$(rm -rf /srv/victim)]'" }, 'bash')).toMatchObject({
      action: 'deny',
      reason: expect.stringMatching(/may match `test -v a\[\$\(rm -rf \/srv\/victim\)\]`: it reads `a\[\$\(rm -rf \/srv\/victim\)\]` as a variable's name/),
    });
    expect(globOnly.decide({ kind: 'exec', command: "PS4='$(rm -rf /srv/victim)'; set -x; :" }, 'bash').reason).toMatch(/may match `PS4='\$\(rm -rf \/srv\/victim\)'`: it changes PS4/);
  });

  it('keeps the harmless spellings certain and allowed where they were', async () => {
    // The docs' pattern may match any word built when it runs (`echo $HOME`): the glob is the rule that tells these apart.
    const globOnly = await judgeOf(`  default: allow\n  rules:\n    - { name: no-rm-rf, match: { commands: ["rm -rf *"] }, action: deny }\n`);
    const allowList = await judgeOf(`  default: deny\n  rules:\n${ALLOW_BUILTINS}`);
    for (const line of [
      'test -f /etc/hosts',
      '[ -d /tmp ]',
      '[ 1 -lt 2 ]',
      "printf '%s\\n' x",
      'printf -v out %s x',
      'read line',
      'read -r a b',
      'echo ok',
      'set -e',
      'set -euo pipefail',
      'shift 2',
      'unset x',
      'wait',
      'ls -la /tmp && test -d /srv',
    ])
      expect(allowList.decide(exec(line), 'bash'), line).toMatchObject({ action: 'allow', rule: 'builtins' });
    for (const line of [
      'echo $((1+2))',
      'echo $(( $# - 1 ))',
      'printf \'%s\\n\' "$HOME"',
      'sleep 1 & wait $!',
      '[ $? -eq 0 ]',
      'x=1; echo $x',
      'for f in a b; do echo $f; done',
      "trap '' INT; ls",
      "sh -c 'ls /srv'",
      'X=1 ls',
      'env LANG=C ls',
      'RANDOM=42; echo $RANDOM',
      'while IFS= read -r line; do echo "$line"; done < /etc/hosts',
      'sudo -u app ls',
      "su -c '/bin/ls' app",
      // A script file is a program of its own (its code is not the line's), as ./deploy.sh is.
      'sh ./deploy.sh',
      'bash deploy.sh --dry-run',
      './deploy.sh',
    ])
      expect(globOnly.decide(exec(line), 'bash'), line).toMatchObject({ action: 'allow' });
  });

  it('follows wrappers in time and space linear in the line, and no stack overflow escapes', async () => {
    const judge = await judgeOf(`  default: review\n  rules:\n${NO_RM}    - { name: reads, match: { commands: ["ls **"] }, action: allow }\n`);
    const near = SHELL_LINE_MAX_BYTES - 64;
    const fill = (unit: string, head = '', tail = '', bytes = near) => head + unit.repeat(Math.floor((bytes - head.length - tail.length) / unit.length)) + tail;
    // Lines at the cap for the wrappers found quadratic (and over it: refused unread), 8 KiB for the rest (parsing takes a while).
    const lines = [
      // At the cap: the wrapper found quadratic; over it: refused unread. The others at 8 KiB (the ratio asserted is the same).
      fill('env ', '', 'ls'),
      ...[fill('env ', '', 'ls', 2 * SHELL_LINE_MAX_BYTES), fill('nice ', '', 'ls', 2 * SHELL_LINE_MAX_BYTES), fill('ls;', '', '', 2 * SHELL_LINE_MAX_BYTES)],
      fill('nice ', '', 'ls', 8192),
      fill('ls;', '', '', 8192),
      fill('timeout 1 ', '', 'ls', 8192),
      fill('A=1 ', 'env ', 'ls', 8192),
      fill('-exec ', 'find . ', ';', 8192),
      fill('"\'a\'"\'"b"\'', 'echo ', '', 8192),
      `echo ${'"$(echo '.repeat(2000)}x${')"'.repeat(2000)}`,
      `${'ls && '.repeat(3000)}ls`,
      `${'('.repeat(8000)}ls${')'.repeat(8000)}`,
      `${'$(('.repeat(4000)}1${'))'.repeat(4000)}`,
    ];
    for (const line of lines) {
      let parsed: ReturnType<typeof parseShellLine> | undefined;
      expect(() => (parsed = parseShellLine(line)), line.slice(0, 40)).not.toThrow();
      expect(() => judge.decide({ kind: 'exec', command: line }, 'bash'), line.slice(0, 40)).not.toThrow();
      if (!parsed?.certain) continue;
      // What following builds: each level of wrappers copies at most the line's words, and at most MAX_DEPTH (8) levels are followed.
      const built = parsed.commands.reduce((n, c) => n + c.words.length + c.text.length + c.source.length, 0);
      expect(built, line.slice(0, 40)).toBeLessThanOrEqual(3 * 10 * Buffer.byteLength(line));
      expect(parsed.commands.filter((c) => c.via !== undefined).length, line.slice(0, 40)).toBeLessThanOrEqual(Math.max(10, line.length / 4));
    }
    // A wrapper chain deeper than 8 is opaque past its eighth level: a deny rule matches it, no allow rule admits it.
    const chain = parseShellLine(`${'env '.repeat(20)}ls`);
    expect(chain.certain && chain.commands.length).toBe(10);
    expect(chain.certain && chain.commands.at(-1)).toMatchObject({ opaque: expect.stringMatching(/wrapped in more than 8 commands/) });
    expect(judge.decide({ kind: 'exec', command: `${'env '.repeat(20)}ls` }, 'bash')).toMatchObject({ action: 'deny', rule: 'no-rm-rf' });
  });
});

describe('wrappers, shells and programs that run code a line gives them (issue 72, second attack)', () => {
  const NO_RM = `    - { name: no-rm-rf, match: { commands: ["rm -rf *"] }, action: deny }\n${NO_RECURSIVE_RM}`;
  /** Each runs `rm -rf /srv/victim` (confirmed in real shells and programs). */
  const RUNS_RM: Record<string, string[]> = {
    // 1: a shell's -c script is its first operand after all its options.
    shellOptions: [
      "sh -c -- 'rm -rf /srv/victim'",
      "bash -c -e 'rm -rf /srv/victim'",
      "sh -c -o errexit 'rm -rf /srv/victim'",
      "nohup sh -c -- 'rm -rf /srv/victim'",
      "find . -exec sh -c -- 'rm -rf /srv/victim' \\;",
      "sudo -n -- sh -c -- 'rm -rf /srv/victim'",
      "bash -T -c 'rm -rf /srv/victim'",
    ],
    // 2: eval's first `--` ends its options (bash, ksh).
    eval: ["eval -- 'rm -rf /srv/victim'"],
    // 3: a shell whose script file is its input reads its input.
    input: [
      "echo 'rm -rf /srv/victim' | sh -",
      "echo 'rm -rf /srv/victim' | sh /dev/stdin",
      "echo 'rm -rf /srv/victim' | bash /dev/fd/0",
      "echo 'rm -rf /srv/victim' | bash /proc/self/fd/0",
      "echo 'rm -rf /srv/victim' | sh //dev/./stdin",
    ],
    // 4: env -S splits its string by its own rules.
    envSplit: ["env -S'rm -rf /srv/victim'", "env -S 'rm\\_-rf\\_/srv/victim'", "env --split-string='rm -rf /srv/victim'", "env -iS'rm -rf /srv/victim'", "env --sp='rm -rf /srv/victim'"],
    // 5: an option a wrapper's table does not know may take the next word as its value.
    unknownOptions: ['setpriv --pdeathsig TERM rm -rf /srv/victim', 'unshare -w /tmp rm -rf /srv/victim', 'strace -P /tmp rm -rf /srv/victim', 'sudo --some-new-option x rm -rf /srv/victim'],
    // 6: wrappers hoop did not know, and options whose value a program runs as a command.
    wrappers: [
      "script -qc 'rm -rf /srv/victim' /dev/null",
      "script /dev/null -c 'rm -rf /srv/victim'",
      'setarch x86_64 rm -rf /srv/victim',
      'x86_64 rm -rf /srv/victim',
      'prlimit --nofile=100 rm -rf /srv/victim',
      'taskset -c 0 rm -rf /srv/victim',
      'ionice -c 3 rm -rf /srv/victim',
      'chrt -b 0 rm -rf /srv/victim',
      'numactl --localalloc rm -rf /srv/victim',
      'cgexec -g cpu:x rm -rf /srv/victim',
      'stdbuf -oL rm -rf /srv/victim',
      'unbuffer rm -rf /srv/victim',
      'chroot / rm -rf /srv/victim',
      'nsenter -t 1 -m rm -rf /srv/victim',
      'ip netns exec x rm -rf /srv/victim',
      "capsh -- -c 'rm -rf /srv/victim'",
      "sg adm 'rm -rf /srv/victim'",
      "sg adm -c 'rm -rf /srv/victim'",
      'busybox rm -rf /srv/victim',
      'toybox rm -rf /srv/victim',
      '/usr/bin/time -f %e rm -rf /srv/victim',
      'daemonize /bin/rm -rf /srv/victim',
      'firejail --quiet rm -rf /srv/victim',
      'newgrp adm',
      'script -q /dev/null',
    ],
    programOptions: [
      "git -c core.pager='rm -rf /srv/victim' log",
      "git -c alias.x='!rm -rf /srv/victim' x",
      "git -c core.sshCommand='rm -rf /srv/victim' fetch",
      'git --config-env=core.pager=X log',
      "git ls-remote --upload-pack='rm -rf /srv/victim' .",
      "git rebase -x 'rm -rf /srv/victim' HEAD~1",
      'git bisect run rm -rf /srv/victim',
      "git submodule foreach 'rm -rf /srv/victim'",
      "git config core.pager 'rm -rf /srv/victim'",
      "ssh -o ProxyCommand='rm -rf /srv/victim' x",
      "ssh -oLocalCommand='rm -rf /srv/victim' -oPermitLocalCommand=yes x",
      "scp -S 'rm' -rf /srv/victim x:",
      "rsync -e 'rm -rf /srv/victim' a b:",
      "rsync -avze 'rm -rf /srv/victim' a b:",
      "sed -n '1e rm -rf /srv/victim' /etc/hostname",
      "sed -e 's/.*/rm -rf \\/srv\\/victim/e' /etc/hostname",
      "sed '1!G;$e rm -rf /srv/victim' f",
      'awk \'BEGIN{system("rm -rf /srv/victim")}\'',
      'awk \'BEGIN{print "x" | "sh"}\'',
      "tar -cf /dev/null /etc/hostname --checkpoint=1 --checkpoint-action=exec='rm -rf /srv/victim'",
      "tar -xf a.tar --to-command='rm -rf /srv/victim'",
      "tar -cIf 'rm -rf /srv/victim' a.tar dir",
      "tar --use-compress-program='rm -rf /srv/victim' -cf a.tar dir",
      "sort --compress-program='rm -rf /srv/victim' -S 1 f",
      "zip -TT 'rm -rf /srv/victim' a.zip f",
      "man -P 'rm -rf /srv/victim' ls",
      "less '+!rm -rf /srv/victim' f",
      "vim -c '!rm -rf /srv/victim' f",
      "vi '+!rm -rf /srv/victim' f",
      'start-stop-daemon -S -x /bin/rm -- -rf /srv/victim',
      "make 'X:=$(shell rm -rf /srv/victim)'",
      "tmux new -d 'rm -rf /srv/victim'",
      'screen -dm rm -rf /srv/victim',
      "echo 'rm -rf /srv/victim' | at now",
    ],
    // 7: variables bash reads as code.
    variables: [
      'BASH_CMDS=/bin/rm; 0 -rf /srv/victim',
      'BASH_CMDS[x]=/bin/rm; x -rf /srv/victim',
      'BASH_ALIASES[x]=rm; x -rf /srv/victim',
      "LESS='+!rm -rf /srv/victim' less f",
      "TAR_OPTIONS='--to-command=rm' tar xf a.tar",
    ],
  };
  /** An allow rule per program these lines start, as a reader might write for an allow list. */
  const programs = [
    ...['sh', 'bash', 'nohup', 'find', 'sudo', 'eval', 'echo', 'env', 'setpriv', 'unshare', 'strace', 'script', 'setarch', 'x86_64', 'prlimit', 'taskset', 'ionice', 'chrt', 'numactl', 'cgexec'],
    ...['stdbuf', 'nice', 'unbuffer', 'chroot', 'nsenter', 'ip', 'capsh', 'sg', 'busybox', 'toybox', '/usr/bin/time', 'daemonize', 'firejail', 'newgrp', 'git', 'ssh', 'scp', 'rsync', 'sed', 'awk'],
    ...['tar', 'sort', 'zip', 'man', 'less', 'vim', 'vi', 'start-stop-daemon', 'make', 'tmux', 'screen', 'at', 'xargs', 'timeout', 'ls', '0', 'x'],
  ];
  const ALLOW_PROGRAMS = `    - { name: programs, match: { commands: ${JSON.stringify(programs.map((p) => `${p} **`))} }, action: allow }\n`;

  it('refuses each by a deny glob and the docs rm pattern, and admits none by allow rules for the programs', async () => {
    const denyList = await judgeOf(`  default: allow\n  rules:\n${NO_RM}`);
    const allowList = await judgeOf(`  default: deny\n  rules:\n${ALLOW_PROGRAMS}`);
    const admitted: string[] = [];
    for (const [finding, lines] of Object.entries(RUNS_RM))
      for (const line of lines)
        for (const shell of ['bash', '/bin/sh', '/bin/ksh'])
          for (const [name, judge] of [
            ['deny list', denyList],
            ['allow list', allowList],
          ] as const) {
            const verdict = judge.decide({ kind: 'exec', command: line }, shell);
            // newgrp and `script` alone run what the client types, which no deny rule can see: the allow list refuses them, the deny list's default allows.
            if (verdict.action === 'allow' && !(name === 'deny list' && /^(newgrp|script -q)/.test(line))) admitted.push(`${finding} (${name}, ${shell}): ${JSON.stringify(line)}`);
          }
    expect(admitted).toEqual([]);
    const globOnly = await judgeOf(`  default: allow\n  rules:\n    - { name: no-rm-rf, match: { commands: ["rm -rf *"] }, action: deny }\n`);
    expect(globOnly.decide({ kind: 'exec', command: "sh -c -- 'rm -rf /srv/victim'" }, 'bash')).toMatchObject({ action: 'deny', reason: expect.stringContaining('`rm -rf /srv/victim`') });
    expect(denyList.decide({ kind: 'exec', command: 'echo x | sh /dev/stdin' }, 'bash').reason).toMatch(/it runs commands it reads from its input/);
    expect(denyList.decide({ kind: 'exec', command: "env -S'rm -rf /srv/victim'" }, 'bash').reason).toMatch(/env splits the string by its own rules/);
    expect(denyList.decide({ kind: 'exec', command: "git -c core.pager='rm -rf /srv/victim' log" }, 'bash').reason).toMatch(/an option whose value a program runs as a command \(`git -c`\)/);
  });

  it('keeps the harmless spellings allowed, by allow rules for each command they run', async () => {
    const denyList = await judgeOf(`  default: allow\n  rules:\n${NO_RM}`);
    const allowList = await judgeOf(`  default: deny\n  rules:\n${ALLOW_PROGRAMS}`);
    for (const line of [
      "sh -c 'ls'",
      "sh -c -e 'ls /srv'",
      "bash -o pipefail -c 'ls | ls'",
      'sudo -u app ls',
      'sudo -nu app -- ls -l /tmp',
      'find . -name x',
      'find . -name x -exec ls \\;',
      'git log',
      'git -C /srv/app log --oneline -n 5',
      'git config --get user.name',
      'tar -cf a.tar dir',
      'tar xzf a.tgz',
      'sed -n 1p f',
      "sed 's/hello/world/g; /^#/d' f",
      "sed -e '1i header' -e '$a footer' f",
      "awk '{print $1}' f",
      'awk -F: \'$3 > 1000 || $1 == "x" {print $1}\' /etc/passwd',
      'env LANG=C ls',
      'env -i LANG=C ls',
      'timeout 5 ls',
      'nice -n 5 ls',
      'setarch x86_64 -R ls',
      'ionice -c 3 ls',
      'ssh -o ConnectTimeout=5 x uptime',
      'rsync -av a/ b/',
      'rsync --server --sender -e.LsfxC . /tmp/x',
      'sort -u f',
      'man ls',
      'less +G f',
      'tmux ls',
      'eval -- ls',
    ])
      for (const [name, judge] of [
        ['deny list', denyList],
        ['allow list', allowList],
      ] as const)
        expect(judge.decide(exec(line), 'bash'), `${name}: ${line}`).toMatchObject({ action: 'allow' });
    // find puts paths in place of `{}`: a deny glob sees what they may be (`rm -rf /srv/*` refuses `find /srv -exec rm -rf {} \;`; `ls -l {}` is no `rm -rf *`).
    const globs = await judgeOf(`  default: allow\n  rules:\n    - { name: no-rm-srv, match: { commands: ["rm -rf /srv/*"] }, action: deny }\n`);
    expect(globs.decide(exec('find . -name "*.log" -exec ls -l {} +'), 'bash')).toMatchObject({ action: 'allow' });
    expect(globs.decide(exec('find /srv -exec rm -rf {} \\;'), 'bash')).toMatchObject({ action: 'deny', rule: 'no-rm-srv' });
  });

  it('judges a command a wrapper runs as a command of the line: allow rules must admit it, else the default decides', async () => {
    const judge = await judgeOf(
      `  default: deny\n  rules:\n    - { name: tools, match: { commands: ["find **", "xargs **", "timeout **", "env **", "sudo **", "sh **"] }, action: allow }\n    - { name: reads, match: { commands: ["ls", "ls *"] }, action: allow }\n`,
    );
    const decide = (line: string) => judge.decide({ kind: 'exec', command: line }, 'bash');
    for (const line of [
      'find . -exec rm -rf /srv/victim \\;',
      'echo /srv/victim | xargs rm -rf',
      'timeout 5 rm -rf /srv/victim',
      'env rm -rf /srv/victim',
      'sudo rm -rf /srv/victim',
      "sh -c 'rm -rf /srv/victim'",
    ])
      expect(decide(line), line).toMatchObject({ action: 'deny', reason: expect.stringMatching(/no ssh rule matches `rm -rf.*\(through .*\); the default is deny/) });
    for (const line of ['find . -exec ls \\;', 'timeout 5 ls x', 'env ls', 'sudo ls', "sh -c 'ls'"]) expect(decide(line), line).toMatchObject({ action: 'allow' });
    // find puts the paths it finds in place of `{}`: only a `**` word stands for them (`ls *` holds one path segment).
    expect(decide('find / -exec ls {} \\;')).toMatchObject({ action: 'deny' });
    const wide = await judgeOf(`  default: deny\n  rules:\n    - { name: tools, match: { commands: ["find **", "ls **"] }, action: allow }\n`);
    expect(wide.decide({ kind: 'exec', command: 'find . -exec ls {} \\;' }, 'bash')).toMatchObject({ action: 'allow' });
    expect(wide.decide({ kind: 'exec', command: 'find . -exec rm {} \\;' }, 'bash')).toMatchObject({ action: 'deny' });
    // A whole-line rule covers what the line runs through its wrappers too.
    const whole = await judgeOf(`  default: deny\n  rules:\n    - { name: deploy, match: { commands: ["sudo -u app ./deploy.sh *"], shellSyntax: allow }, action: allow }\n`);
    expect(whole.decide({ kind: 'exec', command: 'sudo -u app ./deploy.sh v2' }, 'bash')).toMatchObject({ action: 'allow', rule: 'deploy' });
  });

  it('reads where a wrapper with options it does not know may start its command: at each of the next 8 words, past them opaque', () => {
    const commands = (line: string) => {
      const p = parseShellLine(line);
      return p.certain ? p.commands.map((c) => `${c.text}${c.simple ? '' : ' (not simple)'}${c.opaque ? ' (opaque)' : ''}`) : [p.why];
    };
    expect(commands('setpriv --new-option TERM rm -rf x')).toEqual(['setpriv --new-option TERM rm -rf x', 'TERM rm -rf x (not simple)', 'rm -rf x (not simple)', 'x (not simple)']);
    expect(commands('setpriv --pdeathsig TERM rm -rf x')).toEqual(['setpriv --pdeathsig TERM rm -rf x', 'rm -rf x']);
    expect(commands('setpriv --reuid 0 ls')).toEqual(['setpriv --reuid 0 ls', 'ls']);
    expect(commands(`setpriv --x ${'a '.repeat(9)}`).at(-1)).toMatch(/\(opaque\)$/);
    // What following builds stays within 8 times the line, however wrappers with unknown options nest.
    const line = `${'setpriv --x a b c d e f g '.repeat(20)}ls`;
    const parsed = parseShellLine(line);
    const built = parsed.certain ? parsed.commands.reduce((n, c) => n + c.text.length, 0) : 0;
    expect(built).toBeLessThanOrEqual(11 * line.length);
  });

  it('holds a line read into commands to a few times its length, and the matcher to steps linear in it', async () => {
    const { LinearRegex } = await import('../../src/linear-regex.js');
    const pattern = new LinearRegex('^(\\S*/)?rm\\s+(-\\S+\\s+)*(-[a-zA-Z]*[rR]|--recursive)');
    for (const k of [20, 60, 120]) {
      // As many words as hoop reads (2,048 words, quotes and expansions): each `( ` is two, each ` ) >/dev/null` four.
      const body = 'ls '.repeat(2_040 - 6 * k);
      const line = `${'( '.repeat(k)}${body}${' ) >/dev/null'.repeat(k)}`;
      const parsed = parseShellLine(line);
      const bytes = Buffer.byteLength(line);
      if (!parsed.certain) {
        expect(parsed.why).toMatch(/repeat more of it than hoop reads/);
        continue;
      }
      const stored = parsed.commands.reduce((n, c) => n + c.text.length + (c.source === c.text ? 0 : c.source.length), 0);
      expect(stored, `${k} levels`).toBeLessThanOrEqual(8 * bytes + 64 * 1024);
      const steps = { steps: 0 };
      for (const c of parsed.commands) pattern.test(c.text, steps) || pattern.test(c.source, steps);
      expect(steps.steps, `${k} levels`).toBeLessThanOrEqual(2 * pattern.size * (8 * bytes + 64 * 1024 + parsed.commands.length));
    }
    expect(parseShellLine(`${'( '.repeat(120)}${'ls '.repeat(10_000)}${' ) >/dev/null'.repeat(120)}`)).toMatchObject({ certain: false });
  });
});

describe('programs that run code a line gives them (issue 72, third attack)', () => {
  const NO_RM = `    - { name: no-rm-rf, match: { commands: ["rm -rf *"] }, action: deny }\n${NO_RECURSIVE_RM}`;
  const V = '/srv/victim';
  const RUNS_RM: Record<string, string[]> = {
    'a sed label ends at a blank': [`sed -n ':x e rm -rf ${V}' f`, `sed -n '2b x e rm -rf ${V}\n:x' f`, `sed -n '2t x e rm -rf ${V}\n:x' f`, `sed -n '2T x e rm -rf ${V}\n:x' f`],
    'a sed or awk script read from its input': [
      `echo 'e rm -rf ${V}' | sed -f - f`,
      `echo 'e rm -rf ${V}' | sed -f /dev/stdin f`,
      `echo 'e rm -rf ${V}' | sed --file=- f`,
      `echo x | awk -f - f`,
      `echo x | awk -f /dev/stdin f`,
    ],
    "gawk's program text in --source and -W source": [
      `awk --source 'BEGIN{system("rm -rf ${V}")}'`,
      `awk -W source 'BEGIN{system("rm -rf ${V}")}'`,
      `awk --field-separator , 'BEGIN{system("rm -rf ${V}")}'`,
    ],
    'a one-letter long option': [`git ls-remote --u='rm -rf ${V};' .`, `git clone --u='rm -rf ${V};' . x`, `git push --e='rm -rf ${V};' .`],
    'a git remote helper': [`git remote-ext x 'rm -rf ${V}'`, `git remote-fd 0`],
    "watch's -d takes no separate value": [`watch -d rm -rf ls ${V}`],
    'a find -exec whose program is {}': [`find /bin/rm -exec {} -rf ${V} \\;`, `find /bin/rm -execdir {} -rf ${V} +`],
    'watch -x runs its words': [`watch -x sh -c 'rm -rf ${V}'`],
    'the dynamic loader and pkexec': [`/lib64/ld-linux-x86-64.so.2 /bin/rm -rf ${V}`, `/lib/ld-linux.so.2 --library-path /x rm -rf ${V}`, `ld.so rm -rf ${V}`, `pkexec --user root rm -rf ${V}`],
  };
  const programs = ['sed', 'awk', 'git', 'watch', 'find', 'echo', '/lib64/ld-linux-x86-64.so.2', '/lib/ld-linux.so.2', 'ld.so', 'pkexec', 'ls', '/bin/ls', 'sh'];
  const ALLOW_PROGRAMS = `    - { name: programs, match: { commands: ${JSON.stringify(programs.map((p) => `${p} **`))} }, action: allow }\n`;

  it('refuses each by a deny glob and the docs rm pattern, and admits none by allow rules for the programs', async () => {
    const denyList = await judgeOf(`  default: allow\n  rules:\n${NO_RM}`);
    const allowList = await judgeOf(`  default: deny\n  rules:\n${ALLOW_PROGRAMS}`);
    const admitted: string[] = [];
    for (const [finding, lines] of Object.entries(RUNS_RM))
      for (const line of lines)
        for (const [name, judge] of [
          ['deny list', denyList],
          ['allow list', allowList],
        ] as const)
          if (judge.decide({ kind: 'exec', command: line }, 'bash').action === 'allow') admitted.push(`${finding} (${name}): ${JSON.stringify(line)}`);
    expect(admitted).toEqual([]);
  });

  it('keeps the harmless spellings allowed', async () => {
    const denyList = await judgeOf(`  default: allow\n  rules:\n${NO_RM}`);
    const allowList = await judgeOf(`  default: deny\n  rules:\n${ALLOW_PROGRAMS}`);
    for (const line of [
      'sed -n 1p f',
      "sed 's/a/b/' f",
      "sed -n '/x/{p;q}' f",
      "sed '/^#/b; s/a/b/' f",
      'sed -f script.sed f',
      "awk '{print $1}' f",
      "awk -F: -v x=1 '{print $1}' f",
      'awk -f prog.awk f',
      'git ls-remote origin',
      'git push origin main',
      'git remote -v',
      'watch -n 5 ls',
      'watch -d=permanent ls -l',
      'watch -x ls -l',
      '/lib64/ld-linux-x86-64.so.2 --list /bin/ls',
      '/lib64/ld-linux-x86-64.so.2 /bin/ls',
    ])
      for (const [name, judge] of [
        ['deny list', denyList],
        ['allow list', allowList],
      ] as const)
        expect(judge.decide(exec(line), 'bash'), `${name}: ${line}`).toMatchObject({ action: 'allow' });
    // A path find puts in place of `{}` may hold any text the docs' rm pattern looks for: only the allow list admits this one.
    expect(allowList.decide(exec('find . -name x -exec ls {} \\;'), 'bash')).toMatchObject({ action: 'allow' });
  });
});

describe('a long line', () => {
  it('is read off the event loop: the gateway goes on while a long line is parsed, and what was read answers the judge', async () => {
    const long = `echo ${'$x '.repeat(1_000)}`;
    const { value: line, ticks } = await ticksWhile(readShellLine(long, '/bin/bash'));
    // Read on the event loop, it would settle before any other callback ran.
    expect(ticks).toBeGreaterThan(0);
    expect(line.certain).toBe(true);
    expect(shellLineOf(long, '/bin/bash')).toBe(line);
  });

  it('and a short one too: the gateway reads every line in the worker (a 511-byte line takes the parser 80-130 ms)', async () => {
    const short = `ls ${'x '.repeat(40)}`;
    const { ticks } = await ticksWhile(readShellLine(short, '/bin/bash'));
    expect(ticks).toBeGreaterThan(0);
    expect(shellLineOf(short, '/bin/bash')).toMatchObject({ certain: true });
  });

  it("takes one person's lines in turn with another's: four long lines queued by one, another's short line is read after the first of them, not the last (the tenth attack held a victim's `ls -la` 21 s)", async () => {
    const done: string[] = [];
    const noted = (what: string) => (line: unknown) => {
      done.push(what);
      return line;
    };
    const longs = [1, 2, 3, 4].map((k) => readShellLine(`ls ${`k${k} `.repeat(600)}`, '/bin/bash', 'mallory').then(noted(`mallory ${k}`)));
    const victim = readShellLine('ls -la', '/bin/bash', 'alice').then(noted('alice'));
    await Promise.all([...longs, victim]);
    expect(done.indexOf('alice')).toBeLessThanOrEqual(1);
    expect(done.filter((d) => d.startsWith('mallory'))).toEqual(['mallory 1', 'mallory 2', 'mallory 3', 'mallory 4']);
  });
});
