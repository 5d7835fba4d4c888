/**
 * What the gateway lets a MySQL session's client run, command by command: commands refused
 * whatever the policy (another sign-in, replication, the server's administration, what hoop does
 * not know), and on a session the policy governs, each command's SQL judged by the policy's own
 * judge on the MySQL reading of it (src/policy/mysql/analyze.ts), as the server lexes it under the
 * session's `sql_mode` and character set ({@link CommandJudge.govern} reads them at sign-in, with
 * the server's base tables when the policy masks, and which of them have a column a name rule
 * masks; a query that sets them to what hoop can read is followed, {@link CommandJudge.answered}). An access's server timeouts are set at sign-in on MariaDB ({@link MARIADB_LIMITS}), and
 * no statement may change them; a write under a row limit is counted before it commits
 * (./write-guard.ts). What hoop cannot apply (timeouts on MySQL 8, whose `max_execution_time`
 * bounds SELECTs only) refuses the statement with the reason: nothing is relayed unjudged.
 *
 * @see https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_command_phase.html
 */
import { type MysqlLexing, redactSql } from '../../policy/sql/redact.js';
import { createHash } from 'node:crypto';
import type { MysqlConnection } from '../../config/connection.js';
import { analyzeMysql, loadMysqlParser, RESULT_CHARSETS, SAFE_CHARSETS, UNSAFE_CHARSETS } from '../../policy/mysql/analyze.js';
import { OFF_LOOP_CHARS, readLongMysql } from '../../policy/mysql/long-sql.js';
import type { MysqlReading } from '../../policy/mysql/analyze.js';
import { MaskingRules } from '../../policy/masking/rules.js';
import type { StatementFacts } from '../../policy/sql/analyze/facts.js';
import type { SessionLimits } from '../../policy/limits.js';
import { WRITE_GUARD_RULE, type WriteGuard } from '../../policy/write-limit.js';
import type { Analysis } from '../../policy/sql/analyze/facts.js';
import type { ReviewAsk, SessionJudge, TunnelSession } from '../../session/engine.js';
import type { MySqlClient } from '../wire/client.js';
import { Cap, MariaCap } from '../wire/handshake.js';
import { Command } from '../wire/results.js';
import { OWN_ROWS_ENGINES, readsOnlyArguments } from '../../policy/mysql/output-reads.js';
import { MysqlResultMasker } from './result-masker.js';
import { CatalogJudge, type CatalogReads, type Relations } from '../../session/catalog-judge.js';
import { sqlShape } from '../../policy/sql/shape.js';

/**
 * MariaDB's session variables for each of an access's server timeouts, and the value (from
 * milliseconds) each takes: `max_statement_time` in seconds with a fraction, the others whole
 * seconds (at least 1).
 * @see https://mariadb.com/kb/en/server-system-variables/#max_statement_time
 * @see https://mariadb.com/kb/en/server-system-variables/#idle_transaction_timeout
 */
const MARIADB_LIMITS: Readonly<Record<keyof SessionLimits, ReadonlyArray<readonly [string, (ms: number) => string]>>> = {
  statement_timeout: [['max_statement_time', (ms) => (ms / 1000).toFixed(3)]],
  lock_timeout: [
    ['innodb_lock_wait_timeout', (ms) => String(Math.max(1, Math.ceil(ms / 1000)))],
    ['lock_wait_timeout', (ms) => String(Math.max(1, Math.ceil(ms / 1000)))],
  ],
  idle_in_transaction_session_timeout: [['idle_transaction_timeout', (ms) => String(Math.max(1, Math.ceil(ms / 1000)))]],
};

/** The server's timeout variables: a session under an access's timeouts may set none of them. */
const TIMEOUT_VARIABLES = new Set([
  'max_statement_time',
  'max_execution_time',
  'innodb_lock_wait_timeout',
  'lock_wait_timeout',
  'idle_transaction_timeout',
  'idle_readonly_transaction_timeout',
  'idle_write_transaction_timeout',
]);

/** Whether statement `s` may run stored code (a procedure, a function not the server's own, the triggers of a write). */
function runsStoredCode(s: StatementFacts): boolean {
  return s.kinds.some((k) => STORED_CODE_KINDS.has(k)) || s.functions.some((f) => !readsOnlyArguments(f));
}

/** The kinds of statement that run stored code: a CALL, and the writes a trigger may follow. */
const STORED_CODE_KINDS = new Set<string>(['call', 'insert', 'update', 'delete', 'merge', 'replace', 'load']);

