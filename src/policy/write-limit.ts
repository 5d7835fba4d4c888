/**
 * The blast-radius guard's rules on a message (src/policy/decide.ts decides which limit applies):
 * what a write under a row limit is, which statements count rows and how, and when a message
 * cannot be counted as written.
 */
import type { StatementFacts } from './sql/analyze.js';
import type { ReviewSettings, RowLimit, StatementKind } from './schema.js';

/**
 * The blast-radius guard on a message that changes rows: the database counts them before they
 * commit, and a write over {@link RowLimit.maxRows} is rolled back, then refused or held for
 * review. Guarded statements: UPDATE, DELETE, MERGE and INSERT ... ON CONFLICT DO UPDATE, also
 * inside a WITH, EXPLAIN ANALYZE or COPY (...) TO (plain INSERT and COPY FROM add rows and change
 * none; TRUNCATE and DDL are for deny and review rules).
 */
export interface WriteGuard extends RowLimit {
  /**
   * How the rows are counted: `tag`, from the CommandComplete of each guarded statement (its own
   * rows, as psql prints them: `DELETE 60`); `stats`, for a write whose tag does not count it (in
   * a WITH, under EXPLAIN ANALYZE or COPY, what an EXECUTE runs), from the rows every table had
   * inserted, updated or deleted while the message ran (`pg_stat_xact_all_tables`, which counts
   * what its triggers write too).
   * @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-COMMANDCOMPLETE
   * @see https://www.postgresql.org/docs/current/monitoring-stats.html#MONITORING-PG-STAT-ALL-TABLES-VIEW
   */
  count: 'tag' | 'stats';
  /** For `tag`: the 0-based statements of the text whose CommandComplete counts. */
  statements: readonly number[];
  /** The text BEGINs a transaction block before its first guarded statement (which then runs in it). */
  opensBlock: boolean;
  /** Only PREPAREs write: the limit applies where an EXECUTE runs them, not to the PREPARE itself. */
  prepared?: true;
  /** For `overLimit: review`: who reviews it (absent when the policy names no reviewers: it is refused). */
  review?: ReviewSettings;
  /**
   * With rules on tables, on a lane whose server says which tables a write changed (PostgreSQL's
   * statistics): why the write is refused, judged again with those tables, before it commits
   * (a view replaced while it waited, a rule or trigger that wrote elsewhere); undefined: it stands.
   * A guard for this alone has no row limit (`maxRows` Infinity).
   */
  changed?: ChangedCheck;
  /** The text is one COPY FROM STDIN: its rows come from the client after its Query, and the count after them is taken at its CopyDone. */
  copyIn?: true;
  /**
   * The text ends the client's transaction block (COMMIT, PREPARE TRANSACTION) and writes nothing
   * itself: the deferred constraint triggers its block's writes queued are made to fire first,
   * between two counts, and it runs only if what they changed passes {@link changed}.
   */
  settles?: true;
}

/** A table the server says a write changed: its name and its ancestors' (`schema.name`: the tables it is a partition or child of), and its rows by kind. */
export interface ChangedTable {
  readonly name: string;
  readonly ancestors: readonly string[];
  readonly inserted: number;
  readonly updated: number;
  readonly deleted: number;
  /** Its catalog row was remade in the transaction (a TRUNCATE, which zeroes its counts, or DDL): judged as a TRUNCATE of it. */
  readonly truncated?: true;
}

/** Why a write that changed `tables` is refused though its judgment allowed it (see {@link WriteGuard.changed}). */
export type ChangedCheck = (tables: readonly ChangedTable[]) => { rule: string; reason: string } | undefined;

/** Two guards' checks of the tables changed, as one (the first refusal). */
export function bothChecks(a: ChangedCheck | undefined, b: ChangedCheck | undefined): ChangedCheck | undefined {
  if (!a || !b || a === b) return a ?? b;
  return (tables) => a(tables) ?? b(tables);
}

/** Rule name of the refusal of a message the row limit cannot guard as written (see {@link WriteGuard}). */
export const WRITE_GUARD_RULE = 'write-guard';

