/**
 * The gateway API's paths, written once for both ends: the CLI builds its requests with the
 * builders below ({@link apiPath}), relative to the gateway's base URL; the gateway's router
 * matches the same paths with the patterns below ({@link API_ROUTES}), absolute.
 *
 * Ids in paths are `[A-Za-z0-9_-]` (a session's and a run's 8 to 64 characters, a review's 1 to
 * 64); connection names are percent-encoded (RFC 3986 §2.1) by the CLI and decoded by the gateway.
 *
 * @see https://www.rfc-editor.org/rfc/rfc3986#section-3.3 (paths)
 */

/** The id of a session or a run as it appears in a path. */
const RECORD_ID = '[A-Za-z0-9_-]{8,64}';
/** A file of a recording or of a CLI's record. */
const FILE = '[A-Za-z0-9._-]+';

/** A file's name in the archive of `POST /v1/client-records` — group 1: `sessions` or `runs`; group 2: the id; group 3: the file. */
export const RECORD_BATCH_ENTRY = new RegExp(`^(sessions|runs)/(${RECORD_ID})/(${FILE})$`);

/** What a run's control credential does: keeps it alive, ends it, or reports connections its command was refused. */
export type RunAction = 'heartbeat' | 'end' | 'egress';

/** The patterns the gateway routes by (absolute paths; groups: what the builders put in). */
export const API_ROUTES = {
  /** `GET` (Upgrade) — group 1: the connection, percent-encoded. */
  tunnel: /^\/v1\/connections\/([^/]+)\/tunnel$/,
  /** `GET` (Upgrade): one multiplexed tunnel carrying many sessions. */
  mux: /^\/v1\/tunnel$/,
  /** `GET` — group 1: the connection, percent-encoded. */
  connection: /^\/v1\/connections\/([^/]+)$/,
  /** `POST` a PostgreSQL CancelRequest's key — group 1: the connection, percent-encoded. */
  cancel: /^\/v1\/connections\/([^/]+)\/cancel$/,
  /** `POST` for a direct credential — group 1: the connection, percent-encoded. */
  direct: /^\/v1\/connections\/([^/]+)\/direct$/,
  /** `DELETE` (revoke) or `POST …/renew` a direct credential — group 1: its id; group 2: `renew`. */
  directOne: /^\/v1\/direct\/(dc_[A-Za-z0-9_-]{22})(?:\/(renew))?$/,
  /** `GET` — group 1: the session; group 2 when its recording's files are asked for; group 3: one file. */
  session: new RegExp(`^/v1/sessions/(${RECORD_ID})(/files(?:/(${FILE}))?)?$`),
  /** `GET|PUT` a session's record made by the CLI — group 1: the session; group 2: one file. */
  clientRecord: new RegExp(`^/v1/sessions/(${RECORD_ID})/client(?:/(${FILE}))?$`),
  /** `POST` the files of several CLI records at once, a ustar archive of {@link RECORD_BATCH_ENTRY}s. */
  clientRecords: /^\/v1\/client-records$/,
  /** `GET|PUT` a `hoop run`'s record — group 1: the run; group 2: one file. */
  runRecord: new RegExp(`^/v1/runs/(${RECORD_ID})(?:/files/(${FILE}))?$`),
  /** `POST` with the run's control credential — group 1: the run; group 2: `heartbeat`, `end` or `egress` (connections refused). */
  runControl: /^\/v1\/runs\/(run-[A-Za-z0-9_-]{16,64})\/(heartbeat|end|egress)$/,
  /** `GET` the list, `GET` one (group 1), `POST` a decision (group 2: `approve` or `deny`). */
  reviews: /^\/v1\/reviews(?:\/([A-Za-z0-9-]{1,64})(?:\/(approve|deny))?)?$/,
  /** `GET` one runbook the caller may run — group 1: its name; `POST` a run of it (group 2: `run`). */
  runbook: /^\/v1\/runbooks\/([^/]+)(\/run)?$/,
  /** `GET` the list, `POST` a clearing (group 1: the alert). */
  alerts: /^\/v1\/alerts(?:\/(alert-[0-9a-f]{12})\/clear)?$/,
} as const;

/** An exact path as a pattern (for the paths without parameters). */
export const exactPath = (path: string): RegExp => new RegExp(`^${path.replace(/\//g, '\\/')}$`);

const enc = encodeURIComponent;
const query = (params: Record<string, string | undefined>): string => {
  const q = new URLSearchParams(Object.entries(params).filter((e): e is [string, string] => e[1] !== undefined)).toString();
  return q ? `?${q}` : '';
};

/** The paths the CLI asks for, relative to the gateway's base URL (no leading `/`). */
export const apiPath = {
  authConfig: 'v1/auth/config',
  whoami: 'v1/whoami',
  devices: 'v1/devices',
  keys: 'v1/keys',
  connections: 'v1/connections',
  policy: 'v1/policy',
  connection: (name: string): string => `v1/connections/${enc(name)}`,
  runbooks: 'v1/runbooks',
  runbook: (name: string): string => `v1/runbooks/${enc(name)}`,
  runbookRun: (name: string): string => `v1/runbooks/${enc(name)}/run`,
  tunnel: (connection: string): string => `v1/connections/${enc(connection)}/tunnel`,
  cancel: (connection: string): string => `v1/connections/${enc(connection)}/cancel`,
  mux: 'v1/tunnel',
  direct: (connection: string): string => `v1/connections/${enc(connection)}/direct`,
  directOne: (id: string, renew = false): string => `v1/direct/${enc(id)}${renew ? '/renew' : ''}`,
  sessions: (filter: Record<string, string> = {}): string => `v1/sessions${query(filter)}`,
  session: (id: string): string => `v1/sessions/${enc(id)}`,
  sessionFiles: (id: string, file?: string): string => `v1/sessions/${enc(id)}/files${file ? `/${file}` : ''}`,
  clientRecord: (id: string, file?: string): string => `v1/sessions/${enc(id)}/client${file ? `/${file}` : ''}`,
  runRecord: (id: string, file?: string): string => `v1/runs/${enc(id)}${file ? `/files/${file}` : ''}`,
  clientRecords: 'v1/client-records',
  runs: 'v1/runs',
  runControl: (id: string, action: RunAction): string => `v1/runs/${enc(id)}/${action}`,
  reviews: (state?: string): string => `v1/reviews${query({ state })}`,
  review: (id: string, waitSeconds = 0): string => `v1/reviews/${enc(id)}${query({ wait: waitSeconds > 0 ? String(waitSeconds) : undefined })}`,
  reviewDecision: (id: string, decision: 'approve' | 'deny'): string => `v1/reviews/${enc(id)}/${decision}`,
  requests: 'v1/requests',
  alerts: (state?: string): string => `v1/alerts${query({ state })}`,
  alertClear: (id: string): string => `v1/alerts/${enc(id)}/clear`,
} as const;
