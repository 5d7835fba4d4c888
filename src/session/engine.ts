/**
 * One engine per protocol behind one interface: the gateway accepts a tunnel, verifies who is
 * calling and whether they may use the connection, and hands the session to the engine of the
 * connection's type, which opens the upstream with the gateway's own credentials and relays.
 *
 * @see https://github.com/gravitational/teleport/tree/master/lib/srv/db/common (Engine pattern)
 */
import { ErrorCode, HoopError } from '../errors.js';
import type { Logger } from '../log.js';
import type { MaskingPolicy, ReviewSettings } from '../policy/schema.js';
import type { Analysis } from '../policy/sql/analyze.js';
import type { WriteGuard } from '../policy/write-limit.js';
import type { TablesTouchedBy } from '../policy/touched.js';
import type { SshJudge } from '../policy/ssh.js';
import type { McpJudge } from '../policy/mcp.js';
import type { HttpJudge } from '../policy/http.js';
import type { SessionLimits } from '../policy/limits.js';
import type { DatabaseAccess } from '../policy/database-access.js';
import type { Duplex } from 'node:stream';
import type { ControlMessage } from '../tunnel/frames.js';
import type { ConnectionConfig } from '../config/connection.js';
import type { Identity } from '../identity.js';
import type { RecordingStream } from '../recording/thread.js';

/**
 * Why a session ended; logged and sent to the CLI in a `close` control message.
 * `startup-refused`: the client's startup asked for what the gateway does not allow (a database
 * other than the connection's, a setting not on its list). `unsafe-setting`: with statements judged, the server reported (at start or after a DO block or
 * function) a setting under which it would read SQL differently from the gateway's parser.
 */
export type CloseReason =
  | 'client-terminated'
  | 'client-disconnected'
  | 'upstream-closed'
  | 'upstream-unavailable'
  | 'upstream-auth-failed'
  | 'protocol-violation'
  | 'startup-refused'
  | 'unsafe-setting'
  | 'masking-refused'
  | 'handshake-timeout'
  | 'read-timeout'
  | 'cancel-request'
  | 'internal-error'
  | SessionEndReason;

/**
 * Why the gateway itself ends a live session: it shuts down, the session's token expired without
 * being renewed, a renewal brought another identity, or a renewed token no longer grants access.
 */
export type SessionEndReason = 'gateway-shutdown' | 'token-expired' | 'identity-changed' | 'access-revoked' | 'grant-expired' | 'session-limit' | 'recording-failed' | 'run-ended' | 'alert-suspended';

/**
 * The reason a {@link TunnelSession.signal} is aborted with. Engines tell the client inside its
 * protocol (PostgreSQL: a FATAL ErrorResponse, SQLSTATE 57P01 for a shutdown and 28000 for the
 * others) and in a `close` control message `{ type: 'close', reason, message, hint }`.
 *
 * @see https://www.postgresql.org/docs/current/errcodes-appendix.html
 */
export class SessionEnd extends HoopError {
  readonly reason: SessionEndReason;

  constructor(reason: SessionEndReason, message: string, hint?: string) {
    super(
      reason === 'gateway-shutdown' ? ErrorCode.GATEWAY_UNREACHABLE : reason === 'recording-failed' ? ErrorCode.RECORDING_UNAVAILABLE : ErrorCode.ACCESS_DENIED,
      message,
      hint === undefined ? {} : { hint },
    );
    this.reason = reason;
  }
}

/** The {@link SessionEnd} an aborted session signal carries; a plain abort counts as a shutdown. */
export function sessionEndOf(signal: AbortSignal): SessionEnd {
  const reason: unknown = signal.reason;
  return reason instanceof SessionEnd ? reason : new SessionEnd('gateway-shutdown', 'hoop: the gateway is shutting down', 'connect again in a moment');
}

/**
 * What a statement judge answers for one piece of SQL: structurally the policy's `Decision`
 * (src/policy/decide.ts), so a `StatementJudge` can be handed to an engine as it is.
 */
