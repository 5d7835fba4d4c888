/**
 * The demo's scripted session (src/demo/script.ts): a step that cannot be played at all — a connection that broke, a
 * command that threw, a table a broken policy let the agent drop — is a FAIL of its own, the script's exit 1 with the
 * gateway's log named, never an unexpected error (exit 70: seen once under a loaded CI).
 */
import { describe, expect, it } from 'vitest';
import { runDemoScript } from '../../src/demo/script.js';

describe('the demo script', () => {
  it('says FAIL for a step that throws and goes on to the next', async () => {
    let closed = false;
    const session = { run: () => Promise.reject(new Error('the connection broke')), close: () => void (closed = true) };
    const alerts = () => Promise.reject(new Error('hoop alerts ls failed'));
    const r = await runDemoScript(session, { alerts });
    expect(r.ok).toBe(false);
    expect(closed).toBe(true);
    expect(r.transcript.filter((l) => l.includes('FAIL') && l.includes('could not be played: the connection broke')).length).toBeGreaterThan(1);
    expect(r.transcript.some((l) => l.includes('the refusal burst could not be played'))).toBe(true);
    expect(r.transcript.at(-1)).toMatch(/^0 of \d+ expected outcomes happened\.$/);
  });
});
