/**
 * The masking section of a policy, compiled for fast lookups: by column origin, by column name,
 * and by content.
 *
 * @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-ROWDESCRIPTION
 */
import { LinearRegex } from '../../linear-regex.js';
import { cardDigits, detect, type DetectorName } from './detectors.js';
import { applyStrategy, type MaskStrategy } from './strategies.js';
import { glob } from '../../glob.js';

/**
 * Catalogs that hold values of other tables' columns (the planner's statistics: most common
 * values, histogram bounds), readable for any column the role may read, and the columns of each
 * that hold those values. Not `pg_statistic_ext`: it holds the definitions of extended statistics
 * objects (which columns, which kinds), what psql's `\d` and `\dX` list; their values are in
 * `pg_statistic_ext_data`. Under masking these columns are masked columns (by origin, through a
 * view, in expressions): `select * from pg_stats` answers with its names and fractions, and its
 * values redacted.
 * @see https://www.postgresql.org/docs/current/view-pg-stats.html
 * @see https://www.postgresql.org/docs/current/view-pg-stats-ext.html
 * @see https://www.postgresql.org/docs/current/catalog-pg-statistic.html
 * @see https://www.postgresql.org/docs/current/catalog-pg-statistic-ext-data.html
 */
export const STATISTICS_VALUE_COLUMNS: ReadonlyMap<string, ReadonlySet<string>> = new Map([
  ['pg_stats', new Set(['most_common_vals', 'histogram_bounds', 'most_common_elems'])],
  ['pg_stats_ext', new Set(['most_common_vals'])],
  ['pg_stats_ext_exprs', new Set(['most_common_vals', 'histogram_bounds', 'most_common_elems'])],
  ['pg_statistic', new Set(['stavalues1', 'stavalues2', 'stavalues3', 'stavalues4', 'stavalues5'])],
  ['pg_statistic_ext_data', new Set(['stxdmcv', 'stxdexpr'])],
]);
/** The relations of {@link STATISTICS_VALUE_COLUMNS}. */
export const STATISTICS_RELATIONS: ReadonlySet<string> = new Set(STATISTICS_VALUE_COLUMNS.keys());
/**
 * The shape of the policy's `masking` section this module needs (the policy schema's
 * `MaskingPolicy` satisfies it). `table` is `schema.table` (globs with `*`; without a schema it
 * matches the table in any schema), `column` a column name or `*`, `pattern` a case-insensitive
 * regular expression over the column name as the result reports it.
 */
export interface MaskingPolicyLike {
  /** The HMAC key when already resolved (a string); the policy schema's unresolved secret reference is ignored. */
  key?: unknown;
  columns?: ReadonlyArray<{ table: string; column: string; strategy: MaskStrategy }>;
  names?: ReadonlyArray<{ pattern: string; strategy: MaskStrategy }>;
  detectors?: ReadonlyArray<{ detector: DetectorName; strategy: MaskStrategy }>;
}

/** Where a result column comes from: a table column, by name. */
export interface ColumnOrigin {
  schema: string;
  table: string;
  column: string;
  /**
   * The tables the column's table inherits it from (a partition's partitioned tables, an
   * inheritance child's parents; the column has the same name there), and those that inherit it
   * from the table (its partitions and children, whose rows it reads), whose rules apply to it too.
   * @see https://www.postgresql.org/docs/current/ddl-partitioning.html
   * @see https://www.postgresql.org/docs/current/ddl-inherit.html
   */
  inheritsFrom?: ReadonlyArray<{ schema: string; table: string }>;
}

/** The result of masking one text. */
export interface MaskedText {
  text: string;
  changed: boolean;
  /** A match's strategy is `null`: where the text is a whole field, the field should become NULL. */
  nullify: boolean;
}

/** Texts at least this long are masked ahead of their use, off the event loop (./mask-ahead.ts): the detectors read shorter ones in under 2 ms. */
export const AHEAD_CHARS = 64 * 1024;

