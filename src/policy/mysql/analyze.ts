/**
 * MySQL statements as the policy judges them: the lexer pre-pass (./prepass.ts) splits the text as
 * the server does, each statement is parsed by `sqlparser-rs` (WebAssembly, MySQL dialect), and its
 * facts are read off the tree in the shape PostgreSQL's analysis gives them (src/policy/sql/analyze/
 * facts.ts), so the one `StatementJudge` applies the same rules to both. What cannot be read is
 * `ok: false`: the policy's `unparseable`.
 *
 * Facts read: the statement's kinds (REPLACE is an insert and a delete, ON DUPLICATE KEY UPDATE an
 * insert and an update, SHOW and DESCRIBE are reads, SET GLOBAL changes the server as DDL does),
 * the tables and functions it names, a write without a WHERE that restricts it (none, or one of
 * constants), settings and read-write transactions, and what changes how later text is read
 * (`sql_mode`, or a character set whose bytes can hide a quote).
 *
 * @see https://github.com/apache/datafusion-sqlparser-rs
 * @see https://dev.mysql.com/doc/refman/8.0/en/sql-statements.html
 */
import { init, parse } from '@guanmingchiu/sqlparser-ts';
import type { StatementKind } from '../schema.js';
import type { Analysis, StatementFacts } from '../sql/analyze/facts.js';
import { prepass, type PrepassOptions } from './prepass.js';

/** Loads the parser (once per process); analyses wait for it. */
let loaded: Promise<void> | undefined;
let ready = false;
export function loadMysqlParser(): Promise<void> {
  loaded ??= init().then(() => {
    ready = true;
  });
  return loaded;
}

/** Character sets whose multi-byte characters can end in a backslash (0x5C), hiding a quote from a lexer that reads bytes. */
export const UNSAFE_CHARSETS = new Set(['big5', 'cp932', 'gbk', 'gb18030', 'sjis']);
/** Settings that change how the server reads later text. */
const LEXING_SETTINGS = new Set(['sql_mode', 'character_set_client', 'names', 'character set', 'charset']);
/** Settings whose change turns a read-only transaction read-write. */
const READ_ONLY_SETTINGS = new Set(['tx_read_only', 'transaction_read_only']);

type Node = Record<string, unknown>;

/** See the module documentation; `o` says how the session lexes. */
export function analyzeMysql(text: string, o: PrepassOptions = {}): Analysis {
  if (!ready) return { ok: false, parser: 'MySQL', error: 'the MySQL parser is not loaded' };
  const read = prepass(text, o);
  if ('refused' in read) return { ok: false, parser: 'MySQL', error: read.refused };
  const statements: StatementFacts[] = [];
  for (const s of read.statements) {
    let tree: unknown[];
    try {
      tree = parse(s.text, 'mysql') as unknown[];
    } catch (err) {
      return { ok: false, parser: 'MySQL', error: `${(err as Error).message.split('\n')[0]} in ${JSON.stringify(s.text.slice(0, 200))}` };
    }
    if (tree.length !== 1) return { ok: false, parser: 'MySQL', error: `the parser read ${tree.length} statements in one: ${JSON.stringify(s.text.slice(0, 200))}` };
    statements.push(factsOf(tree[0], s.text));
  }
  return { ok: true, statements, numericLiterals: [] };
}

/** The facts of one parsed statement. */
function factsOf(tree: unknown, text: string): StatementFacts {
  const [kind, body] = typeof tree === 'string' ? [tree, {}] : (Object.entries(tree as Node)[0] as [string, Node]);
  const tables = new Set<string>();
  const functions = new Set<string>();
  collect(tree, tables, functions);
  const facts: StatementFacts = {
    kinds: kindsOf(kind, body),
    tables: [...tables],
    functions: [...functions],
    missingWhere: false,
    cteDml: false,
    program: false,
    opaqueBody: false,
    changesLexing: false,
    executes: [],
    settings: [],
    readWrite: false,
    outputs: { aliases: {} },
    refs: [],
    text,
  };
  if (kind === 'Update' || kind === 'Delete') facts.missingWhere = !restricts(body.selection);
  if (kind === 'Set') {
    setFacts(body, facts);
    // SET @@global.x: the server's configuration, as SET GLOBAL.
    if (facts.settings.some((x) => /^(global|persist|persist_only)\./.test(x.name ?? ''))) facts.kinds = ['alter'];
  }
  if (kind === 'StartTransaction') facts.readWrite = accessModes(body.modes).includes('ReadWrite');
  if (kind === 'CreateFunction' || kind === 'CreateProcedure' || kind === 'CreateTrigger') facts.opaqueBody = true;
  if (kind === 'Commit' || kind === 'Rollback' || kind === 'StartTransaction' || kind === 'Savepoint' || kind === 'ReleaseSavepoint') {
    facts.transaction = kind === 'StartTransaction' ? 'start' : kind === 'ReleaseSavepoint' ? 'release' : kind.toLowerCase();
  }
  return facts;
}

