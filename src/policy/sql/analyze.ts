/**
 * What a SQL string *is*, according to PostgreSQL's own grammar: the statements it holds, their
 * kinds, the tables they touch and the functions they call. The entry point of the analysis:
 * loading the parser, parsing, caching, and the facts' types; the parse tree is read by the
 * modules of `analyze/` (the walk, statements, utility statements, tables, outputs, settings,
 * COPY, missing WHERE).
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
import type { ParseResult, RawStmt } from 'libpg-query';
import { Acc, EMPTY_SCOPE } from './analyze/acc.js';
import { tagged } from './analyze/ast.js';
import type { Analysis, StatementFacts } from './analyze/facts.js';
import { statement } from './analyze/statements.js';
import { keptValues, statementLineage } from './analyze/lineage.js';
import { relationDdl, storesDefault } from './analyze/ddl.js';
import { LruCache } from './lru.js';

export type {
  Analysis,
  ColumnLineage,
  ColumnSource,
  CopyFacts,
  LineageSegment,
  LockMode,
  OutputFacts,
  RelationDdl,
  RelationName,
  StatementFacts,
  StatementKind,
  StatementLineage,
} from './analyze/facts.js';
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

function analyzeUncached(sql: string): Analysis {
  if (sql.trim() === '') return { ok: true, statements: [], numericLiterals: [] };
  let tree: ParseResult;
  try {
    // libpg-query types parseSync's result as `any`: it is the JSON of a ParseResult.
    tree = parseSync(sql) as ParseResult;
  } catch (err) {
    return { ok: false, error: parseErrorText(err) };
  }
  const raws = tree.stmts ?? [];
  const statements: StatementFacts[] = [];
  const numericLiterals: number[] = [];
  let literalSensitive = false;
  try {
    for (const raw of raws) {
      if (!raw.stmt) continue;
      const node = tagged(raw.stmt);
      if (!node) return { ok: false, error: 'unrecognised parse tree' };
      const acc = new Acc(sliceStatement(sql, raw));
      statement(node, acc, { scope: EMPTY_SCOPE, runs: true, inCte: false });
      const facts = acc.facts();
      const lineage = statementLineage(node);
      if (lineage) facts.lineage = lineage;
      const ddl = relationDdl(node, lineage);
      if (ddl) facts.ddl = ddl;
      keptValues(facts, storesDefault(node));
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
    // Where, never the token found there (a literal there may be a password): the reason reaches recordings and reviews.
    const msg = typeof e.message === 'string' ? e.message.replace(/ at or near "[\s\S]*"$/, '').replace(/"[^"]*"/g, '"…"') : 'syntax error';
    const pos = e.sqlDetails?.cursorPosition;
    return typeof pos === 'number' && pos >= 0 ? `${msg} (at character ${pos + 1})` : msg;
  }
  return 'syntax error';
}

/** A statement's own text, trimmed: its span of the whole text (byte offsets into the UTF-8 text). */
function sliceStatement(sql: string, raw: RawStmt): string {
  const start = raw.stmt_location ?? 0;
  const len = raw.stmt_len ?? 0;
  // Locations are byte offsets into the UTF-8 text.
  if (/^[\x00-\x7f]*$/.test(sql)) return (len > 0 ? sql.slice(start, start + len) : sql.slice(start)).trim();
  const bytes = Buffer.from(sql, 'utf8');
  return (len > 0 ? bytes.subarray(start, start + len) : bytes.subarray(start)).toString('utf8').trim();
}

/** Freezes an analysis (cached and shared between callers) and everything in it. */
function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}
