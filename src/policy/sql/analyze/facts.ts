/**
 * The facts `analyzeSql` produces: what one statement is and touches ({@link StatementFacts}),
 * what a COPY moves ({@link CopyFacts}), what result columns are computed from
 * ({@link OutputFacts}), and the outcome for a whole SQL text ({@link Analysis}). Types only (and
 * the lock modes' order): how each fact is read off the parse tree is in the modules beside this
 * one.
 *
 * @see https://www.postgresql.org/docs/17/sql-commands.html
 */
import type { CopyOptions } from '../../masking/copy-format.js';
import type { StatementKind } from '../../schema.js';

/**
 * The kind of a statement as rules name it (defined with the policy schema).
 * @see https://www.postgresql.org/docs/17/sql-commands.html
 */
export type { StatementKind };

/**
 * What one statement is and what it touches. Objects returned by `analyzeSql` are frozen
 * and may be shared between callers (they are cached by SQL text).
 * @see https://www.postgresql.org/docs/17/sql-commands.html
 */
export interface StatementFacts {
  /**
   * The statement's own kind first, then the kinds of what it runs: DML in a WITH, the target
   * of EXPLAIN ANALYZE, a PREPARE body, the query of COPY (...) TO / DECLARE CURSOR / CREATE
   * TABLE AS, the actions of MERGE (update, delete, insert). No duplicates. A SELECT inside
   * another statement (subquery, INSERT ... SELECT) does not add `select`.
   */
  kinds: StatementKind[];
  /**
   * Tables (and views, sequences, ...) read or written, lower-case: `schema.table` when the SQL
   * qualifies the name, the bare `table` when it does not (the search path decides), and
   * `schema.*` for GRANT ... ON ALL TABLES IN SCHEMA. CTE names are not tables. A database
   * (catalog) prefix is dropped. Quoted names are lower-cased too, so a rule over `cards` also
   * covers `"Cards"` (matching errs towards matching more, never less).
   */
  tables: string[];
  /**
   * Of {@link tables}, those whose rows it reads, whatever its kind: every table a query of it
   * reads (FROM lists, subqueries, INSERT … SELECT, UPDATE … FROM, a MERGE's source, what CREATE
   * VIEW and CREATE TABLE AS select), COPY … TO's table, and a write's target when it RETURNs
   * rows. Deny and review rules on `select` match by them. Absent where the dialect's analysis
   * does not tell them (MySQL's): its tables count as read.
   */
  reads?: string[];
  /** Functions called anywhere (incl. FROM, CALL), lower-case, qualified as written. */
  functions: string[];
  /** Operators applied anywhere (`a ## b`, `x BETWEEN` as `>=` and `<=`, `ANY (...)`, `ORDER BY … USING`), by symbol. */
  operators?: string[];
  /** Types an explicit cast converts to (`x::t`, `CAST(x AS s.t)`), lower-case, unqualified. */
  casts?: string[];
  /**
   * A write (that runs) that may reach every row of its target, as far as the parse tree shows:
   * - an UPDATE or DELETE without a WHERE, or whose WHERE cannot restrict the target's rows;
   * - a MERGE whose join condition cannot, or with a WHEN MATCHED / WHEN NOT MATCHED BY SOURCE
   *   UPDATE or DELETE whose own condition is missing or cannot (an unconditioned action reaches
   *   every row the join matches, all of them when the source is the target itself);
   * - an INSERT ... SELECT ... ON CONFLICT DO UPDATE whose DO UPDATE WHERE is missing or cannot
   *   restrict, and whose SELECT may yield every row it reads or many rows: a set operation, or
   *   a WHERE that does not restrict the rows of its FROM list, or of no FROM list when a
   *   function is called anywhere in its SELECT list (`SELECT generate_series(1, 100000), 0`).
   *   VALUES and a SELECT of constants do not.
   *
   * A condition cannot restrict when it reads none of the target's rows: constants, parameters
   * and functions of them, columns of other row sources (FROM / USING items, the MERGE source,
   * subqueries, VALUES, CTEs), which single out no row of the target, and subqueries that do not
   * reference the target (`WHERE 1=1`, `WHERE $1`, `USING (SELECT 1 AS one) s WHERE
   * s.one = 1`, `WHERE EXISTS (SELECT 1 FROM pg_class c WHERE c.oid > 0)`); `WHERE false`,
   * `WHERE NULL` and `WHERE CURRENT OF c` do restrict. A reference is the target's when it is
   * qualified with the target's alias (its name when it has none; `excluded` too in ON CONFLICT,
   * the proposed row that pairs with one existing row), or unqualified and not a column name that
   * a VALUES list, subquery, CTE or alias column list among the row sources of its query level
   * is known to output (such a name cannot also be one of the target's columns: the server
   * rejects it as ambiguous); in a subquery, a name its own sources are known to output is
   * theirs, and one that may be a column of its tables or functions counts as the target's.
   *
   * Nor can a tautology restrict, in these forms (operands read as not NULL): `a = a`, `a >= a`,
   * `a <= a`, `a IS NOT DISTINCT FROM a`, `a LIKE '%'`, `a BETWEEN a AND a`, `a BETWEEN SYMMETRIC
   * a AND b`, a CASE whose every result (an ELSE included) is one, `p IS TRUE` / `p IS NOT FALSE`
   * of one, `p IS FALSE` / `p IS NOT TRUE` / `NOT p` of a contradiction (`a <> a`, `a < a`,
   * `a > a`, `a IS DISTINCT FROM a`, `a NOT BETWEEN a AND a`, false, NULL, ...), a system column
   * (`ctid`, `tableoid`, `xmin`, `xmax`, `cmin`, `cmax`, and `oid`, also when it is a user
   * column) IS NOT NULL, an AND of them, an OR with one such arm or with two arms that complement
   * each other (`x IS NULL OR x IS NOT NULL`, `p OR NOT p`, `a = b OR a <> b`, `a < b OR a >= b`,
   * `a IN (...) OR a NOT IN (...)`, `a LIKE b OR a NOT LIKE b`, `a BETWEEN b AND c OR a NOT
   * BETWEEN b AND c`, `x IS TRUE OR x IS NOT TRUE`, `a IS DISTINCT FROM b OR a IS NOT DISTINCT
   * FROM b`).
   *
   * It is a syntactic check, not a proof: hoop knows no table's columns, keys, constraints or
   * data, nor what a function returns. A condition that reads the target's rows in any other form
   * counts as restricting, even when it holds for every row: `WHERE id IN (SELECT id FROM t)`,
   * `WHERE id NOT IN (SELECT 1 WHERE false)`, `WHERE id > -2147483649`, `WHERE abs(id) >= 0`,
   * `WHERE id = id + 0`, a join with a source that holds every key (`USING t AS s WHERE t.id =
   * s.id`), or a NOT NULL column `IS NOT NULL`. So does an unqualified name that may be a column
   * of another table or of a function, whose columns are as unknown as the target's (`USING u
   * WHERE flag`, `EXISTS (SELECT 1 FROM u WHERE flag)`, `EXISTS (SELECT 1 FROM
   * generate_series(1, 3) g WHERE g > 1)`), a composite column's field written `c.f`, or a name
   * it cannot resolve. A verdict that compared numeric constants (`id < 5 OR id >= 5` against
   * `id < 5 OR id >= 6`, `id + 0 = id + 1`) makes the analysis `literalSensitive`.
   */
  missingWhere: boolean;
  /** A data-modifying statement (that runs) inside a WITH. */
  cteDml: boolean;
  /** Set by a judgment through the catalog: its write reaches further tables by other commands (a rule, a foreign key's action), whose rows its tag does not count. */
  writesBeyond?: boolean;
  /** COPY ... FROM PROGRAM / TO PROGRAM: the server runs a shell command. */
  program: boolean;
  /** A body hoop cannot see into: DO, CREATE FUNCTION/PROCEDURE with a string body. */
  opaqueBody: boolean;
  /**
   * What it runs or keeps that masking cannot follow, as a phrase: code whose reads and writes are
   * not in its text, or kept to run later (`a DO block`, `a procedure call`, `a function made`, `a
   * trigger`, `a rule`, `an operator made`, `a call of pg_notify() kept to run later`); a change
   * of stored values no lineage shows (`a column retyped from another column's values`, `a table
   * made a child of another`, `a table made from a prepared statement`).
   */
  code?: string;
  /**
   * The statement may change how the server splits *later* SQL text into tokens, so that it
   * would no longer read it as this parser does: `standard_conforming_strings` set to anything
   * but on (backslashes then escape quotes: `select '\'' ; drop table t; -- '` is one string
   * here but a DROP on the server), or `client_encoding` set to an encoding that is not
   * ASCII-safe (SJIS, BIG5, GBK, UHC, GB18030, JOHAB: a trailing byte can be a backslash),
   * by SET or by set_config() (a name that is not a constant counts too); and a COPY whose
   * `ENCODING` is such an encoding (its data would split differently at hoop).
   */
  changesLexing: boolean;
  /** What must stay as it is for the gateway to read later SQL, in the words of the statement's dialect, when it is not PostgreSQL's (MySQL: `sql_mode` and the character set). */
  lexingNote?: string;
  /** PREPARE / DEALLOCATE: the prepared statement's name (`*` for DEALLOCATE ALL and DISCARD ALL). */
  preparedName?: string;
  /** EXECUTE that runs (also inside EXPLAIN ANALYZE or CREATE TABLE AS): the name executed. */
  executeName?: string;
  /**
   * Every prepared statement named by an EXECUTE, whether it runs or is only planned (plain
   * EXPLAIN EXECUTE), in order: what a statement gate must judge with the prepared body.
   */
  executes: string[];
  /** COPY: its direction, source or target, format options, and what it reads or writes. */
  copy?: CopyFacts;
  /**
   * BEGIN, COMMIT, SAVEPOINT and the other transaction statements: which one, lower-case
   * (`begin`, `start`, `commit`, `rollback`, `savepoint`, `release`, `rollback_to`, `prepare`,
   * `commit_prepared`, `rollback_prepared`).
   * @see https://www.postgresql.org/docs/current/tutorial-transactions.html
   */
  transaction?: string;
  /**
   * COMMIT (END), PREPARE TRANSACTION or SET CONSTRAINTS: the deferred constraint triggers its
   * transaction queued fire at it (at the transaction's end, or now).
   * @see https://www.postgresql.org/docs/current/sql-set-constraints.html
   */
  firesDeferred?: true;
  /** FETCH or MOVE: runs the portal `cursorName` names (a protocol-level portal too). */
  fetch?: true;
  /** DECLARE / FETCH / MOVE / CLOSE: the cursor's name (`*` for CLOSE ALL and DISCARD ALL). */
  cursorName?: string;
  /** DECLARE ... WITH HOLD: the cursor outlives its transaction. */
  cursorHold?: true;
  /** SET / RESET / SHOW: the setting's name, lower-case (`all` for RESET ALL). */
  setting?: string;
  /**
   * Every setting the statement changes for the session or its transaction, by SET / RESET /
   * SET LOCAL, set_config(), or BEGIN / SET TRANSACTION options: `name` lower-case (undefined when
   * set_config names it with an expression), `value` the constant it is set to, lower-case
   * (`default` for RESET and SET ... TO DEFAULT; undefined for an expression).
   *
   * Also what it stores to be run later, judged as if the statement set it itself: a set_config()
   * anywhere in the statement, whether it runs now or not (a view's query, a function's body or
   * default, a rule's action, the target of a plain EXPLAIN), and a function's `SET name = value`
   * clause (CREATE / ALTER FUNCTION or PROCEDURE). A write to `pg_settings` (UPDATE, INSERT,
   * DELETE, MERGE: its UPDATE rule calls set_config), or a view or ON SELECT rule that reads it
   * (a view over it passes updates on), counts as a set_config of a name hoop cannot know (no
   * `name`, no `value`).
   * @see https://www.postgresql.org/docs/current/view-pg-settings.html
   * @see https://www.postgresql.org/docs/current/functions-admin.html#FUNCTIONS-ADMIN-SET
   */
  settings: Array<{ name?: string; value?: string; raw?: string }>;
  /**
   * The statement asks for read-write transactions: `default_transaction_read_only` or
   * `transaction_read_only` set to anything but on (also through set_config, or a name that is an
   * expression), `transaction_read_only` RESET or set TO DEFAULT (its reset value is off: a
   * read-only session's transactions are read-only because default_transaction_read_only was on
   * when they began, not because of that value), BEGIN / START TRANSACTION / SET TRANSACTION /
   * SET SESSION CHARACTERISTICS ... READ WRITE. `default_transaction_read_only` RESET or set TO
   * DEFAULT is not read-write: it returns to its value at the session's start (read-only access
   * opens the session with it on). RESET ALL / DISCARD ALL leave `transaction_read_only` alone
   * (the server does not reset it with the others).
   * @see https://www.postgresql.org/docs/current/runtime-config-client.html#GUC-DEFAULT-TRANSACTION-READ-ONLY
   * @see https://www.postgresql.org/docs/current/sql-reset.html
   */
  readWrite: boolean;
  /**
   * LOCK: the lock mode it takes, as SQL spells it (`ACCESS EXCLUSIVE` when LOCK names none).
   * @see https://www.postgresql.org/docs/current/explicit-locking.html#LOCKING-TABLES
   */
  lockMode?: LockMode;
  /**
   * A command that acts on the server rather than on data: CHECKPOINT (writes out every dirty
   * buffer: I/O for every session) or LOAD (loads a shared library into the backend).
   * @see https://www.postgresql.org/docs/current/sql-checkpoint.html
   * @see https://www.postgresql.org/docs/current/sql-load.html
   */
  serverCommand?: 'checkpoint' | 'load';
  /** The aliases its queries give tables (see {@link OutputFacts}). */
  outputs: OutputFacts;
  /**
   * Where each result column comes from and what the statement reads (see {@link StatementLineage}):
   * for a statement whose result or definition is a query; absent for any other.
   */
  lineage?: StatementLineage;
  /** MySQL's: the columns its select list reads (../../mysql/output-reads.ts); absent when the parse cannot tell. */
  outputReads?: OutputRead[];
  /** MySQL's: what each item of the select list reads (result column i is item i), when the list has no wildcard. */
  outputItems?: OutputRead[][];
  /** MySQL's: a write that copies no column's value (a DELETE; INSERT, REPLACE or UPDATE of literals and placeholders alone). */
  writesLiteralsOnly?: true;
  /** MySQL's: the table a CREATE TABLE of columns alone makes (`db.table`), and its columns (lower-case). */
  createsTable?: { table: string; columns: string[] };
  /**
   * ALTER DOMAIN … ADD CONSTRAINT (without NOT VALID) or VALIDATE CONSTRAINT: it checks every
   * column of the domain, in whatever table, and its error may quote one's value.
   * @see https://www.postgresql.org/docs/17/sql-alterdomain.html
   */
  evaluatesDomain?: true;
  /** What the statement does to a relation's shape (CREATE TABLE / VIEW / TABLE AS, SELECT INTO, ALTER TABLE, RENAME). */
  ddl?: RelationDdl;
  /**
   * Every column reference in what the statement runs, anywhere (outputs, WHERE, JOIN, ORDER BY,
   * function arguments, subqueries), as written and lower-case: what an error or notice raised
   * while evaluating it may quote.
   */
  refs: string[];
  /**
   * Where the statement sends or keeps a value beyond its result, masking cannot follow it: a call
   * of a {@link SIDE_CHANNELS} function (`name` is its name, and `where` says where the value goes),
   * or, once `analyzeSql` has read the whole statement, the rows a write stores or the table a query
   * makes ({@link keptValues}); what those values are computed from is `lineage.sideChannel`.
   */
  sideChannel?: { name: string; where: string };
  /**
   * The process each call of a signal function (`pg_cancel_backend`, `pg_terminate_backend`,
   * `pg_signal_backend`) names: `own` for `pg_backend_pid()` (the session's own backend), a pid
   * written as a number, or `other`.
   */
  signals?: Array<number | 'own' | 'other'>;
  /** The statement's own text (as sliced by the parser, trimmed). */
  text: string;
  /**
   * MySQL: the statement reads a derived table, a CTE or another row source that is not a named
   * table (JSON_TABLE), whose result columns name it (or an alias) as their origin rather than the
   * table they come from.
   */
  derived?: true;
}

