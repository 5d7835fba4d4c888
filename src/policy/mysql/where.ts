/**
 * Whether a MySQL write's condition may hold for every judged row (`StatementFacts.missingWhere`):
 * it reads no column of the target (function names, `@@system` and `@user` variables and
 * subqueries over their own tables are no such column), or it is a tautology PostgreSQL's lane
 * folds too (src/policy/sql/analyze/where-tautologies.ts): `a = a`, `a <=> a`, `a BETWEEN a AND
 * a`, `a LIKE '%'`, `p OR NOT p`, `x IS NULL OR x IS NOT NULL`, `a < 5 OR a >= 5`, `p OR TRUE`.
 * That module reads libpg-query's tree and this one sqlparser's, whose nodes share no shape, so
 * the same rules are written over each. A syntactic check that errs towards flagging.
 *
 * @see https://mariadb.com/kb/en/operator-precedence/
 */
import type { Literals } from '../sql/analyze/where-scope.js';

type Node = Record<string, unknown>;

/** The names of the sources of each query level, innermost last: whether each stands for the judged rows. */
type Levels = ReadonlyArray<ReadonlyMap<string, boolean>>;

/** Keys under which a name is no column: a function's, a table's, an alias, a type. */
const NAME_KEYS = new Set(['name', 'alias', 'data_type', 'span']);
/** Operators that join conditions, which MySQL may read with another precedence than the parser (`id = id && 1`, `id = 1 || 1`). */
const CONNECTIVES = new Set(['And', 'Or', 'Xor', 'StringConcat']);
/** Comparisons and the one that holds exactly when each does not. */
const OPPOSITES: Readonly<Record<string, string>> = { Eq: 'NotEq', NotEq: 'Eq', Lt: 'GtEq', GtEq: 'Lt', Gt: 'LtEq', LtEq: 'Gt' };
/** Comparisons with their operands swapped (`a < b` is `b > a`). */
const SWAPPED: Readonly<Record<string, string>> = { Eq: 'Eq', NotEq: 'NotEq', Lt: 'Gt', Gt: 'Lt', LtEq: 'GtEq', GtEq: 'LtEq' };
/** Tests that hold when their operand does not (`p IS NOT TRUE OR p`). */
const NEGATIONS = new Set(['IsNotTrue', 'IsFalse']);
/** Tests that are each other's negation. */
const OPPOSITE_TESTS: Readonly<Record<string, string>> = {
  IsNull: 'IsNotNull',
  IsNotNull: 'IsNull',
  IsTrue: 'IsNotTrue',
  IsNotTrue: 'IsTrue',
  IsFalse: 'IsNotFalse',
  IsNotFalse: 'IsFalse',
  IsUnknown: 'IsNotUnknown',
  IsNotUnknown: 'IsUnknown',
};

/** A node's one key and its value (an expression node is `{ Kind: body }`). */
function tagged(node: unknown): [string, Node] {
  if (node === null || typeof node !== 'object' || Array.isArray(node)) return ['', {}];
  const [kind, body] = Object.entries(node as Node)[0] ?? ['', {}];
  return [kind, (body ?? {}) as Node];
}

/** `node` without its parentheses. */
function bare(node: unknown): unknown {
  let n = node;
  for (let [kind, body] = tagged(n); kind === 'Nested'; [kind, body] = tagged(n)) n = body;
  return n;
}

/** The names a FROM list (sqlparser's `TableWithJoins[]`) makes visible: each table's alias, else its name. */
export function sourceNames(from: unknown): string[] {
  const out: string[] = [];
  const add = (relation: unknown): void => {
    const [kind, body] = tagged(relation);
    if (kind === 'NestedJoin') addAll([body.table_with_joins]);
    const alias = (body.alias as Node | null | undefined)?.name as Node | undefined;
    const name = Array.isArray(body.name) ? tagged(body.name.at(-1))[1] : undefined;
    const visible = alias?.value ?? name?.value;
    if (typeof visible === 'string') out.push(visible.toLowerCase());
  };
  const addAll = (items: unknown): void => {
    for (const t of Array.isArray(items) ? (items as Node[]) : []) {
      add(t?.relation);
      for (const j of (t?.joins as Node[] | undefined) ?? []) add(j.relation);
    }
  };
  addAll(from);
  return out;
}

