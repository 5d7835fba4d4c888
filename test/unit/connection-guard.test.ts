/**
 * The gateway's guard of connections no identity stands behind yet (src/gateway/front/connection-guard.ts),
 * on a clock of the test's own: a connection that says nothing is closed at its deadline, not before;
 * one that spoke is not; an address holds only so many strangers, and a trusted connection is not one.
 */
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ConnectionGuard } from '../../src/gateway/front/connection-guard.js';
import { survive } from '../../src/gateway/front/survive.js';
import { loggedLines } from '../harness/stored-records.js';

/** A socket as the guard sees it: an address, destroy() (which closes it), and 'close'. */
function socket(remoteAddress = '10.0.0.1'): Socket & { destroyed: boolean } {
  const s = new EventEmitter() as EventEmitter & { remoteAddress: string; remotePort: number; destroyed: boolean; destroy: () => void };
  s.remoteAddress = remoteAddress;
  s.remotePort = 40_000;
  s.destroyed = false;
  s.destroy = () => {
    if (s.destroyed) return;
    s.destroyed = true;
    s.emit('close');
  };
  return s as unknown as Socket & { destroyed: boolean };
}

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe('ConnectionGuard', () => {
  it('closes a connection that says nothing at its deadline, not before', () => {
    const guard = new ConnectionGuard({ ms: 10_000, perAddress: 3 });
    const s = socket();
    expect(guard.arrived(s)).toBe(true);
    vi.advanceTimersByTime(9_999);
    expect(s.destroyed).toBe(false);
    vi.advanceTimersByTime(1);
    expect(s.destroyed).toBe(true);
  });

  it('leaves a connection that spoke (on its TLS socket, an alias of it) open past the deadline', () => {
    const guard = new ConnectionGuard({ ms: 1_000, perAddress: 3 });
    const raw = socket();
    const tls = new EventEmitter();
    guard.arrived(raw);
    guard.alias(tls, raw);
    vi.advanceTimersByTime(999);
    guard.spoke(tls);
    vi.advanceTimersByTime(60_000);
    expect(raw.destroyed).toBe(false);
    expect(vi.getTimerCount()).toBe(0);
  });

  it("runs a deadline once from started() (a balancer's connection, before its PROXY header), not again on arrival", () => {
    const guard = new ConnectionGuard({ ms: 1_000, perAddress: 3 });
    const s = socket();
    guard.started(s);
    vi.advanceTimersByTime(600);
    expect(guard.arrived(s)).toBe(true);
    vi.advanceTimersByTime(400);
    expect(s.destroyed).toBe(true);
  });

  it('clears the deadline of a connection that closed', () => {
    const guard = new ConnectionGuard({ ms: 1_000, perAddress: 3 });
    const s = socket();
    guard.arrived(s);
    s.destroy();
    expect(vi.getTimerCount()).toBe(0);
  });

  it('holds at most perAddress strangers from one address, at once: a fourth is cut on arrival, a place frees when one closes', () => {
    const guard = new ConnectionGuard({ ms: 10_000, perAddress: 3 });
    const three = [socket(), socket(), socket()];
    for (const s of three) expect(guard.arrived(s)).toBe(true);
    const fourth = socket();
    expect(guard.arrived(fourth)).toBe(false);
    expect(fourth.destroyed).toBe(true);
    // Another address has places of its own.
    expect(guard.arrived(socket('10.0.0.2'))).toBe(true);
    three[0]!.destroy();
    expect(guard.arrived(socket())).toBe(true);
  });

  it('does not count a connection an accepted credential came on, nor its deadline', () => {
    const guard = new ConnectionGuard({ ms: 10_000, perAddress: 1 });
    const known = socket();
    guard.arrived(known);
    guard.spoke(known);
    guard.trust(known);
    guard.trust(known); // once only
    expect(guard.arrived(socket())).toBe(true);
    expect(guard.arrived(socket())).toBe(false);
    // Once it closes, it is neither open nor known.
    known.destroy();
    expect(guard.arrived(socket())).toBe(false);
  });

  it('counts an IPv6 /64 as one source, and an IPv4 address as one however it is spelt', () => {
    const guard = new ConnectionGuard({ ms: 10_000, perAddress: 2 });
    expect(guard.arrived(socket('2001:db8:1:2::1'))).toBe(true);
    expect(guard.arrived(socket('2001:db8:1:2:ffff::9'))).toBe(true);
    const third = socket('2001:db8:1:2::abcd');
    expect(guard.arrived(third)).toBe(false);
    expect(third.destroyed).toBe(true);
    // Another /64 is another source.
    expect(guard.arrived(socket('2001:db8:1:3::1'))).toBe(true);
    expect(guard.arrived(socket('192.0.2.7'))).toBe(true);
    expect(guard.arrived(socket('::ffff:192.0.2.7'))).toBe(true);
    expect(guard.arrived(socket('192.0.2.7'))).toBe(false);
  });
});

describe('a listener registered through survive (the sixteenth attack: one request target threw in a listener and ended the process)', () => {
  it('ends what it was called for and logs, never throws', () => {
    const { log, lines } = loggedLines();
    const dropped: string[] = [];
    const listener = survive(
      log,
      'request',
      (what: string) => {
        throw new TypeError(`Invalid URL: ${what}`);
      },
      (what) => dropped.push(what),
    );
    expect(() => listener('http://[')).not.toThrow();
    expect(dropped).toEqual(['http://[']);
    expect(lines).toContainEqual(expect.objectContaining({ event: 'listener.failed', on: 'request' }));
  });
});
