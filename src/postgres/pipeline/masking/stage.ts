/**
 * Masking in the gateway's PostgreSQL relay: one {@link ResultMasker} per session, fed with
 * every message the server receives (so it knows which statement, portal and formats each
 * response belongs to) and run over everything the server sends back.
 *
 * - A result column with an origin is masked by its origin's rules, resolved through the catalog
 *   on a connection of the gateway's own (shared by the connection's sessions).
 * - A column without one (a computed value), or whose relation the catalog does not know yet (made
 *   or changed in the session's open transaction), is judged by the statement's lineage (see
 *   `policy/sql/analyze/lineage.ts`): masked when it is computed from a masked column, exact
 *   otherwise; when hoop cannot tell, the session ends with the reason, and no value is guessed.
 *   The session's open transaction is followed ({@link TransactionOverlay}): the relations its
 *   DDL made or changed are judged as that DDL says until it commits.
 * - Errors and notices are withheld when the statement reads a masked value (they could quote it).
 * - `COPY table [(cols)] TO STDOUT`: format, delimiter, quote, NULL string and header come from
 *   the parse tree; the columns' origins from the column list, or else from the table's catalog
 *   order, looked up when the COPY is forwarded: the server's answer is held until that lookup
 *   settles. `COPY (query) TO`: the query is described on that connection (Parse + Describe,
 *   not executed) for its columns' origins, and its computed columns judged by its lineage.
 *
 * @see https://www.postgresql.org/docs/current/protocol-flow.html
 * @see https://www.postgresql.org/docs/current/sql-copy.html
 */
import { realClock } from '../../../clock.js';
import { utf8Encoding } from '../../../policy/sql/lexing.js';
import type { Logger } from '../../../log.js';
import { generatedFromSql, parseAncestors, PgCatalogResolver, relativesJsonSql } from '../../../policy/masking/catalog.js';
import { ResultMasker } from './result-masker.js';
import type { CopyOptions } from './copy-out.js';
import { MaskingRefusal, type CodeCalls, type ColumnJudge, type ResolvedMasking, type StatementHints, type StatementMasking } from './judging.js';
import type { MaskStrategy } from '../../../policy/masking/strategies.js';
import { alignedLineage, CannotTell, relationKey, SourceJudge, splitName, sqlName, TransactionOverlay, type RelationCandidate, type SourceCatalog } from '../../../policy/masking/sources.js';
import {
  ANALYSIS_CACHE_MAX_TEXT,
  analyzeSql,
  type Analysis,
  type ColumnSource,
  type LineageSegment,
  type RelationName,
  type StatementFacts,
  type StatementKind,
  type StatementLineage,
} from '../../../policy/sql/analyze.js';
import { ShapeCache } from '../../../policy/sql/shape.js';
import { describeError } from '../../../errors.js';
import type { FrontendMessage } from '../../wire/frontend-messages.js';
import { SqlState } from '../../wire/messages.js';
import { type CatalogConnection, textArrayParam } from './catalog-connection.js';
import { PgProtocolError } from '../../wire/protocol-error.js';
import type { PgMessage } from '../../wire/reader.js';
import type { RowDescriptionField } from '../../wire/rows.js';
import type { Stage } from '../stages.js';
import type { SessionMasking } from '../../../session/engine.js';
import { Backend } from '../../wire/codes.js';

const { DATA_ROW, COPY_DATA } = Backend;
/** Default of {@link PgSessionMaskingOptions.maxMessageBytes}. */
const DEFAULT_MAX_MESSAGE = 64 * 1024 * 1024;
/** Most SQL texts (and as many statement shapes) whose hints are remembered per session. */
const MAX_HINTS = 256;
/** The strategy of a column masked because it is computed from a masked one. */
const REDACT: MaskStrategy = 'redact';
/** The hints of a statement of the gateway's own (`own`): its answers reach no client, so nothing in them is placed or masked. */
const OWN_HINTS: StatementHints = Object.freeze({ statements: Object.freeze([Object.freeze({ utility: Object.freeze({ tables: Object.freeze([]), evaluates: false }) })]) });

/** An integer parameter, or an array of them, as text (the resolver's catalog queries take only OIDs and numbers). */
function integerParam(p: unknown): string {
  const integer = (value: unknown): string => {
    const v = Number(value);
    if (!Number.isSafeInteger(v)) throw new Error('catalog queries take integer parameters only');
    return String(v);
  };
  return Array.isArray(p) ? `{${p.map(integer).join(',')}}` : integer(p);
}

