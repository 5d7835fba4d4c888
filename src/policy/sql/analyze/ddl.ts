/**
 * What a statement does to the shape of a relation (`StatementFacts.ddl`): the table or view it
 * creates (its columns, what it inherits, a view's lineage), the columns an ALTER TABLE adds or
 * renames (and what a column it adds or recomputes is computed from), the name a RENAME or SET SCHEMA gives. Masking reads it for relations the session's open
 * transaction made or changed, which the gateway's own catalog connection cannot see yet.
 *
 * @see https://www.postgresql.org/docs/17/sql-createtable.html
 * @see https://www.postgresql.org/docs/17/sql-altertable.html
 */
import type { RangeVar } from 'libpg-query';
import type { RelationDdl, RelationName, StatementLineage } from './facts.js';
import { list, names, nodeAs, type Tagged } from './ast.js';
import { asRowSource } from './lineage.js';

function relationName(rv: RangeVar | undefined): RelationName | undefined {
  if (!rv?.relname) return undefined;
  return { ...(rv.schemaname ? { schema: rv.schemaname } : {}), relation: rv.relname };
}

/** Renames of a relation's parts that are no column: its constraints, triggers, policies, rules. (`ALTER INDEX … RENAME` renames any relation, a table too: it is a relation's rename.) */
const NOT_A_COLUMN = new Set(['OBJECT_TABCONSTRAINT', 'OBJECT_DOMCONSTRAINT', 'OBJECT_TRIGGER', 'OBJECT_POLICY', 'OBJECT_RULE']);

