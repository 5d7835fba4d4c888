/**
 * The policy bundle of a config repo: its types and the zod schemas of one YAML file.
 *
 * A config repo holds `hoop.yaml` at its root, or several `policy/*.yaml` files that are merged
 * (lists concatenated, names unique across files), and test cases in `policy/tests/*.yaml`.
 * Every file says `version: 1`. Keys are camelCase; unknown keys are errors. Reading, merging and
 * cross-checking the files is {@link loadPolicyDir} in `./load.ts`.
 *
 * ```yaml
 * version: 1
 * connections:                  # as in the gateway configuration, without `allow`
 *   - { name: prod-db, type: postgres, host: db.internal, database: app, user: app_rw,
 *       password: "${env:PROD_DB_PASSWORD}" }      # secret references only; ${file:/abs/path}
 * access:                       # deny by default
 *   - { name: dbas, groups: [dba], connections: [prod-db], mode: read-write, maxSessionSeconds: 28800 }
 *   - { name: agents, groups: [agents], connections: [prod-db], statementTimeout: 30s, lockTimeout: 5s, idleInTransactionTimeout: 1min }
 *   - { name: analysts, groups: [analysts], connections: [prod-db], roles: [app_ro], databases: [app, reports] }
 * statements:
 *   unparseable: deny           # deny (default) | allow | review
 *   reviewers:                  # who reviews statements held by `review` (first entry naming the connection, or without connections)
 *     - { groups: [dba], approvals: 1, timeout: 10min, selfApprove: false, window: 0,
 *         notify: [{ url: "${env:SLACK_WEBHOOK}", format: slack }] }
 *   rules:
 *     - { name: no-drop, match: { kinds: [drop] }, action: review, message: "needs a reviewer",
 *         review: { approvals: 2 } }   # over the connection's reviewers
 * masking:
 *   key: ${env:HOOP_MASK_KEY}   # required when a strategy is hash
 *   columns:   [{ table: public.customers, column: email, strategy: redact }]
 *   names:     [{ pattern: "^(ssn|social_security)", strategy: last4 }]
 *   detectors: [{ detector: payment-card, strategy: last4 }]
 *   derived: mask               # mask | deny
 * recording: { results: masked, rowCap: 1000, onFailure: close }
 * ```
 *
 * @see docs/internals.md (§4)
 * @see https://yaml.org/spec/1.2.2/
 */
import { LinearRegex } from '../linear-regex.js';
import type { RunbookParams } from './runbook-params.js';
import * as z from 'zod';
import { policyConnectionSchema, type ConnectionConfig } from '../config/connection.js';
import type { SecretRef } from '../config/secrets.js';
import { parseTimeSetting, type SessionLimits } from './limits.js';
import { principalMatchFields, type Principal, type PrincipalMatch } from './principal.js';
import { alertRuleSchema, type AlertRule } from './alert-rules.js';
import { egressProblem, type EgressRule } from './egress.js';
import { recordObject } from '../stored-record.js';
import { list, lowerName, nameSchema, nonEmpty, notifySchema, reviewNotifySchema, timeBetween } from './schema-fields.js';

export { ALERT_EVENTS, ALERT_SCOPES, alertRuleSchema, type AlertEvent, type AlertRule } from './alert-rules.js';
export { RULE_NAME, type ReviewNotify } from './schema-fields.js';

/** What a matching statement rule does. */
export type Action = 'allow' | 'deny' | 'review';

/** Actions from least to most restrictive (the most restrictive matching rule wins). */
export const ACTIONS: readonly Action[] = ['allow', 'review', 'deny'];

/**
 * Statement kinds a rule can match, as the SQL analysis names them.
 *
 * @see https://www.postgresql.org/docs/current/sql-commands.html
 */
export const STATEMENT_KINDS = [
  'select',
  'insert',
  'update',
  'delete',
  'merge',
  'create',
  'alter',
  'drop',
  'truncate',
  'copy-in',
  'copy-out',
  'grant',
  'revoke',
  'set-role',
  'set-session-authorization',
  'set',
  'do',
  'call',
  'create-function',
  'explain',
  'prepare',
  'execute',
  'deallocate',
  'transaction',
  'lock',
  'listen',
  'notify',
  'vacuum',
  'cursor',
  'other',
] as const;

/** One statement kind. */
export type StatementKind = (typeof STATEMENT_KINDS)[number];

/** Umbrella kinds usable in rules and what they stand for. */
export const KIND_UMBRELLAS: Readonly<Record<'ddl' | 'write', readonly StatementKind[]>> = {
  ddl: ['create', 'alter', 'drop', 'create-function'],
  write: ['insert', 'update', 'delete', 'merge', 'truncate', 'copy-in'],
};

/** A kind in a rule's `match.kinds`: a statement kind or an umbrella. */
export type RuleKind = StatementKind | keyof typeof KIND_UMBRELLAS;

/** The statement kinds `kind` stands for (itself, or the members of an umbrella). */
export function expandKind(kind: RuleKind): readonly StatementKind[] {
  return kind === 'ddl' || kind === 'write' ? KIND_UMBRELLAS[kind] : [kind];
}

/**
 * What a statement rule matches; every field given must match, a rule with no fields matches
 * every statement. Tables and functions are lowercase globs: `*` matches any run of characters
 * within one name part (`billing.*` is every table of `billing`; a pattern without a dot names a
 * table in any schema). See src/policy/sql/match.ts.
 */