export interface StatementVerdict {
  action: 'allow' | 'deny' | 'review';
  /** The rule that decided, if one did. */
  rule?: string;
  /** The rule's message for the user. */
  message?: string;
  /** A human sentence: which rule, and why. */
  reason: string;
  /** The tables the SQL names and, of those, the ones it writes to (for the sessions index). */
  touched?: TablesTouchedBy;
  /** Whether the SQL passes values to a side channel (`pg_notify`, `set_config`); undefined when the judge does not say (the engine then reads the SQL itself). */
  sideChannel?: boolean;
  /** For `review`: who reviews it and how; without, a review verdict is refused (nobody could approve it). */
  review?: ReviewSettings;
  /** For `allow`: the row limit on what it writes (see `WriteGuard`). */
  guard?: WriteGuard;
}

/**
 * Judges SQL for one session (one policy, identity, connection and access mode). Called on the
 * relay's hot path for every Query, Parse, Bind and Execute, so it must be synchronous and cheap
 * for repeated statements; it may throw, which the engine treats as a denial.
 */
export interface SessionJudge {
  /** `analysis` is the SQL's analysis when the caller already made it (a long text, analysed off the event loop). */
  judge(sql: string, analysis?: Analysis): StatementVerdict;
  /** The session's own backend process id, once known (signalling it reaches no one else). */
  ownBackend?(pid: number): void;
  /** Some row limit may apply to the session's writes. */
  readonly limitsRows?: boolean;
  /** What must be looked up before the SQL `texts` (or their analyses) are judged, if anything: the engine waits for it. */
  pending?(texts: ReadonlyArray<string | Analysis>): Promise<void> | undefined;
  /** Some rule names tables: an engine that can look relations up judges them through {@link judgeUnder}. */
  readonly tableRules?: boolean;
  /** The verdict with each relation the SQL names judged as the relations `under` it too (`*`: any table). */
  judgeUnder?(sql: string, analysis: Analysis | undefined, under: (name: string) => readonly string[]): StatementVerdict;
}

/** What an engine asks reviewers about: a statement it holds, as the client sent it. */
export interface ReviewAsk {
  /** The SQL as the client sent it; with `params`, the statement a Bind runs. */
  sql: string;
  /** A Bind's parameters as text (binary ones, and text that is not UTF-8, as `\x…` hex), NULL as null; shown whole (a Bind whose parameters are too long to show is refused, not held). */
  params?: Array<string | null>;
  /**
   * SHA-256 (hex) of exactly what would run: the held message's bytes and every SQL text judged
   * for it (the statements a Bind or an EXECUTE runs). An approval given to a client that did not
   * wait lets only this run again.
   */
  digest: string;
  /** The rule that asked for the review, its message, and the judge's reason. */
  rule?: string;
  message?: string;
  reason: string;
  settings: ReviewSettings;
  /** Why its reviewer could not be shown its values (hoop hides every literal, and some are no secret): such a statement is refused, never held. */
  unseen?: string;
}

/** How a review ended, as the engine acts on it. */
export type ReviewOutcome =
  | { state: 'approved'; by: string[]; windowMs: number }
  | { state: 'denied'; by: string; reason?: string }
  | { state: 'expired'; afterMs: number; because?: string }
  | { state: 'withdrawn'; why: 'cancel' | 'session-ended' };

/** A review raised for a held statement. */
export interface PendingReview {
  /** Its id (`rv-…`), for `hoop review approve <id>`. */
  id: string;
  /** Settles once, with the decision (never rejects). */
  decided: Promise<ReviewOutcome>;
  /** Withdraws it (the client cancelled, or the session ended); the statement never runs. */
  withdraw(why: 'cancel' | 'session-ended'): void;
  /** An approval given earlier, to a client that did not wait for it, that this statement now uses. */
  reused?: boolean;
}

/**
 * Raises reviews of a session's held statements (src/gateway/reviews/reviews.ts): records them, tells
 * the reviewers and the client, and settles each with its decision.
 */
export interface SessionReviews {
  request(ask: ReviewAsk): PendingReview;
}

/**
 * What an engine serves a session's client over: the protocol's bytes both ways, the bytes sent
 * so far, and CONTROL messages where hoop is the client. A tunnel (`TunnelStream`, hoop connect's
 * and hoop exec's) is one; a direct client's TLS connection is another, which carries no CONTROL
 * messages (`sendControl` drops them: the client hears what the protocol says).
 */
export interface SessionChannel extends Duplex {
  /** Sends a CONTROL message after the bytes written before it; false when it was not sent. */
  sendControl(message: ControlMessage): boolean;
  /** Bytes of the protocol sent to the client so far. */
  readonly bytesSent: number;
}

