/**
 * What `hoop mcp` serves (src/commands/mcp.ts declares it): a Model Context Protocol server on stdio, so agents that speak MCP (Claude Code,
 * Cursor, …) reach data through the gateway with no password and no local port. Its tools:
 *
 * - `list_connections`: the connections the caller may use;
 * - `describe_schema`: the tables and columns of a connection (information_schema, through the gateway);
 * - `run_sql`: statements through the gateway under its policy: rows come back masked as the
 *   policy says, a refusal comes back as a tool error with the rule's message, and the call (its
 *   arguments and the agent's stated `intent`) is in the session's recording at the gateway. A
 *   statement held for review comes back at once as a pending review (its id, rule and
 *   reviewers): the review goes on at the gateway without the session;
 * - `wait_for_review`: waits for a review's decision; once approved, the agent sends the same
 *   statement again with `run_sql`, and the approval lets it run once;
 * - `runbook_<name>`: each runbook of the policy repo the agent may run (docs/runbooks.md), its
 *   parameters the tool's input schema; listed once the client has initialized (the agent's run
 *   begins then: what it may run is its own), with `notifications/tools/list_changed`.
 *
 * Each call is a session of its own (no transaction outlives a call). Rows handed to the agent are
 * capped (`max_rows`); the rest are read, counted and dropped, never held.
 *
 * The agent is a principal of its own: inside `hoop run` the calls use the run's credential;
 * otherwise `hoop mcp` begins a run of its own (`via: mcp`, the agent named by `--agent` or by
 * the MCP client's name) at the first call, for the connections `--connect` names (by default
 * every one the person may use then), and ends it when the client goes. It cannot contain the
 * agent that started it (`isolation: none`, said on stderr): for that, start the agent with
 * `hoop run`.
 *
 * @see https://modelcontextprotocol.io/specification/2025-06-18/server/tools
 */
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import * as z from 'zod';
import { AgentRun } from '../agent/agent-run.js';
import { followReview } from '../api-client/reviews.js';
import { listConnections } from '../api-client/connections.js';
import type { ResolvedTokenProvider } from '../auth/token-provider.js';
import { describeError, hoopSays } from '../errors.js';
import { whenAborted, type CliIo } from '../io.js';
import { createLogger, levelFromEnv, type Logger } from '../log.js';
import { agentName } from '../policy/principal.js';
import { cutValue } from '../recording/event-line.js';
import { VERSION } from '../version.js';
import { commandTokenProvider } from './client-config.js';
import { CommandRecords } from './client-records.js';
import { answer, describeSchema, failure, httpRequest, runStatements, type ToolAnswer } from './mcp-tools.js';
import { listRunbooks, runRunbook, whatStays } from '../api-client/runbooks.js';
import type { RunbookInfo, RunbookParamInfo } from '../api/answers.js';

/** How long `wait_for_review` waits by default, and at most (seconds). */
const DEFAULT_WAIT_SECONDS = 120;
const MAX_WAIT_SECONDS = 900;

/** Rows `run_sql` hands back by default, and at most. */
const DEFAULT_ROWS = 100;
const MAX_ROWS = 1000;

/** The options of `hoop mcp`. */
export interface McpOptions {
  gateway?: string;
  tokenFile?: string;
  caFile?: string;
  agent?: string;
  connect?: string[];
}

/** Serves MCP on `io`'s stdio until the client goes (or the signal aborts). */
export async function serveMcp(io: CliIo, opts: McpOptions): Promise<void> {
  // stdout carries the protocol: anything hoop has to say goes to stderr.
  const log = createLogger({ level: levelFromEnv(io.env, 'warn'), sink: io.stderr, fields: { component: 'mcp' } });
  const person = await commandTokenProvider(io, opts);
  const say = (line: string): void => void io.stderr.write(`${hoopSays(line)}\n`);
  if (person.source !== 'run') say('isolation: none: the agent that started hoop mcp runs as you and can read your hoop login; start the agent with hoop run to keep it out of its reach');
  /** The agent's run: the one hoop mcp is inside, or one of its own begun at the first call. */
  let ownRun: Promise<AgentRun> | undefined;
  const runProvider = async (): Promise<ResolvedTokenProvider> => {
    if (person.source === 'run') return person;
    ownRun ??= (async () => {
      const connections = opts.connect?.length ? opts.connect : (await listConnections({ gateway: person.gateway, ca: person.ca }, (await person.current()).token)).map((c) => c.name);
      const agent = agentName(opts.agent ?? server.server.getClientVersion()?.name ?? 'mcp');
      return AgentRun.begin({ person, connections, agent, via: 'mcp', isolation: 'none', say, log });
    })().catch((err: unknown) => {
      ownRun = undefined; // asked again at the next call
      throw err;
    });
    return (await ownRun).provider;
  };
  // Each call's own record, and what an earlier hoop (one killed, say) left in this machine's spool, go up in the background.
  const records = new CommandRecords(io, person, log);
  records.resume();
  const server = new McpServer({ name: 'hoop', version: VERSION });
  const guarded = async (work: () => Promise<ToolAnswer>): Promise<ToolAnswer> => {
    try {
      return await work();
    } catch (err) {
      return failure(describeError(err));
    }
  };

  registerTools(server, { io, log, records, runProvider, guarded });
  // The runbooks the agent may run are its run's, known once the client said its name.
  server.server.oninitialized = () => void registerRunbookTools(server, runProvider, guarded).catch((err: unknown) => say(`the runbooks you may run could not be listed: ${describeError(err)}`));

  const transport = new StdioServerTransport(io.stdin, io.stdout);
  // The client is gone when it closes our stdin or stdout (or closes the transport, or we are interrupted).
  const closed = new Promise<void>((resolve) => {
    server.server.onclose = resolve;
    io.stdin?.once('end', resolve);
    io.stdout.on('error', () => resolve());
  });
  try {
    await server.connect(transport);
    await Promise.race([closed, whenAborted(io.signal)]);
  } finally {
    await server.close();
    await records.finish((line) => void io.stderr.write(`${hoopSays(line)}\n`));
    await ownRun?.then(
      (run) => run.end(),
      () => undefined,
    );
    person.close();
  }
}