export interface RuleMatch extends PrincipalMatch {
  kinds?: RuleKind[];
  /** Schema-qualified globs, e.g. `public.cards`, `billing.*`. */
  tables?: string[];
  /** Function names or globs, e.g. `pg_read_file`, `dblink*`. */
  functions?: string[];
  /** UPDATE / DELETE / MERGE / INSERT ... ON CONFLICT DO UPDATE that may reach every row (see `StatementFacts.missingWhere`). */
  missingWhere?: true;
  cteDml?: true;
  multiStatement?: true;
  /** COPY to or from these: `client` (STDIN / STDOUT), `file` (a file on the server), `program` (a command the server runs). */
  copyTarget?: Array<'client' | 'file' | 'program'>;
  connections?: string[];
  subjects?: string[];
  groups?: string[];
}

/** One statement rule. */
export interface StatementRule {
  name: string;
  match: RuleMatch;
  action: Action;
  message?: string;
  /** For `action: review` (or `overLimit: review`): who reviews and how, over the connection's {@link Reviewers}. */
  review?: Partial<ReviewSettings>;
  /** For `action: allow`: the most rows a write it matches may change (see {@link RowLimit}). */
  maxAffectedRows?: number;
  /** What happens to a write over {@link maxAffectedRows}: refused (default) or held for review. */
  overLimit?: 'deny' | 'review';
}

/**
 * The blast-radius guard on a write: the most rows an UPDATE, DELETE, MERGE or INSERT ... ON
 * CONFLICT DO UPDATE (also inside a WITH) may change, counted by the database before the write
 * commits; `overLimit`: what happens to one over it (rolled back, then refused or held for review).
 */
export interface RowLimit {
  maxRows: number;
  overLimit: 'deny' | 'review';
  /** The rule (statement or access rule) that set it. */
  rule: string;
}

/**
 * An automated reviewer: a service the gateway sends each held statement or command to, signed
 * (HMAC-SHA256 with `secret`), whose answer (approve, deny, or leave it to people) is a decision;
 * no answer within `timeoutMs`, or a bad one, leaves it to people.
 */
export const reviewServiceSettingsSchema = recordObject({
  name: z.string(),
  /** An http(s) URL, or a secret reference to one. */
  url: z.string(),
  /** A secret reference to the key requests are signed with. */
  secret: z.string(),
  timeoutMs: z.number().int().positive(),
});
export type ReviewService = z.infer<typeof reviewServiceSettingsSchema>;

/**
 * How a statement held by a `review` rule is reviewed: who may decide, how many approvals it
 * needs, how long it waits, and who is told. As the gateway keeps it with a review
 * (`hoop.reviews.settings`), read back with this schema; a policy writes it as `reviewersSchema`
 * and a rule's `review` check.
 */
export const reviewSettingsSchema = recordObject({
  /** Groups whose members may approve or deny (a review no group can decide is refused at once). */
  groups: z.array(z.string()),
  /** Approvals from distinct reviewers needed; one denial decides. Default 1. */
  approvals: z.number().int().min(1),
  /** How long the statement is held waiting for a decision, in ms. Default 10 minutes. */
  timeoutMs: z.number().min(0),
  /** Whether the requester may approve their own statement. Default false. */
  selfApprove: z.boolean(),
  /** An approval also lets statements of the same shape run in that session for this long (ms); 0: only the held one. */
  windowMs: z.number().min(0),
  notify: z.array(reviewNotifySchema),
  /** A service asked to decide first (an automated reviewer); its approval counts as one. */
  service: reviewServiceSettingsSchema.optional(),
});
export type ReviewSettings = z.infer<typeof reviewSettingsSchema>;

/** Review settings for the connections they name (all when `connections` is absent); the first that names a connection is its default. */
export interface Reviewers extends Partial<ReviewSettings> {
  connections?: string[];
}

/** Defaults of {@link ReviewSettings} a policy does not set. */
export const REVIEW_DEFAULTS: Omit<ReviewSettings, 'groups'> = { approvals: 1, timeoutMs: 10 * 60_000, selfApprove: false, windowMs: 0, notify: [] };

/** The PostgreSQL statement rules. */
export interface StatementPolicy {
  /** What happens to SQL the PostgreSQL parser rejects. */
  unparseable: Action;
  rules: StatementRule[];
  /** Review defaults, by connection (`statements.reviewers`). */
  reviewers?: Reviewers[];
}

/**
 * Who may use which connections, how and for how long. The principal keys (`via`, `agents`,
 * `isolated`) narrow whom it admits: all of them must hold besides a subject, email or group.
 */
export interface AccessRule extends PrincipalMatch {
  name: string;
  /** `*` admits any authenticated identity. */
  subjects: string[];
  emails: string[];
  groups: string[];
  /** Connection names, or `*` for all. */
  connections: string[];
  mode: 'read-only' | 'read-write';
  maxSessionSeconds?: number;
  /** Sessions one identity may have open at once on a gateway under this rule (default 32). */
  maxSessions?: number;
  /** Server timeouts of the sessions it admits (`statementTimeout`, `lockTimeout`, `idleInTransactionTimeout` in the file), in ms. */
  limits?: SessionLimits;
  /**
   * Just-in-time access: the rule admits nobody until a request (`hoop request`) is approved; it
   * then admits the requester for the time asked, at most {@link maxGrantSeconds}.
   */
  requestable?: boolean;
  /** Longest grant a request may ask for (default 8 hours). */
  maxGrantSeconds?: number;
  /** Who approves requests for it, over the connection's `statements.reviewers`. */
  review?: Partial<ReviewSettings>;
  /** The most rows one write of the sessions it admits may change (see {@link RowLimit}), and what happens over it. */
  maxAffectedRows?: number;
  overLimit?: 'deny' | 'review';
  /** PostgreSQL: the database roles (the connection's `user` or its `roles`) and databases a session may pick (./database-access.ts); absent: the connection's own. */
  roles?: string[];
  databases?: string[];
}

/** Default of {@link AccessRule.maxGrantSeconds}. */
export const DEFAULT_MAX_GRANT_SECONDS = 8 * 3600;

