/**
 * The facts of one statement while its parse tree is walked: an accumulator every reader adds
 * to, and the context of the node being read (the CTE names in scope, whether what is read runs
 * now). {@link Acc.facts} turns it into the {@link StatementFacts} the analysis returns.
 *
 * @see https://www.postgresql.org/docs/17/sql-commands.html
 */
import type { CopyFacts, LockMode, StatementFacts, StatementKind } from './facts.js';

/** CTE names visible at a node. */
export type Scope = ReadonlySet<string>;

/** No CTE in scope: a statement's top level. */
export const EMPTY_SCOPE: Scope = new Set();

/** Where a node is read. */
export interface Ctx {
  /** CTE names visible here (exact, as the parser normalised them). */
  scope: Scope;
  /** Whether what is walked here runs now (not: a view body, plain EXPLAIN's target, ...). */
  runs: boolean;
  /** Inside the query of a common table expression. */
  inCte: boolean;
  /** Inside a query, whose tables are read (a write's own target is not, but for its RETURNING). */
  reading?: boolean;
  /** Inside the SQL-standard body of a function or procedure made: what it does is judged as the statement's kinds (it runs whenever it is called, unseen). */
  body?: boolean;
}

/** The facts of one statement as they are found (see {@link StatementFacts} for each). */
export class Acc {
  /** The statement's own text. */
  readonly source: string;
  kinds: StatementKind[] = [];
  tables = new Set<string>();
  functions = new Set<string>();
  operators = new Set<string>();
  casts = new Set<string>();
  missingWhere = false;
  cteDml = false;
  program = false;
  opaqueBody = false;
  code: string | undefined;
  evaluatesDomain = false;
  changesLexing = false;
  readWrite = false;
  settings: Array<{ name?: string; value?: string; raw?: string }> = [];
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
  cursorHold = false;
  fetch = false;
  transaction: string | undefined;
  firesDeferred = false;
  setting: string | undefined;
  refs = new Set<string>();
  signals: Array<number | 'own' | 'other'> = [];
  sideChannel: { name: string; where: string } | undefined;
  aliases = new Map<string, string>();
  reads = new Set<string>();

  constructor(source: string) {
    this.source = source;
  }

  kind(k: StatementKind, ctx: Ctx): void {
    if ((ctx.runs || ctx.body) && !this.kinds.includes(k)) this.kinds.push(k);
  }

  facts(): StatementFacts {
    const text = this.source;
    const f: StatementFacts = {
      kinds: this.kinds.length > 0 ? this.kinds : ['other'],
      tables: [...this.tables],
      reads: [...this.reads],
      functions: [...this.functions],
      missingWhere: this.missingWhere,
      cteDml: this.cteDml,
      program: this.program,
      opaqueBody: this.opaqueBody,
      changesLexing: this.changesLexing,
      settings: this.settings,
      readWrite: this.readWrite,
      outputs: { aliases: Object.fromEntries(this.aliases) },
      executes: this.executes,
      refs: [...this.refs],
      text,
    };
    if (this.operators.size > 0) f.operators = [...this.operators];
    if (this.casts.size > 0) f.casts = [...this.casts];
    if (this.sideChannel !== undefined) f.sideChannel = { ...this.sideChannel };
    if (this.code !== undefined) f.code = this.code;
    if (this.evaluatesDomain) f.evaluatesDomain = true;
    if (this.signals.length > 0) f.signals = this.signals;
    if (this.copy !== undefined) f.copy = this.copy;
    if (this.preparedName !== undefined) f.preparedName = this.preparedName;
    if (this.executeName !== undefined) f.executeName = this.executeName;
    if (this.cursorName !== undefined) f.cursorName = this.cursorName;
    if (this.cursorHold) f.cursorHold = true;
    if (this.transaction !== undefined) f.transaction = this.transaction;
    if (this.firesDeferred) f.firesDeferred = true;
    if (this.fetch) f.fetch = true;
    if (this.setting !== undefined) f.setting = this.setting;
    if (this.lockMode !== undefined) f.lockMode = this.lockMode;
    if (this.serverCommand !== undefined) f.serverCommand = this.serverCommand;
    return f;
  }
}