/**
 * A table lock mode, weakest first (the order of PostgreSQL's lock mode numbers, which the parse
 * tree gives: 1 is ACCESS SHARE).
 * @see https://www.postgresql.org/docs/current/explicit-locking.html#LOCKING-TABLES
 */
export const LOCK_MODES = ['ACCESS SHARE', 'ROW SHARE', 'ROW EXCLUSIVE', 'SHARE UPDATE EXCLUSIVE', 'SHARE', 'SHARE ROW EXCLUSIVE', 'EXCLUSIVE', 'ACCESS EXCLUSIVE'] as const;

/** One table lock mode (see {@link LOCK_MODES}). */
export type LockMode = (typeof LOCK_MODES)[number];

/**
 * A COPY statement as its options say: which way, to or from where, in which format, and the
 * table (and column list) or query it copies.
 * @see https://www.postgresql.org/docs/17/sql-copy.html
 */
export interface CopyFacts extends CopyOptions {
  direction: 'to' | 'from';
  /** STDIN / STDOUT through the client, a file on the server, or a program the server runs. */
  target: 'client' | 'file' | 'program';
  /** `COPY table`: the name as the parser folded it (schema when written). */
  relation?: { schema?: string; table: string };
  /** The column list, when written. */
  columns?: string[];
  /**
   * `COPY (query)`: the query's text, found as the parenthesised span whose own parse tree is the
   * COPY's query; absent when it could not be found (callers fail closed).
   */
  query?: string;
  /** `ENCODING 'name'`: the encoding the COPY data is sent in, when written. */
  encoding?: string;
}

