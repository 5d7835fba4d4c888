/**
 * What each statement read and changed, for the session index, the audit stream and the alerts:
 * every Query and Execute the client runs carries a {@link StatementNote} on its place in the
 * {@link ServerState}'s queue, and the {@link BackendPath} counts the server's answers to it
 * (./relay.ts): rows the server sent (DataRow, and CopyData of a COPY TO; counted before the
 * write guard, which drops the RETURNING rows of a write it refuses), and at each statement's end
 * (CommandComplete, PortalSuspended, ErrorResponse) the rows its tag says it changed. The
 * gateway's own messages (the write guard's counts, masking's Describes) carry no note and are
 * not counted; refused messages never reach the server.
 *
 * Rows changed are the server's count (`UPDATE 3`), whether or not the transaction commits: a
 * write the guard rolls back, or the client does, was still attempted on that many rows.
 *
 * Rows are never held back until a statement ends: past {@link PARTIAL_ROWS} rows a statement
 * still running is told as a part (`partial`), and when the session ends ({@link end}) what its
 * open statements sent is told too, so a long read cut short is counted.
 *
 * @see https://www.postgresql.org/docs/current/protocol-flow.html
 * @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-COMMANDCOMPLETE
 */
import { Backend } from '../wire/codes.js';
import { commandTag } from '../wire/rows.js';
import type { PgMessage } from '../wire/reader.js';
import type { StatementRows } from '../../session/engine.js';
import type { Ask, StatementNote } from './answers.js';
import type { Stage } from './stages.js';

const { DATA_ROW, COPY_DATA, COMMAND_COMPLETE, PORTAL_SUSPENDED, ERROR, COPY_IN, COPY_BOTH } = Backend;

/** Verbs whose tag counts rows changed. */
const WRITES = new Set(['INSERT', 'UPDATE', 'DELETE', 'MERGE']);
/** Rows after which a statement still running is told as a part. */
export const PARTIAL_ROWS = 10_000;

/** Counts the server's answers to noted statements and says each statement's end: a stage of the backend path. */
export class StatementTally implements Stage {
  /** Notes with rows not told yet. */
  readonly #open = new Set<StatementNote>();

  constructor(readonly onStatement: (s: StatementRows) => void) {}

  /** Whether a server message must be read whole: the ends and COPY starts of a noted statement (small and rare); rows as they come. */
  wants(type: number, _length: number, ask: Ask | undefined): boolean {
    return ask?.note !== undefined && (type === COMMAND_COMPLETE || type === PORTAL_SUSPENDED || type === ERROR || type === COPY_IN || type === COPY_BOTH);
  }

  /** Messages that passed unread, `count` of them (a run): a noted statement's rows. */
  unread(type: number, count: number, ask: Ask | undefined): void {
    const note = ask?.note;
    if (note) this.#rows(note, type, count);
  }

  /** A whole server message, counted when it answers a noted statement. */
  backend(bytes: Buffer, msg: PgMessage, ask: Ask | undefined): Buffer {
    const note = ask?.note;
    if (note) this.#message(note, msg.type, msg.body);
    return bytes;
  }

  /** Rows that passed unread, `count` of them (a run). */
  #rows(note: StatementNote, type: number, count: number): void {
    if (type !== DATA_ROW && (type !== COPY_DATA || note.copyIn)) return;
    note.rows += count;
    note.sent += count;
    this.#open.add(note);
    if (note.rows >= PARTIAL_ROWS) this.#tell(note, '', 0, false, true);
  }

  /** The session ended: what its statements sent and were never told is told now (cut short). */
  end(): void {
    for (const note of [...this.#open]) this.#tell(note, '', 0, true, true);
  }

  /** A whole server message answering `note`. */
  #message(note: StatementNote, type: number, body: Buffer): void {
    switch (type) {
      case DATA_ROW:
      case COPY_DATA:
        this.#rows(note, type, 1);
        return;
      case COPY_IN:
      case COPY_BOTH:
        note.copyIn = true;
        return;
      case COMMAND_COMPLETE: {
        const { verb, rows } = commandTag(body);
        // CREATE TABLE AS and SELECT INTO say `SELECT n` and send no row: the n rows were read into a table the session can read later.
        if (verb === 'SELECT' && note.sent === 0) note.rows = rows;
        this.#end(note, verb, WRITES.has(verb) || (verb === 'COPY' && note.copyIn) ? rows : 0, false);
        return;
      }
      case PORTAL_SUSPENDED:
        this.#end(note, '', 0, false);
        return;
      case ERROR:
        this.#end(note, '', 0, true);
        return;
      default:
        return;
    }
  }

  #end(note: StatementNote, verb: string, changed: number, failed: boolean): void {
    this.#tell(note, verb, changed, failed, false);
    note.copyIn = false;
    note.sent = 0;
  }

  /** Tells what `note` sent since it was last told; a `partial` one goes on. */
  #tell(note: StatementNote, verb: string, changed: number, failed: boolean, partial: boolean): void {
    const rows = note.rows;
    note.rows = 0;
    this.#open.delete(note);
    this.onStatement({ verb, rows, changed, tables: note.tables, failed, ...(partial ? { partial: true } : {}) });
  }
}