/** The identity a decision is about. */
export interface Who {
  subject: string;
  email?: string;
  groups: string[];
  /** How the session came and, for an agent, its run (absent: the person's own session, `via: connect`). */
  principal?: Principal;
}

/** How a masked value is rewritten. `hash` is a keyed HMAC, so equal values still join. */
export type MaskStrategy = 'redact' | 'last4' | 'hash' | 'null';

/** The content detectors masking can use. */
export const DETECTORS = ['payment-card', 'email', 'us-ssn', 'iban', 'secret-token'] as const;

/** One content detector. */
export type Detector = (typeof DETECTORS)[number];

/**
 * What to mask and how. An entry with principal keys (`via`, `agents`, `isolated`) applies only to
 * the sessions they match (see {@link maskingFor}).
 */
export interface MaskingPolicy {
  /** HMAC key reference for `hash`; resolved by whoever masks. */
  key?: SecretRef;
  /** By origin; `table` is schema-qualified and lowercase, `column` lowercase. */
  columns: ({ table: string; column: string; strategy: MaskStrategy } & PrincipalMatch)[];
  /** By column name: `pattern` as written, `regex` compiled case-insensitively. */
  names: ({ pattern: string; regex: Pick<LinearRegex, 'test'>; strategy: MaskStrategy } & PrincipalMatch)[];
  detectors: ({ detector: Detector; strategy: MaskStrategy } & PrincipalMatch)[];
  /** Values computed from masked columns (expressions, aggregates, whole rows): mask them or deny the statement. */
  derived: 'mask' | 'deny';
}

/** What the gateway's recordings of sessions keep, and what happens when one cannot be written. */
export interface RecordingPolicy {
  /** `masked`: rows as the client received them; `none`: statements, shapes and outcomes without rows. */
  results: 'masked' | 'none';
  /** Rows recorded per result (the rest are counted). */
  rowCap: number;
  /**
   * When the recording cannot be written: `close` ends the session with an error, `refuse` refuses
   * new sessions and lets running ones go on unrecorded (flagged), `continue` goes on (flagged).
   */
  onFailure: 'close' | 'refuse' | 'continue';
  /** Groups whose members may list and read everyone's sessions (others see their own). */
  auditors: string[];
  /** Recordings of sessions that ended longer ago are deleted (the deletion is logged); absent: kept. */
  retentionDays?: number;
  /** SSH: whose input is recorded: none, commands' only (`exec`, the default), or shells' too (`all`). */
  sshInput?: 'none' | 'exec' | 'all';
}

/**
 * What an agent's run may be (`hoop run`, `hoop mcp`): how long its credential lives at most, how
 * long it lives without a sign of life from its `hoop`, and whether a run whose command is not
 * contained is refused.
 */
export interface RunPolicy {
  maxSeconds: number;
  heartbeatTimeoutMs: number;
  requireIsolation: boolean;
  /** Where a contained run's command may connect besides the gateway (./egress.ts). */
  egress: EgressRule[];
  /** `gate`: a run's changes reach its person only through the gate (a run that writes the tree directly, `--apply live` or not contained, is refused); `any`: the person chooses. */
  apply: 'gate' | 'any';
  /** Whose runs' changes are shown for review before they apply: every run's (true), none (false), or those of the agents named (globs). */
  review: boolean | string[];
  /** Paths (globs, in a place of the run) the gate lets through though they are controls (`.vscode/settings.json`). */
  applyControls: string[];
}

/** Defaults of {@link RunPolicy}: 12 hours, a minute without a heartbeat, contained or not, nowhere but the gateway; the gate or live as the person says, no review asked, no control let through. */
export const RUN_DEFAULTS: RunPolicy = { maxSeconds: 12 * 3600, heartbeatTimeoutMs: 60_000, requireIsolation: false, egress: [], apply: 'any', review: false, applyControls: [] };

/** What a person's decisions (a review's, an access request's) need besides a person's credential. */
export interface ReviewPolicy {
  /** Ms since the person last signed in interactively (`auth_time`), at most; absent: any sign-in. */
  requireSignInWithinMs?: number;
}

/** What an SSH test case asks of a connection: a shell, a command, sftp, or a forwarded port. */
/** What an MCP case asks: a tool by name with its arguments, a resource by URI, a prompt by name. */
export type McpTestRequest = { kind: 'tool'; name: string; arguments: unknown } | { kind: 'resource'; uri: string } | { kind: 'prompt'; name: string; arguments: unknown };

export type SshTestRequest = { kind: 'shell' } | { kind: 'exec'; command: string } | { kind: 'sftp' } | { kind: 'forward'; host: string; port: number };

/** One masked result column a masking test case expects, with its strategy when it names one. */
export interface ExpectedMask {
  column: string;
  /** A whole-value strategy, or `detector`: parts of the value masked by the content detectors. */
  strategy?: MaskStrategy | 'detector';
}

/**
 * One test case from `policy/tests/*.yaml`: an identity, a connection and what it asks (SQL, or an
 * SSH shell, command, sftp or forward), and what must come of it: a decision, alerts, masked
 * columns (see ./test-cases.ts for the file's format).
 */
export interface PolicyTest {
  name: string;
  as: Who;
  connection: string;
  /** PostgreSQL: the statements, in order (one Query message each). */
  sql?: string[];
  /** SSH: what the session asks, in order. */
  ssh?: SshTestRequest[];
  /** MCP: the tool calls, resource reads and prompts the session asks for, in order. */
  mcp?: McpTestRequest[];
  /** The decision everything asked must get (absent: only `alerts` and `masked` are checked). */
  expect?: Action;
  /** Rows each allowed statement reads, for `rows-read` alerts (default 0). */
  rows?: number;
  /** The alerts the statements raise together, exactly (absent: not checked). */
  alerts?: string[];
  /** When the statements run, for `off-hours` alerts (absent: no time, so those never count). */
  at?: Date;
  /** The rule expected to decide, when the case names one. */
  rule?: string;
  /**
   * The result columns (by name) that come back masked, every other one as the database holds
   * it: checked by running the statements on `fixture`'s data through the gateway's PostgreSQL
   * engine, or, without a fixture, on the connection through the gateway.
   */
  masked?: ExpectedMask[];
  /** The SQL that makes the data `masked` is checked on (`file`, relative to the repo), in a scratch database. */
  fixture?: { file: string; sql: string };
  /** `file:line:col` of the case. */
  source: string;
}

