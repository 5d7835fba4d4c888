/**
 * The one contract of the PostgreSQL engine's data path: every concern on the relay's one read of
 * each direction is a {@link Stage}, and each of the relay's two paths (./relay.ts) runs the stages
 * it has in the order it declares there. A stage has only the hooks of the directions it cares
 * about. The gateway's engine (../gateway/session-relay.ts) and `hoop connect`'s local listener
 * (../local/listener.ts) build a relay from the stages they have:
 *
 * - the statement gate (./statement-gate.ts): judges, refuses, holds for review;
 * - the write guard (./write-guard.ts): a write under a row limit;
 * - masking (./masking/stage.ts);
 * - the statement tally (./tally.ts): what each statement read and changed;
 * - the recording (./recording/stage.ts).
 *
 * @see https://www.postgresql.org/docs/current/protocol-flow.html
 */
import type { WriteGuard } from '../../policy/write-limit.js';
import type { Analysis } from '../../policy/sql/analyze.js';
import type { Ask, AskOutcome } from './answers.js';
import type { FrontendMessage } from '../wire/frontend-messages.js';
import type { PgMessage } from '../wire/reader.js';

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

/** What goes with a message that passed as the client sent it. */
export interface Passed {
  /** What must hear how the server took it (a Parse, a Close, a Query that PREPAREs or DEALLOCATEs). */
  answered?: (outcome: AskOutcome) => void;
  /** The row limit on what it writes, and its SQL. */
  guard?: { guard: WriteGuard; sql: string };
  /** The tables it names, when it was judged. */
  touched?: readonly string[];
  /** An Execute of a portal that begins a transaction block (BEGIN, START TRANSACTION) or ends one (COMMIT, ROLLBACK, PREPARE TRANSACTION). */
  block?: 'begin' | 'end';
}

/** What a stage decided for one whole message the client sent. */
export interface Decision {
  /** What goes upstream: the message itself when it passed, else what stands in its place (possibly nothing). */
  send: readonly FrontendMessage[];
  /** Set when the message passed as the client sent it: what goes with it. */
  passed?: Passed;
}

/** The client's message at hand, as a path's stages are told of it, and the way upstream for a stage that sends itself. */
export interface FrontendContext {
  /** The analysis of a Query's or Parse's SQL, when the path made it (a long text; stages analyse others through the per-text cache). */
  readonly analysis: Analysis | undefined;
  /** What goes with the message, once a stage before passed it. */
  readonly passed: Passed | undefined;
  /** Sends `m` upstream: through the stages' `upstream` hooks, then noted in the server state with `tag` and `done` (see ServerState.forwarded). */
  send(m: FrontendMessage, tag?: object, done?: (outcome: AskOutcome) => void): void;
  /** Sends each of `messages` upstream, in order, with nothing to hear of them. */
  sendAll(messages: readonly FrontendMessage[]): void;
  /** Writes what was gathered upstream. */
  flush(): void;
}

/** One concern on the relay's data path, with the hooks of the directions it cares about: each path calls them in the order it declares (./relay.ts). */
export interface Stage {
  /**
   * A whole message the client sent, once the stages before let it through: undefined when it goes
   * on as it came, else what goes upstream for it; a Promise while it waits (never for a Bind
   * streamed on, whose `msg` is absent).
   */
  frontend?(m: FrontendMessage, ctx: FrontendContext): Decision | Promise<Decision | undefined> | undefined;
  /** Each message the server will receive, in order (the client's, and those sent in its place or beside it): messages to send before it, if any. */
  upstream?(m: FrontendMessage, analysis: Analysis | undefined): readonly FrontendMessage[] | undefined;
  /** True while the stage drops what the client sends until its Sync: the path then analyses no SQL and holds nothing back. */
  readonly discarding?: boolean;
  /** What to send in place of a Query or Parse longer than the path reads (`limit` bytes of SQL); without a stage that says it, the session ends. */
  refuseTooLong?(type: number, length: number, limit: number): readonly FrontendMessage[];
  /** What to send in place of a Query or Parse with a backslash, behind unsynced messages that may change how the server lexes it. */
  refuseLexingPending?(m: FrontendMessage): readonly FrontendMessage[];
  /** Whether the server message whose header just arrived must be read whole (else it may pass unread). @throws PgProtocolError over the stage's limit */
  wants?(type: number, length: number, ask: Ask | undefined): boolean;
  /** Server messages of one type that passed unread, `count` of them in a row. */
  unread?(type: number, count: number, ask: Ask | undefined): void;
  /**
   * A whole server message `msg`, as the stages before hand it on (`bytes`: its own, unless one put
   * others in its place): what to hand on (the same bytes, others, or none), or a Promise of the
   * bytes while a lookup runs.
   */
  backend?(bytes: Buffer, msg: PgMessage, ask: Ask | undefined): Buffer | readonly Buffer[] | undefined | Promise<Buffer>;
  /** A Promise while the stage is behind (a recording): the path reads no more of the server until it settles. */
  readonly behind?: Promise<void> | undefined;
}