/** What the tools share: the CLI's io and log, the records, the agent's run, and a guard that turns a failure into a tool error. */
interface ToolContext {
  io: CliIo;
  log: Logger;
  records: CommandRecords;
  runProvider: () => Promise<ResolvedTokenProvider>;
  guarded: (work: () => Promise<ToolAnswer>) => Promise<ToolAnswer>;
}

/** Registers the tools: list_connections, describe_schema, run_sql, http_request and wait_for_review. */
function registerTools(server: McpServer, { io, log, records, runProvider, guarded }: ToolContext): void {
  server.registerTool(
    'list_connections',
    {
      title: 'Connections',
      description: 'The connections you may use through the hoop gateway (databases, and HTTP APIs for http_request), with their type, database and access mode.',
      annotations: { readOnlyHint: true },
    },
    () =>
      guarded(async () => {
        const provider = await runProvider();
        return answer(await listConnections({ gateway: provider.gateway, ca: provider.ca }, (await provider.current()).token));
      }),
  );

  server.registerTool(
    'describe_schema',
    {
      title: 'Describe a schema',
      description:
        'The tables and columns of a connection (from information_schema, through the gateway), optionally of one schema or table; a column the gateway masks for you says how (`masked`: redact, last4, hash or null), and `masking` says what else is masked.',
      inputSchema: {
        connection: z.string().describe('a connection name from list_connections'),
        schema: z.string().optional().describe('only this schema'),
        table: z.string().optional().describe('only this table'),
      },
      annotations: { readOnlyHint: true },
    },
    ({ connection, schema, table }) => guarded(async () => describeSchema({ io, log, provider: await runProvider(), records }, connection, schema, table)),
  );

  server.registerTool(
    'run_sql',
    {
      title: 'Run SQL',
      description:
        'Run SQL on a connection through the hoop gateway, under its policy: sensitive columns come back masked, statements the policy refuses are not run and come back as errors naming the rule. Each call is its own session. Say why in `intent`: it is recorded with the statements.',
      inputSchema: {
        connection: z.string().describe('a connection name from list_connections'),
        sql: z.string().min(1).describe('one or more statements'),
        intent: z.string().optional().describe('why you run this, in a sentence: recorded with the statements'),
        max_rows: z.number().int().min(1).max(MAX_ROWS).optional().describe(`rows returned per result (default ${DEFAULT_ROWS}, at most ${MAX_ROWS}); the rest are counted`),
      },
    },
    ({ connection, sql, intent, max_rows }) =>
      // The gateway keeps 4 KiB of each field: no more is sent.
      guarded(async () => {
        const ran = await runStatements({ io, log, provider: await runProvider(), records }, connection, sql, max_rows ?? DEFAULT_ROWS, {
          source: 'mcp',
          tool: 'run_sql',
          ...(intent ? { intent: cutValue(intent) } : {}),
        });
        return Array.isArray(ran) ? answer(ran.length === 1 ? ran[0] : ran) : ran;
      }),
  );

  server.registerTool(
    'http_request',
    {
      title: 'Call an HTTP API',
      description:
        "Make one request on an http connection through the hoop gateway, which adds the API's credential (you never hold it) and applies its policy: a request the policy refuses is not sent and comes back as an error naming the rule; one held for review comes back with its review id. The answer's body is masked as the gateway masks it.",
      inputSchema: {
        connection: z.string().describe('an http connection name from list_connections'),
        method: z
          .string()
          .regex(/^[A-Za-z]{1,32}$/)
          .describe('GET, POST, PUT, PATCH, DELETE, …'),
        path: z
          .string()
          .regex(/^\/\S*$/)
          .describe("the path under the connection's base URL, with its query: /orders?status=open"),
        headers: z.record(z.string(), z.string()).optional().describe('fields to send (the gateway drops any credential you send)'),
        json: z.unknown().optional().describe('a JSON body (sent as application/json)'),
        body: z.string().optional().describe('a body as text (give its content-type in headers)'),
        intent: z.string().optional().describe('why you make this request, in a sentence: recorded with it'),
      },
    },
    ({ connection, method, path, headers, json, body, intent }) =>
      guarded(async () =>
        httpRequest(
          { io, log, provider: await runProvider(), records },
          connection,
          {
            method,
            path,
            headers: Object.entries(headers ?? {}).map(([n, v]) => `${n}: ${v}`),
            ...(json !== undefined ? { json: JSON.stringify(json) } : {}),
            ...(body !== undefined ? { data: body } : {}),
          },
          intent,
        ),
      ),
  );

  server.registerTool(
    'wait_for_review',
    {
      title: 'Wait for a review',
      description: 'Wait for the decision on a statement run_sql (or a request http_request) left pending review; once approved, call it again with exactly the same arguments.',
      inputSchema: {
        id: z
          .string()
          .regex(/^rv-[0-9a-f]{16}$/)
          .describe('the review id run_sql returned'),
        timeout_seconds: z.number().int().min(0).max(MAX_WAIT_SECONDS).optional().describe(`how long to wait (default ${DEFAULT_WAIT_SECONDS}, at most ${MAX_WAIT_SECONDS})`),
      },
      annotations: { readOnlyHint: true },
    },
    ({ id, timeout_seconds }) =>
      guarded(async () => {
        const provider = await runProvider();
        const r = await followReview({ gateway: provider.gateway, ca: provider.ca }, async () => (await provider.current()).token, id, timeout_seconds ?? DEFAULT_WAIT_SECONDS);
        const decisions = r.decisions.map((d) => ({ by: d.email ?? d.subject, decision: d.decision, ...(d.reason ? { reason: d.reason } : {}) }));
        const next =
          r.state === 'approved'
            ? 'Approved: call run_sql (or http_request) again with exactly the same arguments; it runs once.'
            : r.state === 'pending'
              ? `Still pending: call wait_for_review again, or stop here (it expires ${r.expiresAt}).`
              : 'It will not run: do not send it again as it is.';
        return answer({ id: r.id, state: r.state, decisions, ...(r.closedBecause ? { because: r.closedBecause } : {}), next });
      }),
  );
}

