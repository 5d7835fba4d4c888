/**
 * Who a session is, beyond the person: how it came to the gateway and, when an agent acts for the
 * person, which run and which agent. Rules of every kind (access, statements, masking, SSH) can
 * single them out with `via`, `agents` and `isolated`.
 *
 * - `connect` and `exec`: a person with their own credential (`hoop connect`'s port or any client
 *   of theirs; `hoop exec`). Which of the two is the client's word: both are the person, and a
 *   rule names both or neither.
 * - `direct`: a person's own PostgreSQL client at the gateway's port, with a direct credential
 *   the gateway minted for them (`hoop connect --direct`): no hoop on their machine in the path,
 *   so no record of the CLI's. The credential says it, never the client.
 * - `run` and `mcp`: an agent with a run credential the gateway issued (`hoop run`'s ports and
 *   hoop inside its command; `hoop mcp` with no run around it). These, the run, the agent's name
 *   and whether its command was contained come from the credential, never from the client (a
 *   run's direct credential is the run's: `run` or `mcp`).
 *
 * A rule's principal keys must all hold: `via` lists the ways in; `agents` lists globs of agent
 * names (`*`: any agent; a person's own session is never an agent); `isolated` holds only for a
 * run, contained (`true`) or not (`false`).
 */
import * as z from 'zod';
import { globMatches } from '../glob.js';
import type { Identity } from '../identity.js';
import { VIAS, type Via } from '../api/answers.js';

export { VIAS, type Via };

/** The ways in of a person with their own credential: the client names one. */
export const PERSON_VIAS: readonly Via[] = ['connect', 'exec'];

/** The ways in of an agent, with a run credential: the gateway names one. */
export const AGENT_VIAS = ['run', 'mcp'] as const;

/** The principal of a session, as the gateway asserts it. */
export interface Principal {
  via: Via;
  /** The run an agent acts in (absent for a person acting for themselves). */
  run?: string;
  /** The agent's name (lower case): `hoop run --agent NAME`, else its command's name. */
  agent?: string;
  /** For a run: whether its command was contained (its user's hoop credentials out of its reach). */
  isolated?: boolean;
}

/** The principal of a session opened with a direct credential minted for `identity`: its run's, or the person's own `direct`. */
export function directPrincipal(identity: Identity): Principal {
  return identity.run ? principalOf(identity) : { via: 'direct' };
}

/** A person's own session: what a rule sees when no principal is given. */
export const PERSON: Principal = { via: 'connect' };

/** The principal keys of a rule; every one given must hold. */
export interface PrincipalMatch {
  via?: Via[];
  /** Globs over the agent's name, lower case. */
  agents?: string[];
  isolated?: boolean;
}

/** True when every principal key of `m` holds for `p` (a person's own session when absent). */
export function principalMatches(m: PrincipalMatch, p: Principal = PERSON): boolean {
  if (m.via && !m.via.includes(p.via)) return false;
  if (m.agents) {
    const agent = p.agent;
    if (agent === undefined || !m.agents.some((g) => globMatches(g, agent))) return false;
  }
  if (m.isolated !== undefined && (p.run === undefined || p.isolated !== m.isolated)) return false;
  return true;
}

/** True when `m` sets any principal key (a rule for some principals only). */
export function namesPrincipal(m: PrincipalMatch): boolean {
  return m.via !== undefined || m.agents !== undefined || m.isolated !== undefined;
}

/** An agent's name as runs carry it: letters, digits, `.`, `_`, `-`; at most 64. */
export const AGENT_NAME = /^[a-z0-9][a-z0-9._-]{0,63}$/;

/** The agent name for `raw` (a command or a name given): lower case, the last path part, other characters as `-`; `agent` when nothing is left. */
export function agentName(raw: string): string {
  const base = raw.split(/[\\/]/).pop() ?? '';
  const name = base
    .toLowerCase()
    .replace(/[^a-z0-9._-]+/g, '-')
    .replace(/^[^a-z0-9]+/, '')
    .slice(0, 64);
  return name === '' ? 'agent' : name;
}

