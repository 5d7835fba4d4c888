/**
 * The one glob of hoop's configuration and policy (agents, workload claims, SSH commands and
 * environment variables, forwarding hosts, masked tables, statement rules' tables and functions,
 * allowed secrets): `*` stands for any run of characters (none included), every other character
 * for itself. A pattern may restrict what its stars stand for (`${file:/run/*}`: never `/`).
 *
 * Matched never with a regular expression built from configuration: a pattern of free stars as its
 * literal pieces, each found leftmost in turn (each character of the value looked at about once);
 * one of restricted stars with two pointers (at worst pattern length times value length steps),
 * the last star alone retried, which is exact: an earlier star could only move past a character
 * the later one cannot take by taking it itself.
 *
 * @see https://pubs.opengroup.org/onlinepubs/9799919799/utilities/V3_chap02.html#tag_19_14 (pattern matching notation, `*` only)
 */

/** What a star may stand for: any character, or only those `starTakes` accepts. */
export type StarClass = ((c: string) => boolean) | undefined;

/** True when `value` matches `pattern` (see the module documentation). */
export function globMatches(pattern: string, value: string, starTakes?: StarClass, steps?: { steps: number }): boolean {
  return starTakes === undefined ? piecesMatch(piecesOf(pattern), value, steps) : restrictedMatch(pattern, value, starTakes, steps);
}

/** Patterns split at their stars, kept (a policy's globs are few, matched often). */
const PIECES = new Map<string, readonly string[]>();
function piecesOf(pattern: string): readonly string[] {
  let pieces = PIECES.get(pattern);
  if (pieces === undefined) {
    if (PIECES.size >= 4096) PIECES.clear();
    pieces = pattern.split('*');
    PIECES.set(pattern, pieces);
  }
  return pieces;
}

/**
 * A pattern of free stars, as its literal pieces: the first a prefix of the value, the last a
 * suffix, each between found leftmost after the one before (the earliest place leaves the most for
 * the rest, so it is exact): each character of the value looked at about once, however long the pattern.
 */
function piecesMatch(pieces: readonly string[], value: string, steps?: { steps: number }): boolean {
  const first = pieces[0]!;
  if (pieces.length === 1) {
    if (steps) steps.steps += value.length;
    return first === value;
  }
  const last = pieces[pieces.length - 1]!;
  const end = value.length - last.length;
  if (steps) steps.steps += first.length + last.length;
  if (end < first.length || !value.startsWith(first) || !value.endsWith(last)) return false;
  let at = first.length;
  for (let k = 1; k < pieces.length - 1; k++) {
    const piece = pieces[k]!;
    if (piece === '') continue;
    const found = value.indexOf(piece, at);
    if (steps) steps.steps += (found < 0 ? value.length : found + piece.length) - at;
    if (found < 0 || found + piece.length > end) return false;
    at = found + piece.length;
  }
  return true;
}

