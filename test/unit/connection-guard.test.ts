/**
 * The gateway's bound on connections no accepted token came on, per source: an IPv4 address
 * (however the socket spells it) or an IPv6 /64, which one host holds whole. Fake sockets stand in
 * for TCP ones; timers are fake, so the first-request deadline is crossed without waiting.
 */
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ConnectionGuard } from '../../src/gateway/connection-guard.js';

/** A socket from `remoteAddress` that records whether the guard closed it. */
function socketFrom(remoteAddress: string): Socket & { closedByGuard: boolean } {
  const s = Object.assign(new EventEmitter(), { remoteAddress, closedByGuard: false }) as unknown as Socket & { closedByGuard: boolean };
  s.destroy = (() => {
    s.closedByGuard = true;
    s.emit('close');
    return s;
  }) as unknown as typeof s.destroy;
  return s;
}

beforeEach(() => vi.useFakeTimers());
afterEach(() => vi.useRealTimers());

describe('the connections one source holds before a token', () => {
  it('counts an IPv6 /64 as one source, and an IPv4 address as one however it is spelt', () => {
    const guard = new ConnectionGuard({ ms: 10_000, perAddress: 2 });
    expect(guard.arrived(socketFrom('2001:db8:1:2::1'))).toBe(true);
    expect(guard.arrived(socketFrom('2001:db8:1:2:ffff::9'))).toBe(true);
    const third = socketFrom('2001:db8:1:2::abcd');
    expect(guard.arrived(third)).toBe(false);
    expect(third.closedByGuard).toBe(true);
    // Another /64 is another source.
    expect(guard.arrived(socketFrom('2001:db8:1:3::1'))).toBe(true);
    expect(guard.arrived(socketFrom('192.0.2.7'))).toBe(true);
    expect(guard.arrived(socketFrom('::ffff:192.0.2.7'))).toBe(true);
    expect(guard.arrived(socketFrom('192.0.2.7'))).toBe(false);
  });

  it('closes a silent connection at its deadline, and frees its place', () => {
    const guard = new ConnectionGuard({ ms: 10_000, perAddress: 1 });
    const silent = socketFrom('192.0.2.8');
    expect(guard.arrived(silent)).toBe(true);
    expect(guard.arrived(socketFrom('192.0.2.8'))).toBe(false);
    vi.advanceTimersByTime(9_999);
    expect(silent.closedByGuard).toBe(false);
    vi.advanceTimersByTime(1);
    expect(silent.closedByGuard).toBe(true);
    expect(guard.arrived(socketFrom('192.0.2.8'))).toBe(true);
  });
});