/** Statement kinds whose rows the blast-radius guard counts. */
const GUARDED_KINDS: ReadonlySet<StatementKind> = new Set<StatementKind>(['update', 'delete', 'merge']);
/** Statement kinds whose CommandComplete tag carries the rows they changed. */
const TAGGED_KINDS: ReadonlySet<StatementKind> = new Set<StatementKind>(['update', 'delete', 'merge', 'insert']);

/**
 * Why the guard cannot count a message's writes as it is written (undefined when it can): a
 * transaction statement other than a BEGIN before its first guarded statement (`first`) would
 * commit or undo part of what is counted; a COPY FROM STDIN beside it would wait for data behind
 * the results the guard holds (alone, and under no row limit, it is counted at its CopyDone).
 */
export function unguardable(statements: readonly StatementFacts[], first: number, limit: RowLimit): string | undefined {
  const under = Number.isFinite(limit.maxRows) ? `under a row limit (rule "${limit.rule}": at most ${limit.maxRows} rows)` : 'under rules on tables';
  const so = Number.isFinite(limit.maxRows) ? 'count its rows' : 'check which tables it changed';
  const why = (what: string): string => `this message has a write ${under} and ${what}, so hoop cannot ${so} before they commit; send them as separate statements`;
  for (const [i, facts] of statements.entries()) {
    if (facts.transaction !== undefined && (i > first || (facts.transaction !== 'begin' && facts.transaction !== 'start')))
      return why(`a ${facts.transaction.replace('_', ' ').toUpperCase()} statement`);
    // Alone, with no row limit, its rows are counted at its CopyDone (`WriteGuard.copyIn`); beside a statement, its data would wait behind the results the guard holds.
    if (copiesIn(facts) && (statements.length > 1 || Number.isFinite(limit.maxRows))) return why('a COPY FROM STDIN');
  }
  return undefined;
}

/** Whether a statement is COPY FROM STDIN: its rows come from the client. */
export function copiesIn(facts: StatementFacts): boolean {
  return facts.kinds.includes('copy-in') && facts.copy?.target === 'client';
}

/** Whether a BEGIN of the message comes before statement `first`. */
export function opensBlockBefore(statements: readonly StatementFacts[], first: number): boolean {
  return statements.slice(0, first).some((f) => f.transaction === 'begin' || f.transaction === 'start');
}

/** Whether a PREPARE stores a statement that changes existing rows (its limit applies where an EXECUTE runs it). */
export function preparesWrite(facts: StatementFacts): boolean {
  return facts.kinds[0] === 'prepare' && facts.kinds.some((k) => GUARDED_KINDS.has(k));
}

/** Whether a statement's CommandComplete tag counts the rows it changed (not a write inside a WITH). */
export function tagCounts(facts: StatementFacts): boolean {
  return TAGGED_KINDS.has(facts.kinds[0]!) && !facts.cteDml && !facts.writesBeyond;
}

/** Statement kinds that write rows, or fire triggers that may (TRUNCATE's, COPY FROM's). */
export const WRITING_KINDS: ReadonlySet<StatementKind> = new Set<StatementKind>(['insert', 'update', 'delete', 'merge', 'truncate', 'copy-in']);

/** Whether a statement writes rows when it runs, or fires triggers that may (a PREPARE only stores its body; a SET CONSTRAINTS fires deferred ones). */
export function writesRows(facts: StatementFacts): boolean {
  return (facts.kinds[0] !== 'prepare' && facts.kinds.some((k) => WRITING_KINDS.has(k))) || (facts.firesDeferred === true && facts.transaction === undefined);
}

/** Whether a statement ends a transaction block, firing the deferred triggers it queued (COMMIT, PREPARE TRANSACTION). */
export function endsFiringDeferred(facts: StatementFacts): boolean {
  return facts.firesDeferred === true && facts.transaction !== undefined;
}

/** Whether a statement changes existing rows when it runs (a PREPARE only stores its body). */
export function changesRows(facts: StatementFacts): boolean {
  return facts.kinds[0] !== 'prepare' && facts.kinds.some((k) => GUARDED_KINDS.has(k));
}
