/**
 * Text that others wrote (a statement, a command line, a reason, a value from a row), made safe
 * to print on a terminal: control characters other than newline and tab (carriage return and
 * escape included), DEL, the C1 controls, Unicode's bidirectional marks, embeddings, overrides
 * and isolates, its invisible characters (zero-width spaces and joiners, word joiner, soft hyphen,
 * byte-order mark) and its line and paragraph separators are shown as escapes (`\x1b`, `\u202e`). No text can then move the cursor, clear a
 * line or reorder what a reviewer or an auditor reads.
 *
 * @see https://invisible-island.net/xterm/ctlseqs/ctlseqs.html (C0 and C1 controls)
 * @see https://www.unicode.org/reports/tr9/#Explicit_Directional_Formatting_Characters
 * @see https://nvd.nist.gov/vuln/detail/CVE-2021-42574 ("Trojan Source")
 */
const UNSAFE = /[\x00-\x08\x0b-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]/g;

/** `text` with every character that could steer a terminal shown as an escape. */
export function terminalSafe(text: string): string {
  return text.replace(UNSAFE, (c) => {
    const n = c.charCodeAt(0);
    return n < 0x100 ? `\\x${n.toString(16).padStart(2, '0')}` : `\\u${n.toString(16).padStart(4, '0')}`;
  });
}
