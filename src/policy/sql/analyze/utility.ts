/**
 * Utility statements (DDL, GRANT, LOCK, DO, CALL, DISCARD, ...): their kind as rules name it, the
 * tables they name, and what they store to run later (a view's query, a function's body or SET
 * clause, a rule's actions), which is walked as not running now.
 *
 * @see https://www.postgresql.org/docs/17/sql-commands.html
 * @see https://www.postgresql.org/docs/17/ddl.html
 */
import type { AlterTableStmt, DropStmt, GrantStmt, LockStmt } from 'libpg-query';
import type { Acc, Ctx } from './acc.js';
import { list, type NodeTag, names, nodeAs, type Tagged } from './ast.js';
import { LOCK_MODES, type StatementKind } from './facts.js';
import { columnRefs } from './ddl.js';
import { functionSettings, readsPgSettings, settingChanged } from './settings.js';
import { objectTableName, TABLE_OBJECTS } from './tables.js';
import { walkFields } from './walk.js';

/** The kinds of utility statements whose name does not say it (`Create...`, `Alter...`, `Drop...`). */
const FIXED_KINDS: Readonly<Partial<Record<NodeTag, StatementKind>>> = {
  TruncateStmt: 'truncate',
  TransactionStmt: 'transaction',
  LockStmt: 'lock',
  ListenStmt: 'listen',
  UnlistenStmt: 'listen',
  NotifyStmt: 'notify',
  VacuumStmt: 'vacuum',
  FetchStmt: 'cursor',
  ClosePortalStmt: 'cursor',
  DeallocateStmt: 'deallocate',
  ConstraintsSetStmt: 'set',
  VariableShowStmt: 'other',
  CheckPointStmt: 'other',
  LoadStmt: 'other',
  DiscardStmt: 'other',
  IndexStmt: 'create',
  RuleStmt: 'create',
  DefineStmt: 'create',
  CompositeTypeStmt: 'create',
  ImportForeignSchemaStmt: 'create',
  CreatedbStmt: 'create',
  RenameStmt: 'alter',
  CommentStmt: 'alter',
  SecLabelStmt: 'alter',
  ClusterStmt: 'alter',
  ReindexStmt: 'alter',
  RefreshMatViewStmt: 'alter',
  ReassignOwnedStmt: 'alter',
  AlterDefaultPrivilegesStmt: 'alter',
  DropOwnedStmt: 'drop',
  DropdbStmt: 'drop',
};

/**
 * Foreign data (SQL/MED): a foreign table reads rows a server fetches from elsewhere, this very
 * database too (postgres_fdw over a loopback server), under its own name, where no rule on the
 * table it reads follows them. Making one, or a server or user mapping it would read through, is
 * refused with masking rules (`code`).
 * @see https://www.postgresql.org/docs/17/ddl-foreign-data.html
 */
const FOREIGN_DATA: Readonly<Partial<Record<NodeTag, string>>> = {
  CreateForeignTableStmt: 'a foreign table made',
  ImportForeignSchemaStmt: 'a foreign schema imported',
  CreateForeignServerStmt: 'a foreign server made',
  AlterForeignServerStmt: "a foreign server's options changed",
  CreateUserMappingStmt: 'a user mapping made',
  AlterUserMappingStmt: "a user mapping's options changed",
  CreateFdwStmt: 'a foreign-data wrapper made',
  AlterFdwStmt: 'a foreign-data wrapper changed',
};

/** The kind of a utility statement by its node type. */
function kindOfUtility(type: NodeTag): StatementKind {
  const fixed = FIXED_KINDS[type];
  if (fixed) return fixed;
  if (type.startsWith('Create')) return 'create';
  if (type.startsWith('Alter')) return 'alter';
  if (type.startsWith('Drop')) return 'drop';
  return 'other';
}

/**
 * What an ALTER TABLE does to the rows it holds, as kinds: a column retyped `USING` an expression other than itself, or
 * a generated column's expression set, writes every row (`update`, reaching every row: `missingWhere`); a column
 * dropped discards every row's value (`drop`). A rule on writes then meets it as it meets an UPDATE with no WHERE.
 */
function alterEffects(stmt: AlterTableStmt, acc: Acc, ctx: Ctx): void {
  for (const item of list(stmt.cmds)) {
    const cmd = nodeAs(item, 'AlterTableCmd');
    const using = cmd?.subtype === 'AT_AlterColumnType' ? nodeAs(cmd.def, 'ColumnDef')?.raw_default : undefined;
    const rewrites =
      (using !== undefined && !(columnRefs(using).length === 1 && columnRefs(using)[0] === cmd!.name && nodeAs(using, 'ColumnRef') !== undefined)) || cmd?.subtype === 'AT_SetExpression';
    if (rewrites) {
      acc.kind('update', ctx);
      if (ctx.runs) acc.missingWhere = true;
    }
    if (cmd?.subtype === 'AT_DropColumn') acc.kind('drop', ctx);
  }
}

