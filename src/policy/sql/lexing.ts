/**
 * Server settings under which PostgreSQL's lexer and hoop's parser (libpg_query, reading UTF-8
 * with `standard_conforming_strings` on) split SQL text alike. One list, used wherever a setting
 * is checked: at startup, in the statements that set it, and in the server's ParameterStatus.
 *
 * @see https://www.postgresql.org/docs/current/multibyte.html#MULTIBYTE-CHARSET-SUPPORTED
 * @see https://www.postgresql.org/docs/current/runtime-config-compatible.html#GUC-STANDARD-CONFORMING-STRINGS
 */

/**
 * Client encodings (and their aliases, spelled as PostgreSQL's `clean_encoding_name` leaves
 * them: lower-case letters and digits) whose bytes after the first of a multibyte character are
 * never below 0x80, so a backslash (0x5C) or quote byte is always that character: the
 * single-byte encodings, UTF-8, SQL_ASCII and the EUC family. An allow-list: SJIS,
 * SHIFT_JIS_2004, BIG5, GBK, UHC, GB18030, JOHAB and every alias of theirs (and any name the
 * server may add) are not on it.
 *
 * @see https://github.com/postgres/postgres/blob/REL_15_STABLE/src/common/encnames.c
 */
const BACKSLASH_SAFE_ENCODINGS: ReadonlySet<string> = new Set([
  'default',
  'utf8',
  'unicode',
  'sqlascii',
  ...Array.from({ length: 10 }, (_, i) => `latin${i + 1}`),
  ...['1', '2', '3', '4', '5', '6', '7', '8', '9', '10', '13', '14', '15', '16'].map((n) => `iso8859${n}`),
  ...['1250', '1251', '1252', '1253', '1254', '1255', '1256', '1257', '1258', '866', '874'].flatMap((n) => [`win${n}`, `windows${n}`]),
  'win',
  'alt',
  'abc',
  'tcvn',
  'tcvn5712',
  'vscii',
  'koi8',
  'koi8r',
  'koi8u',
  'eucjp',
  'euccn',
  'euckr',
  'euctw',
  'eucjis2004',
  'muleinternal',
]);

/** An encoding name as PostgreSQL compares it: letters and digits only, lower-case. */
function cleanEncodingName(name: string): string {
  return name.toLowerCase().replace(/[^a-z0-9]/g, '');
}

/** True when SQL sent in client encoding `name` lexes alike at the server and at hoop. */
export function lexingSafeEncoding(name: string): boolean {
  return BACKSLASH_SAFE_ENCODINGS.has(cleanEncodingName(name));
}

/**
 * True when values sent in client encoding `name` are UTF-8, as masking and the detectors read
 * them (under LATIN1 or WIN1252 a no-break space or an en dash between a card's digits is one
 * byte that is no UTF-8, and a masked value would be sent back in another encoding); SQL_ASCII
 * sends the bytes as stored, UTF-8 where the database is (`serverUtf8`: psql on a terminal in the
 * C locale asks for it).
 */
export function utf8Encoding(name: string, serverUtf8 = false): boolean {
  const clean = cleanEncodingName(name);
  return clean === 'utf8' || clean === 'unicode' || (serverUtf8 && clean === 'sqlascii');
}

/**
 * True when `name = value` keeps the server's lexing equal to hoop's parser:
 * `standard_conforming_strings` on (`default` counts: the gateway starts every session with it
 * on) and a {@link lexingSafeEncoding} client encoding; any other setting cannot change it.
 */
export function lexingSafeSetting(name: string, value: string): boolean {
  const lower = name.toLowerCase();
  if (lower === 'standard_conforming_strings') return ['on', 'true', 'yes', '1', 't', 'tr', 'tru', 'y', 'ye', 'default'].includes(value.trim().toLowerCase());
  if (lower === 'client_encoding') return lexingSafeEncoding(value);
  return true;
}