/**
 * A connection of the bundle. `allow` is always empty: access is decided by the bundle's
 * `access` rules ({@link accessFor} in `./access.ts`), never by the connection.
 */
export type PolicyConnection = ConnectionConfig;

/** A word of an SSH step: literal text, or a parameter's value as one word. */
export type CommandWord = string | { param: string };

/** One step. */
export type RunbookStep =
  | { kind: 'sql'; sql: string; params: readonly string[] }
  | { kind: 'ssh'; words: readonly CommandWord[] }
  /** A request on an HTTP connection: its path's segments and its query's values each a literal or one parameter's value, its JSON body a template (a string exactly `{name}` is that value). */
  | { kind: 'http'; method: string; path: readonly CommandWord[]; query: ReadonlyArray<readonly [string, CommandWord]>; json?: unknown };

/** Who may run a runbook: every key given must hold. */
export interface RunbookGrant extends PrincipalMatch {
  subjects?: string[];
  groups?: string[];
}

/** A runbook as loaded. */
export interface Runbook {
  name: string;
  /** Its file in the repo (`runbooks/<name>.yaml`). */
  file: string;
  /** SHA-256 of the file's bytes, hex. */
  digest: string;
  description: string;
  connection: string;
  params: RunbookParams;
  steps: readonly RunbookStep[];
  run: readonly RunbookGrant[];
  /** The review a run waits for (over the connection's reviewers); absent: none. */
  review?: Partial<ReviewSettings>;
  maxAffectedRows?: number;
  deadlineMs: number;
  returns?: readonly string[];
  /** Statement rules its run is exempt from, by name. */
  bypass?: readonly string[];
}

/** A loaded, validated policy bundle. */
export interface Policy {
  /** The git commit it was loaded from, when it came from a repo. */
  commit?: string;
  connections: PolicyConnection[];
  access: AccessRule[];
  statements: StatementPolicy;
  masking: MaskingPolicy;
  recording: RecordingPolicy;
  /** What sessions on SSH connections may do (absent: {@link SSH_DEFAULTS}). */
  ssh?: SshPolicy;
  /** What sessions on MCP connections may call, read and see (absent: {@link MCP_DEFAULTS}). */
  mcp?: McpPolicy;
  /** What requests on HTTP connections may do (absent: {@link HTTP_DEFAULTS}). */
  http?: HttpPolicy;
  /** Agents' runs (absent: {@link RUN_DEFAULTS}). */
  runs?: RunPolicy;
  /** Decisions by people (absent: no extra requirement). */
  reviews?: ReviewPolicy;
  /** Alert rules (absent: none). */
  alerts?: AlertRule[];
  /** Named operations (`runbooks/*.yaml`; absent: none). */
  runbooks?: Runbook[];
  tests: PolicyTest[];
}

const lowerList = (what: string, min?: string) => (min ? list(what).min(1, { error: min }) : list(what)).transform((v) => v.map((s) => s.toLowerCase()));
export const action = z.enum(['allow', 'deny', 'review'], { error: 'must be allow, deny or review' });
export const strategy = z.enum(['redact', 'last4', 'hash', 'null'], { error: 'must be redact, last4, hash or null' });
const onlyTrue = (field: string) => z.literal(true, { error: `write ${field}: true, or leave it out` });
const secretText = z.string({ error: 'must be a secret reference like ${env:NAME} or ${file:/absolute/path}' });

/** A server timeout: a number of seconds, or a PostgreSQL time such as "30s", "500ms", "5min"; in ms. */
export const timeoutSchema = z.union([z.number(), z.string()], { error: 'must be a time such as 30s, 500ms, 5min (or a number of seconds)' }).transform((v, ctx) => {
  const ms = typeof v === 'number' ? Math.round(v * 1000) : parseTimeSetting(v);
  if (ms === undefined || !Number.isFinite(ms) || ms <= 0 || ms > 86_400_000) {
    ctx.addIssue({ code: 'custom', message: 'must be a time from 1ms to 24h, such as 30s, 500ms, 5min (or a number of seconds)' });
    return z.NEVER;
  }
  return ms;
});

