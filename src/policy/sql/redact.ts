/**
 * Secrets a client types into SQL, kept out of what hoop writes down (recordings, the session
 * index, reviews): the string literal after a word that names a secret (`PASSWORD 'x'`,
 * `ENCRYPTED PASSWORD`, `IDENTIFIED BY`, `OPTIONS (password 'x')`, `SET app.api_token = 'x'`), every
 * literal of MySQL's `SET PASSWORD`, a connection string that holds a password (`dblink('… password=x')`,
 * `postgres://u:x@h`), a function's key or password argument (`pgp_sym_encrypt(d, 'k')`, `AES_ENCRYPT`,
 * `set_config('app.api_token', 'x', false)`), and whatever the session's detectors find (a card number in an INSERT).
 * Each is replaced by `[redacted:<8 hex>]`, a keyed hash of the value, so two sessions can be
 * seen to use the same one without it being written down (`[redacted]` where no key is at hand).
 *
 * A small lexer reads the text as PostgreSQL or MySQL split it into words, strings and the rest,
 * by their lexical grammars (PostgreSQL's scan.l, MySQL's lexer): every string form (`'…'`,
 * `E'…'`, `B'…'`, `X'…'`, `N'…'`, `U&'…'` with or without UESCAPE, dollar quotes whose tag may hold
 * any letter, MySQL's `"…"`, `_charset` introducers), literals joined into one (PostgreSQL's across a
 * newline, MySQL's across any blank), comments, and MySQL's executable comments (`/*! … *\/`, `/*M!
 * … *\/`), whose body MariaDB runs and which is lexed as SQL. What it cannot read to its end (an
 * unterminated string) is redacted to the end. Where a secret's place holds an expression (`'a' ||
 * 'b'`), every literal in it is redacted; a literal that itself holds SQL with a secret (`PREPARE s
 * FROM '…'`, `dblink_exec('…')`) is redacted whole.
 *
 * @see https://www.postgresql.org/docs/current/sql-syntax-lexical.html
 * @see https://dev.mysql.com/doc/refman/8.0/en/string-literals.html
 */
import { createHmac } from 'node:crypto';
import { detect, type DetectorName, integerDigits, SCALED_NUMBER } from '../masking/detectors.js';
import { executableCommentRuns, type PrepassOptions } from '../mysql/prepass.js';

/** How secrets are written down: the key of their hashes (none: the bare marker), and the session's detectors. */
export interface RedactOptions {
  key?: Buffer | string;
  detectors?: readonly DetectorName[];
  /** MySQL: how the session's sql_mode has the server read strings (none: MariaDB's default, backslash escapes and `"` strings). */
  mysqlMode?: MysqlLexing;
}

/** How MariaDB lexes the session's SQL: its sql_mode (`NO_BACKSLASH_ESCAPES`, `ANSI_QUOTES`: `"` quotes a name), and its versioned comments by the server's kind and version (as the judge's pre-pass reads them). */
export type MysqlLexing = PrepassOptions;

/** The SQL dialect a text is lexed in. */
export type SqlDialect = 'postgres' | 'mysql';

/** One token: a word (lower-case `word`), a string literal (its content between `contentStart` and `contentEnd`), a parameter (`$2`; MySQL's `?`, numbered in order), or anything else. */
type Token =
  | { kind: 'word'; start: number; end: number; word: string }
  | { kind: 'string'; start: number; end: number; contentStart: number; contentEnd: number }
  | { kind: 'param'; start: number; end: number; number: number }
  | { kind: 'other'; start: number; end: number; text: string };

/** A word that names a secret: the literal after it (past `=`, `TO`, `BY`) is one. */
const SECRET_WORD = /password|passwd|^pwd$|secret|token|api_?key|access_?key|private_?key|credential|passphrase|^identified$/;
/** What may stand between a secret's word and its literal. */
const BETWEEN = new Set(['=', ':=', 'to', 'by', 'as']);
/**
 * The arguments of functions that take a secret, by position (0 first): pgcrypto's keys and
 * passwords, MySQL's and MariaDB's key strings and password hashing.
 *
 * @see https://www.postgresql.org/docs/current/pgcrypto.html
 * @see https://dev.mysql.com/doc/refman/8.0/en/encryption-functions.html
 */
