/**
 * Which fields of a raw PostgreSQL parse tree hold a struct of a known type *without* the
 * `{ "TypeName": {...} }` wrapper.
 *
 * libpg_query's JSON output wraps every generic `Node *` field in an object with one key (the
 * node's type), but fields declared with a concrete struct type (`RangeVar *relation`,
 * `WithClause *withClause`, `SelectStmt *larg`, ...) are written bare. A walker that only
 * recognised wrapped nodes would miss `INSERT INTO t` or the right arm of a `UNION`, so this
 * table names those fields. It covers the node types that occur in raw (not analysed) parse
 * trees and that can lead to a table or a function call; fields of other struct types (Alias,
 * TypeName, RoleSpec, ...) are still walked generically.
 *
 * The table is checked against `@pgsql/types`: each key is a node type, each field one of its
 * fields, each value a node type.
 *
 * @see https://github.com/pganalyze/libpg_query (JSON output of the raw parse tree, PostgreSQL 17)
 * @see https://github.com/postgres/postgres/blob/REL_17_STABLE/src/include/nodes/parsenodes.h
 */
import type { NodeOf, NodeTag } from './ast.js';

/** Node types, each with its fields that hold a bare struct and that struct's node type. */
type BareFields = { readonly [K in NodeTag]?: { readonly [F in keyof NodeOf<K>]?: NodeTag } };

export const BARE_FIELDS: Readonly<Record<string, Readonly<Record<string, NodeTag>>>> = {
  IntoClause: { rel: 'RangeVar' },
  ColumnDef: { identitySequence: 'RangeVar' },
  TableLikeClause: { relation: 'RangeVar' },
  PartitionCmd: { name: 'RangeVar' },
  FuncCall: { over: 'WindowDef' },
  InsertStmt: { relation: 'RangeVar', onConflictClause: 'OnConflictClause', withClause: 'WithClause' },
  DeleteStmt: { relation: 'RangeVar', withClause: 'WithClause' },
  UpdateStmt: { relation: 'RangeVar', withClause: 'WithClause' },
  MergeStmt: { relation: 'RangeVar', withClause: 'WithClause' },
  SelectStmt: { intoClause: 'IntoClause', withClause: 'WithClause', larg: 'SelectStmt', rarg: 'SelectStmt' },
  PLAssignStmt: { val: 'SelectStmt' },
  AlterTableStmt: { relation: 'RangeVar' },
  AlterDefaultPrivilegesStmt: { action: 'GrantStmt' },
  CopyStmt: { relation: 'RangeVar' },
  CreateStmt: { relation: 'RangeVar' },
  Constraint: { pktable: 'RangeVar' },
  CreateForeignTableStmt: { base: 'CreateStmt' },
  CreatePolicyStmt: { table: 'RangeVar' },
  AlterPolicyStmt: { table: 'RangeVar' },
  CreateTrigStmt: { relation: 'RangeVar', constrrel: 'RangeVar' },
  AlterRoleSetStmt: { setstmt: 'VariableSetStmt' },
  CreateSeqStmt: { sequence: 'RangeVar' },
  AlterSeqStmt: { sequence: 'RangeVar' },
  IndexStmt: { relation: 'RangeVar' },
  CallStmt: { funccall: 'FuncCall' },
  RenameStmt: { relation: 'RangeVar' },
  AlterObjectDependsStmt: { relation: 'RangeVar' },
  AlterObjectSchemaStmt: { relation: 'RangeVar' },
  AlterOwnerStmt: { relation: 'RangeVar' },
  RuleStmt: { relation: 'RangeVar' },
  CompositeTypeStmt: { typevar: 'RangeVar' },
  ViewStmt: { view: 'RangeVar' },
  AlterDatabaseSetStmt: { setstmt: 'VariableSetStmt' },
  AlterSystemStmt: { setstmt: 'VariableSetStmt' },
  ClusterStmt: { relation: 'RangeVar' },
  VacuumRelation: { relation: 'RangeVar' },
  CreateTableAsStmt: { into: 'IntoClause' },
  RefreshMatViewStmt: { relation: 'RangeVar' },
  ReindexStmt: { relation: 'RangeVar' },
  PublicationTable: { relation: 'RangeVar' },
  PublicationObjSpec: { pubtable: 'PublicationTable' },
  JsonArgument: { val: 'JsonValueExpr' },
  JsonFuncExpr: { context_item: 'JsonValueExpr' },
  JsonTable: { context_item: 'JsonValueExpr' },
  JsonKeyValue: { value: 'JsonValueExpr' },
  JsonParseExpr: { expr: 'JsonValueExpr' },
  JsonSerializeExpr: { expr: 'JsonValueExpr' },
  JsonObjectAgg: { arg: 'JsonKeyValue', constructor: 'JsonAggConstructor' },
  JsonArrayAgg: { arg: 'JsonValueExpr', constructor: 'JsonAggConstructor' },
  JsonAggConstructor: { over: 'WindowDef' },
} satisfies BareFields;