/** An access rule. */
export const accessRuleSchema = z.strictObject({
  name: nameSchema,
  subjects: list('a subject or "*"').default([]),
  emails: lowerList('an email address').default([]),
  groups: list('a group name').default([]),
  connections: list('a connection name or "*"').min(1, { error: 'must list at least one connection (or "*")' }),
  mode: z.enum(['read-only', 'read-write'], { error: 'must be read-only or read-write' }).default('read-only'),
  maxSessionSeconds: z.lazy(() => minuteToWeekSchema).optional(),
  maxSessions: z
    .number({ error: 'must be a whole number of sessions from 1 to 100000' })
    .int({ error: 'must be a whole number of sessions from 1 to 100000' })
    .min(1, { error: 'must be a whole number of sessions from 1 to 100000' })
    .max(100_000, { error: 'must be a whole number of sessions from 1 to 100000' })
    .optional(),
  statementTimeout: timeoutSchema.optional(),
  lockTimeout: timeoutSchema.optional(),
  idleInTransactionTimeout: timeoutSchema.optional(),
  requestable: z.boolean({ error: 'must be true or false' }).optional(),
  maxGrant: z
    .union([z.number(), z.string()], { error: 'must be a time such as 1h, 30min (or a number of seconds)' })
    .transform((v, ctx) => {
      const ms = typeof v === 'number' ? Math.round(v * 1000) : parseTimeSetting(v);
      if (ms === undefined || !Number.isFinite(ms) || ms < 1000 || ms > 7 * 86_400_000) {
        ctx.addIssue({ code: 'custom', message: 'must be a time from 1s to 7 days, such as 1h or 30min' });
        return z.NEVER;
      }
      return Math.round(ms / 1000);
    })
    .optional(),
  review: z.lazy(() => reviewSchema).optional(),
  maxAffectedRows: z.lazy(() => maxAffectedRowsSchema).optional(),
  overLimit: z.lazy(() => overLimitSchema).optional(),
  roles: list('a database role').min(1, { error: 'must list at least one database role' }).optional(),
  databases: list('a database name').min(1, { error: 'must list at least one database' }).optional(),
  ...principalMatchFields,
});

const kindSchema = z.enum([...STATEMENT_KINDS, 'ddl', 'write'], {
  error: `must be one of ${[...STATEMENT_KINDS, 'ddl', 'write'].join(', ')}`,
});

/** What a statement rule matches. */
export const ruleMatchSchema = z.strictObject({
  kinds: z.array(kindSchema, { error: 'must be a list of statement kinds' }).min(1, { error: 'must list at least one kind' }).optional(),
  tables: lowerList('a table name or glob', 'must list at least one table').optional(),
  functions: lowerList('a function name or glob', 'must list at least one function').optional(),
  missingWhere: onlyTrue('missingWhere').optional(),
  cteDml: onlyTrue('cteDml').optional(),
  multiStatement: onlyTrue('multiStatement').optional(),
  copyTarget: z
    .array(z.enum(['client', 'file', 'program'], { error: 'must be client, file or program' }), { error: 'must be a list of client, file, program' })
    .min(1, { error: 'must list at least one of client, file, program' })
    .optional(),
  connections: list('a connection name').min(1, { error: 'must list at least one connection' }).optional(),
  subjects: list('a subject').min(1, { error: 'must list at least one subject' }).optional(),
  groups: list('a group name').min(1, { error: 'must list at least one group' }).optional(),
  ...principalMatchFields,
});

/** The review settings of a rule or a connection (all optional: they are merged over the defaults). */
const reviewFields = {
  groups: list('a group name').min(1, { error: 'must list at least one group of reviewers' }).optional(),
  approvals: z.number({ error: 'must be a number of approvals' }).int({ error: 'must be a whole number' }).min(1, { error: 'must be at least 1' }).max(10, { error: 'must be at most 10' }).optional(),
  timeout: timeoutSchema.optional(),
  selfApprove: z.boolean({ error: 'must be true or false' }).optional(),
  window: timeoutSchema.optional(),
  notify: z.array(notifySchema, { error: 'must be a list of { url, format }' }).max(10, { error: 'must list at most 10 targets' }).optional(),
  service: z.lazy(() => reviewServiceSchema).optional(),
};
export const reviewSchema = z.strictObject(reviewFields);
/** One entry of `statements.reviewers`. */
export const reviewersSchema = z.strictObject({ connections: list('a connection name').min(1, { error: 'must list at least one connection' }).optional(), ...reviewFields });

export const maxAffectedRowsSchema = z
  .number({ error: 'must be a number of rows' })
  .int({ error: 'must be a whole number of rows' })
  .min(0, { error: 'must be at least 0' })
  .max(1_000_000_000, { error: 'must be at most 1000000000' });
const overLimitSchema = z.enum(['deny', 'review'], { error: 'must be deny (the write is rolled back and refused) or review (rolled back and held for a reviewer)' });

/** A statement rule. */
export const statementRuleSchema = z.strictObject({
  name: nameSchema,
  match: ruleMatchSchema.default({}),
  action,
  message: nonEmpty('a message').optional(),
  review: reviewSchema.optional(),
  maxAffectedRows: maxAffectedRowsSchema.optional(),
  overLimit: overLimitSchema.optional(),
});

/** Review settings as the policy keeps them, from their YAML fields. */
export function reviewSettingsOf(v: z.infer<typeof reviewSchema>): Partial<ReviewSettings> {
  return {
    ...(v.groups !== undefined ? { groups: v.groups } : {}),
    ...(v.approvals !== undefined ? { approvals: v.approvals } : {}),
    ...(v.timeout !== undefined ? { timeoutMs: v.timeout } : {}),
    ...(v.selfApprove !== undefined ? { selfApprove: v.selfApprove } : {}),
    ...(v.window !== undefined ? { windowMs: v.window } : {}),
    ...(v.notify !== undefined ? { notify: v.notify } : {}),
    ...(v.service !== undefined ? { service: { name: v.service.name, url: v.service.url, secret: v.service.secret, timeoutMs: v.service.timeout ?? 10_000 } } : {}),
  };
}

const tableName = lowerName('a table name such as public.customers')
  .refine((v) => /^[^.\s]+(\.[^.\s]+)?$/.test(v), { error: 'must be schema.table or table (no spaces)' })
  .transform((v) => (v.includes('.') ? v : `public.${v}`));

const patternSchema = z.string({ error: 'must be a regular expression' }).check((ctx) => {
  try {
    new LinearRegex(ctx.value, { ignoreCase: true });
  } catch (err) {
    ctx.issues.push({ code: 'custom', input: ctx.value, message: `is not a regular expression hoop runs: ${(err as Error).message}` });
  }
});

