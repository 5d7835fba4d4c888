/**
 * What a COPY statement moves (`CopyFacts`): its direction, where the data goes or comes from,
 * its format options, and the table (with its column list) or the query it copies, that query's
 * own text found in the statement's.
 *
 * @see https://www.postgresql.org/docs/17/sql-copy.html
 */
import { parseSync } from 'libpg-query';
import type { CopyStmt, Node, ParseResult } from 'libpg-query';
import { defElemTrue, list, names, nodeAs, treeKey } from './ast.js';
import type { CopyFacts } from './facts.js';

/** The COPY facts of a CopyStmt whose statement text is `source`. */
export function copyFacts(body: CopyStmt, source: string): CopyFacts {
  const facts: CopyFacts = {
    direction: body.is_from === true ? 'from' : 'to',
    target: body.is_program === true ? 'program' : typeof body.filename === 'string' ? 'file' : 'client',
    format: 'text',
  };
  copyOptions(body, facts);
  const rel = body.relation;
  const table = rel?.relname;
  if (table !== undefined) facts.relation = { table, ...(rel!.schemaname ? { schema: rel!.schemaname } : {}) };
  if (body.attlist) facts.columns = names(body.attlist);
  if (body.query) {
    const query = copyQueryText(source, body.query);
    if (query !== undefined) facts.query = query;
  }
  return facts;
}

/** The options of a COPY (DefElems) into `facts`. */
function copyOptions(body: CopyStmt, facts: CopyFacts): void {
  for (const o of list(body.options)) {
    const d = nodeAs(o, 'DefElem');
    if (d === undefined) continue;
    const string = nodeAs(d.arg, 'String');
    const text = string?.sval;
    switch (d.defname) {
      case 'format':
        if (text === 'csv' || text === 'binary' || text === 'text') facts.format = text;
        break;
      case 'delimiter':
        if (text !== undefined) facts.delimiter = text;
        break;
      case 'quote':
        if (text !== undefined) facts.quote = text;
        break;
      case 'escape':
        if (text !== undefined) facts.escape = text;
        break;
      case 'null':
        if (text !== undefined) facts.null = text;
        break;
      case 'encoding':
        if (text !== undefined) facts.encoding = text;
        break;
      case 'header':
        facts.header = d.arg === undefined || (string ? /^(true|on|1|match)$/i.test(text ?? '') : defElemTrue(d.arg));
        break;
      default:
        break;
    }
  }
}

/**
 * The text of the query of `COPY (query) ...`: the span inside the first parenthesis of the
 * statement (found with the lexing rules of standard_conforming_strings on: quoted strings,
 * quoted names, dollar quotes and comments are skipped), accepted only when it parses to the
 * COPY's own query node.
 * @see https://www.postgresql.org/docs/17/sql-syntax-lexical.html
 */
function copyQueryText(source: string, query: Node): string | undefined {
  const open = scanFor(source, 0, '(');
  if (open < 0) return undefined;
  let depth = 0;
  for (let i = open; i >= 0 && i < source.length; i = scanFor(source, i + 1, '()')) {
    depth += source[i] === '(' ? 1 : -1;
    if (depth > 0) continue;
    const text = source.slice(open + 1, i);
    try {
      // libpg-query types parseSync's result as `any`: it is the JSON of a ParseResult.
      const stmts = (parseSync(text) as ParseResult).stmts ?? [];
      return stmts.length === 1 && treeKey(stmts[0]!.stmt) === treeKey(query) ? text : undefined;
    } catch {
      return undefined;
    }
  }
  return undefined;
}

/** A dollar quote's opening tag (`$$`, `$body$`). */
const DOLLAR_TAG = /\$([A-Za-z_\u0080-\uffff][\w\u0080-\uffff]*)?\$/y;

/**
 * The index of the next of `chars` at or after `from` that is not inside a quoted string, a
 * quoted name, a dollar-quoted string or a comment; -1 when there is none.
 * @see https://www.postgresql.org/docs/17/sql-syntax-lexical.html
 */
function scanFor(s: string, from: number, chars: string): number {
  for (let i = from; i < s.length; i++) {
    const c = s[i]!;
    if (chars.includes(c)) return i;
    if (c === "'" || c === '"') {
      const escapes = c === "'" && /[eE]/.test(s[i - 1] ?? '') && !/[\w$]/.test(s[i - 2] ?? '');
      for (i++; i < s.length; i++) {
        if (escapes && s[i] === '\\') i++;
        else if (s[i] === c) {
          if (s[i + 1] === c) i++;
          else break;
        }
      }
    } else if (c === '-' && s[i + 1] === '-') {
      while (i < s.length && s[i] !== '\n') i++;
    } else if (c === '/' && s[i + 1] === '*') {
      let depth = 1;
      for (i += 2; i < s.length && depth > 0; i++) {
        if (s[i] === '/' && s[i + 1] === '*') {
          depth++;
          i++;
        } else if (s[i] === '*' && s[i + 1] === '/') {
          depth--;
          i++;
        }
      }
      i--;
    } else if (c === '$' && !/[\w$]/.test(s[i - 1] ?? '')) {
      DOLLAR_TAG.lastIndex = i;
      const tag = DOLLAR_TAG.exec(s);
      if (tag) {
        const end = s.indexOf(tag[0], i + tag[0].length);
        if (end < 0) return -1;
        i = end + tag[0].length - 1;
      }
    }
  }
  return -1;
}
