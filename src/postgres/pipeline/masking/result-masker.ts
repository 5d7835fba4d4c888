/**
 * Masking the server→client direction of a PostgreSQL session, one message at a time.
 *
 * A {@link ResultMasker} watches the client's messages ({@link ResultMasker.frontend}) to know
 * which statement, portal and result formats each backend response belongs to, and rewrites the
 * backend messages that carry data ({@link ResultMasker.backend}):
 *
 * - RowDescription ('T'): decides per column: a column rule by origin (table OID + attribute
 *   number, resolved through a {@link CatalogResolver}), else a name rule (over the result column
 *   name and the origin column name); a column without an origin (table OID 0: an expression,
 *   cast, aggregate, whole-row value), or whose origin the catalog does not know, is decided by the
 *   {@link ColumnJudge} over what its statement computes it from (./judging.ts), which refuses
 *   (the session ends) when it cannot tell.
 * - DataRow ('D'): masks those columns (text and binary format; see values.ts for what a binary
 *   value becomes) and runs the content detectors over every other value.
 * - CopyOutResponse / CopyData / CopyDone ('H', 'd', 'c'): a COPY has no RowDescription: its
 *   columns, by position, are decided by the judge, and its rows masked as they pass.
 * - FunctionCallResponse ('V'): a function of the database's users' masked whole (NULL) under column or name rules; detectors over the value.
 * - NoticeResponse, ErrorResponse ('N', 'E'): detectors over message, detail, hint, context and
 *   internal query; key values and failing rows of a table with column rules are redacted.
 * - NotificationResponse ('A'): under column or name rules the payload withheld unless a client wrote it (see {@link noteWrittenPayloads}); detectors over it.
 * - ParameterStatus ('S'): under column or name rules, an `application_name` no client wrote withheld (code may set it from a masked column).
 *
 * Which statement, portal and result formats each answer belongs to comes from an
 * {@link AnswerQueue} of the client's messages (an answer that fits none ends the session). The
 * row shape of an Execute always comes from a Describe of its portal made after its Bind and
 * after any statement that ran since (the client's, or one the masker adds and consumes), never
 * from an earlier description that SQL could have made stale. The masker never holds more than
 * one message: a RowDescription that needs a catalog lookup is answered with a Promise, and the
 * caller must not feed the next message before it settles (the relay's BackendPath does that,
 * which back-pressures the upstream).
 *
 * @see https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-EXT-QUERY
 * @see https://www.postgresql.org/docs/current/protocol-message-formats.html
 */
import { frameMessage } from '../../wire/messages.js';
import { describeMessage, type FrontendMessage } from '../../wire/frontend-messages.js';
import type { PgMessage } from '../../wire/reader.js';
import { parseErrorFields } from '../../wire/reader.js';
import { PgProtocolError } from '../../wire/protocol-error.js';
import { AnswerQueue } from '../answers.js';
import { cstr, dataRow, functionResultBody, need, parseDataRow, parseFunctionResult, parseRowDescription, type RowDescriptionField } from '../../wire/rows.js';
import { readCount16 } from '../../wire/fields.js';
import type { CatalogResolver, ResolvedColumn } from '../../../policy/masking/catalog.js';
import { CopyOutMasker, type CopyOptions } from './copy-out.js';
import type { ColumnJudge, ResolvedMasking, StatementHints, StatementMasking } from './judging.js';
import { AHEAD_CHARS, MaskingRules, type ColumnOrigin, type MaskingPolicyLike } from '../../../policy/masking/rules.js';
import { REDACTED, type MaskStrategy } from '../../../policy/masking/strategies.js';
import { detectInField, longFieldText, maskField, readableView, type FieldType } from '../../../policy/masking/values.js';
import { maskAhead, withMaskedAhead } from '../../../policy/masking/mask-ahead.js';
import { Backend } from '../../wire/codes.js';
import type { ColumnSource } from '../../../policy/sql/analyze.js';

/** Options of a {@link ResultMasker}. */
export interface ResultMaskerOptions {
  /** The policy's masking section, or rules compiled from it. */
  rules: MaskingRules | MaskingPolicyLike;
  /** The resolved HMAC key for `hash`, when `rules` is a policy section whose key is a secret reference. */
  key?: string;
  /** Resolves column origins; without it, columns with an origin go to the judge when rules name columns. */
  catalog?: CatalogResolver;
  /** Decides the columns origins do not (see {@link ColumnJudge}). */
  judge: ColumnJudge;
  /** Told when a DataRow came with no known row shape (it was handed on as NULLs). */
  onUnknownRow?: () => void;
  /** Told each DataRow's values as the server sent them, before masking (see SessionMasking.serverRows). */
  serverRows?: (values: ReadonlyArray<Buffer | null>) => void;
  /** Told of each column a result's rows will be masked in whole, as it is planned (a Describe the client sent or not): by its origin, else its name. */
  masked?: (column: string, strategy: MaskStrategy) => void;
}

function originName(o: ColumnOrigin): string {
  return `${o.schema}.${o.table}.${o.column}`;
}

/** RowDescription bodies whose plans a session keeps (see ResultMasker.planOf), and the longest body kept: a bound on what a session holds (~16 × 10 KiB). */
const PLANS_KEPT = 16;
const PLAN_KEPT_MAX_BODY = 2048;

/** A plan kept for a RowDescription body: its fields, the origin the catalog gave each column then (null: no table), the plan. */
interface KnownPlan {
  fields: RowDescriptionField[];
  origins: ReadonlyArray<ResolvedColumn | undefined | null>;
  plan: ColumnPlan[];
}

/** One result column as the masker sees it. */
interface ColumnPlan {
  typeOid: number;
  format: number;
  /** The strategy that masks the whole column (an origin or name rule, or the judge), if any. */
  strategy: MaskStrategy | undefined;
  /** `schema.table.column` the values come from, when the catalog says. */
  origin?: string;
}

/** The name of each field of a RowDescription's `body`, by place (`column N` past what it holds). */
function fieldNames(body: Buffer): (i: number) => string {
  let fields: RowDescriptionField[] | undefined;
  return (i) => (fields ??= parseRowDescription(body))[i]?.name ?? `column ${i + 1}`;
}

