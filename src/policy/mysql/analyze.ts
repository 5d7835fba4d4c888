/**
 * MySQL statements as the policy judges them: the lexer pre-pass (./prepass.ts) splits the text as
 * the server does, each statement is parsed by `sqlparser-rs` (WebAssembly, MySQL dialect), and its
 * facts are read off the tree in the shape PostgreSQL's analysis gives them (src/policy/sql/analyze/
 * facts.ts), so the one `StatementJudge` applies the same rules to both. What cannot be read is
 * `ok: false`: the policy's `unparseable`.
 *
 * Facts read: the statement's kinds (REPLACE is an insert and a delete, ON DUPLICATE KEY UPDATE an
 * insert and an update, SHOW and DESCRIBE are reads, SET GLOBAL changes the server as DDL does),
 * the tables and functions it names, a write without a WHERE that restricts it (none, or one of
 * constants), settings and read-write transactions, and what changes how later text is read
 * (`sql_mode`, or a character set whose bytes can hide a quote).
 *
 * @see https://github.com/apache/datafusion-sqlparser-rs
 * @see https://dev.mysql.com/doc/refman/8.0/en/sql-statements.html
 */
import { ErrorCode, HoopError } from '../../errors.js';
import { init, parse } from '@guanmingchiu/sqlparser-ts';
import type { StatementKind } from '../schema.js';
import type { Analysis, StatementFacts } from '../sql/analyze/facts.js';
import { LruCache } from '../sql/lru.js';
import { sqlShape } from '../sql/shape.js';
import { outputReads, writesLiteralsOnly } from './output-reads.js';
import { prepass, type PrepassOptions } from './prepass.js';
import { mayBeAllRows, sourceNames, writeLevel } from './where.js';
import type { Literals } from '../sql/analyze/where-scope.js';

/** Loads the parser (once per process); analyses wait for it. */
let loaded: Promise<void> | undefined;
let ready = false;
export function loadMysqlParser(): Promise<void> {
  loaded ??= init().then(() => {
    ready = true;
  });
  return loaded;
}

/** The most statements one query may hold: each is parsed on the gateway's event loop. */
const MAX_STATEMENTS = 100;

/** Character sets whose multi-byte characters can end in a backslash (0x5C), hiding a quote from a lexer that reads bytes. */
export const UNSAFE_CHARSETS = new Set(['big5', 'cp932', 'gbk', 'gb18030', 'sjis']);
/**
 * Character sets a session may switch to: the UTF-8 ones, which the gateway reads a query in.
 * Any other (latin1 reads 0xA0 as a space; big5 and the like hide a quote) would make the server
 * read later text another way than the gateway does.
 */
export const SAFE_CHARSETS = new Set(['utf8', 'utf8mb3', 'utf8mb4']);
/**
 * Character sets a session may get its results in: ones whose every ASCII character is its own
 * byte, as the detectors read values. UTF-16 and UTF-32 put NULs between a card's digits; NULL
 * and `binary` send each column in whatever set it is stored in.
 */
export const RESULT_CHARSETS = new Set([...SAFE_CHARSETS, 'latin1', 'ascii']);
/** Settings that change how the server reads later text. */
const LEXING_SETTINGS = new Set(['sql_mode', 'character_set_client', 'names', 'character set', 'charset']);
/** What a session keeps for the gateway to read its SQL as the server does (the message of a refusal). */
const LEXING_NOTE = 'sql_mode must stay as the session began, the character set UTF-8 (utf8mb4), and results in UTF-8 or latin1';
/** Settings whose change turns a read-only transaction read-write. */
const READ_ONLY_SETTINGS = new Set(['tx_read_only', 'transaction_read_only']);

type Node = Record<string, unknown>;

/** How the session reads SQL, and the database an unqualified name is in. */
export interface MysqlReading extends PrepassOptions {
  /** The session's database: an unqualified table is reported as `database.table`. */
  database?: string;
}

/** A statement hoop does not read (it is `unparseable`). */
class Unread extends HoopError {
  constructor(message: string) {
    super(ErrorCode.INTERNAL, message);
  }
}

