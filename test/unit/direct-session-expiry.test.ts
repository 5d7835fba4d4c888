/**
 * A direct session lives on its credential (watchDirectSession, src/gateway/credentials/direct-credentials.ts),
 * on the real clock faked by the test (vi's timers): it ends when the credential expires, not before; a renewal moves the
 * end; a revocation ends it at once; and stopping the watch leaves no timer behind.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { ConnectionConfig } from '../../src/config/connection.js';
import { type DirectCredentials, type DirectRecord, directIdentity, directRefusal, watchDirectSession } from '../../src/gateway/credentials/direct-credentials.js';
import { realClock } from '../../src/clock.js';
import { silentLogger } from '../../src/log.js';
import type { SessionEnd, TunnelSession } from '../../src/session/engine.js';

const MIN = 60_000;

function record(expiresInMs: number): DirectRecord {
  const now = Date.now();
  return {
    id: 'd1',
    connection: 'app',
    owner: { issuer: 'https://idp.example.com', subject: 'alice', kind: 'user', groups: ['dev'] },
    createdAt: new Date(now).toISOString(),
    expiresAt: new Date(now + expiresInMs).toISOString(),
    scram: { salt: '', iterations: 4096, storedKey: '', serverKey: '' },
  };
}

/** The credentials as the watch sees them: what it is told when one changes. */
function credentials() {
  let changed: ((r: DirectRecord | undefined) => void) | undefined;
  const creds = {
    clock: realClock,
    refusal: (r: DirectRecord) => directRefusal(r, realClock.now()),
    watch: (_id: string, onChange: (r: DirectRecord | undefined) => void) => {
      changed = onChange;
      return () => (changed = undefined);
    },
  } as unknown as DirectCredentials;
  return { creds, change: (r: DirectRecord | undefined) => changed?.(r), watching: () => changed !== undefined };
}

function watch(r: DirectRecord, mayUse = true) {
  const ends: SessionEnd[] = [];
  const { creds, change, watching } = credentials();
  const session = {
    id: 's1',
    identity: directIdentity(r),
    connection: { name: 'app' } as ConnectionConfig,
    channel: undefined as never, // the watch ends a session through end(), never by its channel
    remoteAddress: '127.0.0.1:1',
    log: silentLogger,
    signal: new AbortController().signal,
  } as TunnelSession;
  const stop = watchDirectSession({ session, credentials: creds, record: r, mayUse: () => mayUse, end: (e) => ends.push(e), log: silentLogger, logFields: {} });
  return { ends, change, watching, stop, session };
}

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe('watchDirectSession', () => {
  it('ends the session when its credential expires, not before, saying so', () => {
    const w = watch(record(30 * MIN));
    vi.advanceTimersByTime(30 * MIN - 1);
    expect(w.ends).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(w.ends.map((e) => e.reason)).toEqual(['token-expired']);
    expect(w.ends[0]!.message).toMatch(/^hoop: direct credential d1 expired at .*; the session is closed$/);
    expect(w.watching()).toBe(false);
  });

  it('ends at once a session whose credential expired already', () => {
    const w = watch(record(-1));
    expect(w.ends.map((e) => e.reason)).toEqual(['token-expired']);
  });

  it('moves the end with a renewal, and takes the renewed identity', () => {
    const first = record(10 * MIN);
    const w = watch(first);
    vi.advanceTimersByTime(9 * MIN);
    w.change({ ...first, expiresAt: new Date(Date.now() + 10 * MIN).toISOString() });
    expect(w.session.identity.expiresAt.getTime()).toBe(Date.now() + 10 * MIN);
    vi.advanceTimersByTime(10 * MIN - 1);
    expect(w.ends).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(w.ends.map((e) => e.reason)).toEqual(['token-expired']);
  });

  it('waits for an end further off than setTimeout can wait (about 24.8 days), without ending early', () => {
    const w = watch(record(40 * 24 * 60 * MIN));
    vi.advanceTimersByTime(40 * 24 * 60 * MIN - 1);
    expect(w.ends).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(w.ends.map((e) => e.reason)).toEqual(['token-expired']);
  });

  it('ends the session at once when the credential is revoked, or ended with its run', () => {
    const r = record(10 * MIN);
    const revoked = watch(r);
    revoked.change({ ...r, endedAt: new Date().toISOString(), endReason: 'revoked' } as DirectRecord);
    expect(revoked.ends.map((e) => e.reason)).toEqual(['access-revoked']);
    const ran = watch(r);
    ran.change({ ...r, endedAt: new Date().toISOString(), endReason: 'run-ended' } as DirectRecord);
    expect(ran.ends.map((e) => e.reason)).toEqual(['run-ended']);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('stopping the watch leaves no timer, and nothing ends the session afterwards', () => {
    const w = watch(record(10 * MIN));
    w.stop();
    expect(vi.getTimerCount()).toBe(0);
    vi.advanceTimersByTime(60 * MIN);
    expect(w.ends).toEqual([]);
  });
});
