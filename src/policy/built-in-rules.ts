/**
 * The built-in rules of statement decisions (./decide.ts), which apply whatever the policy's own
 * rules say: their names, what each names (kinds, functions), and the denials that need nothing of
 * a judge but the statement.
 */
import { globMatches } from '../glob.js';
import type { StatementFacts } from './sql/analyze.js';
import { expandKind, type StatementKind } from './schema.js';

/** Rule name of decisions made by read-only access. */
export const READ_ONLY_RULE = 'read-only-access';

/**
 * Functions that run SQL handed to them as text, which the gateway never parses (so no rule, no
 * limit and no read-only check sees what it does): `query_to_xml` and its kin, `ts_stat`, `ts_rewrite` (its
 * form that takes a query), and
 * tablefunc's `crosstab` / `connectby` and xml2's `xpath_table`, which build or take a query.
 * Refused under read-only access and under server timeouts, as DO blocks are.
 * @see https://www.postgresql.org/docs/current/functions-xml.html#FUNCTIONS-XML-MAPPING
 * @see https://www.postgresql.org/docs/current/textsearch-features.html#TEXTSEARCH-STATISTICS
 * @see https://www.postgresql.org/docs/current/tablefunc.html
 * @see https://www.postgresql.org/docs/current/xml2.html
 */
export const SQL_TEXT_FUNCTIONS: ReadonlySet<string> = new Set(['query_to_xml', 'query_to_xmlschema', 'query_to_xml_and_xmlschema', 'ts_stat', 'ts_rewrite', 'crosstab*', 'connectby', 'xpath_table']);

/**
 * Built-in (and contrib) functions read-only access refuses, by name in any schema; a name
 * ending in `*` stands for every name it starts. A read-only transaction does not stop them
 * (PostgreSQL 15 runs each of lo_create, lo_import, lo_export, pg_stat_reset,
 * pg_logical_emit_message, pg_switch_wal in one), and they act beyond the database's tables:
 * - server files: pg_read_file, pg_read_binary_file, pg_stat_file, pg_ls_*, lo_import,
 *   lo_export, adminpack's pg_file_* and pg_logdir_ls, the configuration files' views
 *   (pg_hba_file_rules, pg_ident_file_mappings, pg_show_all_file_settings);
 * - large objects written: lo_create, lo_creat, lo_unlink, lowrite, lo_put, lo_truncate*,
 *   lo_from_bytea;
 * - other databases, or SQL text run unseen: dblink*, {@link SQL_TEXT_FUNCTIONS};
 * - the server's state: configuration reload, log rotation, WAL switch, restore points,
 *   promotion, backups, WAL replay, statistics resets, memory-context logging, collation
 *   import, logical messages, the OID counter, pg_upgrade's binary_upgrade_*, pg_surgery and
 *   pg_visibility's repairs, replication origins and slots (created, dropped, copied, advanced,
 *   consumed).
 * Functions that signal other backends are refused for everyone (see {@link BACKEND_SIGNAL_RULE});
 * set_config is judged by the setting it changes. A function the database already holds that
 * calls one of these cannot be seen (the upstream session's read-only transactions still refuse
 * its table writes).
 * @see https://www.postgresql.org/docs/current/functions-admin.html
 * @see https://www.postgresql.org/docs/current/lo-funcs.html
 * @see https://www.postgresql.org/docs/current/dblink.html
 * @see https://www.postgresql.org/docs/current/adminpack.html
 * @see https://www.postgresql.org/docs/current/pgsurgery.html
 * @see https://www.postgresql.org/docs/current/pgvisibility.html
 */
