/**
 * The judge's readings of programs, tested against the programs themselves on generated input
 * (#72). The demo's (and docs/ssh.md's) deny pattern for recursive deletes against GNU rm: lines
 * put options before, between and after operands, in clusters, as long options and their
 * prefixes, around `--`; every line that removed a directory with its contents must be refused.
 * Reading a sed script against GNU sed: every script that ran a command must be read as one that may.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { NO_RECURSIVE_RM } from '../../src/demo/sample.js';
import { sedRuns } from '../../src/policy/shell-sed.js';
import { sshJudgeIn } from '../harness/ssh-judge.js';

const base = mkdtempSync(join(tmpdir(), 'hoop-program-references-'));
afterAll(() => rmSync(base, { recursive: true, force: true }));

/** A generator of numbers in [0, 1) from `seed` (the same lines every run), and a pick from a list by it. */
function seeded(seed: number) {
  const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  return { random, pick: <T>(list: readonly T[]) => list[Math.floor(random() * list.length)] as T };
}

const OPTIONS = ['-r', '-R', '-f', '-v', '-rf', '-fr', '-Rf', '-vr', '-d', '--recursive', '--rec', '--r', '--recu', '--force', '--verbose', '--dir', '--one-file-system', '--preserve-root', '--'];

/** A line of `rm` with 1 to 3 of OPTIONS and operands `f` and `T`, in an order drawn from `random`. */
function line(random: () => number): string[] {
  const words = [...Array.from({ length: 1 + Math.floor(random() * 3) }, () => OPTIONS[Math.floor(random() * OPTIONS.length)] as string), ...(random() < 0.5 ? ['T'] : ['f', 'T'])];
  for (let i = words.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [words[i], words[j]] = [words[j] as string, words[i] as string];
  }
  return ['rm', ...words];
}

/** Whether GNU rm, run with `words`, removed directory T and its contents. */
function removesTree(words: string[], n: number): boolean {
  const dir = join(base, `run${n}`);
  mkdirSync(join(dir, 'T', 'child'), { recursive: true });
  writeFileSync(join(dir, 'f'), 'x');
  try {
    execFileSync(words[0] as string, words.slice(1), { cwd: dir, stdio: 'ignore' });
  } catch {
    // rm says why it kept a directory (exit 1): what it removed is what counts.
  }
  return !existsSync(join(dir, 'T'));
}

it('refuses every line GNU rm runs as a recursive delete, options before or after its operands, long options by any prefix', async () => {
  expect(readFileSync('docs/ssh.md', 'utf8')).toContain(`patterns: ['${NO_RECURSIVE_RM}']`);
  const judge = await sshJudgeIn(base, `  default: allow\n  rules:\n    - { name: no-recursive-rm, match: { patterns: ['${NO_RECURSIVE_RM}'] }, action: deny }\n`);
  const { random } = seeded(72);
  const missed: string[] = [];
  let recursive = 0;
  let allowed = 0;
  for (let n = 0; n < 100; n++) {
    const words = line(random);
    const text = words.join(' ');
    const action = judge.decide({ kind: 'exec', command: text }, 'bash').action;
    if (removesTree(words, n)) {
      recursive++;
      if (action !== 'deny') missed.push(text);
    } else if (action === 'allow') allowed++;
  }
  expect(missed).toEqual([]);
  // The lines draw both kinds: the pattern is no refusal of every rm.
  expect(recursive).toBeGreaterThan(25);
  expect(allowed).toBeGreaterThan(15);
  expect(judge.decide({ kind: 'exec', command: 'rm -f f T' }, 'bash').action).toBe('allow');
  expect(judge.decide({ kind: 'exec', command: 'rm T -rf' }, 'bash').action).toBe('deny');
  expect(judge.decide({ kind: 'exec', command: 'rm $X -r' }, 'bash').action).toBe('deny');
});

/** Pieces of sed scripts: labels and branches of every spelling, commands that run (`e`, `s///e`), and what may hide them (text, file names, comments, brackets, braces). */
const SED_PIECES = [
  ':a',
  ': a',
  ':a ',
  'b a',
  'ba',
  'b',
  't a',
  'T a',
  'bx',
  ':x',
  'v',
  'v 4.2',
  'e touch M',
  'e touch M',
  'e',
  's/a/touch M/e',
  '1e touch M',
  '$e touch M',
  's/a/touch M/ge',
  's|a|touch M|e',
  's/a/b/w /dev/null',
  's/[/]/x/',
  's/a[/]/b/e',
  's|[|]|w;touch M;|e',
  's|[]|]|w;touch M;|e',
  's|[^a]|w;touch M;|e',
  's|[[:punct:]|]|w;touch M;|e',
  's|[[.|.]]|w;touch M;|e',
  '\\|[|]|e touch M',
  '/[/]/e touch M',
  'y/a/b/',
  'p',
  'n',
  '=',
  '#c',
  '{',
  '}',
  'a text',
  'i\\',
  'c\\',
  '$!N',
  '/a/',
  '1',
  '/a/,/b/',
  '\\%a%',
  '!',
  'r /dev/null',
  'l',
  'q',
  'h',
  'G',
  'x',
  'F',
  'z',
  's/a/&/',
  's/\\//x/e',
  'w /dev/null',
];
const SED_LABELS = [':a', ': a', 'b a', 'ba', 'b', 't a', 'T', 'bx', 'v', 'v 4.2', ':a{', 'b a!'];
const SED_LABEL_ENDS = [';', '\n', ' ', '\t', '}', '#', '', '\v', '\f', '\r', '!', '{', ';;', ' ;', '#\n'];
const SED_JOINS = [';', ';', ';', '\n', '\n', ' ', '', '}', '\t', '#'];

