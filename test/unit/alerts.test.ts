/**
 * The alert monitor's counting (src/gateway/alerts/alerts.ts) on one gateway: a rule whose count is past
 * the evidence it keeps still raises at its count; what comes while an alert is open is added to
 * it; and where refusals of credentials come from is counted by address, an IPv6 /64 as one.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { AlertMonitor, FileAlertStore } from '../../src/gateway/alerts/alerts.js';
import { sourceOf } from '../../src/gateway/front/peer-address.js';
import { GatewayEvents } from '../../src/gateway/audit/events.js';
import { WebhookSender } from '../../src/gateway/reviews/review-notify.js';
import { createLogger } from '../../src/log.js';
import type { AlertRule, Policy } from '../../src/policy/schema.js';
import { emptyPolicy } from '../harness/policy.js';
import { usualHoursOf } from '../../src/policy/alert-rules.js';
import { withinUsualHours } from '../../src/policy/alert-match.js';

const dir = mkdtempSync(join(tmpdir(), 'hoop-alerts-unit-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const log = createLogger({ level: 'error', sink: { write: () => undefined } });

/** An alert monitor over `rules` with a file store of its own (`name`), on the clock `now`; `raised` collects its alert.raised events. */
async function monitorOf(name: string, rules: AlertRule[], now: () => number = Date.now) {
  const events = new GatewayEvents(undefined, log);
  const raised: Array<Record<string, unknown>> = [];
  events.listen((event, fields) => {
    if (event === 'alert.raised') raised.push(fields);
  });
  const policy: Policy = emptyPolicy({ alerts: rules });
  const store = new FileAlertStore(join(dir, name), log, now);
  const monitor = await AlertMonitor.open({ store, policy: () => policy, events, webhooks: new WebhookSender({ log, resolveUrl: async (u) => u }), log, now });
  return { events, raised, store, monitor };
}

/** An alert rule of `event`, counting `count` within `withinMs` per identity, with `more`. */
const ruleOf = (name: string, event: AlertRule['event'], count: number, withinMs: number, more: Partial<AlertRule> = {}): AlertRule => ({
  name,
  event,
  count,
  withinMs,
  per: 'identity',
  suspend: false,
  clearedBy: [],
  notify: [],
  ...more,
});

describe('alert counting', () => {
  it('raises a rule of 120 events at the 120th (more than the evidence it keeps), once, and adds what comes after to the open alert', async () => {
    const { events, raised, store, monitor } = await monitorOf('a', [ruleOf('many', 'refused', 120, 600_000)]);
    const refuse = (i: number) =>
      events.emit('statement.refused', { session: `s${i}`, subject: 'mallory', issuer: 'https://idp', connection: 'app', action: 'deny', rule: 'r', reason: 'no', message: '' });
    for (let i = 0; i < 119; i++) refuse(i);
    await monitor.counted();
    expect(raised).toHaveLength(0);
    refuse(119);
    await monitor.counted();
    expect(raised).toHaveLength(1);
    expect(raised[0]).toMatchObject({ count: 120, subject: 'mallory' });
    expect((raised[0]!.evidence as unknown[]).length).toBe(50);
    for (let i = 0; i < 5; i++) refuse(200 + i);
    await monitor.counted();
    expect(raised).toHaveLength(1);
    const [open] = monitor.list({ subject: 'x', issuer: 'y', kind: 'user', groups: [], expiresAt: new Date(), claims: {} }, true);
    expect(open).toMatchObject({ count: 125, state: 'open' });
    await store.flushed();
  });
});

describe('rows-read alerts', () => {
  it('weigh each statement by the rows it read, only from statements that name the table, within the window', async () => {
    let now = Date.parse('2026-11-25T10:00:00Z');
    const { events, raised, store, monitor } = await monitorOf('rows', [ruleOf('bulk-customers', 'rows-read', 1000, 60_000, { table: 'customers' })], () => now);
    const read = (rows: number, tables: string[]) =>
      events.emit('statement.completed', { session: 's1', subject: 'mallory', issuer: 'https://idp', connection: 'app', verb: 'SELECT', rows, changed: 0, tables });
    read(600, ['public.customers']);
    read(5000, ['orders']); // another table: not counted
    read(0, ['customers']); // nothing read
    await monitor.counted();
    now += 61_000; // the first 600 rows leave the window
    read(500, ['customers', 'orders']);
    await monitor.counted();
    expect(raised).toHaveLength(0);
    read(500, ['customers']);
    await monitor.counted();
    expect(raised).toHaveLength(1);
    expect(raised[0]).toMatchObject({ counted: 'rows-read', count: 1000, subject: 'mallory' });
    expect((raised[0]!.evidence as Array<{ rows: number; tables: string[] }>).map((e) => e.rows)).toEqual([500, 500]);
    await store.flushed();
  });
});

