/**
 * Masking of what a MySQL server answers, packet by packet, as the policy's `masking` section says:
 *
 * - a column of a table the statement names and reads directly, in a statement that reads only base
 *   tables hoop knows (its column definition names the table and column it comes from; a view's
 *   names an alias, or a table under it and an alias) by the rules on that origin, else by the
 *   rules on its name (as the table names it, or the result's alias); a masked column's definition
 *   is rewritten as a string column, the type of what the client now gets;
 * - a column of the catalog's views of names and types ({@link CATALOG_TABLES}) likewise;
 * - any other column (computed, or from a view, a derived table, a CTE, JSON_TABLE, a system
 *   table, or a table made since sign-in, whose definitions name them or an alias, not a base table
 *   hoop knows; or any column of a statement that reads one of those) is redacted whole when the statement reads a table with a column the policy masks (by origin,
 *   or by a name rule: the base tables with such a column are read at sign-in), a table hoop does
 *   not know, a user variable, or a function that is not one of the server's own (a stored function
 *   may read such a table): hoop does not trace what such a column is made of;
 * - every other text value goes through the content detectors, in text and binary (prepared)
 *   rows alike, binary strings too when they read as UTF-8; error messages too, withheld whole
 *   when the statement reads what is masked;
 * - what could carry masked values where they are not masked is refused ({@link MysqlResultMasker.carriesMasked}).
 *
 * @see https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_com_query_response_text_resultset.html
 */
import { isUtf8 } from 'node:buffer';
import { maskAhead } from '../../policy/masking/mask-ahead.js';
import { AHEAD_CHARS, type MaskingRules } from '../../policy/masking/rules.js';
import { parsesAsJson, readableView } from '../../policy/masking/values.js';
import type { MaskStrategy } from '../../policy/masking/strategies.js';
import type { OutputRead, StatementFacts } from '../../policy/sql/analyze/facts.js';
import { readsOnlyArguments } from '../../policy/mysql/output-reads.js';
import type { ServerPacket } from './conversation.js';
import { lenencBytes } from '../wire/packets.js';
import {
  binaryRow,
  binaryRowSlices,
  binaryValueText,
  type ColumnDefinition,
  columnDefinition,
  ColumnType,
  errPacket,
  NUMERIC_COLUMN_TYPES,
  parseColumnDefinition,
  parseErr,
  parseTextRow,
  textRow,
} from '../wire/results.js';

/** What bytes 0x80 to 0x9f are in MariaDB's latin1, which is Windows-1252 (Node's TextDecoder reads them as ISO-8859-1's controls). @see https://www.unicode.org/Public/MAPPINGS/VENDORS/MICSFT/WINDOWS/CP1252.TXT */
const CP1252_HIGH = [
  0x20ac, 0x81, 0x201a, 0x192, 0x201e, 0x2026, 0x2020, 0x2021, 0x2c6, 0x2030, 0x160, 0x2039, 0x152, 0x8d, 0x17d, 0x8f, 0x90, 0x2018, 0x2019, 0x201c, 0x201d, 0x2022, 0x2013, 0x2014, 0x2dc, 0x2122,
  0x161, 0x203a, 0x153, 0x9d, 0x17e, 0x178,
];

/** `bytes` as MariaDB's latin1 (Windows-1252) reads them. */
function cp1252(bytes: Buffer): string {
  return bytes.toString('latin1').replace(/[\x80-\x9f]/g, (c) => String.fromCharCode(CP1252_HIGH[c.charCodeAt(0) - 0x80]!));
}
/**
 * A user variable (`@v`, `@'v'`, `@é`, `@.v`: a name MariaDB reads as one), anywhere in a
 * statement's text: it may hold what an earlier statement read. A system variable (`@@max_allowed_packet`) cannot: setting one from an
 * expression is refused while the policy masks.
 */
