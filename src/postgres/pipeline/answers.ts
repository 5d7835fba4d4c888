/**
 * What the server has yet to answer: the client messages it was sent, in order, matched against
 * each message it sends back, the way PostgreSQL takes them.
 *
 * - Each Parse, Bind, Describe, Execute and Close is answered by its own message(s) (ParseComplete,
 *   BindComplete, RowDescription / NoData, CommandComplete / EmptyQueryResponse /
 *   PortalSuspended, CloseComplete); Sync, Query and FunctionCall by ReadyForQuery at their end.
 * - After an error in the extended protocol the server discards every message up to the next
 *   Sync — a Query among them too — so those will never be answered.
 * - In copy-in (CopyInResponse) the server takes CopyData, CopyDone and CopyFail, ignores Sync
 *   and Flush, and ends the copy with an error at any other message, which it consumes; outside
 *   copy-in it ignores CopyDone and CopyFail.
 *
 * A server message that answers nothing the server was sent, or the wrong thing, means hoop no
 * longer knows which statement a result belongs to: a {@link PgProtocolError}, and the session
 * ends (masking and the gate must never guess).
 *
 * @see https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-EXT-QUERY
 * @see https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-COPY
 * @see https://www.postgresql.org/docs/current/protocol-message-formats.html
 */
import { PgProtocolError } from '../wire/protocol-error.js';
import { Backend, Frontend } from '../wire/codes.js';

/** The kinds of client message the server answers (`copy-end`: a CopyDone or CopyFail, which may end a copy-in). */
export type AskKind = 'parse' | 'bind' | 'describe' | 'execute' | 'close' | 'sync' | 'query' | 'function' | 'copy-end';

/** One client message the server was sent, as far as its answer goes; users add what they need to know of it. */
/** How the server took a message (see {@link Ask.done}). */
export type AskOutcome = 'ok' | 'failed' | 'skipped';

export interface Ask {
  readonly k: AskKind;
  /**
   * Told once how the server took the message: `ok` when it completed it (ParseComplete,
   * CloseComplete, a Query's ReadyForQuery with no error before it), `failed` when it answered
   * with an error, `skipped` when it never acted on it (discarded after an earlier error, consumed
   * by a COPY). For whoever must only believe a change the server made (a prepared name).
   */
  readonly done?: (outcome: AskOutcome) => void;
  /** Whoever must see the server's answers to it before the client does (the write guard's runs). */
  readonly tag?: object;
  /** A statement the client asked to run (a Query, an Execute), followed for what it reads and changes (./tally.ts). */
  readonly note?: StatementNote;
  /** A Query that met an ErrorResponse (set on its ask). */
  failed?: boolean;
}

/** A Query or Execute the client sent, followed to its end for what it reads and changes (./tally.ts). */
export class StatementNote {
  /** Rows sent since it was last told. */
  rows = 0;
  /** Rows sent since its last statement ended (parts told included). */
  sent = 0;
  /** It is a COPY FROM (its tag counts rows written). */
  copyIn = false;
  /** `tables`: what the gate noted the statement reads, with the functions it calls as `name()` (src/postgres/gateway/relation-reads.ts reads those). */
  constructor(readonly tables: readonly string[]) {}
}

/** The kind of a frontend message by type byte, or undefined for those nothing answers (CopyData, Flush, Terminate). */
export function askKindOf(type: number): AskKind | undefined {
  switch (type) {
    case Frontend.QUERY:
      return 'query';
    case Frontend.PARSE:
      return 'parse';
    case Frontend.BIND:
      return 'bind';
    case Frontend.DESCRIBE:
      return 'describe';
    case Frontend.EXECUTE:
      return 'execute';
    case Frontend.CLOSE:
      return 'close';
    case Frontend.SYNC:
      return 'sync';
    case Frontend.FUNCTION_CALL:
      return 'function';
    case Frontend.COPY_DONE:
    case Frontend.COPY_FAIL:
      return 'copy-end';
    default:
      return undefined;
  }
}

/** The extended-protocol messages after whose error the server discards up to the next Sync. */
const EXTENDED = new Set<AskKind>(['parse', 'bind', 'describe', 'execute', 'close']);

