/**
 * Masking in the gateway's PostgreSQL relay: one {@link ResultMasker} per session, fed with
 * every message the server receives (so it knows which statement, portal and formats each
 * response belongs to) and run over everything the server sends back.
 *
 * - Column origins are resolved through the catalog on a separate upstream connection of the
 *   gateway's own (same credentials, opened on the first lookup, closed with the session), over
 *   the simple Query protocol.
 * - Each Query / Parse gets hints from its parse tree ({@link analyzeSql}, cached): when an
 *   output may carry a masked value without an origin (see `#originLessMayBeMasked`: computed
 *   from a masked column, a view over one, a UNION over a masked table, ...) or the SQL does not
 *   parse, columns without an origin are masked; otherwise only name rules and content
 *   detectors apply to them.
 * - `COPY table [(cols)] TO STDOUT`: format, delimiter, quote, NULL string and header come from
 *   the parse tree; the columns' origins from the column list, or else from the table's catalog
 *   order, looked up when the COPY is forwarded: the server's answer is held until that lookup
 *   settles. `COPY (query) TO`: the query is described on that connection (Parse + Describe,
 *   not executed) for its columns' origins; fields without one are masked when the COPY reads
 *   a table with column rules.
 *
 * @see https://www.postgresql.org/docs/current/protocol-flow.html
 * @see https://www.postgresql.org/docs/current/sql-copy.html
 */
import { lexingSafeEncoding } from '../../../policy/sql/lexing.js';
import type { Logger } from '../../../log.js';
import { ancestorsJsonSql, parseAncestors, PgCatalogResolver } from '../../../policy/masking/catalog.js';
import { ResultMasker, type StatementHints } from './result-masker.js';
import type { ColumnOrigin } from '../../../policy/masking/rules.js';
import { DerivedValueCheck } from '../../../policy/masking/derived.js';
import { ANALYSIS_CACHE_MAX_TEXT, analyzeSql, type Analysis, type CopyFacts, type StatementFacts } from '../../../policy/sql/analyze.js';
import { ShapeCache } from '../../../policy/sql/shape.js';
import { describeError } from '../../../errors.js';
import type { FrontendMessage } from '../../wire/frontend-messages.js';
import { SqlState } from '../../wire/messages.js';
import type { CatalogConnection } from './catalog-connection.js';
import { PgProtocolError } from '../../wire/protocol-error.js';
import type { Framing, PgMessage } from '../../wire/reader.js';
import type { MaskingStage } from '../stages.js';
import type { SessionMasking } from '../../../session/engine.js';
import { Backend } from '../../wire/codes.js';

const { DATA_ROW, COPY_DATA } = Backend;
/** Default of {@link PgSessionMaskingOptions.maxMessageBytes}. */
const DEFAULT_MAX_MESSAGE = 64 * 1024 * 1024;
/** Most SQL texts (and as many statement shapes) whose hints are remembered per session. */
const MAX_HINTS = 256;

/** Escapes a string as a SQL literal (standard_conforming_strings on: only quotes double). */
function literal(s: string): string {
  return `'${s.replace(/'/g, "''")}'`;
}

/** An integer parameter, or an array of them, as text (the resolver's catalog queries take only OIDs and numbers). */
function integerParam(p: unknown): string {
  const integer = (value: unknown): string => {
    const v = Number(value);
    if (!Number.isSafeInteger(v)) throw new Error('catalog queries take integer parameters only');
    return String(v);
  };
  return Array.isArray(p) ? `{${p.map(integer).join(',')}}` : integer(p);
}

/** A text[] parameter in PostgreSQL's array syntax, every element quoted. @see https://www.postgresql.org/docs/current/arrays.html#ARRAYS-IO */
export function textArrayParam(items: readonly string[]): string {
  return `{${items.map((i) => `"${i.replace(/["\\]/g, '\\$&')}"`).join(',')}}`;
}

