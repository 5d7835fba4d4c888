/**
 * The one glob of hoop's configuration and policy (agents, workload claims, SSH commands and
 * environment variables, forwarding hosts, masked tables, statement rules' tables and functions,
 * allowed secrets): `*` stands for any run of characters (none included), every other character
 * for itself. A pattern may restrict what its stars stand for (`${file:/run/*}`: never `/`).
 *
 * Matched with two pointers, never with a regular expression built from configuration: at worst
 * pattern length times value length steps. With a restricted star the last star alone is
 * retried, which is exact: an earlier star could only move past a character the later one cannot
 * take by taking it itself.
 *
 * @see https://pubs.opengroup.org/onlinepubs/9799919799/utilities/V3_chap02.html#tag_19_14 (pattern matching notation, `*` only)
 */

/** What a star may stand for: any character, or only those `starTakes` accepts. */
export type StarClass = ((c: string) => boolean) | undefined;

/** True when `value` matches `pattern` (see the module documentation). */
export function globMatches(pattern: string, value: string, starTakes?: StarClass): boolean {
  let p = 0;
  let v = 0;
  let star = -1;
  let mark = 0;
  while (v < value.length) {
    if (p < pattern.length && pattern[p] === '*') {
      star = p++;
      mark = v;
    } else if (p < pattern.length && pattern[p] === value[v]) {
      p++;
      v++;
    } else if (star >= 0 && (starTakes === undefined || starTakes(value[mark]!))) {
      p = star + 1;
      v = ++mark;
    } else {
      return false;
    }
  }
  while (p < pattern.length && pattern[p] === '*') p++;
  return p === pattern.length;
}

/** `pattern` as a predicate, compared lower-case when `lowerCase` (the pattern and each value). */
export function glob(pattern: string, o: { lowerCase?: boolean; starTakes?: StarClass } = {}): (value: string) => boolean {
  const p = o.lowerCase ? pattern.toLowerCase() : pattern;
  return o.lowerCase ? (value) => globMatches(p, value.toLowerCase(), o.starTakes) : (value) => globMatches(p, value, o.starTakes);
}

/** True when `list` names `value`: holds it, or `*` (which names every value). The lists of names in configuration and policy (connections, subjects) read so. */
export function listNames(list: readonly string[], value: string): boolean {
  return list.includes('*') || list.includes(value);
}

/**
 * `pattern` as a predicate over a command's arguments, as a person reading an allow rule means it:
 * each word of the pattern is one argument, in which `*` stays within one path segment (never a
 * `/`) and `**` may cross them; an argument with a `..` segment the pattern does not spell, or
 * with a character the target's shell would expand as a glob, is matched by no star; and a word
 * that is `**` alone stands for any number of arguments (none too).
 */
export function argumentsGlob(pattern: string): (words: readonly string[]) => boolean {
  const parts = pattern.trim().split(/\s+/).filter(Boolean);
  const word = (p: string): ((w: string) => boolean) => {
    if (!p.includes('*')) return (w) => w === p;
    const re = new RegExp(
      `^${p
        .split('**')
        .map((piece) =>
          piece
            .split('*')
            .map((t) => t.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
            .join('[^/]*'),
        )
        .join('.*')}$`,
      's',
    );
    const spellsParent = p.split('/').includes('..');
    // A word with a glob character of the shell's (`.?`, `[.]`, `*`) may be made into another path on the target (`..`): no star matches it.
    return (w) => !/[*?[]/.test(w) && (spellsParent || !w.split('/').includes('..')) && re.test(w);
  };
  const matchers = parts.map((p) => (p === '**' ? undefined : word(p)));
  const from = (i: number, words: readonly string[], j: number): boolean => {
    if (i === parts.length) return j === words.length;
    const m = matchers[i];
    if (!m) {
      for (let k = j; k <= words.length; k++) if (from(i + 1, words, k)) return true;
      return false;
    }
    return j < words.length && m(words[j]!) && from(i + 1, words, j + 1);
  };
  return (words) => from(0, words, 0);
}