/** What the content detectors do, as a worker thread makes them again: each detector's strategy, and the key. */
export interface Detection {
  detectors: ReadonlyArray<readonly [DetectorName, MaskStrategy]>;
  key: string | undefined;
}

/**
 * A compiled masking policy.
 *
 * @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-ROWDESCRIPTION
 */
export class MaskingRules {
  /** Compiled once per policy section and key: what every session of a policy snapshot shares (see {@link MaskingRules.of}). */
  static readonly #compiled = new WeakMap<MaskingPolicyLike, Map<string | undefined, MaskingRules>>();

  /**
   * The rules of `policy` with `key`, compiled on first use and shared after (they never change
   * once made): sessions under one policy do not each compile their patterns.
   *
   * @throws Error as the constructor does
   */
  static of(policy: MaskingPolicyLike, key?: string): MaskingRules {
    let byKey = MaskingRules.#compiled.get(policy);
    if (!byKey) MaskingRules.#compiled.set(policy, (byKey = new Map()));
    let rules = byKey.get(key);
    if (!rules) byKey.set(key, (rules = new MaskingRules(policy, key)));
    return rules;
  }

  /** The HMAC key for `hash`. */
  readonly key: string | undefined;
  /** Detectors in the order they run. */
  readonly detectors: readonly DetectorName[];
  private readonly detectorStrategy = new Map<DetectorName, MaskStrategy>();
  /** What {@link withMasked} lends {@link maskText} while it runs (a long string's hash is its length: a lookup reads it once, to compare). */
  #masked: ReadonlyMap<string, MaskedText> | undefined;
  private readonly columns: Array<{ schema: (name: string) => boolean; table: (name: string) => boolean; column: string; strategy: MaskStrategy }>;
  private readonly names: Array<{ pattern: LinearRegex; strategy: MaskStrategy }>;

  /**
   * `key` is the resolved HMAC key for `hash` (else `policy.key` when it is a string); without
   * one, `hash` falls back to `redact`.
   *
   * @throws Error when a name pattern is not a valid regular expression.
   */
  constructor(policy: MaskingPolicyLike, key?: string) {
    this.key = key ?? (typeof policy.key === 'string' ? policy.key : undefined);
    this.columns = (policy.columns ?? []).map((c) => {
      const dot = c.table.lastIndexOf('.');
      return {
        schema: glob(dot < 0 ? '*' : c.table.slice(0, dot), { lowerCase: true }),
        table: glob(dot < 0 ? c.table : c.table.slice(dot + 1), { lowerCase: true }),
        column: c.column.toLowerCase(),
        strategy: c.strategy,
      };
    });
    this.names = (policy.names ?? []).map((n) => ({ pattern: new LinearRegex(n.pattern, { ignoreCase: true }), strategy: n.strategy }));
    for (const d of policy.detectors ?? []) if (!this.detectorStrategy.has(d.detector)) this.detectorStrategy.set(d.detector, d.strategy);
    this.detectors = [...this.detectorStrategy.keys()];
  }

  /** Whether the policy masks nothing at all. */
  get empty(): boolean {
    return this.columns.length === 0 && this.names.length === 0 && this.detectors.length === 0;
  }

  /** Whether any rule names columns by origin (then result columns need a catalog lookup). */
  get hasColumnRules(): boolean {
    return this.columns.length > 0;
  }

  /** Whether any rule names columns by name pattern. */
  get hasNameRules(): boolean {
    return this.names.length > 0;
  }

  /**
   * The strategy of the first column rule that names this origin (or the column in a table it
   * inherits from); `redact` for a value column of the planner's statistics when the policy masks
   * anything.
   */
  forOrigin(origin: ColumnOrigin): MaskStrategy | undefined {
    const column = origin.column.toLowerCase();
    if (!this.empty && origin.schema.toLowerCase() === 'pg_catalog' && STATISTICS_VALUE_COLUMNS.get(origin.table.toLowerCase())?.has(column)) return 'redact';
    for (const t of origin.inheritsFrom ? [origin, ...origin.inheritsFrom] : [origin]) {
      const schema = t.schema.toLowerCase();
      const table = t.table.toLowerCase();
      for (const c of this.columns) if ((c.column === '*' || c.column === column) && c.schema(schema) && c.table(table)) return c.strategy;
    }
    return undefined;
  }

