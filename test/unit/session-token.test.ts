/**
 * The session expiry timer: a token valid for longer than setTimeout can wait (about 24.8 days)
 * neither fires early nor overflows; one already past its deadline ends the session at once with
 * the "token expired" message; stopping clears the timer.
 */
import { PassThrough } from 'node:stream';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { ConnectionConfig } from '../../src/config/connection.js';
import type { SessionEnd, TunnelSession } from '../../src/session/engine.js';
import { tokenExpiredEnd, watchSessionToken } from '../../src/gateway/sessions/session-token.js';
import type { Identity } from '../../src/identity.js';
import { TokenVerifier } from '../../src/gateway/identity/verify-token.js';
import { silentLogger } from '../../src/log.js';
import { TunnelChannel } from '../../src/tunnel/channel.js';
import { quietFor } from '../harness/wait.js';

const DAY = 86_400_000;
const warnings: Error[] = [];
const onWarning = (w: Error): void => void warnings.push(w);
process.on('warning', onWarning);
afterEach(() => {
  warnings.length = 0;
});

function session(expiresAt: Date, kind: Identity['kind'] = 'user'): TunnelSession {
  const identity: Identity = { subject: 'alice', issuer: 'https://idp.example.com', kind, groups: [], expiresAt, claims: {} };
  return {
    id: 's1',
    identity,
    connection: { name: 'app' } as ConnectionConfig,
    channel: new TunnelChannel(new PassThrough(), undefined, { peer: 'client' }),
    remoteAddress: '127.0.0.1:1',
    log: silentLogger,
    signal: new AbortController().signal,
  };
}

function watch(s: TunnelSession, ends: SessionEnd[], toleranceSeconds = 30) {
  return watchSessionToken({
    session: s,
    verifier: new TokenVerifier([]),
    toleranceSeconds: () => toleranceSeconds,
    mayUse: () => true,
    end: (e) => ends.push(e),
    log: silentLogger,
    logFields: { session: s.id },
  });
}

describe('watchSessionToken', () => {
  it('waits for tokens that live longer than setTimeout can wait, without overflowing', async () => {
    const ends: SessionEnd[] = [];
    const s = session(new Date(Date.now() + 40 * DAY));
    const w = watch(s, ends);
    expect(w.deadline.getTime()).toBe(s.identity.expiresAt.getTime() + 30_000);
    await quietFor(50); // a timer that overflowed would fire at once (after 1 ms): before this one, however busy the machine
    expect(ends).toEqual([]);
    expect(warnings.filter((x) => x.name === 'TimeoutOverflowWarning')).toEqual([]);
    w.stop();
    s.channel.destroy();
  });

  it('ends a session whose token is past exp plus tolerance at once, saying when it expired', () => {
    const ends: SessionEnd[] = [];
    const expired = new Date(Date.now() - 31_000);
    const s = session(expired);
    watch(s, ends);
    expect(ends).toHaveLength(1);
    expect(ends[0]).toMatchObject({ reason: 'token-expired', message: `hoop: your token expired at ${expired.toISOString()}; the session is closed`, hint: 'run `hoop login` and connect again' });
    s.channel.destroy();
  });

  it('honours the tolerance, and stop() clears the timer', async () => {
    vi.useFakeTimers();
    try {
      const ends: SessionEnd[] = [];
      const s = session(new Date(Date.now() - 800));
      const w = watch(s, ends, 1);
      expect(ends).toEqual([]);
      // Expired 0.8 s ago with 1 s of tolerance: it ends 0.2 s from now, not before.
      await vi.advanceTimersByTimeAsync(199);
      expect(ends).toEqual([]);
      await vi.advanceTimersByTimeAsync(1);
      expect(ends.map((e) => e.reason)).toEqual(['token-expired']);
      const t = session(new Date(Date.now() - 800));
      watch(t, ends, 1).stop();
      await vi.advanceTimersByTimeAsync(400); // past the moment the stopped watch would have ended it
      expect(ends).toHaveLength(1);
      t.channel.destroy();
      w.stop();
      s.channel.destroy();
    } finally {
      vi.useRealTimers();
    }
  });

  it('re-arms a wait longer than setTimeout can take, and ends the session at exp plus tolerance, not before', async () => {
    vi.useFakeTimers();
    try {
      const ends: SessionEnd[] = [];
      const s = session(new Date(Date.now() + 40 * DAY));
      const w = watch(s, ends);
      await vi.advanceTimersByTimeAsync(40 * DAY + 30_000 - 1);
      expect(ends).toEqual([]);
      await vi.advanceTimersByTimeAsync(1);
      expect(ends.map((e) => e.reason)).toEqual(['token-expired']);
      w.stop();
      s.channel.destroy();
    } finally {
      vi.useRealTimers();
    }
  });

  it('tells a workload how to get going again', () => {
    expect(tokenExpiredEnd(session(new Date(0), 'workload').identity).hint).toContain('fresh token');
  });
});
