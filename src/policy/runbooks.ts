/**
 * Runbooks as the policy repo declares them (issue 77): one file each, `runbooks/<name>.yaml`,
 * read and checked with the rest of the bundle (./load.ts), so `hoop policy check` and `hoop
 * policy test` refuse a bundle whose runbook is wrong, saying where. The gateway runs them
 * (../gateway/api/runbook-run.ts).
 *
 * ```yaml
 * version: 1
 * description: Refund a paid order, up to 100 €
 * connection: shop-db
 * parameters:                    # ./runbook-params.ts
 *   order_id: { type: integer, min: 1 }
 *   cents: { type: integer, min: 1, max: 10000 }
 * steps:                         # in one transaction where they are SQL
 *   - sql: update orders set status = 'refunded' where id = $1 and status = 'paid'
 *     params: [order_id]         # bound as $1, $2, … (MySQL: ? in order), never spliced into the text
 *   - sql: insert into refunds (order_id, cents) values ($1, $2)
 *     params: [order_id, cents]
 * run:                           # who may run it: a person an entry names (any, if none), coming as its principal keys say
 *   - { groups: [support] }
 *   - { agents: ["claude*"], via: [run, mcp] }
 * review: { groups: [payments] } # absent: runs without a reviewer
 * maxAffectedRows: 1
 * deadline: 30s
 * returns: [id, status]          # the result columns shown (absent: all)
 * bypass: [no-writes-to-orders]  # statement rules its run is exempt from (absent: none)
 * ```
 *
 * An HTTP step is a request: `- http: { method: POST, path: "/orders/{id}/refund", query: { note: "{note}" },
 * json: { cents: "{cents}" } }` (a segment or query value exactly `{parameter}` is that value, encoded
 * whole; a JSON string exactly `{parameter}` is the value).
 * An SSH step is a command of words, each a literal or exactly `{parameter}` (one word, however
 * the value is spelled: never split, never read by a shell): `- ssh: [systemctl, restart, "{unit}"]`.
 * Each runbook keeps the SHA-256 of its file's bytes: a run approved for one text is not run for another.
 */
import { createHash } from 'node:crypto';
import * as z from 'zod';
import type { Problem } from '../config/yaml.js';
import type { Identity } from '../identity.js';
import { namesPrincipal, type Principal, principalMatchFields, principalMatches, principalOf } from './principal.js';
import { DEFAULT_MAX_SESSIONS_PER_IDENTITY, namesPerson, type AccessGrant } from './access.js';
import { PARAM_NAME, paramsSchema, RunbookParams } from './runbook-params.js';
import { list } from './schema-fields.js';
import { type CommandWord, maxAffectedRowsSchema, type Runbook, type RunbookStep, reviewSchema, reviewSettingsOf, timeoutSchema, versionSchema } from './schema.js';

/** A runbook's name: its file's, lower-case letters, digits and `-`. */
export const RUNBOOK_NAME = /^[a-z][a-z0-9-]{0,62}$/;

/** The most steps a runbook has. */
export const MAX_STEPS = 20;

/** A run's deadline when the runbook names none. */
export const DEFAULT_DEADLINE_MS = 60_000;

const grantSchema = z.strictObject({
  subjects: list('a subject').min(1, { error: 'must list at least one subject' }).optional(),
  groups: list('a group name').min(1, { error: 'must list at least one group' }).optional(),
  ...principalMatchFields,
});