describe('bytes-sent alerts', () => {
  it('weigh the bytes the gateway sent a session as they are told (session.bytes), and a short session by its session.end, never both', async () => {
    const { events, raised, monitor } = await monitorOf('bytes', [ruleOf('big-pulls', 'bytes-sent', 50_000_000, 3_600_000)]);
    const who = { subject: 'mallory', issuer: 'https://idp', connection: 'bastion' };
    const told = (session: string, bytesToClient: number) => events.emit('session.bytes', { session, ...who, bytesToClient, total: bytesToClient });
    told('s1', 20_000_000);
    told('s1', 10_000_000);
    events.emit('session.end', { session: 's1', ...who, reason: 'client-terminated', durationMs: 1, bytesToClient: 30_000_000, bytesTold: 30_000_000 });
    events.emit('session.end', { session: 's2', ...who, reason: 'client-terminated', durationMs: 1, bytesToClient: 0 });
    await monitor.counted();
    expect(raised).toHaveLength(0);
    events.emit('session.end', { session: 's3', ...who, reason: 'client-terminated', durationMs: 1, bytesToClient: 19_000_000 });
    await monitor.counted();
    expect(raised).toHaveLength(0);
    told('s4', 6_000_000);
    await monitor.counted();
    expect(raised).toEqual([expect.objectContaining({ counted: 'bytes-sent', count: 55_000_000, sessions: ['s1', 's3', 's4'] })]);
  });
});

describe('off-hours alerts', () => {
  const usual = (hours: string, o: { days?: Array<'sun' | 'mon' | 'tue' | 'wed' | 'thu' | 'fri' | 'sat'>; timezone?: string } = {}) => usualHoursOf({ hours, ...o })!;

  it('tell the usual hours in the rule’s time zone, on its days, a window past midnight belonging to the day it starts', () => {
    const office = usual('08:00-19:00', { days: ['mon', 'tue', 'wed', 'thu', 'fri'], timezone: 'Europe/Paris' });
    expect(withinUsualHours(office, new Date('2026-11-25T07:30:00Z'))).toBe(true); // Wednesday 08:30 in Paris
    expect(withinUsualHours(office, new Date('2026-11-25T06:30:00Z'))).toBe(false); // 07:30 in Paris
    expect(withinUsualHours(office, new Date('2026-11-25T18:00:00Z'))).toBe(false); // 19:00 in Paris: the end is outside
    expect(withinUsualHours(office, new Date('2026-11-28T10:00:00Z'))).toBe(false); // a Saturday
    const night = usual('22:00-06:00', { days: ['fri'] });
    expect(withinUsualHours(night, new Date('2026-11-27T23:00:00Z'))).toBe(true); // Friday 23:00
    expect(withinUsualHours(night, new Date('2026-11-28T05:59:00Z'))).toBe(true); // Saturday 05:59, after Friday
    expect(withinUsualHours(night, new Date('2026-11-29T05:00:00Z'))).toBe(false); // Sunday early: after Saturday
  });

  it('count statements run or refused outside the usual hours, and nothing else', async () => {
    let now = Date.parse('2026-11-25T12:00:00Z'); // a Wednesday at noon, UTC
    const { events, raised, monitor } = await monitorOf('hours', [ruleOf('night-work', 'off-hours', 2, 3_600_000, { usual: usual('08:00-19:00') })], () => now);
    const who = { session: 's1', subject: 'mallory', issuer: 'https://idp', connection: 'app' };
    events.emit('statement.completed', { ...who, verb: 'SELECT', rows: 1, changed: 0, tables: [] }); // at noon: usual
    now = Date.parse('2026-11-25T23:00:00Z');
    events.emit('session.start', { ...who, kind: 'user', groups: [], type: 'postgres', recorded: true }); // not a statement
    events.emit('statement.completed', { ...who, verb: 'SELECT', rows: 0, changed: 0, tables: [] });
    await monitor.counted();
    expect(raised).toHaveLength(0);
    events.emit('statement.refused', { ...who, action: 'deny', rule: 'no-drop', reason: 'no', message: '' });
    await monitor.counted();
    expect(raised).toEqual([expect.objectContaining({ rule: 'night-work', counted: 'off-hours', count: 2 })]);
  });
});

describe('sources of refused credentials', () => {
  it('are addresses, an IPv6 /64 counted as one', () => {
    expect(sourceOf('192.0.2.7')).toBe('192.0.2.7');
    expect(sourceOf('::ffff:192.0.2.7')).toBe('192.0.2.7');
    expect(sourceOf('2001:db8:1:2:3:4:5:6')).toBe('2001:db8:1:2::/64');
    expect(sourceOf('2001:0db8:0001:0002::ffff')).toBe('2001:db8:1:2::/64');
    expect(sourceOf('2001:db8:1:3::1')).not.toBe(sourceOf('2001:db8:1:2::1'));
  });
});
