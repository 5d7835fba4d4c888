/**
 * Plain text for people and shells, shared by the gateway's messages and the CLI's commands.
 */
import stringWidth from 'string-width';

/** How many terminal columns `text` takes: a wide character (CJK, fullwidth) two, a combining mark none. */
export function displayWidth(text: string): number {
  return stringWidth(text);
}

const segmenter = new Intl.Segmenter(undefined, { granularity: 'grapheme' });

/** `text`'s characters as a terminal draws them (grapheme clusters: `1\u20e3` is one, two columns wide). */
export function* characters(text: string): Generator<string> {
  for (const { segment } of segmenter.segment(text)) yield segment;
}

/** `text` padded with spaces at its end (`start`: before it) to `width` terminal columns. */
export function padToWidth(text: string, width: number, start = false): string {
  const pad = ' '.repeat(Math.max(0, width - displayWidth(text)));
  return start ? pad + text : text + pad;
}

/** Rows padded into columns two spaces apart, by terminal columns (the last column not padded); `paint` dresses each cell after its width is counted. */
export function columns(rows: string[][], paint: (cell: string, row: number, column: number) => string = (c) => c): string[] {
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, displayWidth(cell))));
  return rows.map((row, r) =>
    row
      .map((cell, i) => `${paint(cell, r, i)}${i === row.length - 1 ? '' : ' '.repeat(widths[i]! - displayWidth(cell))}`)
      .join('  ')
      .trimEnd(),
  );
}

/** How long, said for people: `90 s`, `10 min`, `1.5 h`. */
export function formatDuration(ms: number): string {
  if (ms < 60_000) return `${Math.round(ms / 1000)} s`;
  if (ms < 7_200_000) return `${Math.round(ms / 60_000)} min`;
  return `${(ms / 3_600_000).toFixed(1).replace(/\.0$/, '')} h`;
}

/** Who must approve a held statement and how soon: `one approval from the group "dba" (not yours) within 10 min`. */
export function reviewTerms(s: { approvals: number; groups: readonly string[]; selfApprove: boolean; timeoutMs: number }): string {
  const groups = s.groups.map((g) => `"${g}"`).join(', ');
  return `${s.approvals === 1 ? 'one approval' : `${s.approvals} approvals`} from the group${s.groups.length > 1 ? 's' : ''} ${groups}${s.selfApprove ? '' : ' (not yours)'} within ${formatDuration(s.timeoutMs)}`;
}

/** Single-quotes `s` for a POSIX shell when it holds anything but safe characters. */
export function shellQuote(s: string): string {
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/** `N minutes` (or seconds when not a whole number of minutes). */
export function describeLength(seconds: number): string {
  if (seconds % 60 === 0) return seconds === 60 ? '1 minute' : `${seconds / 60} minutes`;
  return seconds === 1 ? '1 second' : `${seconds} seconds`;
}
