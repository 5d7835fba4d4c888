/**
 * Statement enforcement in the PostgreSQL relay: the gateway reads every frontend message the
 * client sends, judges the SQL it carries, and refuses what the policy does not allow, inside
 * the protocol and exactly as PostgreSQL itself reports an error, so every client library stays
 * in step with the server.
 *
 * What is judged:
 * - Query ('Q'): the whole message (the judge sees every statement of a multi-statement string;
 *   one refused statement refuses the message, none of it runs);
 * - Parse ('P'): its SQL; a named statement that was allowed is remembered (name -> SQL), and
 *   judged again on every Bind of that name and every Execute of a portal bound to it, so a
 *   policy that changed in the meantime applies; the unnamed statement likewise;
 * - Bind ('B') of a statement hoop never saw prepared (or whose Parse was refused) is refused
 *   with 26000, as PostgreSQL would answer a statement that does not exist;
 * - SQL-level `PREPARE name AS ...` (judged with its body) is remembered under the same names as
 *   protocol-level statements (PostgreSQL keeps one namespace), `EXECUTE name` (also inside
 *   `EXPLAIN ANALYZE` or `CREATE TABLE ... AS`) is judged again with the prepared body, and
 *   `DEALLOCATE` / `DISCARD ALL` forget;
 * - FunctionCall ('F') is refused (0A000); everything else passes.
 *
 * How a refusal is said. The gateway never answers on the server's behalf: in place of the
 * refused message it sends the server a Describe of a statement that cannot exist (a
 * per-session random name), which fails with 26000 and no side effect, and replaces that
 * ErrorResponse, when it comes back, with its own 42501. Then:
 * - in the extended protocol every later message up to Sync is dropped and the client's Sync is
 *   forwarded, as PostgreSQL skips to Sync after an error;
 * - a refused Query or FunctionCall is followed by a Sync of the gateway's.
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
 * SQL is judged as UTF-8 (the parser's encoding); a message that is not valid UTF-8 is refused,
 * which also closes the multi-byte client encodings (SJIS, GBK, BIG5) whose second bytes can
 * look like ASCII quotes or backslashes to a UTF-8 reader.
 *
 * @see https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-EXT-QUERY
 * @see https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-PIPELINING
 * @see https://www.postgresql.org/docs/current/protocol-message-formats.html
 * @see https://www.postgresql.org/docs/current/sql-prepare.html
 */
import { isUtf8 } from 'node:buffer';
import { randomBytes } from 'node:crypto';
import { loadModule, parseSync } from 'libpg-query';
import type { ChunkHandler } from '../tunnel/pump.js';
import { errorResponse, SqlState } from '../tunnel/postgres/messages.js';
import { PgProtocolError } from '../tunnel/postgres/protocol-error.js';
import { parseErrorFields, type MessageReader, type PgMessage } from '../tunnel/postgres/reader.js';
import { BACKSLASH_UNSAFE_ENCODINGS } from '../tunnel/postgres/startup.js';
import type { SessionJudge, StatementVerdict } from './engine.js';

const QUERY = 0x51; // 'Q'
const PARSE = 0x50; // 'P'
const BIND = 0x42; // 'B'
const EXECUTE = 0x45; // 'E'
const CLOSE = 0x43; // 'C'
const FUNCTION_CALL = 0x46; // 'F'
const SYNC = 0x53; // 'S'
const TERMINATE = 0x58; // 'X'
const ERROR_RESPONSE = 0x45; // 'E' (backend)
const PARAMETER_STATUS = 0x53; // 'S' (backend)
/** Longest ParameterStatus body the gate reads; the settings it watches report short values. */
const MAX_PARAMETER_STATUS = 1024;

/** The names of the gateway's own never-existing statements start with this; clients may not use it. */
export const RESERVED_STATEMENT_PREFIX = 'hoop_denied_';
/** Named statements and portals remembered per session; beyond this a new name is refused. */
const MAX_NAMES = 10_000;
/** Refusals whose ErrorResponse may still come back; older ones are forgotten (their batch failed earlier). */
const MAX_PENDING = 256;
/** The largest server ErrorResponse held back to see whether it answers one of the gateway's Describes. */
const MAX_HELD_ERROR = 64 * 1024;
/** How deep `EXECUTE a` whose body is again an EXECUTE is followed. */
const MAX_DEPTH = 4;
const NOTHING: readonly Buffer[] = [];
const SYNC_MESSAGE = Buffer.from([SYNC, 0, 0, 0, 4]);
const PREPARED_WORDS = /prepare|execute|deallocate|discard/i;

