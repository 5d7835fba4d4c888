/**
 * What `hoop mcp`'s SQL tools do (./mcp-server.ts registers them): run statements in a session of their
 * own through the gateway, and describe a connection's tables with the masking the gateway applies
 * to the caller. Answers are compact JSON; values are numbers, booleans and JSON where the JSON
 * says exactly what the server sent, else text (src/postgres/wire/json-values.ts).
 *
 * @see https://modelcontextprotocol.io/specification/2025-06-18/server/tools#tool-result
 */
import { getConnection } from '../api-client/connections.js';
import type { MaskingInfo } from '../api/answers.js';
import type { ResolvedTokenProvider } from '../auth/token-provider.js';
import type { CliIo } from '../io.js';
import type { Logger } from '../log.js';
import { MaskingRules } from '../policy/masking/rules.js';
import { jsonValue } from '../postgres/wire/json-values.js';
import { serverMessageLines } from '../ui/psql-format.js';
import type { CommandRecords } from './client-records.js';
import { openGatewaySql, refusalOf, type ClientContext } from './gateway-sql.js';
import { hoopSays } from '../errors.js';
import { cutValue } from '../recording/event-line.js';
import { type ExecRequest, requestBytes, requestThroughGateway } from './exec-http.js';

/** One statement's result as `run_sql` returns it. */
export interface SqlResult {
  columns: string[];
  rows: unknown[][];
  /** Rows the statement returned; more than `rows` when capped. */
  rowCount: number;
  truncated: boolean;
  tag: string;
}

/** A tool's answer, as the MCP SDK takes it. */
export type ToolAnswer = { content: Array<{ type: 'text'; text: string }>; isError?: boolean };

/** A tool's answer of `value` (compact JSON, or the text itself). */
export const answer = (value: unknown): ToolAnswer => ({ content: [{ type: 'text', text: typeof value === 'string' ? value : JSON.stringify(value) }] });
/** A tool's error answer. */
export const failure = (text: string): ToolAnswer => ({ content: [{ type: 'text', text }], isError: true });

/** What the SQL tools need of `hoop mcp`. */
export interface SqlToolContext {
  io: CliIo;
  log: Logger;
  provider: ResolvedTokenProvider;
  records: CommandRecords;
}

/**
 * Runs `sql` on `connection` in a session of its own: its results (at most `maxRows` rows each,
 * the rest counted), or the answer that stopped them (a refusal, a pending review, an error).
 */
export async function runStatements(c: SqlToolContext, connection: string, sql: string, maxRows: number, context: ClientContext): Promise<SqlResult[] | ToolAnswer> {
  const { io, log, provider, records } = c;
  const gw = await openGatewaySql({ provider, name: connection, application: 'hoop mcp', log, say: (line) => void io.stderr.write(`${hoopSays(line)}\n`), records, detachReviews: true });
  try {
    gw.context(context);
    const results: SqlResult[] = [];
    let current: SqlResult | undefined;
    let types: number[] = [];
    const failed = await gw.run(sql, {
      columns: (fields) => {
        types = fields.map((f) => f.typeOid);
        current = { columns: fields.map((f) => f.name), rows: [], rowCount: 0, truncated: false, tag: '' };
      },
      row: (values) => {
        if (!current) return;
        current.rowCount++;
        if (current.rows.length < maxRows) current.rows.push(values.map((v, i) => jsonValue(v, types[i] ?? 0)));
        else current.truncated = true;
      },
      complete: (tag) => {
        results.push(current ? { ...current, tag } : { columns: [], rows: [], rowCount: 0, truncated: false, tag });
        current = undefined;
      },
      notice: () => {},
    });
    if (failed && 'held' in failed) {
      const h = failed.held;
      return answer({
        pending_review: {
          id: h.id,
          ...(h.rule !== undefined ? { rule: h.rule } : {}),
          reviewers: h.groups,
          approvals: h.approvals,
          ...(typeof h.timeoutMs === 'number' ? { expires_in_seconds: Math.round(h.timeoutMs / 1000) } : {}),
        },
        ran: false,
        next: `A reviewer must approve this statement (they run \`hoop review approve ${h.id}\`). Call wait_for_review with id ${h.id}; once it is approved, call run_sql again with exactly the same connection and sql: the approval lets it run once.`,
      });
    }
    if (failed) {
      const refusal = refusalOf(failed);
      const said = serverMessageLines(failed).join('\n');
      if (refusal === 'review') return failure(`${said}\nThe statement needs a reviewer's approval and did not get it; it did not run.`);
      return failure(refusal === 'denied' ? `${said}\nThe gateway's policy (or a reviewer) refused the statement; it did not run.` : said);
    }
    return results;
  } finally {
    await gw.close();
  }
}