/** The principal keys as a policy file writes them (rules, access rules and masking entries take these). */
export const principalMatchFields = {
  via: z
    .array(z.enum(VIAS, { error: `must be one of ${VIAS.join(', ')}` }), { error: `must be a list of ${VIAS.join(', ')}` })
    .min(1, { error: 'must list at least one way in' })
    // Which of connect and exec a person's session is, is their client's word: a rule that tells them apart would bind only clients that tell the truth.
    .refine((v) => v.includes('connect') === v.includes('exec'), {
      error: "names connect or exec without the other: a person's client says which of the two it is, so the gateway cannot tell them apart; name both (a person's own sessions) or neither",
    })
    .optional(),
  agents: z
    .array(z.string({ error: 'must be an agent name or glob' }).trim().min(1, { error: 'must be an agent name or glob' }), { error: 'must be a list of agent names or globs' })
    .min(1, { error: 'must list at least one agent (or "*" for any)' })
    .transform((v) => v.map((s) => s.toLowerCase()))
    .optional(),
  isolated: z.boolean({ error: 'must be true (contained runs) or false (runs whose command was not contained)' }).optional(),
};

/** The principal keys of a parsed rule, without the absent ones. */
export function principalMatchOf(v: { via?: Via[] | undefined; agents?: string[] | undefined; isolated?: boolean | undefined }): PrincipalMatch {
  return { ...(v.via ? { via: v.via } : {}), ...(v.agents ? { agents: v.agents } : {}), ...(v.isolated !== undefined ? { isolated: v.isolated } : {}) };
}

/** A masking section's shape as {@link maskingFor} sees it: entries that may carry principal keys. */
interface MaskingEntries {
  columns: readonly PrincipalMatch[];
  names: readonly PrincipalMatch[];
  detectors: readonly PrincipalMatch[];
}

/** The sections {@link maskingFor} made, by the entries they keep: sessions alike share one (and its compiled rules). */
const maskingCache = new WeakMap<object, Map<string, unknown>>();

/**
 * The masking section as it applies to `p`: without the entries whose principal keys do not
 * hold. The same object for every principal that keeps the same entries (and `m` itself when it
 * keeps them all), so what is compiled from it is shared.
 */
export function maskingFor<M extends MaskingEntries>(m: M, p: Principal = PERSON): M {
  const keep = (list: readonly PrincipalMatch[]): boolean[] => list.map((e) => principalMatches(e, p));
  const kept = { columns: keep(m.columns), names: keep(m.names), detectors: keep(m.detectors) };
  const all = Object.values(kept).every((k) => k.every(Boolean));
  if (all) return m;
  const key = Object.values(kept)
    .map((k) => k.map((b) => (b ? '1' : '0')).join(''))
    .join('/');
  let byKey = maskingCache.get(m);
  if (!byKey) maskingCache.set(m, (byKey = new Map()));
  let out = byKey.get(key) as M | undefined;
  if (!out) {
    out = { ...m, columns: m.columns.filter((_, i) => kept.columns[i]), names: m.names.filter((_, i) => kept.names[i]), detectors: m.detectors.filter((_, i) => kept.detectors[i]) };
    byKey.set(key, out);
  }
  return out;
}

/**
 * The principal a policy test case (or `hoop policy check`) describes, undefined for the person's
 * own session, or what is wrong: `agent` and `isolated` describe an agent's run, so they go with
 * `via: run` or `mcp` (the default when either is given).
 */
export function describedPrincipal(as: { via?: Via | undefined; agent?: string | undefined; isolated?: boolean | undefined }): Principal | string | undefined {
  const agentish = as.agent !== undefined || as.isolated !== undefined;
  if (as.via === undefined && !agentish) return undefined;
  const via = as.via ?? 'run';
  if (!(AGENT_VIAS as readonly string[]).includes(via)) {
    return agentish ? `agent and isolated describe an agent's run: use them with via: run or mcp (not ${via})` : { via };
  }
  return { via, run: 'run-policy-test', agent: agentName(as.agent ?? 'agent'), isolated: as.isolated ?? true };
}

/**
 * The principal of a session of `identity`: a run's, from its credential; a person's own, by the
 * way in their client names (`connect` or `exec`; `connect` for anything else).
 */
export function principalOf(identity: Identity, claimed?: string): Principal {
  const run = identity.run;
  if (run) return { via: run.via, run: run.id, agent: run.agent, isolated: run.isolated };
  return { via: claimed !== undefined && (PERSON_VIAS as readonly string[]).includes(claimed) ? (claimed as Via) : 'connect' };
}