/** The built-in rule names of refusals that do not come from the policy. */
export const BuiltinRule = {
  FUNCTION_CALL: 'function-call',
  NOT_UTF8: 'not-utf8',
  RESERVED_NAME: 'reserved-name',
  TOO_MANY_NAMES: 'too-many-names',
  JUDGE_FAILED: 'judge-failed',
} as const;

/**
 * Loads the SQL parser the gate uses to find SQL-level PREPARE / EXECUTE / DEALLOCATE names
 * (once per process; later calls return at once).
 *
 * @see https://github.com/constructive-io/libpg-query-node
 */
export async function loadStatementGate(): Promise<void> {
  await loadModule();
}

/**
 * A prepared-statement operation found in SQL text, in statement order: `prepare` (its name and
 * the whole PREPARE statement's text, which the judge sees with the body), `execute` (anywhere
 * in a statement: EXPLAIN ANALYZE EXECUTE, CREATE TABLE AS EXECUTE) or `deallocate` (a name, or
 * all named statements for DEALLOCATE ALL and DISCARD ALL).
 *
 * @see https://www.postgresql.org/docs/current/sql-prepare.html
 * @see https://www.postgresql.org/docs/current/sql-execute.html
 * @see https://www.postgresql.org/docs/current/sql-deallocate.html
 */
export type PreparedOp = { op: 'prepare'; name: string; text: string } | { op: 'execute'; name: string } | { op: 'deallocate'; name?: string };

function collectExecutes(node: unknown, into: PreparedOp[]): void {
  if (Array.isArray(node)) {
    for (const n of node) collectExecutes(n, into);
    return;
  }
  if (node === null || typeof node !== 'object') return;
  for (const [key, value] of Object.entries(node)) {
    if (key === 'ExecuteStmt' && value && typeof value === 'object' && typeof (value as { name?: unknown }).name === 'string') {
      into.push({ op: 'execute', name: (value as { name: string }).name });
    }
    collectExecutes(value, into);
  }
}

/**
 * The prepared-statement operations in `sql` (parsed with libpg-query, so names are folded as
 * PostgreSQL folds them), or undefined when `sql` does not parse. Cheap for SQL without the
 * words PREPARE, EXECUTE, DEALLOCATE or DISCARD: it is not parsed at all. Needs
 * {@link loadStatementGate} first.
 *
 * @see https://www.postgresql.org/docs/current/sql-prepare.html
 */
export function preparedOps(sql: string): PreparedOp[] | undefined {
  if (!PREPARED_WORDS.test(sql)) return [];
  let tree: { stmts?: Array<{ stmt?: Record<string, unknown>; stmt_location?: number; stmt_len?: number }> };
  try {
    tree = parseSync(sql) as typeof tree;
  } catch {
    return undefined;
  }
  const ops: PreparedOp[] = [];
  let bytes: Buffer | undefined;
  for (const raw of tree.stmts ?? []) {
    const stmt = raw.stmt ?? {};
    const prepare = stmt.PrepareStmt as { name?: string } | undefined;
    const deallocate = stmt.DeallocateStmt as { name?: string; isall?: boolean } | undefined;
    const discard = stmt.DiscardStmt as { target?: string } | undefined;
    if (prepare?.name !== undefined) {
      bytes ??= Buffer.from(sql, 'utf8');
      const start = raw.stmt_location ?? 0;
      const end = raw.stmt_len ? start + raw.stmt_len : bytes.length;
      ops.push({ op: 'prepare', name: prepare.name, text: bytes.toString('utf8', start, end).trimStart() });
    } else if (deallocate) {
      ops.push(deallocate.isall || deallocate.name === undefined ? { op: 'deallocate' } : { op: 'deallocate', name: deallocate.name });
    } else if (discard?.target === 'DISCARD_ALL') {
      ops.push({ op: 'deallocate' });
    } else {
      collectExecutes(stmt, ops);
    }
  }
  return ops;
}

const rank = { allow: 0, review: 1, deny: 2 } as const;