const SECRET_ARGUMENTS: Record<SqlDialect, Readonly<Record<string, readonly number[]>>> = {
  postgres: {
    crypt: [0],
    hmac: [1],
    encrypt: [1],
    decrypt: [1],
    encrypt_iv: [1],
    decrypt_iv: [1],
    pgp_sym_encrypt: [1],
    pgp_sym_encrypt_bytea: [1],
    pgp_sym_decrypt: [1],
    pgp_sym_decrypt_bytea: [1],
    pgp_pub_decrypt: [1, 2],
    pgp_pub_decrypt_bytea: [1, 2],
    dblink_connect: [0, 1],
    dblink_connect_u: [0, 1],
    dblink: [0],
    dblink_exec: [0],
  },
  mysql: { aes_encrypt: [1], aes_decrypt: [1], des_encrypt: [1], des_decrypt: [1], encode: [1], decode: [1], encrypt: [0], password: [0], old_password: [0], validate_password_strength: [0] },
};
/** What a statement holding a secret by {@link SECRET_WORD}, {@link SECRET_ARGUMENTS} or a connection string holds somewhere. */
const MAY_NAME_SECRET = /passw|pwd|secret|token|key|credential|passphrase|identified|crypt|hmac|pgp_|aes_|des_|code\s*\(|validate_password|execute|dblink|:\/\//i;

/**
 * What a statement whose secret may be in a form the place-finder does not read names somewhere (a
 * password word in a comment, a column list or dynamic SQL, a Unicode escape, a URI's percent
 * escape, a cipher's or dblink's function): every literal of such a statement is taken as a secret.
 */
const EVERY_LITERAL =
  /passw|pwd|secret|token|api_?key|access_?key|identified|conninfo|credential|passphrase|private_?key|set_config|u&['"]|crypt|pgp_|aes_|des_|hmac|dblink|\\(x[0-9a-f]|[0-7]|u[0-9a-f]{4})/i;

/** Whether `sql` names a secret as {@link EVERY_LITERAL} says, or holds a URI with a percent escape (read in one pass: a pattern for it backtracked on `://` repeated). */
function namesSecretAnywhere(sql: string): boolean {
  if (EVERY_LITERAL.test(sql)) return true;
  for (let at = sql.indexOf('://'); at >= 0; ) {
    let end = at + 3;
    while (end < sql.length && !/[\s'"]/.test(sql[end]!)) end++;
    if (/%[0-9a-f]{2}/i.test(sql.slice(at + 3, end))) return true;
    at = sql.indexOf('://', end);
  }
  return false;
}
/** Words that may start an INSERT's rows where no column list names their columns. */
const ROWS_UNNAMED = new Set(['values', 'value', 'select', 'table', 'with', 'overriding', 'default']);
const INSERT_MODIFIERS = new Set(['low_priority', 'delayed', 'high_priority', 'ignore', 'into']);

/**
 * Whether `sql` has an INSERT or REPLACE whose values go to columns it does not name (no column
 * list: `insert into creds values ('alice', 'hunter2')`): no word of it says which value is a
 * secret, so every literal is taken as one. Read on the lexer's tokens, as the server reads them
 * (comments between words, quoted and qualified names, MySQL's `PARTITION (p)`).
 */
function unnamedColumns(sql: string, dialect: SqlDialect, mode?: MysqlLexing): boolean {
  if (!/insert|replace/i.test(sql)) return false;
  const tokens = lex(sql, dialect, mode);
  const word = (k: number): string | undefined => (tokens[k]?.kind === 'word' ? (tokens[k] as { word: string }).word : undefined);
  const other = (k: number): string | undefined => (tokens[k]?.kind === 'other' ? (tokens[k] as { text: string }).text : undefined);
  for (let k = 0; k < tokens.length; k++) {
    // Any INSERT or REPLACE, after a WITH's queries too; not their functions (`replace(s, a, b)`).
    if ((word(k) !== 'insert' && word(k) !== 'replace') || other(k + 1) === '(' || other(k - 1) === '.') continue;
    let j = k + 1;
    while (INSERT_MODIFIERS.has(word(j) ?? '')) j++;
    // The table: a name, qualified by dots.
    if (word(j) === undefined) continue;
    j++;
    while (other(j) === '.' && word(j + 1) !== undefined) j += 2;
    if (dialect === 'mysql' && word(j) === 'partition' && other(j + 1) === '(') {
      while (j < tokens.length && other(j) !== ')' && other(j) !== ';') j++;
      j++;
    }
    if (word(j) === 'as') j += 2;
    if (ROWS_UNNAMED.has(word(j) ?? '')) return true;
    if (other(j) === '(' && (ROWS_UNNAMED.has(word(j + 1) ?? '') || other(j + 1) === '(')) return true;
    k = Math.max(k, j - 1); // what was read is not read again
  }
  return false;
}
/** Hex literals and numbers of six digits or more outside strings (a cipher's key given as `0x…`, a numeric token); short numbers (`id = 5`) stay. */
const NUMBER_LITERAL = /\b(0x[0-9a-f_]+|0o[0-7_]+|0b[01_]+|\d[\d_]{5,})\b/gi;

/**
 * A connection string or URI with a password in it: a URI's password is what libpq reads there,
 * everything from the first `:` after the user to the `@` (blanks too), the user ending at `:`.
 */
const CONNINFO_PASSWORD = /(^|\s|\\[nrtf]|[?&;'"])password\s*=|:\/\/[^/@:]*:[^/@]*@/i;

const isWordStart = (c: string): boolean => /[A-Za-z_\u0080-\uffff]/.test(c);
/** A dollar quote's opening tag at `i`, of any length (scan.l: `dolq_start` is a letter, `_` or any byte from 0x80, `dolq_cont` a digit too). */
function dollarTag(sql: string, i: number): string | undefined {
  let j = i + 1;
  if (j < sql.length && /[A-Za-z_\u0080-\uffff]/.test(sql[j]!)) while (j < sql.length && /[A-Za-z0-9_\u0080-\uffff]/.test(sql[j]!)) j++;
  return sql[j] === '$' ? sql.slice(i, j + 1) : undefined;
}
/** PostgreSQL's and MariaDB's blanks (scan.l's `space`): a Unicode space (U+00A0) is a letter of a name to PostgreSQL. */
const isBlank = (c: string): boolean => c === ' ' || c === '\t' || c === '\n' || c === '\r' || c === '\f' || c === '\v';
/**
 * Where a literal goes on after it (scan.l's `quotecontinue`): blanks holding a newline (a `--`
 * comment may end a line among them), then the next quote; MySQL joins literals across any blank.
 * The index of that quote, or -1.
 */
function continuation(sql: string, from: number, dialect: SqlDialect): number {
  let j = from;
  let newline = false;
  while (j < sql.length) {
    const c = sql[j]!;
    if (c === '\n' || c === '\r') {
      newline = true;
      j++;
    } else if (isBlank(c)) j++;
    else if (dialect === 'postgres' && c === '-' && sql[j + 1] === '-') j = lineEnd(sql, j, dialect);
    else break;
  }
  return sql[j] === "'" && j > from && (newline || dialect === 'mysql') ? j : -1;
}
/** Whether MariaDB (or MySQL) runs the executable comment at `i` (`/*!NNNNN`, `/*M!`): one whose running is unknown is read as run. */
function versionedRuns(sql: string, i: number, mode: MysqlLexing | undefined): boolean {
  const mariaOnly = sql[i + 2] === 'M';
  const at = i + (mariaOnly ? 4 : 3);
  const digits = /^[0-9]{5}/.test(sql.slice(at, at + 5)) ? (/[0-9]/.test(sql[at + 5] ?? '') ? 6 : 5) : 0;
  return executableCommentRuns(digits ? Number(sql.slice(at, at + digits)) : undefined, mariaOnly, mode ?? {}) !== 'comment';
}

/**
 * Where a line comment from `i` ends: PostgreSQL's at a newline or a carriage return (scan.l's
 * `non_newline` is `[^\n\r]`), MySQL's at a newline.
 */
function lineEnd(sql: string, i: number, dialect: SqlDialect): number {
  let j = i;
  while (j < sql.length && sql[j] !== '\n' && !(dialect === 'postgres' && sql[j] === '\r')) j++;
  return j;
}
const isWordPart = (c: string): boolean => /[A-Za-z0-9_$\u0080-\uffff]/.test(c);

/** The tokens of `sql` (comments and blanks dropped). */
function lex(sql: string, dialect: SqlDialect, mode?: MysqlLexing): Token[] {
  const out: Token[] = [];
  const n = sql.length;
  let i = 0;
  let questionMarks = 0;
  /** MySQL: the executable comments (`/*! … *\/`) open here. */
  let executable = 0;
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
    if (isBlank(c)) {
      i++;
    } else if (c === '-' && sql[i + 1] === '-' && (dialect === 'postgres' || /[\x00-\x20\x7f]/.test(sql[i + 2] ?? ' '))) {
      // MySQL: `--` starts a comment before a blank or any control character; PostgreSQL's ends at a carriage return too.
      i = lineEnd(sql, i, dialect);
    } else if (c === '#' && dialect === 'mysql') {
      i = lineEnd(sql, i, dialect);
    } else if (dialect === 'mysql' && c === '/' && sql[i + 1] === '*' && (sql[i + 2] === '!' || (sql[i + 2] === 'M' && sql[i + 3] === '!')) && versionedRuns(sql, i, mode)) {
      // An executable comment the server runs (by its version, as the judge's pre-pass reads it): its body is lexed as SQL.
      i += sql[i + 2] === '!' ? 3 : 4;
      while (i < n && /[0-9]/.test(sql[i]!)) i++;
      executable++;
    } else if (dialect === 'mysql' && executable > 0 && c === '*' && sql[i + 1] === '/') {
      executable--;
      i += 2;
    } else if (c === '/' && sql[i + 1] === '*') {
      // PostgreSQL's comments nest; MySQL's do not.
      let depth = 1;
      i += 2;
      while (i < n && depth > 0) {
        if (sql[i] === '*' && sql[i + 1] === '/') depth--, (i += 2);
        else if (dialect === 'postgres' && sql[i] === '/' && sql[i + 1] === '*') depth++, (i += 2);
        else i++;
      }
    } else if (c === "'" || (dialect === 'mysql' && c === '"' && !mode?.ansiQuotes)) {
      // A prefix written against it (PostgreSQL's E, B, X, N, U&; MySQL's N, X, B) is part of the string; E'…' takes backslash escapes, as MySQL's strings all do.
      // MySQL's _charset introducer may stand apart from it.
      const prev = out.at(-1);
      const before = out.at(-2);
      const unicode = dialect === 'postgres' && prev?.kind === 'other' && prev.text === '&' && prev.end === i && before?.kind === 'word' && before.end === prev.start && before.word === 'u';
      const prefix = prev?.kind === 'word' && ((prev.end === i && /^([ebxn]|_\w+)$/.test(prev.word)) || (dialect === 'mysql' && /^_\w+$/.test(prev.word))) ? prev : unicode ? before : undefined;
      if (unicode) out.splice(-2, 2);
      else if (prefix) out.pop();
      const escapes = dialect === 'mysql' ? !mode?.noBackslashEscapes : prefix?.word === 'e';
      const contentStart = i + 1;
      let end = quoted(c, escapes);
      // Literals joined into one (PostgreSQL: across a newline; MySQL: across any blank) are one literal.
      for (let next = c === "'" && end < n ? continuation(sql, end, dialect) : -1; next >= 0; next = end < n ? continuation(sql, end, dialect) : -1) {
        i = next;
        end = quoted("'", escapes);
      }
      out.push({ kind: 'string', start: prefix?.start ?? contentStart - 1, end, contentStart, contentEnd: end === n && sql[n - 1] !== c ? n : end - 1 });
      i = end;
    } else if (dialect === 'postgres' && c === '$' && dollarTag(sql, i) !== undefined) {
      const tag = dollarTag(sql, i)!;
      const close = sql.indexOf(tag, i + tag.length);
      const end = close < 0 ? n : close + tag.length;
      out.push({ kind: 'string', start: i, end, contentStart: i + tag.length, contentEnd: close < 0 ? n : close });
      i = end;
    } else if (dialect === 'postgres' && c === '$' && /[0-9]/.test(sql[i + 1] ?? '')) {
      let j = i + 1;
      while (j < n && /[0-9]/.test(sql[j]!)) j++;
      out.push({ kind: 'param', start: i, end: j, number: Number(sql.slice(i + 1, j)) });
      i = j;
    } else if (dialect === 'mysql' && c === '?') {
      out.push({ kind: 'param', start: i, end: i + 1, number: ++questionMarks });
      i++;
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

/** What of a statement holds a secret: spans of its text (string literals' content), and the parameters (1 first) whose values are one. */
interface Secrets {
  spans: Array<[number, number]>;
  params: number[] | 'all';
}

/** The parameters (1 first) whose values are secrets, or `all` of them (a text hoop cannot lex for sure, or did not read). */
export type SecretParams = readonly number[] | 'all';

/** Whether parameter `n` (1 first) of `params` is a secret. */
export function isSecretParam(params: SecretParams, n: number): boolean {
  return params === 'all' || params.includes(n);
}

/**
 * A run of a statement between its separators, at one depth: an argument of a call, an item of a
 * column or value list, a condition between ANDs, a clause. It is a secret's place when a rule marks
 * it, or when it names a secret and compares or assigns (`password = $1`, `$1 <> api_token`,
 * `password IN ($1)`); what lies in it at any depth (`pgp_sym_encrypt(d, coalesce($2, ''))`) is then
 * a secret too.
 */
interface Segment {
  parent: Segment | undefined;
  marked: boolean;
  namesSecret: boolean;
  compares: boolean;
  /** A string in it names a secret (a setting's name): the next argument of its call holds the value. */
  nameString: boolean;
  /** It joins values with `||`: a secret literal in it makes every literal in it one. */
  concat?: boolean;
}

/** A parenthesised group: the function it calls (none for a subquery or a list), and its arguments' segments. */
interface Group {
  name: string | undefined;
  args: Segment[];
  /** An INSERT's column list: what each of its VALUES tuples' arguments is for. */
  columns?: boolean;
  /** A VALUES tuple of an INSERT: its arguments take the secrecy of the column list's. */
  values?: boolean;
  /** `EXECUTE name (…)`: its arguments take the secrecy of the statement's parameters (all, when hoop did not see it prepared). */
  executes?: SecretParams;
}

/** Words that start a new segment where they stand outside a call: clauses, and the conditions AND and OR join. */
const SEPARATORS = new Set([
  'where',
  'and',
  'or',
  'set',
  'select',
  'from',
  'values',
  'value',
  'on',
  'having',
  'returning',
  'when',
  'then',
  'else',
  'limit',
  'offset',
  'join',
  'union',
  'except',
  'intersect',
]);
/** Words that compare or assign, beside `=`, `<`, `>`, `!`, `:=`, `~`. */
const COMPARING = new Set(['in', 'like', 'ilike', 'similar', 'between', 'is']);

/** Whether `seg`, or a segment it lies in, is a secret's place. */
function inSecret(seg: Segment | undefined, memo?: Map<Segment, boolean>): boolean {
  return anyUp(seg, (s) => s.marked || (s.namesSecret && s.compares), memo);
}

/** Whether `seg` or a segment it lies in passes `test`; with `memo`, each segment's answer is kept, so nested segments walk their chain once in all. */
function anyUp(seg: Segment | undefined, test: (s: Segment) => boolean, memo = new Map<Segment, boolean>()): boolean {
  const walked: Segment[] = [];
  let found = false;
  for (let s = seg; s; s = s.parent) {
    const known = memo.get(s);
    if (known !== undefined) {
      found = known;
      break;
    }
    walked.push(s);
    if (test(s)) {
      found = true;
      break;
    }
  }
  for (const s of walked) memo.set(s, found);
  return found;
}

/**
 * What of `sql` holds a secret: a literal or parameter after a word that names one, in a segment
 * that compares or assigns a secret's column, at a secret's place in a function's arguments, in the
 * argument after one that names a secret (`set_config('app.api_token', $1, false)`, named or cast),
 * in an INSERT's value for a column that names one; a literal holding a connection string with a
 * password. A MySQL text whose lexing hoop cannot be sure of (an executable comment, a backslash or
 * double quote, which the session's sql_mode reads its own way) has every parameter taken as one.
 */
function secretsOf(sql: string, dialect: SqlDialect, mode?: MysqlLexing, depth = 0): Secrets {
  const tokens = lex(sql, dialect, mode);
  const found: Secrets = { spans: [], params: [] };
  const places: Array<{ t: Token; seg: Segment; before: Token | undefined; first: string[] }> = [];
  /** Whether a literal or parameter is at a secret's place (its segment's secrecy may be known only later in the text). */
  const secretPlace = ({ t, seg, before, first }: (typeof places)[number], memo?: Map<Segment, boolean>): boolean => {
    const content = t.kind === 'string' ? sql.slice(t.contentStart, t.contentEnd) : '';
    return (
      (before?.kind === 'word' && SECRET_WORD.test(before.word)) ||
      (dialect === 'mysql' && first[0] === 'set' && first[1] === 'password') ||
      inSecret(seg, memo) ||
      (t.kind === 'string' && (CONNINFO_PASSWORD.test(content) || t.contentEnd === sql.length))
    );
  };
  const root = (): Group => ({ name: undefined, args: [{ parent: undefined, marked: false, namesSecret: false, compares: false, nameString: false }] });
  let groups: Group[] = [root()];
  let statementStart = 0;
  /** The INSERT's column list (each column's segment), once read, and whether VALUES came. */
  let columns: Segment[] | undefined;
  let inValues = false;
  /** Statements SQL `PREPARE`d in this text: their secret parameters. */
  const prepared = new Map<string, number[]>();
  const endStatement = (end: number): void => {
    const [verb, name] = tokens.slice(statementStart, statementStart + 2);
    if (verb?.kind === 'word' && verb.word === 'prepare' && name?.kind === 'word')
      prepared.set(
        name.word,
        places.filter((p) => p.t.kind === 'param' && p.t.start >= (tokens[statementStart]?.start ?? 0) && p.t.start < end).flatMap((p) => (p.t.kind === 'param' && secretPlace(p) ? [p.t.number] : [])),
      );
  };
  const open = (g: Group): Segment => g.args.at(-1)!;
  const fresh = (g: Group, parent: Segment | undefined): Segment => {
    const seg = { parent, marked: false, namesSecret: false, compares: false, nameString: false };
    g.args.push(seg);
    return seg;
  };
  for (let k = 0; k < tokens.length; k++) {
    const t = tokens[k]!;
    const g = groups.at(-1)!;
    const seg = open(g);
    if (t.kind === 'other') {
      if (t.text === ';') {
        endStatement(t.start);
        statementStart = k + 1;
        groups = [root()];
        columns = undefined;
        inValues = false;
      } else if (t.text === '(') {
        const prev = tokens[k - 1];
        const name = prev?.kind === 'word' && !SEPARATORS.has(prev.word) && !COMPARING.has(prev.word) ? prev.word : undefined;
        const first = tokens.slice(statementStart, statementStart + 2).map((x) => (x.kind === 'word' ? x.word : ''));
        const group: Group = { name, args: [] };
        if (groups.length === 1 && inValues && columns) group.values = true;
        const verb = tokens[k - 2];
        if (groups.length === 1 && name !== undefined && verb?.kind === 'word' && verb.word === 'execute') group.executes = prepared.get(name) ?? 'all';
        const firstArg = fresh(group, seg);
        // `INSERT INTO t (a, b)`: the list right after the table's name.
        if (groups.length === 1 && !columns && !inValues && (first[0] === 'insert' || first[0] === 'replace') && name !== undefined) group.columns = true;
        else if ((name !== undefined && SECRET_ARGUMENTS[dialect][name]?.includes(0)) || (group.values && columns?.[0]?.namesSecret) || (group.executes && isSecretParam(group.executes, 1)))
          firstArg.marked = true;
        groups.push(group);
      } else if (t.text === ')') {
        if (groups.length > 1) {
          const closed = groups.pop()!;
          if (closed.columns) columns = closed.args;
        }
      } else if (t.text === ',') {
        const parent = seg.parent;
        const next = fresh(g, parent);
        const index = g.args.length - 1;
        if (g.name !== undefined && SECRET_ARGUMENTS[dialect][g.name]?.includes(index)) next.marked = true;
        // The argument after one that names a secret (a setting's name) holds its value.
        if (g.name !== undefined && !g.columns && seg.nameString) next.marked = true;
        if (g.values && columns?.[index]?.namesSecret) next.marked = true;
        if (g.executes && isSecretParam(g.executes, index + 1)) next.marked = true;
      } else if (/^(=|<|>|!|:=|~)$/.test(t.text)) seg.compares = true;
      else if (t.text === '|' && tokens[k + 1]?.kind === 'other' && (tokens[k + 1] as { text: string }).text === '|') seg.concat = true;
      continue;
    }
    if (t.kind === 'word') {
      if (SEPARATORS.has(t.word) && g.name === undefined) {
        if (t.word === 'values' || t.word === 'value') inValues = true;
        fresh(g, seg.parent);
      } else if (COMPARING.has(t.word)) seg.compares = true;
      else if (SECRET_WORD.test(t.word) && !(tokens[k + 1]?.kind === 'other' && (tokens[k + 1] as { text: string }).text === '(')) seg.namesSecret = true;
      continue;
    }
    if (t.kind === 'string' && SECRET_WORD.test(sql.slice(t.contentStart, t.contentEnd).toLowerCase().split('.').at(-1) ?? '')) seg.nameString = true;
    // The word before it, past `=`, `TO`, `BY`, `AS`.
    let p = k - 1;
    while (p >= statementStart) {
      const q = tokens[p]!;
      if ((q.kind === 'other' && BETWEEN.has(q.text)) || (q.kind === 'word' && BETWEEN.has(q.word))) p--;
      else break;
    }
    places.push({ t, seg, before: p >= statementStart ? tokens[p] : undefined, first: tokens.slice(statementStart, statementStart + 2).map((x) => (x.kind === 'word' ? x.word : '')) });
  }
  const unsure = dialect === 'mysql' && (/\/\*M?!/.test(sql) || (mode === undefined && (sql.includes('\\') || sql.includes('"'))));
  // A literal that holds SQL with a secret in it (`PREPARE s FROM '… IDENTIFIED BY ''x'''`, `dblink_exec(c, '…')`) is one whole.
  const holdsSecretSql = (t: Token): boolean => {
    if (t.kind !== 'string' || depth >= 3) return false;
    const inner = sql.slice(t.contentStart, t.contentEnd).replace(/''|""|\\(.)/gs, (m, escaped: string | undefined) => escaped ?? m[0]!);
    return MAY_NAME_SECRET.test(inner) && secretsOf(inner, dialect, mode, depth + 1).spans.length > 0;
  };
  // Every segment's secrecy is known now: each chain of segments is walked once.
  const secrecy = new Map<Segment, boolean>();
  // An expression at a secret's place (`'password=' || 'x'`): every literal joined in it.
  const joined = new Set<Segment>(places.filter((p) => p.seg.concat && secretPlace(p, secrecy)).map((p) => p.seg));
  const joinedMemo = new Map<Segment, boolean>();
  for (const place of places) {
    const { t } = place;
    const secret = secretPlace(place, secrecy) || anyUp(place.seg, (s) => joined.has(s), joinedMemo) || holdsSecretSql(t);
    if (secret && t.kind === 'string') found.spans.push([t.contentStart, t.contentEnd]);
    if (secret && t.kind === 'param' && found.params !== 'all') found.params.push(t.number);
  }
  if (unsure) found.params = 'all';
  return found;
}

/** The parameters (1 first; MySQL's `?` in order) whose values `sql` takes as secrets, by the rules of {@link redactSql}. */
export function secretParameters(sql: string, dialect: SqlDialect, mode?: MysqlLexing): SecretParams {
  if (namesSecretAnywhere(sql) || unnamedColumns(sql, dialect, mode)) return 'all';
  return MAY_NAME_SECRET.test(sql) ? secretsOf(sql, dialect, mode).params : [];
}

/** Every literal of `sql`: its strings' contents, and its numbers outside them. */
function everyLiteral(sql: string, dialect: SqlDialect, mode?: MysqlLexing): Array<[number, number]> {
  const spans: Array<[number, number]> = [];
  let from = 0;
  const numbers = (to: number): void => {
    for (const m of sql.slice(from, to).matchAll(NUMBER_LITERAL)) spans.push([from + m.index, from + m.index + m[0].length]);
  };
  /** In a SET's value (`set app.api_token = word`, `alter role r set x to word`): its bare words are values too (not an UPDATE's SET, whose words are columns). */
  let setting: 'name' | 'value' | undefined;
  /** The statement's first word. */
  let verb: string | undefined;
  for (const t of lex(sql, dialect, mode)) {
    if (t.kind === 'other' && t.text === ';') (setting = undefined), (verb = undefined);
    else if (t.kind === 'word' && verb === undefined) {
      verb = t.word;
      if (t.word === 'set') setting = 'name';
    } else if (t.kind === 'word' && t.word === 'set' && verb === 'alter') setting = 'name';
    else if (setting === 'name' && ((t.kind === 'other' && (t.text === '=' || t.text === ':=')) || (t.kind === 'word' && t.word === 'to'))) setting = 'value';
    else if (setting === 'value' && t.kind === 'word') spans.push([t.start, t.end]);
    if (t.kind !== 'string') continue;
    numbers(t.start);
    spans.push([t.contentStart, t.contentEnd]);
    from = t.end;
  }
  numbers(sql.length);
  return spans;
}

/** What {@link redactSql} made of a text: the text to write down, and whether anything was replaced. */
export interface Redacted {
  text: string;
  redacted: boolean;
  /** What was redacted: each span of the original text (ordered, apart), when anything was. */
  spans?: ReadonlyArray<readonly [number, number]>;
}

/** What {@link withRedacted} lends {@link redactSql} and {@link redactDetected} while it runs. */
let lent: ReadonlyMap<string, Redacted> | undefined;

/** Runs `fn` with {@link redactSql} and {@link redactDetected} answering from `redacted` (texts redacted ahead, off the event loop: ./redact-ahead.ts); forgotten once it returns. */
export function withRedacted<T>(redacted: ReadonlyMap<string, Redacted>, fn: () => T): T {
  const before = lent;
  lent = redacted;
  try {
    return fn();
  } finally {
    lent = before;
  }
}

/**
 * `sql` with each secret it holds replaced by `[redacted:<hash>]`: `key` keys the hash (none: the
 * bare marker), `detectors` are the session's content detectors.
 */
export function redactSql(sql: string, dialect: SqlDialect, o: RedactOptions = {}): Redacted {
  const known = lent?.get(sql);
  if (known) return known;
  const readings = readingsOf(sql, dialect, o.mysqlMode);
  const spans = readings.length === 1 ? spansOf(sql, dialect, readings[0]) : readings.flatMap((mode) => spansOf(sql, dialect, mode));
  if (o.detectors?.length) spans.push(...detectedSpans(sql, o.detectors));
  // A literal the server reads as other text than it is written (escapes, parts joined, hex): its value is read too.
  for (const mode of ENCODED.test(sql) ? readings : []) {
    for (const l of encodedLiterals(sql, dialect, mode)) {
      if (CONNINFO_PASSWORD.test(l.value) || (o.detectors?.length && detect(l.value, o.detectors).length > 0)) spans.push([l.start, l.end]);
    }
  }
  return withMarkers(sql, spans, o.key);
}

/**
 * Why a reviewer shown `sql` (and its `params` bound parameters) redacted would not see values that
 * are not secrets: hoop takes every literal and parameter of it as one (it names a credential
 * somewhere, or an INSERT names no columns) and finds some at no secret's place; undefined when
 * every value it hides is a secret's.
 */
export function valuesHiddenFromReview(sql: string, dialect: SqlDialect, params = 0, mode?: MysqlLexing): string | undefined {
  for (const reading of readingsOf(sql, dialect, mode)) {
    const why = namesSecretAnywhere(sql)
      ? 'it names a credential or a cipher (a word such as token, password or secret, in a comment too: keep such words out of a statement for review)'
      : unnamedColumns(sql, dialect, reading)
        ? "an INSERT in it names no columns (name them: hoop then hides only a secret column's values)"
        : undefined;
    if (why === undefined) continue;
    const secret = secretsOf(sql, dialect, reading);
    if (everyLiteral(sql, dialect, reading).some(([s, e]) => !secret.spans.some(([a, b]) => a <= s && e <= b))) return why;
    for (let n = 1; n <= params; n++) if (!isSecretParam(secret.params, n)) return why;
  }
  return undefined;
}

/** The spans of `sql`'s secrets read one way; most statements name no secret, and are not lexed at all. */
function spansOf(sql: string, dialect: SqlDialect, mode: MysqlLexing | undefined): Array<[number, number]> {
  return namesSecretAnywhere(sql) || unnamedColumns(sql, dialect, mode) ? everyLiteral(sql, dialect, mode) : MAY_NAME_SECRET.test(sql) ? secretsOf(sql, dialect, mode).spans : [];
}

/**
 * The ways to read `sql`: as `mode` says; MySQL's text with a backslash, a double quote or an
 * executable comment, when the session's sql_mode and server are not known (a session no policy
 * governs), every way the server might, so a secret is taken whichever it is.
 */
function readingsOf(sql: string, dialect: SqlDialect, mode: MysqlLexing | undefined): Array<MysqlLexing | undefined> {
  if (dialect !== 'mysql' || mode !== undefined || !/[\\"]|\/\*M?!/.test(sql)) return [mode];
  const flavors = /\/\*M?!/.test(sql) ? (['mariadb', 'mysql'] as const) : (['mariadb'] as const);
  return flavors.flatMap((flavor) => [false, true].flatMap((noBackslashEscapes) => [false, true].map((ansiQuotes) => ({ flavor, noBackslashEscapes, ansiQuotes }))));
}

/** A text that may hold a literal written otherwise than its value: an escape, literals joined (across blanks or comments), a hex string. */
const ENCODED = /\\|'\s+'|"\s+"|['"]\s*(?:\/\*|--|#)|'\s*[\r\n]|\b0x[0-9a-f]{12}|\bx'[0-9a-f]{12}|\bb'[01]{48}|\d_\d|\b0[ob][0-7]/i;

/** The literals of `sql` as the server reads them, where that differs from their text: a string's content (escapes decoded, joined parts one), MySQL's hex strings. */
function encodedLiterals(sql: string, dialect: SqlDialect, mode?: MysqlLexing): Array<{ start: number; end: number; value: string }> {
  const out: Array<{ start: number; end: number; value: string }> = [];
  /** The run of literals the server joins, whose parts only blanks and comments keep apart (`'4111'`, a comment, `'1111…'`): one value. */
  let run: Array<{ start: number; end: number; value: string }> = [];
  const endRun = (): void => {
    if (run.length > 1) out.push({ start: run[0]!.start, end: run.at(-1)!.end, value: run.map((r) => r.value).join('') });
    run = [];
  };
  for (const t of lex(sql, dialect, mode)) {
    if (t.kind !== 'string') {
      endRun();
      continue;
    }
    const raw = sql.slice(t.contentStart, t.contentEnd);
    const escapes = dialect === 'mysql' ? !mode?.noBackslashEscapes : /^e'/i.test(sql.slice(t.start, t.contentStart));
    const joined = joinedParts(raw, dialect);
    const value = (escapes ? joined.replace(/\\(x[0-9a-fA-F]{1,2}|[0-7]{1,3}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|.)/gs, (_m, e: string) => decodeEscape(e)) : joined).replace(/''/g, "'");
    if (value !== raw) out.push({ start: t.contentStart, end: t.contentEnd, value });
    run.push({ start: t.contentStart, end: t.contentEnd, value });
  }
  endRun();
  // PostgreSQL 16's numbers with `_` between digits, in octal or binary: their value's digits.
  for (const m of sql.matchAll(/\b(?:0o([0-7_]+)|0b([01_]+)|(\d+(?:_\d+)+))\b/gi)) {
    const digits = (m[1] ?? m[2] ?? m[3])!.replaceAll('_', '');
    out.push({ start: m.index, end: m.index + m[0].length, value: BigInt(m[1] ? `0o${digits}` : m[2] ? `0b${digits}` : digits).toString() });
  }
  if (dialect === 'mysql')
    for (const m of sql.matchAll(/\b0x([0-9a-f]{12,})|\bx'([0-9a-f]{12,})'|\bb'([01]{48,})'/gi)) {
      const hex = m[3] !== undefined ? BigInt(`0b${m[3]}`).toString(16) : (m[1] ?? m[2]!);
      const bytes = Buffer.from(hex.length % 2 ? `0${hex}` : hex, 'hex').toString('latin1');
      // Read in a wide character set too (`_utf16 0x0034…`, `_utf32`, `_ucs2`): its ASCII is its bytes with the zeros between.
      out.push({ start: m.index, end: m.index + m[0].length, value: bytes.includes('\0') ? `${bytes}\n${bytes.replaceAll('\0', '')}` : bytes });
    }
  return out;
}

/** A literal's content with the quotes and blanks that join its parts (`'a'⏎'b'`, {@link continuation}) taken out. */
function joinedParts(raw: string, dialect: SqlDialect): string {
  let out = '';
  let at = 0;
  for (let q = raw.indexOf("'"); q >= 0; q = raw.indexOf("'", q + 1)) {
    if (raw[q + 1] === "'") {
      q++; // a doubled quote
      continue;
    }
    const next = continuation(raw, q + 1, dialect);
    if (next < 0) continue;
    out += raw.slice(at, q);
    at = next + 1;
    q = next;
  }
  return out + raw.slice(at);
}

/** The character an escape (past its backslash) stands for in an E'…' or MySQL string. */
function decodeEscape(e: string): string {
  if (/^x[0-9a-f]/i.test(e)) return String.fromCharCode(Number.parseInt(e.slice(1), 16));
  if (/^[0-7]/.test(e)) return String.fromCharCode(Number.parseInt(e, 8) & 0xff);
  if (/^[uU][0-9a-f]/i.test(e)) return String.fromCodePoint(Math.min(Number.parseInt(e.slice(1), 16), 0x10ffff));
  return ({ n: '\n', r: '\r', t: '\t', b: '\b', f: '\f', '0': '\0' } as Record<string, string>)[e] ?? e;
}

/** `text` with each of `spans` replaced by its marker (spans sorted and merged first). */
function withMarkers(text: string, spans: Array<[number, number]>, key: Buffer | string | undefined): Redacted {
  if (spans.length === 0) return { text, redacted: false };
  spans.sort((a, b) => a[0] - b[0] || b[1] - a[1]);
  let out = '';
  let at = 0;
  const apart: Array<[number, number]> = [];
  for (const [start, end] of spans) {
    if (end <= at) continue;
    const from = Math.max(start, at);
    out += text.slice(at, from) + redactionMarker(text.slice(from, end), key);
    apart.push([from, end]);
    at = end;
  }
  return { text: out + text.slice(at), redacted: true, spans: apart };
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
export function redactDetected(text: string, o: RedactOptions): Redacted {
  const known = lent?.get(text);
  if (known) return known;
  return withMarkers(text, o.detectors?.length ? detectedSpans(text, o.detectors) : [], o.key);
}

/**
 * Where `detectors` find a value in `text`: each match, and each number with a fraction or an
 * exponent whose digits they find, as its reader (a bigint column, JSON) reads it
 * (`4.111111111111111e15`, `41111111111111110e-1` are cards).
 */
function detectedSpans(text: string, detectors: readonly DetectorName[]): Array<[number, number]> {
  const spans: Array<[number, number]> = detect(text, detectors).map((m) => [m.start, m.end]);
  for (const m of text.matchAll(SCALED_NUMBER)) {
    const digits = integerDigits(m[0]);
    if (digits !== undefined && detect(digits, detectors).length > 0) spans.push([m.index, m.index + m[0].length]);
  }
  return spans;
}
