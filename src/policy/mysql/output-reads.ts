/**
 * What a MySQL statement copies, as masking reads it. The select list of a query: each column its
 * expressions name, with the base tables it may be a column of. MySQL gives a plain column of a
 * table its origin in the column definition, and a computed one (`UPPER(c.name)`, `COUNT(*)`, a
 * CASE) none: masking reads this to tell whether a computed column may carry a masked value. Only
 * what the parse tree settles is said: a query of one SELECT over named tables, whose list holds
 * no subquery and names no window of the query's WINDOW clause. Anything else (a set operation, a
 * CTE, a derived table, JSON_TABLE, a subquery) reads what the parse alone cannot tell, and gets
 * no answer. An unqualified name may be a column of any table in FROM; every identifier counts,
 * so a name the parse cannot place reads more, never less. And a write: whether it copies no
 * column's value at all ({@link writesLiteralsOnly}).
 *
 * @see https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_com_query_response_text_resultset_column_definition.html
 * @see https://mariadb.com/kb/en/identifier-qualifiers/
 */
import type { OutputRead } from '../sql/analyze/facts.js';

type Node = Record<string, unknown>;

/** The server's own functions that read nothing beyond their arguments. */
const BUILTIN_FUNCTIONS: ReadonlySet<string> = new Set(
  (
    'count sum avg min max group_concat std stddev variance bit_and bit_or bit_xor concat concat_ws lower upper lcase ucase length char_length ' +
    'character_length octet_length substring substr mid left right trim ltrim rtrim replace reverse repeat space lpad rpad locate instr position ' +
    'field find_in_set strcmp coalesce ifnull nullif if isnull greatest least abs ceil ceiling floor round truncate mod sign sqrt pow power exp ln ' +
    'log log2 log10 pi rand now sysdate curdate curtime current_date current_time current_timestamp localtime localtimestamp utc_date utc_time ' +
    'utc_timestamp date time timestamp year month day dayofmonth dayofweek dayofyear week weekday hour minute second microsecond date_format ' +
    'time_format str_to_date date_add date_sub adddate subdate addtime subtime datediff timediff timestampdiff timestampadd unix_timestamp ' +
    'from_unixtime last_day makedate maketime extract cast convert format hex unhex md5 sha1 sha2 crc32 uuid version database schema user ' +
    'current_user session_user system_user connection_id row_count found_rows sleep benchmark json_extract json_unquote ' +
    // LAST_INSERT_ID(): the id the server gave the session's last insert (LAST_INSERT_ID(expr), which keeps a value of the
    // session's own choosing, is refused where columns are masked: carriesMasked).
    'last_insert_id ' +
    'json_object json_array json_length json_keys json_contains json_valid row_number rank dense_rank percent_rank cume_dist ntile lag lead ' +
    'first_value last_value nth_value bin oct ascii ord char conv quote soundex elt make_set export_set inet_aton inet_ntoa ' +
    // Spatial constructors and accessors (MariaDB's names and the ST_ ones): they read their arguments alone.
    'point linestring polygon multipoint multilinestring multipolygon geometrycollection geomfromtext geometryfromtext pointfromtext ' +
    'linefromtext polyfromtext geomfromwkb pointfromwkb astext aswkb asbinary astext x y srid st_geomfromtext st_geometryfromtext ' +
    'st_pointfromtext st_linefromtext st_polyfromtext st_geomfromwkb st_astext st_aswkb st_asbinary st_asgeojson st_geomfromgeojson ' +
    'st_x st_y st_srid st_distance st_contains st_within st_intersects'
  ).split(' '),
);

/** Keys whose value is a query of its own: a select list holding one reads what it reads. */
const QUERIES = new Set(['Subquery', 'Exists', 'InSubquery', 'subquery', 'Query', 'Select', 'SetOperation']);

/** A name part's value, lower-case. */
const value = (part: unknown): string => String((part as { value?: unknown } | undefined)?.value ?? '').toLowerCase();

/**
 * The columns the select list of `query` (a `Query` node's body) reads: all of them, and, when the
 * list has no wildcard (so that result column i is list item i), each item's own; undefined when
 * the parse cannot tell.
 */