/** The more restrictive of two verdicts (deny > review > allow); the first on a tie. */
export function stricter(a: StatementVerdict, b: StatementVerdict): StatementVerdict {
  return rank[b.action] > rank[a.action] ? b : a;
}

/**
 * The ErrorResponse that tells the client a statement was refused: SQLSTATE 42501 with
 * `hoop: denied by rule "<rule>": <message>` or `hoop: approval required (rule "<rule>"):
 * <message>`, the judge's reason as the detail, and a hint.
 *
 * @see https://www.postgresql.org/docs/current/protocol-error-fields.html
 * @see https://www.postgresql.org/docs/current/errcodes-appendix.html
 */
export function refusalError(v: StatementVerdict): Buffer {
  const said = v.message ?? v.reason;
  const detail = v.message !== undefined && v.reason && v.reason !== v.message ? v.reason : undefined;
  if (v.action === 'review') {
    return errorResponse({
      severity: 'ERROR',
      code: SqlState.INSUFFICIENT_PRIVILEGE,
      message: v.rule !== undefined ? `hoop: approval required (rule "${v.rule}"): ${said}` : `hoop: approval required: ${said}`,
      ...(detail ? { detail } : {}),
      hint: 'just-in-time approval is not available yet: ask the owners of the policy, or someone whose access allows this statement',
    });
  }
  return errorResponse({
    severity: 'ERROR',
    code: SqlState.INSUFFICIENT_PRIVILEGE,
    message: v.rule !== undefined ? `hoop: denied by rule "${v.rule}": ${said}` : `hoop: denied: ${said}`,
    ...(detail ? { detail } : {}),
    hint: 'the gateway policy refuses this statement; `hoop policy check "SQL"` explains why; the session is still usable',
  });
}

const functionCallError = errorResponse({
  severity: 'ERROR',
  code: SqlState.FEATURE_NOT_SUPPORTED,
  message: 'hoop: the fast-path function call interface is not supported through hoop',
  hint: 'call the function with SELECT instead, so the policy can judge it',
});

function unknownStatementError(name: string): Buffer {
  return errorResponse({
    severity: 'ERROR',
    code: '26000',
    message: name === '' ? 'unnamed prepared statement does not exist' : `prepared statement "${name}" does not exist`,
    detail: 'hoop did not see this statement prepared (or refused it) in this session, so it does not let it run',
  });
}

/** A C string of a message body at `at`: its bytes and the offset after its NUL. */
function cstr(body: Buffer, at: number, what: string): [Buffer, number] {
  const end = body.indexOf(0, at);
  if (end < 0) throw new PgProtocolError(`${what} message has an unterminated string`);
  return [body.subarray(at, end), end + 1];
}

/** The backend's Describe ('D') of the prepared statement `name`. */
function describeStatement(name: string): Buffer {
  const n = Buffer.from(name, 'utf8');
  const out = Buffer.allocUnsafe(1 + 4 + 1 + n.length + 1);
  out[0] = 0x44;
  out.writeUInt32BE(out.length - 1, 1);
  out[5] = 0x53;
  n.copy(out, 6);
  out[out.length - 1] = 0;
  return out;
}

/** One refusal, for the gateway's log: never the SQL text. */
export interface Refusal {
  action: 'deny' | 'review';
  /** The policy's rule, or `hoop:<builtin>` for the gate's own refusals. */
  rule: string;
  reason: string;
  /** The frontend message that was refused: 'Q', 'P', 'B', 'E' or 'F'. */
  message: string;
}

/**
 * The setting named by a ParameterStatus body (`name\0value\0`) when its value would let the
 * server's lexer read SQL differently from the gateway's parser: `standard_conforming_strings`
 * other than `on` (backslashes in '...' become escapes), or a `client_encoding` whose multibyte
 * characters may contain a backslash byte. Undefined for anything else.
 *
 * @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-PARAMETERSTATUS
 * @see https://www.postgresql.org/docs/current/runtime-config-compatible.html#GUC-STANDARD-CONFORMING-STRINGS
 */
export function unsafeParameter(body: Buffer): string | undefined {
  const end = body.indexOf(0);
  if (end < 0) return undefined;
  const name = body.toString('latin1', 0, end).toLowerCase();
  const valueEnd = body.indexOf(0, end + 1);
  const value = body.toString('latin1', end + 1, valueEnd < 0 ? body.length : valueEnd);
  return unsafeSettingValue(name, value) ? name : undefined;
}