/** Commands refused whatever the policy: another sign-in on the session, replication, the server's own administration. */
const REFUSED_COMMANDS: ReadonlyMap<number, string> = new Map([
  [Command.CHANGE_USER, 'COM_CHANGE_USER (the gateway signed in; another user is another connection)'],
  [0x08, 'COM_SHUTDOWN'],
  [0x0d, 'COM_DEBUG'],
  [0x12, 'COM_BINLOG_DUMP'],
  [0x13, 'COM_TABLE_DUMP'],
  [0x15, 'COM_REGISTER_SLAVE'],
  [0x1e, 'COM_BINLOG_DUMP_GTID'],
  [Command.STMT_FETCH, 'COM_STMT_FETCH (cursors are not relayed: execute without a cursor)'],
]);

/** Every command hoop knows to be one; anything else is refused. */
const KNOWN_COMMANDS = new Set<number>([...Object.values(Command), Command.STATISTICS]);

/** The functions that read what the session's last statement left: its rows changed or found, the id it inserted. */
const DIAGNOSTICS = new Set(['row_count', 'found_rows', 'last_insert_id']);
/** Longest query {@link CommandJudge.readsDiagnostics} reads. */
const MAX_DIAGNOSTICS_SQL = 1024;

/** The SQL a command asks the server to run, as the policy judges it; undefined for a command that carries none. */
function sqlOf(code: number, payload: Buffer): string | undefined {
  const rest = (): string => payload.toString('utf8', 1);
  const quoted = (name: string): string => `\`${name.replace(/`/g, '``')}\``;
  if (code === Command.QUERY || code === Command.STMT_PREPARE) return rest();
  if (code === Command.INIT_DB) return `USE ${quoted(rest())}`;
  if (code === Command.FIELD_LIST) {
    const end = payload.indexOf(0, 1);
    return `SHOW COLUMNS FROM ${quoted(payload.toString('utf8', 1, end < 0 ? payload.length : end))}`;
  }
  return undefined;
}

/** The most tables masking looks up (a server with more has its masked sessions refused). */
const MAX_TABLES = 100_000;
/** The most columns of those tables masking looks up when the policy masks columns by name. */
const MAX_COLUMNS = 1_000_000;

/** The longest SQL text the gateway judges (a longer one is refused); one of {@link OFF_LOOP_CHARS} or more is analysed off the event loop first ({@link reads}). */
const MAX_JUDGED_SQL = 4 * 1024 * 1024;

/** What the policy makes of a command: a refusal, a review to hold it for, or nothing (it runs). */
export type Judged = { rule: string; reason: string } | { ask: ReviewAsk } | { kill: Kill } | undefined;

/** A `KILL [QUERY | CONNECTION] <id>` a client sent: of the query, or of the whole session, a client greeted with `id` runs. */
export interface Kill {
  query: boolean;
  id: number;
}

/** The KILL a driver's cancel sends (MariaDB's HARD and SOFT too), alone in its query. */
const KILL = /^\s*KILL\s+(?:(?:HARD|SOFT)\s+)?(?:(QUERY|CONNECTION)\s+)?(\d{1,10})\s*;?\s*$/i;

/** The KILL command `payload` sends as a query; 'prepared' for a prepare of one (its id bound later, which hoop would not see). */
function killOf(code: number, payload: Buffer): Kill | 'prepared' | undefined {
  if (code !== Command.QUERY && code !== Command.STMT_PREPARE) return undefined;
  // Read as text only when it starts with a K (after spaces): every other query is no KILL.
  let at = 1;
  while (at < payload.length && (payload[at] === 0x20 || (payload[at]! >= 0x09 && payload[at]! <= 0x0d))) at++;
  if ((payload[at]! | 0x20) !== 0x6b) return undefined;
  const sql = payload.toString('utf8', 1);
  if (code === Command.STMT_PREPARE) return /^\s*KILL\b/i.test(sql) ? 'prepared' : undefined;
  const m = KILL.exec(sql);
  const id = m ? Number(m[2]) : Number.NaN;
  return m && id <= 0xffffffff ? { query: m[1]?.toUpperCase() === 'QUERY', id } : undefined;
}

/** A write the relay runs under a row limit (./write-guard.ts): the limit, and the SQL it runs (what a review of it shows). */
export type GuardedWrite = WriteGuard & { sql: string; tables: readonly string[] };

/** sql_mode flags under which MariaDB reads SQL another way than hoop's pre-pass does. */
const UNREADABLE_MODES = ['MSSQL', 'ORACLE', 'DB2', 'MAXDB', 'POSTGRESQL'];

