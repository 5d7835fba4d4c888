/**
 * The MySQL lane's lexer pre-pass: reads one query's text the way MariaDB's lexer does
 * (`sql_lex.cc`: `lex_one_token`, `consume_comment`), splits it into the statements the server will
 * run, and writes each as a canonical text any parser reads alike: comments gone, executable
 * comments resolved (their content kept when the server runs it), strings re-quoted with default
 * escaping, ANSI_QUOTES identifiers as backticks, `--x` spaced into `- -x`, `\N` as NULL. What the
 * gateway cannot know the server's reading of is refused (the policy's `unparseable`).
 *
 * Each rule was checked against MariaDB 10.11 on a live server (docs/mysql.md).
 *
 * @see https://mariadb.com/kb/en/comment-syntax/
 * @see https://dev.mysql.com/doc/refman/8.0/en/comments.html
 * @see https://mariadb.com/kb/en/string-literals/
 */
import { ErrorCode, HoopError } from '../../errors.js';

/** How the session lexes, and what the gateway knows of its server. */
export interface PrepassOptions {
  /** `sql_mode` has ANSI_QUOTES: `"…"` is an identifier. */
  ansiQuotes?: boolean;
  /** `sql_mode` has NO_BACKSLASH_ESCAPES: `\` is an ordinary character in strings. */
  noBackslashEscapes?: boolean;
  /** The client's character set is a single-byte one (latin1 and the like), where 0xA0 is a space. */
  singleByte?: boolean;
  /** The client asked for several statements per query (CLIENT_MULTI_STATEMENTS, or COM_SET_OPTION). */
  multiStatements?: boolean;
  /** The server's kind; executable comments are read by its rules. Default `mariadb`. */
  flavor?: 'mariadb' | 'mysql';
  /** The oldest server version the lane serves (MariaDB: 100000 for 10.0): versioned comments at or below it run everywhere. */
  floorVersion?: number;
  /** A server version the operator vouches for (the lexer's own, never the handshake's, which a server or proxy can set to anything). */
  trustedVersion?: number;
}

/** One statement the server will run, as canonical text. */
export interface PrepassStatement {
  text: string;
  /** A compound statement (BEGIN NOT ATOMIC, IF, a routine's body): its inner `;` are its own. */
  compound: boolean;
}

/** The statements of a query, or why the gateway cannot know what the server will run. */
export type PrepassResult = { statements: PrepassStatement[] } | { refused: string };

