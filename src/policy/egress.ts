/**
 * Where a contained run's command may connect (`runs.egress`): `host:port` entries, the host a
 * name (`api.anthropic.com`), a name's subdomains (`*.githubusercontent.com`), an IPv4 address or
 * a bracketed IPv6 one (`[2001:db8::1]`), the port a number or `*`. An entry with `agents` holds
 * for those agents' runs only. Nothing else is reached: the gateway itself always is.
 *
 * The gateway answers a run's entries (src/gateway/api/runs.ts); the run's hoop enforces them at
 * the only way out its command has (src/agent/egress-proxy.ts).
 */
import { isIP } from 'node:net';
import { globMatches } from '../glob.js';

/** One destination: a host (lower case; `*.` first for subdomains) and a port (`*`: any). */
export interface EgressDestination {
  host: string;
  port: number | '*';
}

/** An entry of `runs.egress`: destinations, for the runs of `agents` (globs) or of every agent. */
export interface EgressRule {
  to: string[];
  agents?: string[];
}

const LABEL = /^(?!-)[a-z0-9_-]{1,63}(?<!-)$/;

/** Why `text` is not a `host:port` entry, or undefined when it is one. */
export function egressProblem(text: string): string | undefined {
  const to = parseDestination(text);
  return 'problem' in to ? to.problem : undefined;
}

/** `text` (`host:port`) as a destination, or why it is not one. */
export function parseDestination(text: string): EgressDestination | { problem: string } {
  const m = /^(\[[0-9a-fA-F:.]+\]|[^:[\]]+):(\d{1,5}|\*)$/.exec(text.trim());
  if (!m) return { problem: `must be host:port (api.example.com:443, *.example.com:443, 10.0.0.5:5432, [2001:db8::1]:443; port * for any), not ${JSON.stringify(text)}` };
  const [, rawHost, rawPort] = m;
  const port = rawPort === '*' ? '*' : Number(rawPort);
  if (port !== '*' && (port < 1 || port > 65_535)) return { problem: `has port ${rawPort}, which is not 1 to 65535` };
  const host = normalHost(rawHost!);
  if (rawHost!.startsWith('[')) return isIP(host) === 6 ? { host, port } : { problem: `has ${rawHost}, which is not an IPv6 address` };
  if (isIP(host) === 4) return { host, port };
  const labels = (host.startsWith('*.') ? host.slice(2) : host).split('.');
  if (!labels.every((l) => LABEL.test(l))) return { problem: `has ${rawHost}, which is not a host name (a *. prefix is the only wildcard)` };
  return { host, port };
}

/** A host as entries and requests are compared: lower case, no brackets, no final dot, an IPv6 address in its shortest form. */
export function normalHost(host: string): string {
  const h = host
    .replace(/^\[|\]$/g, '')
    .replace(/\.$/, '')
    .toLowerCase();
  return isIP(h) === 6 ? new URL(`http://[${h}]/`).hostname.slice(1, -1) : h;
}

/** Whether `host` (as {@link normalHost} gives it) is an IP address or a DNS name: nothing else (a NUL, a space, a control character) is compared or looked up. */
export function isHostName(host: string): boolean {
  if (isIP(host) !== 0) return true;
  return host.length <= 253 && host.split('.').every((l) => LABEL.test(l));
}

/** Whether `to` names `host` (as asked for, not as resolved) and `port`. */
function reaches(to: EgressDestination, host: string, port: number): boolean {
  if (to.port !== '*' && to.port !== port) return false;
  const h = normalHost(host);
  if (!isHostName(h)) return false;
  return to.host.startsWith('*.') ? h.endsWith(to.host.slice(1)) : h === to.host;
}

/** The destinations `rules` give the runs of `agent`. */
export function egressFor(rules: readonly EgressRule[], agent: string): string[] {
  return [...new Set(rules.filter((r) => !r.agents || r.agents.some((g) => globMatches(g, agent))).flatMap((r) => r.to))];
}

/** Whether one of `entries` (`host:port`, as {@link egressFor} gives them) lets a command reach `host`:`port`. */
export function egressAllows(entries: readonly string[], host: string, port: number): boolean {
  return entries.some((e) => {
    const to = parseDestination(e);
    return !('problem' in to) && reaches(to, host, port);
  });
}