/** The level of a write: `judged` names stand for its target's rows, `others` for other sources. */
export function writeLevel(judged: readonly string[], others: readonly string[] = []): Levels {
  const level = new Map<string, boolean>(others.map((n) => [n.toLowerCase(), false]));
  for (const n of judged) level.set(n.toLowerCase(), true);
  return [level];
}

/** Whether a column written `parts` may be one of the judged rows': unqualified always (the target's columns are not known), qualified as the innermost source of that name says. */
function columnIsJudged(parts: readonly string[], levels: Levels): boolean {
  if (parts[0]?.startsWith('@')) return false;
  if (parts.length < 2) return true;
  const source = parts.at(-2)!.toLowerCase();
  for (let i = levels.length - 1; i >= 0; i--) {
    const judged = levels[i]!.get(source);
    if (judged !== undefined) return judged;
  }
  return true;
}

/** Whether an expression may read a column of the judged rows (a subquery's own FROM shadows outer names). */
export function readsTarget(node: unknown, levels: Levels): boolean {
  if (Array.isArray(node)) return node.some((n) => readsTarget(n, levels));
  if (node === null || typeof node !== 'object') return false;
  const n = node as Node;
  if (n.Select && typeof n.Select === 'object') {
    const select = n.Select as Node;
    const inner = [...levels, new Map(sourceNames(select.from).map((s) => [s, false]))];
    return Object.entries(select).some(([k, v]) => k !== 'from' && readsTarget(v, inner)) || joinsRead(select.from, inner);
  }
  for (const [key, v] of Object.entries(n)) {
    if (NAME_KEYS.has(key)) continue;
    if (key === 'Identifier' && typeof (v as Node)?.value === 'string') {
      if (columnIsJudged([(v as Node).value as string], levels)) return true;
    } else if (key === 'CompoundIdentifier' && Array.isArray(v)) {
      if (
        columnIsJudged(
          v.map((p) => String((p as Node).value ?? '')),
          levels,
        )
      )
        return true;
    } else if (readsTarget(v, levels)) return true;
  }
  return false;
}

/** Whether the join conditions and table functions of a FROM list read the judged rows. */
function joinsRead(from: unknown, levels: Levels): boolean {
  return ((from as Node[] | undefined) ?? []).some((t) => readsTarget(t.joins, levels) || readsTarget((t.relation as Node | undefined)?.Table, levels));
}

/** Whether a condition may hold for every judged row (see the module documentation); `literals.compared` is set when the verdict compared numbers. */
export function mayBeAllRows(node: unknown, levels: Levels, literals: Literals): boolean {
  if (!readsTarget(node, levels)) return !certainlyNotTrue(node);
  const [kind, body] = tagged(bare(node));
  if (misgrouped(kind, body)) return true;
  const same = (a: unknown, b: unknown): boolean => sameExpr(a, b, literals);
  switch (kind) {
    case 'BinaryOp': {
      const op = String(body.op);
      if (op === 'And') return arms(node, AND).every((a) => mayBeAllRows(a, levels, literals));
      if (op === 'Or' || op === 'StringConcat') return orMayBeAllRows(arms(node, OR), levels, literals);
      if (op === 'Xor') return xorMayBeAllRows(body.left, body.right, levels, literals);
      return ['Eq', 'GtEq', 'LtEq', 'Spaceship'].includes(op) && same(body.left, body.right);
    }
    case 'UnaryOp':
      return body.op === 'Not' && alwaysFalse(body.expr, levels, literals);
    case 'IsTrue':
    case 'IsNotFalse':
      return mayBeAllRows(body, levels, literals);
    case 'IsFalse':
    case 'IsNotTrue':
      return alwaysFalse(body, levels, literals);
    case 'Between':
      return body.negated !== true && same(body.expr, body.low) && same(body.expr, body.high);
    case 'Like':
      return body.negated !== true && /^%+$/.test(stringOf(body.pattern) ?? '');
    case 'InList':
      return body.negated !== true && ((body.list as unknown[] | undefined) ?? []).some((item) => same(body.expr, item));
    case 'Case':
      return caseResults(body).every((r) => r !== undefined && mayBeAllRows(r, levels, literals));
    default:
      return false;
  }
}