/** Statement kinds whose facts do not depend on the values of their numeric literals. */
const SHAPE_KINDS = new Set<StatementKind>(['select', 'insert', 'update', 'delete']);
/** Texts longer than this are analysed every time, not kept. */
const MAX_CACHED_TEXT = 8192;

/** How a session lexes, as a cache key. */
const readingKey = (o: MysqlReading): string =>
  `${o.ansiQuotes ? 'A' : '-'}${o.noBackslashEscapes ? 'N' : '-'}${o.singleByte ? 'S' : '-'}${o.multiStatements ? 'M' : '-'}${o.flavor ?? ''}:${o.floorVersion ?? ''}:${o.trustedVersion ?? ''}:${o.database ?? ''}`;

/** What is kept of one reading's analyses: a session sends the same statements again and again. */
interface ReadingCaches {
  /** By text. */
  texts: LruCache<string, Analysis>;
  /** By shape (../sql/shape.ts), for texts that differ only in numeric literals (`WHERE id = 4711`), once one proved the shape. */
  shapes: LruCache<string, Analysis>;
  /** Long texts analysed off the event loop (./long-sql.ts), kept for the questions about them that follow. */
  long: LruCache<string, Analysis>;
}

/** The caches of the readings used last (a gateway's sessions read SQL a few ways: by database and sql_mode). */
const readings = new LruCache<string, ReadingCaches>(8);
/** A frozen reading's key, made once (it cannot change; a session's reading is frozen, and replaced when it changes). */
const frozenKeys = new WeakMap<MysqlReading, string>();

/** The caches of reading `o`: those of every equal reading (a long text analysed off the loop is found by the session that sent it). */
function cachesOf(o: MysqlReading): ReadingCaches {
  let key = frozenKeys.get(o);
  if (key === undefined) {
    key = readingKey(o);
    if (Object.isFrozen(o)) frozenKeys.set(o, key);
  }
  let caches = readings.get(key);
  if (!caches) {
    caches = { texts: new LruCache(1000), shapes: new LruCache(1000), long: new LruCache(8) };
    readings.set(key, caches);
  }
  return caches;
}

/** Keeps `analysis` of long `text` (read off the event loop) for {@link analyzeMysql}. */
export function rememberLong(text: string, o: MysqlReading, analysis: Analysis): void {
  cachesOf(o).long.set(text, analysis);
}

/** See the module documentation; `o` says how the session lexes. */
export function analyzeMysql(text: string, o: MysqlReading = {}): Analysis {
  if (!ready) return { ok: false, parser: 'MySQL', error: 'the MySQL parser is not loaded' };
  const caches = cachesOf(o);
  if (text.length > MAX_CACHED_TEXT) return caches.long.get(text) ?? analyzeUncached(text, o);
  const hit = caches.texts.get(text);
  if (hit) return hit;
  const shape = sqlShape(text);
  const sameShape = shape ? caches.shapes.get(shape.key) : undefined;
  // The facts of a text of the same shape, but the statement's own text (what the masker and reviews read).
  if (sameShape?.ok) return { ...sameShape, statements: sameShape.statements.map((st) => ({ ...st, text })), sameShapeAs: sameShape };
  const analysis = analyzeUncached(text, o);
  caches.texts.set(text, analysis);
  if (shape && provesShape(analysis, text, shape.runs)) caches.shapes.set(shape.key, analysis);
  return analysis;
}

/**
 * Whether `analysis` of `text` proves its shape: one statement, read as written (the pre-pass
 * changed nothing), a plain query or DML that sets nothing, whose numeric literals are exactly the
 * shape's digit runs (none in a string, a comment or a name).
 */
function provesShape(analysis: Analysis, text: string, runs: readonly number[]): boolean {
  if (!analysis.ok || analysis.literalSensitive === true || analysis.statements.length !== 1) return false;
  const [st] = analysis.statements as [StatementFacts];
  if (st.text !== text || st.changesLexing || st.settings.length > 0 || !st.kinds.every((k) => SHAPE_KINDS.has(k))) return false;
  const lits = analysis.numericLiterals;
  return lits.length === runs.length && lits.every((v, i) => v === runs[i]);
}

/**
 * The parser's complaint as a refusal may carry it into a recording, a review and the audit stream: what the grammar
 * expected and where, never the text it found there (a literal there may be a password).
 */
