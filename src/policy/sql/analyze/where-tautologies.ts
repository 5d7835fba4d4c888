/**
 * Whether a condition may hold for every judged row, for `StatementFacts.missingWhere`: it reads
 * none of them, or it is one of the tautologies listed there (`a = a`, `x IS NULL OR x IS NOT
 * NULL`, `p OR NOT p`, a system column IS NOT NULL, ...); and the contradictions that make a
 * negation one. A syntactic check that errs towards flagging: every form here only ever adds rows
 * to what is flagged.
 *
 * @see https://www.postgresql.org/docs/17/functions-comparison.html
 * @see https://www.postgresql.org/docs/17/functions-logical.html
 * @see https://www.postgresql.org/docs/17/functions-matching.html
 */
import type { A_Expr, Node } from 'libpg-query';
import { list, names, nodeAs, treeKey, unwrap } from './ast.js';
import { readsRows, refReadsRows } from './where-reads-rows.js';
import type { WhereCtx } from './where-scope.js';

/** Columns every table row has and that are never NULL (`oid` included: a catalog's, or a user column of that name). */
const SYSTEM_COLUMNS = new Set(['ctid', 'tableoid', 'xmin', 'xmax', 'cmin', 'cmax', 'oid']);

/**
 * Whether a condition may hold for every judged row: it reads none of them (and is not certainly
 * false), or it is one of the tautologies listed at `StatementFacts.missingWhere`. Errs towards
 * true: every form here only ever adds rows to what is flagged.
 */
export function mayBeAllRows(node: Node | undefined, w: WhereCtx): boolean {
  if (!readsRows(node, w)) return !certainlyNotTrue(node);
  const [type, body] = unwrap(node);
  switch (type) {
    case 'BoolExpr': {
      const args = list(body.args);
      if (body.boolop === 'OR_EXPR') {
        const arms = orArms(node);
        if (arms.some((a) => mayBeAllRows(a, w))) return true;
        for (let i = 0; i < arms.length; i++) for (let j = i + 1; j < arms.length; j++) if (complements(arms[i], arms[j], w)) return true;
        return false;
      }
      if (body.boolop === 'AND_EXPR') return args.every((a) => mayBeAllRows(a, w));
      return body.boolop === 'NOT_EXPR' && alwaysFalse(args[0], w);
    }
    case 'A_Expr':
      return tautology(body, w);
    case 'CaseExpr':
      // Without an ELSE, a row no WHEN matches gets NULL.
      return body.defresult !== undefined && [...list(body.args).map(caseResult), body.defresult].every((r) => mayBeAllRows(r, w));
    case 'BooleanTest':
      if (body.booltesttype === 'IS_TRUE' || body.booltesttype === 'IS_NOT_FALSE') return mayBeAllRows(body.arg, w);
      if (body.booltesttype === 'IS_FALSE' || body.booltesttype === 'IS_NOT_TRUE') return alwaysFalse(body.arg, w);
      return false;
    case 'NullTest':
      return body.nulltesttype === 'IS_NOT_NULL' && systemColumn(body.arg, w);
    default:
      return false;
  }
}

/** An operator expression that holds for every row whose operands are not NULL (`a = a`, `a LIKE '%'`, ...). */
function tautology(expr: A_Expr, w: WhereCtx): boolean {
  const op = names(expr.name).at(-1);
  const [lo, hi] = betweenBounds(expr.rexpr);
  switch (expr.kind) {
    case 'AEXPR_OP':
      return (op === '=' || op === '>=' || op === '<=') && sameExpr(expr.lexpr, expr.rexpr, w);
    case 'AEXPR_NOT_DISTINCT':
      return sameExpr(expr.lexpr, expr.rexpr, w);
    case 'AEXPR_BETWEEN':
      return sameExpr(expr.lexpr, lo, w) && sameExpr(expr.lexpr, hi, w);
    case 'AEXPR_BETWEEN_SYM':
      return sameExpr(expr.lexpr, lo, w) || sameExpr(expr.lexpr, hi, w);
    case 'AEXPR_LIKE':
    case 'AEXPR_ILIKE': {
      const pattern = op === '~~' || op === '~~*' ? constText(expr.rexpr) : undefined;
      return pattern !== undefined && /^%+$/.test(pattern);
    }
    default:
      return false;
  }
}

/**
 * Whether a condition may hold for no judged row: false or NULL, or a contradiction (`a <> a`,
 * `a < a`, `a > a`, `a IS DISTINCT FROM a`, `a NOT BETWEEN a AND a`, `NOT` / `IS FALSE` /
 * `IS NOT TRUE` of a condition that may hold for every row, ...). Used only under a negation,
 * so it too errs towards flagging.
 */