/**
 * The sql_mode names a SET may give that hoop follows (MariaDB's, lower-case): a numeric mode, or a
 * name hoop does not know, is not followed.
 * @see https://mariadb.com/kb/en/sql-mode/
 */
const KNOWN_MODES = new Set(
  (
    'allow_invalid_dates ansi ansi_quotes empty_string_is_null error_for_division_by_zero high_not_precedence ignore_bad_table_options ' +
    'ignore_space mysql323 mysql40 no_auto_create_user no_auto_value_on_zero no_backslash_escapes no_dir_in_create no_engine_substitution ' +
    'no_field_options no_key_options no_table_options no_unsigned_subtraction no_zero_date no_zero_in_date only_full_group_by ' +
    'pad_char_to_full_length pipes_as_concat real_as_float simultaneous_assignment strict_all_tables strict_trans_tables ' +
    'time_round_fractional traditional'
  ).split(' '),
);

/** How the server lexes SQL under sql_mode `mode` (comma-separated names), or which of its modes hoop cannot read under. */
function modeReading(mode: string): { ansiQuotes: boolean; noBackslashEscapes: boolean; odd?: string } {
  const modes = mode.toUpperCase().split(',');
  const odd = UNREADABLE_MODES.find((m) => modes.includes(m));
  return { ansiQuotes: modes.includes('ANSI_QUOTES') || modes.includes('ANSI'), noBackslashEscapes: modes.includes('NO_BACKSLASH_ESCAPES'), ...(odd ? { odd } : {}) };
}

/** An `information_schema.TABLES` condition: the table's engine keeps its own rows. */
const OWN_ROWS_SQL = `LOWER(ENGINE) IN (${[...OWN_ROWS_ENGINES].map((e) => `'${e}'`).join(', ')})`;

/** The character set settings a SET may change. */
const CHARSET_SETTINGS = new Set(['names', 'character_set_client', 'character set', 'charset', 'character_set_results']);

/**
 * The reading a query's SQL leaves the session with, when its last statement alone changes how
 * text is read, by a SET of sql_mode to modes hoop knows by name or of the character set to UTF-8
 * (what runs after it in the same text would be read under the new mode: not followed).
 */
function followed(analysis: Analysis, options: MysqlReading): MysqlReading | undefined {
  if (!analysis.ok) return undefined;
  const last = analysis.statements.at(-1);
  if (!last?.changesLexing || analysis.statements.slice(0, -1).some((s) => s.changesLexing) || !last.kinds.every((k) => k === 'set')) return undefined;
  let next: MysqlReading = { ...options };
  for (const setting of last.settings) {
    if (setting.name === 'sql_mode') {
      const names = setting.value?.split(',') ?? [];
      if (setting.value === undefined || (setting.value !== '' && !names.every((n) => KNOWN_MODES.has(n)))) return undefined;
      const reading = modeReading(setting.value);
      next = { ...next, ansiQuotes: reading.ansiQuotes, noBackslashEscapes: reading.noBackslashEscapes };
    } else if (setting.name !== undefined && CHARSET_SETTINGS.has(setting.name)) {
      if (setting.value === undefined || !SAFE_CHARSETS.has(setting.value)) return undefined;
      next = { ...next, singleByte: false };
    } else if (setting.name === undefined) return undefined;
  }
  return Object.freeze(next);
}

/** How the session's SQL is read; `unreadable` when it cannot be. */
interface Reading {
  options: MysqlReading;
  unreadable?: string;
}

/**
 * A query the session allowed, kept by its proven shape (src/policy/sql/shape.ts: texts of it have
 * the same facts): how SQL was read, the judge, the masker's tables, the facts, and what the judgment read of the catalog.
 */
interface Allowed {
  options: MysqlReading;
  judge: SessionJudge | undefined;
  /** What the masker knew of the server's tables then ({@link MysqlResultMasker.generation}). */
  masker: number | undefined;
  facts: readonly StatementFacts[];
  reads: CatalogReads | undefined;
}

/** Shapes whose allowed verdict a session keeps; past it the oldest go. */
const MAX_ALLOWED = 64;