/** Two pointers, the last star alone retried (see the module documentation). */
function restrictedMatch(pattern: string, value: string, starTakes: StarClass, steps?: { steps: number }): boolean {
  let p = 0;
  let v = 0;
  let star = -1;
  let mark = 0;
  while (v < value.length) {
    if (steps) steps.steps++;
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

/**
 * Whether `pattern` may match some value made of `pieces`, each `null` standing for any run of
 * characters: what a deny rule asks of a command whose words are built when it runs. Matched as
 * the set of pattern positions the pieces read so far can reach: at most pattern length steps per
 * character.
 */
export function globMayMatch(pattern: string, pieces: ReadonlyArray<string | null>, steps?: { steps: number }): boolean {
  const n = pattern.length;
  // row[j]: what was read so far may match the pattern's first j characters.
  let row = new Uint8Array(n + 1);
  let next = new Uint8Array(n + 1);
  row[0] = 1;
  const stars = (r: Uint8Array): void => {
    for (let j = 1; j <= n; j++) if (pattern[j - 1] === '*' && r[j - 1]) r[j] = 1;
  };
  stars(row);
  for (const piece of pieces) {
    if (piece === null) {
      // Any run reaches every position from the first one reached.
      const first = row.indexOf(1);
      if (first < 0) return false;
      row.fill(1, first);
      if (steps) steps.steps += n;
      continue;
    }
    for (let i = 0; i < piece.length; i++) {
      if (steps) steps.steps += n;
      next.fill(0);
      let alive = 0;
      for (let j = 1; j <= n; j++) {
        const p = pattern[j - 1];
        const v = p === '*' ? next[j - 1]! | row[j]! : p === piece[i] ? row[j - 1]! : 0;
        next[j] = v;
        alive |= v;
      }
      if (alive === 0) return false;
      [row, next] = [next, row];
    }
  }
  return row[n] === 1;
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

const STAR = -1;
const GLOBSTAR = -2;
const SLASH = 0x2f;

/**
 * `pattern` over a path or a word: `*` any run within one segment (never a `/`), `**` any run.
 * Matched as the set of the pattern's positions the text read so far can reach, moved on a
 * character at a time: at most pattern length steps per character, whatever the text.
 */
export function segmentGlob(pattern: string): (text: string, steps?: { steps: number }) => boolean {
  // Tokens: a character's code, STAR or GLOBSTAR (any run of stars but one).
  const codes: number[] = [];
  for (let i = 0; i < pattern.length; i++) {
    if (pattern[i] !== '*') codes.push(pattern.charCodeAt(i));
    else if (pattern[i + 1] === '*') {
      codes.push(GLOBSTAR);
      while (pattern[i + 1] === '*') i++;
    } else codes.push(STAR);
  }
  const tokens = Int32Array.from(codes);
  const n = tokens.length;
  let row = new Uint8Array(n + 1);
  let next = new Uint8Array(n + 1);
  return (text, steps) => {
    // row[j]: the text read so far matches the first j tokens.
    row.fill(0);
    row[0] = 1;
    for (let j = 1; j <= n; j++) row[j] = tokens[j - 1]! < 0 ? row[j - 1]! : 0;
    for (let i = 0; i < text.length; i++) {
      if (steps) steps.steps += n;
      const c = text.charCodeAt(i);
      let alive = 0;
      next[0] = 0;
      for (let j = 1; j <= n; j++) {
        const t = tokens[j - 1]!;
        const v = t === GLOBSTAR || (t === STAR && c !== SLASH) ? next[j - 1]! | row[j]! : t === STAR ? next[j - 1]! : t === c ? row[j - 1]! : 0;
        next[j] = v;
        alive |= v;
      }
      const was = row;
      row = next;
      next = was;
      if (alive === 0) return false;
    }
    return row[n] === 1;
  };
}

/**
 * `pattern` as a predicate over a command's arguments, as a person reading an allow rule means it:
 * each word of the pattern is one argument, in which `*` stays within one path segment (never a
 * `/`) and `**` may cross them; an argument with a `..` segment the pattern does not spell, or
 * with a character the target's shell would expand as a glob, is matched by no star; and a word
 * that is `**` alone stands for any number of arguments (none too). Matched as sets of positions
 * (pattern word by argument, pattern character by argument character), never by backtracking.
 */
export function argumentsGlob(pattern: string): (words: readonly string[], steps?: { steps: number }) => boolean {
  const parts = pattern.trim().split(/\s+/).filter(Boolean);
  const word = (p: string): ((w: string, steps?: { steps: number }) => boolean) => {
    if (!p.includes('*')) return (w) => w === p;
    const matches = segmentGlob(p);
    const spellsParent = p.split('/').includes('..');
    // A word with a glob character of the shell's (`.?`, `[.]`, `*`) may be made into another path on the target (`..`): no star matches it.
    return (w, steps) => !/[*?[]/.test(w) && (spellsParent || !w.split('/').includes('..')) && matches(w, steps);
  };
  const matchers = parts.map((p) => (p === '**' ? undefined : word(p)));
  return (words, steps) => {
    // The argument positions each prefix of the pattern's words can reach.
    let at = new Set([0]);
    for (const m of matchers) {
      const reached = new Set<number>();
      if (!m) {
        let first = words.length;
        for (const j of at) first = Math.min(first, j);
        for (let j = first; j <= words.length; j++) reached.add(j);
        if (steps) steps.steps += words.length + 1 - first;
      } else
        for (const j of at) {
          if (steps) steps.steps++;
          if (j < words.length && m(words[j]!, steps)) reached.add(j + 1);
        }
      if (reached.size === 0) return false;
      at = reached;
    }
    return at.has(words.length);
  };
}
