/**
 * What each packet of a MySQL command phase is: the client's command says what its answer will
 * look like (OK or ERR, a result set, a prepared statement's description, nothing), and the
 * server's packets are classified against it in order. The relay and the recording's decoder read
 * the conversation with this one state machine, so they cannot disagree on what a packet was.
 *
 * @see https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_command_phase.html
 * @see https://mariadb.com/kb/en/result-set-packets/
 */
import { Cap } from '../wire/handshake.js';
import { MySqlProtocolError } from '../wire/protocol-error.js';
import { Command, columnCount, EOF_HEADER, eofStatus, ERR_HEADER, isEof, LOCAL_INFILE_HEADER, OK_HEADER, parseOk, Status } from '../wire/results.js';

/** What a server packet is. */
export type ServerPacket =
  | { kind: 'ok'; more: boolean }
  | { kind: 'err' }
  | { kind: 'column-count'; columns: number }
  | { kind: 'column'; last: boolean }
  | { kind: 'columns-end' }
  | { kind: 'row'; binary: boolean }
  | { kind: 'rows-end'; more: boolean }
  | { kind: 'infile' }
  | { kind: 'prepared'; statement: number; columns: number; params: number }
  | { kind: 'param'; last: boolean }
  | { kind: 'text' };

/** A row, read once per row of every result: one object each way, not one per row. */
const TEXT_ROW: ServerPacket = Object.freeze({ kind: 'row', binary: false });
const BINARY_ROW: ServerPacket = Object.freeze({ kind: 'row', binary: true });

/** Where the answer to the command in flight stands. */
type Expect =
  | { at: 'nothing' }
  | { at: 'ok' }
  | { at: 'text' }
  | { at: 'result'; binary: boolean }
  | { at: 'columns'; left: number; binary: boolean; thenRows: boolean }
  | { at: 'columns-eof'; binary: boolean; thenRows: boolean }
  | { at: 'rows'; binary: boolean }
  | { at: 'prepared' }
  | { at: 'params'; left: number; columns: number }
  | { at: 'params-eof'; columns: number };

/** The commands whose answer is a result set (or OK/ERR). */
const RESULT_COMMANDS = new Set<number>([Command.QUERY, Command.STMT_EXECUTE]);
/** The commands the server does not answer. */
const UNANSWERED = new Set<number>([Command.STMT_CLOSE, Command.STMT_SEND_LONG_DATA, Command.QUIT]);

/** One session's command phase, as both sides agreed on `capabilities`. */
export class Conversation {
  readonly #deprecateEof: boolean;
  #status: number = Status.AUTOCOMMIT;
  readonly #capabilities: number;
  #expect: Expect = { at: 'nothing' };

  constructor(capabilities: number) {
    this.#capabilities = capabilities;
    this.#deprecateEof = (capabilities & Cap.DEPRECATE_EOF) !== 0;
  }

  /** Whether an answer is still due: the client may not send a command before it ends (but for LOCAL INFILE's data). */
  get answering(): boolean {
    return this.#expect.at !== 'nothing';
  }

  /** The server status flags of its latest OK or EOF (whether a transaction is open, autocommit). */
  get status(): number {
    return this.#status;
  }

  /** The client sent command `payload` (its first byte the command). */
  command(payload: Buffer): void {
    const code = payload[0];
    if (code === undefined) throw new MySqlProtocolError('an empty command packet');
    if (RESULT_COMMANDS.has(code)) this.#expect = { at: 'result', binary: code === Command.STMT_EXECUTE };
    else if (code === Command.STMT_PREPARE) this.#expect = { at: 'prepared' };
    else if (code === Command.FIELD_LIST) this.#expect = { at: 'columns', left: Number.POSITIVE_INFINITY, binary: false, thenRows: false };
    else if (code === Command.STATISTICS) this.#expect = { at: 'text' };
    else if (code === Command.STMT_FETCH) this.#expect = { at: 'rows', binary: true };
    else if (UNANSWERED.has(code)) this.#expect = { at: 'nothing' };
    else this.#expect = { at: 'ok' };
  }

