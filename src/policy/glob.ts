/**
 * The glob of the policy's name lists (agents, workload claims): `*` stands for any run of
 * characters, nothing else is special.
 */

/**
 * True when `value` matches `pattern`, in which `*` stands for any run of characters (none
 * included) and every other character for itself. Two-pointer matching: at worst pattern length
 * times value length steps, never exponential, and no regular expression built from configuration.
 *
 * @see https://pubs.opengroup.org/onlinepubs/9799919799/utilities/V3_chap02.html#tag_19_14 (pattern matching notation, `*` only)
 */
export function globMatches(pattern: string, value: string): boolean {
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
    } else if (star >= 0) {
      p = star + 1;
      v = ++mark;
    } else {
      return false;
    }
  }
  while (p < pattern.length && pattern[p] === '*') p++;
  return p === pattern.length;
}