/** One authenticated session (a tunnel's, or a direct client's), handed to the engine of its connection's type. */
export interface TunnelSession<C extends ConnectionConfig = ConnectionConfig> {
  id: string;
  /** Who is calling; replaced (same issuer and subject) when the client renews its token. */
  identity: Identity;
  connection: C;
  channel: SessionChannel;
  /**
   * A direct client's session (no hoop in its path, its credential minted by the gateway): its
   * client cancels by key alone, on a connection of its own, as with PostgreSQL.
   */
  direct?: boolean;
  remoteAddress: string;
  log: Logger;
  /**
   * Aborted when the gateway ends the session, with a {@link SessionEnd} as `signal.reason`: the
   * gateway shuts down, the token expired, or a renewal changed who is calling.
   */
  signal: AbortSignal;
  /**
   * Judges every statement the client sends (PostgreSQL: Query, Parse, Bind, Execute, SQL
   * PREPARE/EXECUTE); without one, statements are relayed uninspected.
   */
  judge?: SessionJudge;
  /**
   * Read-only access: besides the judge's own refusal of writes, the upstream session is opened
   * read-only (PostgreSQL: startup parameter `default_transaction_read_only=on`).
   */
  readOnly?: boolean;
  /**
   * Masking of what the server sends back (rows, COPY, notices, notifications, errors); without
   * it results are relayed as they come.
   */
  masking?: SessionMasking;
  /**
   * Server timeouts of the access, set when the upstream session opens (PostgreSQL: startup
   * parameters); a client may lower them, never raise them.
   */
  limits?: SessionLimits;
  /**
   * Where statements a `review` rule holds are reviewed; without it (or without reviewers in the
   * verdict) they are refused.
   */
  reviews?: SessionReviews;
  /** Where the engine records the session (src/recording/); without it nothing is recorded. */
  recording?: SessionRecording;
  /** What only its lane reads: the policy and client's terms of its connection's type ({@link LaneTerms}). */
  lane?: LaneTerms[C['type']];
  /** Told what the engine learns as it serves the session (the gateway's live session, src/gateway/sessions/live-session.ts). */
  report?: SessionReport;
}

/** What a session's policy and client say that only one lane reads, by connection type. */
export interface LaneTerms {
  postgres: {
    /** The database roles and databases the client may pick with its StartupMessage's `user` and `database` (src/policy/database-access.ts); without it, the connection's own. */
    databaseAccess?: DatabaseAccess;
  };
  ssh: {
    /** What the session may do (src/policy/ssh.ts); without it shells, commands and sftp are allowed, forwarding is refused and only LANG and LC_* may be set. */
    ssh?: SessionSsh;
    /** The public key (`type base64`) the client must prove, named by the CLI in `Hoop-Ssh-Key`; without it no client signs in. */
    clientKey?: string;
  };
  mcp: {
    /** What the session may call, read and see (src/policy/mcp.ts); without it everything is allowed and the server may ask the agent nothing. */
    mcp?: SessionMcp;
  };
  mysql: Record<never, never>;
  http: {
    /** What the session may request (src/policy/http.ts); without it every request is allowed. */
    http?: SessionHttp;
    /** The path a CLI's local port begins its URLs with (its per-run secret), named by the CLI in `Hoop-Http-Prefix`: a request without it is refused. */
    prefix?: string;
  };
}

/** What an engine tells its session's owner as it learns it; none of these may block. */
export interface SessionReport {
  /** PostgreSQL: it signed in upstream with this role and database. */
  signedIn(as: { role: string; database: string }): void;
  /** PostgreSQL: the upstream backend's own cancel key, which the shared store keeps so that a replica taking this one over cancels what it left running. */
  upstream(key: { processId: number; secretKey: number }): void;
  /** A statement ran to its end: what it read and changed. */
  statement(statement: StatementRows): void;
  /** The policy refused a statement (counted, and told as the audit stream says it). */
  refused(refusal: StatementRefusal): void;
  /** A statement ran: a query, a portal executed, an SSH command, an sftp operation. */
  ran(): void;
  /** SQL the client sent (a query, or a statement it prepared), as it is recorded: what the index reads for its tables when no judge did. */
  sql(text: string): void;
  /** MCP: the agent called this tool (allowed or not). */
  tool(name: string): void;
  /** HTTP: the client asked for `method` on `path` (as judged: decoded, without its query), allowed or not. */
  request(method: string, path: string): void;
  /** The client received a column masked as a whole: its origin (`schema.table.column`) or name, and the strategy. */
  masked(column: string, strategy: string): void;
  /** What the relations a statement named read beyond themselves. */
  reads(reads: RelationsRead): void;
}