export const READ_ONLY_DENIED_FUNCTIONS: ReadonlySet<string> = new Set([
  // Server files.
  'pg_read_file',
  'pg_read_file_old',
  'pg_read_binary_file',
  'pg_stat_file',
  'pg_ls_*',
  'pg_file_*',
  'pg_logdir_ls',
  'lo_import',
  'lo_export',
  'pg_hba_file_rules',
  'pg_ident_file_mappings',
  'pg_show_all_file_settings',
  // Large objects written.
  'lo_create',
  'lo_creat',
  'lo_unlink',
  'lowrite',
  'lo_put',
  'lo_truncate*',
  'lo_from_bytea',
  // Other databases, SQL text.
  'dblink*',
  ...SQL_TEXT_FUNCTIONS,
  // Server state.
  'pg_reload_conf',
  'pg_rotate_logfile*',
  'pg_switch_wal',
  'pg_switch_xlog',
  'pg_create_restore_point',
  'pg_promote',
  'pg_start_backup',
  'pg_stop_backup',
  'pg_backup_start',
  'pg_backup_stop',
  'pg_wal_replay_*',
  'pg_xlog_replay_*',
  'pg_stat_reset*',
  'pg_stat_statements_reset',
  'pg_log_backend_memory_contexts',
  'pg_import_system_collations',
  'pg_logical_emit_message',
  'pg_nextoid',
  'binary_upgrade_*',
  'heap_force_*',
  'pg_truncate_visibility_map',
  // Replication.
  'pg_replication_origin_*',
  'pg_create_physical_replication_slot',
  'pg_create_logical_replication_slot',
  'pg_drop_replication_slot',
  'pg_copy_physical_replication_slot',
  'pg_copy_logical_replication_slot',
  'pg_replication_slot_advance',
  'pg_logical_slot_get_*',
  'pg_sync_replication_slots',
]);

/** The first of `functions` (as in StatementFacts: `schema.name` or `name`) that `set` names, in any schema. */
export function findFunction(functions: readonly string[], set: ReadonlySet<string>): string | undefined {
  return functions.find((f) => {
    const name = f.slice(f.lastIndexOf('.') + 1);
    if (set.has(name)) return true;
    for (const entry of set) if (entry.includes('*') && globMatches(entry, name)) return true;
    return false;
  });
}

/**
 * The strongest table lock read-only access may take with LOCK: ACCESS SHARE, the lock a SELECT
 * takes, which only conflicts with ACCESS EXCLUSIVE (most ALTER TABLE, DROP, VACUUM FULL), as
 * a long SELECT does. Every stronger mode holds up more of what other sessions do: ROW SHARE
 * (what SELECT FOR UPDATE takes, which a read-only transaction refuses) conflicts with EXCLUSIVE
 * too, ROW EXCLUSIVE with CREATE INDEX, SHARE UPDATE EXCLUSIVE with VACUUM and ANALYZE, SHARE and
 * stronger with every write. A read-only transaction itself takes any of them.
 * @see https://www.postgresql.org/docs/current/explicit-locking.html#LOCKING-TABLES
 */
export const READ_ONLY_LOCK_MODE = 'ACCESS SHARE';

/**
 * Rule name of the built-in denial of statements that would make the server split later SQL
 * text differently from the gateway's parser (`standard_conforming_strings` off, an encoding
 * that is not ASCII-safe): see `changesLexing` in {@link StatementFacts}. It applies whatever
 * the policy says, because every later decision would be made on a misread text.
 * @see https://www.postgresql.org/docs/17/sql-syntax-lexical.html#SQL-SYNTAX-STRINGS-ESCAPE
 * @see https://www.postgresql.org/docs/17/multibyte.html#MULTIBYTE-CHARSET-SUPPORTED
 */
export const LEXING_RULE = 'parser-consistency';

/**
 * Rule name of the denial of statements that return a value computed from a masked column
 * (`masking.derived: deny`): see {@link DerivedValueCheck}.
 * @see https://www.postgresql.org/docs/17/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-ROWDESCRIPTION
 */
export const DERIVED_RULE = 'masking-derived';

/**
 * Rule name of the denial of statements that send a value computed from a masked column where
 * masking cannot follow it: a NOTIFY payload (`pg_notify`), a reported setting
 * (`set_config('application_name', ...)` comes back in ParameterStatus), a large object, the
 * rows a write stores, a table a query makes (see `SIDE_CHANNELS` and `keptValues` in the
 * analysis); and of what would move a masked column from under its rule or run code hoop does not
 * read. Applies whatever `masking.derived` says.
 * @see https://www.postgresql.org/docs/17/sql-notify.html
 */
