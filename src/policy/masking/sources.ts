/**
 * Whether a value computed from some columns may carry a masked value: the columns a result
 * column's lineage names (see `sql/analyze/lineage.ts`), looked up as the session sees them (the
 * catalog, and what the session's open transaction created or changed: {@link Overlay}), judged by
 * the rules. A column computed from nothing masked is exact; one computed from a masked column is
 * masked; when a column a lineage names cannot be found, the answer is {@link CannotTell}, never a
 * guess.
 *
 * @see https://www.postgresql.org/docs/current/catalog-pg-class.html
 * @see https://www.postgresql.org/docs/current/catalog-pg-attribute.html
 */
import { ErrorCode, HoopError } from '../../errors.js';
import type { ColumnLineage, ColumnSource, LineageSegment, RelationDdl, RelationName, StatementLineage } from '../sql/analyze.js';
import type { ResolvedColumn } from './catalog.js';
import type { ColumnOrigin, MaskingRules } from './rules.js';
import type { MaskStrategy } from './strategies.js';

/** A relation a name may mean, as the catalog has it. */
export interface RelationCandidate {
  oid: number;
  schema: string;
  table: string;
  /** pg_class.relkind: `r` table, `p` partitioned, `f` foreign, `v` view, `m` materialized view. */
  kind: string;
  /** Its live columns in order: attribute number and name. */
  columns: Array<[number, string]>;
  /** Its stored generated columns, by name: the columns of its own each is computed from. */
  generated?: Record<string, string[]>;
  inheritsFrom?: Array<{ schema: string; table: string }>;
}

/** What masking asks the catalog (the gateway's own connection) about relations. */
export interface SourceCatalog {
  /** The relations each name may mean (in any schema the search path may pick, without one), by {@link relationKey}. */
  relations(names: readonly RelationName[]): Promise<ReadonlyMap<string, RelationCandidate[]>>;
  /** A view's column, traced to what it reads (see `PgCatalogResolver`). */
  viewColumn(oid: number, attnum: number): Promise<ResolvedColumn | undefined>;
  /** Every column a view reads anywhere (its WHERE and joins too), through other views, as it is defined now. */
  viewReads(oid: number): Promise<ColumnOrigin[]>;
}

/** A relation the session's open transaction created, replaced or changed, as its DDL says (see {@link Overlay}). */
export interface OverlayRelation {
  kind: 'table' | 'view';
  /** A table's columns in order, when its DDL lists them all. */
  columns?: string[];
  /** A table made `LIKE` other relations: theirs, and the columns it lists besides. */
  like?: { relations: RelationName[]; listed: string[] };
  /** A view's columns, from its query. */
  view?: LineageSegment[];
  /** Relations it inherits from or is a partition of, whose rules apply to it. */
  inherits?: RelationName[];
  /**
   * ALTER TABLE: columns added, renamed (new name to old), and computed over the table's rows
   * (GENERATED, DEFAULT, SET EXPRESSION, USING: the columns each one's expression read).
   */
  altered?: { added: string[]; renamed: Record<string, string>; computed?: Record<string, string[]> };
  /** ALTER ... RENAME TO: the name it had. */
  was?: RelationName;
}

/**
 * What the session's open transaction did to relations, which the gateway's catalog connection
 * cannot see until it commits: by name (without schema), the relations its DDL made or changed;
 * whether any relation's columns may have moved (an ALTER, which reaches a table's children too);
 * and whether it ran code hoop cannot read (a DO block, a procedure) that may have made others.
 */
export interface Overlay {
  get(name: string): OverlayRelation | undefined;
  readonly altered: boolean;
  readonly opaque: boolean;
  /** A schema was renamed: a name may now mean another relation than the catalog's connection sees. */
  readonly namesMoved?: boolean;
}

/** Nothing pending: a session outside a transaction. */
export const NO_OVERLAY: Overlay = { get: () => undefined, altered: false, opaque: false };

/** What hoop could not establish about a result column, said to the client when it refuses. */
export class CannotTell extends HoopError {
  constructor(message: string) {
    super(ErrorCode.ACCESS_DENIED, message);
  }
}

