/**
 * Where each result column of a statement comes from (its lineage): the columns of the relations
 * it names that the column's value is computed from, traced through subqueries, CTEs (recursive
 * ones to a fixed point), joins, set operations, VALUES, LATERAL and functions in FROM, with the
 * scoping rules of PostgreSQL's parser (an unqualified name is the innermost query level's, a
 * qualified one names a row source, a lone name a whole row). Also every column the statement
 * reads anywhere (WHERE, JOIN, GROUP BY, ...) and every relation it scans.
 *
 * PostgreSQL gives a plain column of a relation an origin in RowDescription; a value computed from
 * columns (`upper(email)`, `count(x)`, a CASE, a subquery) comes without one. Masking reads the
 * lineage of such a column to tell whether it may carry a masked value: exactly, so that values
 * computed from nothing masked come back as the server sent them. What the parse tree cannot tell
 * is said, never guessed: a name that may or may not be a column of a relation (`maybe`, which the
 * catalog settles), a star whose width only the catalog knows, a function in FROM (`opaque`: its
 * body may read anything), and a name that resolves to nothing (then every row source in scope).
 *
 * A column's lineage counts every column referenced in computing it, a subquery in it with all it
 * references (its WHERE too), window and aggregate clauses inside it; the statement's own row
 * filters (WHERE, JOIN ... ON, GROUP BY, HAVING) do not: they choose rows, and `reads` holds them.
 *
 * @see https://www.postgresql.org/docs/17/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-ROWDESCRIPTION
 * @see https://www.postgresql.org/docs/17/queries-table-expressions.html
 * @see https://github.com/postgres/postgres/blob/REL_17_STABLE/src/backend/parser/parse_relation.c (name resolution)
 * @see https://github.com/postgres/postgres/blob/REL_17_STABLE/src/backend/parser/parse_target.c (FigureColname)
 */
import type { ColumnRef, CommonTableExpr, DeleteStmt, InsertStmt, MergeStmt, Node, RangeVar, ResTarget, SelectStmt, UpdateStmt, WithClause } from 'libpg-query';
import { type ColumnLineage, type ColumnSource, type LineageSegment, type RelationName, SIDE_CHANNELS, type StatementFacts, type StatementLineage } from './facts.js';
import { isSetOperation, list, names, nodeAs, type Tagged, tagged, unwrap } from './ast.js';

/** A row source in scope: its name and its columns. */
interface Entry {
  /** The name it is referred to by (its alias, else the relation's or CTE's name), lower-case. */
  name: string;
  /** The relation's schema as written, for `schema.table.column`. */
  schema?: string;
  columns: LineageSegment[];
}

/** One query level: its row sources and the level around it (for correlated references). */
interface Level {
  entries: Entry[];
  parent: Level | undefined;
  /** The query's named windows (`WINDOW w AS (...)`), which a call `OVER w` reads. */
  windows?: ReadonlyMap<string, Node>;
}

/** CTEs in scope by name: their columns, or `pending` while a recursive one is being traced. */
type Ctes = ReadonlyMap<string, LineageSegment[]>;

const NO_CTES: Ctes = new Map();
/** How many rounds a recursive CTE's lineage is followed before it counts as reading everything it names. */
const MAX_RECURSION_ROUNDS = 8;

/** Where a lineage is gathered: the sources and whether an opaque value flows in. */
interface Collector {
  sources: Map<string, ColumnSource>;
  opaque: boolean;
}

function sourceKey(s: ColumnSource): string {
  return `${s.schema ?? ''}\u0000${s.relation}\u0000${s.column}\u0000${s.position ?? ''}\u0000${s.maybe ? 1 : 0}`;
}

/** A relation segment's own source: column `column` of it (or a place with `position`). */
function relationSource(seg: { schema?: string; relation: string }, column: string, more: Partial<ColumnSource> = {}): ColumnSource {
  return { ...(seg.schema !== undefined ? { schema: seg.schema } : {}), relation: seg.relation, column, ...more };
}

function lineageOf(c: Collector): ColumnLineage {
  return c.opaque ? { sources: [...c.sources.values()], opaque: true } : { sources: [...c.sources.values()] };
}

/** The union of lineages. */
export function unionLineage(parts: readonly ColumnLineage[]): ColumnLineage {
  const c: Collector = { sources: new Map(), opaque: false };
  for (const p of parts) {
    for (const s of p.sources) c.sources.set(sourceKey(s), s);
    if (p.opaque) c.opaque = true;
  }
  return lineageOf(c);
}