/**
 * True when `name = value` is a server setting under which SQL would read differently at the
 * gateway and at the server (see {@link unsafeParameter}).
 */
export function unsafeSettingValue(name: string, value: string): boolean {
  const lower = name.toLowerCase();
  if (lower === 'standard_conforming_strings') return value.trim().toLowerCase() !== 'on';
  if (lower === 'client_encoding') return BACKSLASH_UNSAFE_ENCODINGS.has(value.toUpperCase().replace(/[^A-Z0-9]/g, ''));
  return false;
}

/**
 * Told what goes upstream for one client message: the message itself, or whole messages
 * replacing it.
 * @see https://www.postgresql.org/docs/current/protocol-message-formats.html
 */
export type Forwarded = (sent: PgMessage | readonly Buffer[]) => void;

/**
 * The per-session enforcement state machine: judges the client's messages
 * ({@link StatementGate.frontend}) and turns the server's answer to a refused message into the
 * gateway's error ({@link StatementGate.backend}). See the module documentation for the design.
 *
 * @see https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-EXT-QUERY
 */
export class StatementGate {
  readonly #judge: SessionJudge;
  /** Prepared statements (protocol and SQL level, '' for the unnamed one) -> the SQL to judge again. */
  readonly #statements = new Map<string, string>();
  /** Portals -> the SQL of their statement. */
  readonly #portals = new Map<string, string>();
  /** Names of the gateway's pending Describes -> the ErrorResponse that replaces the server's. */
  readonly #pending = new Map<string, Buffer>();
  readonly #prefix = `${RESERVED_STATEMENT_PREFIX}${randomBytes(6).toString('hex')}_`;
  #seq = 0;
  #discarding = false;
  /** The type of the frontend message being judged. */
  #current = 0;
  // Backend scanner: header bytes of the current message seen (0..5), body bytes still to come.
  readonly #header = Buffer.alloc(5);
  #headerSeen = 0;
  #remaining = 0;
  #broken = false;
  /** Parts of a server ErrorResponse held back, while one of the gateway's Describes is pending. */
  #held: Buffer[] | undefined;
  /** Body of the server's ParameterStatus being read, when it is short enough to check. */
  #param: Buffer[] | undefined;
  #unsafeSetting: string | undefined;
  /** Refusals so far, by action, for the session log. */
  readonly refusals = { deny: 0, review: 0, builtin: 0 };
  readonly #onRefusal: ((refusal: Refusal) => void) | undefined;
  readonly #onUnsafeSetting: ((setting: string) => void) | undefined;

  constructor(judge: SessionJudge, options: { onRefusal?: (refusal: Refusal) => void; onUnsafeSetting?: (setting: string) => void } = {}) {
    this.#judge = judge;
    this.#onRefusal = options.onRefusal;
    this.#onUnsafeSetting = options.onUnsafeSetting;
  }

  /**
   * The first setting the server reported (ParameterStatus) with a value under which its lexer
   * and the gateway's parser could read SQL differently (see {@link unsafeParameter}); the session
   * must end.
   */
  get unsafeSetting(): string | undefined {
    return this.#unsafeSetting;
  }

  /** True while messages are dropped until the client's Sync, after a refusal in the extended protocol. */
  get discarding(): boolean {
    return this.#discarding;
  }

  /** Refusals whose ErrorResponse has not come back from the server yet. */
  get pendingRefusals(): number {
    return this.#pending.size;
  }