const stepSchema = z.union(
  [
    z.strictObject({
      sql: z.string({ error: 'must be SQL text' }).trim().min(1, { error: 'must be SQL text' }).max(65_536, { error: 'must be at most 64 KiB' }),
      params: z
        .array(z.string({ error: 'must be a parameter name' }), { error: 'must be a list of parameter names' })
        .max(100)
        .default([]),
    }),
    z.strictObject({
      ssh: z
        .array(z.string({ error: 'must be a word' }).min(1, { error: 'must not be empty' }), { error: 'must be a list of words' })
        .min(1, { error: 'must have a command' })
        .max(200),
    }),
    z.strictObject({
      http: z.strictObject({
        method: z.enum(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'], { error: 'must be GET, HEAD, POST, PUT, PATCH or DELETE' }),
        path: z
          .string({ error: 'must be a path' })
          .regex(/^\/[^?#\s]*$/, { error: 'must be a path beginning with /, without a query (give it as query:)' })
          .max(2048),
        query: z.record(z.string(), z.string({ error: 'must be text or {parameter}' })).optional(),
        json: z.unknown().optional(),
      }),
    }),
  ],
  { error: 'must be { sql, params }, { ssh: [words] } or { http: { method, path, query?, json? } }' },
);

/** The schema of one runbook file. */
export const runbookFileSchema = z.strictObject({
  version: versionSchema,
  description: z.string({ error: 'must say what the runbook does' }).trim().min(1, { error: 'must say what the runbook does' }).max(500),
  connection: z.string({ error: 'must name a connection' }).min(1, { error: 'must name a connection' }),
  parameters: paramsSchema.default([]),
  steps: z
    .array(stepSchema, { error: 'must be a list of steps' })
    .min(1, { error: 'must have at least one step' })
    .max(MAX_STEPS, { error: `must have at most ${MAX_STEPS} steps` }),
  run: z.array(grantSchema, { error: 'must list who may run it' }).min(1, { error: 'must list who may run it (nobody may, else)' }),
  review: z.union([z.literal(true), reviewSchema], { error: 'must be true or review settings ({ groups, approvals, timeout })' }).optional(),
  maxAffectedRows: maxAffectedRowsSchema.optional(),
  deadline: timeoutSchema.optional(),
  returns: list('a column name').min(1, { error: 'must list at least one column' }).optional(),
  bypass: list('a statement rule name').min(1, { error: 'must name at least one statement rule' }).optional(),
});
export type RunbookFileData = z.output<typeof runbookFileSchema>;

/** The step kinds each connection type runs. */
const STEP_KINDS: Readonly<Record<string, RunbookStep['kind']>> = { postgres: 'sql', mysql: 'sql', ssh: 'ssh', http: 'http' };

/** A word `{…}`: meant to name a parameter. */
const PARAM_WORD = /^\{([^{}]*)\}$/;

/**
 * Runbook `data`, read from `file` (`runbooks/<name>.yaml`, whose bytes are `text`), checked
 * against the bundle's connections (name to type): the runbook, and the problems found (a runbook
 * with any is not kept).
 */
export function checkRunbook(
  file: string,
  text: string,
  data: RunbookFileData,
  bundle: { connectionTypes: ReadonlyMap<string, string>; statementRules: ReadonlySet<string> },
): { runbook?: Runbook; problems: Problem[] } {
  const { connectionTypes } = bundle;
  const problems: Problem[] = [];
  const name = file.replace(/^runbooks\//, '').replace(/\.ya?ml$/, '');
  if (!RUNBOOK_NAME.test(name)) problems.push({ path: [], message: `a runbook's file is named <name>.yaml, its name lower-case letters, digits and - (not "${name}")` });
  const type = connectionTypes.get(data.connection);
  const kind = type === undefined ? undefined : STEP_KINDS[type];
  if (type === undefined) problems.push({ path: ['connection'], message: `unknown connection "${data.connection}"` });
  else if (kind === undefined) problems.push({ path: ['connection'], message: `runbooks run on PostgreSQL, MySQL, SSH and HTTP connections; ${data.connection} is ${type}` });
  const declared = new Set(data.parameters.map((p) => p.name));
  const used = new Set<string>();
  const steps: RunbookStep[] = data.steps.map((s, i): RunbookStep => {
    if ('sql' in s) {
      if (kind !== undefined && kind !== 'sql') problems.push({ path: ['steps', i], message: `an SQL step on ${data.connection}, a ${type} connection` });
      s.params.forEach((p, j) => {
        if (!declared.has(p)) problems.push({ path: ['steps', i, 'params', j], message: `unknown parameter "${p}"` });
        used.add(p);
      });
      return { kind: 'sql', sql: s.sql, params: s.params };
    }
    /** Word `w` at `at`: a literal, or exactly `{name}`, a parameter's value; a string one must say what it may be. */
    const word = (w: string, at: Array<string | number>, what: string): CommandWord => {
      const m = PARAM_WORD.exec(w);
      if (!m) {
        if (what !== 'word' && /[{}]/.test(w)) problems.push({ path: at, message: `"${w}": a ${what} is a literal or exactly {parameter}` });
        return w;
      }
      const p = m[1]!;
      if (!PARAM_NAME.test(p) || !declared.has(p)) problems.push({ path: at, message: `"${w}" names no parameter (a ${what} in braces is one parameter's value)` });
      // A program reads a word as it will (`find !`, `vi +cmd`, `curl -d @file`), a server a path segment: a string says what it may be.
      const spec = data.parameters.find((x) => x.name === p);
      if (spec?.type === 'string' && !spec.pattern && what !== 'query value')
        problems.push({ path: at, message: `parameter ${p} is a string without a pattern: a ${what} says what it may be (a pattern, or an enum, integer, uuid or date)` });
      used.add(p);
      return { param: p };
    };
    if ('http' in s) {
      if (kind !== undefined && kind !== 'http') problems.push({ path: ['steps', i], message: `an HTTP step on ${data.connection}, a ${type} connection` });
      const { method, path, query, json } = s.http;
      const segments = path
        .slice(1)
        .split('/')
        .map((seg, j) => word(seg, ['steps', i, 'http', 'path', j], 'path segment'));
      const pairs = Object.entries(query ?? {}).map(([k, v]): readonly [string, CommandWord] => [k, word(v, ['steps', i, 'http', 'query', k], 'query value')]);
      for (const p of templateParams(json)) {
        if (!declared.has(p)) problems.push({ path: ['steps', i, 'http', 'json'], message: `"{${p}}" names no parameter` });
        used.add(p);
      }
      return { kind: 'http', method, path: segments, query: pairs, ...(json !== undefined ? { json } : {}) };
    }
    if (kind !== undefined && kind !== 'ssh') problems.push({ path: ['steps', i], message: `an SSH step on ${data.connection}, a ${type} connection` });
    const words = s.ssh.map((w, j): CommandWord => word(w, ['steps', i, 'ssh', j], 'word'));
    if (typeof words[0] !== 'string') problems.push({ path: ['steps', i, 'ssh', 0], message: "the command's first word is the program: a literal, not a parameter" });
    return { kind: 'ssh', words };
  });
  for (const p of data.parameters) if (!used.has(p.name)) problems.push({ path: ['parameters', p.name], message: 'no step uses it', atKey: true });
  data.bypass?.forEach((r, i) => {
    if (!bundle.statementRules.has(r)) problems.push({ path: ['bypass', i], message: `no statement rule is named "${r}"` });
  });
  if (problems.length > 0) return { problems };
  const review = data.review === undefined ? undefined : data.review === true ? {} : reviewSettingsOf(data.review);
  return {
    problems,
    runbook: {
      name,
      file,
      digest: createHash('sha256').update(text).digest('hex'),
      description: data.description,
      connection: data.connection,
      params: new RunbookParams(data.parameters),
      steps,
      run: data.run,
      ...(review ? { review } : {}),
      ...(data.maxAffectedRows !== undefined ? { maxAffectedRows: data.maxAffectedRows } : {}),
      deadlineMs: data.deadline ?? DEFAULT_DEADLINE_MS,
      ...(data.returns ? { returns: data.returns } : {}),
      ...(data.bypass ? { bypass: data.bypass } : {}),
    },
  };
}

/** A word as written: a literal, or `{name}`. */
const written = (w: CommandWord): string => (typeof w === 'string' ? w : `{${w.param}}`);

/** Step `s` as its file writes it (what `hoop runbook show` and a reviewer read). */
export function stepAsWritten(s: RunbookStep): { sql: string; params: string[] } | { ssh: string[] } | { http: { method: string; path: string; query?: Record<string, string>; json?: unknown } } {
  if (s.kind === 'sql') return { sql: s.sql, params: [...s.params] };
  if (s.kind === 'ssh') return { ssh: s.words.map(written) };
  return {
    http: {
      method: s.method,
      path: `/${s.path.map(written).join('/')}`,
      ...(s.query.length > 0 ? { query: Object.fromEntries(s.query.map(([k, v]) => [k, written(v)])) } : {}),
      ...(s.json !== undefined ? { json: s.json } : {}),
    },
  };
}

/** Step `s` as one line of text: its SQL, command, or request (with its JSON body). */
export function stepLine(s: RunbookStep): string {
  return writtenStepLine(stepAsWritten(s));
}

/** A step as written ({@link stepAsWritten}) on one line. */
export function writtenStepLine(w: ReturnType<typeof stepAsWritten>): string {
  if ('sql' in w) return w.sql;
  if ('ssh' in w) return w.ssh.join(' ');
  const q = w.http.query
    ? `?${Object.entries(w.http.query)
        .map(([k, v]) => `${k}=${v}`)
        .join('&')}`
    : '';
  return `${w.http.method} ${w.http.path}${q}${w.http.json !== undefined ? ` ${JSON.stringify(w.http.json)}` : ''}`;
}

/** The parameters a JSON body template names: each string exactly `{name}` in it. */
export function templateParams(json: unknown): string[] {
  if (typeof json === 'string') {
    const m = PARAM_WORD.exec(json);
    return m ? [m[1]!] : [];
  }
  if (Array.isArray(json)) return json.flatMap(templateParams);
  if (json !== null && typeof json === 'object') return Object.values(json).flatMap(templateParams);
  return [];
}

/**
 * Whether `identity` may run `runbook`: an entry of its `run` admits a person it names (by subject,
 * `*` or group; an entry that names none admits anyone signed in) when its principal keys hold
 * (`via`, `agents`, `isolated`: how the caller came, an agent's run for its person). An agent's run
 * is admitted only by an entry with principal keys: never by its person's groups alone.
 */
export function mayRun(runbook: Pick<Runbook, 'run'>, identity: Identity, principal: Principal = principalOf(identity)): boolean {
  return runbook.run.some(
    (g) =>
      (principal.run === undefined || namesPrincipal(g)) &&
      principalMatches(g, principal) &&
      ((g.subjects === undefined && g.groups === undefined) || namesPerson({ subjects: g.subjects ?? [], emails: [], groups: g.groups ?? [] }, identity)),
  );
}

/**
 * The access a run of `runbook` has on its connection, whatever the access rules say: read-write
 * for its own steps (its client is the gateway, which sends nothing else), its `maxAffectedRows`
 * as the row limit of every write, no server timeout beyond its deadline.
 */
export function runbookGrant(runbook: Runbook): AccessGrant {
  const rule = `runbook:${runbook.name}`;
  return {
    mode: 'read-write',
    rule,
    rules: [rule],
    maxSessions: DEFAULT_MAX_SESSIONS_PER_IDENTITY,
    limits: {},
    ...(runbook.maxAffectedRows !== undefined ? { rowLimit: { maxRows: runbook.maxAffectedRows, overLimit: 'deny', rule } } : {}),
  };
}
