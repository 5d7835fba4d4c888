/**
 * Masking the server→client direction of a PostgreSQL session, one message at a time.
 *
 * A {@link ResultMasker} watches the client's messages ({@link ResultMasker.frontend}) to know
 * which statement, portal and result formats each backend response belongs to, and rewrites the
 * backend messages that carry data ({@link ResultMasker.backend}):
 *
 * - RowDescription ('T'): decides per column: a column rule by origin (table OID + attribute
 *   number, resolved through a {@link CatalogResolver}), else a name rule (over the result column
 *   name and the origin column name), else — for a column without an origin (table OID 0: an
 *   expression, cast, aggregate, whole-row value) — the statement's
 *   {@link OriginUnknownPolicy}. A column whose origin lookup fails is masked (fail closed).
 * - DataRow ('D'): masks those columns (text and binary format; see values.ts for what a binary
 *   value becomes) and runs the content detectors over every other value.
 * - CopyOutResponse / CopyData / CopyDone ('H', 'd', 'c'): masks COPY rows by column position
 *   when the engine passes the columns' origins ({@link StatementHints.copy}); otherwise, as
 *   COPY has no RowDescription, only the detectors run (and with `originUnknownPolicy: 'mask'`
 *   every field is masked).
 * - NoticeResponse, ErrorResponse ('N', 'E'): detectors over message, detail, hint, context and
 *   internal query; key values and failing rows of a table with column rules are redacted.
 * - NotificationResponse ('A'): detectors over the payload.
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
import { cstr, dataRow, need, parseDataRow, parseRowDescription, type RowDescriptionField } from '../../wire/rows.js';
import { readCount16 } from '../../wire/fields.js';
import type { CatalogResolver, ResolvedColumn } from '../../../policy/masking/catalog.js';
import { CopyOutMasker, type CopyOptions } from './copy-out.js';
import { MaskingRules, type ColumnOrigin, type MaskingPolicyLike } from '../../../policy/masking/rules.js';
import { REDACTED, type MaskStrategy } from '../../../policy/masking/strategies.js';
import { detectInField, maskField, type FieldType } from '../../../policy/masking/values.js';
import { Backend } from '../../wire/codes.js';

/**
 * What to do with a result column that has no origin (table OID 0 in RowDescription: an
 * expression, cast, aggregate, function result or whole-row value): `mask` masks every such
 * column (fail closed: the engine chooses it when the statement reads a table with masked
 * columns), `detect-only` applies only name rules and content detectors.
 */
export type OriginUnknownPolicy = 'mask' | 'detect-only';

/** What the engine knows about a statement from its parse tree, passed with its Query or Parse message. */
export interface StatementHints {
  originUnknownPolicy?: OriginUnknownPolicy;
  /**
   * With `originUnknownPolicy: 'mask'`, which result columns (by position) the mask applies to
   * when they have no origin: `false` for one computed from no masked value (`count(*)` next to
   * `upper(email)`). Unlisted positions are masked.
   */
  maskedColumns?: readonly boolean[];
  /**
   * The statement evaluates expressions over values that may be masked: the text of its errors
   * and notices (which can quote a value, e.g. `invalid input syntax for type integer: "..."`) is
   * withheld; the SQLSTATE stays.
   */
  withholdMessages?: boolean;
  /**
   * Without `withholdMessages`: whether the statement reads a view over masked columns after all,
   * asked when an error or notice arrives (then withheld too).
   */
  messagesMayQuoteMasked?: (fields: ReadonlyMap<string, string>) => Promise<boolean>;
  /** For COPY ... TO STDOUT: the format options and, when known, the origin of each column by position. */
  copy?: CopyOptions & { columns?: Array<ColumnOrigin | undefined> };
  /**
   * What the statement may create, replace or drop besides its result: prepared statements
   * (PREPARE, DEALLOCATE, DISCARD, code hoop cannot read: DO, CALL, SQL that does not parse) or
   * portals (DECLARE, CLOSE, transaction control, and the same code). Once it has run, what the
   * masker knew of them is dropped: their later results are masked as of unknown statements.
   */
  changes?: { statements?: boolean; portals?: boolean };
}

