/**
 * Who may use which connection, decided by the bundle's `access` rules. Deny by default: an
 * identity no rule admits gets nothing, and `*` must be written out to admit everyone signed in.
 *
 * @see docs/internals.md (§4: access)
 */
import { realClock } from '../clock.js';
import { listNames } from '../glob.js';
import { loosestLimits, type SessionLimits } from './limits.js';
import { principalMatches } from './principal.js';
import type { AccessRule, Policy, RowLimit, Who } from './schema.js';
import { databaseAccessOf, type DatabaseAccess } from './database-access.js';

/** Sessions one identity may have open at once on a gateway when its access rule says nothing: a third of PostgreSQL's default max_connections, so no one identity's idle sessions take every upstream slot. */
export const DEFAULT_MAX_SESSIONS_PER_IDENTITY = 32;

/** What an identity may do on a connection. */
export interface AccessGrant {
  mode: 'read-only' | 'read-write';
  /** The rule that gave the mode (the first admitting rule with that mode). */
  rule: string;
  /** The longest session any admitting rule allows; absent when one of them sets no limit. */
  maxSessionSeconds?: number;
  /** Every admitting rule, in policy order. */
  rules: string[];
  /** Sessions the identity may have open at once on a gateway: the most among admitting rules (each's default {@link DEFAULT_MAX_SESSIONS_PER_IDENTITY}). */
  maxSessions: number;
  /** Server timeouts: the longest among admitting rules; a setting one of them leaves unlimited is unlimited. */
  limits: SessionLimits;
  /** The blast-radius guard on every write: the loosest among admitting rules; absent when one of them sets none. */
  rowLimit?: RowLimit;
  /** The access rests on a temporary grant (an approved request): it ends then (ms since the epoch), and this request gave it. */
  until?: number;
  request?: string;
  /** PostgreSQL: the database roles and databases the session may pick (./database-access.ts). */
  databaseAccess?: DatabaseAccess;
}

/** An approved access request: the requestable rule it opens, on which connection, how, until when. */
export interface TemporaryAccess {
  rule: string;
  connection: string;
  mode: 'read-only' | 'read-write';
  /** Ms since the epoch. */
  until: number;
  /** The request (review) id. */
  request: string;
}

/**
 * True when `rule` admits `who` (by subject, `*`, email or group, and the rule's principal keys
 * for how the session came), whatever the connection.
 */
export function admits(rule: AccessRule, who: Who): boolean {
  return principalMatches(rule, who.principal) && namesPerson(rule, who);
}

/** The people a list admits: by subject (`*`: everyone signed in), by email (whatever its case), by group. */
export interface PeopleList {
  subjects: readonly string[];
  emails: readonly string[];
  groups: readonly string[];
}

/** True when `list` names `who` (a connection's `allow`, an access rule's people). */
export function namesPerson(list: PeopleList, who: { subject: string; email?: string | undefined; groups: readonly string[] }): boolean {
  if (listNames(list.subjects, who.subject)) return true;
  const email = who.email?.toLowerCase();
  if (email !== undefined && list.emails.some((e) => e.toLowerCase() === email)) return true;
  return who.groups.some((g) => list.groups.includes(g));
}

/**
 * The access `who` has to `connection`, or undefined (deny) when no rule admits them or the
 * policy defines no such connection. When several rules admit, the least restrictive mode wins
 * (read-write over read-only) and the longest session among them applies.
 */
export function accessFor(policy: Policy, who: Who, connection: string, temporary: readonly TemporaryAccess[] = [], now = realClock.now()): AccessGrant | undefined {
  const target = policy.connections.find((c) => c.name === connection);
  if (!target) return undefined;
  // A requestable rule admits only through a live grant for it on this connection, in the mode granted (never more than the rule's).
  const admitting: Array<{ rule: AccessRule; mode: AccessRule['mode']; grant?: TemporaryAccess }> = [];
  for (const r of policy.access) {
    if (!listNames(r.connections, connection) || !admits(r, who)) continue;
    if (!r.requestable) {
      admitting.push({ rule: r, mode: r.mode });
      continue;
    }
    // The grant that gives the most (read-write, where the rule allows it), and of those the one that lasts longest.
    const live = temporary.filter((t) => t.rule === r.name && t.connection === connection && t.until > now).sort((a, b) => b.until - a.until);
    const best = (r.mode === 'read-write' ? live.find((t) => t.mode === 'read-write') : undefined) ?? live[0];
    if (best) admitting.push({ rule: r, mode: r.mode === 'read-write' ? best.mode : 'read-only', grant: best });
  }
  if (admitting.length === 0) return undefined;
  const mode = admitting.some((a) => a.mode === 'read-write') ? 'read-write' : 'read-only';
  const giving = admitting.filter((a) => a.mode === mode);
  const rule = giving[0]!.rule.name;
  // A standing rule that gives the mode: no end; else the grant that lasts longest.
  const grant = giving.some((a) => !a.grant) ? undefined : giving.map((a) => a.grant!).sort((a, b) => b.until - a.until)[0];
  // The longest session and timeouts of the admitting rules apply; but a mode only a grant gives
  // keeps the limits of the rules that grant it (a standing rule of another mode never loosens them).
  const rules = (grant ? giving : admitting).map((a) => a.rule);
  const unlimited = rules.some((r) => r.maxSessionSeconds === undefined);
  const maxSessionSeconds = unlimited ? undefined : Math.max(...rules.map((r) => r.maxSessionSeconds!));
  const rowLimit = loosestRowLimit(rules);
  const maxSessions = Math.max(...rules.map((r) => r.maxSessions ?? DEFAULT_MAX_SESSIONS_PER_IDENTITY));
  return {
    mode,
    rule,
    ...(maxSessionSeconds !== undefined ? { maxSessionSeconds } : {}),
    maxSessions,
    rules: admitting.map((a) => a.rule.name),
    limits: loosestLimits(rules.map((r) => r.limits ?? {})),
    ...(rowLimit ? { rowLimit } : {}),
    ...(grant ? { until: grant.until, request: grant.request } : {}),
    // Only the rules that give the session's mode, and of those the standing ones unless the access rests on a grant: a read-only rule's role is never used read-write, nor a grant's after it ends.
    ...(target.type === 'postgres'
      ? {
          databaseAccess: databaseAccessOf(
            target,
            (grant ? giving : giving.filter((a) => !a.grant)).map((a) => a.rule),
          ),
        }
      : {}),
  };
}

/**
 * The requestable rule under which `who` may ask for `mode` on `connection`: the first that
 * admits them, names the connection and allows the mode. Undefined when none does.
 */
export function requestableRule(policy: Policy, who: Who, connection: string, mode: AccessRule['mode']): AccessRule | undefined {
  return policy.access.find((r) => r.requestable && listNames(r.connections, connection) && admits(r, who) && (mode === 'read-only' || r.mode === 'read-write'));
}

/** The loosest row limit of `rules`: none when one sets none, else the most rows (a review over it before a refusal). */
function loosestRowLimit(rules: readonly AccessRule[]): RowLimit | undefined {
  let loosest: RowLimit | undefined;
  for (const r of rules) {
    if (r.maxAffectedRows === undefined) return undefined;
    const limit: RowLimit = { maxRows: r.maxAffectedRows, overLimit: r.overLimit ?? 'deny', rule: r.name };
    if (!loosest || limit.maxRows > loosest.maxRows || (limit.maxRows === loosest.maxRows && limit.overLimit === 'review')) loosest = limit;
  }
  return loosest;
}
