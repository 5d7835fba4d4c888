/**
 * What a SQL string *is*, according to PostgreSQL's own grammar: the statements it holds, their
 * kinds, the tables they touch and the functions they call.
 *
 * The text is never inspected directly: it goes through libpg-query (the PostgreSQL 17 parser
 * compiled to WebAssembly) and everything here is read off the raw parse tree, so comments,
 * case, whitespace, quoting, unicode escapes and dollar quoting are handled exactly as the
 * server handles them. What a raw parse tree cannot say is said in the facts instead of guessed:
 * a DO block or a function body is opaque (`opaqueBody`), the prepared statement an EXECUTE runs
 * is only named (`executeName`), a view is just a table name, and a function's side effects are
 * unknown (a `SELECT f()` of a volatile function may write; read-only access therefore also
 * opens the upstream session read-only).
 *
 * @see https://www.postgresql.org/docs/17/sql-commands.html
 * @see https://github.com/pganalyze/libpg_query
 */
import { loadModule, parseSync } from 'libpg-query';
import { BARE_FIELDS } from './node-fields.js';
import { LruCache } from './lru.js';
import { lexingSafeEncoding, lexingSafeSetting } from './lexing.js';
import { type TaggedOf, treeKey, type WriteTag } from './analyze/ast.js';
import { writeMayReachAllRows } from './analyze/missing-where.js';
import { LOCK_MODES, type Analysis, type CopyFacts, type LockMode, type StatementFacts, type StatementKind } from './analyze/facts.js';

export type { Analysis, CopyFacts, LockMode, OutputFacts, StatementFacts, StatementKind } from './analyze/facts.js';
export { LOCK_MODES } from './analyze/facts.js';

let loaded: Promise<void> | undefined;
let ready = false;

/**
 * Loads the PostgreSQL parser (WebAssembly). Call once at start-up; {@link analyzeSql} is
 * synchronous afterwards. Safe to call again.
 * @see https://github.com/constructive-io/libpg-query-node
 */
export async function loadSqlParser(): Promise<void> {
  loaded ??= loadModule().then(() => {
    ready = true;
  });
  await loaded;
}

/**
 * SQL texts longer than this are analysed every time rather than cached (1000 cached texts of
 * this size at most hold about 8 MB).
 * @see https://www.postgresql.org/docs/17/protocol-flow.html#PROTOCOL-FLOW-SIMPLE-QUERY
 */
export const ANALYSIS_CACHE_MAX_TEXT = 8192;
const analysisCache = new LruCache<string, Analysis>(1000);

/**
 * Analyses a SQL string (one Query message, one Parse, ...) on the real PostgreSQL parse tree.
 * Results for texts up to {@link ANALYSIS_CACHE_MAX_TEXT} characters are cached (LRU, 1000).
 * Throws only if {@link loadSqlParser} was not awaited first.
 * @see https://www.postgresql.org/docs/17/protocol-flow.html#PROTOCOL-FLOW-MULTI-STATEMENT
 */
export function analyzeSql(sql: string): Analysis {
  if (!ready) throw new Error('analyzeSql: await loadSqlParser() first');
  const cacheable = sql.length <= ANALYSIS_CACHE_MAX_TEXT;
  if (cacheable) {
    const hit = analysisCache.get(sql);
    if (hit) return hit;
  }
  const result = deepFreeze(analyzeUncached(sql));
  if (cacheable) analysisCache.set(sql, result);
  return result;
}

interface RawStmt {
  stmt?: Record<string, unknown>;
  stmt_location?: number;
  stmt_len?: number;
}

function analyzeUncached(sql: string): Analysis {
  if (sql.trim() === '') return { ok: true, statements: [], numericLiterals: [] };
  let tree: { stmts?: RawStmt[] };
  try {
    tree = parseSync(sql) as { stmts?: RawStmt[] };
  } catch (err) {
    return { ok: false, error: parseErrorText(err) };
  }
  const raws = tree.stmts ?? [];
  const statements: StatementFacts[] = [];
  const numericLiterals: number[] = [];
  let literalSensitive = false;
  try {
    for (const raw of raws) {
      const node = raw.stmt;
      if (!node) continue;
      const [type, body] = unwrap(node);
      if (!type) return { ok: false, error: 'unrecognised parse tree' };
      const acc = new Acc(sliceStatement(sql, raw));
      statement(type, body, acc, { scope: EMPTY_SCOPE, runs: true, inCte: false });
      const facts = acc.facts();
      const columns = type === 'SelectStmt' ? resultColumns(body) : undefined;
      if (columns) facts.outputs.columns = columns;
      statements.push(facts);
      numericLiterals.push(...acc.numericLiterals);
      if (acc.literalSensitive) literalSensitive = true;
    }
  } catch (err) {
    if (err instanceof RangeError) return { ok: false, error: 'statement nested too deeply to analyse' };
    throw err;
  }
  numericLiterals.sort((a, b) => a - b);
  return literalSensitive ? { ok: true, statements, numericLiterals, literalSensitive } : { ok: true, statements, numericLiterals };
}

function parseErrorText(err: unknown): string {
  if (err && typeof err === 'object') {
    const e = err as { message?: unknown; sqlDetails?: { cursorPosition?: number } };
    const msg = typeof e.message === 'string' ? e.message : 'syntax error';
    const pos = e.sqlDetails?.cursorPosition;
    return typeof pos === 'number' && pos >= 0 ? `${msg} (at character ${pos + 1})` : msg;
  }
  return 'syntax error';
}

