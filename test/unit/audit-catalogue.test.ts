/**
 * The audit stream's catalogue of events is one list in the code (GATEWAY_EVENTS), and
 * docs/audit.md names exactly those: an event added, renamed or dropped in one and not the other
 * fails here.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { GATEWAY_EVENTS } from '../../src/gateway/audit/events.js';

describe("the audit stream's events", () => {
  it('are the ones docs/audit.md lists, no more and no fewer', () => {
    const doc = readFileSync(join(import.meta.dirname, '../../docs/audit.md'), 'utf8');
    const row = doc.split('\n').find((l) => l.startsWith('| `event` |'));
    expect(row, 'docs/audit.md has a row for the `event` field').toBeDefined();
    const listed = [...row!.matchAll(/`([a-z-]+(?:\.[a-z-]+)+)`/g)].map((m) => m[1]);
    expect([...listed].sort()).toEqual([...GATEWAY_EVENTS].sort());
  });
});