/** What {@link PgSessionMasking} remembers of one SQL text. */
interface HintsEntry {
  hints: StatementHints;
  /** The query of `COPY (query) TO` and the relations it names, described per COPY for its fields' origins. */
  copyQuery?: { text: string; tables: readonly string[] };
  /** The table of `COPY table TO` whose column order is looked up per COPY. */
  copyRelation?: { schema?: string; table: string; columns?: readonly string[] };
  /** Relations read that no column rule names (checked for views over masked columns). */
  others: string[];
}

/**
 * Every relation the (lower-case) names in `$1` (text[]) may mean, in any schema, with, for views
 * and materialized views, every column they read through other views (`*` for a whole row), and
 * the tables any of these inherit from (partitioned tables, inheritance parents: `*`): rows of
 * `name, oid, kind` and `schema, table, column` of what is read (null for a plain table). A name
 * is `table` or `schema.table`, split at its last dot.
 * @see https://www.postgresql.org/docs/current/catalog-pg-depend.html
 */
export const RELATIONS_NAMED_SQL =
  'with recursive cand as (select w.name, c.oid, c.relkind from ' +
  "(select x as name, substring(x from '^(.*)\\.[^.]*$') as schema, substring(x from '([^.]*)$') as rel from unnest($1::text[]) as x) as w " +
  'join pg_catalog.pg_class c on lower(c.relname) = w.rel join pg_catalog.pg_namespace n on n.oid = c.relnamespace ' +
  "where (w.schema is null or lower(n.nspname) = w.schema) and c.relkind in ('r','p','v','m','f')), " +
  'reads(root, relid, attnum, depth) as (' +
  'select cand.oid, d.refobjid, d.refobjsubid, 1 from cand join pg_catalog.pg_rewrite r on r.ev_class = cand.oid ' +
  "join pg_catalog.pg_depend d on d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass and d.objid = r.oid " +
  "where d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass and d.refobjid <> r.ev_class " +
  'union select reads.root, d.refobjid, d.refobjsubid, reads.depth + 1 from reads join pg_catalog.pg_rewrite r on r.ev_class = reads.relid ' +
  "join pg_catalog.pg_depend d on d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass and d.objid = r.oid " +
  "where d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass and d.refobjid <> r.ev_class and reads.depth < 32), " +
  // The tables a relation (or one a view reads) inherits from: read as whole rows.
  'anc(root, relid, depth) as (select x.root, i.inhparent, 1 from (select cand.oid as root, cand.oid as rel from cand union select root, relid from reads) x ' +
  'join pg_catalog.pg_inherits i on i.inhrelid = x.rel union select anc.root, i.inhparent, anc.depth + 1 from anc ' +
  'join pg_catalog.pg_inherits i on i.inhrelid = anc.relid where anc.depth < 32) ' +
  "select distinct cand.name, cand.oid::int8 as oid, cand.relkind as kind, n.nspname as schema, c.relname as table, case when reads.relid is null then null else coalesce(a.attname, '*') end as column " +
  'from cand left join reads on reads.root = cand.oid left join pg_catalog.pg_class c on c.oid = reads.relid ' +
  'left join pg_catalog.pg_namespace n on n.oid = c.relnamespace ' +
  'left join pg_catalog.pg_attribute a on a.attrelid = reads.relid and a.attnum = reads.attnum and reads.attnum > 0 ' +
  "union select cand.name, cand.oid::int8, cand.relkind, n.nspname, c.relname, '*' from cand join anc on anc.root = cand.oid " +
  'join pg_catalog.pg_class c on c.oid = anc.relid join pg_catalog.pg_namespace n on n.oid = c.relnamespace';

/** How long one lookup of what a statement's relations read answers for its errors and notices. */
const RECENT_READ_MS = 1000;

/** What the relations some names may mean read (see {@link RELATIONS_NAMED_SQL}). */
interface RelationsRead {
  /** The names that mean no relation the gateway's connection can see. */
  missing: string[];
  /** Whether any relation they mean reads a masked column. */
  readsMasked: boolean;
}

