/**
 * The field schemas the policy's sections share (./schema.ts, ./alert-rules.ts): names, lists,
 * whole numbers, times, notification targets; each with the message a policy author reads.
 */
import * as z from 'zod';
import { recordObject } from '../stored-record.js';
import { parseTimeSetting } from './limits.js';

/**
 * Where a review's request and decision are sent: a generic JSON body, or one Slack's incoming
 * webhooks take. As the gateway keeps it with a review (`hoop.reviews.settings`), read back with
 * this schema; a policy writes it as {@link notifySchema} checks.
 */
export const reviewNotifySchema = recordObject({
  /** An http(s) URL, or a secret reference to one (`${env:SLACK_WEBHOOK}`), resolved by the gateway. */
  url: z.string(),
  format: z.enum(['json', 'slack']),
});
export type ReviewNotify = z.infer<typeof reviewNotifySchema>;

/** Names of access rules, statement rules and tests. */
export const RULE_NAME = /^[A-Za-z0-9][A-Za-z0-9-_.:]{0,62}$/;

export const nonEmpty = (what: string) =>
  z
    .string({ error: `must be ${what}` })
    .trim()
    .min(1, { error: `must be ${what}` });
export const nameSchema = z.string({ error: 'must be a name' }).regex(RULE_NAME, {
  error: 'must be 1-63 characters of letters, digits, "-", "_", ".", ":" starting with a letter or digit',
});
export const list = (what: string) => z.array(nonEmpty(what));
export const lowerName = (what: string) => nonEmpty(what).transform((v) => v.toLowerCase());
export const wholeNumber = (what: string, min: number, max: number) =>
  z
    .number({ error: `must be ${what}` })
    .int({ error: 'must be a whole number' })
    .min(min, { error: `must be at least ${min}` })
    .max(max, { error: `must be at most ${max}` });

/** A time setting from `min` to `max` ms, written as a PostgreSQL time (`30s`, `15min`) or a number of seconds; in ms. */
export const timeBetween = (min: number, max: number, what: string) =>
  z.union([z.number(), z.string()], { error: `must be a time such as ${what} (or a number of seconds)` }).transform((v, ctx) => {
    const ms = typeof v === 'number' ? Math.round(v * 1000) : parseTimeSetting(v);
    if (ms === undefined || !Number.isFinite(ms) || ms < min || ms > max) {
      ctx.addIssue({ code: 'custom', message: `must be a time from ${min / 1000}s to ${max / 1000}s, such as ${what}` });
      return z.NEVER;
    }
    return ms;
  });

export const notifySchema = z.strictObject({
  url: z.string({ error: 'must be an http(s) URL or a secret reference like ${env:SLACK_WEBHOOK}' }).check((ctx) => {
    if (/^\$\{(env|file):[^}]+\}$/.test(ctx.value)) return;
    let ok = false;
    try {
      ok = ['http:', 'https:'].includes(new URL(ctx.value).protocol);
    } catch {
      ok = false;
    }
    if (!ok) ctx.issues.push({ code: 'custom', input: ctx.value, message: 'must be an http(s) URL or a secret reference like ${env:SLACK_WEBHOOK}' });
  }),
  format: z.enum(['json', 'slack'], { error: "must be json (a generic body) or slack (an incoming webhook's body)" }).default('json'),
});
