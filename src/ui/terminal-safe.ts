/**
 * Text that others wrote (a statement, a command line, a reason, a value from a row), made safe
 * to print on a terminal: every control and format character but newline and tab (carriage
 * return, escape, DEL and the C1 controls; Unicode's bidirectional marks, embeddings, overrides
 * and isolates), private-use, unassigned and lone surrogate code points, line and paragraph
 * separators, and every code point Unicode says a renderer may draw as nothing
 * (Default_Ignorable_Code_Point: zero-width spaces and joiners, fillers such as U+3164, variation
 * selectors, tag characters), and the braille blank, are shown as escapes (`\x1b`, `\u202e`,
 * `\u{e0072}`); so is every space but U+0020. No text can then move the cursor, clear a line, reorder what a
 * reviewer or an auditor reads, hide a character in it, or show one character as another.
 *
 * @see https://invisible-island.net/xterm/ctlseqs/ctlseqs.html (C0 and C1 controls)
 * @see https://www.unicode.org/reports/tr9/#Explicit_Directional_Formatting_Characters
 * @see https://www.unicode.org/reports/tr44/#Default_Ignorable_Code_Point
 * @see https://nvd.nist.gov/vuln/detail/CVE-2021-42574 ("Trojan Source")
 */
const UNSAFE_CLASS = '[\\p{Cc}\\p{Cf}\\p{Co}\\p{Cn}\\p{Cs}\\p{Zl}\\p{Zp}\\p{Zs}\\p{Default_Ignorable_Code_Point}\\u2800]';
const UNSAFE_CHAR = `(?![\\n\\t ])${UNSAFE_CLASS}`;
/** An unsafe character (`char`), or a backslash that would read as the start of an escape (before `\`, `x`, `u` or an escaped character): shown as `\\`. */
const unsafe = (char: string): RegExp => new RegExp(`${char}|\\\\(?=[\\\\xu]|${char})`, 'gu');
const UNSAFE = unsafe(UNSAFE_CHAR);
/**
 * Every character outside ASCII: in a statement any may pass for SQL's or a shell's own (`‐‐`
 * U+2010 or `ᐨᐨ` reads as a comment where PostgreSQL reads an alias; `ǁ` as `||`; a combining
 * overlay turns `=` into `≠`; a Cyrillic `а` names another role than it shows).
 */
const LOOKALIKE = '[^\\x00-\\x7f]';
const UNSAFE_IN_STATEMENT = unsafe(`(?:${UNSAFE_CHAR}|${LOOKALIKE})`);
/** The backquote escaped too: a Slack code block's text (a statement), which three backquotes would end. */
const UNSAFE_IN_CODE = unsafe(`(?:${UNSAFE_CHAR}|${LOOKALIKE}|\`)`);

/** What {@link lineSafe} escapes: what terminalSafe does, line breaks and tabs, and every backslash. */
const UNSAFE_ON_ONE_LINE = new RegExp(`(?! )${UNSAFE_CLASS}|\\\\`, 'gu');

/**
 * `text` on one line (a table cell, a list): as {@link terminalSafe} shows it, with each line break
 * `\n` and tab `\t` (never a blank: a line break ends a `--` or `#` comment, so folding it shows
 * what runs as commented out) and every backslash `\\`; so each character's escape is its own,
 * and what is shown reads back as one text only.
 */
export function lineSafe(text: string): string {
  return text.replace(UNSAFE_ON_ONE_LINE, (c) => (c === '\n' ? '\\n' : c === '\t' ? '\\t' : escapeOf(c)));
}

/**
 * `text` with every character that could steer a terminal, hide, or pass for another (every space but U+0020: a
 * no-break space is a letter to PostgreSQL) shown as an escape; a backslash that would read as the start of one is
 * shown as `\\`, so that what is shown reads back as one text only (`\x0d` typed is `\\x0d`, a carriage return `\x0d`).
 */
export function terminalSafe(text: string): string {
  return escaped(text, UNSAFE);
}

/** {@link terminalSafe} for a statement or command a reviewer approves: every character outside ASCII an escape too ({@link LOOKALIKE}), so what is shown is what runs. */
export function statementSafe(text: string): string {
  return escaped(text, UNSAFE_IN_STATEMENT);
}

/** {@link statementSafe}, with every backquote an escape too (`\x60`): for a code block that a run of them would end. */
export function codeBlockSafe(text: string): string {
  return escaped(text, UNSAFE_IN_CODE);
}

function escaped(text: string, unsafeChars: RegExp): string {
  return text.replace(unsafeChars, escapeOf);
}

/** One character's escape: `\\` for a backslash, else its code point (`\x1b`, `\u202e`, `\u{e0072}`). */
function escapeOf(c: string): string {
  if (c === '\\') return '\\\\';
  const n = c.codePointAt(0)!;
  return n < 0x100 ? `\\x${n.toString(16).padStart(2, '0')}` : n < 0x10000 ? `\\u${n.toString(16).padStart(4, '0')}` : `\\u{${n.toString(16)}}`;
}

/**
 * What puts a terminal back as a reader expects it, whatever a program that ran on it left: a soft
 * reset (DECSTR: attributes, cursor keys, insert and origin modes, scrolling margins), plain
 * attributes, the colour palette and the default foreground, background and cursor colours
 * reset, reverse video off, the cursor shown, the ASCII character set.
 */
export const TERMINAL_RESET = '\x1b[!p\x1b[0m\x1b]104\x07\x1b]110\x07\x1b]111\x07\x1b]112\x07\x1b[?5l\x1b[?25h\x1b[r\x1b(B';
