/** Whether an `ssh` or `mcp` rule applies to a session: the connections, subjects, groups and principal it names (each it names must hold). */
import { listNames } from '../glob.js';
import { principalMatches, type PrincipalMatch } from './principal.js';
import type { Who } from './schema.js';

/** The fields that narrow a rule to some sessions. */
export interface RuleScope extends PrincipalMatch {
  connections?: string[];
  subjects?: string[];
  groups?: string[];
}

/** Whether a rule scoped by `m` applies to `who`'s sessions on `connection`. */
export function ruleApplies(m: RuleScope, who: Who, connection: string): boolean {
  return (
    (!m.connections || listNames(m.connections, connection)) &&
    (!m.subjects || listNames(m.subjects, who.subject)) &&
    (!m.groups || m.groups.some((g) => who.groups.includes(g))) &&
    principalMatches(m, who.principal)
  );
}