const USER_VARIABLE = /(?<!@)@[\p{L}\p{N}_$.\u0080-\uffff`'"]/u;

/**
 * Errors whose message quotes names and the client's own SQL, never a value the server holds: no
 * such table, column or database, a syntax error, access denied.
 * @see https://mariadb.com/kb/en/mariadb-error-code-reference/
 */
const NAMES_ONLY_ERRORS: ReadonlySet<number> = new Set([1044, 1045, 1049, 1051, 1054, 1064, 1109, 1142, 1143, 1146]);

/** Whether `s` sets variables to literals alone (`SET @a = 1`): it reads none. */
function setsLiterals(s: StatementFacts): boolean {
  return s.settings.length > 0 && s.settings.every((x) => x.value !== undefined) && s.tables.length === 0 && s.functions.length === 0;
}

/** What a statement's facts mean for masking its results: the tables it names, whether origins are trusted, whether computed columns may carry masked values, whether errors may quote them. */
interface StatementReading {
  tables: ReadonlySet<string>;
  originsUnreliable: boolean;
  untraced: boolean;
  errorsMayQuote: boolean;
  /** What each result column reads, for a statement of one SELECT hoop can trace whose list has no wildcard. */
  items: readonly OutputRead[][] | undefined;
}

/**
 * The catalog's views of names and types, which hold no table's values: read directly, their
 * columns' origins are trusted as a base table's (so `hoop mcp`'s describe_schema reads them).
 * The others (PROCESSLIST's statements, full-text index words, routine bodies) stay untraced.
 */
const CATALOG_TABLES = ['schemata', 'tables', 'columns', 'statistics', 'key_column_usage', 'table_constraints', 'referential_constraints'].map((t) => `information_schema.${t}`);

/** The server's own schemas, whose tables are never base tables hoop knows (`mysql.column_stats` keeps columns' minima, maxima and histograms; `mysql.general_log` statements as sent). */
const SYSTEM_SCHEMAS = new Set(['mysql', 'performance_schema', 'sys']);

/** The kinds that store what they compute. */
const WRITES = new Set<string>(['insert', 'update', 'delete', 'merge', 'create', 'alter', 'drop', 'truncate', 'call', 'create-function']);
/** LAST_INSERT_ID with an argument: it keeps that value for the session's next LAST_INSERT_ID(). */
const LAST_INSERT_ID_SET = /last_insert_id\s*\(\s*[^)\s]/i;

/** A column definition's flags that say what a string column is not. */
const NUMBER_FLAGS = 32 | 64 | 128 | 32768;
/** utf8mb4_general_ci. */
const UTF8MB4 = 45;

/** Result columns whose last definition and plan a masker keeps (a statement run again sends the same definitions). */
const MAX_KEPT_COLUMNS = 64;

/** A name per masker, for {@link maskAhead} to take each session's long texts in turn with others'. */
let maskers = 0;

/** What the detectors read of value `v`: when it is UTF-8, its `text` and that as its client reads it; else `read` as MariaDB's latin1 reads it. */
function detectorView(v: Buffer): { text: string | undefined; read: string } {
  // Bytes that are not UTF-8 (a BLOB, `concat(0xff, card)`, a result in latin1) are read as MariaDB's latin1 is, cp1252 (0x96 an en dash).
  if (!isUtf8(v)) return { text: undefined, read: cp1252(v) };
  const text = v.toString('utf8');
  // Read as its client reads it: a float in exponent form as its digits (a DOUBLE of 16 digits is sent as 4.111111111111111e15), JSON's escapes decoded.
  return { text, read: /[\\&eE]/.test(text) ? readableView(text) : text };
}

/** One result column: its definition as the server sent it, and its strategy when masked whole. */
interface ColumnPlan {
  def: ColumnDefinition;
  strategy?: MaskStrategy;
}

/** See the module documentation. */
export class MysqlResultMasker {
  readonly #rules: MaskingRules;
  /** The server's base tables at sign-in (`db.table`, lower-case): only their columns' origins are trusted. */
  readonly #baseTables: Set<string>;
  /** Those of them with a column a name rule masks (`db.table`, lower-case). */
  readonly #maskedByName: Set<string>;
  readonly #masked: ((column: string, strategy: string) => void) | undefined;
  #plans: ColumnPlan[] = [];
  /** Some column of the current result is masked whole. */
  #masksWhole = false;
  /** A computed column of the statement may carry what is masked (it is redacted whole). */
  #untraced = true;
  /** The statement reads what is masked, or what hoop cannot trace, anywhere: a server's error may quote it (withheld). */
  #errorsMayQuote = true;
  /** The tables the statement names (`db.table`), whose columns' origins the server's column definitions can be trusted for. */
  #tables: ReadonlySet<string> = new Set();
  /** The statement reads a derived table, a CTE, a view or a table hoop does not know: no column's origin is trusted. */
  #originsUnreliable = true;
  /** What each result column of the statement reads, when the parse tells it (see {@link StatementReading}), and of the result at hand. */
  #items: readonly OutputRead[][] | undefined;
  #resultItems: readonly OutputRead[][] | undefined;
  /** The session agreed MariaDB's extended metadata: column definitions carry it. */
  readonly #extended: boolean;
  /** What each statement's facts mean for masking, while they live (texts of one shape share theirs). */
  #read = new WeakMap<readonly StatementFacts[], StatementReading>();
  /** Whose long texts these are, for the worker's turns. */
  readonly #owner = `mysql-${++maskers}`;
  /** What the statement about to run means for masking ({@link statement}). */
  #current: StatementReading | undefined;
  /** Each result column's last definition as the server sent it, with its plan and what that was made under: a statement run again sends the same. */
  #lastColumns: Array<{ payload: Buffer; read: StatementReading | undefined; items: unknown; plan: ColumnPlan }> = [];
  /** Counts the changes of what the masker knows of the server's tables ({@link generation}). */
  #generation = 0;

  /**
   * `baseTables`: the server's base tables, `db.table` lower-case; `maskedByName`: those with a
   * column a name rule masks; `masked`: told of each column masked whole; `extended`: the session
   * agreed MariaDB's extended metadata.
   */
  constructor(rules: MaskingRules, baseTables: ReadonlySet<string>, maskedByName: ReadonlySet<string>, masked?: (column: string, strategy: string) => void, extended = false) {
    this.#rules = rules;
    this.#extended = extended;
    // The server's own schemas hold copies of other tables' values (column_stats' minima and maxima, the logs' statements): read as tables hoop does not know.
    this.#baseTables = new Set([...[...baseTables].filter((t) => !SYSTEM_SCHEMAS.has(t.slice(0, t.indexOf('.')))), ...CATALOG_TABLES]);
    this.#maskedByName = new Set(maskedByName);
    this.#masked = masked;
  }

  /** Changes whenever what the masker knows of the server's tables does (a table the session made, altered or dropped): what it said of a statement before may differ now. */
  get generation(): number {
    return this.#generation;
  }

  /** Whether the policy masks columns, by origin or by name (not only by content). */
  get #masksColumns(): boolean {
    return this.#rules.hasColumnRules || this.#rules.hasNameRules;
  }

  /** Whether table `t` (as statement facts name it) has a column the policy masks, by origin or by name. */
  #masks(t: string): boolean {
    return this.#rules.columnsOfSqlTable(t).size > 0 || this.#maskedByName.has(t.toLowerCase());
  }

  /**
   * The session made table `table` (`db.table`) with `columns` (a CREATE TABLE of columns alone,
   * answered OK): it is a base table hoop knows from now on, as those read at sign-in are.
   */
  tableCreated(table: string, columns: readonly string[]): void {
    const t = table.toLowerCase();
    if (SYSTEM_SCHEMAS.has(t.slice(0, t.indexOf('.')))) return;
    this.#baseTables.add(t);
    if (columns.some((c) => this.#rules.forName(c))) this.#maskedByName.add(t);
    this.#read = new WeakMap();
    this.#generation++;
  }

  /** The session is about to alter, rename or drop `tables`: hoop no longer knows what they hold (they are read as unknown tables are). */
  tablesChanged(tables: readonly string[]): void {
    for (const t of tables) this.#baseTables.delete(t.toLowerCase());
    this.#read = new WeakMap();
    this.#generation++;
  }

  /** The statement about to run (undefined: one hoop did not read, whose computed columns are redacted). */
  statement(facts: readonly StatementFacts[] | undefined): void {
    let read = facts && this.#read.get(facts);
    if (!read) {
      read = this.#reading(facts);
      if (facts) this.#read.set(facts, read);
    }
    this.#current = read;
    ({ tables: this.#tables, originsUnreliable: this.#originsUnreliable, untraced: this.#untraced, errorsMayQuote: this.#errorsMayQuote, items: this.#items } = read);
  }

  /** What statement `facts` means for masking its results (see {@link statement}). */
  #reading(facts: readonly StatementFacts[] | undefined): StatementReading {
    return {
      tables: new Set(facts?.flatMap((s) => s.tables.map((t) => t.toLowerCase()))),
      // MariaDB names a view's column by the view's alias, or through a temporary table (ORDER BY, GROUP BY, a window) by a base
      // table under the view and the column's alias: either may be a table the statement names as well, whose rules then miss it.
      originsUnreliable: facts === undefined || facts.some((s) => s.derived || s.tables.some((t) => !this.#baseTables.has(t.toLowerCase()))),
      untraced: facts === undefined || facts.some((s) => this.#opaque(s) || (this.#namesMasked(s) && (s.outputReads === undefined || this.#readsMasked(s.outputReads)))),
      // An error may quote a value the statement read anywhere (a WHERE's cast), not only in its select list.
      errorsMayQuote: facts === undefined || facts.some((s) => this.#opaque(s) || this.#namesMasked(s)),
      // One statement's result, column by column (several statements' results come one after another, which hoop does not tell apart).
      items: facts?.length === 1 && !this.#opaque(facts[0]!) ? facts[0]!.outputItems : undefined,
    };
  }

  /** Whether `s` reads what hoop cannot trace: a table it does not know as a base table, a function not built in, a user variable (which may hold a value an earlier statement read). */
  #opaque(s: StatementFacts): boolean {
    return s.tables.some((t) => !this.#baseTables.has(t.toLowerCase())) || s.functions.some((f) => !readsOnlyArguments(f)) || (USER_VARIABLE.test(s.text) && !setsLiterals(s));
  }

  /** Whether `s` names a table with a column the policy masks. */
  #namesMasked(s: StatementFacts): boolean {
    return s.tables.some((t) => this.#masks(t));
  }

  /** Whether `reads` (what a select list, or one item of it, names) name a column the policy masks, by origin or by name. */
  #readsMasked(reads: readonly OutputRead[]): boolean {
    return reads.some(
      (r) =>
        this.#rules.forName(r.column) !== undefined ||
        r.tables.some((t) => {
          const masked = this.#rules.columnsOfSqlTable(t);
          return masked.has('*') || masked.has(r.column);
        }),
    );
  }

  /**
   * Why statement `s` could carry masked values where they are not masked (undefined when it
   * cannot): a write or DDL that names a table whose columns the policy masks, or one hoop does not
   * know (a view, a table made since sign-in), or names more than one table; stored code (a
   * procedure called, a trigger, function or event created: bodies are not read); a setting or
   * variable set from an expression, or one read while writing; LAST_INSERT_ID(expr).
   */
  carriesMasked(s: StatementFacts): string | undefined {
    if (!this.#masksColumns) return undefined;
    if (s.kinds.includes('call') || s.kinds.includes('create-function')) return 'stored code, whose body hoop does not read';
    if (s.settings.some((x) => x.value === undefined)) return 'a setting or variable set from an expression';
    if (LAST_INSERT_ID_SET.test(s.text)) return 'LAST_INSERT_ID(expr), which keeps a value for the session';
    if (!s.kinds.some((k) => WRITES.has(k))) return undefined;
    if (USER_VARIABLE.test(s.text)) return 'a write that reads a variable';
    const stored = s.functions.find((f) => !readsOnlyArguments(f));
    if (stored !== undefined) return `a write that calls ${stored}(), a function not the server's own, which may read what is masked`;
    // Literals and placeholders carry no value the server holds, whatever table they go to.
    if (s.writesLiteralsOnly) return undefined;
    const unmasked = s.tables.every((t) => !this.#masks(t) && this.#baseTables.has(t.toLowerCase()));
    if (!unmasked) return 'a write that names a table whose columns the policy masks, or one hoop does not know';
    if (new Set(s.tables).size > 1) return 'a write that names more than one table';
    return undefined;
  }

  /** What the client gets for the server's packet `payload`, read as `p`. */
  server(p: ServerPacket, payload: Buffer): Buffer {
    switch (p.kind) {
      case 'column-count':
      case 'prepared':
        this.#plans = [];
        this.#masksWhole = false;
        // Result column i is list item i only when there are as many of each.
        this.#resultItems = this.#items?.length === p.columns ? this.#items : undefined;
        return payload;
      case 'column': {
        const plan = this.#columnPlan(payload, this.#plans.length);
        this.#plans.push(plan);
        const { def } = plan;
        if (!plan.strategy) return payload;
        this.#masksWhole = true;
        // A string of what is masked, no longer of the column's extended type (a JSON column's redacted value is no JSON).
        return columnDefinition({
          ...def,
          type: ColumnType.VAR_STRING,
          charset: UTF8MB4,
          flags: def.flags & ~NUMBER_FLAGS,
          decimals: 0,
          length: Math.max(def.length, 1024),
          ...(def.extended && { extended: Buffer.alloc(0) }),
        });
      }
      case 'row':
        // A result with no column masked whole and no detector to read its values goes on as it came.
        if (!this.#masksWhole && this.#rules.detectors.length === 0) return payload;
        return p.binary ? this.#binaryRow(payload) : this.#textRow(payload);
      case 'err':
        return this.#error(payload);
      default:
        return payload;
    }
  }

  /** The plan of the result's `index`th column, whose definition is `payload`: the last one's for that column when it was made of the same (a statement run again). */
  #columnPlan(payload: Buffer, index: number): ColumnPlan {
    const last = this.#lastColumns[index];
    if (last && last.read === this.#current && last.items === this.#resultItems && last.payload.equals(payload)) {
      if (last.plan.strategy) this.#reportMasked(last.plan.def, last.plan.strategy);
      return last.plan;
    }
    const plan = this.#plan(parseColumnDefinition(payload, this.#extended), index);
    if (index < MAX_KEPT_COLUMNS) this.#lastColumns[index] = { payload: Buffer.from(payload), read: this.#current, items: this.#resultItems, plan };
    return plan;
  }

  /** Tells that column `def` is masked whole by `strategy`. */
  #reportMasked(def: ColumnDefinition, strategy: MaskStrategy): void {
    this.#masked?.(def.orgTable ? `${def.schema}.${def.orgTable}.${def.orgName}` : def.name, strategy);
  }

  /** How column `def`, the result's `index`th, is masked. */
  #plan(def: ColumnDefinition, index: number): ColumnPlan {
    // An origin is trusted only when it is a table the statement names, read directly, in a statement
    // that reads base tables hoop knows alone: a derived table's, a CTE's or a view's columns name
    // an alias, or a table under it and an alias, instead.
    const origin = `${def.schema}.${def.orgTable}`.toLowerCase();
    const trusted = def.schema !== '' && def.orgTable !== '' && !this.#originsUnreliable && this.#tables.has(origin) && this.#baseTables.has(origin);
    let strategy: MaskStrategy | undefined;
    // A name rule reads the column as the table names it, and as the result does (an alias).
    if (trusted) strategy = this.#rules.forOrigin({ schema: def.schema, table: def.orgTable, column: def.orgName }) ?? this.#rules.forName(def.orgName) ?? this.#rules.forName(def.name);
    else if (!this.#untraced || !this.#masksColumns) strategy = this.#rules.forName(def.name);
    else {
      // A computed column is redacted when what it is computed from is masked, or unknown; else it is exact (but for a name rule on its alias).
      const reads = this.#resultItems?.[index];
      strategy = reads === undefined || this.#readsMasked(reads) ? 'redact' : this.#rules.forName(def.name);
    }
    if (strategy) this.#reportMasked(def, strategy);
    return { def, ...(strategy && { strategy }) };
  }

  /** One value as the client gets it: masked whole by `strategy`, else through the detectors (text only). */
  #value(v: Buffer, plan: ColumnPlan | undefined): Buffer | null | undefined {
    if (plan?.strategy) {
      const masked = this.#rules.apply(v.toString('utf8'), plan.strategy, true);
      return masked === null ? null : Buffer.from(masked, 'utf8');
    }
    if (this.#rules.detectors.length === 0) return undefined;
    const { text, read } = detectorView(v);
    // A match in bytes that are not UTF-8 withholds the value.
    if (text === undefined) return this.#rules.maskText(read).changed ? null : undefined;
    const m = this.#rules.maskText(read);
    if (!m.changed) return undefined;
    // A replacement is a value of the column's type, else the value is withheld: a number, a match only the reading shows, JSON masked into no JSON.
    const type = plan?.def.type;
    if (m.nullify || read !== text || (type !== undefined && NUMERIC_COLUMN_TYPES.has(type)) || (type === ColumnType.JSON && !parsesAsJson(m.text))) return null;
    return Buffer.from(m.text, 'utf8');
  }

  /**
   * The row the server's packet `payload` (read as `p`) holds, as the client gets it, when a value
   * of it is long enough to be masked ahead in the worker (../../policy/masking/mask-ahead.ts):
   * what it made is lent to the masking of the row; undefined for any other packet (most rows: their length answers).
   */
  ahead(p: ServerPacket, payload: Buffer): Promise<Buffer> | undefined {
    if (p.kind !== 'row' || payload.length < AHEAD_CHARS || this.#rules.detectors.length === 0) return undefined;
    const texts: string[] = [];
    const read = (v: Buffer | null, plan: ColumnPlan | undefined): void => {
      if (v === null || v.length < AHEAD_CHARS || plan?.strategy) return;
      const { read } = detectorView(v);
      if (read.length >= AHEAD_CHARS) texts.push(read);
    };
    if (!p.binary) for (const [i, v] of parseTextRow(payload, this.#plans.length).entries()) read(v, this.#plans[i]);
    else
      for (const [i, slice] of binaryRowSlices(
        payload,
        this.#plans.map((c) => c.def),
      ).entries()) {
        const plan = this.#plans[i];
        if (slice !== null && plan && isStringType(plan.def.type)) read(binaryValueText(slice, plan.def), plan);
      }
    if (texts.length === 0) return undefined;
    return maskAhead(texts, this.#rules, this.#owner).then((masked) => this.#rules.withMasked(masked, () => this.server(p, payload)));
  }

  #textRow(payload: Buffer): Buffer {
    const values = parseTextRow(payload, this.#plans.length);
    let changed = false;
    const out = values.map((v, i) => {
      if (v === null) return null;
      const m = this.#value(v, this.#plans[i]);
      if (m === undefined) return v;
      changed = true;
      return m;
    });
    return changed ? textRow(out) : payload;
  }

  #binaryRow(payload: Buffer): Buffer {
    const slices = binaryRowSlices(
      payload,
      this.#plans.map((p) => p.def),
    );
    let changed = false;
    const out = slices.map((slice, i) => {
      const plan = this.#plans[i];
      if (slice === null || !plan) return slice;
      // A number or date is masked whole only by a column's rule (its definition is then a string's); one the detectors find
      // (a card in a BIGINT) cannot carry its masked text in a binary row: it is withheld, as NULL.
      if (!plan.strategy && !isStringType(plan.def.type)) {
        if (this.#rules.detectors.length === 0 || !WIDE_NUMBERS.has(plan.def.type) || !this.#rules.maskText(binaryValueText(slice, plan.def).toString('latin1')).changed) return slice;
        changed = true;
        return null;
      }
      const m = this.#value(binaryValueText(slice, plan.def), plan);
      if (m === undefined) return slice;
      changed = true;
      return m === null ? null : lenencBytes(m);
    });
    return changed ? binaryRow(out) : payload;
  }

  #error(payload: Buffer): Buffer {
    const e = parseErr(payload);
    // A server's message may quote a value, in a form no pattern reads back reliably: withheld whole.
    if (this.#errorsMayQuote && this.#masksColumns && !NAMES_ONLY_ERRORS.has(e.code))
      return errPacket({ ...e, message: `hoop: the server's message is withheld, as the statement reads what the policy masks (error ${e.code})` });
    const message = this.#rules.detectors.length > 0 ? this.#rules.maskText(e.message).text : e.message;
    return message === e.message ? payload : errPacket({ ...e, message });
  }
}

/** The binary numbers wide enough to hold what a detector finds (a card's 12 to 19 digits); a narrower one is not read. */
const WIDE_NUMBERS: ReadonlySet<number> = new Set([ColumnType.LONGLONG, ColumnType.DOUBLE, ColumnType.FLOAT]);

/** Whether a binary value of `type` is a length-encoded string (what detectors read). */
function isStringType(type: number | undefined): boolean {
  return (
    type === undefined ||
    ![
      ColumnType.TINY,
      ColumnType.SHORT,
      ColumnType.YEAR,
      ColumnType.LONG,
      ColumnType.INT24,
      ColumnType.FLOAT,
      ColumnType.LONGLONG,
      ColumnType.DOUBLE,
      ColumnType.DATE,
      ColumnType.DATETIME,
      ColumnType.TIMESTAMP,
      ColumnType.NEWDATE,
      ColumnType.TIME,
    ].includes(type as never)
  );
}