/** Options of a {@link ResultMasker}. */
export interface ResultMaskerOptions {
  /** The policy's masking section, or rules compiled from it. */
  rules: MaskingRules | MaskingPolicyLike;
  /** The resolved HMAC key for `hash`, when `rules` is a policy section whose key is a secret reference. */
  key?: string;
  /** Resolves column origins; without it, columns with an origin are treated as failed lookups when column rules exist. */
  catalog?: CatalogResolver;
  /** For statements whose hints do not say; default `mask`. */
  originUnknownPolicy?: OriginUnknownPolicy;
  /** The strategy for columns masked because their origin is unknown; default `redact`. */
  originUnknownStrategy?: MaskStrategy;
  /** Told when a DataRow came with no known row shape (it was handed on as NULLs). */
  onUnknownRow?: () => void;
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
  /** From an origin or name rule, or a failed origin lookup. */
  strategy: MaskStrategy | undefined;
  /** No table origin (expression, aggregate, ...). */
  originLess: boolean;
  /** A column of a view: its trace is checked again before a later result uses this plan. */
  view?: true;
  /** `schema.table.column` the values come from, when the catalog says. */
  origin?: string;
}

interface Portal {
  hints: StatementHints;
  formats: number[];
  /** From the Describe of this portal that precedes each Execute. */
  plan?: ColumnPlan[];
}

type Op =
  | { k: 'parse'; name: string; hints: StatementHints }
  | { k: 'bind'; portal: string; statement: string; formats: number[] }
  | { k: 'describe'; what: 'S' | 'P'; name: string; injected?: true }
  | { k: 'execute'; portal: string }
  | { k: 'close'; what: 'S' | 'P'; name: string }
  | { k: 'sync' }
  | { k: 'query'; hints: StatementHints }
  | { k: 'function' }
  | { k: 'copy-end' };

/**
 * For a statement or portal whose SQL the masker did not see judged (a SQL cursor, a statement
 * prepared in SQL or replaced since): columns without an origin are masked, as for FETCH, and
 * error and notice text is withheld.
 */
const UNKNOWN_HINTS: StatementHints = { originUnknownPolicy: 'mask', withholdMessages: true };
const SYNC_OP: Op = { k: 'sync' };
const FUNCTION_OP: Op = { k: 'function' };
const COPY_END_OP: Op = { k: 'copy-end' };
/** A FunctionCall may have changed anything. */
const CHANGES_ALL: StatementHints = { changes: { statements: true, portals: true } };
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
  ready: Backend.READY_FOR_QUERY,
} as const;