function complaint(err: unknown, statement: string): string {
  const message = err instanceof Error ? (err.message.split('\n')[0] ?? '') : '';
  const expected = /^sql parser error: Expected: ([\w ,()'"=;]{1,300}?), found: /.exec(message)?.[1];
  const where = / at Line: (\d+), Column: (\d+)$/.exec(message);
  const lead = /^\s*([A-Za-z]+)(?:\s+([A-Za-z]+))?/.exec(statement);
  const kind = lead ? ` in a ${[lead[1], lead[2]].filter(Boolean).join(' ').toUpperCase()} statement` : '';
  return `${expected ? `a syntax error (expected ${expected})` : 'a syntax error'}${where ? ` at line ${where[1]}, column ${where[2]}` : ''}${kind}`;
}

function analyzeUncached(text: string, o: MysqlReading): Analysis {
  const read = prepass(text, o);
  if ('refused' in read) return { ok: false, parser: 'MySQL', error: read.refused };
  if (read.statements.length > MAX_STATEMENTS)
    return { ok: false, parser: 'MySQL', error: `${read.statements.length} statements in one query, more than the ${MAX_STATEMENTS} the gateway judges at once` };
  const statements: StatementFacts[] = [];
  const trees: unknown[] = [];
  const literals: Literals = { compared: false };
  for (const s of read.statements) {
    let tree: unknown[];
    try {
      tree = parse(s.text, 'mysql') as unknown[];
    } catch (err) {
      return { ok: false, parser: 'MySQL', error: complaint(err, s.text) };
    }
    if (tree.length !== 1) return { ok: false, parser: 'MySQL', error: `the parser read ${tree.length} statements in one` };
    trees.push(tree[0]);
    try {
      const facts = factsOf(tree[0], s.text, o.database, literals);
      if (s.compound && !facts.opaqueBody) throw new Unread('a compound statement (IF, CASE, a loop, BEGIN … END), whose statements hoop does not judge one by one');
      statements.push(facts);
    } catch (err) {
      if (!(err instanceof Unread)) throw err;
      return { ok: false, parser: 'MySQL', error: err.message };
    }
  }
  // Where the numeric literals are, when the text is one statement read as written (what a shape is proved with).
  const only = read.statements.length === 1 && read.statements[0]!.text === text ? trees[0] : undefined;
  return { ok: true, statements, numericLiterals: only === undefined ? [] : numericLiterals(only, text), ...(literals.compared && { literalSensitive: true }) };
}

/** The facts of one parsed statement; throws {@link Unread} for a statement hoop does not read. */
function factsOf(tree: unknown, text: string, database: string | undefined, literals: Literals): StatementFacts {
  const [kind, body] = typeof tree === 'string' ? [tree, {}] : (Object.entries(tree as Node)[0] as [string, Node]);
  const tables = new Set<string>();
  const functions = new Set<string>();
  collect(tree, tables, functions);
  // An unqualified name is in the session's database, which rules on `db.*` must see.
  const qualified = [...tables].map((t) => (database && !t.includes('.') ? `${database.toLowerCase()}.${t}` : t));
  const facts: StatementFacts = {
    kinds: kindsOf(kind, body),
    tables: qualified,
    functions: [...functions],
    missingWhere: false,
    cteDml: false,
    program: false,
    opaqueBody: false,
    changesLexing: false,
    lexingNote: LEXING_NOTE,
    executes: [],
    settings: [],
    readWrite: false,
    outputs: { aliases: {} },
    refs: [],
    text,
  };
  if (kind === 'Update' || kind === 'Delete') facts.missingWhere = writeReachesAll(kind, body, literals);
  // REPLACE and ON DUPLICATE KEY UPDATE fed by a query over a table rewrite the rows it reads: all of them, unless it restricts them.
  if (kind === 'Insert' && (facts.kinds.includes('update') || facts.kinds.includes('delete'))) facts.missingWhere = sourceReachesAll(body.source as Node | undefined, literals);
  if (kind === 'Query') {
    const reads = outputReads(body, database);
    if (reads) facts.outputReads = reads.all;
    if (reads?.items) facts.outputItems = reads.items;
  }
  if (writesLiteralsOnly(kind, body)) facts.writesLiteralsOnly = true;
  if (kind === 'CreateTable' && facts.writesLiteralsOnly && qualified.length === 1) {
    facts.createsTable = { table: qualified[0]!, columns: ((body.columns as Node[] | undefined) ?? []).map((c) => String((c.name as Node | undefined)?.value ?? '').toLowerCase()) };
  }
  walk(tree, (n, key) => {
    if (key === 'Derived' || (n.with !== undefined && n.with !== null)) facts.derived = true;
    // A row source that is not a named table (JSON_TABLE, a table function): its columns name no table's as theirs either.
    if (key === 'relation' && !('NestedJoin' in n) && !('Table' in n && ((n.Table as Node).args ?? null) === null)) facts.derived = true;
  });
  if (kind === 'Set') {
    setFacts(body, facts);
    // SET @@global.x: the server's configuration, as SET GLOBAL; SET PASSWORD: an account's credential, as GRANT.
    if (facts.settings.some((x) => /^(global|persist|persist_only)\./.test(x.name ?? ''))) facts.kinds = ['alter'];
    if (facts.settings.some((x) => x.name === 'password')) facts.kinds = ['grant'];
  }
  // The database as written: MySQL's names of databases are case-sensitive where the file system is.
  if (kind === 'Use') facts.settings.push({ name: 'database', value: String(((body.Object as Node[] | undefined)?.[0]?.Identifier as Node | undefined)?.value ?? '') });
  if (kind === 'StartTransaction') facts.readWrite = accessModes(body.modes).includes('ReadWrite');
  if (kind === 'CreateFunction' || kind === 'CreateProcedure' || kind === 'CreateTrigger') facts.opaqueBody = true;
  if (kind === 'Commit' || kind === 'Rollback' || kind === 'StartTransaction' || kind === 'Savepoint' || kind === 'ReleaseSavepoint') {
    facts.transaction = kind === 'StartTransaction' ? 'start' : kind === 'ReleaseSavepoint' ? 'release' : kind.toLowerCase();
  }
  return facts;
}

/** The statements hoop reads, by the parser's name, and the kinds each is; any other is {@link Unread}. */
const KINDS: Readonly<Record<string, StatementKind>> = {
  Update: 'update',
  Delete: 'delete',
  Truncate: 'truncate',
  Drop: 'drop',
  DropFunction: 'drop',
  DropProcedure: 'drop',
  DropTrigger: 'drop',
  CreateTable: 'create',
  CreateView: 'create',
  CreateIndex: 'create',
  CreateDatabase: 'create',
  CreateSchema: 'create',
  CreateFunction: 'create-function',
  CreateProcedure: 'create-function',
  CreateTrigger: 'create-function',
  AlterTable: 'alter',
  AlterView: 'alter',
  AlterIndex: 'alter',
  RenameTable: 'alter',
  Grant: 'grant',
  Revoke: 'revoke',
  Call: 'call',
  ExplainTable: 'select',
  LockTables: 'lock',
  UnlockTables: 'lock',
  StartTransaction: 'transaction',
  Commit: 'transaction',
  Rollback: 'transaction',
  Savepoint: 'transaction',
  ReleaseSavepoint: 'transaction',
  Use: 'set',
  ShowTables: 'select',
  ShowColumns: 'select',
  ShowCreate: 'select',
  ShowDatabases: 'select',
  ShowSchemas: 'select',
  ShowVariables: 'select',
  ShowStatus: 'select',
  ShowCollation: 'select',
  ShowFunctions: 'select',
  ShowViews: 'select',
};

/** The kinds of a statement whose tree is `kind: body`. */
function kindsOf(kind: string, body: Node): StatementKind[] {
  switch (kind) {
    case 'Query':
      // WITH … DELETE / UPDATE / INSERT (MySQL 8 runs them): the query's writes are its kinds too.
      return ['select', ...writesIn(body)];
    case 'Insert': {
      const replace = JSON.stringify(body.insert_token ?? '').includes('"REPLACE"');
      const upsert = body.on !== null && body.on !== undefined;
      return ['insert', ...(replace ? (['delete'] as const) : []), ...(upsert ? (['update'] as const) : []), ...writesIn(body.source).filter((k) => k !== 'insert')];
    }
    case 'Explain': {
      // EXPLAIN ANALYZE runs what it explains.
      const [inner, innerBody] = Object.entries((body.statement ?? {}) as Node)[0] ?? ['', {}];
      return body.analyze ? ['explain', ...kindsOf(inner, innerBody as Node)] : ['explain'];
    }
    case 'Set':
      return isGlobal(body) ? ['alter'] : ['set'];
    // MariaDB's CREATE OR REPLACE TABLE drops the table there is, rows and all, then makes the new one.
    case 'CreateTable':
      return body.or_replace === true ? ['create', 'drop'] : ['create'];
    // A column (or partition) dropped discards every row's value there, as a drop does.
    case 'AlterTable':
      return /"(DropColumn|DropPartitions|TruncatePartitions)"/.test(JSON.stringify(body.operations ?? [])) ? ['alter', 'drop'] : ['alter'];
    default: {
      const k = KINDS[kind];
      if (!k) throw new Unread(`a statement hoop does not read (${kind})`);
      return [k];
    }
  }
}

/** Whether an INSERT's source may give it every row of a table: a SELECT from one whose conditions may hold for all its rows (./where.ts), or a query of any other shape but VALUES. */
function sourceReachesAll(source: Node | undefined, literals: Literals): boolean {
  const body = source?.body as Node | undefined;
  if (body === undefined || body.Values !== undefined) return false;
  const select = body.Select as Node | undefined;
  if (select === undefined) return true;
  const from = (select.from as Node[] | undefined) ?? [];
  return from.length > 0 && conditionsMayBeAll(from, select.selection, writeLevel(sourceNames(from)), literals);
}

/** Whether an UPDATE or DELETE may reach every row of its target (./where.ts): its WHERE and inner joins' ON conditions may all hold for every row. */
function writeReachesAll(kind: string, body: Node, literals: Literals): boolean {
  const from = kind === 'Update' ? [body.table as Node] : fromList(body.from);
  const all = sourceNames(from);
  const judged = kind === 'Update' ? updated(body, all) : deleted(body, all);
  return conditionsMayBeAll(from, body.selection, writeLevel(judged, all), literals);
}

/** A DELETE's FROM (or USING) list, however written. */
function fromList(from: unknown): Node[] {
  const [, list] = Object.entries((from ?? {}) as Node)[0] ?? [];
  return Array.isArray(list) ? (list as Node[]) : [];
}

/** The names of the tables a DELETE deletes from: those listed before FROM (`DELETE t FROM t JOIN o`), else the first of FROM. */
function deleted(body: Node, all: readonly string[]): string[] {
  const listed = ((body.tables as unknown[][] | undefined) ?? []).map((parts) => String(((parts.at(-1) as Node)?.Identifier as Node | undefined)?.value ?? '').toLowerCase());
  return listed.length > 0 ? listed : all.slice(0, 1);
}

/** The names of the tables an UPDATE sets: the single one, else those its SET qualifies (all, when one is unqualified). */
function updated(body: Node, all: readonly string[]): string[] {
  if (all.length <= 1) return [...all];
  const qualifiers = ((body.assignments as Node[] | undefined) ?? []).map((a) => {
    const parts = ((a.target as Node | undefined)?.ColumnName as Node[] | undefined) ?? [];
    return parts.length >= 2 ? String((parts.at(-2)?.Identifier as Node | undefined)?.value ?? '').toLowerCase() : undefined;
  });
  return qualifiers.some((q) => q === undefined) ? [...all] : (qualifiers as string[]);
}

/** Whether a WHERE and the ON conditions of inner joins may all hold for every judged row; a join USING columns or NATURAL restricts. */
function conditionsMayBeAll(from: readonly Node[], where: unknown, levels: ReturnType<typeof writeLevel>, literals: Literals): boolean {
  const conditions: unknown[] = where === null || where === undefined ? [] : [where];
  for (const j of from.flatMap((t) => (t.joins as Node[] | undefined) ?? [])) {
    const [op, constraint] = Object.entries((j.join_operator ?? {}) as Node)[0] ?? [];
    if (!INNER_JOINS.has(op ?? '') || constraint === null || typeof constraint !== 'object') continue;
    if (!('On' in constraint)) return false;
    conditions.push((constraint as Node).On);
  }
  return conditions.every((c) => mayBeAllRows(c, levels, literals));
}

/** Joins that keep only the rows their condition matches. */
const INNER_JOINS = new Set(['Join', 'Inner', 'StraightJoin']);

/** The writes anywhere in a tree (a WITH's DML, an INSERT's source). */
function writesIn(tree: unknown): StatementKind[] {
  const out = new Set<StatementKind>();
  walk(tree, (_n, key) => {
    if (key === 'Insert') out.add('insert');
    if (key === 'Update') out.add('update');
    if (key === 'Delete') out.add('delete');
  });
  return [...out];
}

/** SET GLOBAL / PERSIST: the server's configuration, for every session. */
function isGlobal(body: Node): boolean {
  const text = JSON.stringify(body);
  return /"scope":"(Global|Persist|PersistOnly)"/.test(text) || /"value":"@@(global|persist|persist_only)\./i.test(text);
}

/** The settings a SET changes, and whether they turn transactions read-write or change how text is read. */
function setFacts(body: Node, facts: StatementFacts): void {
  const [form, detail] = Object.entries(body)[0] as [string, Node];
  if (form === 'SetNames' || form === 'SetNamesDefault') {
    const charset = String((detail?.charset_name as Node | undefined)?.value ?? 'default').toLowerCase();
    facts.settings.push({ name: 'names', value: charset });
    facts.changesLexing = !SAFE_CHARSETS.has(charset);
    return;
  }
  if (form === 'SetTransaction') {
    facts.readWrite = accessModes(detail.modes).includes('ReadWrite');
    return;
  }
  const assignments = form === 'SingleAssignment' ? [detail] : form === 'MultipleAssignments' ? ((detail.assignments as Node[] | undefined) ?? []) : [];
  if (assignments.length === 0) {
    // A form hoop does not read (SET ROLE, SET TIME ZONE, …): a setting it cannot name.
    facts.settings.push({});
    return;
  }
  for (const a of assignments) {
    const name = settingName(a.variable ?? a.name);
    const value = constantOf((a.values as unknown[] | undefined)?.[0] ?? a.value);
    facts.settings.push({ ...(name !== undefined && { name }), ...(value !== undefined && { value }) });
    // sql_mode, whatever it is set to; a character set the gateway cannot know or that can hide a quote.
    if (name === undefined || name === 'sql_mode') facts.changesLexing = true;
    else if (LEXING_SETTINGS.has(name) && (value === undefined || !SAFE_CHARSETS.has(value))) facts.changesLexing = true;
    // Results in a set whose ASCII is not one byte a character hide every value from the detectors.
    else if (name === 'character_set_results' && (value === undefined || !RESULT_CHARSETS.has(value))) facts.changesLexing = true;
    if (name !== undefined && READ_ONLY_SETTINGS.has(name) && !['1', 'on', 'true'].includes(value ?? '')) facts.readWrite = true;
  }
}

/** A setting's name, lower-case, without `@@`, `session.` or `local.`; undefined for a user variable's `@name` (not a setting) kept as written. */
function settingName(variable: unknown): string | undefined {
  const parts = Array.isArray(variable) ? variable : [variable];
  const raw = parts
    .map((p) => String(((p as Node)?.Identifier as Node | undefined)?.value ?? (p as Node)?.value ?? ''))
    .join('.')
    .toLowerCase();
  if (raw === '') return undefined;
  return raw.replace(/^@@/, '').replace(/^(session|local)\./, '');
}

/** A constant's text, lower-case; undefined for an expression. */
function constantOf(expr: unknown): string | undefined {
  const v = ((expr as Node)?.Value as Node | undefined)?.value as Node | undefined;
  if (!v) {
    const id = (expr as Node)?.Identifier as Node | undefined;
    return typeof id?.value === 'string' ? id.value.toLowerCase() : undefined;
  }
  const [, inner] = Object.entries(v)[0] ?? [];
  const text = Array.isArray(inner) ? inner[0] : inner;
  return typeof text === 'string' || typeof text === 'number' || typeof text === 'boolean' ? String(text).toLowerCase() : undefined;
}

/** Transaction modes' access modes (`ReadOnly`, `ReadWrite`). */
function accessModes(modes: unknown): string[] {
  return Array.isArray(modes) ? modes.map((m) => String((m as Node)?.AccessMode ?? '')) : [];
}

/** Whether a table's name is `DUAL` as written unquoted: MySQL's name for no table (`SELECT 1 FROM DUAL`). */
function isDual(parts: unknown): boolean {
  const only = Array.isArray(parts) && parts.length === 1 ? ((parts[0] as Node)?.Identifier as Node | undefined) : undefined;
  return typeof only?.value === 'string' && only.value.toLowerCase() === 'dual' && (only.quote_style ?? null) === null;
}

/** The tables and functions a tree names, lower-case, `db.table` when qualified. */
function collect(tree: unknown, tables: Set<string>, functions: Set<string>): void {
  const name = (parts: unknown): string | undefined => {
    if (!Array.isArray(parts)) return undefined;
    const words = parts.map((p) => ((p as Node)?.Identifier as Node | undefined)?.value ?? (p as Node)?.value);
    return words.every((w) => typeof w === 'string') ? (words as string[]).join('.').toLowerCase() : undefined;
  };
  const add = (set: Set<string>, n: string | undefined): void => {
    if (n) set.add(n);
  };
  walk(tree, (n, key) => {
    if (n.Table && typeof n.Table === 'object' && !isDual((n.Table as Node).name)) add(tables, name((n.Table as Node).name));
    if ('TableName' in n) add(tables, name(n.TableName));
    if (n.Function && typeof n.Function === 'object') add(functions, name((n.Function as Node).name));
    if (key === 'Call' || key === 'CreateProcedure' || key === 'CreateFunction') add(key === 'Call' ? functions : tables, name(n.name));
    if (key === 'Truncate') for (const t of (n.table_names as Node[] | undefined) ?? []) add(tables, name(t.name));
    if (key === 'Drop') for (const t of (n.names as unknown[] | undefined) ?? []) add(tables, name(t));
    if (key === 'ExplainTable') add(tables, name(n.table_name));
    // RENAME TABLE's both names, SHOW CREATE's object, SHOW COLUMNS' table.
    for (const field of ['old_name', 'new_name', 'obj_name', 'parent_name'] as const) add(tables, name(n[field]));
    // CREATE TABLE … LIKE: the table it copies.
    if (key === 'CreateTable' && n.like) walk(n.like, (m) => add(tables, name(m.name)));
    if (key === 'LockTables') for (const t of (n.tables as Node[] | undefined) ?? []) add(tables, String((t.table as Node | undefined)?.value ?? '').toLowerCase() || undefined);
    if (key.startsWith('Create') || key.startsWith('Alter')) add(tables, name(n.name));
    if (key === 'Grant' || key === 'Revoke') {
      const objects = (n.objects as Node | undefined)?.Tables;
      for (const t of Array.isArray(objects) ? objects : []) add(tables, name(t));
    }
  });
}

/** Calls `visit` on every object node of `tree`, with the key it sits under. */
/** The offsets in `text` of the numeric literals of `tree`, in text order (the parser's spans are 1-based lines and columns). */
function numericLiterals(tree: unknown, text: string): number[] {
  const lineStarts = [0];
  for (let i = text.indexOf('\n'); i !== -1; i = text.indexOf('\n', i + 1)) lineStarts.push(i + 1);
  const offsets: number[] = [];
  walk(tree, (n, key) => {
    const start = ((n.span as Node | undefined)?.start as { line?: number; column?: number } | undefined) ?? {};
    if (key === 'Value' && typeof n.value === 'object' && n.value !== null && 'Number' in n.value && start.line && start.column) {
      offsets.push((lineStarts[start.line - 1] ?? Number.NaN) + start.column - 1);
    }
  });
  return offsets.sort((a, b) => a - b);
}

function walk(tree: unknown, visit: (n: Node, key: string) => void, key = ''): void {
  if (Array.isArray(tree)) {
    for (const item of tree) walk(item, visit, key);
    return;
  }
  if (tree === null || typeof tree !== 'object') return;
  const n = tree as Node;
  visit(n, key);
  for (const [k, v] of Object.entries(n)) if (k !== 'span') walk(v, visit, k);
}