it('reads every script GNU sed runs a command of as one that may run a command (labels as GNU sed ends them)', () => {
  const dir = join(base, 'sed');
  mkdirSync(dir);
  const { random, pick } = seeded(4);
  const missed: string[] = [];
  let ran = 0;
  let read = 0;
  for (let n = 0; n < 300; n++) {
    let script = pick(SED_PIECES);
    for (let k = 1 + Math.floor(random() * 4); k > 0; k--) script += pick(SED_JOINS) + pick(SED_PIECES);
    // Half the scripts put a command that runs right after a label, past each character that may end it.
    if (n % 2 === 1) script = `${random() < 0.5 ? '{' : ''}${pick(SED_LABELS)}${pick(SED_LABEL_ENDS)}${pick(['e touch M', 's/a/touch M/e', '}e touch M', '}\ne touch M'])}`;
    // A mark of its own per script: a command a script killed at its timeout had started may touch its mark late.
    const mark = join(dir, `M${n}`);
    script = script.replaceAll('touch M', `touch ${mark}`);
    try {
      execFileSync('sed', ['-n', script], { input: 'a\nb\n|/[]\n', cwd: dir, stdio: ['pipe', 'ignore', 'ignore'], timeout: 300, killSignal: 'SIGKILL' });
    } catch {
      // A script sed refuses runs nothing; one that branches back forever is stopped.
    }
    const runs = sedRuns(script);
    if (existsSync(mark)) {
      ran++;
      if (!runs) missed.push(script);
    } else if (!runs) read++;
  }
  expect(missed).toEqual([]);
  expect(ran).toBeGreaterThan(15);
  // Scripts with labels and branches are read, not refused whole.
  expect(read).toBeGreaterThan(50);
  expect(sedRuns(':a;N;$!ba;s/\\n/ /g')).toBe(false);
  expect(sedRuns(':x e id')).toBe(true);
  expect(sedRuns('b a;:a e id')).toBe(true);
});

/** Runs `program` with `args` in `dir` (input `input`, stopped after a second): whether it ran `touch M` (M: `mark`, a file no other run names). */
function ranMark(program: string, args: string[], dir: string, mark: string, input = ''): boolean {
  try {
    execFileSync(program, args, { cwd: dir, input, stdio: ['pipe', 'ignore', 'ignore'], timeout: 1000, killSignal: 'SIGKILL', env: { PATH: process.env.PATH ?? '', HOME: dir, LANG: 'C' } });
  } catch {
    // A program that refuses its words runs nothing: what it ran is what counts.
  }
  return existsSync(mark);
}

/** Lines of `program` drawn from `pieces` (each piece one or more words), `runs` times, checked against the program itself: every line that ran `touch M` must be one the judge refuses under an allow list of the program. */
async function againstProgram(program: string, pieces: string[][], setup: (dir: string) => void, runs: number, input = '') {
  const dir = join(base, `${program}-options`);
  mkdirSync(dir);
  setup(dir);
  const judge = await sshJudgeIn(dir, `  default: deny\n  rules:\n    - { name: tools, match: { commands: ["${program} **"] }, action: allow }\n`);
  const { random, pick } = seeded(program.length);
  const missed: string[] = [];
  let ran = 0;
  let allowed = 0;
  for (let n = 0; n < runs; n++) {
    // A mark of its own per line (see above).
    const mark = join(dir, `M${n}`);
    const args = Array.from({ length: 1 + Math.floor(random() * 4) }, () => pick(pieces))
      .flat()
      .map((w) => w.replaceAll('touch M', `touch ${mark}`));
    const line = [program, ...args].map((w) => `'${w.replaceAll("'", "'\\''")}'`).join(' ');
    const action = judge.decide({ kind: 'exec', command: line }, 'bash').action;
    if (ranMark(program, args, dir, mark, input)) {
      ran++;
      if (action !== 'deny') missed.push(line);
    } else if (action === 'allow') allowed++;
  }
  return { missed, ran, allowed };
}