/**
 * What an ALTER TABLE does to stored values that masking cannot follow: a column retyped from
 * another column's values (`USING`), a table made a child of another (`INHERIT`, `ATTACH
 * PARTITION`: read through the parent, under the parent's name), a generated column's expression
 * dropped (its values stay, no longer computed from their source), a generated column added, or its
 * expression set, over other columns (its values are theirs, stored under a name no rule masks).
 */
function untracedAlter(stmt: AlterTableStmt): string | undefined {
  for (const item of list(stmt.cmds)) {
    const cmd = nodeAs(item, 'AlterTableCmd');
    if (cmd?.subtype === 'AT_GenericOptions') return "a foreign table's options changed (what it reads, where)";
    if (cmd?.subtype === 'AT_AddInherit' || cmd?.subtype === 'AT_AttachPartition') return 'a table made a child of another';
    if (cmd?.subtype === 'AT_DropExpression') return "a generated column's expression dropped";
    const using = cmd?.subtype === 'AT_AlterColumnType' ? nodeAs(cmd.def, 'ColumnDef')?.raw_default : undefined;
    if (using && columnRefs(using).some((c) => c !== cmd!.name)) return "a column retyped from another column's values";
    // A generated column's values are computed from other columns of every row and stored under its own name.
    if (cmd?.subtype === 'AT_SetExpression' && columnRefs(cmd.def).length > 0) return "a generated column's expression set from other columns";
    const generated = list(nodeAs(cmd?.def, 'ColumnDef')?.constraints).map((c) => nodeAs(c, 'Constraint'));
    if (cmd?.subtype === 'AT_AddColumn' && generated.some((c) => c?.contype === 'CONSTR_GENERATED' && columnRefs(c.raw_expr).length > 0)) return 'a generated column added over other columns';
  }
  return undefined;
}