/** The names of a COPY's `n` columns (`schema.table.column` for a table's, the output name for a query's) when its SQL names each. */
function copyColumnNames(statement: ResolvedMasking, n: number): string[] | undefined {
  if (!('lineage' in statement) || statement.lineage.branches.length !== 1) return undefined;
  const segs = statement.lineage.branches[0]!;
  if (segs.length !== n || !segs.every((seg) => 'lineage' in seg && seg.name !== undefined)) return undefined;
  return segs.map((seg) => {
    const { name, lineage } = seg as { name: string; lineage: { sources: ColumnSource[] } };
    // A plain reference of a column that keeps its name is named by its relation too, as SQL names it.
    const [only] = lineage.sources;
    return 'plain' in seg && lineage.sources.length === 1 && only!.column === name ? `${only!.schema ? `${only!.schema}.` : ''}${only!.relation}.${name}` : name;
  });
}

/** A plan, and whether it holds only for the statement it was made for (the judge decided some column). */
interface Planned {
  plan: ColumnPlan[];
  judged: boolean;
}

interface Portal {
  statement: StatementMasking | undefined;
  formats: number[];
  /** From the Describe of this portal that precedes each Execute. */
  plan?: ColumnPlan[];
  /** A cursor declared WITH HOLD: it outlives its transaction; `unrun` until that ends, when its query runs whole (at the COMMIT). */
  hold?: boolean;
  unrun?: boolean;
}

type Op =
  | { k: 'parse'; name: string; statement: StatementMasking | undefined }
  | { k: 'bind'; portal: string; statement: string; formats: number[] }
  | { k: 'describe'; what: 'S' | 'P'; name: string; injected?: true }
  | { k: 'execute'; portal: string }
  | { k: 'close'; what: 'S' | 'P'; name: string }
  | { k: 'sync' }
  | { k: 'query'; hints: StatementHints; ran: number }
  | { k: 'function'; oid: number }
  | { k: 'copy-end' };

/** The first OID of what a database's users made (PostgreSQL's FirstNormalObjectId): below it, the system's own. */
const FIRST_USER_OID = 16384;

/** What a statement or portal is judged by when nothing this session saw made it (code hoop cannot read did). */
const MADE_UNSEEN: Extract<StatementMasking, { opaque: string }> = { opaque: 'a cursor or prepared statement that SQL hoop did not see made (a function, a DO block)' };
/** A cursor whose relations DDL changed after it was declared: its plan reads them as they were. */
const REDEFINED: Extract<StatementMasking, { opaque: string }> = { opaque: 'a cursor declared before DDL of this session changed the relations it may read' };
/** The strategy of a column masked because it is computed from a masked one. */
const REDACT: MaskStrategy = 'redact';

/** Strategies from what shows most of a value to what shows least. */
const STRICTNESS: readonly MaskStrategy[] = ['last4', 'hash', 'redact', 'null'];

/** Of two strategies (either may be none), the one that shows less. */
function stricter(a: MaskStrategy | undefined, b: MaskStrategy | undefined): MaskStrategy | undefined {
  if (a === undefined || b === undefined) return a ?? b;
  return STRICTNESS.indexOf(a) >= STRICTNESS.indexOf(b) ? a : b;
}
const SYNC_OP: Op = { k: 'sync' };
const COPY_END_OP: Op = { k: 'copy-end' };
const EMPTY = Buffer.alloc(0);

const T = {
  parseComplete: Backend.PARSE_COMPLETE,
  bindComplete: Backend.BIND_COMPLETE,
  closeComplete: Backend.CLOSE_COMPLETE,
  rowDescription: Backend.ROW_DESCRIPTION,
  noData: Backend.NO_DATA,
  dataRow: Backend.DATA_ROW,
  commandComplete: Backend.COMMAND_COMPLETE,
  portalSuspended: Backend.PORTAL_SUSPENDED,
  emptyQuery: Backend.EMPTY_QUERY,
  copyOut: Backend.COPY_OUT,
  copyBoth: Backend.COPY_BOTH,
  copyData: Backend.COPY_DATA,
  copyDone: Backend.COPY_DONE,
  error: Backend.ERROR,
  notice: Backend.NOTICE,
  notification: Backend.NOTIFICATION,
  functionResult: Backend.FUNCTION_CALL_RESPONSE,
  parameterStatus: Backend.PARAMETER_STATUS,
  ready: Backend.READY_FOR_QUERY,
} as const;

/** Error/notice fields that can echo data. @see https://www.postgresql.org/docs/current/protocol-error-fields.html */
const DATA_FIELDS = new Set(['M', 'D', 'H', 'W', 'q']);

/** The plan of a row's column `i`: one the RowDescription did not describe is redacted. */
const columnOf = (plan: readonly ColumnPlan[], i: number): ColumnPlan => plan[i] ?? { typeOid: 0, format: 0, strategy: REDACT };
/** How a column's values are read: one of no known type, in text, as text. */
const fieldTypeOf = (col: ColumnPlan): FieldType => (col.typeOid === 0 && col.format === 0 ? { typeOid: 25, format: 0 } : col);
/** A COPY out's masking: its rows' masker, and the texts of {@link AHEAD_CHARS} or more the detectors will read in the rows a CopyData ends. */
interface CopyMasking {
  masker: CopyOutMasker;
  ahead(data: Buffer): string[];
}

/** A name per masker, for {@link maskAhead} to take each session's long texts in turn with others'. */
let maskers = 0;

/** The format of column `i` given Bind's result-format codes (none: all text; one: all that one). */
function formatAt(formats: number[], i: number): number {
  if (formats.length === 0) return 0;
  if (formats.length === 1) return formats[0]!;
  return formats[i] ?? 0;
}

/**
 * Masks the server→client messages of one PostgreSQL session.
 *
 * @see https://www.postgresql.org/docs/current/protocol-flow.html
 */
