/**
 * What the gateway API answers, typed once for both ends: the gateway builds these bodies, the CLI
 * reads them (and still checks what it relies on, since an older or a foreign gateway may answer).
 * Errors are `{ error: { code, message, hint?, reason? } }` with the HTTP status their code maps
 * to ({@link statusOfCode}: the one table of the codebase).
 *
 * @see https://www.rfc-editor.org/rfc/rfc9110#name-status-codes
 * @see https://openid.net/specs/openid-connect-discovery-1_0.html (what `hoop login` is told)
 */
import * as z from 'zod';
import { ErrorCode } from '../errors.js';
import { recordObject, storedTime } from '../stored-record.js';

/** The body of every error answer. `reason`: why a token was refused (a 401). @see https://www.rfc-editor.org/rfc/rfc6750#section-3.1 */
export interface ErrorBody {
  error: { code: string; message: string; hint?: string; reason?: string };
}

/** What a client reads of an error answer: each field a printable text, when present. */
export type ErrorFields = Partial<ErrorBody['error']>;

/**
 * The fields of an error answer's body (`{ error: { code, message, hint?, reason? } }`), each
 * made printable (control characters as spaces) and cut at `maxChars`; none when the body is not
 * one: a client says what it knows instead, never what a proxy or a foreign server sent raw.
 */
export function readErrorBody(body: Buffer, maxChars = 1_000): ErrorFields {
  let value: unknown;
  try {
    value = JSON.parse(body.toString('utf8'));
  } catch {
    return {};
  }
  const error = (value as { error?: unknown } | null)?.error;
  if (typeof error !== 'object' || error === null) return {};
  const out: ErrorFields = {};
  for (const key of ['code', 'message', 'hint', 'reason'] as const) {
    const field = (error as Record<string, unknown>)[key];
    if (typeof field === 'string' && field !== '') out[key] = printable(field, maxChars);
  }
  return out;
}

function printable(text: string, maxChars: number): string {
  const shown = text.replace(/[\u0000-\u001f\u007f-\u009f]+/g, ' ').trim();
  return shown.length > maxChars ? `${shown.slice(0, maxChars)}…` : shown;
}

/** The HTTP status of each error code the API answers with (any other: 500). */
const STATUS_OF_CODE: Partial<Record<ErrorCode, number>> = {
  [ErrorCode.USAGE]: 400,
  [ErrorCode.TOKEN_REJECTED]: 401,
  [ErrorCode.NOT_LOGGED_IN]: 401,
  [ErrorCode.ACCESS_DENIED]: 403,
  [ErrorCode.CONNECTION_UNKNOWN]: 404,
  [ErrorCode.SESSION_UNKNOWN]: 404,
  [ErrorCode.REVIEW_UNKNOWN]: 404,
  [ErrorCode.RUNBOOK_UNKNOWN]: 404,
  [ErrorCode.RUNBOOK_PARAM]: 400,
  [ErrorCode.TOO_MANY_SESSIONS]: 429,
  [ErrorCode.RECORDING_UNAVAILABLE]: 503,
  [ErrorCode.STORE_UNAVAILABLE]: 503,
};

/** The HTTP status an error of `code` is answered with. */
export function statusOfCode(code: ErrorCode): number {
  return STATUS_OF_CODE[code] ?? 500;
}

/** True when `code` is one the gateway answers with `status` (so a CLI may take the code the body says at its word). */
export function codeFitsStatus(code: string, status: number): code is ErrorCode {
  return (Object.values(ErrorCode) as string[]).includes(code) && statusOfCode(code as ErrorCode) === status;
}

/**
 * Which token the gateway wants: an access token (RFC 9068 JWT), an ID token, or either.
 * @see https://www.rfc-editor.org/rfc/rfc9068
 */
export type TokenKind = 'access' | 'id' | 'any';

/** `GET /v1/auth/config`: how users log in to this gateway (404 when it has no login). */
export interface AuthConfig {
  issuer: string;
  clientId: string;
  /** An installed app's client secret where the provider requires one (Google); not a secret. */
  clientSecret?: string;
  /** The login redirect's port, for providers that compare it (Okta); absent: any. */
  redirectPort?: number;
  /** More parameters of the authorization request (Google: `access_type: offline` for a refresh token). */
  authorizationParams?: Record<string, string>;
  scopes: string[];
  resource?: string;
  tokenType: TokenKind;
  /** The audience workload tokens must carry (GitHub Actions asks for it). */
  workloadAudience?: string;
}

/** What a run's credential stands for, beside its person. */
export interface RunGrantView {
  id: string;
  agent: string;
  via: 'run' | 'mcp';
  isolated: boolean;
  connections: string[];
}