/** The masking section. */
export const maskingSchema = z.strictObject({
  key: secretText.optional(),
  columns: z.array(z.strictObject({ table: tableName, column: lowerName('a column name'), strategy, ...principalMatchFields })).default([]),
  names: z.array(z.strictObject({ pattern: patternSchema, strategy, ...principalMatchFields })).default([]),
  detectors: z.array(z.strictObject({ detector: z.enum(DETECTORS, { error: `must be one of ${DETECTORS.join(', ')}` }), strategy, ...principalMatchFields })).default([]),
  derived: z.enum(['mask', 'deny'], { error: 'must be mask or deny' }).optional(),
});

/** The recording section. */
export const recordingSchema = z.strictObject({
  results: z.enum(['masked', 'none'], { error: 'must be masked (rows as the client received them) or none (no rows)' }).optional(),
  rowCap: z
    .number({ error: 'must be a number of rows' })
    .int({ error: 'must be a whole number' })
    .min(0, { error: 'must be at least 0' })
    .max(1_000_000, { error: 'must be at most 1000000' })
    .optional(),
  onFailure: z.enum(['close', 'refuse', 'continue'], { error: 'must be close, refuse or continue' }).optional(),
  auditors: z.array(z.string({ error: 'must be a group name' }).trim().min(1, { error: 'must be a group name' }), { error: 'must be a list of groups' }).optional(),
  sshInput: z.enum(['none', 'exec', 'all'], { error: "must be none, exec (what commands read; the default) or all (shells' keystrokes too)" }).optional(),
  retentionDays: z
    .number({ error: 'must be a number of days' })
    .int({ error: 'must be a whole number of days' })
    .min(1, { error: 'must be at least 1' })
    .max(36500, { error: 'must be at most 36500' })
    .optional(),
});

export const versionSchema = z.literal(1, { error: 'must be 1 (the only bundle version)' });

/** What an `ssh` rule matches; every field given must match. */
export interface SshRuleMatch extends PrincipalMatch {
  /** Interactive shells (`ssh host` with no command). */
  shell?: true;
  /** Globs over each command a line runs (its words joined by spaces), `ssh host <command>`'s line as the target's shell parses it. */
  commands?: string[];
  /** Regular expressions searched in each command a line runs (and in the line as sent). */
  patterns?: string[];
  /** `allow`: the globs and patterns match the whole line as sent, shell syntax and all (`;`, `|`, `$(…)`, redirections). */
  shellSyntax?: 'allow';
  connections?: string[];
  subjects?: string[];
  groups?: string[];
}

/** One `ssh` rule. */
export interface SshRule {
  name: string;
  match: SshRuleMatch;
  action: Action;
  message?: string;
  review?: Partial<ReviewSettings>;
}

/** The `ssh` section as loaded. */
export interface SshPolicy {
  default: Action;
  sftp: 'allow' | 'read-only' | 'deny';
  /** `host:port` globs `direct-tcpip` channels may reach. */
  forwarding: string[];
  /** Names (globs) of environment variables a client may set. */
  env: string[];
  rules: SshRule[];
}

/** The section's defaults: shells and commands allowed, sftp allowed, no forwarding, LANG and LC_* only. */
export const SSH_DEFAULTS: SshPolicy = { default: 'allow', sftp: 'allow', forwarding: [], env: ['LANG', 'LC_*'], rules: [] };

const sshList = (what: string) => z.array(nonEmpty(what), { error: `must be a list of ${what}s` }).min(1, { error: `must list at least one ${what}` });
const sshRegex = z.string({ error: 'must be a regular expression' }).check((ctx) => {
  try {
    new LinearRegex(ctx.value);
  } catch (err) {
    ctx.issues.push({ code: 'custom', input: ctx.value, message: `is not a regular expression hoop runs: ${(err as Error).message}` });
  }
});
const sshTarget = z.string({ error: 'must be host:port' }).regex(/^[^\s:]+:(\*|[0-9]{1,5})$/, { error: 'must be host:port, e.g. db.internal:5432 (globs: *.internal:443, db:*)' });

/**
 * The `rules` of an `ssh` or `mcp` section: each a name, what it matches (`what`, narrowed by the
 * connections, subjects, groups and principal it names), an action, a message and review settings.
 */
function ruleList<W extends z.ZodRawShape>(what: W) {
  return z
    .array(
      z.strictObject({
        name: nameSchema,
        match: z
          .strictObject({
            ...what,
            connections: sshList('connection name').optional(),
            subjects: sshList('subject').optional(),
            groups: sshList('group name').optional(),
            ...principalMatchFields,
          })
          .default({} as never),
        action,
        message: nonEmpty('a message').optional(),
        review: reviewSchema.optional(),
      }),
      { error: 'must be a list of rules' },
    )
    .default([]);
}

/** The schema of the `ssh` section of one policy file (merged across files by the loader). */
export const sshSectionSchema = z.strictObject({
  default: action.optional(),
  sftp: z.enum(['allow', 'read-only', 'deny'], { error: 'must be allow, read-only or deny' }).optional(),
  forwarding: z.array(sshTarget, { error: 'must be a list of host:port targets' }).optional(),
  // Never: the target would reach the user's keys (or display) through the tunnel, the very thing hoop keeps from agents.
  agentForwarding: z.literal(false, { error: "must be false: hoop never forwards the user's SSH agent to a target (the gateway's credential signs in; use forwarding: for ports)" }).optional(),
  x11Forwarding: z.literal(false, { error: "must be false: hoop never forwards X11 to a target (the target would reach the user's display)" }).optional(),
  env: z
    .array(z.string({ error: 'must be a variable name or glob' }).regex(/^[A-Za-z_*][A-Za-z0-9_*]*$/, { error: 'must be a variable name or glob such as LC_*' }), {
      error: 'must be a list of variable names',
    })
    .optional(),
  rules: ruleList({
    shell: z.literal(true, { error: 'write shell: true, or leave it out' }).optional(),
    commands: sshList('command glob').optional(),
    patterns: z.array(sshRegex, { error: 'must be a list of regular expressions' }).min(1, { error: 'must list at least one pattern' }).optional(),
    shellSyntax: z.literal('allow', { error: "must be allow (the rule's globs then match the whole line, shell syntax and all), or left out" }).optional(),
  }),
});