/**
 * Every relation the names in `$2` (text[], each with its schema in `$1`, or '' for any schema the
 * search path may pick) may mean: its OID, kind, live columns (`[[attnum, name], ...]`) and the
 * tables it inherits from. Names are compared without case (a quoted name may differ only in
 * case: both are candidates, and masking errs towards masking).
 * @see https://www.postgresql.org/docs/current/catalog-pg-class.html
 */
const RELATIONS_BY_NAME_SQL =
  'select w.schema as wanted_schema, w.rel as wanted, c.oid::int8 as oid, n.nspname as schema, c.relname as table, c.relkind as kind, ' +
  `(select pg_catalog.json_agg(pg_catalog.json_build_array(a.attnum, a.attname, ${generatedFromSql('c.oid', 'a.attnum', 'a.attgenerated')}) order by a.attnum)::text from pg_catalog.pg_attribute a ` +
  'where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped) as columns, ' +
  `${relativesJsonSql('c.oid')} as ancestors ` +
  'from unnest($1::text[], $2::text[]) as w(schema, rel) join pg_catalog.pg_class c on lower(c.relname) = lower(w.rel) ' +
  'join pg_catalog.pg_namespace n on n.oid = c.relnamespace ' +
  "where (w.schema = '' or lower(n.nspname) = lower(w.schema)) and c.relkind in ('r', 'p', 'v', 'm', 'f', 'S')";

/** Whether function `p` is the database's own: outside pg_catalog and information_schema, of no extension (deptype e). */
const userProc = (p: string): string =>
  `${p}.pronamespace not in ('pg_catalog'::pg_catalog.regnamespace, 'information_schema'::pg_catalog.regnamespace) and not exists (select 1 from pg_catalog.pg_depend d ` +
  `where d.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass and d.objid = ${p}.oid and d.deptype = 'e')`;

/**
 * What of the function names in `$1`, operator symbols in `$2` and cast target types in `$3` (text[], unqualified) runs
 * a function of the database's own ({@link userProc}): its body may read any table, and what it returns carries no
 * column's origin. One row, `what` as a reader names it (`leak()`, `operator ##`, `cast to t`), if any.
 * @see https://www.postgresql.org/docs/current/catalog-pg-proc.html
 * @see https://www.postgresql.org/docs/current/catalog-pg-operator.html
 * @see https://www.postgresql.org/docs/current/catalog-pg-cast.html
 */
const USER_CODE_SQL =
  `select p.proname || '()' as what from pg_catalog.pg_proc p where p.proname = any($1::text[]) and ${userProc('p')} union all ` +
  `select 'operator ' || o.oprname from pg_catalog.pg_operator o join pg_catalog.pg_proc p on p.oid = o.oprcode where o.oprname = any($2::text[]) and ${userProc('p')} union all ` +
  `select 'cast to ' || t.typname from pg_catalog.pg_cast c join pg_catalog.pg_type t on t.oid = c.casttarget join pg_catalog.pg_proc p on p.oid = c.castfunc where t.typname = any($3::text[]) and ${userProc('p')} limit 1`;

/**
 * Function names, operator symbols and cast target types (`f:`, `o:`, `c:` before each) that run only PostgreSQL's own
 * functions (pg_catalog, information_schema) or an extension's: none runs a body the database's users wrote.
 */
const SYSTEM_CODE_SQL =
  `select 'f:' || p.proname as name from pg_catalog.pg_proc p group by p.proname having bool_and(not (${userProc('p')})) union all ` +
  `select 'o:' || o.oprname from pg_catalog.pg_operator o join pg_catalog.pg_proc p on p.oid = o.oprcode group by o.oprname having bool_and(not (${userProc('p')})) union all ` +
  `select distinct 'c:' || t.typname from pg_catalog.pg_type t where not exists (select 1 from pg_catalog.pg_cast c join pg_catalog.pg_proc p on p.oid = c.castfunc where c.casttarget = t.oid and ${userProc('p')})`;

/** How long the names of {@link SYSTEM_CODE_SQL} are kept per catalog connection (code made later under one of them is seen after). */
const SYSTEM_CODE_MS = 60_000;

/** The names of {@link SYSTEM_CODE_SQL}, by catalog connection (shared by a connection's sessions). */
const systemCode = new WeakMap<CatalogConnection, { at: number; names: Promise<ReadonlySet<string>>; loaded?: ReadonlySet<string> }>();