export function outputReads(query: Node, database: string | undefined): { all: OutputRead[]; items: OutputRead[][] | undefined } | undefined {
  if (query.with !== undefined && query.with !== null) return undefined;
  const select = (query.body as Node | undefined)?.Select as Node | undefined;
  if (!select || (Array.isArray(select.named_window) && select.named_window.length > 0)) return undefined;
  const scope = tablesInScope(select.from, database);
  if (!scope) return undefined;
  const items: OutputRead[][] = [];
  let wildcard = false;
  for (const item of (select.projection as unknown[] | undefined) ?? []) {
    // A wildcard: plain columns, each with its origin, as many as its table has.
    if (typeof item !== 'object' || item === null) {
      wildcard = true;
      continue;
    }
    const [kind, body] = Object.entries(item as Node)[0] as [string, Node];
    if (kind === 'Wildcard' || kind === 'QualifiedWildcard') {
      wildcard = true;
      continue;
    }
    const reads: OutputRead[] = [];
    if (!columnsOf(kind === 'ExprWithAlias' ? body.expr : body, scope, reads)) return undefined;
    items.push(reads);
  }
  return { all: items.flat(), items: wildcard ? undefined : items };
}

/** The tables of a FROM clause by the names the query calls them (alias, else table name); undefined when a row source is not a named table. */
function tablesInScope(from: unknown, database: string | undefined): Map<string, string> | undefined {
  const scope = new Map<string, string>();
  const add = (relation: unknown): boolean => {
    // A parenthesized join, unaliased: its tables are in scope as they are.
    const nested = (relation as Node | undefined)?.NestedJoin as Node | undefined;
    if (nested) return (nested.alias ?? null) === null && joined(nested.table_with_joins as Node | undefined);
    const table = (relation as Node | undefined)?.Table as Node | undefined;
    if (!table || (table.args !== undefined && table.args !== null)) return false;
    const name = (table.name as Array<{ Identifier?: unknown }>).map((p) => value(p.Identifier));
    if (name.length === 0 || name.length > 2) return false;
    const qualified = name.length === 2 ? `${name[0]}.${name[1]}` : database ? `${database.toLowerCase()}.${name[0]}` : name[0]!;
    const alias = (table.alias as { name?: unknown } | null | undefined)?.name;
    const key = alias ? value(alias) : name.at(-1)!;
    // MariaDB tells `S` from `s` (lower_case_table_names=0): two names that fold alike are not told apart here.
    if (scope.has(key)) return false;
    scope.set(key, qualified);
    return true;
  };
  const joined = (source: Node | undefined): boolean => source !== undefined && add(source.relation) && ((source.joins as Node[] | undefined) ?? []).every((j) => add(j.relation));
  for (const source of (from as Node[] | undefined) ?? []) if (!joined(source)) return undefined;
  return scope;
}

/** Adds the columns `expr` names to `reads`; false when it holds a query of its own or a name no table in scope has. */
function columnsOf(expr: unknown, scope: ReadonlyMap<string, string>, reads: OutputRead[]): boolean {
  if (Array.isArray(expr)) return expr.every((e) => columnsOf(e, scope, reads));
  if (typeof expr !== 'object' || expr === null) return true;
  for (const [key, v] of Object.entries(expr as Node)) {
    if (QUERIES.has(key)) return false;
    // A function's own name is no column.
    if (key === 'name' && 'args' in (expr as Node)) continue;
    if (key === 'Identifier') reads.push({ column: value(v), tables: [...new Set(scope.values())] });
    else if (key === 'CompoundIdentifier') {
      const parts = (v as unknown[]).map(value);
      const column = parts.at(-1)!;
      const table = parts.length === 2 ? scope.get(parts[0]!) : parts.length === 3 ? `${parts[0]}.${parts[1]}` : undefined;
      if (table === undefined || ![...scope.values()].includes(table)) return false;
      reads.push({ column, tables: [table] });
    } else if (!columnsOf(v, scope, reads)) return false;
  }
  return true;
}

/** Whether function `name` (lower-case, as `StatementFacts.functions` holds it) reads nothing but its arguments: one of the server's own, or `VALUES(col)` (the row's own inserted value). */
export function readsOnlyArguments(name: string): boolean {
  return name === 'values' || BUILTIN_FUNCTIONS.has(name);
}

/** A function call's name as `StatementFacts.functions` holds it (`db.f` when qualified). */
const functionName = (fn: Node): string => ((fn.name as Array<{ Identifier?: unknown }> | undefined) ?? []).map((p) => value(p.Identifier)).join('.');