/** Reads a utility statement into `acc`. */
export function utility(node: Tagged, acc: Acc, ctx: Ctx): void {
  switch (node[0]) {
    case 'ViewStmt':
      acc.kind('create', ctx);
      walkFields(node[0], node[1], acc, { ...ctx, runs: false });
      if (readsPgSettings(node[1].query)) settingChanged(undefined, undefined, acc, ctx);
      return;
    case 'RuleStmt':
      acc.kind('create', ctx);
      acc.code ??= 'a rule';
      walkFields(node[0], node[1], acc, ctx);
      // An ON SELECT rule makes its table a view: one over pg_settings passes updates on to it.
      if (node[1].event === 'CMD_SELECT' && readsPgSettings(node[1].actions)) settingChanged(undefined, undefined, acc, ctx);
      return;
    case 'DoStmt':
      acc.kind('do', ctx);
      acc.code ??= 'a DO block';
      acc.opaqueBody = true;
      return;
    case 'CreateFunctionStmt':
      acc.kind('create-function', ctx);
      acc.code ??= node[1].is_procedure ? 'a procedure made' : 'a function made';
      if (!node[1].sql_body) acc.opaqueBody = true;
      functionSettings(node[1].options, acc, ctx);
      // A body hoop reads (BEGIN ATOMIC, RETURN) is judged as what it does: the kinds of its statements are this one's.
      return walkFields(node[0], node[1], acc, { ...ctx, runs: false, body: true }, ['funcname']);
    case 'AlterFunctionStmt':
      acc.kind('alter', ctx);
      functionSettings(node[1].actions, acc, ctx);
      return walkFields(node[0], node[1], acc, ctx);
    case 'LockStmt':
      return lock(node[1], acc, ctx);
    case 'ConstraintsSetStmt':
      // Its names are constraints', not relations.
      acc.kind('set', ctx);
      acc.firesDeferred = true;
      return;
    case 'CheckPointStmt':
    case 'LoadStmt':
      acc.kind('other', ctx);
      acc.serverCommand ??= node[0] === 'LoadStmt' ? 'load' : 'checkpoint';
      return;
    case 'CallStmt':
      acc.kind('call', ctx);
      acc.code ??= 'a procedure call';
      return walkFields(node[0], node[1], acc, ctx);
    case 'DiscardStmt':
      acc.kind('other', ctx);
      // DISCARD ALL includes SET SESSION AUTHORIZATION DEFAULT, DEALLOCATE ALL and CLOSE ALL.
      if (node[1].target === 'DISCARD_ALL') {
        acc.kind('set-session-authorization', ctx);
        acc.preparedName ??= '*';
        acc.cursorName ??= '*';
      }
      return;
    case 'GrantStmt':
      return grant(node[1], acc, ctx);
    case 'GrantRoleStmt':
      acc.kind(node[1].is_grant === true ? 'grant' : 'revoke', ctx);
      return;
    case 'AlterDefaultPrivilegesStmt':
      acc.kind('alter', ctx);
      acc.kind(node[1].action?.is_grant === true ? 'grant' : 'revoke', ctx);
      return;
    case 'DropStmt':
      return drop(node[1], acc, ctx);
    case 'CommentStmt':
    case 'SecLabelStmt': {
      acc.kind('alter', ctx);
      const table = TABLE_OBJECTS.has(String(node[1].objtype)) ? objectTableName(node[1].object) : undefined;
      if (table !== undefined) acc.tables.add(table);
      return;
    }
    case 'AlterTableStmt':
      acc.kind(kindOfUtility(node[0]), ctx);
      alterEffects(node[1], acc, ctx);
      acc.code ??= untracedAlter(node[1]);
      return walkFields(node[0], node[1], acc, ctx);
    case 'AlterDomainStmt':
      acc.kind('alter', ctx);
      // C: ADD CONSTRAINT, V: VALIDATE CONSTRAINT (both check the domain's every column; NOT VALID checks none now, but is counted too).
      if (node[1].subtype === 'C' || node[1].subtype === 'V') acc.evaluatesDomain = true;
      return walkFields(node[0], node[1], acc, ctx);
    case 'CreateForeignTableStmt':
    case 'ImportForeignSchemaStmt':
    case 'CreateForeignServerStmt':
    case 'AlterForeignServerStmt':
    case 'CreateUserMappingStmt':
    case 'AlterUserMappingStmt':
    case 'CreateFdwStmt':
    case 'AlterFdwStmt':
      acc.kind(kindOfUtility(node[0]), ctx);
      acc.code ??= FOREIGN_DATA[node[0]];
      return walkFields(node[0], node[1], acc, ctx);
    case 'DefineStmt':
    case 'CreateCastStmt':
      acc.kind('create', ctx);
      if (node[0] === 'CreateCastStmt') acc.code ??= 'a cast made';
      else if (node[1].kind === 'OBJECT_OPERATOR' || node[1].kind === 'OBJECT_AGGREGATE') acc.code ??= node[1].kind === 'OBJECT_OPERATOR' ? 'an operator made' : 'an aggregate made';
      return walkFields(node[0], node[1], acc, ctx);
    case 'CreateTrigStmt':
    case 'CreateEventTrigStmt':
      acc.kind('create', ctx);
      acc.code ??= node[0] === 'CreateTrigStmt' ? 'a trigger' : 'an event trigger';
      return walkFields(node[0], node[1], acc, ctx);
    default:
      acc.kind(kindOfUtility(node[0]), ctx);
      walkFields(node[0], node[1], acc, ctx);
  }
}

/**
 * LOCK: the lock mode it takes.
 * @see https://www.postgresql.org/docs/17/sql-lock.html
 */
function lock(body: LockStmt, acc: Acc, ctx: Ctx): void {
  acc.kind('lock', ctx);
  acc.lockMode ??= LOCK_MODES[Number(body.mode) - 1] ?? 'ACCESS EXCLUSIVE';
  walkFields('LockStmt', body, acc, ctx);
}

/**
 * GRANT / REVOKE on objects: ON ALL TABLES IN SCHEMA names `schema.*`.
 * @see https://www.postgresql.org/docs/17/sql-grant.html
 */
function grant(body: GrantStmt, acc: Acc, ctx: Ctx): void {
  acc.kind(body.is_grant === true ? 'grant' : 'revoke', ctx);
  if (body.targtype === 'ACL_TARGET_ALL_IN_SCHEMA' && TABLE_OBJECTS.has(String(body.objtype))) {
    for (const schema of names(body.objects)) acc.tables.add(`${schema}.*`.toLowerCase());
    return;
  }
  walkFields('GrantStmt', body, acc, ctx);
}

/**
 * DROP: the tables (views, sequences, ...) it drops.
 * @see https://www.postgresql.org/docs/17/sql-droptable.html
 */
function drop(body: DropStmt, acc: Acc, ctx: Ctx): void {
  acc.kind('drop', ctx);
  if (!TABLE_OBJECTS.has(String(body.removeType))) return;
  for (const object of list(body.objects)) {
    const table = objectTableName(object);
    if (table !== undefined) acc.tables.add(table);
  }
}