/** Error/notice fields that can echo data. @see https://www.postgresql.org/docs/current/protocol-error-fields.html */
const DATA_FIELDS = new Set(['M', 'D', 'H', 'W', 'q']);

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
  /** Policy for origin-less columns of statements whose hints do not say. */
  originUnknownPolicy: OriginUnknownPolicy;
  private readonly catalog: CatalogResolver | undefined;
  private readonly unknownStrategy: MaskStrategy;
  private readonly onUnknownRow: (() => void) | undefined;
  private readonly answers = new AnswerQueue<Op>();
  /** Prepared statements -> the hints of the SQL they were parsed from. */
  private get statements(): Map<string, StatementHints> {
    return (this.#statements ??= new Map());
  }
  #statements: Map<string, StatementHints> | undefined;
  private get portals(): Map<string, Portal> {
    return (this.#portals ??= new Map());
  }
  #portals: Map<string, Portal> | undefined;
  /** The result being returned for a simple Query. */
  private current: { plan: ColumnPlan[]; hints: StatementHints } | undefined;
  /**
   * Portals whose Describe the server will have answered before their next Execute, as the
   * client's messages go: described after their Bind, with no Execute, Query or FunctionCall
   * since (any of which can close and re-open a portal under the same name).
   */
  private get described(): Set<string> {
    return (this.#described ??= new Set());
  }
  #described: Set<string> | undefined;
  /** The COPY out in progress: masked by a CopyOutMasker, or passed on as it comes (`pass`). */
  private copy: { masker: CopyOutMasker } | 'pass' | undefined;
  /** Plans of RowDescriptions planned without a catalog query, by their bytes (see {@link planOf}). */
  #plans: Map<string, KnownPlan> | undefined;
  /** Whether a column's plan depends on its origin: some rule names columns (by origin, or by a name an alias may hide). */
  get #byOrigin(): boolean {
    return this.rules.hasColumnRules || this.rules.hasNameRules;
  }

  constructor(options: ResultMaskerOptions) {
    this.rules = options.rules instanceof MaskingRules ? options.rules : MaskingRules.of(options.rules, options.key);
    this.catalog = options.catalog;
    this.originUnknownPolicy = options.originUnknownPolicy ?? 'mask';
    this.unknownStrategy = options.originUnknownStrategy ?? 'redact';
    this.onUnknownRow = options.onUnknownRow;
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
    switch (m.kind) {
      case 'query':
        described.clear();
        this.answers.push({ k: 'query', hints: hints ?? {} });
        return undefined;
      case 'function-call':
        described.clear();
        this.answers.push(FUNCTION_OP);
        return undefined;
      case 'parse':
        this.answers.push({ k: 'parse', name: m.name, hints: hints ?? {} });
        return undefined;
      case 'bind':
        described.delete(m.portal);
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
        if (!described.has(m.portal)) {
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
    if (type !== T.dataRow || this.rules.detectors.length > 0) return false;
    const head = this.answers.head;
    const source = head?.k === 'execute' ? this.portals.get(head.portal) : this.current;
    const plan = source?.plan;
    if (plan === undefined) return false;
    const hints = source!.hints;
    for (let i = 0; i < plan.length; i++) if (plan[i]!.strategy || (plan[i]!.originLess && this.masksOriginLess(hints, i))) return false;
    return true;
  }

  /**
   * The bytes to send to the client for one server message: `msg.raw` when nothing changed, a
   * rewritten message, several messages, or nothing. A Promise only for a RowDescription, error or
   * notice that needs a catalog lookup; do not feed the next message before it settles.
   *
   * @throws PgProtocolError on a malformed message, or one that answers nothing the client sent
   * @see https://www.postgresql.org/docs/current/protocol-message-formats.html
   */
  backend(msg: PgMessage): Buffer | Promise<Buffer> {
    // What the message answers (the queue moves past what it ends).
    const op = this.answers.answer(msg.type);
    switch (msg.type) {
      case T.parseComplete:
        if (op?.k === 'parse') this.statements.set(op.name, op.hints);
        return msg.raw;
      case T.bindComplete:
        if (op?.k === 'bind') {
          // A statement the masker did not see parsed (prepared in SQL, or dropped since): unknown.
          this.portals.set(op.portal, { hints: this.statements.get(op.statement) ?? UNKNOWN_HINTS, formats: op.formats });
        }
        return msg.raw;
      case T.rowDescription:
        return op?.k === 'describe' ? this.describedRow(op, msg) : this.queryResult(op, msg);
      case T.noData:
        return op?.k === 'describe' && op.injected ? EMPTY : msg.raw;
      case T.dataRow:
        return this.dataRow(msg);
      case T.commandComplete:
      case T.emptyQuery:
      case T.portalSuspended:
        if (op?.k === 'execute') this.ended(this.portals.get(op.portal)?.hints);
        else this.current = undefined;
        return msg.raw;
      case T.closeComplete:
        if (op?.k === 'close') {
          if (op.what === 'S') this.statements.delete(op.name);
          else this.portals.delete(op.name);
        }
        return msg.raw;
      case T.copyOut:
        return this.copyOut(msg);
      case T.copyData:
        if (this.copy === undefined || this.copy === 'pass') return msg.raw;
        return this.wrapCopy(this.copy.masker.push(msg.body));
      case T.copyDone: {
        const copy = this.copy;
        this.copy = undefined;
        if (copy === undefined || copy === 'pass') return msg.raw;
        const rest = copy.masker.end();
        return rest.length ? Buffer.concat([frameMessage(Backend.COPY_DATA, rest), msg.raw]) : msg.raw;
      }
      case T.error: {
        const hints = this.hintsOf(op);
        this.copy = undefined;
        if (op?.k === 'execute') this.ended(this.portals.get(op.portal)?.hints);
        return this.errorOrNotice(msg, hints);
      }
      case T.notice:
        return this.errorOrNotice(msg, this.hintsOf(this.answers.head));
      case T.notification:
        return this.notification(msg);
      case T.ready:
        // Portals end with their transaction (a holdable cursor is described again, as unknown).
        this.portals.clear();
        if (op?.k === 'query') this.ended(op.hints);
        else if (op?.k === 'function') this.ended(CHANGES_ALL);
        this.current = undefined;
        this.copy = undefined;
        return msg.raw;
      default:
        return msg.raw;
    }
  }

  /** A Query, Execute or FunctionCall is done: drops what it may have replaced (see {@link StatementHints.changes}). */
  private ended(hints: StatementHints | undefined): void {
    if (hints?.changes?.statements) this.statements.clear();
    if (hints?.changes?.portals) this.portals.clear();
  }

  private hintsOf(op: Op | undefined): StatementHints {
    if (op?.k === 'query') return op.hints;
    if (op?.k === 'execute') return this.portals.get(op.portal)?.hints ?? UNKNOWN_HINTS;
    return {};
  }

  private policyOf(hints: StatementHints): OriginUnknownPolicy {
    return hints.originUnknownPolicy ?? this.originUnknownPolicy;
  }

  /** Whether result column `i`, when it has no origin, is masked under `hints`. */
  private masksOriginLess(hints: StatementHints, i: number): boolean {
    return this.policyOf(hints) === 'mask' && hints.maskedColumns?.[i] !== false;
  }

  /**
   * A RowDescription answering a Describe. Of a statement: handed on (an Execute's row shape
   * always comes from a Describe of its portal). Of a portal: planned for its Execute; a portal
   * no Bind of this session made is a SQL cursor (or one some SQL replaced), masked as unknown.
   */
  private describedRow(op: Extract<Op, { k: 'describe' }>, msg: PgMessage): Buffer | Promise<Buffer> {
    if (op.what === 'S') return msg.raw;
    const done = (plan: ColumnPlan[]): Buffer => {
      let portal = this.portals.get(op.name);
      if (!portal) this.portals.set(op.name, (portal = { hints: UNKNOWN_HINTS, formats: [] }));
      const formats = portal.formats;
      portal.plan = plan.map((c, i) => ({ ...c, format: formats.length ? formatAt(formats, i) : c.format }));
      this.lastPlan = portal.plan;
      return op.injected ? EMPTY : msg.raw;
    };
    const plan = this.planOf(msg.body);
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
      this.lastPlan = plan;
      this.current = { plan, hints: this.hintsOf(op) };
      return msg.raw;
    };
    const plan = this.planOf(msg.body);
    return plan instanceof Promise ? plan.then(done) : done(plan);
  }

  /**
   * The plan of a RowDescription's body. A session sends the same few shapes of result over and
   * over: a plan made without a catalog query is kept (for {@link PLANS_KEPT} bodies of at most
   * {@link PLAN_KEPT_MAX_BODY} bytes) with the origin the catalog gave each column, and used
   * again while the catalog still gives those very origins (the same objects: a relation
   * reloaded, expired or replaced gives new ones, a view none without a query). The rules never
   * change in a session, so the plan is what {@link plan} would make, without decoding the names
   * and deciding each column again.
   */
  private planOf(body: Buffer): ColumnPlan[] | Promise<ColumnPlan[]> {
    const key = body.length <= PLAN_KEPT_MAX_BODY ? body.toString('latin1') : '';
    const kept = key ? this.#plans?.get(key) : undefined;
    if (kept && this.#sameOrigins(kept)) return kept.plan;
    const fields = kept?.fields ?? parseRowDescription(body);
    const origins = this.#originsNow(fields);
    const plan = this.plan(fields, origins);
    if (plan instanceof Promise || origins === undefined || !key) return plan;
    const plans = (this.#plans ??= new Map());
    if (plans.size >= PLANS_KEPT && !plans.has(key)) plans.delete(plans.keys().next().value!);
    plans.set(key, { fields, origins, plan });
    return plan;
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
   * Decides each column's whole-column strategy; async only when origins must be looked up.
   * `known`: each column's origin as the catalog has it without a query (see #originsNow).
   */
  private plan(fields: RowDescriptionField[], known: ReadonlyArray<ResolvedColumn | undefined | null> | undefined): ColumnPlan[] | Promise<ColumnPlan[]> {
    const byName = (f: RowDescriptionField, origin?: ColumnOrigin): MaskStrategy | undefined => this.rules.forName(f.name) ?? (origin ? this.rules.forName(origin.column) : undefined);
    const base = (f: RowDescriptionField, strategy: MaskStrategy | undefined): ColumnPlan => ({
      typeOid: f.typeOid,
      format: f.format,
      strategy,
      originLess: f.tableOid === 0,
    });
    // Name rules need the origin too: `SELECT ssn AS x` is reported as `x`.
    const needsLookup = this.#byOrigin && fields.some((f) => f.tableOid !== 0);
    if (!needsLookup) return fields.map((f) => base(f, byName(f)));
    const catalog = this.catalog;
    if (!catalog) return fields.map((f) => (f.tableOid === 0 ? base(f, byName(f)) : base(f, this.unknownStrategy)));
    const resolved = (f: RowDescriptionField, origin: ResolvedColumn | undefined): ColumnPlan => {
      // The result names a relation column the catalog does not know (a relation created in the
      // session's open transaction, or dropped since), or a view the session is replacing: what
      // it is cannot be told, so it is masked.
      if (!origin) return base(f, this.unknownStrategy);
      if (origin.base || origin.computedFrom || origin.unresolved) return { ...resolvedPlan(f, origin), view: true };
      return resolvedPlan(f, origin);
    };
    const resolvedPlan = (f: RowDescriptionField, origin: ResolvedColumn): ColumnPlan => ({ ...decide(f, origin), origin: originName(origin.base ?? origin) });
    const decide = (f: RowDescriptionField, origin: ResolvedColumn): ColumnPlan => {
      if (origin.unresolved) return base(f, this.unknownStrategy);
      const own = this.rules.forOrigin(origin);
      if (own) return base(f, own);
      if (origin.computedFrom) {
        const rules = this.rules;
        const masked = origin.computedFrom.some((c) => rules.readsMasked(c));
        return base(f, masked ? this.unknownStrategy : byName(f, origin));
      }
      return base(f, (origin.base && this.rules.forOrigin(origin.base)) ?? byName(f, origin.base ?? origin));
    };
    // Relations already in the catalog cache are planned at once, without a Promise.
    if (known) return fields.map((f, i) => (f.tableOid === 0 ? base(f, byName(f)) : resolved(f, known[i] ?? undefined)));
    return Promise.all(
      fields.map(async (f): Promise<ColumnPlan> => {
        if (f.tableOid === 0) return base(f, byName(f));
        try {
          return resolved(f, await catalog.columnName(f.tableOid, f.attnum));
        } catch {
          return base(f, this.unknownStrategy);
        }
      }),
    );
  }

  /** The row shape and hints of the result the next DataRow belongs to. */
  private result(): { plan: ColumnPlan[] | undefined; hints: StatementHints } {
    const head = this.answers.head;
    if (head?.k === 'execute') {
      const portal = this.portals.get(head.portal);
      return { plan: portal?.plan, hints: portal?.hints ?? UNKNOWN_HINTS };
    }
    return { plan: this.current?.plan, hints: this.current?.hints ?? this.hintsOf(head) };
  }

  private dataRow(msg: PgMessage): Buffer {
    const { plan, hints } = this.result();
    const rules = this.rules;
    if (plan && rules.detectors.length === 0 && !plan.some((c, i) => c.strategy || (c.originLess && this.masksOriginLess(hints, i)))) return msg.raw;
    const fields = parseDataRow(msg.body);
    if (!plan) {
      // No RowDescription told what these values are (the server answered a Describe it was
      // never sent, or a portal's shape was lost): nothing of them is handed on.
      this.onUnknownRow?.();
      return dataRow(fields.map(() => null));
    }
    let changed = false;
    const out = fields.map((value, i) => {
      const col: ColumnPlan = plan[i] ?? { typeOid: 0, format: 0, strategy: this.unknownStrategy, originLess: true };
      if (value === null) return null;
      const t: FieldType = col.typeOid === 0 && col.format === 0 ? { typeOid: 25, format: 0 } : col;
      const strategy = col.strategy ?? (col.originLess && this.masksOriginLess(hints, i) ? this.unknownStrategy : undefined);
      if (strategy) {
        changed = true;
        return maskField(value, t, strategy, rules);
      }
      const d = detectInField(value, t, rules);
      if (d === undefined) return value;
      changed = true;
      return d;
    });
    return changed ? dataRow(out) : msg.raw;
  }

  private copyOut(msg: PgMessage): Buffer {
    const b = msg.body;
    need(b, 0, 3);
    const overall = b[0]!;
    const n = readCount16(b, 1);
    need(b, 3, 2 * n);
    const hints = this.hintsOf(this.answers.head);
    const copyHints = hints.copy;
    const options: CopyOptions = overall === 1 ? { ...copyHints, format: 'binary' } : copyHints && copyHints.format !== 'binary' ? copyHints : { format: 'text' };
    const mask = this.policyOf(hints) === 'mask';
    const strategies: Array<MaskStrategy | undefined> = [];
    for (let i = 0; i < n; i++) {
      const origin = copyHints?.columns?.[i];
      strategies.push(origin ? (this.rules.forOrigin(origin) ?? this.rules.forName(origin.column)) : mask ? this.unknownStrategy : undefined);
    }
    const rules = this.rules;
    if (rules.detectors.length === 0 && strategies.every((st) => st === undefined)) {
      // Nothing in this COPY can be masked: its rows pass as they come, unparsed.
      this.copy = 'pass';
      return msg.raw;
    }
    const text = (value: string | null, i: number): string | null | undefined => {
      if (value === null) return undefined;
      const s = strategies[i];
      if (s) return rules.apply(value, s, true);
      const r = rules.maskText(value);
      return r.changed ? (r.nullify ? null : r.text) : undefined;
    };
    const binary = (value: Buffer | null, i: number): Buffer | null | undefined => {
      if (value === null) return undefined;
      if (strategies[i]) return null;
      return detectInField(value, { typeOid: 0, format: 0 }, rules) === undefined ? undefined : null;
    };
    this.copy = { masker: new CopyOutMasker(options, text, binary, (s) => rules.maskText(s).text) };
    return msg.raw;
  }

  private wrapCopy(payload: Buffer): Buffer {
    return payload.length === 0 ? Buffer.alloc(0) : frameMessage(Backend.COPY_DATA, payload);
  }

  /**
   * An error or notice of the statement `hints` are of: withheld (its SQLSTATE kept) when it may
   * quote masked values (see {@link StatementHints.withholdMessages}), else its data fields masked.
   */
  private errorOrNotice(msg: PgMessage, hints: StatementHints): Buffer | Promise<Buffer> {
    const { fields } = parseErrorFields(msg.body);
    if (hints.withholdMessages !== true && hints.messagesMayQuoteMasked) return hints.messagesMayQuoteMasked(fields).then((withhold) => this.errorOrNoticeAs(msg, fields, withhold));
    return this.errorOrNoticeAs(msg, fields, hints.withholdMessages === true);
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

  private notification(msg: PgMessage): Buffer {
    const b = msg.body;
    need(b, 0, 4);
    const [channel, at] = cstr(b, 4);
    const [payload, end] = cstr(b, at);
    if (end !== b.length) throw new PgProtocolError('NotificationResponse has trailing bytes');
    const r = this.rules.maskText(payload);
    if (!r.changed) return msg.raw;
    return frameMessage(msg.type, Buffer.concat([b.subarray(0, 4), Buffer.from(`${channel}\0${r.text}\0`, 'utf8')]));
  }
}

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
  const key = /^(Key \(.*?\)=\()(.*)(\)(?: [a-z].*)?\.?)$/s.exec(detail);
  if (key) return `${key[1]}${REDACTED}${key[3]}`;
  const row = /^(Failing row contains \()(.*)(\)\.?)$/s.exec(detail);
  if (row) return `${row[1]}${REDACTED}${row[3]}`;
  return detail;
}