/** Whether a condition may hold for no judged row: false or NULL, or a contradiction (`a <> a`, `NOT` of a tautology). Used under a negation, so it errs towards flagging too. */
function alwaysFalse(node: unknown, levels: Levels, literals: Literals): boolean {
  if (!readsTarget(node, levels)) return certainlyNotTrue(node);
  const [kind, body] = tagged(bare(node));
  if (misgrouped(kind, body)) return true;
  switch (kind) {
    case 'BinaryOp': {
      const op = String(body.op);
      if (op === 'And') return arms(node, AND).some((a) => alwaysFalse(a, levels, literals));
      if (op === 'Or') return arms(node, OR).every((a) => alwaysFalse(a, levels, literals));
      return ['NotEq', 'Lt', 'Gt'].includes(op) && sameExpr(body.left, body.right, literals);
    }
    case 'UnaryOp':
      return body.op === 'Not' && mayBeAllRows(body.expr, levels, literals);
    case 'IsTrue':
    case 'IsNotFalse':
      return alwaysFalse(body, levels, literals);
    case 'IsFalse':
    case 'IsNotTrue':
      return mayBeAllRows(body, levels, literals);
    case 'Between':
      return body.negated === true && sameExpr(body.expr, body.low, literals) && sameExpr(body.expr, body.high, literals);
    case 'Case':
      return caseResults(body).every((r) => r === undefined || alwaysFalse(r, levels, literals));
    default:
      return false;
  }
}

/** An OR (or MySQL's `||`) may hold for every row when one arm may, or one arm's negation is another arm (keyed, so a long OR takes linear time). */
function orMayBeAllRows(list: readonly unknown[], levels: Levels, literals: Literals): boolean {
  if (list.some((a) => mayBeAllRows(a, levels, literals))) return true;
  const written = new Set(list.map((a) => exprKey(a, false)));
  const alike = new Set(list.map((a) => exprKey(a, true)));
  for (const negation of list.flatMap(negations)) {
    if (written.has(exprKey(negation, false))) return true;
    if (alike.has(exprKey(negation, true))) literals.compared = true;
  }
  return false;
}

/** `p XOR q` holds for every row when one may always hold and the other never, or they complement each other. */
function xorMayBeAllRows(p: unknown, q: unknown, levels: Levels, literals: Literals): boolean {
  const oneWay = (a: unknown, b: unknown): boolean => mayBeAllRows(a, levels, literals) && alwaysFalse(b, levels, literals);
  return oneWay(p, q) || oneWay(q, p) || complements(p, q, literals);
}

/**
 * Whether a connective stands unparenthesised where the parser read a value (`id = id && 1`, `id = 1 || 1`): MySQL
 * groups `&&` and `||` otherwise than the parser does, so the condition is not read (it may hold for every row).
 */
function misgrouped(kind: string, body: Node): boolean {
  if (kind === 'BinaryOp' && CONNECTIVES.has(String(body.op))) return false;
  let found = false;
  const visit = (n: unknown): void => {
    if (found || n === null || typeof n !== 'object') return;
    if (Array.isArray(n)) return n.forEach(visit);
    const [k, b] = tagged(n);
    if (k === 'BinaryOp' && CONNECTIVES.has(String(b.op))) found = true;
    else if (!['Nested', 'Subquery', 'Exists', 'InSubquery'].includes(k)) for (const v of Object.values(n as Node)) visit(v);
  };
  visit(body);
  return found;
}

/** Connectives whose arms are flattened: AND; OR and MySQL's `||`. */
const AND = new Set(['And']);
const OR = new Set(['Or', 'StringConcat']);

/** The arms of a chain of connectives `ops`, nested ones flattened (iteratively: a long chain is a deep tree). */
function arms(node: unknown, ops: ReadonlySet<string>): unknown[] {
  const out: unknown[] = [];
  const stack = [node];
  while (stack.length > 0) {
    const n = stack.pop();
    const [kind, body] = tagged(bare(n));
    if (kind === 'BinaryOp' && ops.has(String(body.op))) stack.push(body.right, body.left);
    else out.push(n);
  }
  return out;
}

