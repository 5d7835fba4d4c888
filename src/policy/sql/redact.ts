/**
 * Secrets a client types into SQL, kept out of what hoop writes down (recordings, the session
 * index, reviews): the string literal after a word that names a secret (`PASSWORD 'x'`,
 * `ENCRYPTED PASSWORD`, `IDENTIFIED BY`, `OPTIONS (password 'x')`, `SET app.api_token = 'x'`), every
 * literal of MySQL's `SET PASSWORD`, a connection string that holds a password (`dblink('… password=x')`,
 * `postgres://u:x@h`), and whatever the session's detectors find (a card number in an INSERT).
 * Each is replaced by `[redacted:<8 hex>]`, a keyed hash of the value, so two sessions can be
 * seen to use the same one without it being written down (`[redacted]` where no key is at hand).
 *
 * A small lexer reads the text as PostgreSQL or MySQL split it into words, strings and the rest
 * (quotes, dollar quotes, comments); what it cannot read to its end (an unterminated string) is
 * redacted to the end.
 *
 * @see https://www.postgresql.org/docs/current/sql-syntax-lexical.html
 * @see https://dev.mysql.com/doc/refman/8.0/en/string-literals.html
 */
import { createHmac } from 'node:crypto';
import { detect, type DetectorName } from '../masking/detectors.js';

/** The SQL dialect a text is lexed in. */
export type SqlDialect = 'postgres' | 'mysql';

/** One token: a word (lower-case `word`), a string literal (its content between `contentStart` and `contentEnd`), or anything else. */
type Token =
  | { kind: 'word'; start: number; end: number; word: string }
  | { kind: 'string'; start: number; end: number; contentStart: number; contentEnd: number }
  | { kind: 'other'; start: number; end: number; text: string };

/** A word that names a secret: the literal after it (past `=`, `TO`, `BY`) is one. */
const SECRET_WORD = /password|passwd|^pwd$|secret|token|api_?key|access_?key|private_?key|credential|passphrase|^identified$/;
/** What may stand between a secret's word and its literal. */
const BETWEEN = new Set(['=', ':=', 'to', 'by', 'as']);
/** What a statement holding a secret by {@link SECRET_WORD} or a connection string holds somewhere. */
const MAY_NAME_SECRET = /passw|pwd|secret|token|key|credential|passphrase|identified|:\/\//i;

/** A connection string or URI with a password in it. */
const CONNINFO_PASSWORD = /(^|\s)password\s*=|:\/\/[^/@\s:]*:[^/@\s]+@/i;

const isWordStart = (c: string): boolean => /[A-Za-z_\u0080-\uffff]/.test(c);
const isWordPart = (c: string): boolean => /[A-Za-z0-9_$\u0080-\uffff]/.test(c);

/** The tokens of `sql` (comments and blanks dropped). */
function lex(sql: string, dialect: SqlDialect): Token[] {
  const out: Token[] = [];
  const n = sql.length;
  let i = 0;
  /** A quoted run from `i` (its opening quote at `i`), doubled quotes (and, where `backslash`, escapes) inside; its end, or `n` when it does not end. */
  const quoted = (q: string, backslash: boolean): number => {
    let j = i + 1;
    while (j < n) {
      const c = sql[j]!;
      if (backslash && c === '\\') j += 2;
      else if (c === q && sql[j + 1] === q) j += 2;
      else if (c === q) return j + 1;
      else j++;
    }
    return n;
  };
  while (i < n) {
    const c = sql[i]!;
    if (/\s/.test(c)) {
      i++;
    } else if (c === '-' && sql[i + 1] === '-' && (dialect === 'postgres' || /\s/.test(sql[i + 2] ?? ' '))) {
      while (i < n && sql[i] !== '\n') i++;
    } else if (c === '#' && dialect === 'mysql') {
      while (i < n && sql[i] !== '\n') i++;
    } else if (c === '/' && sql[i + 1] === '*') {
      // PostgreSQL's comments nest; MySQL's do not.
      let depth = 1;
      i += 2;
      while (i < n && depth > 0) {
        if (sql[i] === '*' && sql[i + 1] === '/') depth--, (i += 2);
        else if (dialect === 'postgres' && sql[i] === '/' && sql[i + 1] === '*') depth++, (i += 2);
        else i++;
      }
    } else if (c === "'" || (dialect === 'mysql' && c === '"')) {
      // A prefix written against it (PostgreSQL's E, B, X, N; MySQL's _charset, N, X, B) is part of the string; E'…' takes backslash escapes, as MySQL's strings all do.
      const prev = out.at(-1);
      const prefix = prev?.kind === 'word' && prev.end === i && /^([ebxn]|_\w+)$/.test(prev.word) ? prev : undefined;
      if (prefix) out.pop();
      const escapes = dialect === 'mysql' || prefix?.word === 'e';
      const end = quoted(c, escapes);
      out.push({ kind: 'string', start: prefix?.start ?? i, end, contentStart: i + 1, contentEnd: end === n && sql[n - 1] !== c ? n : end - 1 });
      i = end;
    } else if (dialect === 'postgres' && c === '$' && /^\$([A-Za-z_][A-Za-z0-9_]*)?\$/.test(sql.slice(i, i + 66))) {
      const tag = /^\$([A-Za-z_][A-Za-z0-9_]*)?\$/.exec(sql.slice(i, i + 66))![0];
      const close = sql.indexOf(tag, i + tag.length);
      const end = close < 0 ? n : close + tag.length;
      out.push({ kind: 'string', start: i, end, contentStart: i + tag.length, contentEnd: close < 0 ? n : close });
      i = end;
    } else if (c === '"' || (dialect === 'mysql' && c === '`')) {
      const end = quoted(c, false);
      out.push({ kind: 'word', start: i, end, word: sql.slice(i + 1, end - 1).toLowerCase() });
      i = end;
    } else if (isWordStart(c)) {
      let j = i + 1;
      while (j < n && isWordPart(sql[j]!)) j++;
      out.push({ kind: 'word', start: i, end: j, word: sql.slice(i, j).toLowerCase() });
      i = j;
    } else {
      const two = sql.slice(i, i + 2);
      const text = two === ':=' ? two : c;
      out.push({ kind: 'other', start: i, end: i + text.length, text });
      i += text.length;
    }
  }
  return out;
}