export const SIDE_CHANNEL_RULE = 'masking-side-channel';

/**
 * Rule name of the built-in denial of functions that signal other backends
 * (`pg_terminate_backend`, `pg_cancel_backend`, `pg_signal_backend`): every identity shares the
 * gateway's database role, so one could end or cancel another's session. A policy rule whose
 * `functions` name the function and whose action is allow lifts it.
 * @see https://www.postgresql.org/docs/17/functions-admin.html#FUNCTIONS-ADMIN-SIGNAL
 */
export const BACKEND_SIGNAL_RULE = 'backend-signal';

/** The built-in rule that keeps the names rules on tables use: a table a rule names, or a schema, is not renamed through hoop, nor its partitions or inheritance changed. */
export const RULED_RENAME_RULE = 'ruled-table-rename';

/**
 * The built-in rule that, with rules on tables, refuses code whose writes the write guard would not
 * count: a DO block or a function or procedure whose body the gateway cannot read (a string: it
 * could write, or rename a ruled table, unseen), and a function or procedure made whose body
 * writes (its writes run when it is called, uncounted: a trigger they fire, a view replaced since,
 * a row limit), unless an allow rule names its kind, `do` or `create-function`, itself.
 */
export const UNGUARDED_CODE_RULE = 'unguarded-code';
/** ALTER TABLE subcommands that change a table's place among others: ATTACH or DETACH PARTITION, INHERIT or NO INHERIT. */
export const REPARENTS = /\b(?:attach|detach)\s+partition\b|\binherit\b/i;
/** SQL comments (read as a blank, as the lexer does: `DETACH /**\/ PARTITION` is DETACH PARTITION); one inside a literal read so too only widens what is refused. */
export const COMMENTS = /\/\*[\s\S]*?\*\/|--[^\n]*/g;

/** Functions that signal other server processes. */
export const SIGNAL_FUNCTIONS = new Set(['pg_terminate_backend', 'pg_cancel_backend', 'pg_signal_backend']);

/**
 * Rule name of the refusal of a `SET` / `set_config` that would raise a server timeout above the
 * access's limit (`statementTimeout`, `lockTimeout`, `idleInTransactionTimeout`), turn it off
 * (any value the server reads as 0: see `parseTimeSetting`), or set it from an expression; a
 * set_config stored in a view or function, a function's SET clause, and a write to pg_settings
 * count (see `StatementFacts.settings`). With any limit, code the gateway cannot read is refused
 * too: a DO block, a function body given as a string (not BEGIN ATOMIC or RETURN), a call of
 * {@link SQL_TEXT_FUNCTIONS}. (What a function the database already holds does is not seen.)
 * @see https://www.postgresql.org/docs/17/runtime-config-client.html#GUC-STATEMENT-TIMEOUT
 */
export const LIMIT_RULE = 'session-limit';

/** Rule name of decisions about SQL that does not parse. */
export const UNPARSEABLE_RULE = 'unparseable';

/**
 * Kinds that read-only access denies: writes (`write`), DDL (`ddl`: CLUSTER, REINDEX and REFRESH
 * MATERIALIZED VIEW are `alter`), GRANT/REVOKE, changing the role or session authorization (SET
 * ROLE, SET SESSION AUTHORIZATION, set_config of either, or of a setting named by an expression),
 * running code whose effects cannot be seen (DO, CALL), and VACUUM / ANALYZE (`vacuum`: they
 * write to the table and its statistics, and a read-only transaction runs them). COPY to or from
 * a server file or program, asking for read-write transactions (`default_transaction_read_only`
 * off, `transaction_read_only` reset, BEGIN READ WRITE, ...), LOCK in a mode stronger than
 * {@link READ_ONLY_LOCK_MODE}, CHECKPOINT, LOAD and calls of {@link READ_ONLY_DENIED_FUNCTIONS}
 * are denied too.
 * @see https://www.postgresql.org/docs/17/sql-set-transaction.html (what a read-only transaction refuses)
 */
export const READ_ONLY_DENIED_KINDS: ReadonlySet<StatementKind> = new Set<StatementKind>([
  ...expandKind('write'),
  ...expandKind('ddl'),
  'grant',
  'revoke',
  'set-role',
  'set-session-authorization',
  'do',
  'call',
  'vacuum',
]);