/** A CASE's results, its ELSE last (undefined without one: a row no WHEN matches gets NULL). */
function caseResults(body: Node): unknown[] {
  return [...((body.conditions as Node[] | undefined) ?? []).map((c) => c.result), body.else_result ?? undefined];
}

/** Whether one of two conditions holds whenever the other does not (for operands that are not NULL). */
function complements(a: unknown, b: unknown, literals: Literals): boolean {
  return negations(a).some((n) => sameExpr(n, b, literals)) || negations(b).some((n) => sameExpr(n, a, literals));
}

/** Conditions that hold exactly when `node` does not (for operands that are not NULL): its operand under NOT, the opposite test or comparison, either way round. */
function negations(node: unknown): unknown[] {
  const [kind, body] = tagged(bare(node));
  if (kind === 'UnaryOp' && body.op === 'Not') return [body.expr];
  if (NEGATIONS.has(kind)) return [body];
  const test = OPPOSITE_TESTS[kind];
  if (test !== undefined) return [{ [test]: body }];
  if (['Like', 'InList', 'Between'].includes(kind)) return [{ [kind]: { ...body, negated: body.negated !== true } }];
  const opposite = kind === 'BinaryOp' ? OPPOSITES[String(body.op)] : undefined;
  if (opposite === undefined) return [];
  return [{ BinaryOp: { left: body.left, op: opposite, right: body.right } }, { BinaryOp: { left: body.right, op: SWAPPED[opposite], right: body.left } }];
}

/** Whether two expressions are written the same (spans, parentheses and the case of names aside); `literals.compared` is set when they differ in numbers alone. */
function sameExpr(a: unknown, b: unknown, literals: Literals): boolean {
  if (a === undefined || b === undefined) return false;
  const ka = exprKey(a, false);
  const kb = exprKey(b, false);
  if (ka !== kb && exprKey(a, true) === exprKey(b, true)) literals.compared = true;
  return ka === kb;
}

/** An expression as text to compare: names lower-case and unquoted, parentheses dropped; `numbers` made alike when asked. */
function exprKey(node: unknown, anyNumber: boolean): string {
  return JSON.stringify(bare(node), (key, v: unknown) => {
    if (key === 'span' || key === 'quote_style') return undefined;
    if (v !== null && typeof v === 'object' && tagged(v)[0] === 'Nested') return bare(v);
    if (key === 'value' && typeof v === 'string') return v.toLowerCase();
    if (anyNumber && key === 'Number') return '#';
    return v;
  });
}

/** A constant's type (`Number`, `Boolean`, `Null`, `SingleQuotedString`, ...) and value; undefined for anything else. */
function constant(node: unknown): [string, unknown] | undefined {
  const [kind, body] = tagged(bare(node));
  if (kind !== 'Value') return undefined;
  const v = body.value;
  if (typeof v === 'string') return [v, undefined];
  const [type, raw] = Object.entries((v ?? {}) as Node)[0] ?? ['', undefined];
  return [type, Array.isArray(raw) ? raw[0] : raw];
}

/** A constant that is certainly false or NULL: NULL, FALSE, a number that is zero, or NOT of a true one. */
function certainlyNotTrue(node: unknown): boolean {
  const [kind, body] = tagged(bare(node));
  if (kind === 'UnaryOp' && body.op === 'Not') return certainlyTrue(body.expr);
  const [type, v] = constant(node) ?? [];
  return type === 'Null' || (type === 'Boolean' && v === false) || (type === 'Number' && Number(v) === 0);
}

/** A constant that is certainly true: TRUE, or a number that is not zero. */
function certainlyTrue(node: unknown): boolean {
  const [type, v] = constant(node) ?? [];
  return (type === 'Boolean' && v === true) || (type === 'Number' && Number.isFinite(Number(v)) && Number(v) !== 0);
}

/** A string constant's text; undefined for anything else. */
function stringOf(node: unknown): string | undefined {
  const [type, v] = constant(node) ?? [];
  return type?.endsWith('QuotedString') && typeof v === 'string' ? v : undefined;
}
