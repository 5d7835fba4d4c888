/**
 * Claim rules of workload issuers: a CI job or service presents its platform's OIDC token, and
 * the gateway turns its claims into an identity. A rule matches when every claim it lists
 * matches (an exact value, or a glob where `*` matches any run of characters, `/` included);
 * any rule may match. The subject is the first matching rule's template filled from the claims
 * (`ci:{repository}`), or the token's subject claim; the groups are those of every matching rule.
 *
 * @see https://docs.github.com/en/actions/security-for-github-actions/security-hardening-your-deployments/about-security-hardening-with-openid-connect#understanding-the-oidc-token
 * @see https://kubernetes.io/docs/reference/access-authn-authz/service-accounts-admin/#bound-service-account-tokens
 */
import { globMatches } from '../../glob.js';

/**
 * A claim rule of a workload issuer: every claim listed must match (exact value, or a glob where
 * `*` matches any run of characters); the groups of every matching rule are the identity's groups.
 *
 * @see https://docs.github.com/en/actions/security-for-github-actions/security-hardening-your-deployments/about-security-hardening-with-openid-connect#understanding-the-oidc-token
 */
export interface WorkloadRule {
  /** Claim name (dots reach into objects) to pattern. */
  claims: Record<string, string>;
  groups: string[];
  /** A template such as `ci:{repository}`; absent: the token's subject claim. */
  subject?: string;
}

/** One piece of a parsed subject template: literal text, or the claim to insert. */
export type TemplatePart = { text: string } | { claim: string };

/**
 * Reads claim `name`: the claim of that exact name, else a dotted path into nested objects. A key
 * that itself holds dots is found too (`kubernetes.io.namespace` reaches `{"kubernetes.io":
 * {"namespace": ...}}`).
 *
 * @see https://www.rfc-editor.org/rfc/rfc7519#section-4 (claims)
 */
export function readClaim(claims: Record<string, unknown>, name: string): unknown {
  if (Object.hasOwn(claims, name)) return claims[name];
  if (!name.includes('.')) return undefined;
  return walk(claims, name.split('.'));
}

function walk(value: unknown, parts: string[]): unknown {
  if (parts.length === 0) return value;
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return undefined;
  const record = value as Record<string, unknown>;
  for (let n = parts.length; n >= 1; n--) {
    const key = parts.slice(0, n).join('.');
    if (Object.hasOwn(record, key)) {
      const found = walk(record[key], parts.slice(n));
      if (found !== undefined) return found;
    }
  }
  return undefined;
}

/** The text of a scalar claim (string, finite number, boolean); undefined for anything else. */
export function claimText(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  if (typeof value === 'boolean') return String(value);
  return undefined;
}

/**
 * Parses a subject template such as `ci:{repository}@{ref}`. Returns the parts, or a message
 * saying what is wrong (an unbalanced brace, an empty claim name).
 *
 * @see https://www.rfc-editor.org/rfc/rfc6570 (only its simplest form, `{name}`, is supported)
 */
export function parseSubjectTemplate(template: string): { parts: TemplatePart[] } | { problem: string } {
  const parts: TemplatePart[] = [];
  let text = '';
  for (let i = 0; i < template.length; i++) {
    const c = template[i]!;
    if (c === '}') return { problem: `has a "}" without its "{" at position ${i + 1}` };
    if (c !== '{') {
      text += c;
      continue;
    }
    const close = template.indexOf('}', i + 1);
    const open = template.indexOf('{', i + 1);
    if (close < 0 || (open >= 0 && open < close)) return { problem: `has a "{" without its "}" at position ${i + 1}` };
    const claim = template.slice(i + 1, close).trim();
    if (claim === '') return { problem: `has an empty claim name "{}" at position ${i + 1}` };
    if (text) parts.push({ text });
    text = '';
    parts.push({ claim });
    i = close;
  }
  if (text) parts.push({ text });
  if (!parts.some((p) => 'claim' in p)) return { problem: 'names no claim; write the claims to insert in braces, e.g. "ci:{repository}"' };
  return { parts };
}

/** Fills a subject template from `claims`; undefined when a claim it names is absent or not a scalar. */
export function renderSubjectTemplate(template: string, claims: Record<string, unknown>): string | undefined {
  const parsed = parseSubjectTemplate(template);
  if ('problem' in parsed) return undefined;
  let out = '';
  for (const part of parsed.parts) {
    if ('text' in part) out += part.text;
    else {
      const value = claimText(readClaim(claims, part.claim));
      if (value === undefined || value === '') return undefined;
      out += value;
    }
  }
  return out;
}

/** True when every claim of `rule` matches `claims`. */
export function ruleMatches(rule: WorkloadRule, claims: Record<string, unknown>): boolean {
  const entries = Object.entries(rule.claims);
  if (entries.length === 0) return false;
  return entries.every(([name, pattern]) => {
    const value = claimText(readClaim(claims, name));
    return value !== undefined && globMatches(pattern, value);
  });
}

/**
 * Maps a workload token's claims to a subject and groups with `rules`. `subject` is the token's
 * own subject, used when the first matching rule has no template. Undefined when no rule matches
 * (a rule whose template cannot be filled does not match).
 */
export function applyWorkloadRules(rules: readonly WorkloadRule[], claims: Record<string, unknown>, subject: string): { subject: string; groups: string[] } | undefined {
  let chosen: string | undefined;
  const groups = new Set<string>();
  for (const rule of rules) {
    if (!ruleMatches(rule, claims)) continue;
    const ruleSubject = rule.subject === undefined ? subject : renderSubjectTemplate(rule.subject, claims);
    if (ruleSubject === undefined) continue;
    chosen ??= ruleSubject;
    for (const g of rule.groups) groups.add(g);
  }
  return chosen === undefined ? undefined : { subject: chosen, groups: [...groups] };
}
