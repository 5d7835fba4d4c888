/**
 * Results as psql prints them: the aligned table (`\pset format aligned`: centred headers, a
 * `-+-` rule, numbers right-aligned, NULL as an empty cell, `(n rows)`), CSV (`psql --csv`), and
 * psql's lines for errors and notices.
 *
 * @see https://www.postgresql.org/docs/current/app-psql.html (\pset format)
 */
import type { PgErrorFields } from '../postgres/wire/messages.js';
import { displayWidth, padToWidth } from '../text-format.js';

/** A value's lines as psql prints them in a table cell (NULL empty). */
function cellLines(v: unknown): string[] {
  return v === null || v === undefined ? [''] : String(v).split('\n');
}

/** Column widths for `names` and `rows`, as psql's aligned format computes them (the widest line of a cell, in terminal columns). */
export function columnWidths(names: readonly string[], rows: readonly (readonly unknown[])[]): number[] {
  return names.map((n, i) => {
    let w = displayWidth(n);
    for (const r of rows) for (const line of cellLines(r[i])) w = Math.max(w, displayWidth(line));
    return w;
  });
}

/** The header and rule of an aligned table: names centred, every cell padded. */
export function tableHeader(names: readonly string[], widths: readonly number[]): string[] {
  if (names.length === 0) return ['--']; // a result of no columns (`select;`): psql draws only this
  const cells = names.map((n, i) => padToWidth(padToWidth(n, Math.floor((widths[i]! + displayWidth(n)) / 2), true), widths[i]!));
  return [cells.map((c) => ` ${c} `).join('|'), widths.map((w) => '-'.repeat(w + 2)).join('+')];
}

/**
 * One row of an aligned table, as psql prints it: columns flagged in `right` (numbers) right-aligned,
 * the last column not padded on the right, a value of several lines continued on the next lines
 * with `+` where it goes on.
 */
export function tableRow(values: readonly unknown[], widths: readonly number[], right: readonly boolean[] = []): string[] {
  if (widths.length === 0) return [];
  const cells = widths.map((_, i) => cellLines(values[i]));
  const height = Math.max(1, ...cells.map((c) => c.length));
  const out: string[] = [];
  for (let l = 0; l < height; l++) {
    let line = '';
    for (let i = 0; i < widths.length; i++) {
      const part = cells[i]![l] ?? '';
      const more = l < cells[i]!.length - 1;
      const last = i === widths.length - 1;
      const padded = right[i] ? padToWidth(part, widths[i]!, true) : last && !more ? part : padToWidth(part, widths[i]!);
      line += `${i > 0 ? '|' : ''} ${padded}${more ? '+' : last ? '' : ' '}`;
    }
    out.push(line);
  }
  return out;
}

/** A whole aligned table: header, rule and rows. */
export function alignedTable(names: readonly string[], rows: readonly (readonly unknown[])[], right: readonly boolean[] = []): string[] {
  const widths = columnWidths(names, rows);
  return [...tableHeader(names, widths), ...rows.flatMap((r) => tableRow(r, widths, right))];
}

/** psql's footer of a result: `(1 row)`, `(n rows)`. */
export function rowCount(n: number): string {
  return `(${n} row${n === 1 ? '' : 's'})`;
}

/** A CSV field as `psql --csv` writes it: NULL (and an empty string) empty, quoted when it holds a comma, a quote or a line break, or is `\.`. */
export function csvField(v: string | null): string {
  if (v === null) return '';
  return /[",\r\n]/.test(v) || v === '\\.' ? `"${v.replace(/"/g, '""')}"` : v;
}

/** An ErrorResponse or NoticeResponse as psql prints it (`ERROR:  …`, `DETAIL:  …`, `HINT:  …`). */
export function serverMessageLines(f: Pick<PgErrorFields, 'message' | 'detail' | 'hint'> & { severity: string }): string[] {
  return [`${f.severity}:  ${f.message}`, ...(f.detail ? [`DETAIL:  ${f.detail}`] : []), ...(f.hint ? [`HINT:  ${f.hint}`] : [])];
}

/**
 * Type OIDs psql right-aligns: int2, int4, int8, float4, float8, numeric, oid, xid, xid8, cid, money.
 * @see https://github.com/postgres/postgres/blob/master/src/fe_utils/print.c (column_type_alignment)
 */
export const NUMERIC_TYPES = new Set([21, 23, 20, 700, 701, 1700, 26, 28, 5069, 29, 790]);
