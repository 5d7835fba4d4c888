/**
 * What the gateway keeps and reads back (its data directory's files, the PostgreSQL store's jsonb
 * columns) is read with the schema of its shape, never cast: the fields it acts on (ids, states,
 * expiries, owners, digests) are checked, and any other field is kept as it is, since a newer
 * gateway sharing the store (a rolling upgrade across replicas) may have added one.
 *
 * What becomes of a record that fails its schema is each store's to say, and it says it:
 * - a line (or an entry) of a file of the data directory is skipped with a warning naming the file
 *   and the line: the rest of the file is kept ({@link fileRecord}); a file written whole (runs,
 *   direct credentials, alerts) is written again without it at its next change;
 * - a row of the PostgreSQL store makes that one read fail, STORE_UNAVAILABLE saying which record
 *   this gateway cannot read ({@link storedRow}), rather than act on a shape it does not know.
 *
 * @see https://zod.dev/api#objects (loose objects)
 */
import * as z from 'zod';
import { ErrorCode, HoopError } from './errors.js';
import type { Logger } from './log.js';

/**
 * An object of a record the gateway keeps (or answers): its fields checked, any other field kept
 * as it is. Typed by its fields alone: zod types a loose object with an index signature, which
 * would let a misspelt field pass in every object literal of the type; extra fields need none.
 */
export function recordObject<T extends z.ZodRawShape>(shape: T): z.ZodObject<T> {
  return z.looseObject(shape) as unknown as z.ZodObject<T>;
}

/** A time as the gateway writes them (ISO 8601): a text `Date.parse` reads. */
export const storedTime = z.string().refine((s) => !Number.isNaN(Date.parse(s)), { error: 'must be a time (ISO 8601)' });

/** What is wrong with a record, in words: its first problems, each with the field it is in. */
export function recordProblem(error: z.ZodError): string {
  const said = error.issues.slice(0, 3).map((i) => `${i.path.length > 0 ? i.path.join('.') : 'the record'}: ${i.message}`);
  return `${said.join('; ')}${error.issues.length > 3 ? `; and ${error.issues.length - 3} more` : ''}`;
}

/**
 * A record of the PostgreSQL store, read with `schema`.
 *
 * @param what the record, for people: `review rv-…`
 * @throws HoopError STORE_UNAVAILABLE when it is not of that shape
 */
export function storedRow<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  throw new HoopError(ErrorCode.STORE_UNAVAILABLE, `the store holds ${what} that this gateway cannot read: ${recordProblem(parsed.error)}`, {
    hint: 'a gateway of another version may have written it: run the same version on every replica; otherwise restore that row from a backup',
  });
}

/** Where in a file of the data directory a record is: its line (a JSON lines file), its entry (a file of one JSON array), or the whole file. */
export interface FilePlace {
  file: string;
  line?: number;
  entry?: number;
}

/**
 * A record of a file of the data directory, read with `schema`; undefined when it is not of that
 * shape, after a warning that names the file and the line (`what`: the record, for people).
 */
export function fileRecord<T>(schema: z.ZodType<T>, value: unknown, what: string, at: FilePlace, log: Logger): T | undefined {
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  skipRecord(what, at, recordProblem(parsed.error), log);
  return undefined;
}

/** The record of one line of a JSON lines file (see {@link fileRecord}); a line that is not JSON is skipped too ({@link lineJson}). */
export function lineRecord<T>(schema: z.ZodType<T>, text: string, what: string, at: FilePlace, log: Logger): T | undefined {
  const value = lineJson(text, what, at, log);
  return value === undefined ? undefined : fileRecord(schema, value, what, at, log);
}

/** The JSON value of one line of a JSON lines file; undefined when it is not JSON (a line a crash cut short), after a warning naming the file and the line. */
export function lineJson(text: string, what: string, at: FilePlace, log: Logger): unknown {
  try {
    return JSON.parse(text);
  } catch {
    skipRecord(what, at, 'not JSON (a line cut short by a crash?)', log);
    return undefined;
  }
}

/**
 * The records of a file holding one JSON array, each read with `schema` (see {@link fileRecord}):
 * one of another shape is left out, so the file's next write (it is written whole) drops it.
 *
 * @throws HoopError CONFIG_INVALID when the file is not a JSON array (it is written whole, atomically: someone else wrote it)
 */
export function fileRecords<T>(schema: z.ZodType<T>, text: string, what: string, file: string, log: Logger): T[] {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    value = undefined;
  }
  if (!Array.isArray(value)) {
    throw new HoopError(ErrorCode.CONFIG_INVALID, `${file} is not a JSON array of the gateway's ${what}s`, {
      hint: 'restore it from a backup, or move it aside to start without them',
    });
  }
  const out: T[] = [];
  value.forEach((v, i) => {
    const parsed = schema.safeParse(v);
    if (parsed.success) out.push(parsed.data);
    else skipRecord(what, { file, entry: i + 1 }, recordProblem(parsed.error), log, 'it is left out, and goes when the file is next written; the others are kept');
  });
  return out;
}

/** Says that the record at `at` was skipped, why, and what becomes of it. */
export function skipRecord(what: string, at: FilePlace, problem: string, log: Logger, outcome = 'it is skipped, the others are kept'): void {
  const place = at.line !== undefined ? `, line ${at.line}` : at.entry !== undefined ? `, entry ${at.entry}` : '';
  log.warn('store.record-skipped', {
    ...at,
    problem,
    message: `${at.file}${place}: not ${/^[aeiou]/i.test(what) ? 'an' : 'a'} ${what} this gateway can read (${problem}); ${outcome}`,
  });
}