/** Whether a value expression is made of literals, placeholders and functions that read nothing but their arguments ({@link readsOnlyArguments}). */
function literal(expr: unknown): boolean {
  if (Array.isArray(expr)) return expr.every(literal);
  if (typeof expr !== 'object' || expr === null) return true;
  const node = expr as Node;
  const fn = node.Function as Node | undefined;
  if (fn && !readsOnlyArguments(functionName(fn))) return false;
  if (fn && functionName(fn) === 'values') return true;
  for (const [key, v] of Object.entries(node)) {
    if (QUERIES.has(key) || key === 'Identifier' || key === 'CompoundIdentifier') return false;
    if (key === 'name' && 'args' in node) continue;
    if (!literal(v)) return false;
  }
  return true;
}

/**
 * Storage engines that keep a table's own rows (lower-case): any other may keep another relation's
 * (MERGE's `UNION=`, FEDERATED's and SPIDER's `CONNECTION=`, CONNECT's `TABLE_TYPE=`).
 */
export const OWN_ROWS_ENGINES: ReadonlySet<string> = new Set(['innodb', 'aria', 'myisam', 'memory', 'heap', 'archive', 'csv', 'rocksdb', 'columnstore']);

/** Table options (upper-case) that say nothing of where a table's rows come from. */
const STORAGE_NEUTRAL_OPTIONS = new Set(
  (
    'DEFAULT CHARSET,CHARSET,DEFAULT CHARACTER SET,CHARACTER SET,DEFAULT COLLATE,COLLATE,AUTO_INCREMENT,ROW_FORMAT,KEY_BLOCK_SIZE,CHECKSUM,' +
    'PAGE_CHECKSUM,TRANSACTIONAL,PACK_KEYS,MAX_ROWS,MIN_ROWS,AVG_ROW_LENGTH,DELAY_KEY_WRITE,STATS_PERSISTENT,STATS_AUTO_RECALC,STATS_SAMPLE_PAGES'
  ).split(','),
);

/** Whether a CREATE TABLE's options keep its rows its own: an engine of {@link OWN_ROWS_ENGINES}, and no option beyond charset, collation, comment and the like. */
function storesOwnRows(options: unknown): boolean {
  const [form, list] = typeof options === 'string' ? [options, []] : (Object.entries((options ?? {}) as Node)[0] ?? ['None', []]);
  if (form === 'None') return true;
  if (form !== 'Plain' || !Array.isArray(list)) return false;
  return list.every((o: Node) => {
    const [kind, body] = Object.entries(o)[0] as [string, Node];
    const key = String((body?.key as Node | undefined)?.value ?? '').toUpperCase();
    if (kind === 'Comment') return true;
    if (kind === 'NamedParenthesizedList') return key === 'ENGINE' && ((body.values as unknown[] | undefined) ?? []).length === 0 && OWN_ROWS_ENGINES.has(value(body.name));
    return kind === 'KeyValue' && STORAGE_NEUTRAL_OPTIONS.has(key);
  });
}

/** Statements that write no value anywhere: they remove rows or tables, or add an index. */
const REMOVALS = new Set(['Delete', 'Drop', 'Truncate', 'CreateIndex']);

/**
 * Whether a write (the parser's `kind` and `body`) copies no column's value: a DELETE, DROP,
 * TRUNCATE or CREATE INDEX; a CREATE TABLE of columns alone (no `AS SELECT`, no generated column);
 * an INSERT or REPLACE of VALUES rows (or SET) and an UPDATE whose new values are literals and
 * placeholders alone. Its WHERE may read any column: it chooses rows, it writes none of their values.
 */
export function writesLiteralsOnly(kind: string, body: Node): boolean {
  const assigned = (assignments: unknown): boolean => ((assignments as Node[] | undefined) ?? []).every((a) => literal(a.value));
  if (REMOVALS.has(kind)) return true;
  if (kind === 'CreateTable') return (body.query ?? null) === null && (body.clone ?? null) === null && !JSON.stringify(body.columns ?? []).includes('"Generated"') && storesOwnRows(body.table_options);
  if (kind === 'Update') return assigned(body.assignments) && (body.from ?? null) === null;
  if (kind !== 'Insert') return false;
  const source = body.source as Node | null | undefined;
  const rows = ((source?.body as Node | undefined)?.Values as Node | undefined)?.rows as Node[] | undefined;
  if (source && (!rows || (source.with ?? null) !== null || !rows.every((r) => literal(r.content ?? r)))) return false;
  const duplicate = (body.on as Node | null | undefined)?.DuplicateKeyUpdate;
  return assigned(body.assignments) && assigned(duplicate);
}