/** The kinds of a statement whose tree is `kind: body`. */
function kindsOf(kind: string, body: Node): StatementKind[] {
  switch (kind) {
    case 'Query':
    case 'ExplainTable':
      return ['select'];
    case 'Insert': {
      const replace = JSON.stringify(body.insert_token ?? '').includes('"REPLACE"');
      const upsert = body.on !== null && body.on !== undefined;
      return ['insert', ...(replace ? (['delete'] as const) : []), ...(upsert ? (['update'] as const) : [])];
    }
    case 'Update':
      return ['update'];
    case 'Delete':
      return ['delete'];
    case 'Truncate':
      return ['truncate'];
    case 'Drop':
    case 'DropFunction':
    case 'DropProcedure':
    case 'DropTrigger':
      return ['drop'];
    case 'CreateFunction':
    case 'CreateProcedure':
    case 'CreateTrigger':
      return ['create-function'];
    case 'Grant':
      return ['grant'];
    case 'Revoke':
      return ['revoke'];
    case 'Call':
      return ['call'];
    case 'Explain':
      return ['explain'];
    case 'LockTables':
    case 'UnlockTables':
      return ['lock'];
    case 'StartTransaction':
    case 'Commit':
    case 'Rollback':
    case 'Savepoint':
    case 'ReleaseSavepoint':
      return ['transaction'];
    case 'Use':
      return ['set'];
    case 'Set':
      return isGlobal(body) ? ['alter'] : ['set'];
    default:
      if (kind.startsWith('Create')) return ['create'];
      if (kind.startsWith('Alter') || kind === 'RenameTable') return ['alter'];
      if (kind.startsWith('Show')) return ['select'];
      return ['other'];
  }
}

/** SET GLOBAL / PERSIST: the server's configuration, for every session. */
function isGlobal(body: Node): boolean {
  const text = JSON.stringify(body);
  return /"scope":"(Global|Persist|PersistOnly)"/.test(text) || /"value":"@@(global|persist|persist_only)\./i.test(text);
}

/** The settings a SET changes, and whether they turn transactions read-write or change how text is read. */
function setFacts(body: Node, facts: StatementFacts): void {
  const [form, detail] = Object.entries(body)[0] as [string, Node];
  if (form === 'SetNames' || form === 'SetNamesDefault') {
    const charset = String((detail?.charset_name as Node | undefined)?.value ?? 'default').toLowerCase();
    facts.settings.push({ name: 'names', value: charset });
    facts.changesLexing = UNSAFE_CHARSETS.has(charset);
    return;
  }
  if (form === 'SetTransaction') {
    facts.readWrite = accessModes(detail.modes).includes('ReadWrite');
    return;
  }
  const assignments = form === 'SingleAssignment' ? [detail] : form === 'MultipleAssignments' ? ((detail.assignments as Node[] | undefined) ?? []) : [];
  if (assignments.length === 0) {
    // A form hoop does not read (SET ROLE, SET TIME ZONE, …): a setting it cannot name.
    facts.settings.push({});
    return;
  }
  for (const a of assignments) {
    const name = settingName(a.variable ?? a.name);
    const value = constantOf((a.values as unknown[] | undefined)?.[0] ?? a.value);
    facts.settings.push({ ...(name !== undefined && { name }), ...(value !== undefined && { value }) });
    // sql_mode, whatever it is set to; a character set the gateway cannot know or that can hide a quote.
    if (name === undefined || name === 'sql_mode') facts.changesLexing = true;
    else if (LEXING_SETTINGS.has(name) && (value === undefined || UNSAFE_CHARSETS.has(value))) facts.changesLexing = true;
    if (name !== undefined && READ_ONLY_SETTINGS.has(name) && !['1', 'on', 'true'].includes(value ?? '')) facts.readWrite = true;
  }
}

