/**
 * The `http` section of a policy bundle, and its judge: what a request on an HTTP connection may do.
 *
 * ```yaml
 * http:
 *   default: allow                  # requests no rule matches: allow | deny | review
 *   rules:                          # the most restrictive matching rule wins
 *     - { name: no-admin, match: { paths: ["/admin/**"] }, action: deny }
 *     - { name: refunds-reviewed, match: { methods: [POST], paths: ["/orders/*\/refund"] }, action: review }
 *     - { name: no-csv-export, match: { paths: ["/export"], query: { format: csv } }, action: deny }
 *     - { name: no-admin-role, match: { methods: [PUT, PATCH], paths: ["/users/*"], body: { role: admin } }, action: deny }
 *     - { name: no-debug, match: { headers: { x-debug: "*" } }, action: deny }
 * ```
 *
 * A request is judged as the gateway forwards it (src/http/wire/target.ts): its path decoded, with
 * no `.`, `..` or empty segment and no encoded `/`. `paths` are globs over that path (`*` within one
 * segment, `**` across segments); `methods` name methods; `query`, `headers` (by lower-case name) and
 * `body` (a JSON body's fields, `a.b` reaching into an object) take a glob, a list of globs, or
 * `{ equals: <JSON value> }`, as MCP arguments do. A value sent more than once (a parameter
 * repeated, a list in the body) matches a deny or review rule when one of its values does, an
 * allow rule when every one does; a value the request does not send matches no rule that names
 * it. A refusing rule reads a request as every router it could reach reads it: paths, values,
 * parameter names and body keys case-folded too, a path with a trailing `/` as without, `/x/**`
 * covering `/x`, a parameter named with a `[]` or `[key]` suffix (qs, PHP, Rails) and in a form body
 * (servers merge it with the query). A rule on `body` meets a request whose body the gateway could
 * not read as JSON only when it refuses, and a rule on `query` a multipart body: the gateway cannot
 * tell what such a body says, so it fails closed.
 *
 * Under read-only access only GET, HEAD and OPTIONS run, whatever the rules say.
 *
 * @see docs/policy.md
 */
import { globMatches, segmentGlob } from '../glob.js';
import { JsonNumber, jsonText } from '../json-number.js';
import { canonical, mostRestrictive, valueAt } from './mcp.js';
import { defaultVerdict, type RuleVerdict, reviewSettingsFor, ruleVerdict } from './review-combine.js';
import { ruleApplies } from './rule-scope.js';
import { HTTP_DEFAULTS, type Action, type HttpPolicy, type HttpRule, type HttpValueMatch, type Policy, type ReviewSettings, type Who } from './schema.js';

/** What the judge answers for a request. */
export type HttpVerdict = RuleVerdict;

/** A request as the judge reads it. */
export interface HttpAsk {
  method: string;
  /** The path's segments, decoded (src/http/wire/target.ts). */
  segments: readonly string[];
  query: ReadonlyArray<readonly [string, string]>;
  /** Header values by lower-case name, each value as sent. */
  headers: ReadonlyMap<string, readonly string[]>;
  /** The body read as JSON; `unread` when there is a body the gateway could not read as JSON; undefined when there is none. */
  body?: { json: unknown } | 'unread';
  /** A form body's parameters (`application/x-www-form-urlencoded`), which servers merge with the query's; `unread` for a multipart one. */
  form?: ReadonlyArray<readonly [string, string]> | 'unread';
}

/** The methods read-only access runs. */
export const READ_ONLY_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS']);

/** A rule with its globs compiled once. */
interface CompiledRule {
  rule: HttpRule;
  refuses: boolean;
  path?: (path: string) => boolean;
  values: Array<{ of: (ask: HttpAsk) => unknown[] | 'unread'; match: (text: unknown) => boolean }>;
}

/** The `http` policy of one session (identity, connection, access mode), as the HTTP engine asks it. */
export class HttpJudge {
  readonly #rules: CompiledRule[];
  readonly #default: Action;
  readonly #readOnly: boolean;
  readonly #reviewers: (rule?: Partial<ReviewSettings>) => ReviewSettings | undefined;
  /** Media types whose responses pass unmasked where masking applies (`http.unmasked`). */
  readonly unmasked: readonly string[];
  /** Requests one identity may make a minute (`http.requestsPerMinute`), and the largest request body (`http.maxRequestBytes`). */
  readonly limits: { requestsPerMinute?: number; maxRequestBytes: number };

  constructor(http: HttpPolicy, who: Who, connection: string, mode: 'read-only' | 'read-write', reviewers: (rule?: Partial<ReviewSettings>) => ReviewSettings | undefined = () => undefined) {
    this.#rules = http.rules.filter((r) => ruleApplies(r.match, who, connection)).map(compile);
    this.#default = http.default;
    this.#readOnly = mode === 'read-only';
    this.#reviewers = reviewers;
    this.unmasked = http.unmasked;
    this.limits = { ...(http.requestsPerMinute !== undefined ? { requestsPerMinute: http.requestsPerMinute } : {}), maxRequestBytes: http.maxRequestBytes };
  }