/** An identifier as `describe_schema` takes it (it goes into SQL: nothing else is accepted). */
const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_$]{0,62}$/;

/** Most columns `describe_schema` reads. */
const MAX_COLUMNS = 5000;

/**
 * The columns of the connection's tables, each with the tables it inherits its columns from (a
 * partition's partitioned tables, an inheritance child's parents), whose masking rules apply to it.
 * @see https://www.postgresql.org/docs/current/infoschema-columns.html
 * @see https://www.postgresql.org/docs/current/catalog-pg-inherits.html
 */
export function columnsQuery(schema: string | undefined, table: string | undefined): string {
  const where = [`c.table_schema not in ('pg_catalog', 'information_schema')`, ...(schema ? [`c.table_schema = '${schema}'`] : []), ...(table ? [`c.table_name = '${table}'`] : [])].join(' and ');
  return `with recursive ancestors(rel, parent) as (
  select inhrelid, inhparent from pg_catalog.pg_inherits
  union
  select a.rel, i.inhparent from ancestors a join pg_catalog.pg_inherits i on i.inhrelid = a.parent
)
select c.table_schema, c.table_name, c.column_name, c.data_type, c.is_nullable = 'YES' as nullable,
  (select json_agg(json_build_array(n.nspname, p.relname)) from ancestors a
     join pg_catalog.pg_class p on p.oid = a.parent join pg_catalog.pg_namespace n on n.oid = p.relnamespace
   where a.rel = (quote_ident(c.table_schema) || '.' || quote_ident(c.table_name))::regclass) as inherits_from
from information_schema.columns c where ${where}
order by c.table_schema, c.table_name, c.ordinal_position`;
}

/**
 * The same of a MySQL or MariaDB connection: the columns of its database (`schema` is a
 * database), with no inheritance to follow.
 * @see https://mariadb.com/kb/en/information-schema-columns-table/
 */
export function mysqlColumnsQuery(schema: string | undefined, table: string | undefined): string {
  const where = [schema ? `table_schema = '${schema}'` : 'table_schema = database()', ...(table ? [`table_name = '${table}'`] : [])].join(' and ');
  return `select table_schema, table_name, column_name, column_type, is_nullable = 'YES' as nullable, null as inherits_from
from information_schema.columns where ${where}
order by table_schema, table_name, ordinal_position`;
}

/** One column as `describe_schema` describes it: `masked` is the strategy the gateway masks its values with, for the caller. */
interface DescribedColumn {
  name: string;
  type: string;
  nullable: boolean;
  masked?: string;
}

/**
 * `describe_schema`: the tables and columns of `connection` (optionally one schema or table), each
 * masked column marked with its strategy, and the content detectors that mask values in any column.
 */