/** See the module documentation. */
export class CommandJudge {
  readonly #session: TunnelSession<MysqlConnection>;
  /** How the session's SQL is read, once the policy governs it (else statements relay unjudged). */
  #reading: Reading | undefined;
  /** The masking of the session's results, when the policy masks anything for it. */
  masker: MysqlResultMasker | undefined;
  /** What the last command allowed runs, as the analysis read it (undefined: it carried no SQL, or none was read). */
  lastFacts: readonly StatementFacts[] | undefined;
  /** The statement that sets the access's timeouts (MariaDB), when it sets any. */
  timeoutsSql: string | undefined;
  /** {@link timeoutsSql} when the last command judged may run stored code (a CALL, a function not the server's own, a write a trigger may follow): set again once it has run. */
  lastReset: string | undefined;
  /** The row limit the last command judged runs under, if it writes under one. */
  lastGuard: GuardedWrite | undefined;
  /** How the session's SQL is read once the query allowed last has run, when it changes that (see {@link answered}). */
  #following: MysqlReading | undefined;
  /** The command whose SQL was read off the event loop last. */
  #read: Buffer | undefined;
  /** The server's InnoDB tables at sign-in (`db.table`, lower-case), when a row limit may apply: only a write to those can be rolled back. */
  #transactional: ReadonlySet<string> | undefined;
  /** The session's judge with rules on tables, judging relations through the catalog (src/session/catalog-judge.ts). */
  #catalog: CatalogJudge | undefined;
  /** The command whose relations were looked up last (a command is not waited for twice). */
  #lookedUp: Buffer | undefined;
  /** Queries allowed, by shape: a text of one runs with its verdict while nothing that verdict read has changed ({@link #kept}). */
  readonly #allowed = new Map<string, Allowed>();
  /** The last text analysed, as read then (see {@link #analyzed}). */
  #lastRead: { sql: string; options: MysqlReading; analysis: Analysis } | undefined;

  constructor(session: TunnelSession<MysqlConnection>) {
    this.#session = session;
  }

  /** How the server lexes the session's strings now (its sql_mode), once read at sign-in; the recording's redaction reads them so too. */
  get lexing(): MysqlLexing | undefined {
    return this.#reading?.options;
  }

  /** Whether a COM_STMT_EXECUTE is judged again by the text it runs (with rules on tables, through the catalog). */
  get judgesHeld(): boolean {
    return this.#catalog !== undefined && this.#reading !== undefined && !this.#reading.unreadable;
  }

  /** Whether the policy governs the session (then {@link govern} must run before its first command). */
  get governs(): boolean {
    const { judge, masking, readOnly, limits } = this.#session;
    return Boolean(judge || masking || readOnly || limits);
  }