function sliceStatement(sql: string, raw: RawStmt): string {
  const start = raw.stmt_location ?? 0;
  const len = raw.stmt_len ?? 0;
  // Locations are byte offsets into the UTF-8 text.
  if (/^[\x00-\x7f]*$/.test(sql)) return (len > 0 ? sql.slice(start, start + len) : sql.slice(start)).trim();
  const bytes = Buffer.from(sql, 'utf8');
  return (len > 0 ? bytes.subarray(start, start + len) : bytes.subarray(start)).toString('utf8').trim();
}

type Body = Record<string, unknown>;
type Scope = ReadonlySet<string>;
const EMPTY_SCOPE: Scope = new Set();

interface Ctx {
  /** CTE names visible here (exact, as the parser normalised them). */
  scope: Scope;
  /** Whether what is walked here runs now (not: a view body, plain EXPLAIN's target, ...). */
  runs: boolean;
  /** Inside the query of a common table expression. */
  inCte: boolean;
}

class Acc {
  /** The statement's own text. */
  readonly source: string;
  kinds: StatementKind[] = [];
  tables = new Set<string>();
  functions = new Set<string>();
  missingWhere = false;
  cteDml = false;
  program = false;
  opaqueBody = false;
  changesLexing = false;
  readWrite = false;
  settings: Array<{ name?: string; value?: string }> = [];
  lockMode: LockMode | undefined;
  serverCommand: 'checkpoint' | 'load' | undefined;
  numericLiterals: number[] = [];
  /** A fact was decided by comparing numeric constants' values (see `Analysis.literalSensitive`). */
  literalSensitive = false;
  preparedName: string | undefined;
  executeName: string | undefined;
  executes: string[] = [];
  copy: CopyFacts | undefined;
  cursorName: string | undefined;
  fetch = false;
  transaction: string | undefined;
  setting: string | undefined;
  derived = new Set<string>();
  bare = new Set<string>();
  refs = new Set<string>();
  sideChannel: { name: string; refs: Set<string> } | undefined;
  aliases = new Map<string, string>();
  opaqueOutputs = false;
  subqueries = new Set<string>();

  constructor(source: string) {
    this.source = source;
  }

  kind(k: StatementKind, ctx: Ctx): void {
    if (ctx.runs && !this.kinds.includes(k)) this.kinds.push(k);
  }

  facts(): StatementFacts {
    const text = this.source;
    const f: StatementFacts = {
      kinds: this.kinds.length > 0 ? this.kinds : ['other'],
      tables: [...this.tables],
      functions: [...this.functions],
      missingWhere: this.missingWhere,
      cteDml: this.cteDml,
      program: this.program,
      opaqueBody: this.opaqueBody,
      changesLexing: this.changesLexing,
      settings: this.settings,
      readWrite: this.readWrite,
      outputs: { derived: [...this.derived], bare: [...this.bare], aliases: Object.fromEntries(this.aliases), opaque: this.opaqueOutputs, subqueries: [...this.subqueries] },
      executes: this.executes,
      refs: [...this.refs],
      text,
    };
    if (this.sideChannel !== undefined) f.sideChannel = { name: this.sideChannel.name, refs: [...this.sideChannel.refs] };
    if (this.copy !== undefined) f.copy = this.copy;
    if (this.preparedName !== undefined) f.preparedName = this.preparedName;
    if (this.executeName !== undefined) f.executeName = this.executeName;
    if (this.cursorName !== undefined) f.cursorName = this.cursorName;
    if (this.transaction !== undefined) f.transaction = this.transaction;
    if (this.fetch) f.fetch = true;
    if (this.setting !== undefined) f.setting = this.setting;
    if (this.lockMode !== undefined) f.lockMode = this.lockMode;
    if (this.serverCommand !== undefined) f.serverCommand = this.serverCommand;
    return f;
  }
}

