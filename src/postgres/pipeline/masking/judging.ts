/**
 * What masking is told of each statement, and what it asks of the stage that knows the catalog:
 * how a statement's result columns are judged when their origins do not decide them
 * ({@link StatementMasking}), what a statement makes or drops ({@link StatementEffects}), and the
 * {@link ColumnJudge} that decides. The ResultMasker (./result-masker.ts) follows the protocol; the
 * masking stage (./stage.ts) judges.
 *
 * @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-ROWDESCRIPTION
 */
import type { MaskStrategy } from '../../../policy/masking/strategies.js';
import type { RelationDdl, StatementLineage } from '../../../policy/sql/analyze.js';
import type { RowDescriptionField } from '../../wire/rows.js';
import { PgProtocolError } from '../../wire/protocol-error.js';
import type { CopyOptions } from './copy-out.js';

/**
 * What one statement's result columns are judged by, when the catalog's origins do not decide
 * them (a column without an origin, or one whose relation the catalog does not know yet):
 * - `lineage`: where each column comes from (see `StatementLineage`), judged by the {@link ColumnJudge};
 *   with `copy`, a COPY TO STDOUT's format options (`maskAll`: in an encoding hoop cannot split, every field masked; `wholeTable`: a table's, no column list);
 * - `opaque`: code hoop cannot read computes the results (a DO block, a procedure, a cursor or
 *   prepared statement something other than this session's SQL made): such columns are masked,
 *   and its errors and notices withheld;
 * - `unparsed`: hoop cannot tell (SQL it cannot parse): a column that needs it is refused;
 * - `cursor`, `execute`: FETCH and EXECUTE run what the named cursor or prepared statement was
 *   declared with (looked up when its result comes);
 * - `utility`: a statement with no result of its own, which reads the rows of `tables` when
 *   `evaluates` (ALTER TABLE ... TYPE, CREATE INDEX: an error may quote a value); `everywhere`
 *   when it evaluates values of columns it does not name (ALTER DOMAIN … ADD / VALIDATE CONSTRAINT
 *   checks every column of the domain, in any table).
 * `writes`: the tables a write (INSERT, UPDATE, DELETE, MERGE) names. A write evaluates its
 * target's CHECK constraints, index expressions and triggers over every column of the rows it
 * touches, whatever it reads: its error may quote any of them.
 * `effects` are what it makes or drops, applied when it completes.
 */
export type StatementMasking =
  | { lineage: StatementLineage; effects?: StatementEffects; copy?: CopyOptions & { maskAll?: true; wholeTable?: true }; calls?: CodeCalls; writes?: readonly string[] }
  | { opaque: string; effects?: StatementEffects }
  | { unparsed: string }
  | { cursor: string }
  | { execute: string }
  | { utility: { tables: readonly string[]; evaluates: boolean; everywhere?: true }; effects?: StatementEffects };

/** What a statement makes or drops that later statements run (see {@link StatementMasking}). */
export interface StatementEffects {
  /** DECLARE: a cursor (a portal of that name) running `of`. */
  declare?: { name: string; hold: boolean; of: StatementMasking };
  /** PREPARE: a prepared statement of that name running `of`. */
  prepare?: { name: string; of: StatementMasking };
  /** DEALLOCATE (`*`: all, DISCARD ALL too). */
  deallocate?: string;
  /** CLOSE (`*`: all). */
  close?: string;
  /** What it does to a relation's shape, for whoever follows the open transaction ({@link ColumnJudge.completed}). */
  ddl?: RelationDdl;
  /** Code hoop cannot read ran: any statement or portal may have been replaced. */
  unknown?: true;
}

/** What the engine knows about a Query or Parse from its parse tree. */
export interface StatementHints {
  /** Each statement's (a Query's, in order; a Parse's one). */
  statements?: readonly StatementMasking[];
}

/** A statement's masking with FETCH and EXECUTE resolved to what they run. */
export type ResolvedMasking = Exclude<StatementMasking, { cursor: string } | { execute: string }>;

/**
 * Decides what the catalog's origins do not (see {@link StatementMasking}): the columns of a result
 * at `positions` (no origin, or one the catalog does not know), and whether an error or notice may
 * quote a masked value. Told when a statement completes and when the server is ready again.
 */
export interface ColumnJudge {
  /** The strategy of each column at `positions` (undefined: exact), in their order. @throws Error when it cannot tell (the session ends with it) */
  columns(fields: readonly RowDescriptionField[], positions: readonly number[], statement: ResolvedMasking): Array<MaskStrategy | undefined> | Promise<Array<MaskStrategy | undefined>>;
  /** Whether an error or notice of `statement` may quote a masked value (then its text is withheld). */
  quotes(statement: ResolvedMasking, fields: ReadonlyMap<string, string>): boolean | Promise<boolean>;
  /** `statement` completed (its DDL is now part of the open transaction). */
  completed?(statement: ResolvedMasking): void;
  /** ReadyForQuery with this transaction status (`I`: the transaction, and what it made, is committed or gone). */
  ready?(status: string): void;
}

/** A result masking refuses to hand on: hoop cannot tell what a column carries (the session ends with it, and nothing is guessed). */
export class MaskingRefusal extends PgProtocolError {}

/** What a statement runs that may be code the database's users wrote: functions it calls, operators it applies, types it casts to. */
export interface CodeCalls {
  functions: readonly string[];
  operators: readonly string[];
  casts: readonly string[];
}