export class ResultMasker {
  /** The compiled rules. */
  readonly rules: MaskingRules;
  private readonly catalog: CatalogResolver | undefined;
  private readonly judge: ColumnJudge;
  private readonly onUnknownRow: (() => void) | undefined;
  readonly #serverRows: ResultMaskerOptions['serverRows'];
  readonly #masked: ResultMaskerOptions['masked'];
  private readonly answers = new AnswerQueue<Op>();
  /** Prepared statements (the protocol's and SQL's) -> what they run. */
  private readonly statements = new Map<string, StatementMasking | undefined>();
  /** Portals (the protocol's, and SQL cursors) -> what they run. */
  private readonly portals = new Map<string, Portal>();
  /** The result being returned for a simple Query. */
  private current: { plan: ColumnPlan[] } | undefined;
  /**
   * Portals whose Describe the server will have answered before their next Execute, as the
   * client's messages go: described after their Bind, with no Execute, Query or FunctionCall
   * since (any of which can close and re-open a portal under the same name).
   */
  private readonly described = new Set<string>();
  /**
   * Statement names whose SQL is an EXECUTE, as parsed, and the portals bound to them: what such a
   * portal runs is found at its Execute (the prepared statement may be replaced after the Bind), so
   * it is described again before each Execute and its origins are not trusted.
   */
  readonly #executeStatements = new Set<string>();
  /** Whose long texts these are, for the worker's turns. */
  readonly #owner = `pg-${++maskers}`;
  readonly #lateBound = new Set<string>();
  /** The COPY out in progress: masked by a CopyOutMasker, or passed on as it comes (`pass`). */
  private copy: CopyMasking | 'pass' | undefined;
  /** Plans of RowDescriptions planned without a catalog query or the judge, by their bytes (see {@link planOf}). */
  #plans: Map<string, KnownPlan> | undefined;
  /** Whether a column's plan depends on its origin: some rule names columns (by origin, or by a name an alias may hide). */
  get #byOrigin(): boolean {
    return this.rules.hasColumnRules || this.rules.hasNameRules;
  }

  constructor(options: ResultMaskerOptions) {
    this.rules = options.rules instanceof MaskingRules ? options.rules : MaskingRules.of(options.rules, options.key);
    this.catalog = options.catalog;
    this.judge = options.judge;
    this.onUnknownRow = options.onUnknownRow;
    this.#serverRows = options.serverRows;
    this.#masked = options.masked;
  }

  /** `plan` is the one rows go by now: the session's index hears of each column it masks whole (`names`: by place, where no origin says). */
  #planned(plan: ColumnPlan[], names: (i: number) => string): void {
    this.lastPlan = plan;
    if (this.#masked) for (const [i, c] of plan.entries()) if (c.strategy) this.#masked(c.origin ?? names(i), c.strategy);
  }

  /**
   * Records a client message on its way to the server (call it in order, for every message after
   * the startup phase, exactly as the server receives it). `hints` apply to a Query or Parse.
   * Returns the messages to send to the server before this one, if any: a Describe of the
   * portal before an Execute whose portal was not described since its Bind and since the last
   * statement that ran (a client that describes only the statement, or none, a cursor's portal
   * executed by name, the second Execute of a portal); its answer is consumed here, never handed
   * to the client. libpq-based clients and node-postgres describe the portal before each Execute
   * themselves, so they get none.
   *
   * @throws PgProtocolError when too many messages await an answer
   * @see https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-EXT-QUERY
   */
  frontend(m: FrontendMessage, hints?: StatementHints): readonly FrontendMessage[] | undefined {
    const described = this.described;
    if ((m.kind === 'query' || m.kind === 'parse') && !m.long) noteWrittenPayloads(m.sql);
    switch (m.kind) {
      case 'query':
        described.clear();
        this.answers.push({ k: 'query', hints: hints ?? {}, ran: 0 });
        return undefined;
      case 'function-call': {
        described.clear();
        const body = m.msg?.body;
        this.answers.push({ k: 'function', oid: body && body.length >= 4 ? body.readUInt32BE(0) : 0 });
        return undefined;
      }
      case 'parse': {
        const statement = hints?.statements?.[0];
        if (statement && 'execute' in statement) this.#executeStatements.add(m.name);
        else this.#executeStatements.delete(m.name);
        this.answers.push({ k: 'parse', name: m.name, statement });
        return undefined;
      }
      case 'bind':
        described.delete(m.portal);
        if (this.#executeStatements.has(m.statement)) this.#lateBound.add(m.portal);
        else this.#lateBound.delete(m.portal);
        this.answers.push({ k: 'bind', portal: m.portal, statement: m.statement, formats: m.resultFormats });
        return undefined;
      case 'describe':
        if (m.target === 'P') described.add(m.name);
        this.answers.push({ k: 'describe', what: m.target, name: m.name });
        return undefined;
      case 'close':
        if (m.target === 'P') described.delete(m.name);
        this.answers.push({ k: 'close', what: m.target, name: m.name });
        return undefined;
      case 'execute': {
        let before: FrontendMessage[] | undefined;
        if (!described.has(m.portal) || this.#lateBound.has(m.portal)) {
          before = [describeMessage('P', m.portal)];
          this.answers.push({ k: 'describe', what: 'P', name: m.portal, injected: true });
        }
        described.clear();
        this.answers.push({ k: 'execute', portal: m.portal });
        return before;
      }
      case 'sync':
        this.answers.push(SYNC_OP);
        return undefined;
      case 'copy-done':
      case 'copy-fail':
        this.answers.push(COPY_END_OP);
        return undefined;
      default:
        return undefined;
    }
  }

  /**
   * Whether a DataRow or CopyData message of the current result can go to the client as it is,
   * unread (so that a huge row is never held): nothing in it can be masked.
   */
  passes(type: number): boolean {
    if (type === T.copyData) return this.copy === 'pass';
    if (type !== T.dataRow || this.rules.detectors.length > 0 || this.#serverRows) return false;
    const plan = this.#resultPlan();
    return plan !== undefined && !plan.some((c) => c.strategy);
  }

  /**
   * The bytes to send to the client for one server message: `msg.raw` when nothing changed, a
   * rewritten message, several messages, or nothing. A Promise only for a RowDescription, error or
   * notice that needs a lookup; do not feed the next message before it settles.
   *
   * @throws PgProtocolError on a malformed message, or one that answers nothing the client sent
   * @see https://www.postgresql.org/docs/current/protocol-message-formats.html
   */
  backend(msg: PgMessage): Buffer | Promise<Buffer> {
    // What the message answers (the queue moves past what it ends).
    const op = this.answers.answer(msg.type);
    switch (msg.type) {
      case T.parseComplete:
        if (op?.k === 'parse') this.statements.set(op.name, op.statement);
        return msg.raw;
      case T.bindComplete:
        if (op?.k === 'bind') {
          // A statement the masker did not see parsed (prepared by code hoop cannot read): opaque.
          this.portals.set(op.portal, { statement: this.statements.has(op.statement) ? this.statements.get(op.statement) : MADE_UNSEEN, formats: op.formats });
        }
        return msg.raw;
      case T.rowDescription:
        return op?.k === 'describe' ? this.describedRow(op, msg) : this.queryResult(op, msg);
      case T.noData:
        return op?.k === 'describe' && op.injected ? EMPTY : msg.raw;
      case T.dataRow:
        return this.#readAhead(msg) ?? this.dataRow(msg);
      case T.commandComplete:
      case T.emptyQuery:
      case T.portalSuspended:
        if (op?.k === 'execute') {
          if (msg.type !== T.portalSuspended) this.completed(this.portals.get(op.portal)?.statement);
        } else {
          if (op?.k === 'query') this.completed(op.hints.statements?.[op.ran++]);
          this.current = undefined;
        }
        return msg.raw;
      case T.closeComplete:
        if (op?.k === 'close') {
          if (op.what === 'S') this.statements.delete(op.name);
          else this.portals.delete(op.name);
        }
        return msg.raw;
      case T.copyOut:
        return this.copyOut(msg, op);
      case T.copyData:
        if (this.copy === undefined || this.copy === 'pass') return msg.raw;
        return this.#copyData(this.copy, msg.body);
      case T.copyDone: {
        const copy = this.copy;
        this.copy = undefined;
        if (copy === undefined || copy === 'pass') return msg.raw;
        const done = (): Buffer => {
          const rest = copy.masker.end();
          return rest.length ? Buffer.concat([frameMessage(Backend.COPY_DATA, rest), msg.raw]) : msg.raw;
        };
        // A row left unended (a server that sent no newline) may be long too: read in the worker first.
        const left = this.rules.detectors.length > 0 ? copy.masker.leftover : undefined;
        return withMaskedAhead(left === undefined ? [] : [left], this.rules, this.#owner, done);
      }
      case T.error: {
        const statement = this.statementOf(op);
        this.copy = undefined;
        return this.errorOrNotice(msg, statement);
      }
      case T.notice:
        return this.errorOrNotice(msg, this.statementOf(this.answers.head));
      case T.notification:
        return this.notification(msg);
      case T.functionResult:
        return this.functionResult(msg, op);
      case T.parameterStatus:
        return this.parameterStatus(msg);
      case T.ready: {
        const status = String.fromCharCode(msg.body[0] ?? 0x49);
        // Portals end with their transaction; a cursor WITH HOLD outlives it.
        if (status === 'I')
          for (const [name, p] of this.portals) {
            if (!p.hold) this.portals.delete(name);
            else p.unrun = false;
          }
        this.current = undefined;
        this.copy = undefined;
        this.judge.ready?.(status);
        return msg.raw;
      }
      default:
        return msg.raw;
    }
  }

  /** A statement completed: what it made or dropped takes effect. */
  private completed(done: StatementMasking | undefined): void {
    // EXECUTE does what the prepared statement it runs does (a DEALLOCATE, a PREPARE, a DECLARE, DDL).
    const statement = 'execute' in (done ?? {}) ? this.resolve(done) : done;
    if (!statement || 'cursor' in statement || 'execute' in statement || 'unparsed' in statement) {
      // SQL hoop could not read may have replaced anything.
      if (statement && 'unparsed' in statement) this.forgetAll();
      return;
    }
    const e = statement.effects;
    if (e?.unknown) this.forgetAll();
    if (e?.declare) this.portals.set(e.declare.name, { statement: e.declare.of, formats: [], ...(e.declare.hold ? { hold: true, unrun: true } : {}) });
    // The catalog the masking of a cursor's rows is read from is no longer the one its plan was made with.
    if (e?.ddl) for (const p of this.portals.values()) p.statement = REDEFINED;
    if (e?.prepare) this.statements.set(e.prepare.name, e.prepare.of);
    if (e?.deallocate === '*') this.statements.clear();
    else if (e?.deallocate !== undefined) this.statements.delete(e.deallocate);
    if (e?.close === '*') this.portals.clear();
    else if (e?.close !== undefined) this.portals.delete(e.close);
    this.judge.completed?.(statement);
  }

  /** Code hoop cannot read ran: the statements and portals it may have replaced are judged as made by such code. */
  private forgetAll(): void {
    for (const name of this.statements.keys()) this.statements.set(name, MADE_UNSEEN);
    for (const p of this.portals.values()) p.statement = MADE_UNSEEN;
  }

  /** What the statement an answer belongs to is judged by: a Query's statement now running, an Execute's portal's. */
  private statementOf(op: Op | undefined): ResolvedMasking | undefined {
    if (op?.k === 'query') return this.resolve(op.hints.statements?.[op.ran] ?? (op.hints.statements ? undefined : MADE_UNSEEN));
    if (op?.k === 'execute') return this.resolve(this.portals.get(op.portal)?.statement ?? MADE_UNSEEN);
    return undefined;
  }

  /** FETCH and EXECUTE as what they run (a cursor or prepared statement this session did not see made: opaque). */
  private resolve(s: StatementMasking | undefined, depth = 0): ResolvedMasking | undefined {
    if (!s) return undefined;
    if (depth > 8) return MADE_UNSEEN;
    if ('cursor' in s) return this.resolve(this.portals.get(s.cursor)?.statement ?? MADE_UNSEEN, depth + 1);
    if ('execute' in s) return this.resolve(this.statements.has(s.execute) ? this.statements.get(s.execute) : MADE_UNSEEN, depth + 1);
    return s;
  }

  /**
   * A RowDescription answering a Describe. Of a statement: handed on (an Execute's row shape
   * always comes from a Describe of its portal). Of a portal: planned for its Execute; a portal
   * no Bind or DECLARE of this session made is judged as opaque.
   */
  private describedRow(op: Extract<Op, { k: 'describe' }>, msg: PgMessage): Buffer | Promise<Buffer> {
    if (op.what === 'S') return msg.raw;
    let portal = this.portals.get(op.name);
    if (!portal) this.portals.set(op.name, (portal = { statement: MADE_UNSEEN, formats: [] }));
    const p = portal;
    const done = (plan: ColumnPlan[]): Buffer => {
      const formats = p.formats;
      p.plan = plan.map((c, i) => ({ ...c, format: formats.length ? formatAt(formats, i) : c.format }));
      this.#planned(p.plan, fieldNames(msg.body));
      return op.injected ? EMPTY : msg.raw;
    };
    // A portal running SQL EXECUTE: its rows are the prepared statement's as it is at the Execute, whatever the Bind described.
    const late = p.statement !== undefined && 'execute' in p.statement;
    const plan = this.planOf(msg.body, this.resolve(p.statement), !late);
    return plan instanceof Promise ? plan.then(done) : done(plan);
  }

  /**
   * Per column of the last RowDescription planned: the whole-column strategy masking applies to it
   * and where its values come from, or null when the column is not masked as a whole (content
   * detectors may still mask values in it); undefined when no column is. For recordings and the
   * session index.
   */
  get lastMaskedColumns(): Array<{ strategy: string; origin?: string } | null> | undefined {
    const plan = this.lastPlan;
    if (!plan?.some((c) => c.strategy)) return undefined;
    return plan.map((c) => (c.strategy ? { strategy: c.strategy, ...(c.origin ? { origin: c.origin } : {}) } : null));
  }

  private lastPlan: ColumnPlan[] | undefined;

  /** A RowDescription of one statement of a simple Query. */
  private queryResult(op: Op | undefined, msg: PgMessage): Buffer | Promise<Buffer> {
    const done = (plan: ColumnPlan[]): Buffer => {
      this.#planned(plan, fieldNames(msg.body));
      this.current = { plan };
      return msg.raw;
    };
    const plan = this.planOf(msg.body, this.statementOf(op));
    return plan instanceof Promise ? plan.then(done) : done(plan);
  }

  /**
   * The plan of a RowDescription's body for `statement`. A session sends the same few shapes of
   * result over and over: a plan made without a catalog query or the judge is kept (for
   * {@link PLANS_KEPT} bodies of at most {@link PLAN_KEPT_MAX_BODY} bytes) with the origin the
   * catalog gave each column, and used again while the catalog still gives those very origins (the
   * same objects: a relation reloaded, expired or replaced gives new ones, a view none without a
   * query). The rules never change in a session, so the plan is what {@link plan} would make.
   *
   * @throws Error (the judge's) when it cannot tell what a column carries: the session ends with it
   */
  private planOf(body: Buffer, statement: ResolvedMasking | undefined, trusted = true): ColumnPlan[] | Promise<ColumnPlan[]> {
    // A redefined cursor's view columns are what its plan made them, not what the catalog says now.
    const trustOrigins = trusted && statement !== REDEFINED;
    const key = trustOrigins && body.length <= PLAN_KEPT_MAX_BODY ? body.toString('latin1') : '';
    const kept = key ? this.#plans?.get(key) : undefined;
    if (kept && this.#sameOrigins(kept)) return kept.plan;
    const fields = kept?.fields ?? parseRowDescription(body);
    const origins = trustOrigins ? this.#originsNow(fields) : fields.map(() => null);
    const planned = this.plan(fields, origins, statement);
    const keep = (p: Planned): ColumnPlan[] => {
      if (origins !== undefined && key && !p.judged) {
        const plans = (this.#plans ??= new Map());
        if (plans.size >= PLANS_KEPT && !plans.has(key)) plans.delete(plans.keys().next().value!);
        plans.set(key, { fields, origins, plan: p.plan });
      }
      return p.plan;
    };
    return planned instanceof Promise ? planned.then(keep) : keep(planned);
  }

  /**
   * What the catalog knows now of each column's origin without a query (null: the column has no
   * table); undefined when some column would need a query, or there is no catalog.
   */
  #originsNow(fields: readonly RowDescriptionField[]): Array<ResolvedColumn | undefined | null> | undefined {
    const catalog = this.catalog;
    if (!catalog || !this.#byOrigin) return fields.map(() => null);
    if (!catalog.cached) return undefined;
    const out: Array<ResolvedColumn | undefined | null> = [];
    for (const f of fields) {
      if (f.tableOid === 0) out.push(null);
      else {
        const known = catalog.cached(f.tableOid, f.attnum);
        if (!known) return undefined;
        out.push(known.column);
      }
    }
    return out;
  }

  #sameOrigins(kept: KnownPlan): boolean {
    const now = this.#originsNow(kept.fields);
    return now?.every((o, i) => o === kept.origins[i]) === true;
  }

  /**
   * Decides each column's whole-column strategy: by its origin's rules (through views), by name,
   * and, for a column without an origin (or with one the catalog does not know, or a view the
   * session is replacing), by the judge over the statement's lineage. Async only when origins must
   * be looked up or the judge needs the catalog.
   * `known`: each column's origin as the catalog has it without a query (see #originsNow).
   */
  private plan(fields: RowDescriptionField[], known: ReadonlyArray<ResolvedColumn | undefined | null> | undefined, statement: ResolvedMasking | undefined): Planned | Promise<Planned> {
    const rules = this.rules;
    const byName = (f: RowDescriptionField, origin?: ColumnOrigin): MaskStrategy | undefined => rules.forName(f.name) ?? (origin ? rules.forName(origin.column) : undefined);
    const column = (f: RowDescriptionField, strategy: MaskStrategy | undefined, origin?: ResolvedColumn): ColumnPlan => ({
      typeOid: f.typeOid,
      format: f.format,
      strategy,
      ...(origin ? { origin: originName(origin.base ?? origin) } : {}),
    });
    if (!this.#byOrigin) return { plan: fields.map((f) => column(f, undefined)), judged: false };
    /** A column decided by its origin; undefined when the judge must decide it. */
    const byOrigin = (f: RowDescriptionField, origin: ResolvedColumn | undefined | null): ColumnPlan | undefined => {
      // No origin, a relation column the catalog does not know (made or changed in the session's open transaction), a view the session is replacing.
      if (!origin || origin.unresolved) return undefined;
      const own = rules.forOrigin(origin);
      if (own) return column(f, own, origin);
      // A view column computed where the view calls a function of the database's own: it may carry any value.
      if (origin.userCode !== undefined) return column(f, REDACT, origin);
      // A view column its definition computes: traced by the judge through what it is computed from.
      if (origin.computedFrom && origin.lineage) return undefined;
      if (origin.computedFrom) return column(f, origin.computedFrom.some((c) => rules.readsMasked(c)) ? REDACT : byName(f, origin), origin);
      return column(f, (origin.base && rules.forOrigin(origin.base)) ?? byName(f, origin.base ?? origin), origin);
    };
    // A write that stores values computed from columns may return them under its target's: every column is judged too.
    const stores = statement !== undefined && 'lineage' in statement && statement.lineage.assigned !== undefined;
    const finish = (origins: ReadonlyArray<ResolvedColumn | undefined | null>): Planned | Promise<Planned> => {
      const plan: Array<ColumnPlan | undefined> = fields.map((f, i) => byOrigin(f, origins[i]));
      const open = plan.flatMap((p, i) => (p === undefined || stores ? [i] : []));
      if (open.length === 0) return { plan: plan as ColumnPlan[], judged: false };
      const judged = this.judge.columns(fields, open, statement ?? MADE_UNSEEN);
      // A result column named by a name rule is masked whatever it is computed from, and no less than what it is computed from is.
      const fill = (strategies: Array<MaskStrategy | undefined>): Planned => {
        open.forEach((i, k) => (plan[i] = column(fields[i]!, stricter(strategies[k] ?? plan[i]?.strategy, byName(fields[i]!)), origins[i] ?? undefined)));
        return { plan: plan as ColumnPlan[], judged: true };
      };
      return judged instanceof Promise ? judged.then(fill) : fill(judged);
    };
    const catalog = this.catalog;
    if (known) return finish(known);
    if (!catalog) return finish(fields.map(() => undefined));
    return Promise.all(
      fields.map(async (f): Promise<ResolvedColumn | undefined | null> => {
        if (f.tableOid === 0) return null;
        // A failed lookup leaves the column to the judge, which looks its relation up by name (or refuses).
        return catalog.columnName(f.tableOid, f.attnum).catch(() => undefined);
      }),
    ).then(finish);
  }

  /** The plan of the result the next DataRow belongs to. */
  #resultPlan(): ColumnPlan[] | undefined {
    const head = this.answers.head;
    return head?.k === 'execute' ? this.portals.get(head.portal)?.plan : this.current?.plan;
  }

  /** A DataRow with a text long enough to mask ahead (policy/masking/mask-ahead.ts): a Promise of it masked once the detectors have masked those off the event loop; else undefined. */
  #readAhead(msg: PgMessage): Promise<Buffer> | undefined {
    // Every DataRow of a masked session asks: the row's length answers most of them.
    if (msg.body.length < AHEAD_CHARS || this.rules.detectors.length === 0) return undefined;
    const plan = this.#resultPlan();
    if (!plan) return undefined;
    const texts: string[] = [];
    parseDataRow(msg.body).forEach((value, i) => {
      const col = columnOf(plan, i);
      const text = value === null || col.strategy ? undefined : longFieldText(value, fieldTypeOf(col));
      if (text !== undefined) texts.push(text);
    });
    return texts.length === 0 ? undefined : maskAhead(texts, this.rules, this.#owner).then((masked) => this.rules.withMasked(masked, () => this.dataRow(msg)));
  }

  private dataRow(msg: PgMessage): Buffer {
    const plan = this.#resultPlan();
    const rules = this.rules;
    if (this.#serverRows) this.#serverRows(parseDataRow(msg.body));
    if (plan && rules.detectors.length === 0 && !plan.some((c) => c.strategy)) return msg.raw;
    const fields = parseDataRow(msg.body);
    if (!plan) {
      // No RowDescription told what these values are (the server answered a Describe it was
      // never sent, or a portal's shape was lost): nothing of them is handed on.
      this.onUnknownRow?.();
      return dataRow(fields.map(() => null));
    }
    let changed = false;
    const out = fields.map((value, i) => {
      const col = columnOf(plan, i);
      if (value === null) return null;
      const t = fieldTypeOf(col);
      if (col.strategy) {
        changed = true;
        return maskField(value, t, col.strategy, rules);
      }
      const d = detectInField(value, t, rules);
      if (d === undefined) return value;
      changed = true;
      return d;
    });
    return changed ? dataRow(out) : msg.raw;
  }

  /**
   * A FunctionCallResponse: a function of the database's users' (code hoop cannot read, which may
   * return any value it reads) masked whole, NULL, as SQL's call of it is, when a column or name is
   * masked; else its value through the detectors (the system's functions read no masked column).
   */
  private functionResult(msg: PgMessage, op: Op | undefined): Buffer | Promise<Buffer> {
    const rules = this.rules;
    if ((rules.hasColumnRules || rules.hasNameRules) && !(op?.k === 'function' && op.oid > 0 && op.oid < FIRST_USER_OID)) return frameMessage(msg.type, functionResultBody(null));
    if (rules.detectors.length === 0) return msg.raw;
    const value = parseFunctionResult(msg.body);
    if (!value) return msg.raw;
    const t: FieldType = { typeOid: 0, format: 0 };
    const masked = (): Buffer => {
      const d = detectInField(value, t, rules);
      return d === undefined ? msg.raw : frameMessage(msg.type, functionResultBody(d));
    };
    // A long value is read by the detectors in the worker first.
    const long = longFieldText(value, t);
    return withMaskedAhead(long === undefined ? [] : [long], rules, this.#owner, masked);
  }

  /** A CopyOutResponse: its columns are judged as a result's without origins are (a COPY has no RowDescription). */
  private copyOut(msg: PgMessage, op: Op | undefined): Buffer | Promise<Buffer> {
    const b = msg.body;
    need(b, 0, 3);
    const overall = b[0]!;
    const n = readCount16(b, 1);
    need(b, 3, 2 * n);
    const statement = this.statementOf(op) ?? MADE_UNSEEN;
    const copyHints = 'lineage' in statement ? statement.copy : undefined;
    const options: CopyOptions = overall === 1 ? { ...copyHints, format: 'binary' } : copyHints && copyHints.format !== 'binary' ? copyHints : { format: 'text' };
    const start = (strategies: ReadonlyArray<MaskStrategy | undefined>): Buffer => {
      this.copy = this.copyMasker(options, strategies);
      // What the client gets masked, for the recording and the index: each column by the name its COPY gives it, where it gives one.
      const names = copyColumnNames(statement, n);
      this.#planned(
        Array.from({ length: n }, (_, i) => ({ typeOid: 0, format: overall, strategy: strategies[i], ...(names?.[i] ? { origin: names[i] } : {}) })),
        (i) => `column ${i + 1}`,
      );
      return msg.raw;
    };
    if (copyHints?.maskAll) return start(new Array<MaskStrategy>(n).fill(REDACT));
    if (!this.#byOrigin) return start([]);
    const columns: RowDescriptionField[] = Array.from({ length: n }, () => ({ name: '', tableOid: 0, attnum: 0, typeOid: 0, typlen: -1, typmod: -1, format: overall }));
    const judged = this.judge.columns(
      columns,
      columns.map((_, i) => i),
      statement,
    );
    return judged instanceof Promise ? judged.then(start) : start(judged);
  }

  /** How the rows of a COPY out are masked, given each column's strategy: passed on unparsed when nothing can be. */
  private copyMasker(options: CopyOptions, strategies: ReadonlyArray<MaskStrategy | undefined>): CopyMasking | 'pass' {
    const rules = this.rules;
    if (rules.detectors.length === 0 && strategies.every((st) => st === undefined)) return 'pass';
    const text = (value: string | null, i: number): string | null | undefined => {
      if (value === null) return undefined;
      const s = strategies[i];
      if (s) return rules.apply(value, s, true);
      const r = rules.maskText(value);
      if (r.changed) return r.nullify ? null : r.text;
      // What the client reads in it (a hex bytea, a float's digits) that its text does not show: withheld.
      return rules.maskText(readableView(value)).changed ? null : undefined;
    };
    const binary = (value: Buffer | null, i: number): Buffer | null | undefined => {
      if (value === null) return undefined;
      if (strategies[i]) return null;
      if (detectInField(value, { typeOid: 0, format: 0 }, rules) !== undefined) return null;
      // A COPY's binary field does not say its type: an 8-byte one is read as a float8 and an int8 too.
      return value.length === 8 && [701, 20].some((oid) => detectInField(value, { typeOid: oid, format: 1 }, rules) !== undefined) ? null : undefined;
    };
    const masker = new CopyOutMasker(options, text, binary, (s) => rules.maskText(s).text);
    const ahead = (data: Buffer): string[] => {
      const texts = new Set<string>();
      const long = (s: string | undefined): void => void (s !== undefined && s.length >= AHEAD_CHARS && texts.add(s));
      masker.peek(data, {
        text: (value, i) => void (value !== null && !strategies[i] && value.length >= AHEAD_CHARS && (long(value), long(readableView(value)))),
        binary: (value, i) => void (value !== null && !strategies[i] && long(longFieldText(value, { typeOid: 0, format: 0 }))),
      });
      return [...texts];
    };
    return { masker, ahead };
  }

  /** A CopyData's rows masked; those with a field long enough to mask ahead once the worker has read it (see {@link #readAhead}). */
  #copyData(copy: CopyMasking, data: Buffer): Buffer | Promise<Buffer> {
    const rows = (): Buffer => this.wrapCopy(copy.masker.push(data));
    const texts = data.length + copy.masker.carried >= AHEAD_CHARS && this.rules.detectors.length > 0 ? copy.ahead(data) : [];
    return withMaskedAhead(texts, this.rules, this.#owner, rows);
  }

  private wrapCopy(payload: Buffer): Buffer {
    return payload.length === 0 ? Buffer.alloc(0) : frameMessage(Backend.COPY_DATA, payload);
  }

  /**
   * An error or notice of `statement`: withheld (its SQLSTATE kept) when the judge says it may
   * quote a masked value, else its data fields masked.
   */
  private errorOrNotice(msg: PgMessage, raised: ResolvedMasking | undefined): Buffer | Promise<Buffer> {
    const { fields } = parseErrorFields(msg.body);
    const judged = this.errorsOf(raised).map((s) => this.judge.quotes(s, fields));
    const withhold = judged.includes(true) ? true : judged.every((w) => w === false) ? false : Promise.all(judged).then((ws) => ws.includes(true));
    return withhold instanceof Promise
      ? withhold.then(
          (w) => this.errorOrNoticeAs(msg, fields, w),
          () => this.errorOrNoticeAs(msg, fields, true),
        )
      : this.errorOrNoticeAs(msg, fields, withhold);
  }

  /**
   * What an error raised at `statement` may quote besides: a DECLARE … WITH HOLD's query (it runs
   * when its transaction ends: in autocommit, its own), and at a statement that evaluates nothing
   * itself (a COMMIT, or the implicit one after a Query's last statement) the query of each WITH
   * HOLD cursor its transaction declared.
   */
  private errorsOf(statement: ResolvedMasking | undefined): ResolvedMasking[] {
    if (statement && (!('utility' in statement) || statement.utility.evaluates)) return [statement];
    const declared = statement?.effects?.declare;
    const unrun = [...this.portals.values()].filter((p) => p.unrun).map((p) => p.statement ?? MADE_UNSEEN);
    return [...(statement ? [statement] : []), ...(declared?.hold ? [declared.of] : unrun)].map((s) => this.resolve(s) ?? MADE_UNSEEN);
  }

  private errorOrNoticeAs(msg: PgMessage, fields: Map<string, string>, withhold: boolean): Buffer {
    if (withhold) return withheldMessage(msg.type, fields);
    const table = fields.get('t');
    const keyed = table !== undefined && (this.rules.tableHasRules(fields.get('s') ?? 'public', table) || this.rules.hasNameRules);
    let changed = false;
    const parts: Buffer[] = [];
    for (const [k, v] of fields) {
      let value = v;
      if (DATA_FIELDS.has(k)) {
        if (k === 'D' && keyed) value = redactKeyValues(value);
        const r = this.rules.maskText(value);
        value = r.text;
      }
      if (value !== v) changed = true;
      parts.push(Buffer.from(k, 'latin1'), Buffer.from(value, 'utf8'), Buffer.from([0]));
    }
    if (!changed) return msg.raw;
    parts.push(Buffer.from([0]));
    return frameMessage(msg.type, Buffer.concat(parts));
  }

  /**
   * A ParameterStatus: under column or name rules, `application_name` (the one reported setting
   * that holds any text) withheld unless a client wrote its value as a literal: code hoop cannot
   * read (a function calling set_config) may set it to a masked column's value.
   */
  private parameterStatus(msg: PgMessage): Buffer {
    if (!(this.rules.hasColumnRules || this.rules.hasNameRules)) return msg.raw;
    const [name, at] = cstr(msg.body, 0);
    const [value] = cstr(msg.body, at);
    if (name !== 'application_name' || value === '' || written.has(value)) return msg.raw;
    return frameMessage(msg.type, Buffer.from(`${name}\0${WITHHELD_SETTING}\0`, 'utf8'));
  }

  private notification(msg: PgMessage): Buffer {
    const b = msg.body;
    need(b, 0, 4);
    const [channel, at] = cstr(b, 4);
    const [payload, end] = cstr(b, at);
    if (end !== b.length) throw new PgProtocolError('NotificationResponse has trailing bytes');
    // Text a client wrote passes; what else sent it (a trigger's pg_notify(row_to_json(new)), a program outside) may carry a masked column's value, which no rule can place in a payload.
    if ((this.rules.hasColumnRules || this.rules.hasNameRules) && !written.has(payload))
      return frameMessage(msg.type, Buffer.concat([b.subarray(0, 4), Buffer.from(`${channel}\0${WITHHELD_PAYLOAD}\0`, 'utf8')]));
    const r = this.rules.maskText(payload);
    if (!r.changed) return msg.raw;
    return frameMessage(msg.type, Buffer.concat([b.subarray(0, 4), Buffer.from(`${channel}\0${r.text}\0`, 'utf8')]));
  }
}

/** A notification's payload under column or name rules, when no client of this gateway wrote it. */
const WITHHELD_PAYLOAD = 'hoop: withheld (masking rules are on, and a payload no client wrote may carry a masked value)';

/** A reported `application_name` no client wrote, under column or name rules. */
const WITHHELD_SETTING = 'hoop: withheld';

/** Payloads and `application_name` values clients of this process wrote as literals in NOTIFY, pg_notify or SQL that sets the setting (the latest {@link WRITTEN_KEPT}). */
const written = new Set<string>();
const WRITTEN_KEPT = 1024;
/** `NOTIFY channel, 'payload'` and `pg_notify('channel', 'payload')` with plain string literals. */
const NOTIFIED = /\bnotify\s+(?:"(?:[^"]|"")*"|[^\s,;'"]+)\s*,\s*'((?:[^']|'')*)'|\bpg_notify\s*\(\s*'(?:[^']|'')*'\s*,\s*'((?:[^']|'')*)'\s*\)/gi;