/** The spans of `sql` (content of string literals) that hold a secret by the rules above. */
function secretSpans(sql: string, dialect: SqlDialect): Array<[number, number]> {
  const tokens = lex(sql, dialect);
  const spans: Array<[number, number]> = [];
  let statementStart = 0;
  for (let k = 0; k < tokens.length; k++) {
    const t = tokens[k]!;
    if (t.kind === 'other' && t.text === ';') statementStart = k + 1;
    if (t.kind !== 'string') continue;
    // The word before it, past `=`, `TO`, `BY`, `AS`.
    let p = k - 1;
    while (p >= statementStart) {
      const q = tokens[p]!;
      if ((q.kind === 'other' && BETWEEN.has(q.text)) || (q.kind === 'word' && BETWEEN.has(q.word))) p--;
      else break;
    }
    const before = p >= statementStart ? tokens[p] : undefined;
    const first = tokens.slice(statementStart, statementStart + 2).map((x) => (x.kind === 'word' ? x.word : ''));
    const content = sql.slice(t.contentStart, t.contentEnd);
    if (
      (before?.kind === 'word' && SECRET_WORD.test(before.word)) ||
      (dialect === 'mysql' && first[0] === 'set' && first[1] === 'password') ||
      CONNINFO_PASSWORD.test(content) ||
      t.contentEnd === sql.length
    )
      spans.push([t.contentStart, t.contentEnd]);
  }
  return spans;
}

/** What {@link redactSql} made of a text: the text to write down, and whether anything was replaced. */
export interface Redacted {
  text: string;
  redacted: boolean;
}

/**
 * `sql` with each secret it holds replaced by `[redacted:<hash>]`: `key` keys the hash (none: the
 * bare marker), `detectors` are the session's content detectors.
 */
export function redactSql(sql: string, dialect: SqlDialect, o: { key?: Buffer | string; detectors?: readonly DetectorName[] } = {}): Redacted {
  // Most statements name no secret: they are not lexed at all.
  const spans = MAY_NAME_SECRET.test(sql) ? secretSpans(sql, dialect) : [];
  if (o.detectors?.length) for (const m of detect(sql, o.detectors)) spans.push([m.start, m.end]);
  return withMarkers(sql, spans, o.key);
}

/** `text` with each of `spans` replaced by its marker (spans sorted and merged first). */
function withMarkers(text: string, spans: Array<[number, number]>, key: Buffer | string | undefined): Redacted {
  if (spans.length === 0) return { text, redacted: false };
  spans.sort((a, b) => a[0] - b[0] || b[1] - a[1]);
  let out = '';
  let at = 0;
  for (const [start, end] of spans) {
    if (end <= at) continue;
    const from = Math.max(start, at);
    out += text.slice(at, from) + redactionMarker(text.slice(from, end), key);
    at = end;
  }
  return { text: out + text.slice(at), redacted: true };
}

/** The marker a redacted value is written as: a keyed hash of it, so equal values read alike. */
export function redactionMarker(value: string, key: Buffer | string | undefined): string {
  return key === undefined ? '[redacted]' : `[redacted:${createHmac('sha256', key).update(value).digest('hex').slice(0, 8)}]`;
}

/** `text` with every marker's hash taken out: what two records compare where one could hash and the other could not. */
export function withoutRedactionHashes(text: string): string {
  return text.replace(/\[redacted:[0-9a-f]{8}\]/g, '[redacted]');
}

/** `text` (not SQL: a command line, a tool call's JSON, a parameter) with what `detectors` find replaced as {@link redactSql} replaces it. */
export function redactDetected(text: string, o: { key?: Buffer | string; detectors?: readonly DetectorName[] }): Redacted {
  return withMarkers(
    text,
    (o.detectors?.length ? detect(text, o.detectors) : []).map((m) => [m.start, m.end]),
    o.key,
  );
}