/**
 * Whether an error or notice of a statement that reads relations (`read`) may quote a masked
 * value: when one of them is a view over masked columns, or a name means no relation the gateway
 * can see, unless the server says it is just that (`42P01 relation "name" does not exist`: the
 * statement stopped at a name the client wrote, before anything ran).
 *
 * @see https://www.postgresql.org/docs/current/errcodes-appendix.html (42P01 undefined_table)
 */
async function messagesMayQuoteMasked(read: Promise<RelationsRead>, fields: ReadonlyMap<string, string>): Promise<boolean> {
  const { missing, readsMasked } = await read;
  if (readsMasked) return true;
  if (missing.length === 0) return false;
  const undefinedTable = fields.get('C') === '42P01' ? /^relation "([^"]+)" does not exist$/.exec(fields.get('M') ?? '') : null;
  return !(undefinedTable && missing.includes(undefinedTable[1]!.toLowerCase()));
}

/** A {@link PgSessionMasking}'s options. */
export interface PgSessionMaskingOptions {
  masking: SessionMasking;
  /** The largest server message masking reads whole (a row or COPY line it may change, an error, a notice). */
  maxMessageBytes?: number;
  /** The process id of the session's own backend (its open transaction's locks tell a view it is replacing). */
  sessionPid?: number;
  /**
   * Where its catalog lookups run: a connection of the gateway's own with the session's credentials,
   * shared with the connection's other sessions (the caller closes it); its queries name the
   * session's backend by `sessionPid`, never by being it.
   */
  catalog: CatalogConnection;
  log?: Logger;
  sessionId?: string;
}

/**
 * The masking of one PostgreSQL session: {@link frontend} records what is forwarded to the
 * server, {@link backend} masks what the server sends (a Promise while a catalog lookup runs;
 * the caller must not pass the next chunk before it settles).
 *
 * @see https://www.postgresql.org/docs/current/protocol-flow.html
 */
export class PgSessionMasking implements MaskingStage {
  readonly masker: ResultMasker;
  readonly #maxMessage: number;
  readonly #catalog: CatalogConnection;
  readonly #resolver: PgCatalogResolver;
  readonly #hints = new ShapeCache<HintsEntry>(MAX_HINTS, ANALYSIS_CACHE_MAX_TEXT);
  readonly #derived: DerivedValueCheck;
  /** Lookups the server's answer must wait for (COPY column order). */
  #barriers: Array<Promise<void>> = [];
  readonly #log: Logger | undefined;
  readonly #sessionId: string | undefined;

