/** "Did you mean …?": the nearest of the names a person could have meant, by edit distance. */
import { type ErrorCode, HoopError } from './errors.js';

/** Edits (insertions, deletions, substitutions, swaps of two neighbours; case ignored) that turn `a` into `b`. */
export function editDistance(a: string, b: string): number {
  const x = a.toLowerCase();
  const y = b.toLowerCase();
  let before = new Array<number>(y.length + 1).fill(0);
  let prev = Array.from({ length: y.length + 1 }, (_, j) => j);
  for (let i = 1; i <= x.length; i++) {
    const row = [i];
    for (let j = 1; j <= y.length; j++) {
      let d = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (x[i - 1] === y[j - 1] ? 0 : 1));
      if (i > 1 && j > 1 && x[i - 1] === y[j - 2] && x[i - 2] === y[j - 1]) d = Math.min(d, before[j - 2]! + 1);
      row.push(d);
    }
    before = prev;
    prev = row;
  }
  return prev[y.length]!;
}

/** The one of `known` nearest `typed` (never `typed` itself), when it is near enough to be a typo: at most a third of its length away (one edit for short names). */
export function nearestName(typed: string, known: readonly string[]): string | undefined {
  const best = known
    .filter((k) => k !== typed)
    .map((k) => ({ k, d: editDistance(typed, k) }))
    .sort((x, y) => x.d - y.d)[0];
  return best && best.d <= Math.max(1, Math.floor(typed.length / 3)) ? best.k : undefined;
}

/**
 * What `call` resolves; when it fails saying `typed` is unknown (`code`), the same error with "did
 * you mean" the nearest of `known()` (the caller's own names: never one they may not see).
 */
export async function suggestingNearest<T>(call: Promise<T>, code: ErrorCode, typed: string, known: () => Promise<readonly string[]>): Promise<T> {
  try {
    return await call;
  } catch (err) {
    if (!(err instanceof HoopError) || err.code !== code) throw err;
    const near = nearestName(typed, await known().catch(() => []));
    throw near ? new HoopError(err.code, `${err.message}: did you mean "${near}"?`, { ...(err.hint ? { hint: err.hint } : {}), exitCode: err.exitCode }) : err;
  }
}
