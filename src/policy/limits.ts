/**
 * Server timeouts an access rule imposes on the sessions it admits: `statement_timeout`,
 * `lock_timeout` and `idle_in_transaction_session_timeout`. The gateway sets them when it opens
 * the upstream session (a startup parameter the client may lower, never raise), and the judge
 * refuses a `SET` / `set_config` of them above the limit, to 0 (no limit), or to an expression.
 *
 * @see https://www.postgresql.org/docs/current/runtime-config-client.html#GUC-STATEMENT-TIMEOUT
 * @see https://www.postgresql.org/docs/current/config-setting.html#CONFIG-SETTING-NAMES-VALUES
 */

/** The timeouts, in milliseconds, by the setting's name. */
export interface SessionLimits {
  statement_timeout?: number;
  lock_timeout?: number;
  idle_in_transaction_session_timeout?: number;
}

/** The settings a {@link SessionLimits} bounds. */
export type LimitedSetting = keyof SessionLimits;

/** The access-rule field of each limited setting. */
export const LIMIT_FIELDS: Readonly<Record<'statementTimeout' | 'lockTimeout' | 'idleInTransactionTimeout', LimitedSetting>> = {
  statementTimeout: 'statement_timeout',
  lockTimeout: 'lock_timeout',
  idleInTransactionTimeout: 'idle_in_transaction_session_timeout',
};

/** Whether `name` (lower-case) is a setting limits bound. */
export function isLimitedSetting(name: string): name is LimitedSetting {
  return name === 'statement_timeout' || name === 'lock_timeout' || name === 'idle_in_transaction_session_timeout';
}

const UNIT_MS: Readonly<Record<string, number>> = { us: 0.001, ms: 1, s: 1000, min: 60_000, h: 3_600_000, d: 86_400_000 };

/**
 * The milliseconds a PostgreSQL time setting's value stands for (`30s`, `5 min`, `1.5s`, `250`:
 * a number without unit is in milliseconds, the unit of these settings), rounded as the server
 * rounds; undefined when it is not such a value.
 *
 * @see https://www.postgresql.org/docs/current/config-setting.html#CONFIG-SETTING-NAMES-VALUES
 */
export function parseTimeSetting(text: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d*)?|\.\d+)\s*(us|ms|s|min|h|d)?\s*$/i.exec(text);
  if (!m) return undefined;
  const ms = Number(m[1]) * UNIT_MS[(m[2] ?? 'ms').toLowerCase()]!;
  return Number.isFinite(ms) ? Math.round(ms) : undefined;
}

/** A duration for messages: `30 s`, `5 min`, `250 ms`. */
export function describeMs(ms: number): string {
  if (ms % 60_000 === 0) return `${ms / 60_000} min`;
  if (ms % 1000 === 0) return `${ms / 1000} s`;
  return `${ms} ms`;
}

/**
 * Why a client may not set `name` to `value` under `limits` (a constant's text, lower-case;
 * `default` for the session's start value; undefined for an expression), or undefined when it may.
 */
export function limitProblem(limits: SessionLimits, name: string, value: string | undefined): string | undefined {
  if (!isLimitedSetting(name)) return undefined;
  const limit = limits[name];
  if (limit === undefined || value === 'default') return undefined;
  const said = `${name} is limited to ${describeMs(limit)} for this access`;
  if (value === undefined) return `${said}; it cannot be set from an expression`;
  const ms = parseTimeSetting(value);
  if (ms === undefined) return `${said}; "${value}" is not a time it can check`;
  if (ms === 0) return `${said}; 0 would turn the limit off`;
  if (ms > limit) return `${said}; ${describeMs(ms)} is more`;
  return undefined;
}

/** The least restrictive of several rules' limits: a setting one rule leaves unlimited is unlimited. */
export function loosestLimits(all: readonly SessionLimits[]): SessionLimits {
  const out: SessionLimits = {};
  for (const name of Object.values(LIMIT_FIELDS)) {
    if (all.length === 0 || all.some((l) => l[name] === undefined)) continue;
    out[name] = Math.max(...all.map((l) => l[name]!));
  }
  return out;
}
