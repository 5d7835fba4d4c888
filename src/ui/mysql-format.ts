/**
 * Results as the mysql (and mariadb) client prints them in a table: `+---+` rules, `| a |` cells,
 * numbers right-aligned, NULL as `NULL`, then `n rows in set` (or `Empty set`).
 *
 * @see https://dev.mysql.com/doc/refman/8.0/en/mysql-batch.html
 */

/** A value as the client prints it in a cell. */
const cell = (v: unknown): string => (v === null || v === undefined ? 'NULL' : String(v));

/** The table of a result: rules, the header, the rows (`right`: the numeric columns). */
export function mysqlTable(names: readonly string[], rows: readonly (readonly unknown[])[], right: readonly boolean[] = []): string[] {
  const widths = names.map((n, i) => Math.max(n.length, ...rows.map((r) => cell(r[i]).length)));
  const rule = `+${widths.map((w) => '-'.repeat(w + 2)).join('+')}+`;
  const line = (values: readonly string[], aligned: boolean): string => `| ${values.map((v, i) => (aligned && right[i] ? v.padStart(widths[i]!) : v.padEnd(widths[i]!))).join(' | ')} |`;
  return [
    rule,
    line(names, false),
    rule,
    ...rows.map((r) =>
      line(
        names.map((_, i) => cell(r[i])),
        true,
      ),
    ),
    rule,
  ];
}

/** The client's footer of a result. */
export function mysqlRowCount(n: number): string {
  return n === 0 ? 'Empty set' : `${n} row${n === 1 ? '' : 's'} in set`;
}