/** The names `calls` runs that are not in `system`, by kind, unqualified. */
function notSystem(calls: CodeCalls, system: ReadonlySet<string>): [string[], string[], string[]] {
  const other = (prefix: string, names: readonly string[]) => [...new Set(names.map((n) => n.slice(n.lastIndexOf('.') + 1)))].filter((n) => !system.has(prefix + n));
  return [other('f:', calls.functions), other('o:', calls.operators), other('c:', calls.casts)];
}

/** A relation's columns as {@link RELATIONS_BY_NAME_SQL} lists them (`[attnum, name, generated from]`), and its generated ones. */
function columnsOf(json: string | null | undefined): Pick<RelationCandidate, 'columns' | 'generated'> {
  const list = json ? (JSON.parse(json) as Array<[number, string, string[] | null]>) : [];
  const generated = Object.fromEntries(list.flatMap(([, name, from]) => (from ? [[name, from]] : [])));
  return { columns: list.map(([n, name]) => [n, name]), ...(Object.keys(generated).length > 0 ? { generated } : {}) };
}

/**
 * Kinds of statement that never evaluate a stored value, so that their errors and notices quote
 * none (`drop table if exists nope` says only that it skipped).
 */
const NEVER_EVALUATES: ReadonlySet<StatementKind> = new Set<StatementKind>([
  'drop',
  'truncate',
  'grant',
  'revoke',
  'set-role',
  'set-session-authorization',
  'set',
  'create-function',
  'deallocate',
  'transaction',
  'lock',
  'listen',
  'notify',
]);

/** Kinds of statement that write rows (COPY FROM is a utility statement that evaluates its table's rows). */
const WRITES: ReadonlySet<StatementKind> = new Set<StatementKind>(['insert', 'update', 'delete', 'merge']);

/**
 * How one statement's results are judged (see {@link StatementMasking}), read off its facts: code
 * hoop cannot read is opaque, FETCH and EXECUTE run what they name, a statement with a query has its
 * lineage, anything else is a utility statement; with what it makes or drops.
 */
export function statementMasking(s: StatementFacts): StatementMasking {
  if (s.kinds.includes('do')) return { opaque: 'a DO block', effects: { unknown: true } };
  if (s.kinds.includes('call')) return { opaque: 'a procedure', effects: { unknown: true } };
  if (s.fetch && s.cursorName !== undefined) return { cursor: s.cursorName };
  if (s.executeName !== undefined && s.kinds[0] !== 'explain') return { execute: s.executeName };
  // EXPLAIN ANALYZE runs the prepared statement it names, whose facts are not this text's: code hoop cannot read here.
  if (s.executeName !== undefined) return { opaque: 'an EXPLAIN of a prepared statement', effects: { unknown: true } };
  const effects: NonNullable<Extract<StatementMasking, { lineage: unknown }>['effects']> = {};
  const lineage = s.lineage ?? copyLineage(s);
  const tables = s.tables.filter((t) => !t.endsWith('*') && !t.endsWith('()'));
  // A write evaluates its target's constraints and index expressions over every column of the rows it touches.
  const writes = s.kinds.some((k) => WRITES.has(k)) ? { writes: tables } : {};
  // What a cursor or a prepared statement runs later is judged as if it ran now: its lineage, the code it calls, what it writes.
  const later = lineage ? { lineage, ...callsOf(s), ...writes } : undefined;
  if (s.kinds[0] === 'cursor' && s.cursorName !== undefined && later) effects.declare = { name: s.cursorName, hold: s.cursorHold === true, of: later };
  else if (s.kinds[0] === 'cursor' && s.cursorName !== undefined) effects.close = s.cursorName;
  if (s.kinds[0] === 'prepare' && s.preparedName !== undefined) effects.prepare = { name: s.preparedName, of: later ?? { utility: { tables: s.tables, evaluates: false } } };
  if (s.kinds.includes('deallocate') || (s.preparedName === '*' && s.kinds[0] !== 'prepare')) effects.deallocate = s.preparedName ?? '*';
  if (s.cursorName === '*' && !s.fetch) effects.close = '*';
  if (s.ddl) effects.ddl = s.ddl;
  const withEffects = Object.keys(effects).length > 0 ? { effects } : {};
  // DECLARE and PREPARE make a result later (FETCH, EXECUTE), none now; their own errors are planning errors.
  if (lineage && !effects.declare && !effects.prepare) return { lineage, ...withEffects, ...copyOf(s), ...callsOf(s), ...writes };
  const evaluates = !NEVER_EVALUATES.has(s.kinds[0]!) && !effects.declare && !effects.prepare;
  return { utility: { tables, evaluates, ...(evaluates && s.evaluatesDomain ? { everywhere: true as const } : {}) }, ...withEffects };
}

