/**
 * Alert rules (`alerts:` in the policy): what the gateway counts per identity, run or agent, and
 * what it does at the count (see src/gateway/alerts/alerts.ts; the matching of events: ./alert-match.ts).
 */
import * as z from 'zod';
import { list, lowerName, nameSchema, notifySchema, type ReviewNotify, timeBetween, wholeNumber } from './schema-fields.js';

/**
 * What an alert counts: statements and SSH commands refused (by a rule, or a review that did not
 * approve them), reviews denied, or rows read (the rows the client received from statements that
 * name `table`, or from any statement), bytes sent (what the gateway sent a session's client,
 * counted as the session ends), statements run outside the usual hours (`off-hours`), or an
 * agent's first session on a connection (`first-use`), or a connection a contained run's command
 * asked for outside `runs.egress` (`egress-refused`).
 */
export const ALERT_EVENTS = ['refused', 'review-denied', 'rows-read', 'bytes-sent', 'off-hours', 'first-use', 'egress-refused'] as const;

/** Days of the week, as `days:` names them (Sunday first, as `Date.getDay` counts them). */
export const WEEKDAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'] as const;

/** The usual hours of an `off-hours` rule: from `fromMin` to `toMin` (minutes after midnight; past midnight when `toMin` is smaller) on `days`, in `timeZone`. */
export interface UsualHours {
  fromMin: number;
  toMin: number;
  /** 0 (Sunday) to 6. */
  days: number[];
  /** An IANA time zone (`Europe/Paris`), or UTC. */
  timeZone: string;
}
export type AlertEvent = (typeof ALERT_EVENTS)[number];

/** Whose events an alert counts together: one person's (with their agents'), one run's, one agent's (by name, across runs). */
export const ALERT_SCOPES = ['identity', 'run', 'agent'] as const;

/**
 * An alert rule (`alerts:`): `count` events of kind `event` within `withinMs` by one `per` raise
 * the alert; it says so on the audit stream and to `notify`, and with `suspend` ends that
 * identity's (run's, agent's) sessions and refuses new ones until a member of `clearedBy` clears it.
 */
export interface AlertRule {
  name: string;
  event: AlertEvent;
  /** Events counted, or for `rows-read`, rows. */
  count: number;
  /** For `rows-read`: only statements that name this table (`table` or `schema.table`, lower-case). */
  table?: string;
  /** For `off-hours`: the usual hours; statements outside them count. */
  usual?: UsualHours;
  withinMs: number;
  per: (typeof ALERT_SCOPES)[number];
  /** Only events on these connections count (absent: all). */
  connections?: string[];
  suspend: boolean;
  /** Groups whose members may clear it (empty: the policy's `recording.auditors`). */
  clearedBy: string[];
  notify: ReviewNotify[];
}

function knownTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

/** The usual hours of an `off-hours` rule's `when`, as {@link AlertRule.usual} keeps them. */
export function usualHoursOf(when: { hours?: string; days?: Array<(typeof WEEKDAYS)[number]>; timezone?: string }): UsualHours | undefined {
  if (when.hours === undefined) return undefined;
  const [from, to] = when.hours.split('-').map((t) => Number(t.slice(0, 2)) * 60 + Number(t.slice(3)));
  return { fromMin: from!, toMin: to!, days: (when.days ?? WEEKDAYS).map((d) => WEEKDAYS.indexOf(d)), timeZone: when.timezone ?? 'UTC' };
}

/** One alert rule (see {@link AlertRule}). */
export const alertRuleSchema = z.strictObject({
  name: nameSchema,
  when: z
    .strictObject({
      event: z.enum(ALERT_EVENTS, { error: `must be one of ${ALERT_EVENTS.join(', ')}` }),
      count: wholeNumber('a number of events (rows for rows-read, bytes for bytes-sent)', 1, 1_000_000_000_000),
      within: timeBetween(1_000, 7 * 86_400_000, '10min'),
      table: lowerName('a table name (table or schema.table)').optional(),
      hours: z
        .string({ error: 'must be the usual hours, such as 08:00-19:00' })
        .regex(/^([01]\d|2[0-3]):[0-5]\d-([01]\d|2[0-3]):[0-5]\d$/, { error: 'must be the usual hours, such as 08:00-19:00 (24-hour clock)' })
        .optional(),
      days: z
        .array(z.enum(WEEKDAYS, { error: `must be one of ${WEEKDAYS.join(', ')}` }), { error: 'must list the usual days, such as [mon, tue, wed, thu, fri]' })
        .min(1, { error: 'must list at least one day' })
        .optional(),
      timezone: z.string({ error: 'must be a time zone such as Europe/Paris or UTC' }).refine(knownTimeZone, { error: 'must be a time zone such as Europe/Paris or UTC (an IANA name)' }).optional(),
    })
    .refine((w) => w.table === undefined || w.event === 'rows-read', { error: 'table: is for event: rows-read (the rows read from statements that name it)', path: ['table'] })
    .refine((w) => (w.hours !== undefined) === (w.event === 'off-hours'), {
      error: 'event: off-hours needs hours: (the usual hours, such as 08:00-19:00), and hours: is for off-hours only',
      path: ['hours'],
    })
    .refine((w) => w.event === 'off-hours' || (w.days === undefined && w.timezone === undefined), { error: 'days: and timezone: are for event: off-hours', path: ['days'] }),
  per: z.enum(ALERT_SCOPES, { error: `must be one of ${ALERT_SCOPES.join(', ')}` }).default('identity'),
  connections: list('a connection name').min(1, { error: 'must list at least one connection (or leave it out: all)' }).optional(),
  suspend: z.boolean({ error: 'must be true (the sessions end and new ones are refused until someone clears it) or false' }).default(false),
  clearedBy: list('a group name').optional(),
  notify: z.array(notifySchema, { error: 'must be a list of { url, format }' }).max(10, { error: 'must list at most 10 targets' }).optional(),
});