/** Every value a run of columns may carry: a relation's star as its whole row. */
export function segmentLineage(seg: LineageSegment): ColumnLineage {
  if ('relation' in seg) return { sources: [relationSource(seg, '*')] };
  return 'any' in seg ? seg.any : seg.lineage;
}

/**
 * A statement's values kept beyond its result, folded into its side channel: what a write stores
 * (SET, VALUES, an INSERT's query, ON CONFLICT, MERGE) and what a table made by a query holds
 * (CREATE TABLE AS, SELECT INTO, a materialized view). A masked value kept there would be read
 * back under a column no rule masks.
 */
export function keptValues(facts: StatementFacts, storedDefault = false): void {
  const lineage = facts.lineage;
  // A side channel in a statement with no query to trace (a CHECK, a policy): what it is given is not known here.
  if (facts.sideChannel && !lineage?.sideChannel) facts.code ??= `a call of ${facts.sideChannel.name} whose arguments hoop cannot trace`;
  // A default that calls a function stores what it returns (in every row a column is added to, at once): one of the database's own may return what it reads.
  if (storedDefault && facts.functions.length > 0 && !facts.sideChannel) {
    facts.lineage = { ...(lineage ?? { branches: [], reads: [], relations: [] }), sideChannel: { sources: [] } };
    facts.sideChannel = { name: 'a column default', where: 'masking does not follow a value a default stores' };
    return;
  }
  if (!lineage) return;
  const made = facts.ddl?.kind === 'view' && facts.kinds.includes('select') ? facts.ddl : undefined;
  const kept = [...(lineage.assigned ? [lineage.assigned] : []), ...(made?.view ?? []).map(segmentLineage)];
  // A write calls a function: one of the database's own returns what it reads (the masking stage asks the catalog).
  const writes = made !== undefined || lineage.assigned !== undefined || facts.kinds.some((k) => k === 'insert' || k === 'update' || k === 'merge');
  if (!kept.some((l) => l.sources.length > 0 || l.opaque) && !(writes && facts.functions.length > 0)) return;
  facts.lineage = { ...lineage, sideChannel: unionLineage([...kept, ...(lineage.sideChannel ? [lineage.sideChannel] : [])]) };
  facts.sideChannel ??= !made
    ? { name: 'the rows it writes', where: 'masking does not follow a value into the column it is stored in' }
    : {
        name: `the table ${made.relation.schema !== undefined ? `${made.relation.schema}.` : ''}${made.relation.relation} it makes`,
        where: 'masking does not follow a value into a table made from it',
      };
}

/** An identifier as the parser gives it (folded to lower case unless quoted): names are compared exactly, as PostgreSQL compares them. */
function ident(s: string | undefined): string {
  return s ?? '';
}

/**
 * The lineage of a statement whose result or definition is a query: a SELECT (or VALUES), a write
 * with RETURNING (without one, its result is empty), the query of DECLARE, PREPARE, COPY, CREATE
 * VIEW / MATERIALIZED VIEW / TABLE AS, and EXPLAIN (whose plan is computed from no column).
 * Undefined for any other statement.
 */
export function statementLineage(node: Tagged): StatementLineage | undefined {
  const w = new LineageWalker();
  const branches = w.statement(node);
  if (!branches) return undefined;
  const side = w.sideChannel.length > 0 ? { sideChannel: unionLineage(w.sideChannel) } : {};
  const assigned = unionLineage(w.assigned);
  const stores = assigned.sources.length > 0 || assigned.opaque ? { assigned } : {};
  return { branches, reads: w.reads(), relations: [...w.relations.values()], ...side, ...stores };
}

class LineageWalker {
  /** The collectors open now: the statement's reads first, then one per expression being traced. */
  readonly #collectors: Collector[] = [{ sources: new Map(), opaque: false }];
  readonly relations = new Map<string, RelationName>();
  /** What the arguments of calls that send a value out of band are computed from. */
  readonly sideChannel: ColumnLineage[] = [];
  /** What the values a write stores are computed from (its RETURNING may hand them back under the target's columns). */
  readonly assigned: ColumnLineage[] = [];