  /**
   * Reads how the server will lex the session's SQL (its `sql_mode` and the client's character
   * set), and opens read-only access's session read-only, before the client's first command.
   */
  /**
   * Whether command `payload` is a query of what the statement before it left (`SELECT ROW_COUNT()`,
   * `FOUND_ROWS()`, `LAST_INSERT_ID()`, `@@warning_count`; no table, nothing else): the gateway's own
   * statements wait until it has run, so that it reads the client's statement, not the gateway's.
   */
  readsDiagnostics(payload: Buffer): boolean {
    if (payload[0] !== Command.QUERY || payload.length > 1 + MAX_DIAGNOSTICS_SQL || !this.#reading) return false;
    const analysis = this.#analyzed(payload.toString('utf8', 1));
    return (
      analysis.ok &&
      analysis.statements.length === 1 &&
      analysis.statements.every((s) => s.kinds.length === 1 && s.kinds[0] === 'select' && s.tables.length === 0 && s.functions.every((f) => DIAGNOSTICS.has(f)))
    );
  }

  /** The session's end: what its statements were redefining settles. */
  close(): void {
    this.#catalog?.ended();
  }

  /** Reads how the session's server reads SQL and sets it up as the policy governs it; `relations`: the connection's, for rules on tables. */
  async govern(client: MySqlClient, agreed: number, relations?: (reading: MysqlReading) => Relations): Promise<void> {
    await loadMysqlParser();
    const [state] = await client.query('SELECT @@SESSION.sql_mode, @@SESSION.character_set_client, @@SESSION.character_set_results');
    const [mode = '', charset = '', results = ''] = state && 'rows' in state ? (state.rows[0] ?? []).map((v) => (v ?? '').toLowerCase()) : [];
    const { odd, ...lexing } = modeReading(mode);
    this.#reading = {
      // Frozen, and replaced when the session's reading changes: the analyses kept for it are found by the object (src/policy/mysql/analyze.ts).
      options: Object.freeze({
        ...lexing,
        singleByte: !charset.startsWith('utf8'),
        multiStatements: (agreed & Cap.MULTI_STATEMENTS) !== 0,
        database: this.#session.connection.database,
        // MySQL runs /*!NNNNN … */ by its own version, which the gateway cannot know: those comments are refused.
        flavor: client.greeting.serverVersion.includes('MariaDB') ? 'mariadb' : 'mysql',
      } as const),
      ...(odd ? { unreadable: `the server's sql_mode has ${odd}, under which it reads SQL another way` } : {}),
      ...(UNSAFE_CHARSETS.has(charset) ? { unreadable: `the client's character set ${charset} can hide a quote in a character` } : {}),
      // The set the client asked for at sign-in (its handshake's collation) is the results' too.
      ...(!RESULT_CHARSETS.has(results) ? { unreadable: `results in the character set ${results || 'of each column'}, which the detectors cannot read` } : {}),
    };
    const { judge } = this.#session;
    if (judge?.tableRules && relations) {
      const reading = this.#reading;
      this.#catalog = new CatalogJudge(judge, relations(reading.options), (sql) => this.#analyzed(sql));
    }
    if (this.#session.readOnly) await client.query('SET SESSION TRANSACTION READ ONLY');
    if (this.#session.judge?.limitsRows) {
      const [innodb] = await client.query(
        `SELECT LOWER(CONCAT(TABLE_SCHEMA, '.', TABLE_NAME)) FROM information_schema.TABLES WHERE TABLE_TYPE = 'BASE TABLE' AND ENGINE = 'InnoDB' LIMIT ${MAX_TABLES}`,
      );
      this.#transactional = new Set(innodb && 'rows' in innodb ? innodb.rows.map((r) => r[0] ?? '') : []);
    }
    const limits = Object.entries(this.#session.limits ?? {}) as Array<[keyof SessionLimits, number]>;
    if (limits.length > 0 && this.#reading.options.flavor === 'mariadb') {
      this.timeoutsSql = `SET SESSION ${limits.flatMap(([k, ms]) => MARIADB_LIMITS[k].map(([name, value]) => `${name} = ${value(ms)}`)).join(', ')}`;
      await client.query(this.timeoutsSql);
    }
    const { masking } = this.#session;
    if (masking) {
      // Only a base table's columns carry their own origin (a view's carry the view), and only one of an engine that
      // keeps its own rows (a MERGE, FEDERATED or CONNECT table's are another table's): those known at sign-in.
      const [tables] = await client.query(
        `SELECT LOWER(CONCAT(TABLE_SCHEMA, '.', TABLE_NAME)) FROM information_schema.TABLES WHERE TABLE_TYPE = 'BASE TABLE' AND ${OWN_ROWS_SQL} LIMIT ${MAX_TABLES + 1}`,
      );
      const names = tables && 'rows' in tables ? tables.rows.map((r) => r[0] ?? '') : [];
      if (names.length > MAX_TABLES) this.#reading.unreadable = `the server has more than ${MAX_TABLES} tables, more than hoop looks up for masking`;
      const rules = MaskingRules.of(masking.policy, masking.key);
      // A name rule masks a column of any table: the base tables that have such a column read what is masked.
      const maskedByName = new Set<string>();
      if (rules.hasNameRules && names.length <= MAX_TABLES) {
        const [columns] = await client.query(
          "SELECT LOWER(CONCAT(c.TABLE_SCHEMA, '.', c.TABLE_NAME)), c.COLUMN_NAME FROM information_schema.COLUMNS c JOIN information_schema.TABLES t " +
            `ON t.TABLE_SCHEMA = c.TABLE_SCHEMA AND t.TABLE_NAME = c.TABLE_NAME WHERE t.TABLE_TYPE = 'BASE TABLE' LIMIT ${MAX_COLUMNS + 1}`,
        );
        const rows = columns && 'rows' in columns ? columns.rows : [];
        if (rows.length > MAX_COLUMNS) this.#reading.unreadable = `the server's tables have more than ${MAX_COLUMNS} columns, more than hoop looks up for masking`;
        for (const [table, column] of rows) if (table && column && rules.forName(column)) maskedByName.add(table);
      }
      const extended = (client.mariadbCapabilities & MariaCap.EXTENDED_METADATA) !== 0;
      this.masker = new MysqlResultMasker(
        rules,
        new Set(names),
        maskedByName,
        (column, strategy) => this.#session.report?.masked(indexedName(column, this.#session.recording?.redactionKey), strategy),
        extended,
      );
    }
    // What the client reads of "the statement before" its first (ROW_COUNT() 0, FOUND_ROWS() 1) is what a fresh
    // connection reads, not what the gateway's own statements left: a SELECT of one row, then a statement of no result.
    await client.query('SELECT 1');
    await client.query('DO 0');
  }

  /**
   * What command `payload` waits for before it is judged, else undefined (it may be judged now):
   * its SQL analysed off the event loop when it is long (then {@link judge} answers at once), and,
   * with rules on tables, the relations it names looked up (once per command: what a lookup could
   * not answer is any table), for a COM_STMT_EXECUTE those of `held`, the text it runs.
   */
  reads(payload: Buffer, held?: string): Promise<void> | undefined {
    const long = this.#readLong(payload);
    if (!this.#catalog || payload === this.#lookedUp) return long;
    return long ? long.then(() => this.#lookups(payload, held)) : this.#lookups(payload, held);
  }

  /** The relations command `payload`'s SQL (or `held`'s) names, looked up when not known. */
  #lookups(payload: Buffer, held: string | undefined): Promise<void> | undefined {
    const code = payload[0] ?? -1;
    const governed = this.#reading;
    if ((code !== Command.QUERY && code !== Command.STMT_PREPARE && code !== Command.STMT_EXECUTE) || !governed || governed.unreadable) return undefined;
    const sql = code === Command.STMT_EXECUTE ? held : sqlOf(code, payload);
    if (sql === undefined || sql.length > MAX_JUDGED_SQL || (code === Command.QUERY && this.#kept(sql, governed))) return undefined;
    this.#lookedUp = payload;
    return this.#catalog!.pending([this.#analyzed(sql)]);
  }

  /** `sql` analysed as the session reads SQL now; asked again of the same text (a command's is asked for up to three times), the same analysis. */
  #analyzed(sql: string): Analysis {
    const options = this.#reading!.options;
    const last = this.#lastRead;
    if (last?.options === options && last.sql === sql) return last.analysis;
    const analysis = analyzeMysql(sql, options);
    this.#lastRead = { sql, options, analysis };
    return analysis;
  }

  /** Command `payload`'s SQL analysed off the event loop when it is long, else undefined. */
  #readLong(payload: Buffer): Promise<void> | undefined {
    // Its bytes bound its characters: a short command is not decoded here.
    if (payload.length <= OFF_LOOP_CHARS) return undefined;
    const sql = this.#reading && !this.#reading.unreadable ? sqlOf(payload[0] ?? -1, payload) : undefined;
    if (sql === undefined || sql.length < OFF_LOOP_CHARS || sql.length > MAX_JUDGED_SQL || payload === this.#read) return undefined;
    this.#read = payload;
    return readLongMysql(sql, this.#reading!.options);
  }

  /**
   * Why command `code` may not run on this session, or the review it waits for; undefined when it
   * may run. With rules on tables a COM_STMT_EXECUTE is judged again by `held`, the text it runs,
   * through the catalog as it is now (a view replaced since the prepare is judged as what it reads
   * now); {@link lastFacts} and {@link lastGuard} are then what it runs.
   */
  judge(code: number, payload: Buffer, held?: string): Judged {
    const named = REFUSED_COMMANDS.get(code);
    if (named) return { rule: 'hoop:mysql-command', reason: `${named} is not relayed` };
    if (!KNOWN_COMMANDS.has(code)) return { rule: 'hoop:mysql-command', reason: `command 0x${code.toString(16)} is not one hoop relays` };
    // A cursor's rows come later, by COM_STMT_FETCH, in an answer hoop does not follow.
    if (code === Command.STMT_EXECUTE && payload.length >= 6 && payload[5] !== 0)
      return { rule: 'hoop:mysql-command', reason: 'a prepared statement executed with a cursor is not relayed (execute it without one)' };
    this.lastFacts = undefined;
    this.lastGuard = undefined;
    this.lastReset = undefined;
    this.#following = undefined;
    // A KILL names a connection id as its client was greeted, which the relay turns into the server's own, governed or not.
    const kill = killOf(code, payload);
    if (kill === 'prepared') return { rule: 'hoop:mysql-kill', reason: 'KILL is relayed as a query (KILL QUERY <id>), not prepared' };
    if (kill) return { kill };
    const governed = this.#reading;
    if (!governed) return undefined;
    if (code === Command.SET_OPTION && payload.length >= 3) governed.options = Object.freeze({ ...governed.options, multiStatements: payload.readUInt16LE(1) === 0 });
    if (code === Command.RESET_CONNECTION) {
      // The session would take the server's sql_mode as it is now, which the judge has not read.
      return { rule: 'hoop:mysql-reset', reason: 'COM_RESET_CONNECTION is not relayed on a session the policy governs (reconnect instead)' };
    }
    const sql = code === Command.STMT_EXECUTE ? (this.#catalog ? held : undefined) : sqlOf(code, payload);
    if (sql !== undefined && sql.length > MAX_JUDGED_SQL) return { rule: 'unparseable', reason: `a statement of ${sql.length} characters, longer than the ${MAX_JUDGED_SQL} the gateway judges` };
    if (sql !== undefined && (code === Command.STMT_PREPARE || code === Command.STMT_EXECUTE)) {
      // A prepared statement runs as often as the client executes it: one a rule holds for review is sent as a query, to run once.
      const judged = this.#verdict(sql, payload, governed);
      return judged && 'ask' in judged
        ? { rule: judged.ask.rule ?? 'policy', reason: `held for review: send it as a query (COM_QUERY), not a prepared statement, to wait for reviewers: ${judged.ask.message ?? judged.ask.reason}` }
        : judged;
    }
    if (sql === undefined) return undefined;
    const kept = code === Command.QUERY ? this.#kept(sql, governed) : undefined;
    if (kept) {
      this.lastFacts = kept.facts;
      return undefined;
    }
    return this.#verdict(sql, payload, governed, code === Command.QUERY);
  }

  /**
   * The verdict a query of `sql`'s proven shape was allowed with, while it would be again: the same
   * reading of SQL, judge and masker's tables, and the same catalog answers and redefinitions (then `sql` is not analysed).
   */
  #kept(sql: string, governed: Reading): Allowed | undefined {
    if (sql.length >= OFF_LOOP_CHARS || governed.unreadable) return undefined;
    const shape = sqlShape(sql);
    const kept = shape && this.#allowed.get(shape.key);
    if (!kept || kept.options !== governed.options || kept.judge !== this.#session.judge || kept.masker !== this.masker?.generation) return undefined;
    return this.#catalog && !this.#catalog.unchanged(kept.reads!) ? undefined : kept;
  }

  /** Keeps query `sql`, allowed with `facts` (its shape's) as nothing else but the policy's verdict decided (no row limit, no reset, no change of reading). */
  #keep(sql: string, facts: readonly StatementFacts[], governed: Reading): void {
    const reads = this.#catalog?.lastReads();
    const key = sqlShape(sql)?.key;
    if ((this.#catalog && !reads) || key === undefined) return;
    this.#allowed.delete(key);
    this.#allowed.set(key, { options: governed.options, judge: this.#session.judge, masker: this.masker?.generation, facts, reads });
    if (this.#allowed.size > MAX_ALLOWED) this.#allowed.delete(this.#allowed.keys().next().value!);
  }

  /** The server answered the command allowed last, its answer ending with `ok` or not: a change of sql_mode or character set it made is followed. */
  answered(ok: boolean): void {
    if (ok && this.#following && this.#reading) this.#reading.options = this.#following;
    this.#following = undefined;
    // MySQL's DDL commits as it runs: what the command redefined is in the catalog now.
    this.#catalog?.ended();
  }

  /** Why a write under row limit `guard` cannot be counted before it commits, or undefined when it can. */
  #unguardable(guard: WriteGuard, analysis: Analysis): string | undefined {
    if (!analysis.ok) return 'hoop must read it to count its rows';
    if (analysis.statements.length > 1) return 'hoop counts the rows of one statement at a time: send it alone';
    if (guard.count !== 'tag' || guard.prepared) return "hoop counts a MySQL write's rows by the server's own count of the statement (send the UPDATE or DELETE itself)";
    const unknown = analysis.statements[0]!.tables.find((t) => !this.#transactional?.has(t.toLowerCase()));
    if (unknown !== undefined) return `hoop knows ${unknown} as no InnoDB table, so its rows could not be rolled back`;
    return undefined;
  }

  /** The policy's verdict on `sql` (sent as `payload`; a query when `query`): a refusal, a review to hold it for, or undefined when it may run. */
  #verdict(sql: string, payload: Buffer, governed: Reading, query = false): Judged {
    const { judge, limits } = this.#session;
    if (governed.unreadable) return { rule: 'hoop:mysql-unreadable', reason: `${governed.unreadable}; no statement is judged on this session` };
    const limited = limits !== undefined && Object.keys(limits).length > 0;
    if (limited && governed.options.flavor !== 'mariadb') return { rule: 'hoop:mysql-limits', reason: 'the access sets server timeouts, which hoop applies to MariaDB sessions only' };
    const read = this.#analyzed(sql);
    // A query that ends by changing sql_mode or the character set is judged as any SET, and the session's reading follows it once it ran.
    const following = query ? followed(read, governed.options) : undefined;
    const analysis: Analysis = following && read.ok ? { ...read, statements: read.statements.map((st, i) => (i === read.statements.length - 1 ? { ...st, changesLexing: false } : st)) } : read;
    // Followed once it ran, whenever that is (a review may hold it); what is refused never runs.
    this.#following = following;
    if (limited && !analysis.ok) return { rule: 'hoop:mysql-limits', reason: `the access sets server timeouts, and hoop must read each statement to keep them (${analysis.error})` };
    if (limited && analysis.ok && analysis.statements.some((s) => s.settings.some((x) => x.name !== undefined && TIMEOUT_VARIABLES.has(x.name)))) {
      return { rule: 'hoop:mysql-limits', reason: 'the access sets server timeouts, which a session may not change' };
    }
    const database = this.#session.connection.database;
    const elsewhere = analysis.ok && analysis.statements.some((s) => s.settings.some((x) => x.name === 'database' && x.value !== database));
    // Unqualified names are judged as the connection's database's: the session stays in it.
    if (elsewhere) return { rule: 'hoop:mysql-database', reason: `${this.#session.connection.name} serves the database ${database}; name another database's tables in full instead` };
    const verdict = judge ? (this.#catalog ?? judge).judge(sql, analysis) : undefined;
    if (verdict && verdict.action !== 'allow') {
      const by = verdict.rule ? `by rule "${verdict.rule}"` : 'by the policy';
      if (verdict.action === 'deny' || !verdict.review || !this.#session.reviews || !analysis.ok) {
        return { rule: verdict.rule ?? 'policy', reason: `denied ${by}: ${verdict.message ?? verdict.reason}${verdict.action === 'review' ? ' (held for review, and no reviewer can be asked)' : ''}` };
      }
      const digest = createHash('sha256').update(payload).update('\0').update(sql).digest('hex');
      return {
        ask: {
          sql,
          digest,
          ...(verdict.rule !== undefined && { rule: verdict.rule }),
          ...(verdict.message !== undefined && { message: verdict.message }),
          reason: verdict.reason,
          settings: verdict.review,
        },
      };
    }
    // Unparseable SQL the policy allows (its `unparseable: allow`) runs, as on PostgreSQL, unless something must read it.
    if (!analysis.ok && !verdict) return { rule: 'unparseable', reason: `the statement could not be read as MySQL (${analysis.error})` };
    // Under a row limit, what hoop cannot read could write (PREPARE … FROM, EXECUTE IMMEDIATE): it could not be counted.
    if (!analysis.ok && judge?.limitsRows) {
      return { rule: WRITE_GUARD_RULE, reason: `writes are under a row limit, and hoop must read a statement to count the rows it writes (${analysis.error})` };
    }
    for (const statement of analysis.ok && this.masker ? analysis.statements : []) {
      const carries = this.masker!.carriesMasked(statement);
      if (carries) return { rule: 'hoop:mysql-masked-copy', reason: `the policy masks columns for you, and ${carries} could carry masked values where they are not masked` };
    }
    if (verdict?.guard) {
      const why = this.#unguardable(verdict.guard, analysis);
      if (why) return { rule: WRITE_GUARD_RULE, reason: `the write is under a row limit (rule "${verdict.guard.rule}": at most ${verdict.guard.maxRows} rows), and ${why}` };
      this.lastGuard = { ...verdict.guard, sql, tables: analysis.ok ? analysis.statements.flatMap((st) => st.tables.map((t) => t.toLowerCase())) : [] };
    }
    // Texts of one proven shape share their facts, and so what the masker makes of them.
    this.lastFacts = analysis.ok ? (analysis.sameShapeAs?.ok ? analysis.sameShapeAs.statements : analysis.statements) : undefined;
    if (this.timeoutsSql && analysis.ok && analysis.statements.some(runsStoredCode)) this.lastReset = this.timeoutsSql;
    if (query && !this.lastGuard && !this.lastReset && !following && analysis.ok && analysis.sameShapeAs?.ok) this.#keep(sql, analysis.sameShapeAs.statements, governed);
    return undefined;
  }
}

/** A column's name as the index keeps it: MariaDB names a column by its expression's text, whose secrets are redacted as the statement's are (`PASSWORD('…')`). */
function indexedName(column: string, key: Buffer | undefined): string {
  return redactSql(column, 'mysql', key ? { key } : {}).text;
}