/**
 * Notes the payloads and `application_name` values `sql` (sent to the server) writes as literals:
 * text its client wrote, which its listeners (and the client) may read as written. A literal read otherwise than here (another quoting) is only
 * ever text a client typed, so no payload passes that carries a value the database held.
 */
export function noteWrittenPayloads(sql: string): void {
  const note = (text: string): void => {
    written.delete(text);
    written.add(text);
    if (written.size > WRITTEN_KEPT) written.delete(written.values().next().value!);
  };
  // One scan of most texts: they name neither.
  if (!WRITES_PAYLOAD.test(sql)) return;
  if (/notify/i.test(sql)) for (const m of sql.matchAll(NOTIFIED)) note((m[1] ?? m[2]!).replaceAll("''", "'"));
  // Every literal of SQL that names the setting (`SET application_name = 'x'`, `set_config('application_name', 'x', …)`).
  if (/application_name/i.test(sql)) for (const m of sql.matchAll(LITERAL)) note(m[1]!.replaceAll("''", "'"));
}

/** A plain string literal. */
const LITERAL = /'((?:[^']|'')*)'/g;
/** What a text names that makes a payload or a setting its client wrote. */
const WRITES_PAYLOAD = /notify|application_name/i;

/** Error and notice fields that name where and what (never a value): kept when the text is withheld. @see https://www.postgresql.org/docs/current/protocol-error-fields.html */
const KEPT_WHEN_WITHHELD = new Set(['S', 'V', 'C', 'P', 'F', 'L', 'R', 's', 't', 'c', 'd', 'n']);

