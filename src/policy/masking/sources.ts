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
import type { ColumnLineage, ColumnSource, LineageSegment, RelationDdl, StatementLineage } from '../sql/analyze.js';
import type { ResolvedColumn } from './catalog.js';
import type { ColumnOrigin, MaskingRules } from './rules.js';

/** A relation a name may mean, as the catalog has it. */
export interface RelationCandidate {
  oid: number;
  schema: string;
  table: string;
  /** pg_class.relkind: `r` table, `p` partitioned, `f` foreign, `v` view, `m` materialized view. */
  kind: string;
  /** Its live columns in order: attribute number and name. */
  columns: Array<[number, string]>;
  inheritsFrom?: Array<{ schema: string; table: string }>;
}

/** What masking asks the catalog (the gateway's own connection) about relations. */
export interface SourceCatalog {
  /** The relations each name (`schema.table` or `table`, lower-case) may mean, in any schema the search path may pick. */
  relations(names: readonly string[]): Promise<ReadonlyMap<string, RelationCandidate[]>>;
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
  /** A view's columns, from its query. */
  view?: LineageSegment[];
  /** Relations it inherits from or is a partition of, whose rules apply to it. */
  inherits?: string[];
  /** ALTER TABLE: columns added, renamed (new name to old), or changed otherwise. */
  altered?: { added: string[]; renamed: Record<string, string> };
  /** ALTER ... RENAME TO: the name it had. */
  was?: string;
}

/**
 * What the session's open transaction did to relations, which the gateway's catalog connection
 * cannot see until it commits: by bare name (lower-case), the relations its DDL made or changed, and
 * whether it ran code hoop cannot read (a DO block, a procedure) that may have made others.
 */
export interface Overlay {
  get(bare: string): OverlayRelation | undefined;
  readonly opaque: boolean;
}

/** Nothing pending: a session outside a transaction. */
export const NO_OVERLAY: Overlay = { get: () => undefined, opaque: false };

/** What hoop could not establish about a result column, said to the client when it refuses. */
export class CannotTell extends Error {}