  reads(): ColumnSource[] {
    return [...this.#collectors[0]!.sources.values()];
  }

  statement(node: Tagged): LineageSegment[][] | undefined {
    switch (node[0]) {
      case 'SelectStmt':
        return this.query(node[1], undefined, NO_CTES);
      case 'InsertStmt':
      case 'UpdateStmt':
      case 'DeleteStmt':
      case 'MergeStmt':
        return [this.write(node, undefined, NO_CTES)];
      case 'DeclareCursorStmt':
      case 'PrepareStmt':
      case 'ExplainStmt':
      case 'CopyStmt':
      case 'CreateTableAsStmt':
      case 'ViewStmt': {
        const inner = tagged(node[1].query);
        const branches = inner ? this.statement(inner) : undefined;
        if (node[0] === 'ExplainStmt') return [[{ name: 'query plan', lineage: { sources: [] } }]];
        if (node[0] === 'ViewStmt' && branches) return branches.map((b) => renamed(b, names(node[1].aliases)));
        if (node[0] === 'CreateTableAsStmt' && branches) return branches.map((b) => renamed(b, names(node[1].into?.colNames)));
        return branches;
      }
      case 'VariableShowStmt':
        return [[{ name: ident(node[1].name), lineage: { sources: [] } }]];
      default:
        return undefined;
    }
  }

  /** A SELECT's result columns, one list per branch of its set operations. */
  query(select: SelectStmt, outer: Level | undefined, ctes: Ctes): LineageSegment[][] {
    const scope = this.#with(select.withClause, outer, ctes);
    if (isSetOperation(select)) {
      const out = [...(select.larg ? this.query(select.larg, outer, scope) : []), ...(select.rarg ? this.query(select.rarg, outer, scope) : [])];
      this.#walkAll([select.sortClause, select.limitCount, select.limitOffset], { entries: [], parent: outer }, scope);
      return out;
    }
    if (select.valuesLists) return [this.#values(select.valuesLists, outer, scope)];
    const windows = new Map(
      list(select.windowClause).flatMap((w) => {
        const name = nodeAs(w, 'WindowDef')?.name;
        return name ? [[ident(name), w] as const] : [];
      }),
    );
    const level: Level = { entries: [], parent: outer, ...(windows.size > 0 ? { windows } : {}) };
    for (const item of list(select.fromClause)) this.#from(item, level, scope);
    const out = this.#targets(select.targetList, level, scope);
    this.#walkAll(
      [select.whereClause, select.groupClause, select.havingClause, select.windowClause, select.sortClause, select.distinctClause, select.limitCount, select.limitOffset, select.lockingClause],
      level,
      scope,
    );
    return [out];
  }

  /** INSERT, UPDATE, DELETE or MERGE: what it reads, and its RETURNING columns. */
  write(node: Extract<Tagged, readonly ['InsertStmt' | 'UpdateStmt' | 'DeleteStmt' | 'MergeStmt', unknown]>, outer: Level | undefined, ctes: Ctes): LineageSegment[] {
    const body: InsertStmt | UpdateStmt | DeleteStmt | MergeStmt = node[1];
    const scope = this.#with(body.withClause, outer, ctes);
    const level: Level = { entries: [], parent: outer };
    const target = body.relation ? this.#relationEntry(body.relation) : undefined;
    switch (node[0]) {
      case 'InsertStmt': {
        const insert = node[1];
        const source = nodeAs(insert.selectStmt, 'SelectStmt');
        if (source) this.assigned.push(unionLineage(this.query(source, outer, scope).flat().map(segmentLineage)));
        if (target) level.entries.push(target);
        const conflict = insert.onConflictClause;
        if (conflict) {
          const excluded = target && { ...target, name: 'excluded', schema: undefined };
          const inConflict: Level = { entries: [...level.entries, ...(excluded ? [excluded] : [])], parent: outer };
          this.assigned.push(this.#expr(conflict.targetList, inConflict, scope));
          this.#walkAll([conflict.infer, conflict.whereClause], inConflict, scope);
        }
        break;
      }
      case 'UpdateStmt':
        if (target) level.entries.push(target);
        for (const item of list(node[1].fromClause)) this.#from(item, level, scope);
        this.assigned.push(this.#expr(node[1].targetList, level, scope));
        this.#walkAll([node[1].whereClause], level, scope);
        break;
      case 'DeleteStmt':
        if (target) level.entries.push(target);
        for (const item of list(node[1].usingClause)) this.#from(item, level, scope);
        this.#walkAll([node[1].whereClause], level, scope);
        break;
      case 'MergeStmt':
        if (target) level.entries.push(target);
        if (node[1].sourceRelation) this.#from(node[1].sourceRelation, level, scope);
        this.#walkAll([node[1].joinCondition], level, scope);
        this.assigned.push(this.#expr(node[1].mergeWhenClauses, level, scope));
        break;
    }
    return this.#targets(body.returningList, level, scope);
  }

  /** The CTEs a WITH clause adds to those in scope: each sees those before it; with RECURSIVE, all of them (traced to a fixed point). */
  #with(clause: WithClause | undefined, outer: Level | undefined, ctes: Ctes): Ctes {
    if (!clause) return ctes;
    const scope = new Map(ctes);
    const defined = list(clause.ctes)
      .map((c) => nodeAs(c, 'CommonTableExpr'))
      .filter((c): c is CommonTableExpr => c?.ctename !== undefined);
    if (clause.recursive !== true) {
      for (const cte of defined) scope.set(ident(cte.ctename), this.#cte(cte, outer, scope));
      return scope;
    }
    // Every CTE may name every other, itself too: traced with what is known so far until nothing grows.
    for (const cte of defined) scope.set(ident(cte.ctename), [{ any: { sources: [] } }]);
    for (let round = 0; round < MAX_RECURSION_ROUNDS; round++) {
      let grew = false;
      for (const cte of defined) {
        const name = ident(cte.ctename);
        const before = scope.get(name)!;
        const next = this.#cte(cte, outer, scope);
        const joined = sameShape(next, before) ? next.map((seg, i) => unite(seg, before[i]!)) : next;
        if (signature(joined) !== signature(before)) grew = true;
        scope.set(name, joined);
      }
      if (!grew) return scope;
    }
    for (const cte of defined) scope.set(ident(cte.ctename), [{ any: unionLineage(scope.get(ident(cte.ctename))!.map(segmentLineage)) }]);
    return scope;
  }

  #cte(cte: CommonTableExpr, outer: Level | undefined, scope: Ctes): LineageSegment[] {
    const q = tagged(cte.ctequery);
    let branches: LineageSegment[][] = [];
    if (q?.[0] === 'SelectStmt') branches = this.query(q[1], outer, scope);
    else if (q && (q[0] === 'InsertStmt' || q[0] === 'UpdateStmt' || q[0] === 'DeleteStmt' || q[0] === 'MergeStmt')) branches = [this.write(q, outer, scope)];
    return renamed(asRowSource(branches), names(cte.aliascolnames));
  }

  /** VALUES: each column is what its expressions in every row read. */
  #values(rows: readonly Node[], outer: Level | undefined, ctes: Ctes): LineageSegment[] {
    const level: Level = { entries: [], parent: outer };
    const columns: ColumnLineage[][] = [];
    for (const row of rows) {
      list(nodeAs(row, 'List')?.items).forEach((item, i) => {
        (columns[i] ??= []).push(this.#expr(item, level, ctes));
      });
    }
    return columns.map((parts, i) => ({ name: `column${i + 1}`, lineage: unionLineage(parts) }));
  }

  /** A SELECT or RETURNING list's columns. */
  #targets(targets: readonly Node[] | undefined, level: Level, ctes: Ctes): LineageSegment[] {
    const out: LineageSegment[] = [];
    for (const t of list(targets)) {
      const res: ResTarget = nodeAs(t, 'ResTarget') ?? {};
      const ref = nodeAs(res.val, 'ColumnRef');
      const fields = ref ? refFields(ref) : undefined;
      if (fields?.at(-1) === '*') {
        const star = this.#star(fields.slice(0, -1), level);
        out.push(...star);
        continue;
      }
      const indirect = nodeAs(res.val, 'A_Indirection');
      if (indirect && nodeAs(list(indirect.indirection).at(-1), 'A_Star')) {
        out.push({ any: this.#expr(res.val, level, ctes) });
        continue;
      }
      const plain = fields !== undefined && this.#plain(fields, level) ? { plain: true as const } : {};
      out.push({ name: ident(res.name) || figureName(res.val), lineage: this.#expr(res.val, level, ctes), ...plain });
    }
    return out;
  }

  /** The columns `*` or `q.*` stands for (passed on as they are: not read as an expression reads). */
  #star(qualifier: string[], level: Level): LineageSegment[] {
    const entries = qualifier.length === 0 ? level.entries : (this.#entryNamed(qualifier, level) ?? []);
    const columns = entries.flatMap((e) => e.columns);
    if (columns.length === 0 && qualifier.length > 0) return [{ any: this.#everything(level) }];
    return columns;
  }

  /** One FROM item: its row sources join `level`. */
  #from(item: Node, level: Level, ctes: Ctes): void {
    const entries = this.#fromEntries(item, level, ctes);
    level.entries.push(...entries);
  }

  #fromEntries(item: Node, level: Level, ctes: Ctes): Entry[] {
    const [type, body] = unwrap(item);
    switch (type) {
      case 'RangeVar':
        return [this.#rangeVar(body, ctes)];
      case 'RangeSubselect': {
        const sub = nodeAs(body.subquery, 'SelectStmt');
        // A LATERAL subquery sees the row sources before it; any subquery sees the levels around.
        const outer = body.lateral ? { entries: [...level.entries], parent: level.parent } : level.parent;
        const columns = sub ? asRowSource(this.query(sub, outer, ctes)) : [{ any: { sources: [] } }];
        return [{ name: ident(body.alias?.aliasname), columns: renamed(columns, names(body.alias?.colnames)) }];
      }
      case 'RangeFunction': {
        const lateral: Level = { entries: [...level.entries], parent: level.parent };
        const parts: ColumnLineage[] = [];
        for (const fn of list(body.functions)) {
          const [call, defs] = list(nodeAs(fn, 'List')?.items);
          parts.push(this.#expr(call, lateral, ctes));
          this.#walk(defs, lateral, ctes);
        }
        const lineage = { ...unionLineage(parts), opaque: true as const };
        const named = [...names(body.alias?.colnames), ...list(body.coldeflist).map((d) => ident(nodeAs(d, 'ColumnDef')?.colname))];
        const fname = names(nodeAs(list(nodeAs(list(body.functions)[0], 'List')?.items)[0], 'FuncCall')?.funcname).at(-1);
        const columns: LineageSegment[] = named.length > 0 ? named.map((n) => ({ name: ident(n), lineage })) : [{ any: lineage }];
        return [{ name: ident(body.alias?.aliasname ?? fname), columns }];
      }
      case 'RangeTableSample': {
        this.#walkAll([body.args, body.repeatable], level, ctes);
        return body.relation ? this.#fromEntries(body.relation, level, ctes) : [];
      }
      case 'RangeTableFunc':
      case 'JsonTable': {
        const lateral: Level = { entries: [...level.entries], parent: level.parent };
        const lineage = this.#expr(body, lateral, ctes);
        return [{ name: ident(body.alias?.aliasname), columns: [{ any: lineage }] }];
      }
      case 'JoinExpr': {
        const inner: Level = { entries: [...level.entries], parent: level.parent };
        const left = body.larg ? this.#fromEntries(body.larg, inner, ctes) : [];
        inner.entries.push(...left);
        const right = body.rarg ? this.#fromEntries(body.rarg, inner, ctes) : [];
        const both: Level = { entries: [...left, ...right], parent: level.parent };
        this.#walk(body.quals, { entries: [...level.entries, ...both.entries], parent: level.parent }, ctes);
        for (const n of names(body.usingClause)) for (const e of both.entries) this.#record(this.#column(e, ident(n), false));
        const alias = body.alias?.aliasname;
        if (alias === undefined) return [...left, ...right];
        // An aliased join hides the names inside it: its columns are theirs, renamed.
        return [
          {
            name: ident(alias),
            columns: renamed(
              both.entries.flatMap((e) => e.columns),
              names(body.alias?.colnames),
            ),
          },
        ];
      }
      default:
        // A row source this analysis does not know: it may carry anything it reads.
        return [{ name: '', columns: [{ any: { ...this.#expr(body, level, ctes), opaque: true } }] }];
    }
  }

  /** A table or CTE named in FROM. */
  #rangeVar(rv: RangeVar, ctes: Ctes): Entry {
    const rel = ident(rv.relname);
    const alias = rv.alias;
    const cte = !rv.schemaname && !rv.catalogname ? ctes.get(rel) : undefined;
    if (cte) return { name: ident(alias?.aliasname ?? rel), columns: renamed(cte, names(alias?.colnames)) };
    return this.#relationEntry(rv);
  }

  /** A relation (not a CTE) as a row source: its columns are the catalog's; an alias column list renames the first ones. */
  #relationEntry(rv: RangeVar): Entry {
    const rel: RelationName = { ...(rv.schemaname ? { schema: rv.schemaname } : {}), relation: ident(rv.relname) };
    this.relations.set(`${rel.schema ?? ''}\u0000${rel.relation}`, rel);
    const colnames = names(rv.alias?.colnames);
    const columns: LineageSegment[] = colnames.map((n, i) => ({ name: ident(n), lineage: { sources: [relationSource(rel, '*', { position: i })] }, plain: true }));
    columns.push(colnames.length > 0 ? { ...rel, from: colnames.length } : { ...rel });
    return { name: ident(rv.alias?.aliasname ?? rel.relation), ...(rv.schemaname && !rv.alias ? { schema: rv.schemaname } : {}), columns };
  }

  /** What one expression is computed from (what it reads is recorded as read too). */
  #expr(node: unknown, level: Level, ctes: Ctes): ColumnLineage {
    const c: Collector = { sources: new Map(), opaque: false };
    this.#collectors.push(c);
    try {
      this.#walk(node, level, ctes);
    } finally {
      this.#collectors.pop();
    }
    return lineageOf(c);
  }

  #walkAll(nodes: readonly unknown[], level: Level, ctes: Ctes): void {
    for (const n of nodes) this.#walk(n, level, ctes);
  }

  /** Records every column `node` references, following its subqueries. */
  #walk(node: unknown, level: Level, ctes: Ctes): void {
    if (Array.isArray(node)) {
      for (const item of node) this.#walk(item, level, ctes);
      return;
    }
    if (!node || typeof node !== 'object') return;
    const [type, body] = unwrap(node);
    switch (type) {
      case 'ColumnRef':
        this.#record(this.#resolve(refFields(body), level));
        return;
      case 'A_Indirection': {
        // `(c).email`: a composite column c (all of it), else the column email of the row source c.
        const field = nodeAs(list(body.indirection)[0], 'String')?.sval;
        const fields = nodeAs(body.arg, 'ColumnRef') ? refFields(nodeAs(body.arg, 'ColumnRef')!) : [];
        if (field !== undefined && fields.length === 1 && fields[0] !== '*') {
          const found = this.#name(fields[0]!, level);
          this.#record(found.columns);
          for (const e of found.rows) this.#record(this.#column(e, ident(field), false));
          if (!found.any && found.rows.length === 0) this.#record(this.#everything(level));
        } else this.#walk(body.arg, level, ctes);
        this.#walk(body.indirection, level, ctes);
        return;
      }
      case 'SubLink': {
        this.#walk(body.testexpr, level, ctes);
        const sub = nodeAs(body.subselect, 'SelectStmt');
        if (sub) for (const b of this.query(sub, level, ctes)) for (const seg of b) this.#record(segmentLineage(seg));
        return;
      }
      case 'SelectStmt':
        for (const b of this.query(body, level, ctes)) for (const seg of b) this.#record(segmentLineage(seg));
        return;
      case 'FuncCall': {
        // `OVER w` reads what the window w is defined over.
        const window = body.over?.name ?? body.over?.refname;
        if (window !== undefined) this.#walk(level.windows?.get(ident(window)), level, ctes);
        if (SIDE_CHANNELS.has(ident(names(body.funcname).at(-1)).toLowerCase())) {
          this.sideChannel.push(this.#expr(body.args, level, ctes));
          for (const [key, v] of Object.entries(body)) if (key !== 'args') this.#walk(v, level, ctes);
          return;
        }
        for (const v of Object.values(body)) this.#walk(v, level, ctes);
        return;
      }
      case undefined:
        for (const v of Object.values(node)) this.#walk(v, level, ctes);
        return;
      default:
        for (const v of Object.values(body)) this.#walk(v, level, ctes);
    }
  }

  /** Adds a lineage to every open collector. */
  #record(l: ColumnLineage): void {
    for (const c of this.#collectors) {
      for (const s of l.sources) c.sources.set(sourceKey(s), s);
      if (l.opaque) c.opaque = true;
    }
  }

  /**
   * What a column reference reads, read as PostgreSQL reads it: `a` is a column of the innermost
   * level that has one so named, else the whole row of a row source `a`; `a.b` is column b of row
   * source a, else field b of a composite column a; `s.a.b` is column b of `s.a`, or field b of
   * `a.b`; `a.*` a whole row.
   */
  #resolve(fields: string[], level: Level): ColumnLineage {
    const column = fields.at(-1)!;
    if (fields.length === 1) return column === '*' ? unionLineage(level.entries.map(wholeRow)) : this.#unqualified(column, level);
    const qualifier = fields.slice(0, -1);
    const entries = this.#entryNamed(qualifier.slice(-2), level);
    const asRow = entries ? unionLineage(entries.map((e) => (column === '*' ? wholeRow(e) : this.#column(e, column, false)))) : undefined;
    // `a.b` with no row source a, `s.t.c` with no row source s.t: a field of a composite column, all of whose values it may be.
    const asField = entries ? undefined : fields.length === 2 ? this.#unqualified(qualifier[0]!, level) : fields.length === 3 ? this.#resolve(qualifier, level) : undefined;
    return unionLineage([asRow, asField].filter((l): l is ColumnLineage => l !== undefined));
  }

  /** An unqualified name: a column of the innermost level that has one, else a whole row. */
  #unqualified(name: string, level: Level): ColumnLineage {
    const found = this.#name(name, level);
    if (!found.any && found.rows.length === 0) return this.#everything(level);
    return unionLineage([found.columns, ...found.rows.map(wholeRow)]);
  }

  /**
   * What a lone name may be: the columns so named (at the innermost level that surely has one; with
   * the levels inside it that may), and, unless a level surely has such a column, the row sources so
   * named (the innermost that has one).
   */
  #name(name: string, level: Level): { columns: ColumnLineage; any: boolean; rows: Entry[] } {
    const found: ColumnLineage[] = [];
    let definite = false;
    for (let lv: Level | undefined = level; lv && !definite; lv = lv.parent) {
      for (const e of lv.entries) {
        const hit = this.#lookup(e, name, true);
        if (hit.found === 'no') continue;
        found.push(hit.lineage);
        if (hit.found === 'yes') definite = true;
      }
    }
    let rows: Entry[] = [];
    for (let lv: Level | undefined = level; lv && !definite && rows.length === 0; lv = lv.parent) rows = lv.entries.filter((e) => e.name === name);
    return { columns: unionLineage(found), any: found.length > 0, rows };
  }

  /** Column `name` of `e`, or (a name it is not known to have) all of it. */
  #column(e: Entry, name: string, unqualified: boolean): ColumnLineage {
    const hit = this.#lookup(e, name, unqualified);
    return hit.found === 'no' ? wholeRow(e) : hit.lineage;
  }

  /** Column `name` of `e`: one of its named columns (`yes`), maybe one of a relation's or a record's columns (`maybe`), or none (`no`). */
  #lookup(e: Entry, name: string, unqualified: boolean): { found: 'yes' | 'maybe' | 'no'; lineage: ColumnLineage } {
    const named = e.columns.filter((s): s is { name?: string; lineage: ColumnLineage } => 'lineage' in s && s.name === name);
    if (named.length > 0) return { found: 'yes', lineage: unionLineage(named.map((s) => s.lineage)) };
    const parts: ColumnLineage[] = [];
    const several = e.columns.length > 1;
    for (const seg of e.columns) {
      if ('relation' in seg) parts.push({ sources: [relationSource(seg, name, unqualified || several ? { maybe: true } : {})] });
      else if ('any' in seg) parts.push(seg.any);
    }
    if (parts.length === 0) return { found: 'no', lineage: { sources: [] } };
    // A qualified name of a plain relation is one of its columns.
    return { found: unqualified || several ? 'maybe' : 'yes', lineage: unionLineage(parts) };
  }

  /** Whether a column reference is one PostgreSQL gives an origin: a column of a relation, directly or through a subquery's or CTE's plain column. */
  #plain(fields: string[], level: Level): boolean {
    const column = fields.at(-1)!;
    const plainIn = (e: Entry): boolean => {
      const named = e.columns.filter((s) => 'lineage' in s && s.name === column);
      if (named.length > 0) return named.every((s) => 'plain' in s && s.plain === true);
      return e.columns.some((s) => 'relation' in s) && !e.columns.some((s) => 'any' in s);
    };
    if (fields.length > 1) {
      const entries = this.#entryNamed(fields.slice(0, -1), level);
      return entries?.every(plainIn) === true;
    }
    for (let lv: Level | undefined = level; lv; lv = lv.parent) {
      // A lone name of a row source may be its whole row, which has no origin.
      if (lv.entries.some((e) => e.name === column)) return false;
      const having = lv.entries.filter((e) => e.columns.some((s) => !('lineage' in s) || s.name === column));
      if (having.length > 0) return having.every(plainIn);
    }
    return false;
  }

  /** The row sources `qualifier` (`a`, `schema.a`) names, innermost level first. */
  #entryNamed(qualifier: string[], level: Level): Entry[] | undefined {
    const name = qualifier.at(-1)!;
    const schema = qualifier.length > 1 ? qualifier.at(-2) : undefined;
    for (let lv: Level | undefined = level; lv; lv = lv.parent) {
      const hit = lv.entries.filter((e) => e.name === name && (schema === undefined || e.schema === undefined || e.schema === schema));
      if (hit.length > 0) return hit;
    }
    return undefined;
  }

  /** Everything in scope, for a reference this analysis cannot place. */
  #everything(level: Level): ColumnLineage {
    const parts: ColumnLineage[] = [];
    for (let lv: Level | undefined = level; lv; lv = lv.parent) parts.push(...lv.entries.map(wholeRow));
    return unionLineage(parts);
  }
}

/** A ColumnRef's fields, lower-case (`*` for a star). */
function refFields(ref: ColumnRef): string[] {
  return list(ref.fields).map((f) => {
    const [type, body] = unwrap(f);
    if (type === 'A_Star') return '*';
    return type === 'String' ? ident(body.sval) : '?';
  });
}

/** Every value of a row source. */
function wholeRow(e: Entry): ColumnLineage {
  return unionLineage(e.columns.map(segmentLineage));
}

/** Columns renamed by an alias list (the first ones, in order). */
function renamed(columns: LineageSegment[], aliases: string[]): LineageSegment[] {
  if (aliases.length === 0) return columns;
  const out: LineageSegment[] = [];
  let i = 0;
  for (const seg of columns) {
    if (i >= aliases.length) {
      out.push(seg);
    } else if ('lineage' in seg) {
      out.push({ name: ident(aliases[i++]), lineage: seg.lineage, ...(seg.plain ? { plain: true as const } : {}) });
    } else if ('relation' in seg) {
      // A relation's columns renamed by position: the k-th column of the relation.
      let from = seg.from ?? 0;
      while (i < aliases.length) out.push({ name: ident(aliases[i++]), lineage: { sources: [relationSource(seg, '*', { position: from++ })] }, plain: true });
      out.push({ ...seg, from });
    } else {
      while (i < aliases.length) out.push({ name: ident(aliases[i++]), lineage: seg.any });
      out.push(seg);
    }
  }
  return out;
}

/**
 * The columns of a query with several branches (a set operation) as one row source: column by
 * column when every branch lists its columns one by one and as many, else one record of everything.
 */
export function asRowSource(branches: LineageSegment[][]): LineageSegment[] {
  if (branches.length === 1) return branches[0]!;
  if (branches.length === 0) return [];
  const first = branches[0]!;
  const plain = branches.every((b) => b.length === first.length && b.every((s) => 'lineage' in s));
  if (!plain) return [{ any: unionLineage(branches.flat().map(segmentLineage)) }];
  return first.map((seg, i) => {
    const lineage = unionLineage(branches.map((b) => segmentLineage(b[i]!)));
    const name = 'lineage' in seg ? seg.name : undefined;
    return name !== undefined ? { name, lineage } : { lineage };
  });
}

function sameShape(a: LineageSegment[], b: LineageSegment[]): boolean {
  return a.length === b.length && a.every((s, i) => Object.keys(s).sort().join() === Object.keys(b[i]!).sort().join());
}

function unite(a: LineageSegment, b: LineageSegment): LineageSegment {
  if ('lineage' in a) return { ...a, lineage: unionLineage([a.lineage, segmentLineage(b)]) };
  if ('any' in a) return { any: unionLineage([a.any, segmentLineage(b)]) };
  return a;
}

function signature(columns: LineageSegment[]): string {
  return JSON.stringify(
    columns.map((s) => ('relation' in s ? s : { ...s, lineage: undefined, any: undefined, keys: segmentLineage(s).sources.map(sourceKey).sort(), opaque: segmentLineage(s).opaque === true })),
  );
}

/**
 * The name PostgreSQL gives a result column with no alias (FigureColname): a column's name, a
 * function's, `case`, `array`, ..., else `?column?`.
 */
function figureName(node: Node | undefined): string {
  const [type, body] = unwrap(node);
  switch (type) {
    case 'ColumnRef': {
      const last = refFields(body).at(-1);
      return last && last !== '*' ? last : '?column?';
    }
    case 'A_Indirection': {
      const field = list(body.indirection)
        .map((i) => nodeAs(i, 'String')?.sval)
        .filter((s) => s !== undefined)
        .at(-1);
      return field !== undefined ? ident(field) : figureName(body.arg);
    }
    case 'FuncCall':
      return ident(names(body.funcname).at(-1));
    case 'TypeCast': {
      const inner = figureName(body.arg);
      return inner !== '?column?' ? inner : ident(names(body.typeName?.names).at(-1));
    }
    case 'CollateClause':
      return figureName(body.arg);
    case 'SubLink': {
      if (body.subLinkType === 'EXISTS_SUBLINK') return 'exists';
      if (body.subLinkType === 'ARRAY_SUBLINK') return 'array';
      const sub = nodeAs(body.subselect, 'SelectStmt');
      const res = nodeAs(list(sub?.targetList)[0], 'ResTarget');
      return body.subLinkType === 'EXPR_SUBLINK' && res ? ident(res.name) || figureName(res.val) : '?column?';
    }
    case 'CaseExpr':
      return 'case';
    case 'A_ArrayExpr':
      return 'array';
    case 'RowExpr':
      return 'row';
    case 'CoalesceExpr':
      return 'coalesce';
    case 'MinMaxExpr':
      return body.op === 'IS_LEAST' ? 'least' : 'greatest';
    case 'NullIfExpr':
      return 'nullif';
    default:
      return '?column?';
  }
}
