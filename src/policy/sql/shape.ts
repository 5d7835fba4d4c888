/**
 * Statement shapes: a SQL text with its numeric literals replaced, so that texts which differ
 * only in those literals (`... WHERE aid = 4711` / `= 99`, as pgbench and most ORMs without
 * bind parameters send them) share what was learnt from one of them without being parsed again.
 * A shape is trusted only once a parse tree has shown that every replaced digit run was a
 * numeric constant (not part of a string, a comment or a quoted name), and only for plain
 * queries and DML whose facts (kinds, tables, functions, outputs, missing WHERE) the analysis
 * decided without comparing numeric values: a text whose `missingWhere` verdict compared
 * constants (`id < 5 OR id >= 6` is restricting, `id < 5 OR id >= 5` is not) is marked
 * `literalSensitive` and proves no shape, so each such text is parsed on its own.
 *
 * @see https://www.postgresql.org/docs/17/sql-syntax-lexical.html#SQL-SYNTAX-CONSTANTS-NUMERIC
 */
import type { Analysis, StatementKind } from './analyze.js';
import { LruCache } from './lru.js';

/** Statement kinds whose facts may be shared by shape (unless the analysis is `literalSensitive`). */
const SHAPE_KINDS: ReadonlySet<StatementKind> = new Set<StatementKind>(['select', 'insert', 'update', 'delete', 'merge']);

/**
 * Stands for a digit run in a shape: NUL, which no SQL text holds (the protocol's strings end at
 * it), so a shape never equals a text, and `?` or anything else written in a text is never taken
 * for a replaced number (`"t-?"` and `"t-1"` are two shapes).
 */
const PLACEHOLDER = '\u0000';

/**
 * The shape of an ASCII text: its digit runs replaced by {@link PLACEHOLDER}, where they were, and for each the
 * offset of a minus sign right before it (only blanks between), or -1: the parser folds `-5`
 * into one negative constant located at the sign (`abalance + -1234`, as pgbench sends it).
 * Undefined when the text has no digit run.
 */
export function sqlShape(sql: string): SqlShape | undefined {
  // A statement's shape is asked for by each cache it goes through, one after the other.
  if (sql === last.sql) return last.shape;
  const shape = shapeOf(sql);
  if (sql.length <= LAST_SHAPE_MAX_TEXT) last = { sql, shape };
  return shape;
}

/** A text's shape, as {@link sqlShape} gives it; shared by whoever asks for it again (not to be changed). */
export type SqlShape = Readonly<{ key: string; runs: readonly number[]; signs: readonly number[] }>;

/** The last text shaped, and its shape (texts up to {@link LAST_SHAPE_MAX_TEXT} characters). */
let last: { sql: string | undefined; shape: SqlShape | undefined } = { sql: undefined, shape: undefined };
const LAST_SHAPE_MAX_TEXT = 8192;

/** Whether char code `c` is a digit. */
const digit = (c: number): boolean => c >= 0x30 && c <= 0x39;

/** Whether a digit run after char code `c` continues something else: a name (a letter, digit or underscore before it), a parameter (`$1`) or a fraction (`.5`). */
const continues = (c: number): boolean => digit(c) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c === 0x5f || c === 0x24 || c === 0x2e;

/** Whether char code `c` is a blank between a minus sign and its number. */
const blank = (c: number): boolean => c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d;

/**
 * {@link sqlShape}'s scan, one pass: numeric literals are digit runs (with a fraction) that do not
 * continue an identifier, a parameter or a fraction; a text with a character outside ASCII, or NUL, has no shape.
 */
