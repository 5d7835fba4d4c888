/**
 * Plain text for people and shells, shared by the gateway's messages and the CLI's commands.
 */
import ansiRegex from 'ansi-regex';
import { eastAsianWidth } from 'get-east-asian-width';

/** Printable ASCII, one column a character: most text, measured without Unicode's tables. */
const PLAIN = /^[\x20-\x7e]*$/;

/** The `v` flag (a property of strings: RGI_Emoji), which Node 20 has; typed as a string, as the type check knows it from ES2024 on. */
const UNICODE_SETS: string = 'v';

/** What measuring other text needs, made at its first use: a grapheme segmenter and Unicode's property tables cost ~25 ms at every start. */
let unicode: { segmenter: Intl.Segmenter; escapes: RegExp; visible: RegExp; emoji: RegExp; pictographs: RegExp; spacingMark: RegExp } | undefined;
const tables = () =>
  (unicode ??= {
    segmenter: new Intl.Segmenter(undefined, { granularity: 'grapheme' }),
    // A terminal's escape sequences (CSI, OSC, DCS and the other control strings, ESC and its final bytes, in 7- and 8-bit forms) take no column.
    escapes: ansiRegex(),
    visible: /[^\p{Default_Ignorable_Code_Point}\p{Control}\p{Format}\p{Nonspacing_Mark}\p{Enclosing_Mark}\p{Surrogate}]/u,
    emoji: new RegExp('^(?:\\p{RGI_Emoji}|[\\d#*]\\u20e3)$', UNICODE_SETS),
    pictographs: /\p{Extended_Pictographic}/gu,
    spacingMark: /^\p{Spacing_Mark}$/u,
  });

/** A Hangul jamo's part: a leading consonant (L), a vowel (V), a trailing consonant (T). */
const jamo = (c: number | undefined): 'L' | 'V' | 'T' | undefined =>
  c === undefined
    ? undefined
    : (c >= 0x1100 && c <= 0x115f) || (c >= 0xa960 && c <= 0xa97c)
      ? 'L'
      : (c >= 0x1160 && c <= 0x11a7) || (c >= 0xd7b0 && c <= 0xd7c6)
        ? 'V'
        : (c >= 0x11a8 && c <= 0x11ff) || (c >= 0xd7cb && c <= 0xd7fb)
          ? 'T'
          : undefined;

/** The columns of jamo drawn as a terminal does: L V (T) one syllable two wide, an unmatched one its own width, what follows them its own. */
function jamoWidth(points: number[]): number {
  let width = 0;
  for (let i = 0; i < points.length; i++) {
    const part = jamo(points[i]);
    if (!part) return points.slice(i).reduce((w, c) => w + eastAsianWidth(c), width);
    if (part === 'L' && jamo(points[i + 1]) === 'V') {
      width += 2;
      i += jamo(points[i + 2]) === 'T' ? 2 : 1;
    } else width += eastAsianWidth(points[i]!);
  }
  return width;
}

/** The columns of one grapheme cluster: none unprinted, two an emoji, else its first printed character's and those of spacing marks and halfwidth or fullwidth forms after it. */
function clusterWidth(cluster: string, u: NonNullable<typeof unicode>): number {
  const start = cluster.search(u.visible);
  if (start === -1) return 0;
  if (u.emoji.test(cluster) || (cluster.length <= 50 && cluster.includes('\u200d') && (cluster.match(u.pictographs)?.length ?? 0) >= 2)) return 2;
  const [first, ...rest] = [...cluster.slice(start)] as [string, ...string[]];
  if (jamo(first.codePointAt(0))) return jamoWidth([first, ...rest].filter((c) => u.visible.test(c)).map((c) => c.codePointAt(0)!));
  let width = eastAsianWidth(first.codePointAt(0)!);
  for (const c of rest) if (u.spacingMark.test(c) || (c >= '\uff00' && c <= '\uffef')) width += eastAsianWidth(c.codePointAt(0)!);
  return width;
}

/** How many terminal columns `text` takes: a wide character (CJK, fullwidth) two, a combining mark none. */
export function displayWidth(text: string): number {
  if (PLAIN.test(text)) return text.length;
  const u = tables();
  // Only text with ESC or CSI is read for escapes: a lone 8-bit OSC or DCS byte is a control of no width, what follows it text (as string-width counts).
  const plain = /[\x1b\x9b]/.test(text) ? text.replace(u.escapes, '') : text;
  if (PLAIN.test(plain)) return plain.length;
  let width = 0;
  for (const { segment } of u.segmenter.segment(plain)) width += clusterWidth(segment, u);
  return width;
}

/** `text`'s characters as a terminal draws them (grapheme clusters: `1\u20e3` is one, two columns wide). */
export function* characters(text: string): Generator<string> {
  for (const { segment } of tables().segmenter.segment(text)) yield segment;
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