/** A statement the policy refused, as the audit stream says it (never its SQL). */
export interface StatementRefusal {
  action: 'deny' | 'review';
  rule: string;
  reason: string;
  message: string;
}

/**
 * What the relations a statement named read beyond themselves (the tables and columns under a
 * view, a partition's parents, a parent's partitions and children; `*`: anything), for the index;
 * `descendants`: a named relation (`of`, as the statement names it) and a descendant of it, whose
 * same-named columns are read and written with the named one's.
 */
export interface RelationsRead {
  tables: readonly string[];
  columns: readonly string[];
  descendants?: ReadonlyArray<{ of: string; table: string }>;
}

/** One statement's end: what it read and changed (see src/postgres/pipeline/tally.ts). */
export interface StatementRows {
  /** The command tag's verb (`SELECT`, `UPDATE`, `COPY`), empty when it failed or a portal was suspended. */
  verb: string;
  /** Rows the server sent for it (result rows, COPY TO data): what the client received, but for the RETURNING rows of a write the blast-radius guard refused. */
  rows: number;
  /** Rows the server says it changed (INSERT, UPDATE, DELETE, MERGE, COPY FROM). */
  changed: number;
  /** The tables the client's message named (all of them, for a Query of several statements). */
  tables: readonly string[];
  failed: boolean;
  /** A part of a statement still running (past 10,000 rows), or one the session's end cut short: its rows so far. */
  partial?: true;
}

/** A session's recording as an engine writes it: its records go to `stream`, as the policy's `recording` section says. */
export interface SessionRecording {
  stream: RecordingStream;
  /** `masked`: results as the client received them; `none`: statements and shapes, no rows. */
  results: 'masked' | 'none';
  /** Rows recorded per result. */
  rowCap: number;
  /** Told what the session's index keeps as the engine records it. */
  /** SSH: whose input is recorded: none, commands' only (the default), or shells' too. */
  sshInput?: 'none' | 'exec' | 'all';
  /** Why a statement may not run now, as it could not be recorded (src/gateway/records/recording-disk.ts); undefined while it may. */
  stopping?: () => string | undefined;
  /** The key of the hashes secrets in requests are written down as (src/policy/sql/redact.ts): the gateway's, the same for every session. */
  redactionKey?: Buffer;
}

/** The mcp policy of a session, as the MCP engine asks it (src/policy/mcp.ts's `McpJudge`). */
export type SessionMcp = Pick<McpJudge, 'decide' | 'shows' | 'serverMay'>;

/** The http policy of a session, as the HTTP engine asks it (src/policy/http.ts's `HttpJudge`). */
export type SessionHttp = Pick<HttpJudge, 'decide' | 'unmasked' | 'limits'>;

/** The ssh policy of a session, as the SSH engine asks it (src/policy/ssh.ts's `SshJudge`). */
export type SessionSsh = Pick<SshJudge, 'decide' | 'env' | 'forward' | 'sftp'>;

/** The masking a session applies: the policy's `masking` section and its resolved HMAC key. */
export interface SessionMasking {
  policy: MaskingPolicy;
  /** The resolved `masking.key` (for the `hash` strategy); never logged. */
  key?: string;
  /**
   * Told each row's values as the server sent them, before masking: `hoop policy test` compares
   * what a client got with what the same execution read (never set by the gateway).
   */
  serverRows?: (values: ReadonlyArray<Buffer | null>) => void;
}

/** How a session ended. */
export interface SessionOutcome {
  reason: CloseReason;
  /** Bytes the client sent through the tunnel. */
  bytesFromClient: number;
  /** Bytes sent back to the client. */
  bytesToClient: number;
  /** A short, secret-free explanation for the log. */
  detail?: string;
}

/** A protocol engine. */
export interface Engine<C extends ConnectionConfig = ConnectionConfig> {
  /** The protocol a recording of its sessions names, whose decoder turns the records into events (see RecordEncoderModule in src/recording/thread.ts). */
  readonly recordProtocol: string;
  /** Serves one session until it ends; never throws. */
  serve(session: TunnelSession<C>): Promise<SessionOutcome>;
}