/**
 * `GET /v1/whoami`: the identity the gateway makes of the caller's token.
 * @see https://openid.net/specs/openid-connect-core-1_0.html#StandardClaims
 */
export interface WhoAmI {
  subject: string;
  issuer: string;
  kind: 'user' | 'workload';
  email?: string;
  groups: string[];
  expiresAt: string;
  /** A run's credential: the run it stands for. */
  run?: RunGrantView;
}

/** `POST /v1/devices`'s answer (201 when new, 200 when it was registered already). @see https://man.openbsd.org/ssh-keygen#l (fingerprint format) */
export interface RegisteredDevice {
  deviceId: string;
  fingerprint: string;
}

/** A device key as `GET /v1/devices` lists it. */
export interface DeviceView {
  deviceId: string;
  name: string;
  fingerprint: string;
  publicKey: string;
  createdAt: string;
}

/** A connection as the gateway describes it to a caller who may use it (`GET /v1/connections[/{name}]`). */
export interface ConnectionInfo {
  name: string;
  type: string;
  /** PostgreSQL and MySQL: the database. */
  database?: string;
  /** SSH: the user the gateway signs in as. */
  user?: string;
  /** HTTP: the API's base URL (the gateway reaches it; a contained run's egress proxy routes requests for its host to the connection). */
  url?: string;
  /** SSH: the gateway's host keys (`type base64`), which the local ssh client pins. */
  hostKeys?: string[];
  /** The gateway records the connection's sessions and takes the CLI's own record of each (an SSH port then ends SSH itself to keep one). */
  clientRecords?: true;
  /** The caller's access (`read-only`, `read-write`), when the gateway's policy repo decides it. */
  mode?: string;
  /** When the access rests on an approved request (`hoop request`): when it ends. */
  until?: string;
  /** The gateway cannot open it now, and why (a secret it lacks, an unreadable CA file). */
  unavailable?: string;
  /** PostgreSQL, from `GET /v1/connections/{name}` when the policy masks anything for the caller: how (see {@link MaskingInfo}). */
  masking?: MaskingInfo;
}

/** A runbook's parameter as the gateway describes it (`GET /v1/runbooks[/{name}]`): its declaration, bounds as numbers, a pattern as written. */
export interface RunbookParamInfo {
  name: string;
  type: string;
  required: boolean;
  description?: string;
  /** Its default's canonical text. */
  default?: string;
  min?: number;
  max?: number;
  values?: string[];
  pattern?: string;
  maxLength?: number;
}

/** A runbook the caller may run, as the gateway describes it (`GET /v1/runbooks[/{name}]`): what it does and takes, and what it runs. */
export interface RunbookInfo {
  name: string;
  description: string;
  connection: string;
  parameters: RunbookParamInfo[];
  /** Its steps as written: SQL with the parameters it binds, or an SSH command's words (`{name}` a parameter's value). */
  steps: Array<{ sql: string; params: string[] } | { ssh: string[] } | { http: { method: string; path: string; query?: Record<string, string>; json?: unknown } }>;
  /** A run waits for a reviewer. */
  review: boolean;
  maxAffectedRows?: number;
  deadlineSeconds: number;
  returns?: string[];
  /** Statement rules its run is exempt from. */
  bypass?: string[];
  /** SHA-256 of its file, and the policy commit it came from (when the repo has one). */
  digest: string;
  commit?: string;
}

/** One step of a runbook's run as it ran (`POST /v1/runbooks/{name}/run`): its command tag, and the rows it returned, masked, with the columns the runbook returns. */
export interface RunbookStepResult {
  /** 1-based, as `hoop runbook show` numbers the steps. */
  step: number;
  tag: string;
  columns?: string[];
  rows?: Array<Array<string | null>>;
  /** More rows came than a run returns ({@link RUNBOOK_ROWS}): the first are here. */
  truncated?: true;
  /** An SSH step's output (its last 64 KiB of each). */
  stdout?: string;
  stderr?: string;
}

/** One step's outcome as its lane's runner says it: its result, and why it failed when it did. */
export type StepOutcome = { result: RunbookStepResult; failed?: { message: string; refused?: boolean } };

/** The most rows a run returns of one step. */
export const RUNBOOK_ROWS = 1000;

/**
 * `POST /v1/runbooks/{name}/run`: how a run went, in the session it ran as. `ran`: every step (SQL:
 * then committed); `failed`: a step failed or was refused (`failed` says which, and whether what ran
 * before it was undone);
 * `held`: a reviewer must approve first (`held.review`; run it again with the same parameters once
 * approved), nothing ran.
 */