const KIND_BIT: Record<AskKind, number> = { parse: 1, bind: 2, describe: 4, execute: 8, close: 16, sync: 32, query: 64, function: 128, 'copy-end': 256 };

/** What may be answered by each server message type that answers something (others: notices, notifications, ParameterStatus, errors). */
const ANSWERS: ReadonlyArray<readonly [number, readonly AskKind[]]> = [
  [Backend.PARSE_COMPLETE, ['parse']],
  [Backend.BIND_COMPLETE, ['bind']],
  [Backend.CLOSE_COMPLETE, ['close']],
  [Backend.PARAMETER_DESCRIPTION, ['describe']],
  [Backend.NO_DATA, ['describe']],
  [Backend.ROW_DESCRIPTION, ['describe', 'query']],
  [Backend.DATA_ROW, ['execute', 'query']],
  [Backend.COMMAND_COMPLETE, ['execute', 'query']],
  [Backend.EMPTY_QUERY, ['execute', 'query']],
  [Backend.PORTAL_SUSPENDED, ['execute']],
  [Backend.COPY_IN, ['execute', 'query']],
  [Backend.COPY_OUT, ['execute', 'query']],
  [Backend.COPY_BOTH, ['execute', 'query']],
  [Backend.COPY_DATA, ['execute', 'query']],
  [Backend.COPY_DONE, ['execute', 'query']],
  [Backend.FUNCTION_CALL_RESPONSE, ['function']],
  [Backend.READY_FOR_QUERY, ['sync', 'query', 'function']],
];
/** {@link ANSWERS} as a bit mask of kinds per type byte (0: answers nothing). */
const ANSWER_MASK = new Int32Array(256);
for (const [type, kinds] of ANSWERS) ANSWER_MASK[type] = kinds.reduce((m, k) => m | KIND_BIT[k], 0);

/** Server message types after which the message they answer is done. */
const ENDS = new Set<number>([Backend.PARSE_COMPLETE, Backend.BIND_COMPLETE, Backend.CLOSE_COMPLETE, Backend.NO_DATA, Backend.PORTAL_SUSPENDED, Backend.READY_FOR_QUERY]);
const { ROW_DESCRIPTION, COMMAND_COMPLETE, EMPTY_QUERY, ERROR, COPY_IN, COPY_BOTH } = Backend;

const NAMES: Record<AskKind, string> = {
  parse: 'Parse',
  bind: 'Bind',
  describe: 'Describe',
  execute: 'Execute',
  close: 'Close',
  sync: 'Sync',
  query: 'Query',
  function: 'FunctionCall',
  'copy-end': 'CopyDone',
};

/** Most client messages awaiting an answer before the client is considered abusive. */
const MAX_PENDING = 100_000;

/**
 * The queue of what the server has yet to answer. Feed it every message the server receives
 * ({@link push}) and every message it sends back ({@link answer}), in order.
 */
export class AnswerQueue<T extends Ask> {
  #items: T[] = [];
  #first = 0;
  /** The server discards what it is sent until a Sync (after an error in the extended protocol). */
  #skipping = false;
  /** The server is in copy-in and has not yet been sent what ends it. */
  #copyIn = false;
  /** Sync, Query and FunctionCall messages waiting (each gets a ReadyForQuery). */
  #ready = 0;

  /** How many messages await an answer. */
  get length(): number {
    return this.#items.length - this.#first;
  }

  /** Sync / Query / FunctionCall messages whose ReadyForQuery has not come yet. */
  get pendingReady(): number {
    return this.#ready;
  }

  /** The message the server's next answer belongs to. */
  get head(): T | undefined {
    return this.#items[this.#first];
  }

  /**
   * Records a message the server receives. Returns false when the server will not answer it
   * (discarded after an error, ignored or consumed in copy-in).
   *
   * @throws PgProtocolError when too many messages await an answer
   */
  push(ask: T): boolean {
    if (this.#skipping) {
      if (ask.k !== 'sync') return this.#unanswered(ask);
      this.#skipping = false;
    } else if (this.#copyIn) {
      if (ask.k === 'sync') return false;
      // A CopyDone / CopyFail ends the copy; anything else ends it with an error and is consumed.
      this.#copyIn = false;
      return this.#unanswered(ask);
    } else if (ask.k === 'copy-end' && this.length === 0) {
      return false; // ignored outside copy-in
    }
    if (this.length >= MAX_PENDING) throw new PgProtocolError('too many client messages awaiting a response');
    this.#items.push(ask);
    if (ask.k === 'sync' || ask.k === 'query' || ask.k === 'function') this.#ready++;
    return true;
  }

