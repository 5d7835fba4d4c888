/**
 * Which gateway events an alert rule counts, and what each weighs: one reading for the gateway's
 * alert monitor (src/gateway/alerts/alerts.ts) and `hoop policy test` (./evaluate.ts), so that a test
 * case's `alerts:` says what the gateway would raise.
 *
 * - `refused`: `statement.refused` (a statement or SSH command refused, by a rule or a review
 *   that did not approve it), weighing 1;
 * - `review-denied`: `review.decided` denied (not an access request's), weighing 1;
 * - `rows-read`: `statement.completed` with rows, weighing its rows, of statements that name the
 *   rule's `table` (`customers` names `public.customers` too) or any statement without one;
 * - `bytes-sent`: `session.bytes`, weighing the bytes the gateway sent a session's client since
 *   it was last told (any protocol, every byte; told every 10 s while bytes flow, see
 *   src/gateway/sessions/bytes-sent.ts), and `session.end` of a session never told of so (no `bytesTold`),
 *   weighing its `bytesToClient`;
 * - `first-use`: `agent.first-use`, an agent's first session on a connection for its person, weighing 1;
 * - `egress-refused`: `run.egress-refused`, a connection a contained run's command was refused, weighing 1;
 * - `off-hours`: a statement run or refused (`statement.completed`, `statement.refused`) at a time
 *   outside the rule's usual hours, weighing 1.
 */
import type { AlertEvent, AlertRule, UsualHours } from './alert-rules.js';

/** An event's fields, as the gateway emits them (src/gateway/audit/events.ts). */
export type AlertEventFields = Record<string, unknown>;

/** What `event` counts as for alert rules, if anything. */
function alertKindOf(event: string, f: AlertEventFields): AlertEvent | undefined {
  if (event === 'statement.refused' || event === 'runbook.refused') return 'refused';
  if (event === 'review.decided' && f.state === 'denied' && f.kind !== 'access') return 'review-denied';
  if (event === 'statement.completed' && typeof f.rows === 'number' && f.rows > 0) return 'rows-read';
  if ((event === 'session.bytes' || (event === 'session.end' && f.bytesTold === undefined)) && typeof f.bytesToClient === 'number' && f.bytesToClient > 0) return 'bytes-sent';
  if (event === 'agent.first-use') return 'first-use';
  if (event === 'run.egress-refused') return 'egress-refused';
  return undefined;
}

/** What an event of `kind` weighs in a rule's window. */
function alertWeight(kind: AlertEvent, f: AlertEventFields): number {
  return kind === 'rows-read' ? (f.rows as number) : kind === 'bytes-sent' ? (f.bytesToClient as number) : 1;
}

/**
 * What `event` weighs for `rule` at time `at` (0: the rule does not count it): the rule's kind,
 * its connections and table, and for `off-hours` the time (none given: not counted).
 */
export function alertWeightFor(rule: AlertRule, event: string, f: AlertEventFields, at?: Date): number {
  if (rule.event === 'off-hours') {
    const statement = event === 'statement.completed' || event === 'statement.refused';
    return statement && at !== undefined && rule.usual !== undefined && !withinUsualHours(rule.usual, at) && alertCounts(rule, f) ? 1 : 0;
  }
  const kind = alertKindOf(event, f);
  return kind === rule.event && alertCounts(rule, f) ? alertWeight(kind, f) : 0;
}

/** Whether `at` falls in `usual` hours (on a usual day, in its time zone; a window past midnight belongs to the day it starts). */
export function withinUsualHours(usual: UsualHours, at: Date): boolean {
  const parts = new Intl.DateTimeFormat('en-US', { timeZone: usual.timeZone, weekday: 'short', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' }).formatToParts(at);
  const part = (type: string): string => parts.find((p) => p.type === type)?.value ?? '';
  const day = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'].indexOf(part('weekday'));
  const minute = Number(part('hour')) * 60 + Number(part('minute'));
  const { fromMin, toMin, days } = usual;
  if (fromMin <= toMin) return days.includes(day) && minute >= fromMin && minute < toMin;
  // Past midnight: the evening on a usual day, or the early hours after one.
  return (days.includes(day) && minute >= fromMin) || (days.includes((day + 6) % 7) && minute < toMin);
}

/** Whether `rule` counts an event of its kind with fields `f`: its connections, and for `rows-read` its table. */
function alertCounts(rule: AlertRule, f: AlertEventFields): boolean {
  if (rule.connections && !rule.connections.includes(String(f.connection))) return false;
  if (rule.table === undefined) return true;
  const table = rule.table;
  // `*`: a statement whose tables hoop could not tell (it may read any).
  return Array.isArray(f.tables) && f.tables.some((t) => typeof t === 'string' && (t === '*' || t === table || t.endsWith(`.${table}`) || table.endsWith(`.${t}`)));
}

/** The key of what `rule` counts `f` against: the identity, with the run or the agent when the rule counts per run or agent. */
export function alertSubjectKey(per: AlertRule['per'], f: { subject?: unknown; issuer?: unknown; run?: unknown; agent?: unknown }): string | undefined {
  if (typeof f.subject !== 'string' || typeof f.issuer !== 'string') return undefined;
  const person = `${f.issuer}\n${f.subject}`;
  if (per === 'identity') return person;
  if (per === 'run') return typeof f.run === 'string' ? `${person}\nrun\n${f.run}` : undefined;
  return typeof f.agent === 'string' ? `${person}\nagent\n${f.agent}` : undefined;
}