export async function describeSchema(c: SqlToolContext, connection: string, schema: string | undefined, table: string | undefined): Promise<ToolAnswer> {
  for (const [what, v] of [
    ['schema', schema],
    ['table', table],
  ] as const)
    if (v !== undefined && !IDENTIFIER.test(v)) return failure(`${what} must be a plain identifier (letters, digits, _ and $), not ${JSON.stringify(v)}`);
  const info = await getConnection({ gateway: c.provider.gateway, ca: c.provider.ca }, (await c.provider.current()).token, connection);
  const query = info.type === 'mysql' ? mysqlColumnsQuery(schema, table) : columnsQuery(schema, table);
  const ran = await runStatements(c, connection, query, MAX_COLUMNS, { source: 'mcp', tool: 'describe_schema' });
  if (!Array.isArray(ran)) return ran;
  const rows = ran[0]?.rows ?? [];
  const rules = info.masking ? new MaskingRules(info.masking as MaskingRulesInput) : undefined;
  const tables: Array<{ schema: string; table: string; columns: DescribedColumn[] }> = [];
  for (const [s, t, name, type, isNullable, inherits] of rows as Array<[string, string, string, string, boolean | number, Array<[string, string]> | null]>) {
    const nullable = isNullable === true || isNullable === 1;
    let last = tables.at(-1);
    if (!last || last.schema !== s || last.table !== t) tables.push((last = { schema: s, table: t, columns: [] }));
    const strategy = rules?.forOrigin({ schema: s, table: t, column: name, inheritsFrom: (inherits ?? []).map(([ps, pt]) => ({ schema: ps, table: pt })) }) ?? rules?.forName(name);
    last.columns.push({ name, type, nullable, ...(strategy !== undefined ? { masked: strategy } : {}) });
  }
  return answer({
    tables,
    ...(ran[0]?.truncated ? { truncated: `only the first ${MAX_COLUMNS} columns: name a schema or table` } : {}),
    ...(info.masking ? { masking: maskingNote(info.masking) } : {}),
  });
}

/** The shape {@link MaskingRules} compiles (strategies as the policy names them). */
type MaskingRulesInput = ConstructorParameters<typeof MaskingRules>[0];

/** What the caller should know of masking beyond the marked columns. */
function maskingNote(m: MaskingInfo): Record<string, unknown> {
  return {
    ...(m.detectors.length > 0 ? { detectors: m.detectors, detectors_apply: 'values in any column that match a detector are masked with its strategy' } : {}),
    derived: m.derived === 'deny' ? 'statements that compute over masked columns are refused' : 'values computed from masked columns are masked',
  };
}

/** Most bytes of an answer's body `http_request` returns; the rest are counted. */
const MAX_HTTP_BODY = 256 * 1024;

/**
 * Makes request `r` on HTTP connection `connection` in a session of its own: the answer's status,
 * fields and body (as text, at most {@link MAX_HTTP_BODY} bytes of it), a refusal as an error
 * naming the rule, or the review it is held for.
 */
export async function httpRequest(c: SqlToolContext, connection: string, r: Omit<ExecRequest, 'include'>, intent: string | undefined): Promise<ToolAnswer> {
  const { io, log, provider } = c;
  const bytes = requestBytes(connection, r);
  const kept: Buffer[] = [];
  let size = 0;
  const got = await requestThroughGateway({
    provider,
    name: connection,
    method: r.method.toUpperCase(),
    bytes,
    log,
    say: (line) => void io.stderr.write(`${hoopSays(line)}\n`),
    body: (b) => {
      if (size < MAX_HTTP_BODY) kept.push(b.subarray(0, MAX_HTTP_BODY - size));
      size += b.length;
    },
    detach: true,
    context: { source: 'mcp', tool: 'http_request', ...(intent ? { intent: cutValue(intent) } : {}) },
  });
  if ('held' in got)
    return answer({
      review: got.held,
      state: 'pending',
      next: `Held for review ${got.held}: call wait_for_review with this id; once approved, call http_request again with exactly the same arguments, and it runs once.`,
    });
  const body = Buffer.concat(kept).toString('utf8');
  const said = { status: got.status, headers: Object.fromEntries(got.fields), body, ...(size > MAX_HTTP_BODY ? { truncated: true, bodyBytes: size } : {}) };
  return got.fields.some(([n]) => n === 'hoop-refused') || got.status >= 400 ? { ...answer(said), isError: true } : answer(said);
}