/** A setting's name, lower-case, without `@@`, `session.` or `local.`; undefined for a user variable's `@name` (not a setting) kept as written. */
function settingName(variable: unknown): string | undefined {
  const parts = Array.isArray(variable) ? variable : [variable];
  const raw = parts
    .map((p) => String(((p as Node)?.Identifier as Node | undefined)?.value ?? (p as Node)?.value ?? ''))
    .join('.')
    .toLowerCase();
  if (raw === '') return undefined;
  return raw.replace(/^@@/, '').replace(/^(session|local)\./, '');
}

/** A constant's text, lower-case; undefined for an expression. */
function constantOf(expr: unknown): string | undefined {
  const v = ((expr as Node)?.Value as Node | undefined)?.value as Node | undefined;
  if (!v) {
    const id = (expr as Node)?.Identifier as Node | undefined;
    return typeof id?.value === 'string' ? id.value.toLowerCase() : undefined;
  }
  const [, inner] = Object.entries(v)[0] ?? [];
  const text = Array.isArray(inner) ? inner[0] : inner;
  return typeof text === 'string' || typeof text === 'number' || typeof text === 'boolean' ? String(text).toLowerCase() : undefined;
}

/** Transaction modes' access modes (`ReadOnly`, `ReadWrite`). */
function accessModes(modes: unknown): string[] {
  return Array.isArray(modes) ? modes.map((m) => String((m as Node)?.AccessMode ?? '')) : [];
}

/** Whether a WHERE can restrict rows: it exists and reads some column (a condition of constants alone reaches every row or none). */
function restricts(selection: unknown): boolean {
  if (selection === null || selection === undefined) return false;
  let column = false;
  walk(selection, (n) => {
    if ('Identifier' in n || 'CompoundIdentifier' in n || 'Subquery' in n || 'Exists' in n || 'InSubquery' in n) column = true;
  });
  return column;
}

/** The tables and functions a tree names, lower-case, `db.table` when qualified. */
function collect(tree: unknown, tables: Set<string>, functions: Set<string>): void {
  const name = (parts: unknown): string | undefined => {
    if (!Array.isArray(parts)) return undefined;
    const words = parts.map((p) => ((p as Node)?.Identifier as Node | undefined)?.value ?? (p as Node)?.value);
    return words.every((w) => typeof w === 'string') ? (words as string[]).join('.').toLowerCase() : undefined;
  };
  const add = (set: Set<string>, n: string | undefined): void => {
    if (n) set.add(n);
  };
  walk(tree, (n, key) => {
    if (n.Table && typeof n.Table === 'object') add(tables, name((n.Table as Node).name));
    if ('TableName' in n) add(tables, name(n.TableName));
    if (n.Function && typeof n.Function === 'object') add(functions, name((n.Function as Node).name));
    if (key === 'Call' || key === 'CreateProcedure' || key === 'CreateFunction') add(key === 'Call' ? functions : tables, name(n.name));
    if (key === 'Truncate') for (const t of (n.table_names as Node[] | undefined) ?? []) add(tables, name(t.name));
    if (key === 'Drop') for (const t of (n.names as unknown[] | undefined) ?? []) add(tables, name(t));
    if (key === 'ExplainTable') add(tables, name(n.table_name));
    if (key === 'LockTables') for (const t of (n.tables as Node[] | undefined) ?? []) add(tables, String((t.table as Node | undefined)?.value ?? '').toLowerCase() || undefined);
    if (key.startsWith('Create') || key.startsWith('Alter')) add(tables, name(n.name));
    if (key === 'Grant' || key === 'Revoke') {
      const objects = (n.objects as Node | undefined)?.Tables;
      for (const t of Array.isArray(objects) ? objects : []) add(tables, name(t));
    }
  });
}

/** Calls `visit` on every object node of `tree`, with the key it sits under. */
function walk(tree: unknown, visit: (n: Node, key: string) => void, key = ''): void {
  if (Array.isArray(tree)) {
    for (const item of tree) walk(item, visit, key);
    return;
  }
  if (tree === null || typeof tree !== 'object') return;
  const n = tree as Node;
  visit(n, key);
  for (const [k, v] of Object.entries(n)) if (k !== 'span') walk(v, visit, k);
}
