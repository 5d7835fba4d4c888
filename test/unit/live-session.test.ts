/**
 * A live session as the index lists it: running while its relay runs, ending from the moment its
 * relay finished until every observer has heard (its recording cut, its index line written), then
 * ended; `hoop sessions … last` waits for an ending one rather than naming an older session.
 */
import { describe, expect, it } from 'vitest';
import type { ConnectionConfig } from '../../src/config/connection.js';
import { LiveSession, SessionEvents } from '../../src/gateway/sessions/live-session.js';

function liveSession(events: SessionEvents): LiveSession {
  return new LiveSession(
    {
      who: { session: 's1234567', subject: 'alice', issuer: 'https://idp.example', connection: 'app', remote: '127.0.0.1', via: 'exec' },
      identity: { subject: 'alice', issuer: 'https://idp.example', kind: 'user', groups: [], expiresAt: new Date(0), claims: {} },
      connection: { name: 'app', type: 'postgres' } as ConnectionConfig,
      origin: { connection: 'app', type: 'postgres', remote: '127.0.0.1', via: 'exec' },
      started: 0,
      readOnly: false,
      recordingFailed: false,
      judged: true,
    },
    events,
  );
}

describe('a live session as the index lists it', () => {
  it('is running, then ending while its observers are told how it ended, then ended', async () => {
    const events = new SessionEvents();
    let cut = (): void => undefined;
    events.observe({ ended: () => new Promise<void>((resolve) => (cut = resolve)) });
    const s = liveSession(events);
    expect(s.summarize()).toMatchObject({ reason: 'running', recording: 'none' });
    const outcome = { reason: 'client-terminated' as const, bytesFromClient: 1, bytesToClient: 2 };
    const told = events.ended(s, outcome);
    const ending = s.summarize();
    expect(ending.reason).toBe('ending');
    expect(ending.endedAt).toBeUndefined();
    cut();
    await told;
    expect(s.summarize(outcome)).toMatchObject({ reason: 'client-terminated', bytesFromClient: 1, bytesToClient: 2 });
  });
});
