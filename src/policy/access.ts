/**
 * Who may use which connection, decided by the bundle's `access` rules. Deny by default: an
 * identity no rule admits gets nothing, and `*` must be written out to admit everyone signed in.
 *
 * @see /work/shared/ARCHITECTURE.md ("Policy as code": access)
 */
import { loosestLimits, type SessionLimits } from './limits.js';
import type { AccessRule, Policy, Who } from './schema.js';

/** What an identity may do on a connection. */
export interface AccessGrant {
  mode: 'read-only' | 'read-write';
  /** The rule that gave the mode (the first admitting rule with that mode). */
  rule: string;
  /** The longest session any admitting rule allows; absent when one of them sets no limit. */
  maxSessionSeconds?: number;
  /** Every admitting rule, in policy order. */
  rules: string[];
  /** Server timeouts: the longest among admitting rules; a setting one of them leaves unlimited is unlimited. */
  limits: SessionLimits;
}

/** True when `rule` admits `who` (by subject, `*`, email or group), whatever the connection. */
export function admits(rule: AccessRule, who: Who): boolean {
  if (rule.subjects.includes('*') || rule.subjects.includes(who.subject)) return true;
  if (who.email !== undefined && rule.emails.includes(who.email.toLowerCase())) return true;
  return who.groups.some((g) => rule.groups.includes(g));
}

/**
 * The access `who` has to `connection`, or undefined (deny) when no rule admits them or the
 * policy defines no such connection. When several rules admit, the least restrictive mode wins
 * (read-write over read-only) and the longest session among them applies.
 */
export function accessFor(policy: Policy, who: Who, connection: string): AccessGrant | undefined {
  if (!policy.connections.some((c) => c.name === connection)) return undefined;
  const admitting = policy.access.filter((r) => (r.connections.includes('*') || r.connections.includes(connection)) && admits(r, who));
  if (admitting.length === 0) return undefined;
  const mode = admitting.some((r) => r.mode === 'read-write') ? 'read-write' : 'read-only';
  const rule = admitting.find((r) => r.mode === mode)!.name;
  const unlimited = admitting.some((r) => r.maxSessionSeconds === undefined);
  const maxSessionSeconds = unlimited ? undefined : Math.max(...admitting.map((r) => r.maxSessionSeconds!));
  return { mode, rule, ...(maxSessionSeconds !== undefined ? { maxSessionSeconds } : {}), rules: admitting.map((r) => r.name), limits: loosestLimits(admitting.map((r) => r.limits ?? {})) };
}