  /** The decision on a request: the most restrictive matching rule, else the default; read-only access refuses what is not GET, HEAD or OPTIONS. */
  decide(ask: HttpAsk): HttpVerdict {
    const what = `${ask.method} /${ask.segments.join('/')}`;
    if (this.#readOnly && !READ_ONLY_METHODS.has(ask.method))
      return { action: 'deny', rule: 'hoop:read-only-access', message: 'read-only access runs only GET, HEAD and OPTIONS', reason: `${what} may change what the service holds` };
    const path = `/${ask.segments.join('/')}`;
    const verdicts = this.#rules.filter((c) => matches(c, ask, path)).map((c) => ruleVerdict(c.rule, `http rule "${c.rule.name}" matches ${what}`, this.#reviewers));
    return mostRestrictive(verdicts) ?? defaultVerdict(this.#default, `no http rule matches ${what}`, this.#reviewers);
  }
}

/** The judge of a session on HTTP connection `connection`, reviews settled as the bundle's reviewers say. */
export function httpJudgeFor(policy: Policy, who: Who, connection: string, mode: 'read-only' | 'read-write'): HttpJudge {
  return new HttpJudge(policy.http ?? HTTP_DEFAULTS, who, connection, mode, (rule) => reviewSettingsFor(policy, connection, rule));
}

/** Lower case as a refusing rule compares. */
const folded = (text: string): string => text.toUpperCase().toLowerCase();

function compile(rule: HttpRule): CompiledRule {
  const m = rule.match;
  const refuses = rule.action !== 'allow';
  // A refusing rule's `/x/**` covers `/x` too: routers serve both.
  const spelled = (g: string): string[] => (refuses && g.endsWith('/**') && g.length > 3 ? [g, g.slice(0, -3)] : [g]);
  const globs = m.paths?.flatMap(spelled).map((g) => ({ exact: segmentGlob(g), folded: segmentGlob(folded(g)) }));
  const values: CompiledRule['values'] = [];
  for (const [name, want] of Object.entries(m.query ?? {})) {
    // A refusing rule reads a parameter by every name a server takes for it (case-folded, with a `[]` or `[key]` suffix (qs, PHP, Rails), leading blanks dropped and
    // `.`, `-`, space and `[` as `_` (PHP)) wherever servers merge parameters from: the query, a form body, a JSON body's top level (Rails, Laravel).
    const folds = paramName(name);
    const named = (n: string): boolean => n === name || (refuses && paramName(n.replace(/\[[^\]]*\].*$/, '')) === folds);
    values.push({
      of: (ask) => {
        const found = ask.query.filter(([n]) => named(n)).map(([, v]) => v);
        if (!refuses) return found;
        const json = jsonParams(ask, named);
        if (ask.form === 'unread' || json === 'unread') return 'unread';
        return [...found, ...(ask.form ?? []).filter(([n]) => named(n)).map(([, v]) => v), ...json];
      },
      match: valueMatcher(want, refuses),
    });
  }
  for (const [name, want] of Object.entries(m.headers ?? {})) {
    // A refusing rule reads a field under `_` as under `-` too (CGI, Rack and WSGI name both HTTP_X_NAME).
    const cgi = headerName(name);
    values.push({
      of: (ask) => (refuses ? [...ask.headers].filter(([n]) => headerName(n) === cgi).flatMap(([, v]) => v) : [...(ask.headers.get(name) ?? [])]),
      match: valueMatcher(want, refuses),
    });
  }
  for (const [field, want] of Object.entries(m.body ?? {})) {
    const path = field.split('.');
    // A refusing rule on a field reads the query's and a form's parameter that names it too (`role`, `user[role]`, `user.role`): servers merge them into one set of parameters.
    const folds = path.map(paramName);
    const params = (ask: HttpAsk): unknown[] =>
      !refuses
        ? []
        : [...ask.query, ...(ask.form === 'unread' ? [] : (ask.form ?? []))]
            .filter(([n]) => paramPaths(n).some((p) => p.length === folds.length && p.every((x, i) => x === folds[i])))
            .map(([, v]) => v);
    values.push({
      of: (ask) => {
        if (ask.body === 'unread') return 'unread';
        if (ask.body === undefined) return params(ask);
        // A refusing rule reads a field under every key that folds to its name (some servers bind keys case-insensitively).
        const found = refuses ? valuesAtFolded(ask.body.json, path) : [valueAt(ask.body.json, path)];
        return [...found.filter((v) => v !== undefined).flatMap((v) => (Array.isArray(v) ? v : [v])), ...params(ask)];
      },
      match: valueMatcher(want, refuses),
    });
  }
  return {
    rule,
    refuses,
    ...(globs
      ? {
          path: (p: string) => {
            // A refusing rule reads a path as routers that ignore a trailing `/` or a format suffix (`/refund.json`: Rails, Django REST, Spring) do.
            const paths = refuses ? pathSpellings(p) : [p];
            return paths.some((x) => globs.some((g) => g.exact(x) || (refuses && g.folded(folded(x)))));
          },
        }
      : {}),
    values,
  };
}

/** A parameter's name as the readers that fold names read it: case-folded, leading blanks dropped (PHP), and `.`, `-`, space and `[` as `_`. */
function paramName(name: string): string {
  return folded(name)
    .replace(/^[ \t\n\r\v\f]+/, '')
    .replace(/[.\- []/g, '_');
}

/**
 * The fields a parameter named `name` sets, as servers read it: `a[b][c]` (qs, PHP, Rails) and
 * `a.b.c` (qs's `allowDots`) as a.b.c, an index or `[]` left out (`a[]`, `a[0][b]`); each part folded
 * as {@link paramName} folds a name.
 */
function paramPaths(name: string): string[][] {
  const m = /^([^[]*)((?:\[[^\]]*\])*)/.exec(name)!;
  const inner = [...m[2]!.matchAll(/\[([^\]]*)\]/g)].map((x) => x[1]!).filter((x) => x !== '' && !/^\d+$/.test(x));
  return [
    [m[1]!, ...inner],
    [...m[1]!.split('.'), ...inner],
  ].map((p) => p.map(paramName));
}

/**
 * The values of a JSON body's top-level keys that `named` takes, which servers merge with the
 * query's parameters (Rails, Laravel); `unread` when the body says it is JSON and could not be read.
 */
function jsonParams(ask: HttpAsk, named: (n: string) => boolean): unknown[] | 'unread' {
  // Unread, it is merged only if it says it is JSON (as the judge reads one: application/json or a +json type).
  if (ask.body === 'unread') return (ask.headers.get('content-type') ?? []).some((t) => /^\s*application\/(?:json|[a-z0-9.+-]+\+json)\s*(?:;|$)/i.test(t)) ? 'unread' : [];
  const json = ask.body?.json;
  if (typeof json !== 'object' || json === null || Array.isArray(json) || json instanceof JsonNumber) return [];
  return Object.entries(json).flatMap(([n, v]) => (named(n) ? (Array.isArray(v) ? v : [v]) : []));
}

/** A field's name with `_` read as `-` (lower case, as fields are named here). */
function headerName(name: string): string {
  return name.toLowerCase().replace(/_/g, '-');
}

/** `path` as routers that drop a trailing `/` or a format suffix of its last segment read it. */
function pathSpellings(path: string): string[] {
  const out = [path];
  const trimmed = path.length > 1 && path.endsWith('/') ? path.slice(0, -1) : path;
  if (trimmed !== path) out.push(trimmed);
  const last = trimmed.slice(trimmed.lastIndexOf('/') + 1);
  const dot = last.lastIndexOf('.');
  if (dot > 0) out.push(trimmed.slice(0, trimmed.length - last.length + dot));
  return out;
}

/** The values at `path` in `json`, each key compared case-folded (every object key that folds to it). */
function valuesAtFolded(json: unknown, path: readonly string[]): unknown[] {
  let at: unknown[] = [json];
  for (const key of path) {
    const k = folded(key);
    at = at.flatMap((v) =>
      typeof v === 'object' && v !== null && !Array.isArray(v)
        ? Object.entries(v)
            .filter(([n]) => folded(n) === k)
            .map(([, x]) => x)
        : [],
    );
  }
  return at;
}

function matches(c: CompiledRule, ask: HttpAsk, path: string): boolean {
  const m = c.rule.match;
  // A refusing rule on GET meets HEAD too: servers answer HEAD by running GET's handler.
  if (m.methods && !m.methods.includes(ask.method) && !(c.refuses && ask.method === 'HEAD' && m.methods.includes('GET'))) return false;
  if (c.path && !c.path(path)) return false;
  return c.values.every(({ of, match }) => {
    const values = of(ask);
    // A body the gateway cannot read: a refusing rule on it meets it, an allow rule does not.
    if (values === 'unread') return c.refuses;
    if (values.length === 0) return false;
    return c.refuses ? values.some(match) : values.every(match);
  });
}

/** A matcher of one value: `equals` by JSON value, else globs over its text (case-folded too when `refuses`). */
function valueMatcher(m: HttpValueMatch, refuses: boolean): (value: unknown) => boolean {
  if ('equals' in m) {
    const want = canonical(m.equals);
    return (value) => canonical(value) === want;
  }
  return (value) => {
    const text = typeof value === 'string' ? value : jsonText(value);
    return m.globs.some((g) => globMatches(g, text) || (refuses && globMatches(folded(g), folded(text))));
  };
}