/** What of `s` may run code the database's users wrote, as the masking verdict carries it. */
function callsOf(s: StatementFacts): { calls?: CodeCalls } {
  const calls = { functions: s.functions, operators: s.operators ?? [], casts: s.casts ?? [] };
  return calls.functions.length + calls.operators.length + calls.casts.length > 0 ? { calls } : {};
}

/**
 * Whether an error says only that a relation the statement names does not exist (`42P01 relation
 * "name" does not exist`): the statement stopped at a name the client wrote, before anything ran.
 * @see https://www.postgresql.org/docs/current/errcodes-appendix.html (42P01 undefined_table)
 */
function namesMissingRelation(statement: ResolvedMasking, fields: ReadonlyMap<string, string>): boolean {
  // The error, or the notice of an IF EXISTS that skipped (`ALTER TABLE IF EXISTS nope …`).
  const code = fields.get('C');
  const said = code === '42P01' ? /^relation "([^"]+)" does not exist$/ : code === '00000' ? /^relation "([^"]+)" does not exist, skipping$/ : undefined;
  const missing = said?.exec(fields.get('M') ?? '')?.[1]?.toLowerCase();
  if (missing === undefined) return false;
  const named = 'lineage' in statement ? statement.lineage.relations.map(sqlName) : 'utility' in statement ? statement.utility.tables : [];
  return named.some((n) => n.toLowerCase() === missing);
}

/**
 * A COPY TO STDOUT's format options, as its masking reads its rows: in an encoding other than
 * UTF-8 (which masking and the detectors read; one hoop cannot split safely a judge refuses too:
 * parser-consistency), every field masked, none placed.
 */
function copyOf(s: StatementFacts): { copy: CopyOptions & { maskAll?: true; wholeTable?: true } } | undefined {
  if (s.kinds[0] !== 'copy-out' || s.copy?.target !== 'client') return undefined;
  const { direction: _d, target: _t, relation, columns, query: _q, encoding, ...options } = s.copy;
  return { copy: encoding !== undefined && !utf8Encoding(encoding) ? { format: 'text', maskAll: true } : { ...options, ...(relation && !columns ? { wholeTable: true as const } : {}) } };
}

/** A source as a message names it. */
function sqlSource(s: ColumnSource): string {
  return `${sqlName(s)}.${s.column}`;
}

/** `COPY table TO`'s fields, without a column list: the columns it writes, each as if listed; undefined when they are not known (then a star: as wide as the table). */
async function copiedBranches(statement: ResolvedMasking, judge: SourceJudge): Promise<LineageSegment[][] | undefined> {
  const only = 'copy' in statement && statement.copy?.wholeTable && statement.lineage.branches[0]?.length === 1 ? statement.lineage.branches[0][0]! : undefined;
  if (!only || !('relation' in only)) return undefined;
  const relation: RelationName = { ...(only.schema ? { schema: only.schema } : {}), relation: only.relation };
  const columns = await judge.copiedColumns(relation);
  return columns && [columns.map((c) => ({ name: c, lineage: { sources: [{ ...relation, column: c }] }, plain: true as const }))];
}

/** `COPY table [(columns)] TO`: its fields are the table's columns (a star over it), or those listed. */
function copyLineage(s: StatementFacts): StatementLineage | undefined {
  const rel = s.copy?.direction === 'to' ? s.copy.relation : undefined;
  if (!rel) return undefined;
  const relation: RelationName = { ...(rel.schema ? { schema: rel.schema } : {}), relation: rel.table };
  const columns: LineageSegment[] = s.copy!.columns ? s.copy!.columns.map((c) => ({ name: c, lineage: { sources: [{ ...relation, column: c }] }, plain: true as const })) : [{ ...relation }];
  return { branches: [columns], reads: [], relations: [relation] };
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
  /** Told of each column the session's results are masked in whole (the session index's `maskedColumns`). */
  masked?: (column: string, strategy: string) => void;
}

/**
 * The masking of one PostgreSQL session: {@link upstream} records what is forwarded to the
 * server, {@link backend} masks what the server sends (a Promise while a catalog lookup runs;
 * the caller must not pass the next chunk before it settles).
 *
 * @see https://www.postgresql.org/docs/current/protocol-flow.html
 */
export class PgSessionMasking implements Stage {
  readonly masker: ResultMasker;
  readonly #maxMessage: number;
  readonly #catalog: CatalogConnection;
  readonly #resolver: PgCatalogResolver;
  readonly #hints = new ShapeCache<StatementHints>(MAX_HINTS, ANALYSIS_CACHE_MAX_TEXT);
  /** What the session's open transaction did to relations. */
  readonly #overlay = new TransactionOverlay();
  /** A statement changed a relation's shape since the catalog's cache was last trusted. */
  #shapesChanged = false;
  readonly #log: Logger | undefined;
  readonly #sessionId: string | undefined;

  constructor(options: PgSessionMaskingOptions) {
    this.#catalog = options.catalog;
    this.#resolver = new PgCatalogResolver(async (sql, params) => this.#catalog.prepared(sql, params.map(integerParam)), {
      describe: async (sql) => this.#catalog.describe(sql),
      sessionPid: () => options.sessionPid,
    });
    const { policy, key } = options.masking;
    this.masker = new ResultMasker({
      rules: policy,
      ...(key !== undefined ? { key } : {}),
      catalog: this.#resolver,
      judge: this.#judge,
      onUnknownRow: () => options.log?.warn('masking.unknown-row', { session: options.sessionId }),
      ...(options.masking.serverRows ? { serverRows: options.masking.serverRows } : {}),
      ...(options.masked ? { masked: options.masked } : {}),
    });
    this.#maxMessage = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE;
    this.#log = options.log;
    this.#sessionId = options.sessionId;
  }

  /**
   * The catalog as the lineage judge asks it: relations by name, a view's columns traced, what a
   * view reads. Names are looked up for each statement that needs them, never kept: a relation
   * another session makes can shadow one of the same name on the search path at any time.
   */
  readonly #sources: SourceCatalog = {
    relations: async (names) => {
      const out = new Map<string, RelationCandidate[]>();
      const rows = await this.#catalog.prepared(RELATIONS_BY_NAME_SQL, [textArrayParam(names.map((n) => n.schema ?? '')), textArrayParam(names.map((n) => n.relation))]);
      for (const r of rows) {
        const inheritsFrom = parseAncestors(r.ancestors);
        const candidate: RelationCandidate = {
          oid: Number(r.oid),
          schema: r.schema ?? '',
          table: r.table ?? '',
          kind: r.kind ?? '',
          ...columnsOf(r.columns),
          ...(inheritsFrom ? { inheritsFrom } : {}),
        };
        const key = relationKey({ ...(r.wanted_schema ? { schema: r.wanted_schema } : {}), relation: r.wanted ?? '' });
        const list = out.get(key) ?? [];
        list.push(candidate);
        out.set(key, list);
      }
      return out;
    },
    viewColumn: (oid, attnum) => this.#resolver.columnName(oid, attnum),
    viewReads: (oid) => this.#resolver.viewReads(oid),
  };

  /** Decides what origins do not (see ColumnJudge), and follows the open transaction. */
  readonly #judge: ColumnJudge = {
    columns: (fields, positions, statement) => this.#columns(fields, positions, statement),
    quotes: (statement, fields) => this.#quotes(statement, fields),
    completed: (statement) => {
      const effects = 'effects' in statement ? statement.effects : undefined;
      if (effects?.ddl) {
        this.#overlay.add(effects.ddl);
        this.#shapesChanged = true;
      }
      if ('opaque' in statement || 'unparsed' in statement) {
        this.#overlay.markOpaque();
        this.#shapesChanged = true;
      }
    },
    ready: (status) => {
      if (status !== 'I') return;
      this.#overlay.clear();
      // What the transaction did is committed (the catalog shows it) or gone: cached shapes are not trusted.
      if (this.#shapesChanged) this.#resolver.clear();
      this.#shapesChanged = false;
    },
  };

  /** The strategies of the columns at `positions` of a result of `statement`. @throws MaskingRefusal when hoop cannot tell */
  #columns(fields: readonly RowDescriptionField[], positions: readonly number[], statement: ResolvedMasking): Array<MaskStrategy | undefined> | Promise<Array<MaskStrategy | undefined>> {
    if ('opaque' in statement) return positions.map(() => REDACT);
    if ('unparsed' in statement) throw this.#refusal(fields, positions[0]!, new CannotTell(statement.unparsed));
    if ('utility' in statement) {
      const unknown = positions.find((i) => fields[i]!.tableOid !== 0);
      if (unknown !== undefined) throw this.#refusal(fields, unknown, new CannotTell('the statement names no relation hoop can place it in'));
      return positions.map(() => undefined);
    }
    const lineage = statement.lineage;
    // Rows of a statement whose SQL returns none (a rule on its table returns them): what they carry is not in the SQL.
    if (lineage.branches.every((b) => b.length === 0)) return positions.map(() => REDACT);
    // A function of the database's own may return any value it reads: what the statement computes is masked whole.
    // Most statements run only the system's operators and functions: known at once, once the names are loaded.
    if (statement.calls && !this.#onlySystem(statement.calls))
      return this.#userCode(statement.calls).then(
        (called) => (called ? positions.map(() => REDACT) : this.#columns(fields, positions, { ...statement, calls: undefined } as ResolvedMasking)),
        (err: unknown) => {
          throw this.#refusal(fields, positions[0]!, err);
        },
      );
    const judge = new SourceJudge(this.masker.rules, this.#sources, this.#overlay, lineage);
    const needsWidth = lineage.branches.some((b) => b.some((seg) => 'relation' in seg));
    const decide = async (): Promise<Array<MaskStrategy | undefined>> => {
      // A write that stores a value computed from a masked column may hand it back under any of its columns.
      if (lineage.assigned && (await judge.masked(lineage.assigned))) return positions.map(() => REDACT);
      const aligned = await alignedLineage((await copiedBranches(statement, judge)) ?? lineage.branches, fields.length, needsWidth ? (r) => judge.width(r) : async () => undefined);
      const out: Array<MaskStrategy | undefined> = [];
      for (const i of positions) {
        const l = aligned[i]!;
        // A column of a relation the catalog does not know: only a lineage that names it can place it.
        if (fields[i]!.tableOid !== 0 && l.sources.length === 0) throw new CannotTell(`its relation (OID ${fields[i]!.tableOid}) is not in the catalog, and the statement does not show which it is`);
        // A masked plain column (COPY's, a subquery's) gets its own column's strategy, as SELECT gives it by origin.
        const masked = (l.sources.length > 0 || l.opaque) && (await judge.masked(l));
        out.push(!masked ? undefined : l.plain ? ((await judge.strategyOf(l.sources[0]!)) ?? REDACT) : REDACT);
      }
      return out;
    };
    // Columns computed from no column at all (`count(*)`, `now()`, a constant) need no lookup.
    if (!needsWidth && !lineage.assigned && lineage.branches.length === 1 && lineage.branches[0]!.every((seg) => 'lineage' in seg) && lineage.branches[0]!.length === fields.length) {
      const segs = lineage.branches[0]!;
      if (positions.every((i) => fields[i]!.tableOid === 0 && 'lineage' in segs[i]! && segs[i]!.lineage.sources.length === 0 && !segs[i]!.lineage.opaque)) return positions.map(() => undefined);
    }
    return decide().catch((err: unknown) => {
      throw this.#refusal(fields, positions[0]!, err);
    });
  }

  /** Whether every name `calls` runs is known now to be the system's (the names loaded, not stale). */
  #onlySystem(calls: CodeCalls): boolean {
    const known = systemCode.get(this.#catalog);
    return known?.loaded !== undefined && realClock.now() - known.at <= SYSTEM_CODE_MS && notSystem(calls, known.loaded).every((names) => names.length === 0);
  }

  /** The first code of the database's own that `calls` runs (see {@link USER_CODE_SQL}), as a reader names it; undefined when none. */
  async #userCode(calls: CodeCalls): Promise<string | undefined> {
    let known = systemCode.get(this.#catalog);
    if (!known || realClock.now() - known.at > SYSTEM_CODE_MS) {
      const loading = this.#catalog.query(SYSTEM_CODE_SQL).then((rows) => new Set(rows.map((r) => r.name ?? '')));
      const entry: { at: number; names: Promise<ReadonlySet<string>>; loaded?: ReadonlySet<string> } = { at: realClock.now(), names: loading };
      known = entry;
      systemCode.set(this.#catalog, entry);
      loading.then((names) => (entry.loaded = names)).catch(() => undefined);
      loading.catch(() => systemCode.delete(this.#catalog));
    }
    const [functions, operators, casts] = notSystem(calls, await known.names);
    if (functions.length + operators.length + casts.length === 0) return undefined;
    const rows = await this.#catalog.prepared(USER_CODE_SQL, [textArrayParam(functions), textArrayParam(operators), textArrayParam(casts)]);
    return rows[0]?.what ?? undefined;
  }

  /** Whether an error or notice of `statement` may quote a masked value. */
  #quotes(statement: ResolvedMasking, fields: ReadonlyMap<string, string>): boolean | Promise<boolean> {
    if ('opaque' in statement || 'unparsed' in statement) return true;
    if (namesMissingRelation(statement, fields)) return false;
    const rules = this.masker.rules;
    if (!rules.hasColumnRules && !rules.hasNameRules) return false;
    // Raised in a function's body, a trigger's too (the server says where: `PL/pgSQL function leak() line 3 at RAISE`): that body may quote what it read.
    if (/\bfunction\b/.test(fields.get('W') ?? '')) return true;
    // A function of the database's own the statement calls may read anything, and PostgreSQL inlines a SQL one (its errors then say no `W`).
    const calls = 'lineage' in statement ? statement.calls : undefined;
    if (calls && !this.#onlySystem(calls))
      return this.#userCode(calls)
        .then((code) => code !== undefined || this.#quotesByReads(statement, fields))
        .catch(() => true);
    return this.#quotesByReads(statement, fields);
  }

  /** {@link #quotes}, by what the statement reads and writes. */
  #quotesByReads(statement: Extract<ResolvedMasking, { lineage: unknown } | { utility: unknown }>, fields: ReadonlyMap<string, string>): boolean | Promise<boolean> {
    const rules = this.masker.rules;
    if ('utility' in statement) {
      // A domain's constraint is checked over every column of that domain, in tables the statement does not name.
      if (statement.utility.everywhere) return true;
      // An integrity error of a statement that evaluates nothing (COMMIT, SET CONSTRAINTS) is a deferred constraint's, over rows the transaction wrote anywhere.
      if (!statement.utility.evaluates) return (fields.get('C') ?? '').startsWith('23');
      if (statement.utility.tables.length === 0) return false;
      const judge = new SourceJudge(rules, this.#sources, this.#overlay, undefined);
      return judge.masked({ sources: statement.utility.tables.map((t) => ({ ...splitName(t), column: '*' })) }).catch(() => true);
    }
    const judge = new SourceJudge(rules, this.#sources, this.#overlay, statement.lineage);
    // A write's error may quote any column of the rows it touches (a CHECK, an index expression over them), not only what it reads.
    if (statement.writes && statement.writes.length > 0) {
      const written = statement.writes.map(splitName);
      return (async () => {
        for (const r of written) if (await judge.rowsMasked(r)) return true;
        return judge.readsMasked();
      })().catch(() => true);
    }
    return judge.readsMasked().catch(() => true);
  }

  /**
   * Why a statement's side channel (the arguments of `pg_notify`, `set_config`, a large object's
   * functions; what a write stores or a query's table keeps) would carry a masked value, told with
   * the catalog: a view's column too, which the judge's names cannot show. Undefined when the
   * statement has no side channel to look up; a lookup that cannot tell counts as carrying one.
   */
  sideChannel(analysis: Analysis): Promise<string | undefined> | undefined {
    if (!analysis.ok || (!this.masker.rules.hasColumnRules && !this.masker.rules.hasNameRules)) return undefined;
    const sent = analysis.statements.filter(
      (s) => s.sideChannel && s.lineage?.sideChannel && (s.lineage.sideChannel.sources.length > 0 || s.lineage.sideChannel.opaque || callsOf(s).calls !== undefined),
    );
    if (sent.length === 0) return undefined;
    return (async () => {
      for (const s of sent) {
        const judge = new SourceJudge(this.masker.rules, this.#sources, this.#overlay, s.lineage);
        const side = s.lineage!.sideChannel!;
        const traced = side.sources.length > 0 || side.opaque ? await judge.masked(side).catch(() => true) : false;
        // Code of the database's own run anywhere in it may hand over any value it reads.
        const calls = callsOf(s).calls;
        const code =
          traced || calls === undefined
            ? undefined
            : await this.#userCode(calls).then(
                (name) => name && `${name}, code of the database's own that may return any value it reads`,
                () => 'code the catalog could not say is the system’s',
              );
        if (!traced && code === undefined) continue;
        const from = code !== undefined ? code : side.sources.length > 0 ? `a masked column (${side.sources.map(sqlSource).join(', ')})` : 'what a function in FROM returns, which may be masked';
        return `a value computed from ${from} cannot go to ${s.sideChannel!.name}: ${s.sideChannel!.where}`;
      }
      return undefined;
    })();
  }

  /** The refusal of a result hoop cannot judge: said to the client (the session ends with it) and logged. */
  #refusal(fields: readonly RowDescriptionField[], position: number, err: unknown): MaskingRefusal {
    if (err instanceof MaskingRefusal) return err;
    const field = fields[position];
    const told = err instanceof CannotTell;
    this.#log?.warn(told ? 'masking.cannot-tell' : 'masking.catalog-failed', { session: this.#sessionId, column: position + 1, error: describeError(err) });
    const what = `hoop cannot tell whether column ${position + 1}${field ? ` ("${field.name}")` : ''} of this result carries a masked value`;
    return new MaskingRefusal(`${what}: ${told ? err.message : `the catalog lookup failed (${describeError(err)})`}; the session is closed and no value was guessed`, {
      sqlstate: told ? SqlState.FEATURE_NOT_SUPPORTED : SqlState.SYSTEM_ERROR,
      hint: told
        ? 'commit the transaction that made the relation, or read it without computing over it; the gateway logs masking.cannot-tell'
        : 'retry the statement; the gateway logs masking.catalog-failed with the cause',
    });
  }

  /** The hints for one Query or Parse SQL text. */
  #hintsFor(sql: string | undefined, analyzed?: Analysis): StatementHints {
    const hit = sql === undefined ? undefined : this.#hints.get(sql);
    if (hit) return hit;
    const analysis = analyzed ?? analyzeSql(sql!);
    if (!analysis.ok) return { statements: [{ unparsed: `hoop cannot parse this SQL (${analysis.error})` }] };
    const hints: StatementHints = { statements: analysis.statements.map(statementMasking) };
    if (sql !== undefined) this.#hints.set(sql, analysis, hints);
    return hints;
  }

  /**
   * Records one message the server receives, in order, exactly as it receives it, so that the
   * answers can be told apart (which statement, portal and formats each belongs to); returns the
   * messages to send before it (a Describe of a portal nobody described), if any.
   *
   * @throws PgProtocolError when too many messages await an answer
   */
  upstream(m: FrontendMessage, analysis?: Analysis): readonly FrontendMessage[] | undefined {
    // A long text was analysed off the relay's thread and is not decoded here (nor cached).
    const hints = m.kind === 'query' || m.kind === 'parse' ? (m.own ? OWN_HINTS : this.#hintsFor(m.long ? undefined : m.sql, analysis)) : undefined;
    return this.masker.frontend(m, hints);
  }

  /**
   * Whether a server message must be read whole: a DataRow or CopyData that nothing can change
   * passes as it arrives (never held, whatever its size); anything else is read whole, up to the limit.
   *
   * @throws PgProtocolError (54000) for a message masking would have to hold that is over the limit
   */
  wants(type: number, length: number): boolean {
    if ((type === DATA_ROW || type === COPY_DATA) && this.masker.passes(type)) return false;
    if (length > this.#maxMessage) {
      const what = type === DATA_ROW ? 'a row' : type === COPY_DATA ? 'a COPY line' : `a message ('${String.fromCharCode(type)}')`;
      throw new PgProtocolError(`the server sent ${what} of ${length - 4} bytes that masking would have to hold; the gateway holds at most ${this.#maxMessage} bytes`, {
        sqlstate: SqlState.PROGRAM_LIMIT_EXCEEDED,
        hint: 'select fewer or smaller values, or ask the gateway operator to raise postgres.maxMaskedMessageBytes',
      });
    }
    return true;
  }

  /**
   * Masks one server message (a Promise while a catalog lookup runs); one the gateway put in the
   * server's place (`bytes` not `msg`'s own: the gate's refusal) is read, as masking follows the
   * answers in order, and handed on as the gateway wrote it, its words never masked or withheld.
   *
   * @throws PgProtocolError on a malformed message
   */
  backend(bytes: Buffer, msg: PgMessage): Buffer | Promise<Buffer> {
    if (bytes === msg.raw) return this.masker.backend(msg);
    const read = this.masker.backend({ type: bytes[0]!, body: bytes.subarray(5), raw: bytes });
    return read instanceof Promise ? read.then(() => bytes) : bytes;
  }

  /** The session ended (the shared catalog connection stays, its caller's). */
  close(): void {
    this.#overlay.clear();
  }
}