  constructor(options: PgSessionMaskingOptions) {
    this.#catalog = options.catalog;
    const resolver = new PgCatalogResolver(async (sql, params) => this.#catalog.prepared(sql, params.map(integerParam)), {
      describe: async (sql) => this.#catalog.describe(sql),
      sessionPid: () => options.sessionPid,
    });
    this.#resolver = resolver;
    const { policy, key } = options.masking;
    this.masker = new ResultMasker({
      rules: policy,
      ...(key !== undefined ? { key } : {}),
      catalog: resolver,
      originUnknownPolicy: 'detect-only',
      onUnknownRow: () => options.log?.warn('masking.unknown-row', { session: options.sessionId }),
    });
    this.#maxMessage = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE;
    this.#derived = new DerivedValueCheck(this.masker.rules);
    this.#log = options.log;
    this.#sessionId = options.sessionId;
  }

  /** Whether a table named in SQL (`schema.table` or bare `table`: any schema) has column rules. */
  tableHasColumnRules(name: string): boolean {
    return this.masker.rules.columnsOfSqlTable(name).size > 0;
  }

  /**
   * Whether a result column without an origin may carry a masked value: an output computed from
   * a masked column or a whole row ({@link DerivedValueCheck}), an output whose source the parse
   * tree does not show (set operations, join USING, functions in FROM: `outputs.opaque`) in a
   * statement that reads a table with column rules, or the rows of a prepared statement or
   * cursor, whose query was judged elsewhere. `count(*)` or `now()` next to masked columns are
   * not.
   */
  #originLessMayBeMasked(s: StatementFacts): boolean {
    if (this.#derived.find(s) !== undefined) return true;
    if (s.executeName !== undefined || s.kinds.includes('cursor') || s.kinds.includes('execute')) return true;
    return s.outputs.opaque && s.tables.some((t) => this.tableHasColumnRules(t));
  }

  /**
   * For a plain SELECT whose result columns the analysis lists (see `OutputFacts.columns`), which
   * of them may carry a masked value when they have no origin: one computed from a masked
   * column (or a whole row, or a name a subquery may have renamed), and every plain column
   * reference (without an origin it came through a subquery, CTE or function). `count(*)` or
   * `now()` next to them are not. Undefined when the statement is masked as a whole (set
   * operations, joins USING, functions in FROM, EXECUTE, FETCH) or every column is masked.
   */
  #maskedColumns(s: StatementFacts): boolean[] | undefined {
    const columns = s.outputs.columns;
    if (!columns || s.kinds[0] !== 'select' || s.kinds.length > 1 || s.outputs.opaque || s.executeName !== undefined) return undefined;
    const masked = columns.map((refs) => refs === null || this.#derived.findIn(s, refs) !== undefined);
    return masked.every(Boolean) ? undefined : masked;
  }

  /**
   * The hints for one Query or Parse SQL text, and the relations it reads that no column rule
   * names (any of them may be a view over masked columns: see {@link #viewsReadMasked}).
   */
  #entryFor(sql: string | undefined, analyzed?: Analysis): HintsEntry {
    const hit = sql === undefined ? undefined : this.#hints.get(sql);
    if (hit) return hit;
    const analysis = analyzed ?? analyzeSql(sql!);
    let mask = !analysis.ok;
    let withhold = !analysis.ok;
    const changes = { statements: !analysis.ok, portals: !analysis.ok };
    let copy: CopyFacts | undefined;
    let copyTables: string[] = [];
    const others = new Set<string>();
    const read = new Set<string>();
    if (analysis.ok) {
      for (const s of analysis.statements) {
        for (const t of s.tables) if (!t.endsWith('*')) read.add(t);
        if (this.#originLessMayBeMasked(s)) mask = true;
        // A prepared statement's or cursor's query was judged elsewhere: its errors may quote masked values.
        if (this.#derived.findIn(s, s.refs) !== undefined || s.executeName !== undefined || s.kinds.includes('cursor') || s.kinds.includes('execute')) withhold = true;
        // Code hoop cannot read (a DO block, a procedure) may raise or return any value: its notices,
        // errors and OUT parameters are treated as masked.
        const opaque = s.kinds.includes('do') || s.kinds.includes('call');
        if (opaque) mask = withhold = true;
        if (opaque || s.preparedName !== undefined) changes.statements = true;
        if (opaque || s.cursorName !== undefined || s.kinds.includes('cursor') || s.kinds.includes('transaction')) changes.portals = true;
        // COPY has no RowDescription: a field whose origin is not found is masked when the COPY reads a masked table.
        if (s.kinds[0] === 'copy-out' && s.tables.some((t) => this.tableHasColumnRules(t))) mask = true;
        const o = s.outputs;
        // A bare output is a whole row only when it names a relation or alias in scope (else it is a column).
        const wholeRows = o.bare.some((n) => n in o.aliases || o.subqueries.includes(n) || s.tables.some((t) => t === n || t.endsWith(`.${n}`)));
        if (o.derived.length > 0 || wholeRows || o.opaque || s.kinds[0] === 'copy-out') for (const t of s.tables) if (!t.endsWith('*')) others.add(t);
        // COPY data in an encoding hoop cannot split safely (a judge refuses it: parser-consistency): every field is masked, none is placed by origin.
        if (s.copy?.encoding !== undefined && !lexingSafeEncoding(s.copy.encoding)) mask = true;
        else if (s.kinds[0] === 'copy-out' && !copy) {
          copy = s.copy;
          copyTables = s.tables;
        }
      }
    }
    const maskedColumns = mask && analysis.ok && analysis.statements.length === 1 ? this.#maskedColumns(analysis.statements[0]!) : undefined;
    // Should one of the relations read be a view over masked columns, its errors and notices may quote their values (the view's own expression failing on one).
    const readNames = withhold ? [] : [...read];
    const hints: StatementHints = {
      originUnknownPolicy: mask ? 'mask' : 'detect-only',
      ...(maskedColumns ? { maskedColumns } : {}),
      ...(withhold ? { withholdMessages: true } : {}),
      ...(changes.statements || changes.portals ? { changes } : {}),
      ...(readNames.length > 0 && (this.masker.rules.hasColumnRules || this.masker.rules.hasNameRules) ? { messagesMayQuoteMasked: this.#messagesCheck(readNames) } : {}),
    };
    // Columns left unmasked by name may still read a view over masked columns: looked up below.
    const entry: HintsEntry = { hints, others: mask && !maskedColumns ? [] : [...others] };
    if (copy && copy.target === 'client') {
      const { direction: _d, target: _t, relation, columns, query, ...options } = copy;
      hints.copy = options;
      const byOrigin = this.masker.rules.hasColumnRules || this.masker.rules.hasNameRules;
      if (relation && byOrigin) {
        // The columns come from the catalog per COPY (which tables the name may mean, their column
        // order, the tables they inherit from); such hints are not cached.
        return { ...entry, hints: { ...hints, copy: { ...hints.copy, columns: [] } }, copyRelation: { ...relation, ...(columns ? { columns } : {}) } };
      }
      if (query !== undefined && byOrigin) {
        // The fields' origins come from describing the query per COPY; not cached either.
        return { ...entry, hints: { ...hints, copy: { ...hints.copy, columns: [] } }, copyQuery: { text: query, tables: copyTables } };
      }
    }
    if (sql !== undefined) this.#hints.set(sql, analysis, entry);
    return entry;
  }

  /**
   * Whether any relation these names may mean is a view (or materialized view) that reads a
   * masked column, or whether a name means no relation the gateway's connection can see (one made
   * in the session's open transaction): fail closed. A name means every relation so named in any
   * schema (compared without case), since the session's search_path decides which one it reads.
   * A computed column of such a view, or an expression over one of its columns, has no origin in
   * the result and must be masked like any origin-less column of a statement that reads a masked
   * table. Looked up for every statement that needs it: a view can be replaced at any time.
   */
  async #relationsMayCarryMasked(names: readonly string[]): Promise<boolean> {
    const found = await this.#relationsRead(names);
    return found.readsMasked || found.missing.length > 0;
  }

  /**
   * Whether an error or notice of a statement reading `names` may quote a masked value, asked only
   * when one comes; one lookup serves the notices of a second (a statement that raises many).
   */
  #messagesCheck(names: readonly string[]): (fields: ReadonlyMap<string, string>) => Promise<boolean> {
    let recent: { read: Promise<RelationsRead>; at: number } | undefined;
    return (fields) => {
      if (!recent || Date.now() - recent.at > RECENT_READ_MS) recent = { read: this.#relationsRead(names), at: Date.now() };
      return messagesMayQuoteMasked(recent.read, fields);
    };
  }

  /** Which of `names` mean no relation the gateway can see, and whether any that does reads a masked column (through views, or whole rows of what it inherits from). */
  async #relationsRead(names: readonly string[]): Promise<RelationsRead> {
    try {
      const rows = await this.#catalog.prepared(RELATIONS_NAMED_SQL, [textArrayParam(names)]);
      const found = new Set(rows.map((r) => r.name));
      const rules = this.masker.rules;
      return {
        missing: names.filter((n) => !found.has(n)),
        readsMasked: rows.some((c) => c.column !== null && rules.readsMasked({ schema: c.schema ?? '', table: c.table ?? '', column: c.column })),
      };
    } catch (err) {
      this.#log?.warn('masking.catalog-failed', { session: this.#sessionId, error: describeError(err) });
      return { missing: [], readsMasked: true };
    }
  }

  /**
   * Records one message the server receives, in order, exactly as it receives it, so that the
   * answers can be told apart (which statement, portal and formats each belongs to); returns the
   * messages to send before it (a Describe of a portal nobody described), if any.
   *
   * @throws PgProtocolError when too many messages await an answer
   */
  frontend(m: FrontendMessage, analysis?: Analysis): readonly FrontendMessage[] | undefined {
    let hints: StatementHints | undefined;
    if (m.kind === 'query' || m.kind === 'parse') {
      // A long text was analysed off the relay's thread and is not decoded here (nor cached).
      const entry = this.#entryFor(m.long ? undefined : m.sql, analysis);
      hints = entry.hints;
      const byOrigin = this.masker.rules.hasColumnRules || this.masker.rules.hasNameRules;
      if (byOrigin && entry.others.length > 0) {
        const late: StatementHints = { ...hints };
        hints = late;
        this.#barriers.push(
          this.#relationsMayCarryMasked(entry.others).then((m) => {
            if (!m) return;
            late.originUnknownPolicy = 'mask';
            late.withholdMessages = true;
            delete late.maskedColumns;
          }),
        );
      }
      // After the view check: the lookups below may still mark these hints.
      if (hints.copy?.columns && hints.copy.columns.length === 0) {
        if (entry.copyQuery !== undefined) this.#copyQueryColumns(entry.copyQuery.text, entry.copyQuery.tables, hints);
        else if (entry.copyRelation) this.#copyColumns(entry.copyRelation, hints);
      }
    }
    return this.masker.frontend(m, hints);
  }

  /**
   * How a server message must be read: a DataRow or CopyData that nothing can change passes as
   * it arrives (never held, whatever its size); anything else is read whole, up to the limit.
   *
   * @throws PgProtocolError (54000) for a message masking would have to hold that is over the limit
   */
  framing(type: number, length: number): Framing {
    if ((type === DATA_ROW || type === COPY_DATA) && this.masker.passes(type)) return 'pass';
    if (length > this.#maxMessage) {
      const what = type === DATA_ROW ? 'a row' : type === COPY_DATA ? 'a COPY line' : `a message ('${String.fromCharCode(type)}')`;
      throw new PgProtocolError(`the server sent ${what} of ${length - 4} bytes that masking would have to hold; the gateway holds at most ${this.#maxMessage} bytes`, {
        sqlstate: SqlState.PROGRAM_LIMIT_EXCEEDED,
        hint: 'select fewer or smaller values, or ask the gateway operator to raise postgres.maxMaskedMessageBytes',
      });
    }
    return 'whole';
  }

  /** Catalog lookups the server's next message must wait for (COPY column order), if any; taken once. */
  takeBarrier(): Promise<void> | undefined {
    if (this.#barriers.length === 0) return undefined;
    const waits = this.#barriers;
    this.#barriers = [];
    return Promise.all(waits).then(() => undefined);
  }

  /**
   * Masks one server message; a Promise while a catalog lookup runs.
   *
   * @throws PgProtocolError on a malformed message
   */
  backend(msg: PgMessage): Buffer | Promise<Buffer> {
    return this.masker.backend(msg);
  }

  /**
   * Fills the COPY's columns with the origins of its query's result columns (Parse + Describe
   * on the catalog connection: the query is not run again), traced through views, before the
   * server's answer is masked. A computed column is left without an origin; one computed from a
   * masked column, or a failed lookup, masks every field without one.
   */
  #copyQueryColumns(query: string, tables: readonly string[], hints: StatementHints): void {
    const into = hints.copy!.columns!;
    const rules = this.masker.rules;
    const barrier = (async () => {
      // The gateway's connection reads names with its own search_path: its description holds
      // for the session only when every name the query reads without a schema means one relation.
      const bare = tables.filter((t) => !t.includes('.'));
      if (tables.some((t) => t.startsWith('pg_temp.'))) throw new Error('the COPY reads a temporary relation by its pg_temp name');
      if (bare.length > 0) {
        const counts = await this.#catalog.query(
          `select x.name, (select count(*) from pg_catalog.pg_class c where lower(c.relname) = x.name and c.relkind in ('r','p','v','m','f')) as n from unnest(array[${bare.map(literal).join(',')}]::text[]) as x(name)`,
        );
        const ambiguous = counts.find((r) => r.n !== '1');
        if (ambiguous) throw new Error(`${ambiguous.n === '0' ? 'no' : 'more than one'} relation is named ${ambiguous.name}`);
      }
      const origins = await this.#catalog.describe(query);
      for (const o of origins) {
        const col = o.tableOid === 0 ? undefined : await this.#resolver.columnName(o.tableOid, o.attnum);
        if (col?.computedFrom) {
          if (col.computedFrom.some((c) => rules.readsMasked(c))) {
            hints.originUnknownPolicy = 'mask';
          }
          into.push(undefined);
        } else into.push(col ? (col.base ?? col) : undefined);
      }
    })().catch((err: unknown) => {
      into.length = 0;
      hints.originUnknownPolicy = 'mask';
      this.#log?.warn('masking.catalog-failed', { session: this.#sessionId, error: describeError(err) });
    });
    this.#barriers.push(barrier);
  }

  /**
   * Fills `into` with the columns of the COPY's table, in catalog order or as its column list
   * names them, before the server's answer is masked; each with the tables it inherits from. The
   * name may mean a table of any schema (the session's search_path decides): with several, a
   * field is masked when the column at its position is masked in any of them.
   */
  #copyColumns(rel: { schema?: string; table: string; columns?: readonly string[] }, hints: StatementHints): void {
    const into = hints.copy!.columns!;
    const q =
      `select c.oid::int8 as oid, n.nspname as schema, c.relname as table, a.attname as column, ${ancestorsJsonSql('c.oid')} as ancestors ` +
      'from pg_catalog.pg_attribute a join pg_catalog.pg_class c on c.oid = a.attrelid join pg_catalog.pg_namespace n on n.oid = c.relnamespace ' +
      `where lower(c.relname) = ${literal(rel.table.toLowerCase())}${rel.schema ? ` and lower(n.nspname) = ${literal(rel.schema.toLowerCase())}` : ''} ` +
      "and c.relkind in ('r','p','f') and a.attnum > 0 and not a.attisdropped order by c.oid, a.attnum";
    const rules = this.masker.rules;
    const barrier = this.#catalog.query(q).then(
      (rows) => {
        const tables = new Map<string, ColumnOrigin[]>();
        for (const r of rows) {
          const cols = tables.get(r.oid!) ?? [];
          const inheritsFrom = parseAncestors(r.ancestors);
          cols.push({ schema: r.schema ?? '', table: r.table ?? '', column: r.column ?? '', ...(inheritsFrom ? { inheritsFrom } : {}) });
          tables.set(r.oid!, cols);
        }
        // With a column list, the COPY's fields are those columns, in its order.
        const listed = rel.columns;
        const candidates = listed ? [...tables.values()].map((cols) => listed.map((name) => cols.find((c) => c.column === name))) : [...tables.values()];
        const width = Math.max(0, ...candidates.map((c) => c.length));
        for (let i = 0; i < width; i++) {
          const here = candidates.map((c) => c[i]).filter((c): c is ColumnOrigin => c !== undefined);
          into.push(here.find((c) => rules.readsMasked(c)) ?? (here.length === candidates.length ? here[0] : undefined));
        }
      },
      // Without the columns every field is masked.
      (err) => {
        hints.originUnknownPolicy = 'mask';
        this.#log?.warn('masking.catalog-failed', { session: this.#sessionId, error: describeError(err) });
      },
    );
    this.#barriers.push(barrier);
  }

  /** The session ended: its lookups are over (the shared catalog connection stays, its caller's). */
  close(): void {
    this.#barriers = [];
  }
}