/**
 * What the statement's queries call their row sources: the aliases of tables (the lineage, see
 * {@link StatementLineage}, says what each result column is computed from).
 */
export interface OutputFacts {
  /** Table aliases in scope anywhere in the statement, alias -> table as in {@link StatementFacts.tables}. */
  aliases: Record<string, string>;
}

/**
 * A column a value may come from: a column of a relation as the SQL names it.
 * @see https://www.postgresql.org/docs/17/queries-table-expressions.html
 */
export interface ColumnSource {
  /** The relation's schema, when the SQL names one (else whichever the session's search_path picks). */
  schema?: string;
  /** The relation's own name, as the parser gives it (folded to lower case unless quoted). */
  relation: string;
  /** The column's name, as the parser gives it; `*` for the whole row, or with `position` one column by its place. */
  column: string;
  /** With column `*`: the relation's column at this place (0-based, its live columns in order). */
  position?: number;
  /** An unqualified name that may not be a column of this relation (several row sources were in scope). */
  maybe?: true;
}

/** What one result column is computed from. */
export interface ColumnLineage {
  sources: ColumnSource[];
  /** A function in FROM (or a row source the analysis does not know) computes it: it may carry anything the statement reads. */
  opaque?: true;
}

/**
 * A run of result columns: one column (with its name, when PostgreSQL names it so; `plain` when it is
 * a column reference, to which RowDescription gives an origin), the columns of a
 * relation from its `from`-th on (a star: as many as the catalog says), or a record of unknown width
 * and names (a function's), each column of which carries `any`.
 */