/** A statement being judged: its facts, its 0-based place among all the statements of the text, and how reasons name it (`where`, `what`). */
export interface StatementAt {
  facts: StatementFacts;
  index: number;
  all: readonly StatementFacts[];
  where: string;
  what: string;
}

/** A built-in rule's denial of a statement: the rule, the message for the client, the reason for people. */
export interface Denial {
  rule: string;
  message: string;
  reason: string;
}

/** A statement that would, or could, make the server read later SQL text differently from the gateway's parser (see {@link LEXING_RULE}). */
export function lexingDenial({ facts, where, what }: StatementAt): Denial | undefined {
  if (!facts.changesLexing) return undefined;
  return {
    rule: LEXING_RULE,
    message: `${facts.lexingNote ?? "standard_conforming_strings must stay on, and client_encoding and COPY's ENCODING must stay ASCII-safe (e.g. UTF8)"}, through the gateway${
      facts.settings.some((s) => s.name === undefined) ? '; a setting the gateway cannot name (set_config of an expression, a write to pg_settings or a view of it) could be either' : ''
    }`,
    reason: `${where} (${what}) would, or could, make the server read later SQL text differently from the gateway's parser`,
  };
}

/**
 * What read-only access refuses in a statement (a phrase for messages), or undefined when it may
 * run. See {@link READ_ONLY_DENIED_KINDS}.
 */
export function readOnlyRefusal(facts: StatementFacts): string | undefined {
  const kind = facts.kinds.find((k) => READ_ONLY_DENIED_KINDS.has(k));
  if (kind !== undefined) return `${kind} statements`;
  if (facts.program) return `${facts.kinds[0]} with PROGRAM statements`;
  if (facts.copy?.target === 'file') return `${facts.kinds[0]} with a server file statements`;
  if (facts.readWrite) return 'read-write transaction statements';
  if (facts.lockMode !== undefined && facts.lockMode !== READ_ONLY_LOCK_MODE) return `LOCK in ${facts.lockMode} mode (only ${READ_ONLY_LOCK_MODE}, what a SELECT takes)`;
  if (facts.serverCommand !== undefined) return `${facts.serverCommand.toUpperCase()} statements`;
  const fn = findFunction(facts.functions, READ_ONLY_DENIED_FUNCTIONS);
  if (fn !== undefined) return `calling ${fn}() (it reaches server files, other databases or the server's state, or runs SQL unseen)`;
  return undefined;
}

/**
 * Functions that read tables named in a string (a table or schema name, a query, another
 * database's query) and return their values as one opaque value (XML, records): rules on
 * tables cannot see what they read, masking sees no column origin in what they return.
 * @see https://www.postgresql.org/docs/current/functions-xml.html#FUNCTIONS-XML-MAPPING
 * @see https://www.postgresql.org/docs/current/dblink.html
 */
export const UNSEEN_READ_FUNCTIONS: ReadonlySet<string> = new Set([
  ...SQL_TEXT_FUNCTIONS,
  'table_to_xml*',
  'cursor_to_xml*',
  'schema_to_xml*',
  'database_to_xml*',
  'dblink*',
  // pageinspect: a relation's pages, by its name in a string.
  'get_raw_page',
  'bt_page_items',
  'bt_multi_page_stats',
]);

/**
 * Rule name of the refusal of {@link UNSEEN_READ_FUNCTIONS} when some statement rule of the
 * identity names tables: what they read is not in the statement's text.
 */
export const UNSEEN_READ_RULE = 'unseen-read';

/**
 * What, in a statement, reads column values past masking (undefined when nothing does): a call
 * of {@link UNSEEN_READ_FUNCTIONS}. (The planner's statistics are masked columns: see
 * `STATISTICS_VALUE_COLUMNS` in ./masking/rules.ts.)
 */
export function unmaskableRead(facts: StatementFacts): string | undefined {
  const fn = findFunction(facts.functions, UNSEEN_READ_FUNCTIONS);
  return fn === undefined ? undefined : `${fn}()`;
}