/** How a rule matches one argument of a tool call or prompt: globs over its text, or a JSON value it equals. */
export type McpArgumentMatch = { globs: string[] } | { equals: unknown };

/** What an `mcp` rule matches; every field given must match. */
export interface McpRuleMatch extends PrincipalMatch {
  /** Globs over tool names (`tools/call`). */
  tools?: string[];
  /** Globs over resource URIs (`resources/read`, `resources/subscribe`). */
  resources?: string[];
  /** Globs over prompt names (`prompts/get`). */
  prompts?: string[];
  /** Matchers of a call's (or prompt's) arguments, by name (`a.b` reaches into an object). */
  arguments?: Record<string, McpArgumentMatch>;
  connections?: string[];
  subjects?: string[];
  groups?: string[];
}

/** One `mcp` rule. */
export interface McpRule {
  name: string;
  match: McpRuleMatch;
  action: Action;
  message?: string;
  review?: Partial<ReviewSettings>;
}

/** The `mcp` section as loaded. */
export interface McpPolicy {
  default: Action;
  /** What an MCP server may ask the agent (`sampling/createMessage`, `elicitation/create`, `roots/list`); nothing by default. */
  serverRequests: Array<'sampling' | 'elicitation' | 'roots'>;
  rules: McpRule[];
}

/** The section's defaults: calls, reads and prompts allowed, no server requests. */
export const MCP_DEFAULTS: McpPolicy = { default: 'allow', serverRequests: [], rules: [] };

const mcpArgument = z.union(
  [
    nonEmpty('a glob').transform((g) => ({ globs: [g] })),
    z
      .array(nonEmpty('a glob'), { error: 'must be a list of globs' })
      .min(1, { error: 'must list at least one glob' })
      .transform((globs) => ({ globs })),
    z.strictObject({ equals: z.json({ error: 'must be a JSON value' }) }).transform((m) => ({ equals: m.equals })),
  ],
  { error: 'must be a glob, a list of globs, or { equals: <JSON value> }' },
);

/** The schema of the `mcp` section of one policy file (merged across files by the loader). */
export const mcpSectionSchema = z.strictObject({
  default: action.optional(),
  serverRequests: z.array(z.enum(['sampling', 'elicitation', 'roots'], { error: 'must be sampling, elicitation or roots' }), { error: 'must be a list' }).optional(),
  rules: ruleList({
    tools: sshList('tool name glob').optional(),
    resources: sshList('resource URI glob').optional(),
    prompts: sshList('prompt name glob').optional(),
    arguments: z.record(z.string().regex(/^[^.\s]+(\.[^.\s]+)*$/, { error: 'must be an argument name (a.b reaches into an object)' }), mcpArgument).optional(),
  }),
});

/** How a rule matches a value of an HTTP request (a query parameter, a header, a JSON body field): globs over its text, or a JSON value it equals. */
export type HttpValueMatch = McpArgumentMatch;

/** What an `http` rule matches; every field given must match. */
export interface HttpRuleMatch extends PrincipalMatch {
  /** Request methods (`GET`, `POST`, …), upper case. */
  methods?: string[];
  /** Globs over the request's path, decoded (`*` within one segment, `**` across them). */
  paths?: string[];
  /** Matchers of query parameters, by name. */
  query?: Record<string, HttpValueMatch>;
  /** Matchers of headers, by name (lower case). */
  headers?: Record<string, HttpValueMatch>;
  /** Matchers of the JSON body's fields, by path (`a.b` reaches into an object). */
  body?: Record<string, HttpValueMatch>;
  connections?: string[];
  subjects?: string[];
  groups?: string[];
}

/** One `http` rule. */
export interface HttpRule {
  name: string;
  match: HttpRuleMatch;
  action: Action;
  message?: string;
  review?: Partial<ReviewSettings>;
}

/** The `http` section as loaded. */
export interface HttpPolicy {
  default: Action;
  rules: HttpRule[];
  /** Media types (`type/subtype`, globs: `image/*`) whose responses pass unmasked on a session that masks: every other type but JSON, NDJSON and event streams is refused there. */
  unmasked: string[];
  /** Requests one identity may make a minute on each HTTP connection (of one gateway); absent: no limit. */
  requestsPerMinute?: number;
  /** The largest request body taken, in bytes. */
  maxRequestBytes: number;
}

/** The section's defaults: requests allowed, bodies up to 8 MiB. */
export const HTTP_DEFAULTS: HttpPolicy = { default: 'allow', rules: [], unmasked: [], maxRequestBytes: 8 * 1024 * 1024 };

