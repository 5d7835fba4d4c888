/**
 * The `mcp` section of a policy bundle, and its judge: what a session on an MCP connection may
 * call, read and see.
 *
 * ```yaml
 * mcp:
 *   default: allow                  # calls, reads and prompts no rule matches: allow | deny | review
 *   serverRequests: []              # what the server may ask the agent: sampling, elicitation, roots
 *   rules:                          # the most restrictive matching rule wins
 *     - { name: writes-reviewed, match: { tools: ["write_*", "edit_*", "move_*"] }, action: review }
 *     - { name: no-secrets, match: { tools: ["read_*"], arguments: { path: ["**\/.env", "/etc/**"] } }, action: deny }
 *     - { name: agents-read-only, match: { tools: ["*"], via: [run, mcp] , arguments: { dryRun: { equals: false } } }, action: deny }
 *     - { name: no-config, match: { resources: ["file:///etc/**"] }, action: deny }
 * ```
 *
 * A rule's `tools`, `resources` and `prompts` are globs over a tool's name, a resource's URI and
 * a prompt's name (`*` any run of characters); a rule that names none of them matches all three.
 * A URI is read in each spelling a server may read it as ({@link uriSpellings}): a deny or review
 * rule matches when one does, an allow rule when every one does.
 * `arguments` match a call's (or a prompt's) arguments by name (`a.b` reaches into an object):
 * a list of globs over the value's text (a number or boolean as JSON writes it, an object as its
 * JSON), or `{ equals: <JSON value> }`. A value that is a list matches a deny or review rule when
 * one of its items does, an allow rule when every item does. For an allow rule a glob reads a
 * value as a path: `*` stays within one segment (never `/`), `**` crosses them, and a value with
 * a `.`, `..` or empty segment the glob does not spell matches nothing; a deny or review rule's
 * `*` matches anything, and it is matched against the value as written and with its `.` and `..`
 * segments resolved, so `/srv/data/../secret` meets a rule on `/srv/secret/**`, and (a glob that
 * spells a `/`) a relative path as under any directory ({@link underSomeDirectory}); such a path
 * glob meets every path the call holds, whatever the argument's name or depth ({@link pathsHeld}),
 * and `dir/**` meets `dir` too, as every tool's path naming a directory above what it protects does
 * ({@link aboveProtected}). (The server may still follow a symbolic link the gateway cannot
 * see.) Otherwise an argument the call does not send matches no rule that names it. A refusing
 * rule compares URIs case-folded too.
 *
 * `tools/list` shows only the tools a call could run: a tool that an argument-free deny rule
 * names, or that no allow or review rule names when nothing else would allow it (a deny default,
 * or read-only access), is left out; `resources/list` and `prompts/list` likewise.
 *
 * Under read-only access a tool call runs only when an mcp rule allows it (the gateway cannot tell
 * whether a tool writes; a server's `readOnlyHint` is its own claim); reading resources and
 * prompts is allowed as the rules say.
 *
 * @see https://modelcontextprotocol.io/specification/2025-06-18/server/tools
 * @see docs/mcp.md
 */
import { realpathSync } from 'node:fs';
import { posix } from 'node:path';
import { globMatches, segmentGlob } from '../glob.js';
import { JsonNumber, jsonText } from '../json-number.js';
import { ruleApplies } from './rule-scope.js';
import { combineReviewDecisions, defaultVerdict, type RuleVerdict, reviewSettingsFor, ruleVerdict } from './review-combine.js';
import { ACTIONS, MCP_DEFAULTS, type Action, type McpArgumentMatch, type McpPolicy, type McpRule, type Policy, type ReviewSettings, type Who } from './schema.js';

/** What the judge answers for a tool call, a resource read or a prompt. */
export type McpVerdict = RuleVerdict;

/** What a client asks the server for: a tool by name, a resource by URI, a prompt by name. */
export type McpAsk = { kind: 'tool'; name: string; arguments: unknown } | { kind: 'resource'; uri: string } | { kind: 'prompt'; name: string; arguments: unknown };

