/**
 * The scope in which the conditions of a write are judged for `StatementFacts.missingWhere`: the
 * row sources of each query level (FROM items, the write's target, its USING / FROM list or MERGE
 * source), the names under which they are visible, the column names they certainly output, and
 * which of them stand for the judged rows (the write's target).
 *
 * @see https://www.postgresql.org/docs/17/queries-table-expressions.html
 * @see https://www.postgresql.org/docs/17/sql-select.html#SQL-SELECT-LIST
 */
import type { Alias, Node, SelectStmt, WithClause } from 'libpg-query';
import { isSetOperation, list, type NotANode, names, nodeAs, type Tagged, type TaggedOf, unwrap, type WriteTag } from './ast.js';

/** Whether a verdict compared subtrees that differ at most in numeric constants (see `Analysis.literalSensitive`). */
export interface Literals {
  compared: boolean;
}

/**
 * Where the conditions of one write are judged: the row sources in scope, innermost query level
 * last; the CTEs visible; and whether a verdict compared numeric constants.
 */
export interface WhereCtx {
  readonly levels: readonly Level[];
  /** CTEs in scope by name, with their output columns as far as known. */
  readonly ctes: ReadonlyMap<string, Columns>;
  /** `compared` is set when a verdict compared subtrees that differ at most in numeric constants. */
  readonly literals: Literals;
}

/** The row sources of one query level: a FROM list, or a write's target with its FROM / USING / MERGE source. */
export interface Level {
  /** Source names visible here (the alias, else the table's name): whether each stands for the judged rows. */
  readonly names: Map<string, boolean>;
  /** Column names a source here certainly outputs: whether that source stands for the judged rows. */
  readonly columns: Map<string, boolean>;
  /** Some source here has columns whose names are not known (a table, a function, `SELECT *`). */
  opaque: boolean;
}

/** A row source's output columns in order (undefined where a name is not known); `complete` when every name is known. */
interface Columns {
  readonly names: ReadonlyArray<string | undefined>;
  readonly complete: boolean;
}

const UNKNOWN_COLUMNS: Columns = { names: [], complete: false };

export const newLevel = (): Level => ({ names: new Map(), columns: new Map(), opaque: false });

/**
 * The scope of a write's conditions: its target, by its alias (else its name; plus `excluded`
 * for ON CONFLICT, the proposed row, which pairs with exactly one existing row), stands for the
 * judged rows; FROM / USING items and the MERGE source are other sources.
 */
export function writeScope(write: TaggedOf<WriteTag>, literals: Literals): WhereCtx {
  const [type, body] = write;
  const w = withCtes(body.withClause, { levels: [], ctes: new Map(), literals });
  const level = newLevel();
  const others = type === 'UpdateStmt' ? list(body.fromClause) : type === 'DeleteStmt' ? list(body.usingClause) : type === 'MergeStmt' ? [body.sourceRelation] : [];
  for (const item of others) addSource(item, level, w, false);
  const rel = body.relation;
  const visible = rel?.alias?.aliasname ?? rel?.relname;
  if (visible !== undefined) level.names.set(visible, true);
  if (type === 'InsertStmt') level.names.set('excluded', true);
  level.opaque = true;
  return { ...w, levels: [level] };
}

/** `w` with the CTEs of a WITH clause in scope. */
export function withCtes(withClause: WithClause | undefined, w: WhereCtx): WhereCtx {
  const ctes = list(withClause?.ctes);
  if (ctes.length === 0) return w;
  const map = new Map(w.ctes);
  for (const c of ctes) {
    const cte = nodeAs(c, 'CommonTableExpr');
    const name = cte?.ctename;
    if (cte !== undefined && name !== undefined) map.set(name, renamed(outputColumns(cte.ctequery), names(cte.aliascolnames)));
  }
  return { ...w, ctes: map };
}

/** Columns renamed by an alias's column list (`AS x(a, b)` renames the first ones). */
function renamed(columns: Columns, aliases: readonly string[]): Columns {
  if (aliases.length === 0) return columns;
  const out: Array<string | undefined> = [...columns.names];
  aliases.forEach((a, i) => {
    out[i] = a;
  });
  for (let i = 0; i < out.length; i++) if (!(i in out)) out[i] = undefined;
  return { names: out, complete: columns.complete && out.every((n) => n !== undefined) };
}

/** The output columns of a query (a SELECT or VALUES; anything else: unknown). */
function outputColumns(query: Node | undefined): Columns {
  const select = nodeAs(query, 'SelectStmt');
  return select ? selectColumns(select) : UNKNOWN_COLUMNS;
}

