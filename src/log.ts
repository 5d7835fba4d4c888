/**
 * Diagnostics without noise: a levelled logger that writes one JSON object per line.
 *
 * The gateway logs structured events (one line per tunnel opened and closed, ...); the CLI logs
 * only at `debug` unless asked. `HOOP_LOG_LEVEL` sets the level; `HOOP_DEBUG=1` (or
 * `NODE_DEBUG=hoop`) turns debug on. Fields named like secrets are replaced by `[redacted]`,
 * so a token or password can never reach a log line by accident.
 *
 * @see https://nodejs.org/api/util.html#utildebuglogsection-callback
 */
import { realClock } from './clock.js';
import { debuglog } from 'node:util';

/** Log levels, most verbose first. */
export const levels = ['debug', 'info', 'warn', 'error', 'silent'] as const;
export type LogLevel = (typeof levels)[number];

/** Structured fields of one log line. */
export type LogFields = Record<string, unknown>;

/** A levelled, structured logger. */
export interface Logger {
  readonly level: LogLevel;
  debug(event: string, fields?: LogFields): void;
  info(event: string, fields?: LogFields): void;
  warn(event: string, fields?: LogFields): void;
  error(event: string, fields?: LogFields): void;
  /** A logger whose lines all carry `fields`. */
  child(fields: LogFields): Logger;
}

/** Where log lines go. */
export interface LogSink {
  write(line: string): unknown;
}

const secretKey = /(pass(word)?|secret|token|authorization|cookie|private|credential)/i;

function redact(value: unknown, depth = 0): unknown {
  if (depth > 4 || value === null || typeof value !== 'object') return value;
  if (value instanceof Error) return { message: value.message, code: (value as { code?: unknown }).code };
  if (Array.isArray(value)) return value.map((v) => redact(v, depth + 1));
  const out: LogFields = {};
  for (const [k, v] of Object.entries(value)) out[k] = secretKey.test(k) ? '[redacted]' : redact(v, depth + 1);
  return out;
}

/** The level from `HOOP_LOG_LEVEL`, `HOOP_DEBUG` or `NODE_DEBUG=hoop`, else `fallback`. */
export function levelFromEnv(env: NodeJS.ProcessEnv = process.env, fallback: LogLevel = 'info'): LogLevel {
  const wanted = env.HOOP_LOG_LEVEL?.toLowerCase();
  if (wanted && (levels as readonly string[]).includes(wanted)) return wanted as LogLevel;
  if ((env.HOOP_DEBUG && env.HOOP_DEBUG !== '0') || debuglog('hoop').enabled) return 'debug';
  return fallback;
}

/** Creates a logger writing JSON lines to `sink` (default: stderr). */
export function createLogger(options: { level?: LogLevel; sink?: LogSink; fields?: LogFields; clock?: () => Date } = {}): Logger {
  const level = options.level ?? levelFromEnv();
  const sink = options.sink ?? process.stderr;
  const clock = options.clock ?? (() => new Date(realClock.now()));
  const base = options.fields ?? {};
  const threshold = levels.indexOf(level);
  const emit = (lvl: LogLevel, event: string, fields?: LogFields): void => {
    if (levels.indexOf(lvl) < threshold) return;
    const line = { time: clock().toISOString(), level: lvl, event, ...(redact({ ...base, ...fields }) as LogFields) };
    sink.write(`${JSON.stringify(line)}\n`);
  };
  return {
    level,
    debug: (e, f) => emit('debug', e, f),
    info: (e, f) => emit('info', e, f),
    warn: (e, f) => emit('warn', e, f),
    error: (e, f) => emit('error', e, f),
    child: (fields) => createLogger({ level, sink, clock, fields: { ...base, ...fields } }),
  };
}

/** A logger that drops everything. */
export const silentLogger: Logger = createLogger({ level: 'silent', sink: { write: () => undefined } });