/** What a server may ask the agent, by the `serverRequests` name of its method. */
export const SERVER_REQUESTS: Readonly<Record<string, McpPolicy['serverRequests'][number]>> = {
  'sampling/createMessage': 'sampling',
  'elicitation/create': 'elicitation',
  'roots/list': 'roots',
};

/** A rule as a session's judge holds it: its globs compiled once. */
interface CompiledRule {
  rule: McpRule;
  kinds: ReadonlySet<McpAsk['kind']>;
  names?: { tool?: string[]; resource?: string[]; prompt?: string[] };
  /**
   * Each argument matcher; `anywhere`: a refusing rule's path glob, matched against every path the call holds too
   * ({@link pathsHeld}); `above`: whether a value names a directory above what such a glob protects ({@link aboveProtected}).
   */
  arguments?: Array<{ path: string[]; match: (value: unknown) => boolean; anywhere: boolean; above?: (value: unknown) => boolean }>;
}

/** The `mcp` policy of one session (identity, connection, access mode), as the MCP engine asks it. */
export class McpJudge {
  readonly #rules: CompiledRule[];
  /** The refusing rules' path globs: how many, and the `/` and `*` they spell (see {@link McpJudge.pathWork}). */
  readonly #pathGlobs: { count: number; separators: number };
  readonly #default: Action;
  readonly #readOnly: boolean;
  readonly #serverRequests: ReadonlySet<string>;
  readonly #reviewers: (rule?: Partial<ReviewSettings>) => ReviewSettings | undefined;

  constructor(mcp: McpPolicy, who: Who, connection: string, mode: 'read-only' | 'read-write', reviewers: (rule?: Partial<ReviewSettings>) => ReviewSettings | undefined = () => undefined) {
    this.#rules = mcp.rules.filter((r) => ruleApplies(r.match, who, connection)).map(compile);
    const globs = this.#rules.flatMap((c) =>
      c.rule.action === 'allow' ? [] : Object.values(c.rule.match.arguments ?? {}).flatMap((m) => ('globs' in m ? m.globs.filter((g) => g.includes('/')) : [])),
    );
    // Each glob as written and case-folded, in each of a path's spellings.
    this.#pathGlobs = { count: 6 * globs.length, separators: 6 * globs.reduce((n, g) => n + 1 + g.split(/[/*]/).length, 0) };
    this.#default = mcp.default;
    this.#readOnly = mode === 'read-only';
    this.#serverRequests = new Set(mcp.serverRequests);
    this.#reviewers = reviewers;
  }

  /** The decision on a tool call, a resource read or a prompt: the most restrictive matching rule, else the default. */
  decide(ask: McpAsk): McpVerdict {
    const what = ask.kind === 'resource' ? `resource ${ask.uri}` : `${ask.kind} "${ask.name}"`;
    // Read only where a refusing path glob will read it: most sessions' calls have none.
    const held = ask.kind === 'resource' || this.#pathGlobs.count === 0 ? [] : pathsHeld(ask.arguments);
    // A call whose paths would take the refusing path globs longer than the budget to read meets each of them unread.
    const call = { held, tooLong: held === undefined || this.#pathWork(held) > JUDGE_BUDGET };
    const verdicts = this.#rules.filter((c) => matches(c, ask, call)).map((c) => this.#verdict(c.rule, `mcp rule "${c.rule.name}" matches ${what}`));
    const verdict = mostRestrictive(verdicts) ?? this.#byDefault(`no mcp rule matches ${what}`);
    if (this.#readOnly && ask.kind === 'tool' && verdict.rule === undefined && verdict.action === 'allow') {
      return {
        action: 'deny',
        rule: 'hoop:read-only-access',
        message: 'read-only access runs only the tools an mcp rule allows',
        reason: `no mcp rule allows tool "${ask.name}", and the gateway cannot tell whether it writes`,
      };
    }
    return verdict;
  }

  /**
   * Whether a listing shows a tool, resource or prompt: false when every call of it would be
   * denied whatever its arguments (an argument-free deny rule names it, or nothing could allow it).
   */
  shows(kind: McpAsk['kind'], name: string): boolean {
    const naming = this.#rules.filter((c) => namesIt(c, kind, name));
    if (naming.some((c) => c.rule.action === 'deny' && !c.arguments)) return false;
    const refusedByDefault = this.#default === 'deny' || (this.#readOnly && kind === 'tool');
    return !refusedByDefault || naming.some((c) => c.rule.action !== 'deny');
  }

  /** Whether the server may send the agent a request of `method` (sampling, elicitation, roots), as `serverRequests` says. */
  serverMay(method: string): boolean {
    const name = Object.hasOwn(SERVER_REQUESTS, method) ? SERVER_REQUESTS[method] : undefined;
    return name !== undefined && this.#serverRequests.has(name);
  }

  /** About how many steps the refusing rules' path globs take over `held`: each glob reads a path once per `/` and `*` it spells (under some directory), a long path once. */
  #pathWork(held: readonly string[]): number {
    let work = 0;
    for (const text of held) work += text.length * (text.length > MAX_GLOB_TEXT ? this.#pathGlobs.count : this.#pathGlobs.separators);
    return work;
  }

  #verdict(rule: McpRule, reason: string): McpVerdict {
    return ruleVerdict(rule, reason, this.#reviewers);
  }

  #byDefault(why: string): McpVerdict {
    return defaultVerdict(this.#default, why, this.#reviewers);
  }
}