/**
 * An ErrorResponse or NoticeResponse with its text withheld: severity, SQLSTATE, position and the
 * names of schema, table, column, type and constraint stay; message, detail, hint, context and
 * internal query (which can quote values) are replaced by hoop's explanation.
 * @see https://www.postgresql.org/docs/current/protocol-error-fields.html
 */
function withheldMessage(type: number, fields: Map<string, string>): Buffer {
  const code = fields.get('C') ?? 'XX000';
  const parts: Buffer[] = [];
  for (const [k, v] of fields) if (KEPT_WHEN_WITHHELD.has(k)) parts.push(Buffer.from(`${k}${v}\0`, 'utf8'));
  parts.push(
    Buffer.from(
      `Mhoop: the server's ${type === T.error ? 'error' : 'notice'} text is withheld (SQLSTATE ${code}): the statement computes over masked values, or runs code hoop cannot read (a DO block, a procedure, a cursor or prepared statement of unknown SQL), and the text could quote them\0`,
      'utf8',
    ),
    Buffer.from("Hrun the statement without the masked columns, or outside a DO block or procedure, to see the server's own text\0\0", 'utf8'),
  );
  return frameMessage(type, Buffer.concat(parts));
}

/**
 * Replaces the values PostgreSQL echoes in an error detail for a table with masked columns:
 * `Key (col)=(value) ...` and `Failing row contains (...)`.
 *
 * @see https://www.postgresql.org/docs/current/protocol-error-fields.html
 */
export function redactKeyValues(detail: string): string {
  // `Key (cols)=(values)` and what PostgreSQL says after: the values run from the first `)=(` to the last `)` at the end, before `.` or ` word` (read without backtracking).
  const open = detail.startsWith('Key (') ? detail.indexOf(')=(', 5) : -1;
  for (let end = open < 0 ? -1 : detail.lastIndexOf(')'); end >= open + 3 && open >= 0; end = detail.lastIndexOf(')', end - 1)) {
    const next = detail[end + 1];
    if (next === undefined || (next === '.' && end + 2 === detail.length) || (next === ' ' && /[a-z]/.test(detail[end + 2] ?? '')))
      return `${detail.slice(0, open + 3)}${REDACTED}${detail.slice(end)}`;
    if (end === 0) break;
  }
  const row = /^(Failing row contains \()(.*)(\)\.?)$/s.exec(detail);
  if (row) return `${row[1]}${REDACTED}${row[3]}`;
  return detail;
}
