/**
 * Statements' results printed as psql prints them: an aligned table, CSV as `psql --csv`, or one
 * JSON object per row. Results stream: a table is laid out from its first
 * {@link TABLE_LAYOUT_ROWS} rows, and every row after them is printed as it comes, so a result of
 * any size runs in bounded memory, and a slow reader of the output holds the rows back (the
 * handler's promise makes the reading wait).
 *
 * @see https://www.postgresql.org/docs/current/app-psql.html
 */
import type { Writable } from 'node:stream';
import { CommandExit, ErrorCode, HoopError } from '../errors.js';
import type { ResultHandler } from '../postgres/wire/client.js';
import { jsonValue } from '../postgres/wire/json-values.js';
import type { PgErrorFields } from '../postgres/wire/messages.js';
import type { RowDescriptionField } from '../postgres/wire/rows.js';
import { columnWidths, csvField, NUMERIC_TYPES, rowCount, serverMessageLines, tableHeader, tableRow } from './psql-format.js';

/** Rows a table is laid out from; later rows keep those widths (psql's FETCH_COUNT does the same). */
export const TABLE_LAYOUT_ROWS = 1000;

/** How results are printed. */
export type ResultFormat = 'table' | 'csv' | 'json';

/** The reader of the output went away (`hoop exec … | head`): exit as a Unix tool killed by SIGPIPE does, 128 + 13. */
const OUTPUT_CLOSED = 141;

/** Prints results in `format` to `out` (see the module documentation). */
export class ResultPrinter implements ResultHandler {
  readonly #out: Writable;
  readonly #err: Writable;
  readonly #format: ResultFormat;
  /** Why the output can take no more (a closed pipe), and the write waiting for it to drain. */
  #broken: Error | undefined;
  #waiting: (() => void) | undefined;
  readonly #onError = (err: Error): void => {
    this.#broken = err;
    this.#waiting?.();
  };
  #fields: RowDescriptionField[] = [];
  /** The table's first rows, held to lay it out; undefined once laid out. */
  #held: Array<Array<string | null>> | undefined;
  #widths: number[] = [];
  #right: boolean[] = [];
  #rows = 0;
  /** The statement being printed returns rows (it sent a RowDescription, even of no columns). */
  #result = false;

  constructor(out: Writable, err: Writable, format: ResultFormat) {
    this.#out = out;
    this.#err = err;
    this.#format = format;
    // Kept to the end of the process: a closed pipe is reported after the writes that found it.
    out.on('error', this.#onError);
  }

  /** Writes `s`; a Promise while the output is full, so reading waits (back-pressure reaches the gateway). */
  #write(s: string): Promise<void> | undefined {
    this.#check();
    if (this.#out.write(s)) return undefined;
    return new Promise<void>((resolve) => {
      this.#waiting = resolve;
      this.#out.once('drain', resolve);
    }).then(() => {
      this.#waiting = undefined;
      this.#check();
    });
  }

  #check(): void {
    if (!this.#broken) return;
    if ((this.#broken as NodeJS.ErrnoException).code === 'EPIPE') throw new CommandExit(OUTPUT_CLOSED);
    throw new HoopError(ErrorCode.INTERNAL, `cannot write the results: ${this.#broken.message}`, { hint: 'check where the output goes (a full disk, a closed terminal)', exitCode: 74 });
  }

  columns(fields: RowDescriptionField[]): Promise<void> | undefined {
    this.#fields = fields;
    this.#rows = 0;
    this.#result = true;
    if (this.#format === 'table') {
      this.#held = [];
      this.#right = fields.map((f) => NUMERIC_TYPES.has(f.typeOid));
      return undefined;
    }
    if (this.#format === 'csv') return this.#write(`${fields.map((f) => csvField(f.name)).join(',')}\n`);
    return undefined;
  }

  row(values: Array<string | null>): Promise<void> | undefined {
    this.#rows++;
    switch (this.#format) {
      case 'table':
        if (this.#held) {
          this.#held.push(values);
          return this.#held.length >= TABLE_LAYOUT_ROWS ? this.#layOut() : undefined;
        }
        return this.#write(
          tableRow(values, this.#widths, this.#right)
            .map((l) => `${l}\n`)
            .join(''),
        );
      case 'csv':
        return this.#write(`${values.map(csvField).join(',')}\n`);
      case 'json':
        return this.#write(`${JSON.stringify(Object.fromEntries(values.map((v, i) => [this.#fields[i]?.name ?? `?column${i}?`, jsonValue(v, this.#fields[i]?.typeOid ?? 0)])))}\n`);
    }
  }

  async complete(tag: string): Promise<void> {
    if (this.#format !== 'table') return;
    if (this.#held) await this.#layOut();
    // psql prints a result's rows and count, and the tag of a statement that returns none.
    if (this.#result) await this.#write(`${rowCount(this.#rows)}\n\n`);
    else await this.#write(`${tag}\n`);
    this.#result = false;
    this.#fields = [];
    this.#widths = [];
  }

  notice(fields: PgErrorFields): void {
    this.#err.write(`${serverMessageLines(fields).join('\n')}\n`);
  }

  /** Prints the held rows under a header laid out from them. */
  #layOut(): Promise<void> | undefined {
    const rows = this.#held!;
    this.#held = undefined;
    const names = this.#fields.map((f) => f.name);
    this.#widths = columnWidths(names, rows);
    return this.#write(`${[...tableHeader(names, this.#widths), ...rows.flatMap((r) => tableRow(r, this.#widths, this.#right))].join('\n')}\n`);
  }
}
