/**
 * Typed errors with stable codes, a hint for the user and an exit code.
 *
 * Every failure a user can meet is a {@link HoopError}: `code` is stable (scripts and the
 * gateway's JSON error bodies rely on it), `message` says what went wrong, `hint` says what to
 * do about it. Messages and hints never contain a token, password or other secret.
 *
 * @see https://github.com/nodejs/undici/blob/main/lib/core/errors.js (pattern: coded error classes)
 */

/** Stable error codes. The string values are part of the public interface: never rename one. */
export const ErrorCode = {
  /** Invalid command-line usage. */
  USAGE: 'HOOP_USAGE',
  /** A configuration file is missing, unreadable or invalid. */
  CONFIG_INVALID: 'HOOP_CONFIG_INVALID',
  /** A `${env:...}` or `${file:...}` secret reference could not be resolved. */
  SECRET_UNRESOLVED: 'HOOP_SECRET_UNRESOLVED',
  /** No token is available to the CLI. */
  NOT_LOGGED_IN: 'HOOP_NOT_LOGGED_IN',
  /** The gateway rejected the bearer token. */
  TOKEN_REJECTED: 'HOOP_TOKEN_REJECTED',
  /** The caller is authenticated but may not use this connection. */
  ACCESS_DENIED: 'HOOP_ACCESS_DENIED',
  /** The gateway knows no connection by that name. */
  CONNECTION_UNKNOWN: 'HOOP_CONNECTION_UNKNOWN',
  /** The gateway could not be reached (DNS, refused, TLS failure, timeout). */
  GATEWAY_UNREACHABLE: 'HOOP_GATEWAY_UNREACHABLE',
  /** The gateway answered something this client does not understand. */
  GATEWAY_PROTOCOL: 'HOOP_GATEWAY_PROTOCOL',
  /** The gateway could not reach or authenticate to the upstream server. */
  UPSTREAM_UNAVAILABLE: 'HOOP_UPSTREAM_UNAVAILABLE',
  /** The upstream server rejected the gateway's stored credentials. */
  UPSTREAM_AUTH_FAILED: 'HOOP_UPSTREAM_AUTH_FAILED',
  /** A peer sent bytes that violate the wire protocol. */
  PROTOCOL_VIOLATION: 'HOOP_PROTOCOL_VIOLATION',
  /** A listener could not be opened. */
  LISTEN_FAILED: 'HOOP_LISTEN_FAILED',
  /** A deadline passed. */
  TIMEOUT: 'HOOP_TIMEOUT',
  /** The gateway cannot record sessions (disk full, not writable), so it refuses new ones. */
  RECORDING_UNAVAILABLE: 'HOOP_RECORDING_UNAVAILABLE',
  /** No session (or recording) by that id that the caller may see. */
  SESSION_UNKNOWN: 'HOOP_SESSION_UNKNOWN',
  /** No review by that id that the caller may see. */
  REVIEW_UNKNOWN: 'HOOP_REVIEW_UNKNOWN',
  /** A recording failed verification. */
  RECORDING_INVALID: 'HOOP_RECORDING_INVALID',
  /** No runbook by that name that the caller may run. */
  RUNBOOK_UNKNOWN: 'HOOP_RUNBOOK_UNKNOWN',
  /** A runbook's parameter was refused (unknown, missing, or not of its type): nothing ran. */
  RUNBOOK_PARAM: 'HOOP_RUNBOOK_PARAM',
  /** The gateway's shared store (PostgreSQL) cannot be reached or used. */
  STORE_UNAVAILABLE: 'HOOP_STORE_UNAVAILABLE',
  /** An agent's run credential may not do this (decide, ask for access, read sessions, mint anything): a person must. */
  RUN_FORBIDDEN: 'HOOP_RUN_FORBIDDEN',
  /** The decision needs a recent interactive sign-in of the person (the policy's reviews.requireSignInWithin). */
  SIGN_IN_REQUIRED: 'HOOP_SIGN_IN_REQUIRED',
  /** The identity has as many sessions open on the gateway as the policy allows (SQLSTATE 53300 to a PostgreSQL client). */
  TOO_MANY_SESSIONS: 'HOOP_TOO_MANY_SESSIONS',
  /** `hoop run` could not start its command's sandbox (a place changed as it began, a layer the kernel would not mount). */
  SANDBOX_FAILED: 'HOOP_SANDBOX_FAILED',
  /** A bug: something that should not happen did. */
  INTERNAL: 'HOOP_INTERNAL',
} as const;

export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** Process exit codes, after sysexits(3) where one fits. */
export const ExitCode = {
  OK: 0,
  FAILURE: 1,
  USAGE: 64,
  DATA: 65,
  NOINPUT: 66,
  UNAVAILABLE: 69,
  SOFTWARE: 70,
  CANTCREAT: 73,
  IOERR: 74,
  NOPERM: 77,
  CONFIG: 78,
} as const;