const HTTP_METHOD = /^[A-Z][A-Z-]{0,31}$/;
/** A header's name (RFC 9110 §5.1: a token). */
const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** The schema of the `http` section of one policy file (merged across files by the loader). */
export const httpSectionSchema = z.strictObject({
  default: action.optional(),
  requestsPerMinute: z.number({ error: 'must be a number of requests from 1 to 1000000' }).int({ error: 'must be a whole number' }).min(1).max(1_000_000).optional(),
  maxRequestBytes: z
    .number({ error: 'must be a number of bytes from 1 to 67108864 (64 MiB)' })
    .int({ error: 'must be a whole number' })
    .min(1, { error: 'must be at least 1' })
    .max(64 * 1024 * 1024, { error: 'must be at most 67108864 (64 MiB)' })
    .optional(),
  unmasked: z
    .array(
      z.string({ error: 'must be a media type' }).regex(/^[a-z0-9*][a-z0-9!#$&^_.+*-]*\/[a-z0-9*][a-z0-9!#$&^_.+*-]*$/, { error: 'must be a media type in lower case, such as image/png or image/*' }),
      {
        error: 'must be a list of media types',
      },
    )
    .optional(),
  rules: ruleList({
    methods: z
      .array(
        z
          .string({ error: 'must be a method name' })
          .transform((m) => m.toUpperCase())
          .pipe(z.string().regex(HTTP_METHOD, { error: 'must be a method name such as GET or POST' })),
        { error: 'must be a list of methods' },
      )
      .min(1, { error: 'must list at least one method' })
      .optional(),
    paths: z
      .array(z.string({ error: 'must be a path glob' }).regex(/^\/\S*$/, { error: 'must be a path glob starting with / (e.g. /orders/*/refund, /admin/**)' }), {
        error: 'must be a list of path globs',
      })
      .min(1, { error: 'must list at least one path glob' })
      .optional(),
    query: z.record(nonEmpty('a parameter name'), mcpArgument).optional(),
    headers: z
      .record(z.string(), mcpArgument)
      .superRefine((headers, ctx) => {
        for (const name of Object.keys(headers)) if (!HEADER_NAME.test(name)) ctx.addIssue({ code: 'custom', path: [name], message: "must be a header name (letters, digits and !#$%&'*+-.^_`|~)" });
      })
      .transform((headers) => Object.fromEntries(Object.entries(headers).map(([name, m]) => [name.toLowerCase(), m])))
      .optional(),
    body: z.record(z.string().regex(/^[^.\s]+(\.[^.\s]+)*$/, { error: 'must be a JSON field name (a.b reaches into an object)' }), mcpArgument).optional(),
  }),
});

/** One policy file (`hoop.yaml` or `policy/*.yaml`); scalar settings are optional so files can be merged. */
export const policyFileSchema = z.strictObject(
  {
    version: versionSchema,
    connections: z.array(policyConnectionSchema, { error: 'must be a list of connections' }).default([]),
    access: z.array(accessRuleSchema, { error: 'must be a list of access rules' }).default([]),
    statements: z
      .strictObject({
        unparseable: action.optional(),
        rules: z.array(statementRuleSchema, { error: 'must be a list of rules' }).default([]),
        reviewers: z.array(reviewersSchema, { error: 'must be a list of review settings' }).default([]),
      })
      .optional(),
    masking: maskingSchema.optional(),
    recording: recordingSchema.optional(),
    ssh: sshSectionSchema.optional(),
    mcp: mcpSectionSchema.optional(),
    http: httpSectionSchema.optional(),
    runs: z.lazy(() => runsSchema).optional(),
    reviews: z.lazy(() => reviewsSchema).optional(),
    alerts: z
      .array(
        z.lazy(() => alertRuleSchema),
        { error: 'must be a list of alert rules' },
      )
      .default([]),
  },
  { error: (iss) => (iss.code === 'invalid_type' ? 'the file must be a mapping (key: value) at the top level' : undefined) },
);

/** A number of seconds from a minute to a week (a session's, a run's longest). */
const minuteToWeekSchema = z
  .number({ error: 'must be a number of seconds' })
  .int({ error: 'must be a whole number of seconds' })
  .min(60, { error: 'must be at least 60 seconds' })
  .max(7 * 24 * 3600, { error: 'must be at most 604800 seconds (7 days)' });

/** One `host:port` a contained run's command may reach (./egress.ts). */
const egressDestinationSchema = z.string({ error: 'must be host:port' }).superRefine((v, ctx) => {
  const problem = egressProblem(v);
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
});

/** The `runs` section: agents' runs. */
export const runsSchema = z.strictObject({
  maxSeconds: minuteToWeekSchema.optional(),
  heartbeatTimeout: timeBetween(5_000, 3_600_000, '1min').optional(),
  requireIsolation: z.boolean({ error: 'must be true (runs whose command is not contained are refused) or false' }).optional(),
  apply: z.enum(['gate', 'any'], { error: "must be gate (a run's changes reach its person only through the gate) or any (the person chooses)" }).optional(),
  review: z.union([z.boolean(), principalMatchFields.agents.unwrap()], { error: "must be true (every run's changes are reviewed before they apply), false, or a list of agents' names" }).optional(),
  applyControls: z.array(z.string().min(1), { error: "must be a list of paths (globs) in a run's tree, such as .vscode/settings.json" }).optional(),
  egress: z
    .array(
      z.union(
        [
          egressDestinationSchema,
          z.strictObject({
            to: z.array(egressDestinationSchema, { error: 'must be a list of host:port' }).min(1, { error: 'must name at least one host:port' }),
            agents: principalMatchFields.agents.unwrap(),
          }),
        ],
        {
          error: 'must be host:port, or { to: [host:port, ...], agents: [name, ...] }',
        },
      ),
      { error: 'must be a list of host:port destinations' },
    )
    .optional(),
});

/** An automated reviewer (see {@link ReviewService}). */
const reviewServiceSchema = z.strictObject({
  name: nameSchema,
  url: notifySchema.shape.url,
  secret: z
    .string({ error: 'must be a secret reference like ${env:HOOP_REVIEWER_KEY}' })
    .regex(/^\$\{(env|file):[^}]+\}$/, { error: 'must be a secret reference like ${env:HOOP_REVIEWER_KEY} (the key requests are signed with; never written in the policy)' }),
  timeout: timeBetween(1_000, 60_000, '10s').optional(),
});

/** The `reviews` section: what people's decisions need. */
export const reviewsSchema = z.strictObject({
  requireSignInWithin: timeBetween(60_000, 7 * 86_400_000, '15min').optional(),
});