const SPACE = new Set([' ', '\t', '\n', '\r', '\v', '\f']);
const IDENT = /[A-Za-z0-9_$\u0080-\uffff]/;
/** Backslash escapes in strings: `\%` and `\_` keep their backslash (for LIKE). */
const ESCAPES: Readonly<Record<string, string>> = { '0': '\0', b: '\b', n: '\n', r: '\r', t: '\t', Z: '\x1a', '%': '\\%', _: '\\_' };
const OPENERS = new Set(['IF', 'CASE', 'LOOP', 'WHILE', 'REPEAT']);
const ROUTINES = new Set(['PROCEDURE', 'FUNCTION', 'TRIGGER', 'EVENT', 'PACKAGE']);
/** What a statement inside a compound one starts after. */
const STATEMENT_STARTS = new Set(['', ';', 'BEGIN', 'THEN', 'ELSE', 'DO', 'LOOP', 'REPEAT', ':', 'ATOMIC']);
/** A statement that changes how the server lexes what follows it: one that assigns such a setting, or sets the character set (a read of one, `SET @saved = @@sql_mode`, changes nothing). */
const CHANGES_LEXING = /^SET\b(?:[\s\S]*\b(?:names|character\s+set|charset)\b|[\s\S]*\b(?:sql_mode|character_set_client|session_track\w*)`?\s*:?=)/i;

/** Thrown within the prepass to refuse a text; caught there (one that escapes is a bug). */
class Refusal extends HoopError {
  constructor(message: string) {
    super(ErrorCode.INTERNAL, message);
  }
}

/** Whether the server runs an executable comment's content: `code`, `comment`, or `unknown` (its version decides). */
export function executableCommentRuns(version: number | undefined, mariaOnly: boolean, o: PrepassOptions): 'code' | 'comment' | 'unknown' {
  const flavor = o.flavor ?? 'mariadb';
  if (version === undefined) return !mariaOnly || flavor === 'mariadb' ? 'code' : 'comment';
  // Galera nodes run /*!99997 … */ (the WSREP consistency check).
  if (version === 99997) return 'unknown';
  if (mariaOnly && flavor === 'mysql') return 'comment';
  if (version < 50700) return 'code';
  // MariaDB skips MySQL 5.7+'s comments (50700 to 99999), unless they are /*M!.
  if (!mariaOnly && flavor === 'mariadb' && version <= 99999) return 'comment';
  if (flavor === 'mariadb' && version <= (o.floorVersion ?? 100000)) return 'code';
  if (version === 999999) return 'comment';
  if (o.trustedVersion !== undefined) return version <= o.trustedVersion ? 'code' : 'comment';
  return 'unknown';
}

/** See the module documentation. */
export function prepass(text: string, o: PrepassOptions = {}): PrepassResult {
  try {
    const statements = new Lexer(text, o).statements();
    if (statements.length > 1 && !o.multiStatements) return { refused: 'several statements in one query, which the client did not ask the server to take' };
    const changer = statements.slice(0, -1).find((s) => CHANGES_LEXING.test(s.text) && !/^SET\s+STATEMENT\b/i.test(s.text));
    if (changer) return { refused: 'a statement that changes how the server reads SQL (sql_mode, the character set) is followed by more statements in the same query' };
    return { statements };
  } catch (err) {
    if (err instanceof Refusal) return { refused: err.message };
    throw err;
  }
}

/** One pass over one query's text. */
class Lexer {
  readonly #s: string;
  readonly #o: PrepassOptions;
  #i = 0;
  #out = '';
  #statements: PrepassStatement[] = [];
  /** Inside an executable comment whose content runs. */
  #inExec = false;
  /** Block depth of a compound statement, its significant words so far, and its last token. */
  #compound = false;
  #depth = 0;
  #words: string[] = [];
  #last = '';
  #closer = '';

  constructor(s: string, o: PrepassOptions) {
    this.#s = s;
    this.#o = o;
  }

  statements(): PrepassStatement[] {
    const s = this.#s;
    while (this.#i < s.length) this.#token(s[this.#i]!);
    if (this.#inExec) throw new Refusal('an executable comment that does not end');
    if (this.#compound && this.#depth > 0) throw new Refusal('a compound statement that does not end');
    this.#end();
    return this.#statements;
  }

  #token(c: string): void {
    const s = this.#s;
    const i = this.#i;
    if (c === '\0') throw new Refusal('a NUL byte');
    if (SPACE.has(c)) return this.#emit(c === '\n' ? '\n' : ' ', 1);
    if (c === "'" || (c === '"' && !this.#o.ansiQuotes)) {
      const [v, next] = this.#quoted(c, !this.#o.noBackslashEscapes);
      this.#last = "'";
      return this.#emit(`'${v.replace(/\\/g, '\\\\').replace(/'/g, "\\'").replace(/\0/g, '\\0')}'`, next - i);
    }
    if (c === '`' || c === '"') {
      const [v, next] = this.#quoted(c, false);
      if (v === '') throw new Refusal('an empty quoted identifier');
      this.#last = '`';
      return this.#emit(`\`${v.replace(/`/g, '``')}\``, next - i);
    }
    if (c === '#' || (c === '-' && s[i + 1] === '-' && controlOrSpace(s[i + 2]))) {
      if (this.#inExec) throw new Refusal('a line comment inside an executable comment');
      let j = i;
      while (j < s.length && s[j] !== '\n') {
        if (s[j] === '\0') throw new Refusal('a NUL byte');
        j++;
      }
      return this.#emit(' ', j - i);
    }
    if (c === '/' && s[i + 1] === '*') return this.#comment();
    if (c === '*' && s[i + 1] === '/' && this.#inExec) {
      this.#inExec = false;
      return this.#emit(' ', 2);
    }
    if (c === ';') {
      if (this.#inExec) throw new Refusal('";" inside an executable comment');
      this.#i++;
      if (this.#compound && this.#depth > 0) {
        this.#out += ';';
        this.#last = ';';
        return;
      }
      return this.#end();
    }
    if (c === '-') {
      // `--x` is minus minus x to the server.
      this.#last = '-';
      return this.#emit(s[i + 1] === '-' ? '- ' : '-', 1);
    }
    if (c === '\\' && s[i + 1] === 'N') {
      this.#last = 'NULL';
      return this.#emit(' NULL ', 2);
    }
    if (c > '\x7f' && this.#o.singleByte) throw new Refusal('a byte above 0x7f outside quotes under a single-byte character set (latin1 reads 0xA0 as a space)');
    if (IDENT.test(c)) {
      let j = i;
      while (j < s.length && IDENT.test(s[j]!)) j++;
      const word = s.slice(i, j);
      this.#emit(word, j - i);
      return this.#word(word);
    }
    if (c !== '(' && c !== ')' && c !== ',') this.#last = c;
    this.#emit(c, 1);
  }

  #emit(text: string, consumed: number): void {
    this.#out += text;
    this.#i += consumed;
  }

  /** A quoted string or identifier from its opening quote: its value and the index after it. */
  #quoted(q: string, escapes: boolean): [string, number] {
    const s = this.#s;
    let v = '';
    for (let k = this.#i + 1; k < s.length; k++) {
      const c = s[k]!;
      if (c === q) {
        if (s[k + 1] === q) {
          v += q;
          k++;
          continue;
        }
        return [v, k + 1];
      }
      if (c === '\\' && escapes) {
        if (k + 1 >= s.length) break;
        const e = s[++k]!;
        v += ESCAPES[e] ?? e;
        continue;
      }
      v += c;
    }
    throw new Refusal('a quoted text that does not end');
  }

  /** A comment from its `/*`: plain, or executable (`/*!`, `/*!NNNNN`, `/*M!`), run or skipped. */
  #comment(): void {
    const s = this.#s;
    const i = this.#i;
    const mariaOnly = s[i + 2] === 'M' && s[i + 3] === '!';
    if (s[i + 2] !== '!' && !mariaOnly) return this.#skipTo(commentEnd(s, i + 2, false), 'a comment that does not end');
    if (this.#inExec) throw new Refusal('an executable comment inside an executable comment');
    let j = i + (mariaOnly ? 4 : 3);
    let version: number | undefined;
    if (/^[0-9]{5}$/.test(s.slice(j, j + 5))) {
      const digits = /[0-9]/.test(s[j + 5] ?? '') ? 6 : 5;
      version = Number(s.slice(j, j + digits));
      j += digits;
    }
    const runs = executableCommentRuns(version, mariaOnly, this.#o);
    if (runs === 'code') {
      this.#inExec = true;
      return this.#emit(' ', j - i);
    }
    const end = commentEnd(s, j, true);
    if (runs === 'unknown' && end >= 0 && s.slice(j, end - 2).trim() !== '') {
      throw new Refusal(`an executable comment (${mariaOnly ? 'M!' : '!'}${version ?? ''}) whose running depends on the server's version`);
    }
    this.#skipTo(end, 'a comment that does not end');
  }

  #skipTo(end: number, what: string): void {
    if (end < 0) throw new Refusal(what);
    this.#emit(' ', end - this.#i);
  }

  /** A word: tracks the blocks of a compound statement, whose inner `;` do not end it. */
  #word(word: string): void {
    const up = word.toUpperCase();
    const before = this.#last;
    this.#last = up;
    if (!/^[A-Z_]/.test(up)) return;
    this.#words.push(up);
    const n = this.#words.length;
    if ((n === 1 || (n === 2 && before === ':')) && OPENERS.has(up)) this.#compound = true;
    if (up === 'BEGIN' && (n > 1 || /^NOT$/i.test(this.#nextWord()))) this.#compound = true;
    if (this.#words[0] === 'CREATE' && ROUTINES.has(up)) this.#compound = true;
    if (!this.#compound) return;
    if (up === 'END') {
      const next = this.#nextWord().toUpperCase();
      if (OPENERS.has(next)) this.#closer = next;
      if (--this.#depth < 0) throw new Refusal('an END without its block');
    } else if (this.#closer === up) this.#closer = '';
    else if (up === 'BEGIN' || up === 'CASE' || (STATEMENT_STARTS.has(before) && OPENERS.has(up))) this.#depth++;
  }

  #nextWord(): string {
    const s = this.#s;
    let j = this.#i;
    while (j < s.length && SPACE.has(s[j]!)) j++;
    return /^[A-Za-z_]+/.exec(s.slice(j, j + 20))?.[0] ?? '';
  }

  #end(): void {
    const text = this.#out.trim();
    if (text) this.#statements.push({ text, compound: this.#compound });
    this.#out = '';
    this.#words = [];
    this.#last = ';';
    this.#compound = false;
    this.#depth = 0;
  }
}

/** Whether `c` ends `--` as a comment's start: whitespace, a control byte, or the end. */
function controlOrSpace(c: string | undefined): boolean {
  return c === undefined || c <= ' ' || c === '\x7f';
}

/**
 * The index after the `*\/` that ends a comment whose text starts at `j`; with `nest`, one level of
 * plain comment inside it (as MariaDB reads a skipped executable comment); -1 when none does.
 */
function commentEnd(s: string, j: number, nest: boolean): number {
  while (j < s.length) {
    if (nest && s[j] === '/' && s[j + 1] === '*') {
      const k = commentEnd(s, j + 2, false);
      if (k < 0) return -1;
      j = k;
      continue;
    }
    if (s[j] === '*' && s[j + 1] === '/') return j + 2;
    j++;
  }
  return -1;
}