export type LineageSegment = { name?: string; lineage: ColumnLineage; plain?: true } | { schema?: string; relation: string; from?: number } | { any: ColumnLineage };

/** A relation a statement names: its own name, and its schema when the SQL names one. */
export interface RelationName {
  schema?: string;
  relation: string;
}

/**
 * The lineage of a statement (see `analyze/lineage.ts`): its result columns, one list per branch of
 * a set operation (a result column is the union of the branches' columns at its place), every
 * column it reads anywhere, and every relation it scans.
 */
export interface StatementLineage {
  branches: LineageSegment[][];
  reads: ColumnSource[];
  relations: RelationName[];
  /** What the arguments of `pg_notify` and `set_config` calls are computed from (see `StatementFacts.sideChannel`). */
  sideChannel?: ColumnLineage;
  /**
   * What the values its writes store are computed from (SET, VALUES, an INSERT's query, ON
   * CONFLICT, MERGE), when from any column: a RETURNING column, or a CTE's, hands them back under
   * the target's column, whose origin then tells nothing of them.
   */
  assigned?: ColumnLineage;
}

/** Functions whose arguments leave through another channel than the result, or are kept where masking does not follow them, and where they go. */
export const SIDE_CHANNELS: ReadonlyMap<string, string> = new Map([
  ['pg_notify', 'it would reach the client in a NOTIFY payload, which masking cannot change'],
  ['set_config', 'it would reach the client in a setting the server reports back, which masking cannot change'],
  ['lo_from_bytea', 'a large object would keep it, and masking does not follow a value into one'],
  ['lo_put', 'a large object would keep it, and masking does not follow a value into one'],
  ['lowrite', 'a large object would keep it, and masking does not follow a value into one'],
  // A large object's id and size are kept as they are given, readable in pg_largeobject_metadata and by lo_get.
  ...['lo_create', 'lo_import', 'lo_truncate', 'lo_truncate64'].map((f): [string, string] => [f, 'a large object would keep it as its id or size, which masking does not follow']),
  ['pg_logical_emit_message', 'the write-ahead log would keep it for logical decoding, which masking does not reach'],
  ['setval', 'a sequence would keep it as its value, which masking does not follow'],
  ...['', '_shared'].flatMap((shared) =>
    ['pg_advisory_lock', 'pg_try_advisory_lock', 'pg_advisory_xact_lock', 'pg_try_advisory_xact_lock'].map((f): [string, string] => [
      `${f}${shared}`,
      'an advisory lock would show it as its key in pg_locks, which masking does not follow',
    ]),
  ),
]);

