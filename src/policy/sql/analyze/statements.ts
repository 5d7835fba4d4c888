/**
 * A statement whose own kind is reported (a top-level statement, or the one EXPLAIN ANALYZE,
 * PREPARE, COPY (...), DECLARE CURSOR or CREATE TABLE AS runs): the dispatch on its node type, and
 * the statements that carry another one or name a prepared statement or a cursor. Utility
 * statements are read in `utility.ts`, SET / SHOW / transactions in `settings.ts`.
 *
 * @see https://www.postgresql.org/docs/17/sql-commands.html
 */
import type { CopyStmt, CreateTableAsStmt, ExecuteStmt, ExplainStmt, Node } from 'libpg-query';
import { lexingSafeEncoding } from '../lexing.js';
import type { Acc, Ctx } from './acc.js';
import { defElemTrue, list, nodeAs, type Tagged, tagged } from './ast.js';
import { copyFacts } from './copy.js';
import { setStatement, showStatement, storedSetting, transactionStatement } from './settings.js';
import { addRangeVar, addTable, tableName } from './tables.js';
import { utility } from './utility.js';
import { dml, query, walkFields } from './walk.js';

/** Reads a statement whose own kind is reported into `acc`. */
export function statement(node: Tagged, acc: Acc, ctx: Ctx): void {
  switch (node[0]) {
    case 'SelectStmt':
      if (node[1].intoClause) acc.kind('create', ctx);
      acc.kind('select', ctx);
      return query(node, acc, ctx);
    case 'InsertStmt':
    case 'UpdateStmt':
    case 'DeleteStmt':
    case 'MergeStmt':
      return dml(node, acc, ctx);
    case 'ExplainStmt':
      return explain(node[1], acc, ctx);
    case 'PrepareStmt':
      acc.kind('prepare', ctx);
      acc.preparedName ??= node[1].name;
      return inner(node[1].query, acc, ctx);
    case 'ExecuteStmt':
      return execute(node[1], acc, ctx);
    case 'DeallocateStmt':
      acc.kind('deallocate', ctx);
      acc.preparedName ??= node[1].isall ? '*' : node[1].name;
      return;
    case 'CopyStmt':
      return copy(node[1], acc, ctx);
    case 'DeclareCursorStmt':
      acc.kind('cursor', ctx);
      acc.cursorName ??= node[1].portalname;
      // CURSOR_OPT_HOLD (parsenodes.h): WITH HOLD.
      if (((node[1].options ?? 0) & 0x20) !== 0) acc.cursorHold = true;
      return inner(node[1].query, acc, ctx);
    case 'FetchStmt':
    case 'ClosePortalStmt':
      acc.kind('cursor', ctx);
      acc.cursorName ??= node[1].portalname ?? '*';
      if (node[0] === 'FetchStmt') acc.fetch = true;
      return;
    case 'CreateTableAsStmt':
      return createTableAs(node[1], acc, ctx);
    case 'VariableSetStmt':
      setStatement(node[1], acc, ctx);
      return walkFields(node[0], node[1], acc, ctx);
    case 'AlterRoleSetStmt':
    case 'AlterDatabaseSetStmt':
    case 'AlterSystemStmt':
      // A value stored for later sessions is a setting all the same (ALTER ROLE CURRENT_USER SET role = …).
      storedSetting(node[1].setstmt, acc, ctx);
      return utility(node, acc, ctx);
    case 'TransactionStmt':
      return transactionStatement(node[1], acc, ctx);
    case 'VariableShowStmt':
      return showStatement(node[1], acc, ctx);
    default:
      return utility(node, acc, ctx);
  }
}

/** The statement another one runs (or plans), read as one whose kind is reported. */
function inner(query: Node | undefined, acc: Acc, ctx: Ctx): void {
  const node = tagged(query);
  if (node) statement(node, acc, ctx);
}

/**
 * EXPLAIN: its target runs only with ANALYZE.
 * @see https://www.postgresql.org/docs/17/sql-explain.html
 */
function explain(body: ExplainStmt, acc: Acc, ctx: Ctx): void {
  acc.kind('explain', ctx);
  const node = tagged(body.query);
  if (node) statement(node, acc, { ...ctx, runs: ctx.runs && explainAnalyzes(body.options) });
}

/** Whether EXPLAIN's options include ANALYZE (the last one written wins). */
function explainAnalyzes(options: readonly Node[] | undefined): boolean {
  let analyze = false;
  for (const opt of list(options)) {
    const d = nodeAs(opt, 'DefElem');
    if (d === undefined || d.defname?.toLowerCase() !== 'analyze') continue;
    analyze = defElemTrue(d.arg);
  }
  return analyze;
}

/**
 * EXECUTE: the prepared statement it runs (when it runs) and every one it names.
 * @see https://www.postgresql.org/docs/17/sql-execute.html
 */
function execute(body: ExecuteStmt, acc: Acc, ctx: Ctx): void {
  acc.kind('execute', ctx);
  if (ctx.runs) acc.executeName ??= body.name;
  if (body.name !== undefined) acc.executes.push(body.name);
  walkFields('ExecuteStmt', body, acc, ctx, ['name']);
}

/**
 * COPY: its direction, program, facts, the table or query it copies.
 * @see https://www.postgresql.org/docs/17/sql-copy.html
 */
function copy(body: CopyStmt, acc: Acc, ctx: Ctx): void {
  acc.kind(body.is_from === true ? 'copy-in' : 'copy-out', ctx);
  if (body.is_program === true) acc.program = true;
  const facts = copyFacts(body, acc.source);
  acc.copy ??= facts;
  // COPY data in an encoding whose characters may hold a backslash or delimiter byte is split
  // differently by hoop (masking, recording) and the client: as a client_encoding would be.
  if (facts.encoding !== undefined && !lexingSafeEncoding(facts.encoding)) acc.changesLexing = true;
  if (body.relation) addRangeVar(body.relation, acc, { ...ctx, reading: body.is_from !== true });
  inner(body.query, acc, ctx);
  walkFields('CopyStmt', body, acc, ctx, ['relation', 'query']);
}

/**
 * CREATE TABLE AS / CREATE MATERIALIZED VIEW: the table it creates and the query it runs.
 * @see https://www.postgresql.org/docs/17/sql-createtableas.html
 */
function createTableAs(body: CreateTableAsStmt, acc: Acc, ctx: Ctx): void {
  acc.kind('create', ctx);
  // What a prepared statement computes is traced where it is EXECUTEd, not into the table this makes.
  if (nodeAs(body.query, 'ExecuteStmt')) acc.code ??= 'a table made from a prepared statement';
  if (body.into?.rel) addTable(acc, tableName(body.into.rel));
  inner(body.query, acc, ctx);
  walkFields('CreateTableAsStmt', body, acc, ctx, ['into', 'query']);
}