function alwaysFalse(node: Node | undefined, w: WhereCtx): boolean {
  if (!readsRows(node, w)) return certainlyNotTrue(node);
  const [type, body] = unwrap(node);
  switch (type) {
    case 'BoolExpr': {
      const args = list(body.args);
      if (body.boolop === 'AND_EXPR') return args.some((a) => alwaysFalse(a, w));
      if (body.boolop === 'OR_EXPR') return args.every((a) => alwaysFalse(a, w));
      return body.boolop === 'NOT_EXPR' && mayBeAllRows(args[0], w);
    }
    case 'A_Expr':
      return contradiction(body, w);
    case 'CaseExpr':
      return [...list(body.args).map(caseResult), body.defresult].every((r) => r === undefined || alwaysFalse(r, w));
    case 'BooleanTest':
      if (body.booltesttype === 'IS_TRUE' || body.booltesttype === 'IS_NOT_FALSE') return alwaysFalse(body.arg, w);
      if (body.booltesttype === 'IS_FALSE' || body.booltesttype === 'IS_NOT_TRUE') return mayBeAllRows(body.arg, w);
      return false;
    case 'NullTest':
      return body.nulltesttype === 'IS_NULL' && systemColumn(body.arg, w);
    default:
      return false;
  }
}

/** An operator expression that holds for no row (`a <> a`, `a IS DISTINCT FROM a`, ...). */
function contradiction(expr: A_Expr, w: WhereCtx): boolean {
  const op = names(expr.name).at(-1);
  const [lo, hi] = betweenBounds(expr.rexpr);
  switch (expr.kind) {
    case 'AEXPR_OP':
      return (op === '<>' || op === '<' || op === '>') && sameExpr(expr.lexpr, expr.rexpr, w);
    case 'AEXPR_DISTINCT':
      return sameExpr(expr.lexpr, expr.rexpr, w);
    case 'AEXPR_NOT_BETWEEN':
      return sameExpr(expr.lexpr, lo, w) && sameExpr(expr.lexpr, hi, w);
    case 'AEXPR_NOT_BETWEEN_SYM':
      return sameExpr(expr.lexpr, lo, w) || sameExpr(expr.lexpr, hi, w);
    default:
      return false;
  }
}

/** A constant that is certainly false or NULL (so the WHERE selects no row). */
function certainlyNotTrue(node: Node | undefined): boolean {
  const [type, body] = unwrap(node);
  if (type === 'A_Const') {
    if (body.isnull === true) return true;
    return body.boolval !== undefined && body.boolval.boolval !== true;
  }
  if (type === 'BoolExpr' && body.boolop === 'NOT_EXPR') return nodeAs(list(body.args)[0], 'A_Const')?.boolval?.boolval === true;
  return false;
}

/** The result of one WHEN of a CASE. */
function caseResult(when: Node): Node | undefined {
  return nodeAs(when, 'CaseWhen')?.result;
}

/** The two bounds of a BETWEEN (its right operand is a List). */
function betweenBounds(rexpr: Node | undefined): [Node | undefined, Node | undefined] {
  const items = list(nodeAs(rexpr, 'List')?.items);
  return [items[0], items[1]];
}

/** A reference to a system column of the judged rows (never NULL). */
function systemColumn(node: Node | undefined, w: WhereCtx): boolean {
  const ref = nodeAs(node, 'ColumnRef');
  if (ref === undefined) return false;
  const last = nodeAs(list(ref.fields).at(-1), 'String');
  return last !== undefined && SYSTEM_COLUMNS.has(String(last.sval)) && refReadsRows(ref, w);
}

/** The arms of an OR, nested ORs flattened. */
function orArms(node: Node | undefined): Array<Node | undefined> {
  const [type, body] = unwrap(node);
  return type === 'BoolExpr' && body.boolop === 'OR_EXPR' ? list(body.args).flatMap(orArms) : [node];
}

