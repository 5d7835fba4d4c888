/**
 * A command of separate words as one line for the target's login shell, which OpenSSH hands an
 * exec request to (`$SHELL -c LINE`): each word comes back as exactly that word, one argument, in
 * every shell a target may have (sh, dash, bash, zsh, ksh, mksh, fish, tcsh, csh, busybox).
 *
 * The grammar is the intersection of theirs: letters, digits and `_ . / -` stand as written; a
 * quote and a backslash are escaped outside quotes (`\'`, `\\`: fish reads both inside single
 * quotes); every other character stands alone in single quotes, where no shell reads it. A word
 * holding a control character (a newline ends tcsh's quotes) is refused, not quoted.
 *
 * @see https://pubs.opengroup.org/onlinepubs/9799919799/utilities/V3_chap02.html#tag_19_02_02
 * @see https://fishshell.com/docs/current/language.html#quotes
 */
import { ErrorCode, HoopError } from '../../errors.js';

const PLAIN = /^[A-Za-z0-9_./-]$/;
const CONTROL = /[\p{Cc}]/u;

/** `word` as the shells read back as one argument, itself. @throws HoopError when it holds a control character */
export function shellWord(word: string): string {
  if (CONTROL.test(word)) throw new HoopError(ErrorCode.USAGE, 'a word of an SSH command may not hold a control character');
  if (word === '') return "''";
  let out = '';
  for (const c of word) out += PLAIN.test(c) ? c : c === "'" || c === '\\' ? `\\${c}` : `'${c}'`;
  return out;
}

/** `words` as one command line of separate words. */
export function commandLine(words: readonly string[]): string {
  return words.map(shellWord).join(' ');
}