function shapeOf(sql: string): SqlShape | undefined {
  const runs: number[] = [];
  const signs: number[] = [];
  let key = '';
  let from = 0;
  let i = 0;
  while (i < sql.length) {
    const c = sql.charCodeAt(i);
    if (c === 0 || c > 0x7f) return undefined;
    if (!digit(c) || (i > 0 && continues(sql.charCodeAt(i - 1)))) {
      i++;
      continue;
    }
    runs.push(i);
    let before = i - 1;
    while (before >= 0 && blank(sql.charCodeAt(before))) before--;
    signs.push(before >= 0 && sql.charCodeAt(before) === 0x2d ? before : -1);
    key += sql.slice(from, i) + PLACEHOLDER;
    i++;
    while (i < sql.length && digit(sql.charCodeAt(i))) i++;
    if (sql.charCodeAt(i) === 0x2e && digit(sql.charCodeAt(i + 1))) {
      i += 2;
      while (i < sql.length && digit(sql.charCodeAt(i))) i++;
    }
    from = i;
  }
  return runs.length > 0 ? { key: key + sql.slice(from), runs, signs } : undefined;
}

/**
 * Whether `analysis` (of the text whose shape has these `runs`, and these minus `signs` as
 * {@link sqlShape} found them) proves the shape: every run is a numeric constant of the parse
 * tree (located at the run, or at the sign before it when the parser folded a negation into the
 * constant), no fact was decided by comparing numeric values (`literalSensitive`), and every
 * statement is a plain query or DML that changes no setting (`set_config()` takes its value from
 * a literal).
 */
export function shapeProven(runs: readonly number[], analysis: Analysis, signs: readonly number[] = []): boolean {
  if (!analysis.ok || analysis.literalSensitive === true) return false;
  const lits = analysis.numericLiterals;
  if (lits.length !== runs.length || !lits.every((v, i) => v === runs[i] || (v === signs[i] && v >= 0))) return false;
  return analysis.statements.every((f) => !f.changesLexing && f.kinds.every((k) => SHAPE_KINDS.has(k)) && !f.functions.some((fn) => fn === 'set_config' || fn.endsWith('.set_config')));
}

/**
 * An LRU cache by exact text and by proven shape.
 * @see https://www.postgresql.org/docs/17/sql-syntax-lexical.html#SQL-SYNTAX-CONSTANTS-NUMERIC
 */
export class ShapeCache<T> {
  /** Made on the first entry of each kind: a session's caches cost nothing until it sends SQL. */
  #exact: LruCache<string, T> | undefined;
  #shapes: LruCache<string, T> | undefined;
  readonly #size: number;
  readonly #maxText: number;

  /** `size` entries of each kind; texts longer than `maxText` are never cached. */
  constructor(size: number, maxText: number) {
    if (!Number.isInteger(size) || size < 1) throw new RangeError('LruCache capacity must be a positive integer');
    this.#size = size;
    this.#maxText = maxText;
  }

  /** How many entries are cached (by text, and by shape). */
  get size(): number {
    return (this.#exact?.size ?? 0) + (this.#shapes?.size ?? 0);
  }

  /** Forgets everything cached. */
  clear(): void {
    this.#exact = undefined;
    this.#shapes = undefined;
  }

  /** What was cached for `sql` or for a text of the same proven shape. */
  get(sql: string): T | undefined {
    if (sql.length > this.#maxText || !this.#exact) return undefined;
    const hit = this.#exact.get(sql);
    if (hit !== undefined) return hit;
    if (!this.#shapes) return undefined;
    const shape = sqlShape(sql);
    return shape ? this.#shapes.get(shape.key) : undefined;
  }

  /**
   * Caches `value` for `sql`, and for its shape when `analysis` proves it (`shapeValue` when the
   * value kept for other texts of the shape must differ, e.g. without per-text details).
   */
  set(sql: string, analysis: Analysis, value: T, shapeValue: T = value): void {
    if (sql.length > this.#maxText) return;
    (this.#exact ??= new LruCache(this.#size)).set(sql, value);
    const shape = sqlShape(sql);
    if (shape && shapeProven(shape.runs, analysis, shape.signs)) (this.#shapes ??= new LruCache(this.#size)).set(shape.key, shapeValue);
  }
}
