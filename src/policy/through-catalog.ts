/**
 * Statements as the catalog shows them (see StatementJudge.judgeUnder): each relation a statement
 * names with what is under it, and a write that a rule or a foreign key's action turns into
 * other commands as any write there.
 */
import { WRITES_BEYOND } from './catalog-changes.js';
import type { RelationName, StatementFacts } from './sql/analyze.js';
import type { StatementKind } from './schema.js';

/** The writes a write through a rule or a foreign key's action may become. */
const ANY_WRITE: ReadonlySet<StatementKind> = new Set<StatementKind>(['insert', 'update', 'delete']);

/**
 * `statements` with what `under` says is under each relation they name among their tables (`*`
 * for a name it cannot tell, {@link WRITES_BEYOND} for a write that reaches further by other
 * commands); undefined when that changes none. `unknown`: the names judged as any table.
 */
export function throughCatalog(statements: readonly StatementFacts[], under: (name: string) => readonly string[]): { statements: StatementFacts[]; unknown: Set<string> } | undefined {
  const unknown = new Set<string>();
  let widened = false;
  const through = statements.map((st) => {
    // What a statement makes is what it says (CREATE TABLE / VIEW / TABLE AS): the catalog does not have it yet.
    const made = st.ddl?.kind === 'table' || st.ddl?.kind === 'view' ? relationName(st.ddl.relation) : undefined;
    let further = false;
    const more = st.tables.flatMap((t) => {
      if (t === made) return [];
      const beyond = under(t);
      if (beyond.includes('*')) unknown.add(t);
      if (!beyond.includes(WRITES_BEYOND)) return beyond;
      further = true;
      return beyond.filter((b) => b !== WRITES_BEYOND);
    });
    // Its rows are then counted by the server's statistics, not its tag.
    const writes = further && st.kinds.some((k) => ANY_WRITE.has(k));
    if (more.length === 0 && !writes) return st;
    widened = true;
    // What it reads through a relation is read too.
    const reads = st.reads ? [...new Set([...st.reads, ...st.reads.flatMap((t) => (t === made ? [] : under(t).filter((b) => b !== WRITES_BEYOND)))])] : undefined;
    return {
      ...st,
      tables: [...new Set([...st.tables, ...more])],
      ...(reads ? { reads } : {}),
      ...(writes ? { kinds: [...new Set([...st.kinds, ...ANY_WRITE])], writesBeyond: true } : {}),
    };
  });
  return widened ? { statements: through, unknown } : undefined;
}

/** A relation's name as a statement's tables hold it: `schema.relation` or `relation`, lower-case. */
function relationName(r: RelationName): string {
  return (r.schema ? `${r.schema}.${r.relation}` : r.relation).toLowerCase();
}