/** A parameter's input schema as its runbook declares it (the gateway checks each value again). */
function paramSchema(p: RunbookParamInfo): z.ZodType {
  let t: z.ZodType;
  if (p.type === 'integer')
    t = z
      .number()
      .int()
      .min(p.min ?? Number.MIN_SAFE_INTEGER)
      .max(p.max ?? Number.MAX_SAFE_INTEGER);
  else if (p.type === 'enum') t = z.enum(p.values as [string, ...string[]]);
  else if (p.type === 'string') t = z.string().max(p.maxLength ?? 256);
  else t = z.string().describe(p.type === 'uuid' ? 'a UUID' : 'a date, YYYY-MM-DD');
  const described = p.description ? t.describe(p.description) : t;
  return p.required && p.default === undefined ? described : described.optional();
}

/** A runbook's tool description: what it does, where, and whether a run waits for a reviewer. */
function runbookToolText(r: RunbookInfo): string {
  return `${r.description} (runbook ${r.name} on ${r.connection}${r.steps.every((s) => 'sql' in s) ? ', one transaction' : ''}${r.review ? '; each run waits for a reviewer: a held run comes back with its review id, call wait_for_review, then this tool again with the same arguments' : ''})`;
}

/** Registers a tool `runbook_<name>` for each runbook the agent's run may run. */
async function registerRunbookTools(server: McpServer, runProvider: () => Promise<ResolvedTokenProvider>, guarded: ToolContext['guarded']): Promise<void> {
  const provider = await runProvider();
  const endpoint = { gateway: provider.gateway, ...(provider.ca ? { ca: provider.ca } : {}) };
  for (const r of await listRunbooks(endpoint, (await provider.current()).token)) {
    server.registerTool(
      `runbook_${r.name}`,
      { title: `Runbook ${r.name}`, description: runbookToolText(r), inputSchema: Object.fromEntries(r.parameters.map((p) => [p.name, paramSchema(p)])) },
      (args: Record<string, unknown>) =>
        guarded(async () => {
          const run = await runRunbook(endpoint, (await provider.current()).token, r.name, { params: args, text: false, via: 'mcp', deadlineSeconds: r.deadlineSeconds });
          if (run.outcome === 'failed') {
            const f = run.failed!;
            return failure(`step ${f.step}: ${f.message} (${whatStays(f)}; session ${run.session})`);
          }
          if (run.outcome === 'held') {
            return answer({
              review: run.held!.review,
              state: 'pending',
              next: `Held for review ${run.held!.review}: call wait_for_review with this id; once approved, call runbook_${r.name} again with exactly the same arguments, and it runs once.`,
            });
          }
          return answer({ session: run.session, steps: run.steps });
        }),
    );
  }
}
