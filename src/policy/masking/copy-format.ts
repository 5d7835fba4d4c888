/**
 * How a COPY statement formats its rows, as its options say (the SQL analysis reads them from the
 * parse tree; the PostgreSQL engine's copy-out masking cuts rows by them).
 *
 * @see https://www.postgresql.org/docs/current/sql-copy.html#id-1.9.3.55.9 (file formats)
 */
/** How the COPY statement formats its rows (from its options). */
export interface CopyOptions {
  format: 'text' | 'csv' | 'binary';
  /** Default tab (text) or comma (csv). */
  delimiter?: string;
  /** csv only; default `"`. */
  quote?: string;
  /** csv only; default the quote character. */
  escape?: string;
  /** The NULL string; default `\N` (text) or the empty unquoted string (csv). */
  null?: string;
  /** csv only: the first row is a header. */
  header?: boolean;
}