/**
 * The output column names of a SELECT body as the server names them, where this can tell
 * (`AS` names, column references, function calls, casts of those or of constants; VALUES:
 * column1, column2, ...; a set operation: its first SELECT's). A `*` ends what is known.
 * @see https://www.postgresql.org/docs/17/sql-select.html#SQL-SELECT-LIST
 */
function selectColumns(body: SelectStmt): Columns {
  if (isSetOperation(body)) return body.larg && typeof body.larg === 'object' ? selectColumns(body.larg) : UNKNOWN_COLUMNS;
  const values = list(body.valuesLists);
  if (values.length > 0) return { names: list(nodeAs(values[0], 'List')?.items).map((_, i) => `column${i + 1}`), complete: true };
  const out: Array<string | undefined> = [];
  for (const target of list(body.targetList)) {
    const res = nodeAs(target, 'ResTarget') ?? {};
    const ref = nodeAs(res.val, 'ColumnRef');
    if (ref && list(ref.fields).some((f) => unwrap(f)[0] === 'A_Star')) return { names: out, complete: false };
    out.push(res.name ?? columnName(res.val));
  }
  return { names: out, complete: out.every((n) => n !== undefined) };
}

/** The name the server gives an unnamed output, for the forms where it is certain. */
function columnName(node: Node | undefined): string | undefined {
  const [type, body] = unwrap(node);
  switch (type) {
    case 'ColumnRef':
      return nodeAs(list(body.fields).at(-1), 'String')?.sval;
    case 'FuncCall':
      return names(body.funcname).at(-1);
    case 'TypeCast': {
      const [argType] = unwrap(body.arg);
      if (argType === 'ColumnRef' || argType === 'FuncCall') return columnName(body.arg);
      if (argType === 'A_Const') return names(body.typeName?.names).at(-1);
      return undefined;
    }
    default:
      return undefined;
  }
}

/** The alias of a FROM item of any type (most have one: RangeVar, subqueries, functions, joins, XMLTABLE, JSON_TABLE). */
function fromItemAlias(body: (Tagged | NotANode)[1]): Alias | undefined {
  return 'alias' in body ? body.alias : undefined;
}

/** Adds a FROM item's visible names and known columns to `level`; `judged`: it stands for the judged rows. */
export function addSource(item: Node | undefined, level: Level, w: WhereCtx, judged: boolean): void {
  const [type, body] = unwrap(item);
  const alias = fromItemAlias(body);
  let name = alias?.aliasname;
  const aliasColumns = names(alias?.colnames);
  let columns = UNKNOWN_COLUMNS;
  switch (type) {
    case 'RangeVar': {
      const rel = body.relname;
      name ??= rel;
      const cte = rel !== undefined && !body.schemaname && !body.catalogname ? w.ctes.get(rel) : undefined;
      if (cte) columns = cte;
      break;
    }
    case 'RangeSubselect':
      columns = outputColumns(body.subquery);
      break;
    case 'RangeTableSample':
      addSource(body.relation, level, w, judged);
      return;
    case 'JoinExpr':
      addJoin(body.larg, body.rarg, name, aliasColumns, level, w, judged);
      return;
    case 'RangeFunction': {
      // Without an alias, a single function is known by its name.
      const fns = list(body.functions);
      if (fns.length === 1) name ??= names(nodeAs(list(nodeAs(fns[0], 'List')?.items)[0], 'FuncCall')?.funcname).at(-1);
      break;
    }
    default:
      break;
  }
  const cols = renamed(columns, aliasColumns);
  if (name !== undefined) level.names.set(name, judged);
  for (const c of cols.names) if (c !== undefined) level.columns.set(c, judged);
  if (!cols.complete) level.opaque = true;
}

/** A join's sources: without an alias both sides stay visible by their names; with one, only the alias is. */
function addJoin(larg: Node | undefined, rarg: Node | undefined, name: string | undefined, aliasColumns: readonly string[], level: Level, w: WhereCtx, judged: boolean): void {
  const inner = name === undefined ? level : newLevel();
  addSource(larg, inner, w, judged);
  addSource(rarg, inner, w, judged);
  if (name === undefined) return;
  level.names.set(name, judged);
  if (aliasColumns.length > 0) {
    for (const c of aliasColumns) level.columns.set(c, judged);
    level.opaque = true;
  } else {
    for (const [c, j] of inner.columns) level.columns.set(c, j);
    if (inner.opaque) level.opaque = true;
  }
}
