/**
 * How the statement gate says a refusal without answering on the server's behalf. In place of
 * the refused message it sends the server a Describe of a statement that cannot exist (a
 * per-session random name), which fails with 26000 and no side effect, and replaces that
 * ErrorResponse, when it comes back, with its own. Then:
 * - in the extended protocol every later message up to Sync is dropped and the client's Sync is
 *   forwarded, as PostgreSQL skips to Sync after an error;
 * - a refused Query or FunctionCall is followed by a Sync of the gateway's ({@link SYNC_MESSAGE}).
 * The server's ReadyForQuery thus reaches the client with the real transaction status, and:
 * - the error is in order: the responses to the messages of the same pipeline that were
 *   forwarded before the refused one come first, because the server produces them first;
 * - the server's state is what a real error leaves: an implicit transaction (the statements
 *   before the refused one in the same Sync batch) is rolled back, an explicit transaction
 *   block is failed ('E': everything is refused with 25P02 until ROLLBACK, and COMMIT rolls
 *   back), so client and server never disagree about the transaction;
 * - when an earlier message of the batch already failed on the server, the server skips the
 *   Describe as it would have skipped the refused message, and the client sees only the
 *   server's own error, as without hoop.
 * The server's log shows a `prepared statement "hoop_denied_..." does not exist` ERROR for each
 * refusal, which marks where hoop refused a statement.
 *
 * @see https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-EXT-QUERY
 * @see https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-PIPELINING
 * @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-ERRORRESPONSE
 */
import { randomBytes } from 'node:crypto';
import { Backend, Frontend } from '../../wire/codes.js';
import { describeMessage, type FrontendMessage } from '../../wire/frontend-messages.js';
import { sync } from '../../wire/messages.js';
import { parseErrorFields, type PgMessage } from '../../wire/reader.js';
import { RESERVED_STATEMENT_PREFIX } from './names.js';

const { SYNC } = Frontend;
const { ERROR: ERROR_RESPONSE } = Backend;
/** Refusals whose ErrorResponse may still come back; older ones are forgotten (their batch failed earlier). */
const MAX_PENDING = 256;
/** The largest server ErrorResponse held back to see whether it answers one of the gateway's Describes. */
const MAX_HELD_ERROR = 64 * 1024;

/** Nothing to send upstream (a message dropped until the client's Sync). */
export const NOTHING: readonly FrontendMessage[] = [];
const SYNC_RAW = sync();
/** The gateway's own Sync, sent after the Describe that stands for a refused Query or FunctionCall. */
export const SYNC_MESSAGE: FrontendMessage = { kind: 'sync', msg: { type: SYNC, body: SYNC_RAW.subarray(5), raw: SYNC_RAW } };

/** One session's refusals on their way: the Describes sent for them, and the errors that replace the server's answers. */
export class RefusalDescribes {
  /** Names of the gateway's pending Describes -> the ErrorResponse that replaces the server's. */
  get #pending(): Map<string, Buffer> {
    return (this.#pendingMade ??= new Map());
  }
  #pendingMade: Map<string, Buffer> | undefined;
  readonly #prefix = `${RESERVED_STATEMENT_PREFIX}${randomBytes(6).toString('hex')}_`;
  #seq = 0;

  /** Refusals whose ErrorResponse has not come back from the server yet. */
  get size(): number {
    return this.#pending.size;
  }

  /** Registers `error` as the answer to a new Describe and returns that Describe. */
  describe(error: Buffer): FrontendMessage {
    const name = `${this.#prefix}${this.#seq++}`;
    this.#pending.set(name, error);
    if (this.#pending.size > MAX_PENDING) this.#pending.delete(this.#pending.keys().next().value!);
    return describeMessage('S', name);
  }

  /**
   * The server message to hand on for `msg`: an ErrorResponse that answers one of the gateway's
   * Describes (26000, naming it) becomes the refusal; anything else passes.
   */
  answer(msg: PgMessage): PgMessage {
    if (msg.type !== ERROR_RESPONSE || this.#pending.size === 0 || msg.raw.length > MAX_HELD_ERROR) return msg;
    let fields;
    try {
      fields = parseErrorFields(msg.body);
    } catch {
      return msg;
    }
    if (fields.code !== '26000') return msg;
    for (const [name, refusal] of this.#pending) {
      if (fields.message.includes(name)) {
        this.#pending.delete(name);
        return { type: refusal[0]!, body: refusal.subarray(5), raw: refusal };
      }
    }
    return msg;
  }
}