/** The bare name of a relation name (`schema.table` → `table`). */
export function bareName(relation: string): string {
  return relation.slice(relation.lastIndexOf('.') + 1);
}

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

  /** Whether the statement reads anything masked (its errors and notices may then quote it). @throws CannotTell */
  readsMasked(): Promise<boolean> {
    this.#readsMasked ??= (async () => {
      const st = this.#statement;
      if (!st) return false;
      const all = [...st.reads, ...st.branches.flat().flatMap((seg) => segmentSources(seg))];
      await this.#load([...all, ...st.relations.map((relation) => ({ relation, column: '' }))]);
      for (const s of all) if (await this.#source(s, 0)) return true;
      for (const r of st.relations) if (await this.#scansMasked(r)) return true;
      return false;
    })();
    return this.#readsMasked;
  }

  /** The live width of a relation a star expands, when every relation the name may mean has the same. */
  async width(relation: string): Promise<number | undefined> {
    await this.#load([{ relation, column: '*' }]);
    const o = this.#overlay.get(bareName(relation));
    if (o) return o.kind === 'table' && o.columns && !o.altered && (this.#known.get(relation) ?? []).length === 0 ? o.columns.length : undefined;
    const widths = new Set((this.#known.get(relation) ?? []).map((c) => c.columns.length));
    return widths.size === 1 ? [...widths][0] : undefined;
  }

  /** Looks up, in one round trip, the relations of these sources not looked up yet. */
  async #load(sources: readonly ColumnSource[]): Promise<void> {
    const wanted = [...new Set(sources.map((s) => s.relation))].filter((r) => !this.#known.has(r));
    if (wanted.length === 0) return;
    const found = await this.#catalog.relations(wanted);
    for (const name of wanted) this.#known.set(name, found.get(name) ?? []);
  }

  /** Whether `s` is (or, a whole row, holds) a masked column. */
  async #source(s: ColumnSource, depth: number): Promise<boolean> {
    if (depth > 16) throw new CannotTell(`${s.relation} is defined through more than 16 views`);
    await this.#load([s]);
    const rules = this.#rules;
    const candidates = this.#known.get(s.relation) ?? [];
    const overlay = this.#overlay.get(bareName(s.relation));
    if (candidates.length === 0 && !overlay) {
      if (this.#overlay.opaque) throw new CannotTell(`${s.relation} is not in the catalog: code this transaction ran (a DO block or procedure) may have made it`);
      throw new CannotTell(`${s.relation} is not in the catalog`);
    }
    if (overlay) {
      if (await this.#overlaySource(s, overlay, depth)) return true;
      if (overlay.was !== undefined && (await this.#source({ ...s, relation: overlay.was }, depth + 1))) return true;
    }
    for (const c of candidates) {
      // A view the transaction replaced is read as its DDL says (above), not as the catalog had it.
      if (overlay?.kind === 'view' && (c.kind === 'v' || c.kind === 'm')) continue;
      const columns = this.#columnsOf(c, s, overlay);
      if (columns === undefined) continue;
      for (const [attnum, column] of columns) {
        if (c.kind === 'v' || c.kind === 'm') {
          if (await this.#viewColumnMasked(c, attnum, column, depth)) return true;
        } else if (rules.readsMasked(origin(c, column)) || (overlay?.altered?.renamed[column] !== undefined && rules.readsMasked(origin(c, overlay.altered.renamed[column]!)))) return true;
      }
    }
    return false;
  }

  /** The columns of candidate `c` that source `s` names (none when it is `maybe` and `c` has no such column). */
  #columnsOf(c: RelationCandidate, s: ColumnSource, overlay: OverlayRelation | undefined): Array<[number, string]> | undefined {
    if (s.column === '*') {
      if (s.position === undefined) return c.columns;
      if (overlay?.altered) return c.columns; // its columns' places may have changed: all of them
      const at = c.columns[s.position];
      if (!at) throw new CannotTell(`${c.schema}.${c.table} has no column ${s.position + 1}`);
      return [at];
    }
    const hit = c.columns.filter(([, name]) => name.toLowerCase() === s.column);
    if (hit.length > 0) return hit;
    if (overlay?.altered && (overlay.altered.added.includes(s.column) || s.column in overlay.altered.renamed)) return [[0, s.column]];
    if (s.maybe) return undefined;
    // A column the catalog does not know of a table: one the open transaction added (judged by its name).
    if (c.kind !== 'v' && c.kind !== 'm') return [[0, s.column]];
    throw new CannotTell(`the view ${c.schema}.${c.table} has no column ${s.column} in the catalog`);
  }

  /** Whether a view's column may carry a masked value: one its definition computes by what it computes it from, one it passes by its table column. */
  async #viewColumnMasked(c: RelationCandidate, attnum: number, column: string, depth: number): Promise<boolean> {
    const rules = this.#rules;
    const r = await this.#catalog.viewColumn(c.oid, attnum);
    if (!r) throw new CannotTell(`the view ${c.schema}.${c.table} has no column ${column} in the catalog`);
    if (r.unresolved) throw new CannotTell(`the view ${c.schema}.${c.table} is being replaced in the open transaction by code hoop cannot read`);
    if (rules.forOrigin(r) !== undefined || rules.forName(column) !== undefined) return true;
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
    const byRules = (column: string): boolean =>
      rules.columnsOfSqlTable(s.relation).has(column) ||
      rules.columnsOfSqlTable(s.relation).has('*') ||
      rules.forName(column) !== undefined ||
      (o.inherits ?? []).some((p) => rules.columnsOfSqlTable(p).has(column) || rules.columnsOfSqlTable(p).has('*'));
    if (o.kind === 'view') {
      const columns = o.view ?? [];
      const picked = pickColumns(columns, s);
      if (picked === undefined) {
        if (s.maybe) return false;
        throw new CannotTell(`the view ${s.relation} made in this transaction has no column ${s.column}`);
      }
      if (picked.some((seg) => (!('lineage' in seg) || seg.name === undefined ? false : rules.forName(seg.name) !== undefined))) return true;
      for (const seg of picked) {
        const l = 'lineage' in seg ? seg.lineage : 'any' in seg ? seg.any : { sources: [{ relation: seg.relation, column: '*' }] };
        for (const inner of l.sources) if (await this.#source(inner, depth + 1)) return true;
        if (l.opaque) return true;
      }
      return false;
    }
    if (s.column !== '*') return byRules(s.column) || (o.altered?.renamed[s.column] !== undefined && byRules(o.altered.renamed[s.column]!));
    if (s.position !== undefined && o.columns && !o.altered) return byRules(o.columns[s.position] ?? '*');
    // A whole row: any of its columns.
    if (rules.columnsOfSqlTable(s.relation).size > 0 || (o.inherits ?? []).some((p) => rules.columnsOfSqlTable(p).size > 0)) return true;
    const known = [...(o.columns ?? []), ...(o.altered?.added ?? [])];
    if (known.some((c) => rules.forName(c) !== undefined)) return true;
    if (rules.hasNameRules && !o.columns && (this.#known.get(s.relation) ?? []).length === 0) throw new CannotTell(`the columns of ${s.relation}, made in this transaction, are not known to hoop`);
    return false;
  }

  /** Whether scanning a relation evaluates a masked value: a view (or materialized view) that reads one anywhere. */
  async #scansMasked(relation: string): Promise<boolean> {
    const o = this.#overlay.get(bareName(relation));
    if (o?.kind === 'view') {
      for (const seg of o.view ?? []) for (const inner of segmentSources(seg)) if (await this.#source(inner, 1)) return true;
    }
    if (o?.kind === 'view') return false;
    for (const c of this.#known.get(relation) ?? []) {
      if ((c.kind === 'v' || c.kind === 'm') && (await this.#catalog.viewReads(c.oid)).some((r) => this.#rules.readsMasked(r))) return true;
    }
    return false;
  }
}

/** The sources a run of columns carries. */
function segmentSources(seg: LineageSegment): ColumnSource[] {
  if ('relation' in seg) return [{ relation: seg.relation, column: '*' }];
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
export async function alignedLineage(branches: readonly LineageSegment[][], n: number, width: (relation: string) => Promise<number | undefined>): Promise<ColumnLineage[]> {
  const out: ColumnSource[][] = Array.from({ length: n }, () => []);
  const opaque: boolean[] = new Array(n).fill(false);
  const add = (i: number, l: ColumnLineage): void => {
    out[i]!.push(...l.sources);
    if (l.opaque) opaque[i] = true;
  };
  for (const branch of branches) {
    const widths = await Promise.all(branch.map(async (seg) => ('lineage' in seg ? 1 : 'relation' in seg ? ((await width(seg.relation)) ?? -1) - (seg.from ?? 0) : -1)));
    const lineages = branch.map(segLineageAt);
    const known = widths.every((w) => w >= 0);
    const total = widths.reduce((a, w) => a + Math.max(w, 0), 0);
    if (known && total === n) {
      let at = 0;
      branch.forEach((_, k) => {
        for (let j = 0; j < widths[k]!; j++) add(at + j, lineages[k]!(j));
        at += widths[k]!;
      });
      continue;
    }
    const unknown = widths.map((w, k) => (w < 0 ? k : -1)).filter((k) => k >= 0);
    if (known || total > n || unknown.length === 0) {
      // Not as wide as the result (a join USING merges columns): every column may be any of it.
      const all = unionOf(branch.map((seg) => lineages[branch.indexOf(seg)]!(-1)));
      for (let i = 0; i < n; i++) add(i, all);
      continue;
    }
    const firstUnknown = unknown[0]!;
    const lastUnknown = unknown.at(-1)!;
    let at = 0;
    for (let k = 0; k < firstUnknown; k++) for (let j = 0; j < widths[k]!; j++) add(at++, lineages[k]!(j));
    let back = n;
    for (let k = branch.length - 1; k > lastUnknown; k--) for (let j = widths[k]! - 1; j >= 0; j--) add(--back, lineages[k]!(j));
    const middle = unionOf(branch.slice(firstUnknown, lastUnknown + 1).map((_, k) => lineages[firstUnknown + k]!(-1)));
    for (let i = at; i < back; i++) add(i, middle);
  }
  return out.map((sources, i) => (opaque[i] ? { sources, opaque: true } : { sources }));
}

/** The lineage of a segment's `j`-th column (-1: any of them). */
function segLineageAt(seg: LineageSegment): (j: number) => ColumnLineage {
  if ('lineage' in seg) return () => seg.lineage;
  if ('any' in seg) return () => seg.any;
  return (j) => ({ sources: [{ relation: seg.relation, column: '*', ...(j >= 0 ? { position: (seg.from ?? 0) + j } : {}) }] });
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
  readonly #byBare = new Map<string, OverlayRelation>();
  #opaque = false;

  get opaque(): boolean {
    return this.#opaque;
  }

  /** Whether the open transaction changed any relation's shape. */
  get empty(): boolean {
    return this.#byBare.size === 0 && !this.#opaque;
  }

  get(bare: string): OverlayRelation | undefined {
    return this.#byBare.get(bare);
  }

  /** A statement that made or changed a relation completed. */
  add(ddl: RelationDdl): void {
    const bare = bareName(ddl.relation);
    const had = this.#byBare.get(bare);
    switch (ddl.kind) {
      case 'table':
        this.#byBare.set(bare, { kind: 'table', ...(ddl.columns ? { columns: ddl.columns } : {}), ...(ddl.inherits ? { inherits: ddl.inherits } : {}) });
        return;
      case 'view':
        this.#byBare.set(bare, { kind: 'view', view: ddl.view ?? [] });
        return;
      case 'altered': {
        const base = had ?? { kind: 'table' as const };
        const altered = { added: [...(base.altered?.added ?? []), ...(ddl.added ?? [])], renamed: { ...base.altered?.renamed, ...ddl.renamed } };
        this.#byBare.set(bare, { ...base, altered });
        return;
      }
      case 'renamed': {
        const was = ddl.was ?? '';
        const old = this.#byBare.get(bareName(was));
        this.#byBare.set(bare, { ...(old ?? { kind: 'table' as const }), was });
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
    this.#byBare.clear();
    this.#opaque = false;
  }
}