  /**
   * What to send upstream for one complete frontend message: `msg.raw` itself when it passes
   * (callers may compare by identity), else the replacement (possibly nothing).
   *
   * @throws PgProtocolError for a malformed Query, Parse, Bind, Execute or Close body.
   */
  frontend(msg: PgMessage): Buffer | readonly Buffer[] {
    if (this.#discarding) {
      if (msg.type === SYNC) {
        this.#discarding = false;
        return msg.raw;
      }
      return msg.type === TERMINATE ? msg.raw : NOTHING;
    }
    const body = msg.body;
    this.#current = msg.type;
    switch (msg.type) {
      case QUERY: {
        const [sql] = cstr(body, 0, 'Query');
        const refusal = this.#judgeText(sql, true);
        return refusal ? [this.#refuse(refusal), SYNC_MESSAGE] : msg.raw;
      }
      case PARSE: {
        const [nameBytes, at] = cstr(body, 0, 'Parse');
        const [sql] = cstr(body, at, 'Parse');
        const name = this.#name(nameBytes);
        const refusal = name === undefined ? this.#builtin(BuiltinRule.NOT_UTF8) : (this.#checkNewName(name, this.#statements) ?? this.#judgeText(sql, true));
        if (refusal) {
          // PostgreSQL drops the unnamed statement before it parses a new one, even one that fails.
          if (nameBytes.length === 0) this.#statements.delete('');
          this.#discarding = true;
          return [this.#refuse(refusal)];
        }
        this.#statements.set(name!, sql.toString('utf8'));
        return msg.raw;
      }
      case BIND: {
        const [portalBytes, at] = cstr(body, 0, 'Bind');
        const [stmtBytes] = cstr(body, at, 'Bind');
        const portal = this.#name(portalBytes);
        const stmt = this.#name(stmtBytes);
        const sql = stmt === undefined ? undefined : this.#statements.get(stmt);
        let refusal: Buffer | undefined;
        if (portal === undefined) refusal = this.#builtin(BuiltinRule.NOT_UTF8);
        else if (sql === undefined) refusal = this.#count('builtin', unknownStatementError(stmt ?? stmtBytes.toString('latin1')), 'hoop:unknown-statement', 'Bind of a statement hoop did not see prepared');
        else refusal = this.#judgeString(sql, false, 0);
        if (refusal) {
          this.#discarding = true;
          return [this.#refuse(refusal)];
        }
        // Portals end with their transaction, unseen here: past the cap the oldest is forgotten (an
        // Execute of a forgotten portal is left to the server; its Bind was judged).
        this.#portals.delete(portal!);
        this.#portals.set(portal!, sql!);
        if (this.#portals.size > MAX_NAMES) this.#portals.delete(this.#portals.keys().next().value!);
        return msg.raw;
      }
      case EXECUTE: {
        const [portalBytes] = cstr(body, 0, 'Execute');
        const portal = this.#name(portalBytes);
        const sql = portal === undefined ? undefined : this.#portals.get(portal);
        // A portal hoop did not bind is a SQL cursor (its query was judged at DECLARE) or does not exist.
        const refusal = sql === undefined ? undefined : this.#judgeString(sql, false, 0);
        if (refusal) {
          this.#discarding = true;
          return [this.#refuse(refusal)];
        }
        return msg.raw;
      }
      case CLOSE: {
        if (body.length < 2) throw new PgProtocolError('Close message is truncated');
        const [nameBytes] = cstr(body, 1, 'Close');
        const name = nameBytes.toString('utf8');
        if (body[0] === 0x53) this.#statements.delete(name);
        else this.#portals.delete(name);
        return msg.raw;
      }
      case FUNCTION_CALL:
        return [this.#refuse(this.#count('builtin', functionCallError, `hoop:${BuiltinRule.FUNCTION_CALL}`, 'FunctionCall is not supported')), SYNC_MESSAGE];
      default:
        return msg.raw;
    }
  }

  /**
   * A chunk handler for the client -> server direction: validates framing with `reader` (as
   * `validateFrontend` does) and passes each message through {@link frontend}; a chunk whose
   * messages all pass is forwarded as it came. `onMessage` sees each message as the client sent
   * it, `onForward` what goes upstream for it (the message itself, or the gate's replacement).
   *
   * @see https://www.postgresql.org/docs/current/protocol-message-formats.html
   */
  frontendHandler(reader: MessageReader, onMessage?: (msg: PgMessage) => void, onForward?: Forwarded): ChunkHandler {
    return (chunk) => {
      const wasEmpty = reader.bufferedBytes === 0;
      reader.push(chunk);
      const out: Buffer[] = [];
      const untouched = this.#pass(reader, out, onMessage, onForward);
      return untouched && wasEmpty && reader.bufferedBytes === 0 ? chunk : out;
    };
  }

  /** What to send upstream for the whole messages `reader` already holds (bytes that came with the handshake). */
  drain(reader: MessageReader, onMessage?: (msg: PgMessage) => void, onForward?: Forwarded): Buffer[] {
    const out: Buffer[] = [];
    this.#pass(reader, out, onMessage, onForward);
    return out;
  }

  /** Passes every whole message of `reader` into `out`; whether all went as they came. */
  #pass(reader: MessageReader, out: Buffer[], onMessage?: (msg: PgMessage) => void, onForward?: Forwarded): boolean {
    let untouched = true;
    for (let msg = reader.next(); msg; msg = reader.next()) {
      onMessage?.(msg);
      const sent = this.frontend(msg);
      if (sent === msg.raw) {
        onForward?.(msg);
        out.push(msg.raw);
      } else {
        untouched = false;
        onForward?.(sent as readonly Buffer[]);
        for (const b of sent as readonly Buffer[]) out.push(b);
      }
    }
    return untouched;
  }

  /**
   * Passes one chunk of the server -> client stream: forwarded as it came, except that while a
   * refusal is pending each ErrorResponse is held until complete and, when it is the server's
   * answer to one of the gateway's Describes (26000, naming it), replaced with the refusal.
   * Reads only message headers otherwise.
   *
   * @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-ERRORRESPONSE
   */
  backend(chunk: Buffer): Buffer | readonly Buffer[] {
    if (this.#broken) return chunk;
    const length = chunk.length;
    let out: Buffer[] | undefined;
    /** Start of the bytes not yet given to `out` or `#held`. */
    let from = 0;
    let i = 0;
    while (i < length) {
      if (this.#remaining > 0) {
        const n = Math.min(this.#remaining, length - i);
        if (this.#param) this.#param.push(chunk.subarray(i, i + n));
        this.#remaining -= n;
        i += n;
        if (this.#remaining === 0 && this.#param) this.#checkParameter();
        if (this.#remaining === 0 && this.#held) {
          this.#held.push(chunk.subarray(from, i));
          (out ??= []).push(this.#release());
          from = i;
        }
        continue;
      }
      const byte = chunk[i]!;
      if (this.#headerSeen === 0 && byte === ERROR_RESPONSE && this.#pending.size > 0) {
        if (i > from) (out ??= []).push(chunk.subarray(from, i));
        from = i;
        this.#held = [];
      }
      this.#header[this.#headerSeen++] = byte;
      i++;
      if (this.#headerSeen < 5) continue;
      this.#headerSeen = 0;
      const declared = this.#header.readInt32BE(1);
      if (declared < 4) {
        this.#broken = true;
        break;
      }
      this.#remaining = declared - 4;
      if (this.#header[0] === PARAMETER_STATUS && this.#remaining > 0 && this.#remaining <= MAX_PARAMETER_STATUS) this.#param = [];
      if (this.#held && (declared > MAX_HELD_ERROR || this.#remaining === 0)) {
        this.#held.push(chunk.subarray(from, i));
        (out ??= []).push(...this.#held);
        this.#held = undefined;
        from = i;
      }
    }
    if (this.#held) {
      if (i > from) this.#held.push(chunk.subarray(from, i));
      if (this.#broken) {
        (out ??= []).push(...this.#held, chunk.subarray(i));
        this.#held = undefined;
      }
      return out ?? NOTHING;
    }
    if (!out) return chunk;
    if (from < length) out.push(chunk.subarray(from));
    return out;
  }

  /** Checks the ParameterStatus just read; reports the first unsafe setting once. */
  #checkParameter(): void {
    const body = Buffer.concat(this.#param!);
    this.#param = undefined;
    const setting = unsafeParameter(body);
    if (setting === undefined || this.#unsafeSetting !== undefined) return;
    this.#unsafeSetting = setting;
    this.#onUnsafeSetting?.(setting);
  }

  /** The held ErrorResponse, or the refusal it answers. */
  #release(): Buffer {
    const message = this.#held!.length === 1 ? this.#held![0]! : Buffer.concat(this.#held!);
    this.#held = undefined;
    let fields;
    try {
      fields = parseErrorFields(message.subarray(5));
    } catch {
      return message;
    }
    if (fields.code !== '26000') return message;
    for (const [name, refusal] of this.#pending) {
      if (fields.message.includes(name)) {
        this.#pending.delete(name);
        return refusal;
      }
    }
    return message;
  }

  /** Registers `error` as the answer to a new Describe and returns that Describe. */
  #refuse(error: Buffer): Buffer {
    const name = `${this.#prefix}${this.#seq++}`;
    this.#pending.set(name, error);
    if (this.#pending.size > MAX_PENDING) this.#pending.delete(this.#pending.keys().next().value!);
    return describeStatement(name);
  }

  #count(kind: 'deny' | 'review' | 'builtin', error: Buffer, rule: string, reason: string): Buffer {
    this.refusals[kind]++;
    this.#onRefusal?.({ action: kind === 'review' ? 'review' : 'deny', rule, reason, message: String.fromCharCode(this.#current) });
    return error;
  }

  #builtin(rule: (typeof BuiltinRule)[keyof typeof BuiltinRule], message?: string): Buffer {
    const said = {
      [BuiltinRule.FUNCTION_CALL]: 'the fast-path function call interface is not supported',
      [BuiltinRule.NOT_UTF8]: 'the statement is not valid UTF-8; hoop judges SQL as UTF-8 (set client_encoding to UTF8)',
      [BuiltinRule.RESERVED_NAME]: `statement names starting with "${RESERVED_STATEMENT_PREFIX}" are reserved by hoop`,
      [BuiltinRule.TOO_MANY_NAMES]: `a session may hold at most ${MAX_NAMES} named statements and portals through hoop`,
      [BuiltinRule.JUDGE_FAILED]: 'the gateway could not judge the statement',
    }[rule];
    return this.#count('builtin', refusalError({ action: 'deny', rule: `hoop:${rule}`, message: message ?? said, reason: message ?? said }), `hoop:${rule}`, message ?? said);
  }

  /** A name as UTF-8, or undefined when its bytes are not UTF-8. */
  #name(bytes: Buffer): string | undefined {
    return bytes.length === 0 ? '' : isUtf8(bytes) ? bytes.toString('utf8') : undefined;
  }

  #checkNewName(name: string, map: Map<string, string>): Buffer | undefined {
    if (name.startsWith(RESERVED_STATEMENT_PREFIX)) return this.#builtin(BuiltinRule.RESERVED_NAME);
    if (name !== '' && map.size >= MAX_NAMES && !map.has(name)) return this.#builtin(BuiltinRule.TOO_MANY_NAMES);
    return undefined;
  }

  #judgeText(sql: Buffer, record: boolean): Buffer | undefined {
    if (!isUtf8(sql)) return this.#builtin(BuiltinRule.NOT_UTF8);
    return this.#judgeString(sql.toString('utf8'), record, 0);
  }

  /** The refusal for `sql`, or undefined when it may run; with `record`, remembers what an allowed PREPARE / DEALLOCATE does. */
  #judgeString(sql: string, record: boolean, depth: number): Buffer | undefined {
    let verdict: StatementVerdict;
    try {
      verdict = this.#judge.judge(sql);
    } catch {
      return this.#builtin(BuiltinRule.JUDGE_FAILED);
    }
    const ops = preparedOps(sql);
    if (ops && ops.length > 0) {
      const local = new Map<string, string | null>();
      for (const op of ops) {
        if (op.op === 'prepare') {
          const bad = this.#checkNewName(op.name, this.#statements);
          if (bad) return bad;
          local.set(op.name, op.text);
        } else if (op.op === 'deallocate') {
          if (op.name !== undefined) local.set(op.name, null);
          else {
            for (const name of [...this.#statements.keys(), ...local.keys()]) if (name !== '') local.set(name, null);
          }
        } else {
          const body = local.has(op.name) ? local.get(op.name) : this.#statements.get(op.name);
          if (body === undefined || body === null) return this.#count('builtin', unknownStatementError(op.name), 'hoop:unknown-statement', 'EXECUTE of a statement hoop did not see prepared');
          if (depth < MAX_DEPTH) {
            const inner = this.#judgeString(body, false, depth + 1);
            if (inner) return inner;
          } else return this.#builtin(BuiltinRule.JUDGE_FAILED, 'prepared statements nest too deep to judge');
        }
      }
      if (record && verdict.action === 'allow') {
        for (const [name, body] of local) {
          if (body === null) this.#statements.delete(name);
          else this.#statements.set(name, body);
        }
      }
    }
    if (verdict.action === 'allow') return undefined;
    return this.#count(verdict.action, refusalError(verdict), verdict.rule ?? '(none)', verdict.reason);
  }
}
