/** `--jq` paths, read as jq reads them, and what they select. */
import { describe, expect, it } from 'vitest';
import { parseJsonPath, selectJsonPath } from '../../src/json-path.js';

const doc = { gateway: 'https://g', sessions: [{ id: 'a', tools: ['x'] }, { id: 'b' }], 'odd key': 1 };
const select = (expr: string): unknown[] => selectJsonPath(doc, parseJsonPath(expr)!);

describe('a --jq path', () => {
  it('selects as jq does: keys, indexes, each element, chained', () => {
    expect(select('.')).toEqual([doc]);
    expect(select('.gateway')).toEqual(['https://g']);
    expect(select('.sessions[].id')).toEqual(['a', 'b']);
    expect(select('.sessions[0]')).toEqual([{ id: 'a', tools: ['x'] }]);
    expect(select('.sessions[-1].id')).toEqual(['b']);
    expect(select('.sessions[].tools')).toEqual([['x'], null]);
    expect(select('."odd key"')).toEqual([1]);
    expect(select('.missing.deeper')).toEqual([null]);
    expect(select('.gateway[]')).toEqual([]);
  });

  it('is refused when it is not a path: filters, pipes, functions', () => {
    for (const bad of ['sessions', '.sessions | length', '.a,.b', 'keys', '.[', '.a[x]', '']) expect(parseJsonPath(bad), bad).toBeUndefined();
  });
});