/** The judge of a session on MCP connection `connection`, reviews settled as the bundle's reviewers say. */
export function mcpJudgeFor(policy: Policy, who: Who, connection: string, mode: 'read-only' | 'read-write'): McpJudge {
  return new McpJudge(policy.mcp ?? MCP_DEFAULTS, who, connection, mode, (rule) => reviewSettingsFor(policy, connection, rule));
}

function compile(rule: McpRule): CompiledRule {
  const m = rule.match;
  const named = m.tools !== undefined || m.resources !== undefined || m.prompts !== undefined;
  const kinds = new Set<McpAsk['kind']>(
    named ? [...(m.tools ? ['tool' as const] : []), ...(m.resources ? ['resource' as const] : []), ...(m.prompts ? ['prompt' as const] : [])] : ['tool', 'resource', 'prompt'],
  );
  const asPath = rule.action === 'allow';
  return {
    rule,
    kinds,
    ...(named ? { names: { ...(m.tools ? { tool: m.tools } : {}), ...(m.resources ? { resource: m.resources.map(nfc) } : {}), ...(m.prompts ? { prompt: m.prompts } : {}) } } : {}),
    ...(m.arguments
      ? {
          arguments: Object.entries(m.arguments).map(([name, written]) => {
            // A refusing rule's path also by the name its directory has once its links resolve (server-filesystem lists and serves both).
            const match = !asPath && 'globs' in written ? { ...written, globs: written.globs.flatMap((g) => [g, ...resolvedAlias(g)]) } : written;
            return {
              path: name.split('.'),
              match: valueMatcher(match, asPath, rule.action === 'allow'),
              anywhere: !asPath && 'globs' in match && match.globs.some((g) => g.includes('/')),
              ...(!asPath && 'globs' in match ? { above: aboveMatcher(match.globs) } : {}),
            };
          }),
        }
      : {}),
  };
}

/** How many of a path's directories, from its end, are looked for on disk. */
const ON_DISK_TRIES = 5;

/**
 * Absolute path glob `glob` with the directories before its first pattern as they resolve on this
 * machine (`/srv/link/secret/**` is `/srv/real/secret/**` when `link` leads to `real`: an MCP server
 * the gateway runs here may be given, and serve, either name); none when they resolve to themselves.
 */