/** Opposite operators over the same operands (comparison, IN / NOT IN, LIKE, ILIKE, SIMILAR TO, regular expressions). */
const OPPOSITES: Readonly<Record<string, string>> = {
  '=': '<>',
  '<>': '=',
  '<': '>=',
  '>=': '<',
  '>': '<=',
  '<=': '>',
  '~~': '!~~',
  '!~~': '~~',
  '~~*': '!~~*',
  '!~~*': '~~*',
  '~': '!~',
  '!~': '~',
  '~*': '!~*',
  '!~*': '~*',
};
/** A_Expr kinds whose operator is negated by the opposite operator. */
const OPPOSABLE_KINDS = new Set(['AEXPR_OP', 'AEXPR_IN', 'AEXPR_LIKE', 'AEXPR_ILIKE', 'AEXPR_SIMILAR']);
/** A_Expr kinds that are each other's negation. */
const OPPOSITE_KINDS: Readonly<Record<string, string>> = {
  AEXPR_DISTINCT: 'AEXPR_NOT_DISTINCT',
  AEXPR_NOT_DISTINCT: 'AEXPR_DISTINCT',
  AEXPR_BETWEEN: 'AEXPR_NOT_BETWEEN',
  AEXPR_NOT_BETWEEN: 'AEXPR_BETWEEN',
  AEXPR_BETWEEN_SYM: 'AEXPR_NOT_BETWEEN_SYM',
  AEXPR_NOT_BETWEEN_SYM: 'AEXPR_BETWEEN_SYM',
};
const OPPOSITE_TESTS: Readonly<Record<string, string>> = {
  IS_NULL: 'IS_NOT_NULL',
  IS_NOT_NULL: 'IS_NULL',
  IS_TRUE: 'IS_NOT_TRUE',
  IS_NOT_TRUE: 'IS_TRUE',
  IS_FALSE: 'IS_NOT_FALSE',
  IS_NOT_FALSE: 'IS_FALSE',
  IS_UNKNOWN: 'IS_NOT_UNKNOWN',
  IS_NOT_UNKNOWN: 'IS_UNKNOWN',
};

/** Whether one of two conditions holds whenever the other does not (for operands that are not NULL). */
function complements(a: Node | undefined, b: Node | undefined, w: WhereCtx): boolean {
  const [ta, ba] = unwrap(a);
  const [tb, bb] = unwrap(b);
  if (ta === 'BoolExpr' && ba.boolop === 'NOT_EXPR' && sameExpr(list(ba.args)[0], b, w)) return true;
  if (tb === 'BoolExpr' && bb.boolop === 'NOT_EXPR' && sameExpr(list(bb.args)[0], a, w)) return true;
  if (ta === 'NullTest' && tb === 'NullTest') return OPPOSITE_TESTS[String(ba.nulltesttype)] === bb.nulltesttype && sameExpr(ba.arg, bb.arg, w);
  if (ta === 'BooleanTest' && tb === 'BooleanTest') return OPPOSITE_TESTS[String(ba.booltesttype)] === bb.booltesttype && sameExpr(ba.arg, bb.arg, w);
  if (ta === 'A_Expr' && tb === 'A_Expr') {
    const ka = String(ba.kind);
    const opposite = ka === bb.kind ? OPPOSABLE_KINDS.has(ka) && OPPOSITES[names(ba.name).at(-1) ?? ''] === names(bb.name).at(-1) : OPPOSITE_KINDS[ka] === bb.kind;
    return opposite && sameExpr(ba.lexpr, bb.lexpr, w) && sameExpr(ba.rexpr, bb.rexpr, w);
  }
  return false;
}

/**
 * Whether two expressions are written the same (locations aside). When they are alike except
 * perhaps in numeric constants, the answer depends on those values: noted in `w.literals`, so
 * that texts differing only in them share no verdict.
 */
function sameExpr(a: Node | undefined, b: Node | undefined, w: WhereCtx): boolean {
  if (a === undefined || b === undefined) return false;
  const ka = treeKey(a);
  const kb = treeKey(b);
  if (!w.literals.compared) {
    const ma = literalFreeKey(a);
    if (ma === literalFreeKey(b) && (ma !== ka || ka !== kb)) w.literals.compared = true;
  }
  return ka === kb;
}

/** `treeKey` with every numeric constant (its value and whether integer or float) made alike. */
function literalFreeKey(node: Node): string {
  return JSON.stringify(node, (key, value: unknown) => {
    if (key === 'location') return undefined;
    if (key === 'A_Const' && value && typeof value === 'object' && ('ival' in value || 'fval' in value)) return '#';
    return value;
  });
}

/** A constant's text, lower-case and trimmed (strings and integers, possibly cast); undefined otherwise. */
function constText(node: Node | undefined): string | undefined {
  const [type, body] = unwrap(node);
  const c = type === 'TypeCast' ? nodeAs(body.arg, 'A_Const') : type === 'A_Const' ? body : undefined;
  if (c === undefined || c.isnull === true) return undefined;
  const sval = c.sval?.sval;
  if (typeof sval === 'string') return sval.trim().toLowerCase();
  if (c.ival) return String(c.ival.ival ?? 0);
  return undefined;
}