  /**
   * Matches one server message (by type) to what it answers and returns that client message
   * (undefined for messages that answer nothing: notices, notifications, ParameterStatus, an
   * error with nothing pending). Removes it once answered, and follows the server into discarding
   * after an extended-protocol error and into copy-in.
   *
   * @throws PgProtocolError when the message answers nothing the server was sent, or the wrong thing
   */
  answer(type: number): T | undefined {
    if (type === ERROR) return this.#error();
    const kinds = ANSWER_MASK[type]!;
    if (kinds === 0) return undefined;
    const head = this.head;
    if (head === undefined || (kinds & KIND_BIT[head.k]) === 0) {
      throw new PgProtocolError(
        `the server sent '${String.fromCharCode(type)}' where hoop expected ${head ? `the answer to a ${NAMES[head.k]}` : 'nothing'}; hoop cannot tell what it belongs to, so the session is closed`,
      );
    }
    if (type === COPY_IN || type === COPY_BOTH) this.#enterCopyIn();
    const ends = ENDS.has(type) || (head.k === 'describe' && type === ROW_DESCRIPTION) || (head.k === 'execute' && (type === COMMAND_COMPLETE || type === EMPTY_QUERY));
    if (ends) {
      head.done?.(head.k === 'query' && head.failed === true ? 'failed' : 'ok');
      this.#shift();
    }
    return head;
  }

  /** A message the server will not act on: whoever waits on it hears so. */
  #unanswered(ask: T): false {
    ask.done?.('skipped');
    return false;
  }

  /** An ErrorResponse: ends the head; after one in the extended protocol, the server discards up to the next Sync. */
  #error(): T | undefined {
    const head = this.head;
    this.#copyIn = false;
    if (head === undefined) return head;
    if (!EXTENDED.has(head.k)) {
      if (head.done) head.failed = true; // only a message's own ask (the shared ones carry nothing)
      return head;
    }
    // The failed message and those the server now skips up to the Sync.
    let outcome: AskOutcome = 'failed';
    while (this.length > 0 && this.head!.k !== 'sync') {
      this.head!.done?.(outcome);
      outcome = 'skipped';
      this.#shift();
    }
    if (this.length === 0) this.#skipping = true;
    return head;
  }

  /** CopyInResponse: the messages after the head are read in copy-in, up to the one that ends it. */
  #enterCopyIn(): void {
    const keep: T[] = [];
    let at = this.#first + 1;
    let ended = false;
    for (; at < this.#items.length && !ended; at++) {
      const ask = this.#items[at]!;
      if (ask.k !== 'sync') {
        ended = true; // a copy-end, or a message that ends the copy with an error: consumed
        ask.done?.('skipped');
      } else this.#ready--;
    }
    for (; at < this.#items.length; at++) keep.push(this.#items[at]!);
    const head = this.#items[this.#first]!;
    this.#items = [head, ...keep];
    this.#first = 0;
    this.#ready = this.#items.filter((a) => a.k === 'sync' || a.k === 'query' || a.k === 'function').length;
    this.#copyIn = !ended;
  }

  #shift(): void {
    const done = this.#items[this.#first++]!;
    if (done.k === 'sync' || done.k === 'query' || done.k === 'function') this.#ready--;
    // CopyDone / CopyFail outside copy-in are ignored by the server.
    while (this.#first < this.#items.length && this.#items[this.#first]!.k === 'copy-end') this.#first++;
    if (this.#first === this.#items.length) {
      this.#items = [];
      this.#first = 0;
    } else if (this.#first > 1024 && this.#first * 2 > this.#items.length) {
      this.#items = this.#items.slice(this.#first);
      this.#first = 0;
    }
  }
}
