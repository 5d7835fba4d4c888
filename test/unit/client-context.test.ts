/**
 * A client's `context` control message as the gateway records it: short string fields only,
 * cut at 4 KiB; anything else is ignored rather than recorded in part.
 */
import { describe, expect, it } from 'vitest';
import { clientContext } from '../../src/gateway/sessions/session-recording.js';

describe('client context', () => {
  it('keeps string fields with plain names, cut at 4 KiB', () => {
    expect(clientContext({ source: 'mcp', tool: 'run_sql', intent: 'why' })).toEqual({ source: 'mcp', tool: 'run_sql', intent: 'why' });
    expect(clientContext({ intent: 'x'.repeat(5000) })!.intent).toBe(`${'x'.repeat(4096)}…`);
  });

  it("ignores anything else: no fields, too many, odd names, a name of the event's own, values that are not strings", () => {
    for (const bad of [
      undefined,
      null,
      'text',
      [],
      {},
      Object.fromEntries(Array.from({ length: 9 }, (_, i) => [`f${i}`, 'v'])),
      { 'has space': 'v' },
      { t: 'end' },
      { at: '1' },
      { Tool: 'v' },
      { intent: 1 },
      { intent: { nested: 'v' } },
    ]) {
      expect(clientContext(bad)).toBeUndefined();
    }
  });
});