export interface RunbookRunAnswer {
  runbook: string;
  digest: string;
  commit?: string;
  session: string;
  outcome: 'ran' | 'failed' | 'held';
  steps: RunbookStepResult[];
  /** Which step failed and why; `undone`: what ran before it was rolled back (SQL), else it stays (SSH). */
  failed?: { step: number; code?: string; message: string; detail?: string; hint?: string; refused?: boolean; undone: boolean };
  /** The review the run waits for; `step` when a statement rule of the policy held that step (absent: the runbook asks for one). */
  held?: { review: string; step?: number };
}

/**
 * `GET /v1/policy`: the policy the gateway runs and how it validates a commit, so that `hoop policy
 * test` checks a working tree exactly as the gateway will check the commit, and `hoop policy
 * status` shows what is in force and what was refused.
 */
export interface PolicyStatus {
  /** The commit in force for new sessions, and when it was applied. */
  commit: string;
  loadedAt: string;
  /** The config repo (passwords in URLs hidden) and the ref the gateway follows. */
  repo: string;
  ref: string;
  /** The secret references a bundle may use (`policy.allowedSecrets`); any other is refused. */
  allowedSecrets: string[];
  /** Only commits signed by a key in the gateway's allowed signers are applied. */
  signedCommitsOnly: boolean;
  /** Connections of the commit in force the gateway cannot open, and what it lacks (`file:line:col: field: what`). */
  unavailable: Array<{ connection: string; lacks: string[] }>;
  /** The newest commit the gateway refused since it started, and why. */
  refused?: { commit: string; at: string; problems: string[] };
}

/**
 * The masking rules the gateway applies to the caller's sessions (its principal's, as the policy
 * repo says): columns by origin (`table` is `schema.table`, globs), columns by name (`pattern`, a
 * case-insensitive regular expression), values by content (`detector`), and what becomes of values
 * computed from masked columns (`derived`).
 */
export interface MaskingInfo {
  columns: Array<{ table: string; column: string; strategy: string }>;
  names: Array<{ pattern: string; strategy: string }>;
  detectors: Array<{ detector: string; strategy: string }>;
  derived: 'mask' | 'deny';
}

/** The ways a session comes to the gateway. */
export const VIAS = ['connect', 'exec', 'direct', 'run', 'mcp'] as const;

/** One way a session comes to the gateway. */
export type Via = (typeof VIAS)[number];

/** A session's id: the gateway's, or one a client proposed that passes this. */
export const SESSION_ID = /^[A-Za-z0-9_-]{8,64}$/;

/** The shape of the ids the gateway makes (a UUID, in either case): a client's proposal of this shape is not taken. */
export const GATEWAY_SESSION_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * One session: in the index once it ended; while it runs, as the gateway sees it so far. Kept in
 * `sessions.jsonl` or `hoop.sessions.summary`, and read back with this schema.
 */