/**
 * A relation a statement creates or changes the shape of (see `analyze/ddl.ts`).
 * @see https://www.postgresql.org/docs/17/sql-createtable.html
 */
export interface RelationDdl {
  /** Its name as the SQL gives it (after a RENAME or SET SCHEMA: the new one). */
  relation: RelationName;
  /** `table` or `view` made (a materialized view, and a table made by a query, are views here), `altered` columns, `renamed` relation, `schema` renamed (every name in it moved). */
  kind: 'table' | 'view' | 'altered' | 'renamed' | 'schema';
  /** A table's columns in order, when its DDL lists them all. */
  columns?: string[];
  /** `CREATE TABLE t (LIKE s, …)`: the relations whose columns it copies, and the columns it lists besides. */
  like?: RelationName[];
  listed?: string[];
  /** Tables it inherits from or is a partition of. */
  inherits?: RelationName[];
  /** A view's columns, as its query computes them. */
  view?: LineageSegment[];
  /** ALTER TABLE: the columns it adds, and renames (new name to old). */
  added?: string[];
  renamed?: Record<string, string>;
  /**
   * ALTER TABLE: the columns whose values it computes over the table's rows and stores (ADD COLUMN
   * … GENERATED AS or DEFAULT, SET EXPRESSION, TYPE … USING), each with the columns its expression reads.
   */
  computed?: Record<string, string[]>;
  /** RENAME TO / SET SCHEMA: the name it had. */
  was?: RelationName;
}