/** A name as `StatementFacts.tables` writes it (`schema.table` or `table`), split at its last dot. */
export function splitName(name: string): RelationName {
  const dot = name.lastIndexOf('.');
  return dot < 0 ? { relation: name } : { schema: name.slice(0, dot), relation: name.slice(dot + 1) };
}

/** A relation's name as SQL writes it, and as the rules take it (`schema.table`). */
export function sqlName(r: RelationName): string {
  return r.schema !== undefined ? `${r.schema}.${r.relation}` : r.relation;
}

/** How the catalog's answers are keyed: a name and its schema, apart (a relation's name may hold a dot). */
export function relationKey(r: RelationName): string {
  return `${r.schema ?? ''}\u0000${r.relation}`;
}

const isView = (c: RelationCandidate): boolean => c.kind === 'v' || c.kind === 'm';

/**
 * Judges lineages for one statement: the relations they name are looked up once (a catalog round
 * trip for all of them), then each column is judged. `opaque` columns carry what the statement
 * reads: masked when anything it reads is.
 */
export class SourceJudge {
  readonly #rules: MaskingRules;
  readonly #catalog: SourceCatalog;
  readonly #overlay: Overlay;
  readonly #statement: StatementLineage | undefined;
  readonly #known = new Map<string, RelationCandidate[]>();
  #readsMasked: Promise<boolean> | undefined;

  constructor(rules: MaskingRules, catalog: SourceCatalog, overlay: Overlay, statement: StatementLineage | undefined) {
    this.#rules = rules;
    this.#catalog = catalog;
    this.#overlay = overlay;
    this.#statement = statement;
  }