export const sessionSummarySchema = recordObject({
  id: z.string().regex(SESSION_ID),
  subject: z.string(),
  issuer: z.string(),
  email: z.string().optional(),
  groups: z.array(z.string()),
  kind: z.enum(['user', 'workload']),
  connection: z.string(),
  type: z.string(),
  remote: z.string(),
  client: z.string().optional(),
  policyCommit: z.string().optional(),
  runId: z.string().optional(),
  /** How the session came (absent in sessions recorded before hoop knew: read as connect). */
  via: z.enum(VIAS).optional(),
  /** The agent, for a run's session. */
  agent: z.string().optional(),
  /** PostgreSQL: the database role and database the session signed in as (absent until it has, and in sessions recorded before hoop let a client pick them). */
  role: z.string().optional(),
  database: z.string().optional(),
  /** For a run's session: whether its command was contained. */
  isolated: z.boolean().optional(),
  /** A direct client's session (a direct credential at the gateway's port): no hoop in its path, so no record of the CLI's. */
  direct: z.literal(true).optional(),
  /** A runbook's run: the runbook, and the SHA-256 of its file. */
  runbook: z.object({ name: z.string(), digest: z.string() }).optional(),
  startedAt: storedTime,
  /** Absent while the session runs. */
  endedAt: storedTime.optional(),
  /** Why it ended (`running` while it runs). */
  reason: z.string(),
  /** Statements the client sent (Query and Execute). */
  statements: z.number(),
  /** Statements the policy refused. */
  refused: z.number(),
  /** Tables (and views) the session's statements named, refused ones included; lower-case as written (`schema.table` or `table`). */
  tables: z.array(z.string()),
  /** Of those, the ones a statement wrote to or tried to (DML, COPY FROM, DDL). */
  written: z.array(z.string()),
  /**
   * The columns its statements named, as `table.column` (`table.*` for a `*`; see `columnsNamed`
   * in src/policy/touched.ts); absent in sessions indexed before hoop kept them.
   */
  columns: z.array(z.string()).optional(),
  /** MCP: the tools the agent called, allowed or not (at most 1,000). */
  tools: z.array(z.string()).optional(),
  /** False when the agent called more distinct tools than `tools` keeps: it may have called any. */
  toolsComplete: z.boolean().optional(),
  /** HTTP: the requests the client made, as `METHOD /path`, allowed or not (at most 1,000 distinct). */
  requests: z.array(z.string()).optional(),
  /** False when the client made more distinct requests than `requests` keeps: it may have made any. */
  requestsComplete: z.boolean().optional(),
  /** False when the session ran more distinct statements (or named more columns) than were analysed for `tables` and `columns`. */
  tablesComplete: z.boolean(),
  /** Rows the client received (result rows and COPY TO data), in all its statements; absent before hoop counted them. */
  rowsRead: z.number().optional(),
  /** Rows its statements changed, as the server reported them (INSERT, UPDATE, DELETE, MERGE, COPY FROM), committed or not. */
  rowsChanged: z.number().optional(),
  /**
   * Columns masking masked as a whole in results the client received (`schema.table.column`, or
   * the result column's name when it has no origin), each with the strategy: their values left masked.
   */
  maskedColumns: z.array(recordObject({ column: z.string(), strategy: z.string() })),
  /**
   * `complete`: closed and signed; `running`: being written (it verifies up to its last
   * checkpoint); `truncated`: the gateway stopped before the session ended (it verifies up to its
   * last checkpoint); `failed`: it could not be written (onFailure continue or refuse); `none`: not
   * recorded; `deleted`: removed after the policy's `retentionDays`.
   */
  recording: z.enum(['complete', 'running', 'truncated', 'failed', 'none', 'deleted']),
  /** How much of the CLI's own record of the session the gateway holds (absent: none of it). */
  clientRecord: z.enum(['uploading', 'complete', 'truncated', 'refused']).optional(),
  bytesFromClient: z.number(),
  bytesToClient: z.number(),
});
/** A session as `GET /v1/sessions` lists it, and as the gateway keeps it: `endedAt` absent, `reason` and `recording` `running`, while it runs (`reason` `ending` once its client left, until its recording is cut and its end written). */
export type SessionSummary = z.infer<typeof sessionSummarySchema>;

/** A recording key the gateway publishes (`GET /v1/keys`). */
export interface RecordingKey {
  /** `ssh-ed25519 AAAA…`, for an allowed-signers file. */
  publicKey: string;
  /** `SHA256:…`, as `ssh-keygen -lf` prints it. */
  fingerprint: string;
  status: 'current' | 'retired';
  /** With a shared store: the replica whose key it is. */
  replica?: string;
}

/** What the gateway holds of a CLI's record (`GET /v1/sessions/{id}/client`, `GET /v1/runs/{id}`). */
export interface ClientRecordInfo {
  record: {
    state: 'uploading' | 'complete' | 'truncated' | 'refused';
    subject: string;
    issuer: string;
    signer?: string;
    fingerprint?: string;
    chunks?: number;
    events?: number;
    updatedAt: string;
  } | null;
  files: string[];
}

/**
 * A direct credential as `POST /v1/connections/{name}/direct` answers it: the PostgreSQL user and
 * password to sign in with at the gateway's own address and port, for the connection's database.
 * The password is answered once.
 */
export interface DirectCredentialView {
  id: string;
  user: string;
  password: string;
  connection: string;
  database: string;
  expiresAt: string;
  /** A MySQL connection's: the gateway's MySQL port, where its clients connect (PostgreSQL's connect at the gateway's own port). */
  mysqlPort?: number;
  /** An HTTP connection's: the base path at the gateway's own port (`/direct/<user>/<password>`), every request's path under it. */
  httpPath?: string;
}