it("reads sed's, gawk's and ssh's options as they read them: every line that ran a command is refused by an allow rule for the program", async () => {
  const sed = await againstProgram(
    'sed',
    [
      ['-n'],
      ['-s'],
      ['-E'],
      ['-z'],
      ['--posix'],
      ['-e', '1e touch M'],
      ['--expression=1e touch M'],
      ['--expr', '1e touch M'],
      ['-e', 'p'],
      ['p'],
      ['s/a/b/'],
      ['f'],
      ['-f', 'ok.sed'],
      ['--'],
      ['-l', '5'],
      ['-nel5'],
      ['--sandbox'],
      ['-u'],
      ['--debug'],
      ['1e touch M'],
    ],
    (dir) => {
      writeFileSync(join(dir, 'f'), 'a\n');
      writeFileSync(join(dir, 'ok.sed'), 'p\n');
    },
    100,
    'a\n',
  );
  const awk = await againstProgram(
    'gawk',
    [
      ['-d'],
      ['-dfoo'],
      ['-L'],
      ['-Lfatal'],
      ['-deBEGIN'],
      ['-e', 'BEGIN{system("touch M")}'],
      ['BEGIN{system("touch M")}'],
      ['BEGIN{print 1}'],
      ['-f', 'ok.awk'],
      ['-v', 'x=1'],
      ['-vx=1'],
      ['-F:'],
      ['-F', ':'],
      ['-n'],
      ['-b'],
      ['-c'],
      ['-S'],
      ['--'],
      ['--source=BEGIN{system("touch M")}'],
      ['-o'],
      ['-ofoo'],
      ['-p'],
      ['-M'],
      ['-N'],
      ['-D'],
    ],
    (dir) => writeFileSync(join(dir, 'ok.awk'), 'BEGIN { x = 1 }\n'),
    120,
    'eval "system(\\"touch M\\")"\nquit\n',
  );
  const ssh = await againstProgram(
    'ssh',
    [
      ['-p', '1'],
      ['127.0.0.1'],
      ['127.0.0.2'],
      ['-o', 'ProxyCommand=touch M'],
      ['-o', '"ProxyCommand" touch M'],
      ['-o', 'Proxy"Command" touch M'],
      ['-o', '=ProxyCommand touch M'],
      ['-o', ' proxycommand touch M'],
      ['-oProxyCommand=touch M'],
      ['-o', 'BatchMode=yes'],
      ['-o', 'ConnectTimeout=1'],
      ['-o', 'Port=1 ProxyCommand touch M'],
      ['-l', 'u'],
      ['-4'],
      ['-T'],
      ['--'],
    ],
    () => {},
    60,
  );
  expect({ sed: sed.missed, awk: awk.missed, ssh: ssh.missed }).toEqual({ sed: [], awk: [], ssh: [] });
  for (const [name, r] of Object.entries({ sed, awk, ssh })) {
    expect(r.ran, `${name} lines that ran a command`).toBeGreaterThan(10);
    expect(r.allowed, `${name} lines allowed`).toBeGreaterThan(10);
  }
});

it("reads a glob as the file names bash makes of it: every tar or rm line whose files' names became options that ran a command or deleted a directory is refused", async () => {
  const dir = join(base, 'globs');
  /** A directory whose file names are the program's options (tar's checkpoint that runs `touch M`, rm's `-rf`), and `sub/f` to delete. */
  const fill = (options: string[]) => {
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(join(dir, 'sub'), { recursive: true });
    for (const name of ['a', 'b.log', 'sub/f', ...options]) writeFileSync(join(dir, name), 'x\n');
  };
  const TAR = ['--checkpoint=1', '--checkpoint-action=exec=touch M'];
  fill(TAR);
  const tarJudge = await sshJudgeIn(dir, '  default: deny\n  rules:\n    - { name: tools, match: { commands: ["tar **"] }, action: allow }\n');
  const rmJudge = await sshJudgeIn(dir, `  default: allow\n  rules:\n    - { name: no-rm, match: { patterns: ['${NO_RECURSIVE_RM}'] }, action: deny }\n`);
  const GLOBS = ['*', '-*', '*.log', './*', '--', 'a', '?*', '[-a]*', '*f', '*1', 'sub', '"*"'];
  const { random, pick } = seeded(7);
  const missed: string[] = [];
  const counts = { ran: 0, allowed: 0 };
  for (let n = 0; n < 80; n++) {
    const globs = Array.from({ length: 1 + Math.floor(random() * 3) }, () => pick(GLOBS)).join(' ');
    const [line, judge, did] = n % 2 === 0 ? [`tar cf ../a.tar ${globs}`, tarJudge, () => existsSync(join(dir, 'M'))] : [`rm -f ${globs}`, rmJudge, () => !existsSync(join(dir, 'sub'))];
    fill(n % 2 === 0 ? TAR : ['-rf']);
    try {
      execFileSync('bash', ['-c', line], { cwd: dir, stdio: ['ignore', 'ignore', 'ignore'], timeout: 5000, killSignal: 'SIGKILL' });
    } catch {
      // A line the program refuses ran what it ran before it stopped.
    }
    const action = judge.decide({ kind: 'exec', command: line }, 'bash').action;
    if (did()) {
      counts.ran++;
      if (action !== 'deny') missed.push(line);
    } else if (action === 'allow') counts.allowed++;
  }
  rmSync(dir, { recursive: true, force: true });
  expect(missed).toEqual([]);
  expect(counts.ran).toBeGreaterThan(10);
  expect(counts.allowed).toBeGreaterThan(10);
});