function unwrap(node: unknown): [string | undefined, Body] {
  if (node && typeof node === 'object' && !Array.isArray(node)) {
    const keys = Object.keys(node);
    if (keys.length === 1 && /^[A-Z]/.test(keys[0]!)) {
      const inner = (node as Body)[keys[0]!];
      return [keys[0], inner && typeof inner === 'object' ? (inner as Body) : {}];
    }
  }
  return [undefined, {}];
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

function list(v: unknown): unknown[] {
  return Array.isArray(v) ? v : [];
}

/** The `sval`s of a list of String nodes (a qualified name). */
function names(v: unknown): string[] {
  const out: string[] = [];
  for (const item of list(v)) {
    const [t, b] = unwrap(item);
    if (t === 'String' && typeof b.sval === 'string') out.push(b.sval);
  }
  return out;
}

const DML: Readonly<Record<string, StatementKind>> = {
  InsertStmt: 'insert',
  UpdateStmt: 'update',
  DeleteStmt: 'delete',
  MergeStmt: 'merge',
};

const TABLE_OBJECTS = new Set(['OBJECT_TABLE', 'OBJECT_VIEW', 'OBJECT_MATVIEW', 'OBJECT_FOREIGN_TABLE', 'OBJECT_SEQUENCE']);

const FIXED_KINDS: Readonly<Record<string, StatementKind>> = {
  TruncateStmt: 'truncate',
  TransactionStmt: 'transaction',
  LockStmt: 'lock',
  ListenStmt: 'listen',
  UnlistenStmt: 'listen',
  NotifyStmt: 'notify',
  VacuumStmt: 'vacuum',
  FetchStmt: 'cursor',
  ClosePortalStmt: 'cursor',
  DeallocateStmt: 'deallocate',
  ConstraintsSetStmt: 'set',
  VariableShowStmt: 'other',
  CheckPointStmt: 'other',
  LoadStmt: 'other',
  DiscardStmt: 'other',
  IndexStmt: 'create',
  RuleStmt: 'create',
  DefineStmt: 'create',
  CompositeTypeStmt: 'create',
  ImportForeignSchemaStmt: 'create',
  CreatedbStmt: 'create',
  RenameStmt: 'alter',
  CommentStmt: 'alter',
  SecLabelStmt: 'alter',
  ClusterStmt: 'alter',
  ReindexStmt: 'alter',
  RefreshMatViewStmt: 'alter',
  ReassignOwnedStmt: 'alter',
  AlterDefaultPrivilegesStmt: 'alter',
  DropOwnedStmt: 'drop',
  DropdbStmt: 'drop',
};

function kindOfUtility(type: string): StatementKind {
  const fixed = FIXED_KINDS[type];
  if (fixed) return fixed;
  if (type.startsWith('Create')) return 'create';
  if (type.startsWith('Alter')) return 'alter';
  if (type.startsWith('Drop')) return 'drop';
  return 'other';
}

function tableName(rv: Body): string | undefined {
  const rel = str(rv.relname);
  if (rel === undefined) return undefined;
  const schema = str(rv.schemaname);
  return (schema ? `${schema}.${rel}` : rel).toLowerCase();
}

function addTable(acc: Acc, name: string | undefined): void {
  if (name !== undefined) acc.tables.add(name);
}

function addRangeVar(rv: Body, acc: Acc, ctx: Ctx): void {
  const rel = str(rv.relname);
  if (rel === undefined) return;
  if (!rv.schemaname && !rv.catalogname && ctx.scope.has(rel)) return;
  const name = tableName(rv)!;
  acc.tables.add(name);
  addAlias(rv, name, acc);
}

function addAlias(rv: Body, table: string, acc: Acc): void {
  const alias = rv.alias as Body | undefined;
  const name = str(alias?.aliasname);
  if (name === undefined) return;
  // `t AS x(a, b)` renames t's columns: what is read through x is named as a subquery's outputs are.
  if (list(alias!.colnames).length > 0) acc.subqueries.add(name.toLowerCase());
  else acc.aliases.set(name.toLowerCase(), table);
}

/** A ColumnRef as written, lower-case: `a`, `a.b`, `a.*`, `*`. */
function columnRefText(ref: Body): string {
  return list(ref.fields)
    .map((f) => {
      const [t, b] = unwrap(f);
      return t === 'A_Star' ? '*' : (str(b.sval) ?? '?').toLowerCase();
    })
    .join('.');
}

/** Every ColumnRef under a node (subqueries included). */
function columnRefsIn(node: unknown, into: Set<string>): void {
  if (Array.isArray(node)) {
    for (const item of node) columnRefsIn(item, into);
    return;
  }
  if (!node || typeof node !== 'object') return;
  const [type, body] = unwrap(node);
  if (type === 'ColumnRef') {
    into.add(columnRefText(body));
    return;
  }
  for (const value of Object.values(type ? body : (node as Body))) if (value && typeof value === 'object') columnRefsIn(value, into);
}

/** {@link OutputFacts.columns} of a top-level SELECT; undefined when its columns cannot be told by position. */
function resultColumns(select: Body): Array<readonly string[] | null> | undefined {
  if ((typeof select.op === 'string' && select.op !== 'SETOP_NONE') || select.valuesLists || select.intoClause) return undefined;
  const columns: Array<readonly string[] | null> = [];
  for (const target of list(select.targetList)) {
    const [, res] = unwrap(target);
    const [type, val] = unwrap(res.val);
    if (type === 'ColumnRef') {
      if (columnRefText(val).endsWith('*')) return undefined;
      columns.push(null);
      continue;
    }
    const refs = new Set<string>();
    columnRefsIn(res.val, refs);
    columns.push([...refs]);
  }
  return columns;
}

/** Records what a SELECT list or RETURNING list is computed from ({@link OutputFacts}). */
function addOutputs(targets: unknown, acc: Acc): void {
  for (const target of list(targets)) {
    const [, res] = unwrap(target);
    const [type, val] = unwrap(res.val);
    if (type === 'ColumnRef') {
      const text = columnRefText(val);
      if (!text.includes('.') && text !== '*') acc.bare.add(text);
      continue;
    }
    columnRefsIn(res.val, acc.derived);
  }
}

/** The COPY facts of a CopyStmt whose statement text is `source`. @see https://www.postgresql.org/docs/17/sql-copy.html */
function copyFacts(body: Body, source: string): CopyFacts {
  const facts: CopyFacts = {
    direction: body.is_from === true ? 'from' : 'to',
    target: body.is_program === true ? 'program' : typeof body.filename === 'string' ? 'file' : 'client',
    format: 'text',
  };
  for (const o of list(body.options)) {
    const [t, d] = unwrap(o);
    if (t !== 'DefElem') continue;
    const [at, ab] = unwrap(d.arg);
    const text = at === 'String' ? str(ab.sval) : undefined;
    switch (str(d.defname)) {
      case 'format':
        if (text === 'csv' || text === 'binary' || text === 'text') facts.format = text;
        break;
      case 'delimiter':
        if (text !== undefined) facts.delimiter = text;
        break;
      case 'quote':
        if (text !== undefined) facts.quote = text;
        break;
      case 'escape':
        if (text !== undefined) facts.escape = text;
        break;
      case 'null':
        if (text !== undefined) facts.null = text;
        break;
      case 'encoding':
        if (text !== undefined) facts.encoding = text;
        break;
      case 'header':
        facts.header = d.arg === undefined || (at === 'String' ? /^(true|on|1|match)$/i.test(text ?? '') : defElemTrue(d.arg));
        break;
      default:
        break;
    }
  }
  const rel = body.relation as Body | undefined;
  const table = str(rel?.relname);
  if (table !== undefined) facts.relation = { table, ...(str(rel!.schemaname) ? { schema: str(rel!.schemaname)! } : {}) };
  if (body.attlist) facts.columns = names(body.attlist);
  if (body.query) {
    const query = copyQueryText(source, body.query);
    if (query !== undefined) facts.query = query;
  }
  return facts;
}

/**
 * The text of the query of `COPY (query) ...`: the span inside the first parenthesis of the
 * statement (found with the lexing rules of standard_conforming_strings on: quoted strings,
 * quoted names, dollar quotes and comments are skipped), accepted only when it parses to the
 * COPY's own query node.
 * @see https://www.postgresql.org/docs/17/sql-syntax-lexical.html
 */
function copyQueryText(source: string, query: unknown): string | undefined {
  const open = scanFor(source, 0, '(');
  if (open < 0) return undefined;
  let depth = 0;
  for (let i = open; i >= 0 && i < source.length; i = scanFor(source, i + 1, '()')) {
    depth += source[i] === '(' ? 1 : -1;
    if (depth > 0) continue;
    const text = source.slice(open + 1, i);
    try {
      const stmts = (parseSync(text) as { stmts?: Array<{ stmt?: unknown }> }).stmts ?? [];
      return stmts.length === 1 && treeKey(stmts[0]!.stmt) === treeKey(query) ? text : undefined;
    } catch {
      return undefined;
    }
  }
  return undefined;
}

/**
 * The index of the next of `chars` at or after `from` that is not inside a quoted string, a
 * quoted name, a dollar-quoted string or a comment; -1 when there is none.
 * @see https://www.postgresql.org/docs/17/sql-syntax-lexical.html
 */
const DOLLAR_TAG = /\$([A-Za-z_\u0080-\uffff][\w\u0080-\uffff]*)?\$/y;

function scanFor(s: string, from: number, chars: string): number {
  for (let i = from; i < s.length; i++) {
    const c = s[i]!;
    if (chars.includes(c)) return i;
    if (c === "'" || c === '"') {
      const escapes = c === "'" && /[eE]/.test(s[i - 1] ?? '') && !/[\w$]/.test(s[i - 2] ?? '');
      for (i++; i < s.length; i++) {
        if (escapes && s[i] === '\\') i++;
        else if (s[i] === c) {
          if (s[i + 1] === c) i++;
          else break;
        }
      }
    } else if (c === '-' && s[i + 1] === '-') {
      while (i < s.length && s[i] !== '\n') i++;
    } else if (c === '/' && s[i + 1] === '*') {
      let depth = 1;
      for (i += 2; i < s.length && depth > 0; i++) {
        if (s[i] === '/' && s[i + 1] === '*') {
          depth++;
          i++;
        } else if (s[i] === '*' && s[i + 1] === '/') {
          depth--;
          i++;
        }
      }
      i--;
    } else if (c === '$' && !/[\w$]/.test(s[i - 1] ?? '')) {
      DOLLAR_TAG.lastIndex = i;
      const tag = DOLLAR_TAG.exec(s);
      if (tag) {
        const end = s.indexOf(tag[0], i + tag[0].length);
        if (end < 0) return -1;
        i = end + tag[0].length - 1;
      }
    }
  }
  return -1;
}

function explainAnalyzes(options: unknown): boolean {
  let analyze = false;
  for (const opt of list(options)) {
    const [t, b] = unwrap(opt);
    if (t !== 'DefElem' || str(b.defname)?.toLowerCase() !== 'analyze') continue;
    analyze = defElemTrue(b.arg);
  }
  return analyze;
}

/** A DefElem's boolean value as PostgreSQL's defGetBoolean reads it (absent = true). */
function defElemTrue(arg: unknown): boolean {
  if (arg === undefined) return true;
  let [t, b] = unwrap(arg);
  if (t === 'A_Const') {
    // An A_Const holds one of ival / boolval / sval (protobuf leaves a zero out: `ival: {}` is 0).
    if (b.ival !== undefined) return ((b.ival as Body).ival ?? 0) !== 0;
    if (b.boolval !== undefined) return (b.boolval as Body).boolval === true;
    [t, b] = ['String', { sval: (b.sval as Body | undefined)?.sval }];
  }
  if (t === 'Integer') return (b.ival ?? 0) !== 0;
  if (t === 'Boolean') return b.boolval === true;
  if (t === 'String') return !['false', 'off', 'no', '0', 'of', 'fa', 'f', 'n'].includes(String(b.sval).toLowerCase());
  return true;
}

/**
 * Handles a statement whose own kind is reported (top level, or wrapped by EXPLAIN ANALYZE,
 * PREPARE, COPY (...), DECLARE CURSOR, CREATE TABLE AS).
 */
function statement(type: string, body: Body, acc: Acc, ctx: Ctx): void {
  switch (type) {
    case 'SelectStmt':
      if (body.intoClause) acc.kind('create', ctx);
      acc.kind('select', ctx);
      query(type, body, acc, ctx);
      return;
    case 'InsertStmt':
    case 'UpdateStmt':
    case 'DeleteStmt':
    case 'MergeStmt':
      dml(type, body, acc, ctx);
      return;
    case 'ExplainStmt': {
      acc.kind('explain', ctx);
      const [t, b] = unwrap(body.query);
      if (t) statement(t, b, acc, { ...ctx, runs: ctx.runs && explainAnalyzes(body.options) });
      return;
    }
    case 'PrepareStmt': {
      acc.kind('prepare', ctx);
      acc.preparedName ??= str(body.name);
      const [t, b] = unwrap(body.query);
      if (t) statement(t, b, acc, ctx);
      return;
    }
    case 'ExecuteStmt':
      acc.kind('execute', ctx);
      if (ctx.runs) acc.executeName ??= str(body.name);
      if (str(body.name) !== undefined) acc.executes.push(str(body.name)!);
      walkFields(type, body, acc, ctx, ['name']);
      return;
    case 'DeallocateStmt':
      acc.kind('deallocate', ctx);
      acc.preparedName ??= body.isall ? '*' : str(body.name);
      return;
    case 'CopyStmt': {
      acc.kind(body.is_from === true ? 'copy-in' : 'copy-out', ctx);
      if (body.is_program === true) acc.program = true;
      const copy = copyFacts(body, acc.source);
      acc.copy ??= copy;
      // COPY data in an encoding whose characters may hold a backslash or delimiter byte is split
      // differently by hoop (masking, recording) and the client: as a client_encoding would be.
      if (copy.encoding !== undefined && !lexingSafeEncoding(copy.encoding)) acc.changesLexing = true;
      if (body.relation) addRangeVar(body.relation as Body, acc, ctx);
      const [t, b] = unwrap(body.query);
      if (t) statement(t, b, acc, ctx);
      walkFields(type, body, acc, ctx, ['relation', 'query']);
      return;
    }
    case 'DeclareCursorStmt': {
      acc.kind('cursor', ctx);
      acc.cursorName ??= str(body.portalname);
      const [t, b] = unwrap(body.query);
      if (t) statement(t, b, acc, ctx);
      return;
    }
    case 'FetchStmt':
    case 'ClosePortalStmt':
      acc.kind('cursor', ctx);
      acc.cursorName ??= str(body.portalname) ?? '*';
      if (type === 'FetchStmt') acc.fetch = true;
      return;
    case 'CreateTableAsStmt': {
      acc.kind('create', ctx);
      const into = body.into as Body | undefined;
      if (into?.rel) addTable(acc, tableName(into.rel as Body));
      const [t, b] = unwrap(body.query);
      if (t) statement(t, b, acc, ctx);
      walkFields(type, body, acc, ctx, ['into', 'query']);
      return;
    }
    case 'ViewStmt':
      acc.kind('create', ctx);
      walkFields(type, body, acc, { ...ctx, runs: false });
      if (readsPgSettings(body.query)) settingChanged(undefined, undefined, acc, ctx);
      return;
    case 'RuleStmt':
      acc.kind('create', ctx);
      walkFields(type, body, acc, ctx);
      // An ON SELECT rule makes its table a view: one over pg_settings passes updates on to it.
      if (body.event === 'CMD_SELECT' && readsPgSettings(body.actions)) settingChanged(undefined, undefined, acc, ctx);
      return;
    case 'DoStmt':
      acc.kind('do', ctx);
      acc.opaqueBody = true;
      return;
    case 'CreateFunctionStmt':
      acc.kind('create-function', ctx);
      if (!body.sql_body) acc.opaqueBody = true;
      functionSettings(body.options, acc, ctx);
      walkFields(type, body, acc, { ...ctx, runs: false }, ['funcname']);
      return;
    case 'AlterFunctionStmt':
      acc.kind('alter', ctx);
      functionSettings(body.actions, acc, ctx);
      walkFields(type, body, acc, ctx);
      return;
    case 'LockStmt':
      acc.kind('lock', ctx);
      acc.lockMode ??= LOCK_MODES[Number(body.mode) - 1] ?? 'ACCESS EXCLUSIVE';
      walkFields(type, body, acc, ctx);
      return;
    case 'CheckPointStmt':
    case 'LoadStmt':
      acc.kind('other', ctx);
      acc.serverCommand ??= type === 'LoadStmt' ? 'load' : 'checkpoint';
      return;
    case 'CallStmt':
      acc.kind('call', ctx);
      walkFields(type, body, acc, ctx);
      return;
    case 'VariableSetStmt': {
      const name = str(body.name)?.toLowerCase();
      if (name === 'role') acc.kind('set-role', ctx);
      else if (name === 'session_authorization') acc.kind('set-session-authorization', ctx);
      else if (name === 'transaction') acc.kind('transaction', ctx);
      else acc.kind('set', ctx);
      acc.setting ??= name ?? (body.kind === 'VAR_RESET_ALL' ? 'all' : undefined);
      if (body.kind === 'VAR_SET_MULTI') transactionOptions(body.args, acc, ctx);
      else if (name !== undefined) {
        const args = list(body.args);
        // SET x = a, b (a list, as for search_path) is one value; only its text matters for single values.
        const value = body.kind === 'VAR_SET_VALUE' ? (args.length === 1 ? settingText(args[0]) : args.map(settingText).join(',')) : body.kind === 'VAR_SET_CURRENT' ? undefined : 'default';
        settingChanged(name, value, acc, ctx);
      }
      walkFields(type, body, acc, ctx);
      return;
    }
    case 'TransactionStmt': {
      acc.kind('transaction', ctx);
      if (typeof body.kind === 'string') acc.transaction ??= body.kind.replace(/^TRANS_STMT_/, '').toLowerCase();
      if (body.kind === 'TRANS_STMT_BEGIN' || body.kind === 'TRANS_STMT_START') transactionOptions(body.options, acc, ctx);
      return;
    }
    case 'VariableShowStmt':
      acc.kind('other', ctx);
      acc.setting ??= str(body.name)?.toLowerCase();
      return;
    case 'DiscardStmt':
      acc.kind('other', ctx);
      // DISCARD ALL includes SET SESSION AUTHORIZATION DEFAULT, DEALLOCATE ALL and CLOSE ALL.
      if (body.target === 'DISCARD_ALL') {
        acc.kind('set-session-authorization', ctx);
        acc.preparedName ??= '*';
        acc.cursorName ??= '*';
      }
      return;
    case 'GrantStmt':
      acc.kind(body.is_grant === true ? 'grant' : 'revoke', ctx);
      if (body.targtype === 'ACL_TARGET_ALL_IN_SCHEMA' && TABLE_OBJECTS.has(String(body.objtype))) {
        for (const schema of names(body.objects)) acc.tables.add(`${schema}.*`.toLowerCase());
        return;
      }
      walkFields(type, body, acc, ctx);
      return;
    case 'GrantRoleStmt':
      acc.kind(body.is_grant === true ? 'grant' : 'revoke', ctx);
      return;
    case 'AlterDefaultPrivilegesStmt': {
      acc.kind('alter', ctx);
      const action = body.action as Body | undefined;
      acc.kind(action?.is_grant === true ? 'grant' : 'revoke', ctx);
      return;
    }
    case 'DropStmt':
      acc.kind('drop', ctx);
      if (TABLE_OBJECTS.has(String(body.removeType))) {
        for (const obj of list(body.objects)) {
          const [t, b] = unwrap(obj);
          if (t === 'List') {
            const parts = names(b.items);
            if (parts.length > 0) acc.tables.add(parts.slice(-2).join('.').toLowerCase());
          }
        }
      }
      return;
    case 'CommentStmt':
    case 'SecLabelStmt': {
      acc.kind('alter', ctx);
      const [t, b] = unwrap(body.object);
      if (TABLE_OBJECTS.has(String(body.objtype)) && t === 'List') {
        const parts = names(b.items);
        if (parts.length > 0) acc.tables.add(parts.slice(-2).join('.').toLowerCase());
      }
      return;
    }
    default:
      acc.kind(kindOfUtility(type), ctx);
      walkFields(type, body, acc, ctx);
  }
}

/** INSERT / UPDATE / DELETE / MERGE: own kind, target table, missing WHERE, MERGE actions. */
function dml(type: string, body: Body, acc: Acc, ctx: Ctx): void {
  acc.kind(DML[type]!, ctx);
  // pg_settings' UPDATE rule calls set_config: a write to it sets a setting hoop cannot name.
  if (isPgSettings(body.relation as Body | undefined)) settingChanged(undefined, undefined, acc, ctx);
  if (type === 'MergeStmt') {
    for (const clause of list(body.mergeWhenClauses)) {
      const [, b] = unwrap(clause);
      if (b.commandType === 'CMD_UPDATE') acc.kind('update', ctx);
      else if (b.commandType === 'CMD_DELETE') acc.kind('delete', ctx);
      else if (b.commandType === 'CMD_INSERT') acc.kind('insert', ctx);
    }
  } else if (type === 'InsertStmt' && (body.onConflictClause as Body | undefined)?.action === 'ONCONFLICT_UPDATE') acc.kind('update', ctx);
  const literals = { compared: false };
  // The write as the typed parse tree has it (`type` is its node type).
  const touchesAll = writeMayReachAllRows([type, body] as TaggedOf<WriteTag>, literals);
  if (ctx.runs && touchesAll) acc.missingWhere = true;
  if (literals.compared) acc.literalSensitive = true;
  const opaqueBefore = acc.opaqueOutputs;
  query(type, body, acc, ctx);
  // An INSERT without RETURNING sends no rows: what its VALUES, SELECT or CTEs compute goes into
  // the table, so none of it is a result column without an origin. (What they read still counts:
  // `derived` and the tables are kept, for `masking.derived` and errors that quote values.)
  if (type === 'InsertStmt' && list(body.returningList).length === 0) acc.opaqueOutputs = opaqueBefore;
}

/** A query with an optional WITH: CTE names are in scope for the rest of it. */
function query(type: string, body: Body, acc: Acc, ctx: Ctx): void {
  let scope = ctx.scope;
  const withClause = body.withClause as Body | undefined;
  if (withClause) {
    const ctes = list(withClause.ctes)
      .map(unwrap)
      .filter(([t]) => t === 'CommonTableExpr')
      .map(([, b]) => b);
    const cteNames = ctes.map((b) => str(b.ctename) ?? '');
    for (const n of cteNames) acc.subqueries.add(n.toLowerCase());
    const all = new Set([...scope, ...cteNames]);
    ctes.forEach((cte, i) => {
      // A non-recursive CTE sees only the CTEs before it; a same-named table inside its own
      // body is the real table.
      const visible = withClause.recursive === true ? all : new Set([...scope, ...cteNames.slice(0, i)]);
      const [t, b] = unwrap(cte.ctequery);
      if (t) nested(t, b, acc, { scope: visible, runs: ctx.runs, inCte: true });
      walkFields('CommonTableExpr', cte, acc, { ...ctx, scope: visible }, ['ctequery']);
    });
    scope = all;
  }
  // The target of INSERT/UPDATE/DELETE/MERGE and SELECT INTO is always a real table.
  if (DML[type] && body.relation) {
    const table = tableName(body.relation as Body);
    addTable(acc, table);
    if (table !== undefined) addAlias(body.relation as Body, table, acc);
  }
  if (ctx.runs) {
    addOutputs(type === 'SelectStmt' ? body.targetList : body.returningList, acc);
    if (type === 'SelectStmt' && ((typeof body.op === 'string' && body.op !== 'SETOP_NONE') || body.valuesLists)) acc.opaqueOutputs = true;
    if (body.valuesLists) columnRefsIn(body.valuesLists, acc.derived);
  }
  const into = body.intoClause as Body | undefined;
  if (into?.rel) addTable(acc, tableName(into.rel as Body));
  walkFields(type, body, acc, { ...ctx, scope }, ['withClause', 'relation', 'intoClause']);
}

/** A statement met inside another one (subquery, CTE body, INSERT ... SELECT). */
function nested(type: string, body: Body, acc: Acc, ctx: Ctx): void {
  if (type === 'SelectStmt') {
    query(type, body, acc, ctx);
  } else if (DML[type]) {
    if (ctx.runs && ctx.inCte) acc.cteDml = true;
    dml(type, body, acc, ctx);
  } else {
    walkFields(type, body, acc, ctx);
  }
}

function walkFields(type: string, body: Body, acc: Acc, ctx: Ctx, skip: readonly string[] = []): void {
  const bare = Object.hasOwn(BARE_FIELDS, type) ? BARE_FIELDS[type] : undefined;
  for (const key of Object.keys(body)) {
    if (skip.includes(key)) continue;
    const value = body[key];
    if (value === null || typeof value !== 'object') continue;
    const bareType = bare && Object.hasOwn(bare, key) ? bare[key] : undefined;
    if (bareType) {
      for (const item of Array.isArray(value) ? value : [value]) {
        if (item && typeof item === 'object') walkNode(bareType, item as Body, acc, ctx);
      }
    } else {
      walkValue(value, acc, ctx);
    }
  }
}

function walkValue(value: unknown, acc: Acc, ctx: Ctx): void {
  if (Array.isArray(value)) {
    for (const item of value) walkValue(item, acc, ctx);
    return;
  }
  if (!value || typeof value !== 'object') return;
  const [type, body] = unwrap(value);
  if (type) {
    walkNode(type, body, acc, ctx);
  } else if (typeof (value as Body).relname === 'string') {
    addRangeVar(value as Body, acc, ctx);
  } else {
    walkFields('', value as Body, acc, ctx);
  }
}

function walkNode(type: string, body: Body, acc: Acc, ctx: Ctx): void {
  switch (type) {
    case 'RangeVar':
      addRangeVar(body, acc, ctx);
      return;
    case 'FuncCall': {
      const parts = names(body.funcname);
      if (parts.length > 0) acc.functions.add(parts.slice(-2).join('.').toLowerCase());
      const fn = parts.at(-1)?.toLowerCase();
      if (ctx.runs && fn !== undefined && SIDE_CHANNELS.has(fn)) {
        acc.sideChannel ??= { name: fn, refs: new Set() };
        columnRefsIn(body.args, acc.sideChannel.refs);
      }
      if (fn === 'set_config') {
        const [nameArg, valueArg] = list(body.args);
        settingChanged(settingText(nameArg), settingText(valueArg), acc, ctx);
      }
      walkFields(type, body, acc, ctx, ['funcname']);
      return;
    }
    case 'JoinExpr': {
      if (body.usingClause || body.isNatural === true) acc.opaqueOutputs = true;
      // `(a JOIN b) AS j(x, y)`: j's columns are a's and b's, renamed.
      const alias = str((body.alias as Body | undefined)?.aliasname);
      if (alias !== undefined) acc.subqueries.add(alias.toLowerCase());
      walkFields(type, body, acc, ctx);
      return;
    }
    case 'RangeSubselect':
      acc.subqueries.add((str((body.alias as Body | undefined)?.aliasname) ?? '').toLowerCase());
      walkFields(type, body, acc, ctx);
      return;
    case 'RangeFunction':
    case 'RangeTableFunc':
    case 'JsonTable':
      acc.opaqueOutputs = true;
      walkFields(type, body, acc, ctx);
      return;
    case 'SelectStmt':
    case 'InsertStmt':
    case 'UpdateStmt':
    case 'DeleteStmt':
    case 'MergeStmt':
      nested(type, body, acc, ctx);
      return;
    case 'A_Const':
      if ((body.ival !== undefined || body.fval !== undefined) && typeof body.location === 'number') {
        acc.numericLiterals.push(body.location);
      }
      return;
    case 'ColumnRef':
      if (ctx.runs) acc.refs.add(columnRefText(body));
      return;
    case 'String':
    case 'Integer':
    case 'Float':
    case 'Boolean':
    case 'BitString':
    case 'ParamRef':
    case 'TypeName':
    case 'RoleSpec':
    case 'Alias':
      return;
    default:
      walkFields(type, body, acc, ctx);
  }
}

const LEXING_SETTINGS = new Set(['standard_conforming_strings', 'client_encoding']);

/** Settings whose value says whether new transactions may write. */
const READ_ONLY_SETTINGS = new Set(['default_transaction_read_only', 'transaction_read_only']);

/**
 * Records that a statement sets `name` (undefined: an expression names it) to `value` (lower-case
 * constant, `default`, or undefined for an expression): the settings list, lexing, role changes
 * and read-write transactions. Whether or not what sets it runs now: a set_config() in a view, a
 * function body or a plain EXPLAIN's target is recorded too (the first two run later; see
 * `StatementFacts.settings`).
 */
function settingChanged(name: string | undefined, value: string | undefined, acc: Acc, ctx: Ctx): void {
  const now: Ctx = { ...ctx, runs: true };
  acc.settings.push({ ...(name !== undefined ? { name } : {}), ...(value !== undefined ? { value } : {}) });
  if (name === undefined || (LEXING_SETTINGS.has(name) && !lexingSafe(name, value))) acc.changesLexing = true;
  if (name === undefined || name === 'role') acc.kind('set-role', now);
  if (name === undefined || name === 'session_authorization') acc.kind('set-session-authorization', now);
  if (name === undefined || (READ_ONLY_SETTINGS.has(name) && !keepsReadOnly(name, value))) acc.readWrite = true;
}

/**
 * Whether setting `name` (one of {@link READ_ONLY_SETTINGS}) to `value` keeps transactions
 * read-only: an on value, or `default` (RESET, TO DEFAULT) for `default_transaction_read_only`
 * only. `transaction_read_only`'s reset value is off (a transaction starts read-only because
 * default_transaction_read_only is on, not from that reset value): RESET makes it read-write.
 * @see https://www.postgresql.org/docs/current/runtime-config-client.html#GUC-DEFAULT-TRANSACTION-READ-ONLY
 */
function keepsReadOnly(name: string, value: string | undefined): boolean {
  return name === 'transaction_read_only' && value === 'default' ? false : isOn(value);
}

/**
 * The `SET name = value` clauses of CREATE FUNCTION / ALTER FUNCTION (DefElems `set`): the value
 * is in force whenever the function runs. `SET name TO DEFAULT` and RESET there only drop the
 * function's own value, so they change nothing.
 * @see https://www.postgresql.org/docs/current/sql-createfunction.html
 */
function functionSettings(options: unknown, acc: Acc, ctx: Ctx): void {
  for (const o of list(options)) {
    const [t, d] = unwrap(o);
    if (t !== 'DefElem' || str(d.defname) !== 'set') continue;
    const [vt, v] = unwrap(d.arg);
    const name = str(v.name)?.toLowerCase();
    if (vt !== 'VariableSetStmt' || name === undefined) continue;
    const args = list(v.args);
    if (v.kind === 'VAR_SET_VALUE') settingChanged(name, args.length === 1 ? settingText(args[0]) : args.map(settingText).join(','), acc, ctx);
    else if (v.kind === 'VAR_SET_CURRENT') settingChanged(name, undefined, acc, ctx);
  }
}

/**
 * Whether a view's query (or an ON SELECT rule's actions) reads `pg_settings`, in any schema
 * (a same-named relation elsewhere counts too): such a view passes an UPDATE on to pg_settings,
 * whose rule calls set_config.
 * @see https://www.postgresql.org/docs/current/view-pg-settings.html
 */
function readsPgSettings(node: unknown): boolean {
  if (Array.isArray(node)) return node.some(readsPgSettings);
  if (!node || typeof node !== 'object') return false;
  if (isPgSettings(node as Body)) return true;
  return Object.values(node as Body).some((v) => v !== null && typeof v === 'object' && readsPgSettings(v));
}

/** Whether a RangeVar names `pg_settings` (any schema, any case). */
function isPgSettings(rv: Body | undefined): boolean {
  return str(rv?.relname)?.toLowerCase() === 'pg_settings';
}

/** The options of BEGIN / START TRANSACTION / SET TRANSACTION / SET SESSION CHARACTERISTICS (DefElems). */
function transactionOptions(options: unknown, acc: Acc, ctx: Ctx): void {
  for (const o of list(options)) {
    const [t, d] = unwrap(o);
    if (t !== 'DefElem') continue;
    const name = str(d.defname)?.toLowerCase();
    if (name === 'transaction_read_only') settingChanged(name, defElemTrue(d.arg) ? 'on' : 'off', acc, ctx);
  }
}

/** Whether a boolean setting's constant text (or `default`, the session's start value) means on. */
function isOn(value: string | undefined): boolean {
  return value === 'default' || (value !== undefined && ['on', 'true', 'yes', '1', 't', 'tr', 'tru', 'y', 'ye'].includes(value));
}

/** Functions whose arguments leave through another channel than the result (see `StatementFacts.sideChannel`). */
const SIDE_CHANNELS = new Set(['pg_notify', 'set_config']);

/**
 * The text a constant argument hands the server as a setting's name or value, lower-case and
 * trimmed: a string or number constant as written (`SET x = 0.5` passes `0.5`), possibly cast to
 * `text` or `varchar` without a length (which leave the text as it is). Undefined for anything
 * else, casts that could change the text included (`'0.59'::char(3)` is `0.5`, a `name` is cut
 * at 63 bytes).
 * @see https://www.postgresql.org/docs/current/sql-set.html
 */
function settingText(node: unknown): string | undefined {
  let [type, body] = unwrap(node);
  if (type === 'TypeCast') {
    const typeName = body.typeName as Body | undefined;
    const parts = names(typeName?.names).map((n) => n.toLowerCase());
    const plain = parts.length === 1 || (parts.length === 2 && parts[0] === 'pg_catalog');
    if (!plain || !['text', 'varchar'].includes(parts.at(-1)!) || list(typeName?.typmods).length > 0 || typeName?.arrayBounds !== undefined) return undefined;
    [type, body] = unwrap(body.arg);
  }
  if (type !== 'A_Const' || body.isnull === true) return undefined;
  const text = (body.sval as Body | undefined)?.sval ?? (body.fval as Body | undefined)?.fval;
  if (typeof text === 'string') return text.trim().toLowerCase();
  const ival = body.ival as Body | undefined;
  if (ival) return String(ival.ival ?? 0);
  return undefined;
}

/** Whether setting `name` to `value` keeps the server's lexing equal to this parser's. */
function lexingSafe(name: string, value: string | undefined): boolean {
  if (value === undefined) return false;
  return lexingSafeSetting(name, value);
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}
