/**
 * What the server has yet to answer on one session, fed by both directions of the relay
 * (./relay.ts) and read by its stages (./stages.ts).
 *
 * @see https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-EXT-QUERY
 */
import { AnswerQueue, askKindOf, type Ask, type AskKind, type AskOutcome, type StatementNote } from './answers.js';
import { Backend, TransactionStatus } from '../wire/codes.js';

const { DATA_ROW, COPY_DATA } = Backend;

/** One shared record per kind: the state needs no more of a message than its kind. */
const ASKS = new Map<AskKind, Ask>((['parse', 'bind', 'describe', 'execute', 'close', 'sync', 'query', 'function', 'copy-end'] as const).map((k) => [k, { k }]));

/**
 * Where the server is in answering what it was sent (an {@link AnswerQueue} of every message it
 * received, matched against every message it sends back), and what the extended-protocol batch
 * not yet synced holds. Fed by both paths; read by the lexing guard and by whoever ends a session
 * (a busy server gets a CancelRequest). A server message that answers nothing it was sent ends
 * the session (PgProtocolError).
 *
 * @see https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-EXT-QUERY
 */
export class ServerState {
  readonly #answers = new AnswerQueue<Ask>();
  #batch = 0;
  #batchRunsCode = false;
  #batchExecuted = false;
  #status: 'I' | 'T' | 'E' = 'I';
  #waiters: Array<() => void> = [];

  /**
   * Notes a message the server receives; `done` is told whether the server completed it (see
   * {@link Ask.done}). @throws PgProtocolError when too many await an answer
   */
  forwarded(type: number, done?: (outcome: AskOutcome) => void, tag?: object, note?: StatementNote): void {
    const kind = askKindOf(type);
    if (kind === undefined) {
      done?.('skipped');
      return;
    }
    this.#answers.push(done || tag || note ? { k: kind, ...(done ? { done } : {}), ...(tag ? { tag } : {}), ...(note ? { note } : {}) } : ASKS.get(kind)!);
    if (kind === 'sync' || kind === 'query' || kind === 'function') {
      this.#batch = 0;
      this.#batchRunsCode = false;
      this.#batchExecuted = false;
    } else if (kind !== 'copy-end') {
      this.#batch++;
      if (kind === 'bind' || kind === 'execute') this.#batchRunsCode = true;
      if (kind === 'execute') this.#batchExecuted = true;
    }
  }

  /**
   * Notes a server message by its type, when its header arrives; returns the client message it
   * answers (for rows, notices and the like: the one being answered), if any.
   * @throws PgProtocolError when it answers nothing the server was sent
   */
  serverSent(type: number): Ask | undefined {
    // Rows and COPY data, most of the stream, never move the queue (masking checks them against it).
    if (type === DATA_ROW || type === COPY_DATA) return this.#answers.head;
    return this.#answers.answer(type) ?? this.#answers.head;
  }

  /** Told when the server is idle outside a transaction block with nothing more sent: what the session's transactions did is committed or undone. */
  onTransactionEnd: (() => void) | undefined;

  /** Notes a ReadyForQuery's transaction status (after {@link serverSent} of its type). */
  ready(status: number): void {
    this.#status = status === TransactionStatus.IN_BLOCK ? 'T' : status === TransactionStatus.FAILED ? 'E' : 'I';
    if (this.#answers.pendingReady > 0) return;
    if (this.#status === 'I') this.onTransactionEnd?.();
    for (const wake of this.#waiters.splice(0)) wake();
  }

  /** True when the server has answered everything it was sent (it is idle, between transactions or in one). */
  get idle(): boolean {
    return this.#answers.length === 0;
  }

  /** ReadyForQuery messages still to come. */
  get pendingReady(): number {
    return this.#answers.pendingReady;
  }

  /** Whether the extended-protocol batch sent since the last Sync may run code (a Bind or Execute). */
  get batchRunsCode(): boolean {
    return this.#batchRunsCode;
  }

  /** Whether an Execute was sent since the last Sync or Query. */
  get batchExecuted(): boolean {
    return this.#batchExecuted;
  }

  /** Messages sent since the last Sync or Query. */
  get unsynced(): number {
    return this.#batch;
  }

  /** The transaction status of the last ReadyForQuery: idle, in a transaction block, or in a failed one. */
  get transactionStatus(): 'I' | 'T' | 'E' {
    return this.#status;
  }

  /** Resolves once every Sync / Query sent so far has its ReadyForQuery. */
  answered(): Promise<void> {
    if (this.#answers.pendingReady === 0) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push(resolve));
  }
}