  /**
   * Whether a value read from `origin` is masked: a column by its origin or name rules (a value
   * column of the planner's statistics when the policy masks anything), a whole row (`column` is
   * `*`) when its table (or one it inherits from) has such columns.
   */
  readsMasked(origin: ColumnOrigin): boolean {
    if (origin.column !== '*') return (this.forOrigin(origin) ?? this.forName(origin.column)) !== undefined;
    return [origin, ...(origin.inheritsFrom ?? [])].some((t) => this.tableHasRules(t.schema, t.table));
  }

  /** The strategy of the first name rule whose pattern matches the column name. */
  forName(name: string): MaskStrategy | undefined {
    for (const n of this.names) if (n.pattern.test(name)) return n.strategy;
    return undefined;
  }

  /** Whether some column rule covers a column of `schema.table`. */
  tableHasRules(schema: string, table: string): boolean {
    return this.columnsOfSqlTable(`${schema}.${table}`).size > 0;
  }

  /**
   * The masked column names (`*`: all of them) of a table as SQL text names it (see
   * `StatementFacts.tables`): `schema.table`, a bare `table` (any schema: the search path
   * decides), or `schema.*` (every table of the schema).
   */
  columnsOfSqlTable(name: string): Set<string> {
    const lower = name.toLowerCase();
    const dot = lower.lastIndexOf('.');
    const schema = dot < 0 ? undefined : lower.slice(0, dot);
    const table = dot < 0 ? lower : lower.slice(dot + 1);
    // pg_catalog comes first on every search path unless named later: a bare name may be its.
    const statistics = !this.empty && (schema === undefined || schema === 'pg_catalog') ? STATISTICS_VALUE_COLUMNS.get(table) : undefined;
    const out = new Set<string>(statistics);
    for (const c of this.columns) {
      if ((schema === undefined || c.schema(schema)) && (table === '*' || c.table(table))) out.add(c.column);
    }
    return out;
  }

  /** Applies a strategy to a whole value (`allowNull`: the value is a field that may become NULL). */
  apply(value: string, strategy: MaskStrategy, allowNull: boolean): string | null {
    return applyStrategy(value, strategy, this.key, allowNull);
  }

  /** What its content detectors do, for a worker thread to do it (./mask-ahead.ts). */
  get detection(): Detection {
    return { detectors: [...this.detectorStrategy], key: this.key };
  }

  /** Runs `fn` with {@link maskText} answering from `masked` (texts masked ahead, off the event loop); forgotten once it returns, so nothing is held past the message it was for. */
  withMasked<T>(masked: ReadonlyMap<string, MaskedText>, fn: () => T): T {
    const before = this.#masked;
    this.#masked = masked;
    try {
      return fn();
    } finally {
      this.#masked = before;
    }
  }

  /** Runs the content detectors over `text` and replaces every match by its strategy. */
  maskText(text: string): MaskedText {
    if (this.detectors.length === 0) return { text, changed: false, nullify: false };
    const known = text.length >= AHEAD_CHARS ? this.#masked?.get(text) : undefined;
    if (known) return known;
    const matches = detect(text, this.detectors);
    if (matches.length === 0) return { text, changed: false, nullify: false };
    let out = '';
    let at = 0;
    let nullify = false;
    for (const m of matches) {
      const strategy = this.detectorStrategy.get(m.detector)!;
      if (strategy === 'null') nullify = true;
      let value = text.slice(m.start, m.end);
      if (strategy === 'hash' && m.detector === 'payment-card') value = cardDigits(value);
      if (strategy === 'hash' && m.detector === 'iban') value = value.replace(/[ -]/g, '');
      out += text.slice(at, m.start) + applyStrategy(value, strategy, this.key, false);
      at = m.end;
    }
    return { text: out + text.slice(at), changed: true, nullify };
  }
}