/** A run as the API answers it (never its secrets); the gateway keeps it so with its owner and secrets' digests (src/gateway/runs/runs.ts). */
export const runViewSchema = recordObject({
  id: z.string().min(1),
  agent: z.string(),
  via: z.enum(['run', 'mcp']),
  /** How its command was contained (`bwrap`, …), or `none`. */
  isolation: z.string(),
  connections: z.array(z.string()),
  /** The command line, for people (cut). */
  command: z.string().optional(),
  /** What its person said the run is for (`--prompt`), in their words: a claim, not a fact. */
  prompt: z.string().optional(),
  /** ISO 8601, as every time of the API. */
  createdAt: storedTime,
  expiresAt: storedTime,
  heartbeatAt: storedTime,
  heartbeatTimeoutMs: z.number().min(0),
  /** Until when the person's own credential holds (the latest one a heartbeat brought). */
  ownerExpiresAt: storedTime,
  endedAt: storedTime.optional(),
  /** Why it ended (`ended`, `heartbeat-lost`, `expired`, `person-expired`, `person-refused`). */
  endReason: z.string().optional(),
  /** The person it runs for. */
  subject: z.string(),
  issuer: z.string(),
  /** Where its command may connect besides the gateway (`host:port`, from `runs.egress`), as the policy says now. */
  egress: z.array(z.string()).optional(),
  /** How its command's changes reach the tree it works in, as its hoop said (`gate`, `live`); absent: it runs no command of its own. */
  apply: z.enum(['gate', 'live']).optional(),
  /** Whether the policy wants its changes reviewed before they apply (`runs.review`), and the controls it lets through (`runs.applyControls`), as it says now. */
  review: z.boolean().optional(),
  applyControls: z.array(z.string()).optional(),
});
export type RunView = z.infer<typeof runViewSchema>;

/** `POST /v1/runs`'s answer: the run, its credential and its control credential. */
export type RunStarted = RunView & { token: string; controlToken: string };

/** One event an alert counts, as its evidence (kept with its alert, and in `hoop.alert_hits` while counted). */
export const alertEvidenceSchema = recordObject({
  at: storedTime,
  session: z.string().optional(),
  connection: z.string().optional(),
  rule: z.string().optional(),
  reason: z.string().optional(),
  review: z.string().optional(),
  /** `cli`: a refusal hoop connect's early check made and reported (its word, not the gateway's). */
  by: z.string().optional(),
  /** For `rows-read`: the rows the statement read, and the tables it named. */
  rows: z.number().optional(),
  tables: z.array(z.string()).optional(),
  /** For `egress-refused`: the `host:port` the command asked for. */
  destination: z.string().optional(),
});
export type AlertEvidence = z.infer<typeof alertEvidenceSchema>;

/**
 * An alert the gateway raised (`GET /v1/alerts`): whom it is about, what it counted, its evidence,
 * and whether it is cleared. The gateway keeps it so (`alerts.json`, `hoop.alerts`) and reads it
 * back with this schema.
 */
export const raisedAlertSchema = recordObject({
  id: z.string().min(1),
  /** The alert rule's name. */
  rule: z.string(),
  /** What its rule counted: events (`refused`: statements and SSH commands refused; `review-denied`; …), or rows (`rows-read`). */
  event: z.enum(['refused', 'review-denied', 'rows-read', 'bytes-sent', 'off-hours', 'first-use', 'egress-refused']),
  /** Whose events it counts together. */
  per: z.enum(['identity', 'run', 'agent']),
  /** Whom it is about. */
  subject: z.string(),
  issuer: z.string(),
  run: z.string().optional(),
  agent: z.string().optional(),
  /** Events counted: the rule's count when raised, more while it stays open. */
  count: z.number(),
  withinMs: z.number(),
  evidence: z.array(alertEvidenceSchema),
  raisedAt: storedTime,
  suspend: z.boolean(),
  /** Groups whose members may clear it. */
  clearedBy: z.array(z.string()),
  state: z.enum(['open', 'cleared']),
  clearedAt: storedTime.optional(),
  clearer: recordObject({ subject: z.string(), issuer: z.string(), email: z.string().optional() }).optional(),
  clearReason: z.string().optional(),
}).refine((a) => (a.per === 'run' ? a.run !== undefined : a.per === 'agent' ? a.agent !== undefined : true), { error: 'an alert per run names its run, one per agent its agent', path: ['per'] });
export type RaisedAlert = z.infer<typeof raisedAlertSchema>;

/** What an alert counted, for people: `5 refused events`, `1200 rows read`. */
export function countedText(a: Pick<RaisedAlert, 'count' | 'event'>): string {
  const what: Partial<Record<RaisedAlert['event'], string>> = {
    'rows-read': 'rows read',
    'bytes-sent': 'bytes sent',
    'off-hours': 'statements outside the usual hours',
    'first-use': 'first uses of a connection by an agent',
    'egress-refused': "connections refused to a run's command",
  };
  return `${a.count} ${what[a.event] ?? `${a.event} events`}`;
}