function resolvedAlias(glob: string): string[] {
  if (!glob.startsWith('/')) return [];
  const segments = glob.split('/');
  const literal = segments.findIndex((seg) => /[*?[{\\]/.test(seg));
  const upTo = literal < 0 ? segments.length : literal;
  const real = onDisk(segments.slice(0, upTo).join('/'));
  return real === undefined ? [] : [[real, ...segments.slice(upTo)].join('/')];
}

/**
 * Absolute path `path` as its links resolve on this machine (the longest part of it that exists
 * resolved, the rest as written: looked for up to {@link ON_DISK_TRIES} directories up); undefined
 * when that is `path` itself, or nothing so near exists.
 */
function onDisk(path: string): string | undefined {
  const segments = path.split('/');
  for (let upTo = segments.length; upTo > 1 && upTo > segments.length - ON_DISK_TRIES; upTo--) {
    const dir = segments.slice(0, upTo).join('/');
    try {
      const real = [realpathSync.native(dir), ...segments.slice(upTo)].join('/');
      return real === path ? undefined : real;
    } catch {}
  }
  return undefined;
}

/** Whether rule `c` names `name` of `kind` (whatever the arguments). */
function namesIt(c: CompiledRule, kind: McpAsk['kind'], name: string): boolean {
  if (!c.kinds.has(kind)) return false;
  const globs = c.names?.[kind];
  return globs === undefined || globs.some((g) => globMatches(g, name));
}

/**
 * Whether rule `c` matches `ask`: its kind, its name (a resource's URI in each of its spellings), every argument it
 * names; a refusing rule's path glob meets a directory above what it protects too, for every tool ({@link aboveProtected}).
 */
function matches(c: CompiledRule, ask: McpAsk, call: { held: string[] | undefined; tooLong: boolean }): boolean {
  if (ask.kind === 'resource') {
    // A deny or review rule matches a URI any way the server may read it; an allow rule only when it matches every way.
    const spellings = uriSpellings(nfc(ask.uri));
    const named = (uri: string): boolean => namesIt(c, 'resource', uri);
    // A server's file system may ignore case (`file:///ETC/passwd`): a refusing rule compares case-folded too.
    const folded = (uri: string): boolean => c.kinds.has('resource') && (c.names?.resource ?? ['*']).some((g) => globMatches(caseFolded(g), caseFolded(uri)));
    return (c.rule.action === 'allow' ? spellings.every(named) : spellings.some((uri) => named(uri) || folded(uri))) && !c.arguments;
  }
  if (!namesIt(c, ask.kind, ask.name)) return false;
  if (!c.arguments) return true;
  return c.arguments.every(({ path, match, anywhere, above }) => {
    if (anywhere && call.tooLong) return true;
    const meets = (v: unknown): boolean => match(v) || above?.(v) === true;
    const value = valueAt(ask.arguments, path);
    if (value !== undefined && meets(value)) return true;
    // A refusing rule's path glob meets every path the call holds, whatever the argument's name or depth (`paths`, `source`, `destination`).
    return anywhere && call.held!.some(meets);
  });
}

/** A refusing rule's matcher of values that name a directory above what its path globs protect (each spelling, case-folded too). */
function aboveMatcher(globs: readonly string[]): (value: unknown) => boolean {
  const paths = globs.map(nfc).filter((g) => g.includes('/'));
  return (value) => {
    if (typeof value !== 'string' && !Array.isArray(value)) return false;
    const texts = (Array.isArray(value) ? value : [value]).filter((v): v is string => typeof v === 'string').map(nfc);
    return texts.some((t) => pathSpellings(t, true).some((s) => paths.some((g) => aboveProtected(g, s) || aboveProtected(caseFolded(g), caseFolded(s)))));
  };
}

/**
 * Whether path `text` names the directory a refusing glob's fixed part ends in, or one above it (`/srv/shared` or
 * `/srv/shared/secret` of `/srv/shared/secret/**`): a tool that lists it recursively reveals the names the glob
 * protects (`directory_tree`, `search_files` of the parent), and one that renames or moves it carries them to names
 * the glob does not meet (`move_file team team-archive`). A server's `readOnlyHint` tells neither apart. A relative
 * path is read as the server reads it, under a directory of its own: above when the fixed part holds it as whole segments.
 * A glob with no fixed directory (one that starts with `**`) meets the file wherever it moves.
 */
function aboveProtected(glob: string, text: string): boolean {
  const segments = glob.split('/');
  const wild = segments.findIndex((part) => /[*?[{]/.test(part));
  const fixed = (wild < 0 ? segments.slice(0, -1) : segments.slice(0, wild)).join('/');
  if (!fixed.startsWith('/') || text.length > MAX_GLOB_TEXT) return false;
  const t = resolved(text).replace(/(.)\/+$/, '$1');
  if (t.startsWith('/')) return t === '/' || fixed === t || fixed.startsWith(`${t}/`);
  const relative = posix.normalize(t.startsWith('~/') ? t.slice(2) : t).replace(/^(\.\.\/)+/, '');
  return relative === '.' || relative === '..' || `${fixed}/`.includes(`/${relative}/`);
}

/** The most steps the refusing rules' path globs may take over one call's paths (~0.2 s on a busy core): a call needing more meets each of them (one of 4 MB held the gateway 45 s). */
const JUDGE_BUDGET = 30_000_000;

/** The most strings {@link pathsHeld} reads, and how deep: a call holding more is matched by every refusing path rule. */
const HELD_MAX = { strings: 10_000, depth: 64 };
/** Argument names that say their value is a path (the reference servers' among them). */
const PATH_NAMES = /^(paths?|files?|file_?names?|file_?paths?|dirs?|director(y|ies)|folders?|sources?|src|destinations?|dest|targets?|from|to|roots?|cwd|uri|url|location)$/i;

/**
 * The strings of a call's arguments, at any depth, that are or may be paths: each under a name that
 * says so ({@link PATH_NAMES}), and each elsewhere that reads as one (`/…`, `~/…`, `file:…`; a
 * line break in it is a character of the path, as a server's `path.resolve` reads it); undefined when the arguments hold more than {@link HELD_MAX} allows.
 */
function pathsHeld(args: unknown): string[] | undefined {
  const found: string[] = [];
  let strings = 0;
  const stack: Array<{ v: unknown; named: boolean; depth: number }> = [{ v: args, named: false, depth: 0 }];
  for (let at = stack.pop(); at !== undefined; at = stack.pop()) {
    const { v, named, depth } = at;
    if (depth > HELD_MAX.depth) return undefined;
    if (typeof v === 'string') {
      if (++strings > HELD_MAX.strings) return undefined;
      if (named || /^(\/|~\/|file:)/i.test(v)) found.push(v);
    } else if (Array.isArray(v)) for (const item of v) stack.push({ v: item, named, depth: depth + 1 });
    else if (typeof v === 'object' && v !== null) for (const [k, item] of Object.entries(v)) stack.push({ v: item, named: PATH_NAMES.test(k), depth: depth + 1 });
  }
  return found;
}

/**
 * The ways a server may read resource URI `uri`: as written; as a URL parser reads it (the scheme
 * and host in lower case, `file://localhost/` as `file:///`, `.`, `..` and `%2e` segments
 * resolved); and with its path percent-decoded and its `..` and empty segments resolved (as
 * `fileURLToPath` and a path join read `file:///srv/%2e%2e//etc/passwd`), with its query and
 * fragment, without them (as `fileURLToPath` reads `file:///etc/passwd?x`), and as part of the
 * path (a server that cuts `file://` off and joins the rest: `file:///srv/x?/../../etc/passwd`).
 */
function uriSpellings(uri: string): string[] {
  const spellings = new Set([uri]);
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    return [...spellings];
  }
  spellings.add(url.href);
  // The scheme and authority: what the href holds before its path (an empty `?` or `#` has no search or hash, but is written).
  const bare = new URL(url.href);
  bare.search = '';
  bare.hash = '';
  const head = bare.href.slice(0, bare.href.length - bare.pathname.length);
  let path: string;
  try {
    path = decodeURIComponent(url.pathname);
  } catch {
    return [...spellings];
  }
  const resolved = (p: string): string => (p.startsWith('/') ? posix.normalize(p) : p);
  spellings.add(nfc(`${head}${resolved(path)}${url.search}${url.hash}`));
  spellings.add(nfc(`${head}${resolved(path)}`));
  try {
    spellings.add(nfc(`${head}${resolved(decodeURIComponent(`${url.pathname}${url.search}${url.hash}`))}`));
  } catch {
    // A query or fragment that is no percent-encoding: read as written above.
  }
  return [...spellings];
}

/** The longest value an allow rule's path glob reads (a longer one matches none): twice PATH_MAX. */
const MAX_GLOB_TEXT = 8 * 1024;
/** The most of a list's values an allow rule's path globs read (a longer list matches none). */
const MAX_GLOB_LIST = 64 * 1024;

/** The value at `path` in a call's arguments (own properties only). */
export function valueAt(args: unknown, path: readonly string[]): unknown {
  let at: unknown = args;
  for (const key of path) {
    if (typeof at !== 'object' || at === null || Array.isArray(at) || !Object.hasOwn(at, key)) return undefined;
    at = (at as Record<string, unknown>)[key];
  }
  return at;
}

/**
 * A matcher over one argument's value: `equals` by JSON value, else globs over its text; a list
 * matches when every item does (`all`: an allow rule's) or when one does.
 */
function valueMatcher(m: McpArgumentMatch, asPath: boolean, all: boolean): (value: unknown) => boolean {
  if ('equals' in m) {
    const want = canonical(m.equals);
    return (value) => canonical(value) === want;
  }
  /** A value's spellings, read once for every glob: as written (and as its links resolve here), and case-folded. */
  type Spelt = { text: string; as: string[]; folded: string[] };
  const globs = m.globs.map(nfc).map((g): ((v: Spelt) => boolean) => {
    if (asPath) {
      const matches = pathGlob(g);
      return (v) => matches(v.text);
    }
    // Every spelling (absolute, under any directory, the directory itself) as written and case-folded: a server's file system may ignore case.
    const folded = caseFolded(g);
    const spelled = (glob: string, spellings: string[]): boolean => spellings.some((t) => globMatches(glob, t) || (glob.includes('/') && underSomeDirectory(glob, t)) || namesTheDirectory(glob, t));
    return (v) => spelled(g, v.as) || spelled(folded, v.folded);
  });
  const textOf = (value: unknown): string => nfc(typeof value === 'string' ? value : jsonText(value));
  const one = (text: string): boolean => {
    const v: Spelt = asPath ? { text, as: [], folded: [] } : { text, as: pathSpellings(text, true), folded: pathSpellings(caseFolded(text)) };
    return globs.some((g) => g(v));
  };
  return (value) => {
    if (!Array.isArray(value)) return one(textOf(value));
    if (value.length === 0) return false;
    const texts = value.map(textOf);
    // An allow rule's globs read at most MAX_GLOB_LIST of a list (a longer one matches none): a 4 MiB list of long paths kept them busy for seconds.
    if (asPath && texts.reduce((n, t) => n + t.length, 0) > MAX_GLOB_LIST) return false;
    return all ? texts.every(one) : texts.some(one);
  };
}

/**
 * `text` as a file system that ignores case compares it: Unicode's case folding, near enough (`ſ` is `s`, `K` (Kelvin) is
 * `k`, `ﬆ` is `st`: upper case, then lower), where `toLowerCase` alone left `ſecret` apart from `secret`.
 */
function caseFolded(text: string): string {
  return text.toUpperCase().toLowerCase();
}

/** Whether refusing glob `dir/**` is given `dir` itself (or `dir/`): what it covers is that directory's contents, which a listing of it shows. */
function namesTheDirectory(glob: string, text: string): boolean {
  if (!glob.endsWith('/**')) return false;
  const dir = glob.slice(0, -3);
  return resolved(text).replace(/\/+$/, '') === dir;
}

/**
 * Text in Unicode's composed form (NFC): a server may open a path by the file whose name is its
 * canonical equivalent (server-filesystem does: `\u212Aeys` opens `Keys`, a decomposed `é` the
 * composed one), so rules and what they meet are compared composed.
 * @see https://unicode.org/reports/tr15/
 */
function nfc(text: string): string {
  return text.normalize('NFC');
}

/** A value's JSON with its objects' keys sorted, so that equal values compare equal (a long number as the double the policy's own reads as). */
export function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v instanceof JsonNumber) return JSON.stringify(v.valueOf());
  if (typeof v === 'object' && v !== null) {
    return `{${Object.keys(v)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v) ?? 'null';
}

/**
 * The ways a server may read path `text`, for a refusing rule: as written, resolved (`.`, `..`,
 * doubled and trailing slashes gone: `secret/` lists `secret`), and with backslashes as separators
 * (a Windows server's); a refusing rule also compares each case-folded (a file system that ignores case).
 */
function pathSpellings(text: string, onThisDisk = false): string[] {
  const out = new Set([text]);
  for (const t of [text, text.includes('\\') ? text.replaceAll('\\', '/') : text]) {
    const r = resolved(t);
    out.add(r.length > 1 ? r.replace(/\/+$/, '') : r);
    // An absolute path also as its links resolve here (a server this gateway runs opens it so: a link in its root, the root by another name).
    const real = onThisDisk && r.startsWith('/') && r.length <= MAX_GLOB_TEXT ? onDisk(r) : undefined;
    if (real !== undefined) out.add(real);
  }
  return [...out];
}

/** A path with its `.` and `..` segments resolved (as a server that joins it would read it). */
function resolved(text: string): string {
  return text.includes('/') ? posix.normalize(text) : text;
}

/**
 * Whether relative path `text` (or one under `~/`) matches deny or review glob `glob` (a path's:
 * it spells a `/`) under some directory: a server reads it under one of its own (server-filesystem:
 * under the directory it serves, so `secret/key` is `/srv/shared/secret/key`), which the gateway
 * does not know. So `notes.txt` meets `/srv/shared/secret/**` (it may be under that directory):
 * name such an argument's paths in full. Its leading `..` segments are dropped, the directory
 * being any.
 */
function underSomeDirectory(glob: string, text: string): boolean {
  if (text.startsWith('/') || text.length > MAX_GLOB_TEXT) return false;
  const relative = posix
    .normalize(text.startsWith('~/') ? text.slice(2) : text)
    .replace(/^(\.\.\/)+/, '')
    .replace(/^\.\.$/, '');
  if (relative === '' || relative === '.') return false;
  for (let k = 0; k < glob.length; k++) {
    if (glob[k] === '/' && globMatches(glob.slice(k + 1), relative)) return true;
    if (glob[k] === '*' && globMatches(glob.slice(k), `/${relative}`)) return true;
  }
  return false;
}

/**
 * An allow rule's glob over a path: `*` within one segment, `**` across segments, and a value
 * with a `.`, `..` or empty segment that the pattern does not spell matches nothing: the value
 * may have no more segments of each of these kinds than the pattern spells (each one the pattern
 * spells meets one of the value's, so every one of the value's is one the pattern spells).
 */
function pathGlob(pattern: string): (text: string) => boolean {
  const matches = segmentGlob(pattern);
  const spelled = oddSegments(pattern);
  return (text) => {
    if (text.length > MAX_GLOB_TEXT) return false;
    const odd = oddSegments(text);
    if (odd.dot > spelled.dot || odd.dotdot > spelled.dotdot || odd.empty > spelled.empty) return false;
    return matches(text);
  };
}

/** How many `.`, `..` and empty segments (but a leading or trailing `/`'s) `path` has. */
function oddSegments(path: string): { dot: number; dotdot: number; empty: number } {
  const segments = path.split('/');
  const odd = { dot: 0, dotdot: 0, empty: 0 };
  segments.forEach((s, i) => {
    if (s === '.') odd.dot++;
    else if (s === '..') odd.dotdot++;
    else if (s === '' && i > 0 && i < segments.length - 1) odd.empty++;
  });
  return odd;
}

/** The most restrictive of `verdicts` (reviews of the same rank combined), if any. */
export function mostRestrictive(verdicts: RuleVerdict[]): RuleVerdict | undefined {
  let best: RuleVerdict | undefined;
  for (const v of verdicts) {
    if (best === undefined || ACTIONS.indexOf(v.action) > ACTIONS.indexOf(best.action)) best = v;
    else if (v.action === best.action && v.action === 'review') best = combineReviewDecisions(best, v);
  }
  return best;
}