  /** Whether a value of this lineage may be a masked value. @throws CannotTell */
  async masked(lineage: ColumnLineage): Promise<boolean> {
    await this.#load(lineage.sources);
    for (const s of lineage.sources) if (await this.#source(s, 0)) return true;
    return lineage.opaque === true && this.readsMasked();
  }

  /**
   * The strategy of the one table column `s` names, as a result column of that column has by its
   * origin (its rule, or a name rule): what a plain column reference of a COPY or a subquery gets,
   * as SELECT gives it; undefined when `s` may name more than one column, a view's, or one the open
   * transaction changed (then the value is redacted whole).
   */
  async strategyOf(s: ColumnSource): Promise<MaskStrategy | undefined> {
    if (this.#overlay.get(s.relation) || this.#overlay.altered || this.#overlay.opaque || this.#overlay.namesMoved) return undefined;
    await this.#load([s]);
    const candidates = this.#known.get(relationKey(s)) ?? [];
    const c = candidates[0];
    if (candidates.length !== 1 || !c || isView(c)) return undefined;
    const column = s.column === '*' ? (s.position !== undefined ? c.columns[s.position]?.[1] : undefined) : c.columns.find(([, name]) => name === s.column)?.[1];
    if (column === undefined || c.generated?.[column]) return undefined;
    return this.#rules.forOrigin(origin(c, column)) ?? this.#rules.forName(column);
  }

  /** Whether the statement reads anything masked (its errors and notices may then quote it). @throws CannotTell */
  readsMasked(): Promise<boolean> {
    this.#readsMasked ??= (async () => {
      const st = this.#statement;
      if (!st) return false;
      const all = [...st.reads, ...st.branches.flat().flatMap(segmentSources)];
      await this.#load([...all, ...st.relations]);
      for (const s of all) if (await this.#source(s, 0)) return true;
      for (const r of st.relations) if (await this.#scansMasked(r)) return true;
      return false;
    })();
    return this.#readsMasked;
  }

  /**
   * Whether a whole row of a relation written through `r` holds a masked column: a view's row is
   * its base tables' (PostgreSQL quotes the base row a view's CHECK OPTION or a constraint
   * refused), found through every column the view reads; a table with rules of its own runs their
   * actions with the write, which may read anything (counted as masked). @throws CannotTell
   */
  async rowsMasked(r: RelationName): Promise<boolean> {
    if (await this.#source({ ...r, column: '*' }, 0)) return true;
    const o = this.#overlay.get(r.relation);
    if (o?.kind === 'view') throw new CannotTell(`${sqlName(r)} is a view this transaction made, whose base rows hoop cannot see`);
    for (const c of this.#known.get(relationKey(r)) ?? []) {
      // What its rewrite rules read: a view's query, a table's rules' actions (`DO ALSO …`), which run with the write.
      const reads = await this.#catalog.viewReads(c.oid);
      if (!isView(c)) {
        if (reads.length > 0) return true;
        continue;
      }
      const bases = new Map(reads.map((x) => [`${x.schema}.${x.table}`, x]));
      for (const b of bases.values()) if (await this.#source({ schema: b.schema, relation: b.table, column: '*' }, 1)) return true;
    }
    return false;
  }

  /**
   * The columns `COPY r TO` writes, in order (a table's, but its stored generated ones), when the
   * catalog has one table of that name that the open transaction did not change; else undefined.
   * @see https://www.postgresql.org/docs/current/sql-copy.html
   */
  async copiedColumns(r: RelationName): Promise<string[] | undefined> {
    if (this.#overlay.get(r.relation) || this.#overlay.altered || this.#overlay.opaque || this.#overlay.namesMoved) return undefined;
    await this.#load([r]);
    const candidates = this.#known.get(relationKey(r)) ?? [];
    const c = candidates[0];
    if (candidates.length !== 1 || !c || isView(c)) return undefined;
    return c.columns.flatMap(([, name]) => (c.generated?.[name] ? [] : [name]));
  }

  /**
   * The live width of a relation a star expands, when every relation the name may mean has the
   * same; undefined when not known (the open transaction changed a relation's columns: an ALTER
   * reaches a table's children too, which the catalog does not show yet).
   */
  async width(r: RelationName): Promise<number | undefined> {
    if (this.#overlay.altered || this.#overlay.opaque) return undefined;
    await this.#load([r]);
    const o = this.#overlay.get(r.relation);
    const candidates = this.#known.get(relationKey(r)) ?? [];
    if (o) {
      if (candidates.length > 0) return undefined;
      if (o.kind === 'table') return (o.columns ?? (o.like ? await this.#likeColumns(o.like) : undefined))?.length;
      const view = await this.#expanded(o.view ?? []);
      return view.every((seg) => 'lineage' in seg) ? view.length : undefined;
    }
    const widths = new Set(candidates.map((c) => c.columns.length));
    return widths.size === 1 ? [...widths][0] : undefined;
  }

  /** Looks up, in one round trip, the relations of these sources not looked up yet. */
  async #load(sources: ReadonlyArray<RelationName>): Promise<void> {
    const wanted = new Map<string, RelationName>();
    for (const s of sources) {
      const key = relationKey(s);
      if (!this.#known.has(key)) wanted.set(key, { ...(s.schema !== undefined ? { schema: s.schema } : {}), relation: s.relation });
    }
    if (wanted.size === 0) return;
    const found = await this.#catalog.relations([...wanted.values()]);
    for (const key of wanted.keys()) this.#known.set(key, found.get(key) ?? []);
  }

  /** Whether `s` is (or, a whole row, holds) a masked column. */
  async #source(s: ColumnSource, depth: number): Promise<boolean> {
    if (depth > 16) throw new CannotTell(`${sqlName(s)} is defined through more than 16 views`);
    if (this.#overlay.namesMoved) throw new CannotTell(`this transaction renamed a schema, so ${sqlName(s)} may name another relation than the catalog shows until it commits`);
    await this.#load([s]);
    const rules = this.#rules;
    const candidates = this.#known.get(relationKey(s)) ?? [];
    const overlay = this.#overlay.get(s.relation);
    if (candidates.length === 0 && !overlay) {
      if (this.#overlay.opaque) throw new CannotTell(`${sqlName(s)} is not in the catalog: code this transaction ran (a DO block or procedure) may have made it`);
      throw new CannotTell(`${sqlName(s)} is not in the catalog`);
    }
    if (overlay) {
      if (await this.#overlaySource(s, overlay, depth)) return true;
      const was = overlay.was;
      if (
        was !== undefined &&
        (await this.#source(
          { ...(was.schema !== undefined ? { schema: was.schema } : {}), relation: was.relation, column: s.column, ...(s.position !== undefined ? { position: s.position } : {}) },
          depth + 1,
        ))
      )
        return true;
    }
    for (const c of candidates) {
      const columns = this.#columnsOf(c, s, overlay);
      if (columns === undefined) continue;
      for (const [attnum, column] of columns) {
        if (isView(c)) {
          if (await this.#viewColumnMasked(c, attnum, column, depth, overlay?.kind === 'view')) return true;
        } else if (
          rules.readsMasked(origin(c, column)) ||
          (c.generated?.[column] ?? []).some((from) => rules.readsMasked(origin(c, from))) ||
          this.#computedMasked(overlay, column, (from) => rules.readsMasked(origin(c, from)) || (c.generated?.[from] ?? []).some((g) => rules.readsMasked(origin(c, g)))) ||
          (overlay?.altered?.renamed[column] !== undefined && rules.readsMasked(origin(c, overlay.altered.renamed[column]!)))
        )
          return true;
      }
    }
    return false;
  }

  /**
   * Whether a column the open transaction computed over the table's rows (ADD COLUMN … GENERATED or
   * DEFAULT, SET EXPRESSION, TYPE … USING) was computed from a masked one: it carries that column's
   * values under its own name. `masked` judges a column by the name it had (a rename followed back).
   */
  #computedMasked(o: OverlayRelation | undefined, column: string, masked: (from: string) => boolean): boolean {
    const computed = o?.altered?.computed;
    if (!computed) return false;
    const renamedFrom = o.altered!.renamed[column];
    const from = [...(computed[column] ?? []), ...(renamedFrom !== undefined ? (computed[renamedFrom] ?? []) : [])];
    return from.some((f) => f === '*' || masked(o.altered!.renamed[f] ?? f));
  }

  /** The columns of candidate `c` that source `s` names (none when it is `maybe` and `c` has no such column). */
  #columnsOf(c: RelationCandidate, s: ColumnSource, overlay: OverlayRelation | undefined): Array<[number, string]> | undefined {
    if (s.column === '*') {
      // A place is the catalog's only while the open transaction moved no relation's columns.
      if (s.position === undefined || this.#overlay.altered || this.#overlay.opaque) return c.columns;
      const at = c.columns[s.position];
      if (!at) throw new CannotTell(`${c.schema}.${c.table} has no column ${s.position + 1}`);
      return [at];
    }
    const hit = c.columns.filter(([, name]) => name === s.column);
    if (hit.length > 0) return hit;
    if (overlay?.altered && (overlay.altered.added.includes(s.column) || s.column in overlay.altered.renamed)) return [[0, s.column]];
    if (s.maybe || overlay?.kind === 'view') return undefined;
    // A column the catalog does not know of a table: one the open transaction added (judged by its name).
    if (!isView(c)) return [[0, s.column]];
    throw new CannotTell(`the view ${c.schema}.${c.table} has no column ${s.column} in the catalog`);
  }

  /**
   * Whether a view's column may carry a masked value: one its definition computes by what it
   * computes it from (any, where it calls a function of the database's own), one it passes by its table column. `overlaid`: the open transaction made a
   * view of this name, whose DDL judges it where this one is being replaced by the same session.
   */
  async #viewColumnMasked(c: RelationCandidate, attnum: number, column: string, depth: number, overlaid: boolean): Promise<boolean> {
    const rules = this.#rules;
    const r = await this.#catalog.viewColumn(c.oid, attnum);
    if (!r) throw new CannotTell(`the view ${c.schema}.${c.table} has no column ${column} in the catalog`);
    if (r.unresolved) {
      if (overlaid && !this.#overlay.opaque) return false;
      throw new CannotTell(`the view ${c.schema}.${c.table} is being replaced in the open transaction by code hoop cannot read`);
    }
    if (rules.forOrigin(r) !== undefined || rules.forName(column) !== undefined) return true;
    // Computed where the view calls a function of the database's own: it may carry any value.
    if (r.userCode !== undefined) return true;
    if (r.computedFrom && r.lineage && !r.lineage.opaque) {
      for (const s of r.lineage.sources) if (await this.#source(s, depth + 1)) return true;
      return false;
    }
    if (r.computedFrom) return r.computedFrom.some((o) => rules.readsMasked(o));
    if (r.base) return rules.readsMasked(r.base);
    return false;
  }

  /** A source in a relation the open transaction made or changed. */
  async #overlaySource(s: ColumnSource, o: OverlayRelation, depth: number): Promise<boolean> {
    const rules = this.#rules;
    const name = sqlName(s);
    const byRules = (column: string): boolean =>
      rules.columnsOfSqlTable(name).has(column.toLowerCase()) ||
      rules.columnsOfSqlTable(name).has('*') ||
      rules.forName(column) !== undefined ||
      (o.inherits ?? []).some((p) => rules.columnsOfSqlTable(sqlName(p)).has(column.toLowerCase()) || rules.columnsOfSqlTable(sqlName(p)).has('*'));
    if (o.kind === 'view') {
      const picked = pickColumns(await this.#expanded(o.view ?? []), s);
      if (picked === undefined) {
        if (s.maybe) return false;
        throw new CannotTell(`the view ${name} made in this transaction has no column ${s.column}`);
      }
      for (const seg of picked) {
        if ('lineage' in seg && seg.name !== undefined && rules.forName(seg.name) !== undefined) return true;
        const l = 'lineage' in seg ? seg.lineage : 'any' in seg ? seg.any : { sources: [{ ...seg, column: '*' }] };
        for (const inner of l.sources) if (await this.#source(inner, depth + 1)) return true;
        if (l.opaque) return true;
      }
      return false;
    }
    if (s.column !== '*') return byRules(s.column) || (o.altered?.renamed[s.column] !== undefined && byRules(o.altered.renamed[s.column]!)) || this.#computedMasked(o, s.column, byRules);
    const columns = o.columns ?? (o.like ? await this.#likeColumns(o.like) : undefined);
    if (s.position !== undefined && columns && !o.altered && !this.#overlay.altered) return byRules(columns[s.position] ?? '*');
    // A whole row: any of its columns.
    if (rules.columnsOfSqlTable(name).size > 0 || (o.inherits ?? []).some((p) => rules.columnsOfSqlTable(sqlName(p)).size > 0)) return true;
    const known = [...(columns ?? []), ...(o.altered?.added ?? [])];
    if (known.some((c) => rules.forName(c) !== undefined)) return true;
    if (rules.hasNameRules && !columns && (this.#known.get(relationKey(s)) ?? []).length === 0) throw new CannotTell(`the columns of ${name}, made in this transaction, are not known to hoop`);
    return false;
  }

  /**
   * A view's columns made in this transaction, each whole relation it passes (`select *`) spelt
   * out as the catalog has that relation's columns, so that a column of it is judged by what it is;
   * a relation the catalog does not have at one place stays whole.
   */
  async #expanded(view: LineageSegment[]): Promise<LineageSegment[]> {
    const whole = view.filter((seg) => 'relation' in seg) as Array<LineageSegment & RelationName>;
    if (whole.length === 0) return view;
    await this.#load(whole.map((r) => ({ ...(r.schema !== undefined ? { schema: r.schema } : {}), relation: r.relation, column: '*' })));
    return view.flatMap((seg): LineageSegment[] => {
      if (!('relation' in seg) || this.#overlay.get(seg.relation) || this.#overlay.altered) return [seg];
      const candidates = this.#known.get(relationKey(seg)) ?? [];
      if (candidates.length !== 1) return [seg];
      const at = { ...(seg.schema !== undefined ? { schema: seg.schema } : {}), relation: seg.relation };
      return candidates[0]!.columns.slice(seg.from ?? 0).map(([, column]) => ({ name: column, lineage: { sources: [{ ...at, column }] } }) as LineageSegment);
    });
  }

  /** The columns of a table made `LIKE` others: theirs (as the catalog or this transaction has them), then those it lists; undefined when one is not known. */
  async #likeColumns(like: NonNullable<OverlayRelation['like']>): Promise<string[] | undefined> {
    await this.#load(like.relations.map((r) => ({ ...r, column: '*' })));
    const out: string[] = [];
    for (const r of like.relations) {
      const made = this.#overlay.get(r.relation);
      const candidates = this.#known.get(relationKey(r)) ?? [];
      const columns = made?.columns ?? (made === undefined && candidates.length === 1 ? candidates[0]!.columns.map(([, name]) => name) : undefined);
      if (!columns) return undefined;
      out.push(...columns);
    }
    return [...out, ...like.listed];
  }

  /** Whether scanning a relation evaluates a masked value: a view (or materialized view) that reads one anywhere. */
  async #scansMasked(r: RelationName): Promise<boolean> {
    const o = this.#overlay.get(r.relation);
    if (o?.kind === 'view') {
      for (const seg of o.view ?? []) for (const inner of segmentSources(seg)) if (await this.#source(inner, 1)) return true;
    }
    for (const c of this.#known.get(relationKey(r)) ?? []) {
      if (isView(c) && (await this.#catalog.viewReads(c.oid)).some((x) => this.#rules.readsMasked(x))) return true;
    }
    return false;
  }
}

/** The sources a run of columns carries. */
function segmentSources(seg: LineageSegment): ColumnSource[] {
  if ('relation' in seg) return [{ ...(seg.schema !== undefined ? { schema: seg.schema } : {}), relation: seg.relation, column: '*' }];
  return 'any' in seg ? seg.any.sources : seg.lineage.sources;
}

/** The columns of a view made in this transaction that `s` names; undefined when none. */
function pickColumns(columns: LineageSegment[], s: ColumnSource): LineageSegment[] | undefined {
  if (s.column === '*' && s.position === undefined) return columns;
  if (s.column === '*') {
    let at = 0;
    for (const seg of columns) {
      if (!('lineage' in seg)) return [seg]; // a star inside: its places are unknown here
      if (at++ === s.position) return [seg];
    }
    return undefined;
  }
  const named = columns.filter((seg) => 'lineage' in seg && seg.name === s.column);
  if (named.length > 0) return named;
  const open = columns.filter((seg) => !('lineage' in seg));
  return open.length > 0 ? open : undefined;
}

function origin(c: RelationCandidate, column: string): ColumnOrigin {
  return { schema: c.schema, table: c.table, column, ...(c.inheritsFrom ? { inheritsFrom: c.inheritsFrom } : {}) };
}

/**
 * The lineage of each of a result's `n` columns, from its branches (see `StatementLineage`): a
 * relation's star is as wide as `width` says; runs whose width is not known are placed from both
 * ends, and a column between two of them carries all of what lies between. A branch that cannot
 * have `n` columns carries all of itself in each.
 */
export async function alignedLineage(branches: readonly LineageSegment[][], n: number, width: (r: RelationName) => Promise<number | undefined>): Promise<Array<ColumnLineage & { plain?: true }>> {
  const out: ColumnSource[][] = Array.from({ length: n }, () => []);
  const opaque: boolean[] = new Array(n).fill(false);
  // A column is plain when one branch gives it as a column reference (or a column of a relation), at its own place.
  const plain: boolean[] = new Array(n).fill(false);
  const add = (i: number, l: ColumnLineage, isPlain = false): void => {
    out[i]!.push(...l.sources);
    if (l.opaque) opaque[i] = true;
    plain[i] = isPlain && branches.length === 1 && l.sources.length === 1 && !l.opaque;
  };
  const plainAt = (seg: LineageSegment): boolean => 'relation' in seg || ('lineage' in seg && seg.plain === true);
  for (const branch of branches) {
    const widths = await Promise.all(branch.map(async (seg) => ('lineage' in seg ? 1 : 'relation' in seg ? ((await width(seg)) ?? -1) - (seg.from ?? 0) : -1)));
    const lineages = branch.map(segLineageAt);
    const known = widths.every((w) => w >= 0);
    const total = widths.reduce((a, w) => a + Math.max(w, 0), 0);
    if (known && total === n) {
      let at = 0;
      branch.forEach((_, k) => {
        for (let j = 0; j < widths[k]!; j++) add(at + j, lineages[k]!(j), plainAt(branch[k]!));
        at += widths[k]!;
      });
      continue;
    }
    const unknown = widths.map((w, k) => (w < 0 ? k : -1)).filter((k) => k >= 0);
    if (known || total > n || unknown.length === 0) {
      // Not as wide as the result (a join USING merges columns): every column may be any of it.
      const all = unionOf(lineages.map((l) => l(-1)));
      for (let i = 0; i < n; i++) add(i, all);
      continue;
    }
    const firstUnknown = unknown[0]!;
    const lastUnknown = unknown.at(-1)!;
    let at = 0;
    for (let k = 0; k < firstUnknown; k++) for (let j = 0; j < widths[k]!; j++) add(at++, lineages[k]!(j), plainAt(branch[k]!));
    let back = n;
    for (let k = branch.length - 1; k > lastUnknown; k--) for (let j = widths[k]! - 1; j >= 0; j--) add(--back, lineages[k]!(j), plainAt(branch[k]!));
    const middle = unionOf(lineages.slice(firstUnknown, lastUnknown + 1).map((l) => l(-1)));
    for (let i = at; i < back; i++) add(i, middle);
  }
  return out.map((sources, i) => ({ sources, ...(opaque[i] ? { opaque: true as const } : {}), ...(plain[i] ? { plain: true as const } : {}) }));
}

/** The lineage of a segment's `j`-th column (-1: any of them). */
function segLineageAt(seg: LineageSegment): (j: number) => ColumnLineage {
  if ('lineage' in seg) return () => seg.lineage;
  if ('any' in seg) return () => seg.any;
  const rel = { ...(seg.schema !== undefined ? { schema: seg.schema } : {}), relation: seg.relation };
  return (j) => ({ sources: [{ ...rel, column: '*', ...(j >= 0 ? { position: (seg.from ?? 0) + j } : {}) }] });
}

function unionOf(parts: readonly ColumnLineage[]): ColumnLineage {
  const sources = parts.flatMap((p) => p.sources);
  return parts.some((p) => p.opaque) ? { sources, opaque: true } : { sources };
}

/**
 * The {@link Overlay} of one session: the DDL of its open transaction, added as each statement
 * completes and dropped when the transaction ends (committed, the catalog shows it; rolled back, it
 * is gone).
 */
export class TransactionOverlay implements Overlay {
  readonly #byName = new Map<string, OverlayRelation>();
  #altered = false;
  #opaque = false;
  #namesMoved = false;

  get namesMoved(): boolean {
    return this.#namesMoved;
  }

  get opaque(): boolean {
    return this.#opaque;
  }

  get altered(): boolean {
    return this.#altered;
  }

  get(name: string): OverlayRelation | undefined {
    return this.#byName.get(name);
  }

  /** A statement that made or changed a relation completed. */
  add(ddl: RelationDdl): void {
    const name = ddl.relation.relation;
    const had = this.#byName.get(name);
    switch (ddl.kind) {
      case 'table':
        this.#byName.set(name, {
          kind: 'table',
          ...(ddl.columns ? { columns: ddl.columns } : {}),
          ...(ddl.like ? { like: { relations: ddl.like, listed: ddl.listed ?? [] } } : {}),
          ...(ddl.inherits ? { inherits: ddl.inherits } : {}),
        });
        return;
      case 'view':
        this.#byName.set(name, { kind: 'view', view: ddl.view ?? [] });
        return;
      case 'altered': {
        this.#altered = true;
        // A view made in this transaction renames its own columns; a table records what changed.
        if (had?.kind === 'view') {
          const renamed = Object.fromEntries(Object.entries(ddl.renamed ?? {}).map(([to, from]) => [from, to]));
          this.#byName.set(name, {
            ...had,
            view: (had.view ?? []).map((seg) => ('lineage' in seg && seg.name !== undefined && renamed[seg.name] !== undefined ? { ...seg, name: renamed[seg.name]! } : seg)),
          });
          return;
        }
        const base = had ?? { kind: 'table' as const };
        // What a column is computed from, by the names the columns had before this statement renamed any.
        const computed = { ...base.altered?.computed };
        for (const [column, from] of Object.entries(ddl.computed ?? {})) computed[column] = [...(computed[column] ?? []), ...from];
        const altered = { added: [...(base.altered?.added ?? []), ...(ddl.added ?? [])], renamed: { ...base.altered?.renamed, ...ddl.renamed }, computed };
        this.#byName.set(name, { ...base, altered });
        return;
      }
      case 'schema':
        this.#namesMoved = true;
        return;
      case 'renamed': {
        const was = ddl.was!;
        const old = this.#byName.get(was.relation);
        this.#byName.set(name, { ...(old ?? { kind: 'table' as const }), was });
        return;
      }
    }
  }

  /** Code hoop cannot read ran in the open transaction: relations may exist that no DDL here made. */
  markOpaque(): void {
    this.#opaque = true;
  }

  /** The transaction ended. */
  clear(): void {
    this.#byName.clear();
    this.#altered = false;
    this.#opaque = false;
    this.#namesMoved = false;
  }
}