/** What `node` does to a relation's shape, if anything (`lineage`: its query's, for CREATE VIEW / TABLE AS / SELECT INTO). */
export function relationDdl(node: Tagged, lineage: StatementLineage | undefined): RelationDdl | undefined {
  switch (node[0]) {
    case 'CreateStmt': {
      const relation = relationName(node[1].relation);
      if (!relation) return undefined;
      const inherits = list(node[1].inhRelations)
        .map((r) => relationName(nodeAs(r, 'RangeVar')))
        .filter((r) => r !== undefined);
      const elements = list(node[1].tableElts);
      const columns = elements.map((e) => nodeAs(e, 'ColumnDef')?.colname).filter((c) => c !== undefined);
      // LIKE and a parent add columns the DDL does not list: LIKE's are the named relation's (`like`), looked up as it is read.
      const like = elements.map((e) => relationName(nodeAs(e, 'TableLikeClause')?.relation)).filter((r) => r !== undefined);
      const complete = inherits.length === 0 && like.length === 0 && !node[1].ofTypename;
      const likeOnly = inherits.length === 0 && like.length === elements.filter((e) => nodeAs(e, 'TableLikeClause')).length && !node[1].ofTypename;
      return {
        relation,
        kind: 'table',
        ...(complete ? { columns } : {}),
        ...(like.length > 0 && likeOnly ? { like, listed: columns } : {}),
        ...(inherits.length > 0 ? { inherits } : {}),
      };
    }
    case 'CreateTableAsStmt':
    case 'SelectStmt': {
      const into = node[0] === 'CreateTableAsStmt' ? node[1].into : node[1].intoClause;
      const relation = relationName(into?.rel);
      if (!relation || !lineage) return undefined;
      const source = asRowSource(lineage.branches);
      // A table made by a query holds what the query computed: masking reads it as it reads a view of that query.
      return { relation, kind: 'view', view: source };
    }
    case 'ViewStmt': {
      const relation = relationName(node[1].view);
      return relation && lineage ? { relation, kind: 'view', view: asRowSource(lineage.branches) } : undefined;
    }
    case 'AlterTableStmt': {
      const relation = relationName(node[1].relation);
      if (!relation) return undefined;
      const added: string[] = [];
      const computed: Record<string, string[]> = {};
      for (const item of list(node[1].cmds)) {
        const cmd = nodeAs(item, 'AlterTableCmd');
        const def = nodeAs(cmd?.def, 'ColumnDef');
        if (cmd?.subtype === 'AT_AddColumn' && def?.colname) {
          added.push(def.colname);
          // GENERATED … AS and a DEFAULT are evaluated over every row the table holds, and stored.
          const exprs = [def.raw_default, ...list(def.constraints).map((c) => nodeAs(c, 'Constraint')?.raw_expr)].filter((e) => e !== undefined);
          if (exprs.length > 0) computed[def.colname] = exprs.flatMap(columnRefs);
        } else if (cmd?.subtype === 'AT_SetExpression' && cmd.name) computed[cmd.name] = columnRefs(cmd.def);
        else if (cmd?.subtype === 'AT_AlterColumnType' && cmd.name && def?.raw_default) computed[cmd.name] = columnRefs(def.raw_default);
      }
      return { relation, kind: 'altered', added, renamed: {}, ...(Object.keys(computed).length > 0 ? { computed } : {}) };
    }
    case 'RenameStmt': {
      if (node[1].renameType === 'OBJECT_SCHEMA' && node[1].newname) return { relation: { relation: node[1].newname }, kind: 'schema' };
      const relation = relationName(node[1].relation);
      if (!relation || !node[1].newname) return undefined;
      const newname = node[1].newname;
      // A table's row type is a composite type: ALTER TYPE t RENAME ATTRIBUTE renames t's column.
      if ((node[1].renameType === 'OBJECT_COLUMN' || node[1].renameType === 'OBJECT_ATTRIBUTE') && node[1].subname)
        return { relation, kind: 'altered', added: [], renamed: { [newname]: node[1].subname } };
      // What renames no column nor relation; any other rename of a relation (one a later PostgreSQL adds) counts as the relation's.
      if (NOT_A_COLUMN.has(node[1].renameType ?? '')) return undefined;
      return { relation: { ...relation, relation: newname }, kind: 'renamed', was: relation };
    }
    case 'AlterObjectSchemaStmt': {
      // An extension moved takes its member tables (ALTER EXTENSION … ADD TABLE) to another schema: as a schema renamed.
      if (node[1].objectType === 'OBJECT_EXTENSION' && node[1].newschema) return { relation: { relation: node[1].newschema }, kind: 'schema' };
      const relation = relationName(node[1].relation);
      if (!relation || !node[1].newschema) return undefined;
      return { relation: { schema: node[1].newschema, relation: relation.relation }, kind: 'renamed', was: relation };
    }
    default:
      return undefined;
  }
}

/** The last name of every column reference in `node` (`*` for a whole row). */
export function columnRefs(node: unknown): string[] {
  if (node === null || typeof node !== 'object') return [];
  const ref = (node as { ColumnRef?: { fields?: unknown[] } }).ColumnRef;
  if (ref) return [names(ref.fields as never).at(-1) ?? '*'];
  return Object.values(node).flatMap(columnRefs);
}

/**
 * Whether `node` stores a default to compute later, or over the rows a column is added to: a
 * column's DEFAULT (CREATE TABLE, ADD COLUMN, SET DEFAULT) or a domain's.
 */
export function storesDefault(node: Tagged): boolean {
  if (!['CreateStmt', 'AlterTableStmt', 'CreateDomainStmt', 'AlterDomainStmt'].includes(node[0])) return false;
  if (node[0] === 'AlterDomainStmt') return (node[1] as { subtype?: string; def?: unknown }).subtype === 'T' && (node[1] as { def?: unknown }).def !== undefined;
  const seen: unknown[] = [node[1]];
  while (seen.length > 0) {
    const at = seen.pop();
    if (Array.isArray(at)) seen.push(...at);
    else if (at !== null && typeof at === 'object') {
      const o = at as { contype?: string; subtype?: string; def?: unknown };
      if (o.contype === 'CONSTR_DEFAULT' || (o.subtype === 'AT_ColumnDefault' && o.def !== undefined)) return true;
      seen.push(...Object.values(o));
    }
  }
  return false;
}