/** A column a MySQL select list reads: its name (lower-case), and the base tables (`db.table`) it may be a column of. */
export interface OutputRead {
  column: string;
  tables: string[];
}

/**
 * The outcome of `analyzeSql`: every statement, or why the text is not SQL.
 * An empty or comment-only string is `ok` with no statements (the server answers it with
 * EmptyQueryResponse).
 * @see https://www.postgresql.org/docs/17/protocol-flow.html#PROTOCOL-FLOW-SIMPLE-QUERY
 */
export type Analysis =
  | {
      ok: true;
      statements: StatementFacts[];
      /**
       * Byte offsets of the numeric constants (A_Const integer / float) the analysis walked, in
       * text order: lets a caller prove that two texts differ only in numeric literals (see the
       * shape cache of `StatementJudge`).
       */
      numericLiterals: number[];
      /**
       * A fact was decided by comparing the values of numeric constants, not only their places
       * (the `missingWhere` tautology `id < 5 OR id >= 5`, where `id < 5 OR id >= 6` restricts):
       * a text differing only in numeric literals may have other facts, so this analysis proves
       * no shape.
       */
      literalSensitive?: boolean;
      /** The analysis of a text of the same proven shape whose facts these are (MySQL's shape cache): its decision is this text's. */
      sameShapeAs?: Analysis;
    }
  | {
      ok: false;
      error: string;
      /** Whose SQL it could not be read as (default PostgreSQL). */
      parser?: 'PostgreSQL' | 'MySQL';
    };