  /** Classifies the server's next packet and moves on. */
  server(payload: Buffer): ServerPacket {
    const e = this.#expect;
    const head = payload[0];
    if (head === ERR_HEADER && e.at !== 'rows' && e.at !== 'columns') return this.#end({ kind: 'err' });
    switch (e.at) {
      case 'nothing':
        throw new MySqlProtocolError('the server sent a packet no command asked for');
      case 'text':
        return this.#end({ kind: 'text' });
      case 'ok':
        if (head !== OK_HEADER && head !== EOF_HEADER) throw new MySqlProtocolError(`an answer of 0x${(head ?? 0).toString(16)} where OK or ERR was due`);
        this.#status = head === EOF_HEADER && !this.#deprecateEof ? eofStatus(payload) : parseOk(payload, this.#capabilities).status;
        return this.#end({ kind: 'ok', more: false });
      case 'result': {
        if (head === OK_HEADER) return this.#okAnswer(payload);
        if (head === LOCAL_INFILE_HEADER) {
          this.#expect = { at: 'ok' };
          return { kind: 'infile' };
        }
        const columns = columnCount(payload);
        this.#expect = { at: 'columns', left: columns, binary: e.binary, thenRows: true };
        return { kind: 'column-count', columns };
      }
      case 'columns': {
        if (head === ERR_HEADER) return this.#end({ kind: 'err' });
        if (e.left === Number.POSITIVE_INFINITY && isEof(payload)) return this.#end({ kind: 'columns-end' });
        e.left--;
        if (e.left === 0) this.#expect = this.#afterColumns(e.binary, e.thenRows);
        return { kind: 'column', last: e.left === 0 };
      }
      case 'columns-eof':
        if (!isEof(payload)) throw new MySqlProtocolError('the column definitions did not end with an EOF');
        this.#expect = e.thenRows ? { at: 'rows', binary: e.binary } : { at: 'nothing' };
        return { kind: 'columns-end' };
      case 'rows': {
        if (head === ERR_HEADER) return this.#end({ kind: 'err' });
        if (!isEof(payload)) return e.binary ? BINARY_ROW : TEXT_ROW;
        const status = this.#deprecateEof ? parseOk(payload, this.#capabilities).status : eofStatus(payload);
        this.#status = status;
        const more = (status & Status.MORE_RESULTS_EXISTS) !== 0;
        this.#expect = more ? { at: 'result', binary: e.binary } : { at: 'nothing' };
        return { kind: 'rows-end', more };
      }
      case 'prepared': {
        if (head !== OK_HEADER || payload.length < 12) throw new MySqlProtocolError('a prepared statement answered without its description');
        const statement = payload.readUInt32LE(1);
        const columns = payload.readUInt16LE(5);
        const params = payload.readUInt16LE(7);
        this.#expect = params > 0 ? { at: 'params', left: params, columns } : this.#columnsOfPrepared(columns);
        return { kind: 'prepared', statement, columns, params };
      }
      case 'params': {
        e.left--;
        if (e.left === 0) this.#expect = this.#deprecateEof ? this.#columnsOfPrepared(e.columns) : { at: 'params-eof', columns: e.columns };
        return { kind: 'param', last: e.left === 0 };
      }
      case 'params-eof':
        if (!isEof(payload)) throw new MySqlProtocolError('the parameter definitions did not end with an EOF');
        this.#expect = this.#columnsOfPrepared(e.columns);
        return { kind: 'columns-end' };
    }
  }

  #okAnswer(payload: Buffer): ServerPacket {
    this.#status = parseOk(payload, this.#capabilities).status;
    const more = (this.#status & Status.MORE_RESULTS_EXISTS) !== 0;
    this.#expect = more ? { at: 'result', binary: false } : { at: 'nothing' };
    return { kind: 'ok', more };
  }

  #afterColumns(binary: boolean, thenRows: boolean): Expect {
    if (!this.#deprecateEof) return { at: 'columns-eof', binary, thenRows };
    return thenRows ? { at: 'rows', binary } : { at: 'nothing' };
  }

  #columnsOfPrepared(columns: number): Expect {
    return columns > 0 ? { at: 'columns', left: columns, binary: false, thenRows: false } : { at: 'nothing' };
  }

  #end(p: ServerPacket): ServerPacket {
    this.#expect = { at: 'nothing' };
    return p;
  }
}
