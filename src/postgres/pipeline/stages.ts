/**
 * The stages of the PostgreSQL engine's data path, as the relay's two paths (./relay.ts) use
 * them: one contract, declared here once. Each stage sees the relay's one read of its direction;
 * the gateway's engine (../gateway/engine.ts) and `hoop connect`'s local listener
 * (../local/listener.ts) build a relay from the stages they have.
 *
 * - {@link GateStage}: the statement gate (./statement-gate.ts): judges, refuses, holds for review;
 * - {@link MaskingStage}: masking (./masking/stage.ts);
 * - {@link GuardStage}: the write guard (./write-guard.ts): a write under a row limit;
 * - {@link RecorderStage}: the recording (./recording/stage.ts).
 *
 * @see https://www.postgresql.org/docs/current/protocol-flow.html
 */
import type { WriteGuard } from '../../policy/write-limit.js';
import type { Analysis } from '../../policy/sql/analyze.js';
import type { Ask, AskOutcome } from './answers.js';
import type { FrontendMessage } from '../wire/frontend-messages.js';
import type { Framing, PgMessage } from '../wire/reader.js';

/** One refusal, for the gateway's log: never the SQL text. */
export interface Refusal {
  action: 'deny' | 'review';
  /** The policy's rule, or `hoop:<builtin>` for the gate's own refusals. */
  rule: string;
  reason: string;
  /** The frontend message that was refused: 'Q', 'P', 'B', 'E' or 'F'. */
  message: string;
  /** The SQL refused, when a rule judged a text (a built-in refusal of a message may have none). */
  sql?: string;
}

/** What the gate decided for one whole message. */
export interface GateDecision {
  /** What goes upstream: the message itself when it passed, else what stands in its place (possibly nothing). */
  send: readonly FrontendMessage[];
  /** Set when the message passed as the client sent it: what goes with it. */
  passed?: {
    /** What must hear how the server took it (a Parse, a Close, a Query that PREPAREs or DEALLOCATEs). */
    answered?: (outcome: AskOutcome) => void;
    /** The row limit on what it writes, and its SQL. */
    guard?: { guard: WriteGuard; sql: string };
    /** The tables it names, when it was judged. */
    touched?: readonly string[];
  };
}

/** The statement gate as the paths use it (./statement-gate.ts). */
export interface GateStage {
  /**
   * The decision on one whole message; a Promise while it is held for a review. `canHold` false:
   * it cannot be held (a Bind streamed on), so a review refuses it.
   */
  frontend(m: FrontendMessage, analysis?: Analysis, canHold?: boolean): GateDecision | Promise<GateDecision>;
  /** What to send instead of a message refused without being read whole: a Query or Parse longer than the limit. */
  refuseUnread(type: number, length: number, limit?: number): readonly FrontendMessage[];
  /**
   * What to send instead of a Query or Parse whose text has a backslash and that follows, in the
   * same unsynced batch, a message that may change how the server reads it.
   */
  refuseLexingPending(m: FrontendMessage): readonly FrontendMessage[];
  /** True while messages are dropped until the client's Sync (after a refusal in a batch). */
  readonly discarding: boolean;
  /** Refusals whose ErrorResponse has not come back yet. */
  readonly pendingRefusals: number;
  /** The server message to hand on for `msg` (an ErrorResponse or ParameterStatus; others pass). */
  backend(msg: PgMessage): PgMessage;
}

/** Masking as the paths use it (./masking/stage.ts). */
export interface MaskingStage {
  /** Records a message the server receives; returns messages to send before it (a Describe), if any. */
  frontend(m: FrontendMessage, analysis?: Analysis): readonly FrontendMessage[] | undefined;
  /** How a server message whose header just arrived must be read (`pass` when it cannot change). @throws PgProtocolError over a limit */
  framing(type: number, length: number): Framing;
  /** The bytes to hand on for one server message; a Promise while a catalog lookup runs. */
  backend(msg: PgMessage): Buffer | Promise<Buffer>;
}

/** How the guard sends upstream: through masking and the server state, in order. */
export interface GuardIO {
  send(m: FrontendMessage, tag?: object, done?: (outcome: AskOutcome) => void): void;
  sendAll(messages: readonly FrontendMessage[]): void;
  flush(): void;
}

/** The write guard as the paths use it (./write-guard.ts). */
export interface GuardStage {
  /** Runs a Query or Execute the gate passed under a row limit; settles once what the client sent after it may follow. `sql`: its text, for a reviewer. */
  run(m: FrontendMessage, guard: WriteGuard, sql: string, io: GuardIO, done?: (outcome: AskOutcome) => void): Promise<void>;
  /** A Bind the gate passed (`raw` absent: streamed), kept while its write may go to review. */
  bound(portal: string, raw: Buffer | undefined, guard: WriteGuard | undefined): void;
  /** True when the server message for `ask` must be read whole. */
  wants(ask: Ask | undefined): boolean;
  /** The server message (or messages, or none) to hand on for `r`. */
  backend(r: Buffer, ask: Ask | undefined): Buffer | readonly Buffer[] | undefined;
}

/** The stage as the relay's paths use it. */
export interface RecorderStage {
  /** A message the client sent, before the gate judges it. */
  client(m: FrontendMessage): void;
  /** The gate refused the client's last message (or one it could not read). */
  refused(r: Refusal): void;
  /** Whether a server message of this type must be read whole for the recording (else it passes, counted). */
  wants(type: number): boolean;
  /** Server messages of one type that passed unread, `count` of them in a row. */
  passed(type: number, count: number): void;
  /** Bytes handed to the client: whole server messages. A Promise while the recording is behind. */
  server(bytes: Buffer): Promise<void> | undefined;
  /** The session is over. */
  end(): void;
}