const defaultExit: Record<ErrorCode, number> = {
  HOOP_USAGE: ExitCode.USAGE,
  HOOP_CONFIG_INVALID: ExitCode.CONFIG,
  HOOP_SECRET_UNRESOLVED: ExitCode.CONFIG,
  HOOP_NOT_LOGGED_IN: ExitCode.NOPERM,
  HOOP_TOKEN_REJECTED: ExitCode.NOPERM,
  HOOP_ACCESS_DENIED: ExitCode.NOPERM,
  HOOP_CONNECTION_UNKNOWN: ExitCode.DATA,
  HOOP_GATEWAY_UNREACHABLE: ExitCode.UNAVAILABLE,
  HOOP_GATEWAY_PROTOCOL: ExitCode.UNAVAILABLE,
  HOOP_UPSTREAM_UNAVAILABLE: ExitCode.UNAVAILABLE,
  HOOP_UPSTREAM_AUTH_FAILED: ExitCode.UNAVAILABLE,
  HOOP_PROTOCOL_VIOLATION: ExitCode.DATA,
  HOOP_LISTEN_FAILED: ExitCode.UNAVAILABLE,
  HOOP_TIMEOUT: ExitCode.UNAVAILABLE,
  HOOP_RECORDING_UNAVAILABLE: ExitCode.UNAVAILABLE,
  HOOP_SESSION_UNKNOWN: ExitCode.DATA,
  HOOP_REVIEW_UNKNOWN: ExitCode.DATA,
  HOOP_RECORDING_INVALID: ExitCode.FAILURE,
  HOOP_RUNBOOK_UNKNOWN: ExitCode.DATA,
  HOOP_RUNBOOK_PARAM: ExitCode.DATA,
  HOOP_STORE_UNAVAILABLE: ExitCode.UNAVAILABLE,
  HOOP_RUN_FORBIDDEN: ExitCode.NOPERM,
  HOOP_SIGN_IN_REQUIRED: ExitCode.NOPERM,
  HOOP_TOO_MANY_SESSIONS: ExitCode.UNAVAILABLE,
  HOOP_SANDBOX_FAILED: ExitCode.UNAVAILABLE,
  HOOP_INTERNAL: ExitCode.SOFTWARE,
};

/** Options of a {@link HoopError}. */
export interface HoopErrorOptions {
  /** What the user can do about it, one sentence. */
  hint?: string;
  /** Overrides the exit code implied by the error code. */
  exitCode?: number;
  /** The underlying error. */
  cause?: unknown;
}

/** An error a user can meet, with a stable code and a hint. */
export class HoopError extends Error {
  override readonly name = 'HoopError';
  readonly code: ErrorCode;
  readonly hint: string | undefined;
  readonly exitCode: number;

  constructor(code: ErrorCode, message: string, options: HoopErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.hint = options.hint;
    this.exitCode = options.exitCode ?? defaultExit[code];
  }

  /** The JSON body the gateway sends for this error. */
  toJSON(): { error: { code: ErrorCode; message: string; hint?: string } } {
    return { error: { code: this.code, message: this.message, ...(this.hint ? { hint: this.hint } : {}) } };
  }
}

/** True when `err` is a {@link HoopError}, optionally with the given code. */
export function isHoopError(err: unknown, code?: ErrorCode): err is HoopError {
  return err instanceof HoopError && (code === undefined || err.code === code);
}

/** A short description of any thrown value, for logs and messages. */
export function describeError(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code;
    return code && !err.message.includes(code) ? `${err.message} (${code})` : err.message;
  }
  return String(err);
}

/** Ends a command with an exit code of its own and nothing more to say (`hoop run`: its command's code). */
export class CommandExit extends HoopError {
  constructor(exitCode: number) {
    super(ErrorCode.USAGE, `exit ${exitCode}`, { exitCode });
  }
}

/** `message` as hoop says it, after "hoop: " (once: a message that carries it already is not prefixed again). */
export function hoopSays(message: string): string {
  return message.startsWith('hoop: ') ? message : `hoop: ${message}`;
}

/**
 * What the system says of a user's own machine (a disk full, a port taken, a file not theirs),
 * as a plain error with its exit code (sysexits) and what to do; undefined for anything else,
 * which is a bug of hoop's.
 */
export function systemErrorOf(err: unknown): HoopError | undefined {
  const e = err as NodeJS.ErrnoException & { address?: string; port?: number };
  if (!(err instanceof Error) || typeof e.code !== 'string') return undefined;
  const where = e.path ? ` (${e.path})` : e.address ? ` (${e.address}${e.port !== undefined ? `:${e.port}` : ''})` : '';
  const said: Record<string, [number, string, string]> = {
    ENOSPC: [ExitCode.IOERR, `the disk is full${where}`, 'free some space on that disk (or point hoop at another), then run the command again'],
    EDQUOT: [ExitCode.IOERR, `your disk quota is used up${where}`, 'free some space, then run the command again'],
    EROFS: [ExitCode.CANTCREAT, `the file system is read-only${where}`, 'run hoop where it may write (HOOP_CONFIG_DIR, --dir)'],
    ENOENT: [ExitCode.NOINPUT, `no such file or directory${where}`, 'check the path, then run the command again'],
    ENOTDIR: [ExitCode.NOINPUT, `not a directory${where}`, 'give the path of a directory'],
    EACCES: [ExitCode.NOPERM, `permission denied${where}`, 'check who owns that path and its mode, or run as the user who owns it'],
    EPERM: [ExitCode.NOPERM, `operation not permitted${where}`, 'check who owns that path, or run as the user who owns it'],
    EADDRINUSE: [ExitCode.UNAVAILABLE, `the address is in use${where}: another program listens there`, 'pick another --port (or omit it to use any free port), or stop the other program'],
    EADDRNOTAVAIL: [ExitCode.UNAVAILABLE, `this machine has no such address${where}`, 'listen on 127.0.0.1 or an address of this machine'],
    EMFILE: [ExitCode.UNAVAILABLE, 'too many open files', 'raise the limit (ulimit -n) and run the command again'],
  };
  const known = said[e.code];
  if (!known) return undefined;
  return new HoopError(ErrorCode.USAGE, `${known[1]}: ${e.message}`, { hint: known[2], exitCode: known[0], cause: err });
}
