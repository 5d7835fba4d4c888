/**
 * The paths `--jq` takes: jq's path expressions, the part people use with gh and kubectl to pick
 * fields: `.`, `.name`, `."a key"`, `.[N]`, `.[]` (each element), chained (`.sessions[].id`).
 *
 * @see https://jqlang.org/manual/#basic-filters
 */

type Step = { key: string } | { index: number } | { each: true };

/** The steps of `expr`; undefined when it is not such a path. */
export function parseJsonPath(expr: string): Step[] | undefined {
  const text = expr.trim();
  if (!text.startsWith('.')) return undefined;
  const steps: Step[] = [];
  let i = 1;
  while (i < text.length) {
    const rest = text.slice(i);
    const m = /^([A-Za-z_][A-Za-z0-9_]*)/.exec(rest) ?? /^"((?:[^"\\]|\\.)*)"/.exec(rest) ?? /^\[\]/.exec(rest) ?? /^\[(-?\d+)\]/.exec(rest) ?? /^\.(?=[A-Za-z_"[])/.exec(rest);
    if (!m) return undefined;
    if (m[0] === '[]') steps.push({ each: true });
    else if (m[0].startsWith('[')) steps.push({ index: Number(m[1]) });
    else if (m[0] === '.') {
      // a separator: `.a.b`
    } else steps.push({ key: m[0].startsWith('"') ? (JSON.parse(m[0]) as string) : m[1]! });
    i += m[0].length;
  }
  return steps;
}

/** What `steps` select from `value`, as jq would (a missing key or index: null; `[]` of a non-array: none). */
export function selectJsonPath(value: unknown, steps: readonly Step[]): unknown[] {
  let current: unknown[] = [value];
  for (const step of steps) {
    current = current.flatMap((v): unknown[] => {
      if ('each' in step) return Array.isArray(v) ? v : v !== null && typeof v === 'object' ? Object.values(v) : [];
      if ('index' in step) return [Array.isArray(v) ? (v.at(step.index) ?? null) : null];
      return [v !== null && typeof v === 'object' && !Array.isArray(v) ? ((v as Record<string, unknown>)[step.key] ?? null) : null];
    });
  }
  return current;
}
