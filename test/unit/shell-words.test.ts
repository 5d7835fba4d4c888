/**
 * The words of a runbook's SSH step (src/ssh/common/shell-words.ts), differentially: each quoted
 * word is read back by every shell installed here, as `$SHELL -c` reads an exec request's line,
 * as exactly one argument equal to the word: hostile words, then generated ones over every
 * character the shells treat specially.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { commandLine, shellWord } from '../../src/ssh/common/shell-words.js';

const SHELLS = ['/bin/sh', '/usr/bin/dash', '/bin/bash', '/usr/bin/zsh', '/usr/bin/ksh', '/usr/bin/mksh', '/usr/bin/fish', '/usr/bin/tcsh', '/usr/bin/csh', '/usr/bin/busybox'].filter((s) =>
  existsSync(s),
);

/** The arguments `shell -c LINE` runs printf with, each as its bytes in hex (a NUL-free separator). */
function readBack(shell: string, words: string[]): string[] {
  const argv = shell.endsWith('busybox') ? ['sh', '-c'] : ['-c'];
  const out = execFileSync(shell, [...argv, `printf '%s\\n' ${commandLine(words.map((w) => w))} | od -An -tx1 -v`], { encoding: 'utf8', env: { PATH: '/usr/bin:/bin', HOME: '/nonexistent' } });
  const hex = out.replace(/\s+/g, '');
  return Buffer.from(hex, 'hex').toString('utf8').split('\n').slice(0, -1);
}

const HOSTILE = [
  '',
  ' ',
  "it's",
  '\\',
  '\\\\',
  "\\'",
  '$HOME',
  '${HOME}',
  '$(id)',
  '`id`',
  '"; rm -rf / #',
  "'; rm -rf / #",
  '!!',
  '!$',
  '~',
  '~root',
  '*',
  '?',
  '[a-z]',
  '{a,b}',
  '=ls',
  '%self',
  'a b\tc',
  '#comment',
  '&',
  '|',
  ';',
  '<>',
  '(x)',
  'é ≠ 😀',
  '^foo^bar',
  '-n',
  '%',
  '$argv[1]',
  "'\\''",
];

describe('a word of an SSH step', () => {
  it('is read back as itself, one argument, by every shell', () => {
    expect(SHELLS.length).toBeGreaterThanOrEqual(3);
    for (const shell of SHELLS)
      expect(
        readBack(
          shell,
          HOSTILE.filter((w) => !w.includes('\t')),
        ),
        shell,
      ).toEqual(HOSTILE.filter((w) => !w.includes('\t')));
  });

  it('holds for generated words over the characters shells treat specially', () => {
    const alphabet = [...'\'"\\`$!~*?[]{}()<>|&;#%^=,: -_./aZ9é😀', '\u00a0'];
    let seed = 7;
    const next = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const words = Array.from({ length: 120 }, () => Array.from({ length: 1 + next(12) }, () => alphabet[next(alphabet.length)]!).join(''));
    for (const shell of SHELLS) expect(readBack(shell, words), shell).toEqual(words);
  });

  it('refuses a control character rather than quote it', () => {
    for (const w of ['a\nb', 'a\rb', '\u0000', '\u001b[2J']) expect(() => shellWord(w)).toThrow(/control character/);
  });
});
