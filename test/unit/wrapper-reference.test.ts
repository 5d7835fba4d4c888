/**
 * The wrappers' specs held to the programs themselves: generated lines of each installed wrapper (its options in
 * random order and spellings, its operands, then `touch MARK`) are run for real, and wherever `touch` ran the judge's
 * reading of the wrapper (where the wrapped command starts) must name it. A spec that skips a word the program does not
 * (setarch's ARCH, which it takes only when its first word is no option) or takes a flag for an option with a value
 * (xvfb-run's `-l`) sends the judge to the wrong word: the fourteenth attack's two findings of this kind.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { wrappedStarts } from '../../src/policy/shell-options.js';
import { Random } from '../harness/random.js';

const base = mkdtempSync(join(tmpdir(), 'hoop-wrappers-'));
afterAll(() => rmSync(base, { recursive: true, force: true }));

/** Per wrapper: option occurrences (each one or more words), and the operand forms that stand before the command. */
const WRAPPERS: Record<string, { options: string[][]; operands: string[][] }> = {
  setarch: { options: [['-R'], ['--addr-no-randomize'], ['-L'], ['-3'], ['-v'], ['-RL']], operands: [[], ['x86_64'], ['linux64']] },
  nice: { options: [['-n', '5'], ['-n5'], ['--adjustment=3'], ['-5'], ['--adjustment', '2']], operands: [[]] },
  timeout: { options: [['-s', 'KILL'], ['-sKILL'], ['--signal=TERM'], ['-k', '5'], ['--kill-after=5'], ['--preserve-status'], ['-v'], ['--foreground']], operands: [['10'], ['5s']] },
  stdbuf: { options: [['-o0'], ['-o', 'L'], ['-eL'], ['--output=L'], ['--error', '0'], ['-i0']], operands: [[]] },
  env: { options: [['-i'], ['-u', 'X'], ['-uX'], ['--unset=X'], ['-C', '/'], ['--chdir=/']], operands: [[], ['X=1'], ['A=1', 'B=2']] },
  setsid: { options: [['-w'], ['--wait']], operands: [[]] },
  ionice: { options: [['-c', '3'], ['-c3'], ['--class=3'], ['-n', '7'], ['-t']], operands: [[]] },
  taskset: { options: [['-a']], operands: [['1'], ['0x1']] },
  chrt: { options: [['-o'], ['--other'], ['-v'], ['-b'], ['-i']], operands: [['0']] },
  flock: { options: [['-w', '5'], ['-n'], ['--timeout=5'], ['-E', '3'], ['-o'], ['-s'], ['-x']], operands: [[join(base, 'lock')]] },
  prlimit: { options: [['-n100'], ['--nofile=100'], ['--cpu=10:20'], ['-v']], operands: [[]] },
  nohup: { options: [], operands: [[]] },
  setpriv: { options: [['--no-new-privs'], ['--nnp']], operands: [[]] },
  // The seventeenth attack's wrappers.
  debconf: { options: [['-f', 'noninteractive'], ['-fnoninteractive'], ['--frontend=noninteractive'], ['-p', 'high'], ['--priority=critical'], ['-o', 'x'], ['--terse']], operands: [[]] },
  'fakeroot-sysv': { options: [['-u'], ['--unknown-is-real']], operands: [[]] },
};

/** `words` as one line of sh, each single-quoted. */
const shellLine = (words: string[]): string => words.map((w) => `'${w.replaceAll("'", `'\\''`)}'`).join(' ');

it('finds the command each installed wrapper runs where the program finds it: 40 generated lines per wrapper, run for real', () => {
  const r = new Random(1414);
  const lines: Array<{ wrapper: string; args: string[]; mark: string }> = [];
  for (const [wrapper, spec] of Object.entries(WRAPPERS)) {
    if (!existsSync(`/usr/bin/${wrapper}`)) continue;
    for (let i = 0; i < 40; i++) {
      const options = Array.from({ length: spec.options.length ? r.int(4) : 0 }, () => r.pick(spec.options)).flat();
      const operands = r.pick(spec.operands);
      // setarch takes its ARCH first, then options; the others take options, then operands.
      const before = wrapper === 'setarch' && operands.length > 0 ? [...operands, ...options] : [...options, ...operands];
      const mark = join(base, `ran-${lines.length}`);
      lines.push({ wrapper, args: [...before, 'touch', mark, join(base, 'other')], mark });
    }
  }
  // Every line run by one shell, in turn (a spawn from the test's own large process costs many times one from a shell).
  const script = lines.map(({ wrapper, args }) => `${shellLine([`/usr/bin/${wrapper}`, ...args])} </dev/null >/dev/null 2>&1`).join('\n');
  spawnSync('/bin/sh', ['-c', script], { timeout: 120_000, stdio: 'ignore', env: { PATH: '/usr/bin:/bin' } });
  let ran = 0;
  for (const { wrapper, args, mark } of lines) {
    if (!existsSync(mark)) continue; // the program refused this combination: nothing ran
    ran++;
    const read = wrappedStarts(wrapper, args);
    const at = args.indexOf('touch');
    expect({ line: [wrapper, ...args].join(' '), starts: read.certain ? read.starts : read.starts.includes(at) ? [at] : read.starts }).toEqual({
      line: [wrapper, ...args].join(' '),
      starts: [at],
    });
  }
  // Most combinations run (an option the program refuses in some order is the exception, not the rule).
  expect(ran).toBeGreaterThan(360);
});
