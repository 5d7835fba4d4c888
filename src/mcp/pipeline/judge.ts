/**
 * The judge, as a stage (./stages.ts): an agent's request read by what it asks for and decided by
 * the session's mcp policy. `tools/call`, `resources/read` and `resources/subscribe`,
 * `prompts/get` are judged (allowed, refused, or held for review); `initialize`, `ping`, the
 * listings, `completion/complete` (of what the listings show), `logging/setLevel`,
 * `resources/unsubscribe` are relayed, `initialize` without the capabilities the policy does not
 * let the server use; any other method is answered -32601 (the gateway relays only what it can judge).
 */
import type { McpAsk, McpVerdict } from '../../policy/mcp.js';
import { hoopSays } from '../../errors.js';
import type { SessionMcp, SessionReport } from '../../session/engine.js';
import { messageLine, RpcError } from '../wire/json-rpc.js';
import type { AgentRequest, InFlight, McpStage, RequestDecision } from './stages.js';

/** Methods the agent may send that the policy judges, by what they ask for. */
const JUDGED: Record<string, (p: Record<string, unknown>) => McpAsk | string> = {
  'tools/call': (p) =>
    typeof p.name !== 'string' ? 'params.name must be the name of a tool' : readable(p.arguments) ? { kind: 'tool', name: p.name, arguments: p.arguments ?? {} } : 'params.arguments must be an object',
  'resources/read': (p) => (typeof p.uri === 'string' ? { kind: 'resource', uri: p.uri } : 'params.uri must be a URI'),
  'resources/subscribe': (p) => (typeof p.uri === 'string' ? { kind: 'resource', uri: p.uri } : 'params.uri must be a URI'),
  'prompts/get': (p) =>
    typeof p.name !== 'string'
      ? 'params.name must be the name of a prompt'
      : readable(p.arguments)
        ? { kind: 'prompt', name: p.name, arguments: p.arguments ?? {} }
        : 'params.arguments must be an object',
};

/** Whether a call's `arguments` are what the judge reads by name: an object, or none. */
function readable(args: unknown): boolean {
  return args === undefined || (typeof args === 'object' && args !== null && !Array.isArray(args));
}

/** Methods of the agent relayed as they are. */
const RELAYED = new Set(['initialize', 'ping', 'tools/list', 'resources/list', 'resources/templates/list', 'prompts/list', 'completion/complete', 'logging/setLevel', 'resources/unsubscribe']);

/** The agent's capabilities that let the server ask it something, by the request each lets the server send. */
const SERVER_ASKS: Record<string, string> = { sampling: 'sampling/createMessage', elicitation: 'elicitation/create', roots: 'roots/list' };

/** What a `completion/complete` completes the arguments of: a prompt by name, or a resource (template) by URI. */
function completionRef(params: Record<string, unknown> | undefined): { kind: 'prompt' | 'resource'; name: string } | undefined {
  const ref = params?.ref as { type?: unknown; name?: unknown; uri?: unknown } | undefined;
  if (ref?.type === 'ref/prompt' && typeof ref.name === 'string') return { kind: 'prompt', name: ref.name };
  if (ref?.type === 'ref/resource' && typeof ref.uri === 'string') return { kind: 'resource', name: ref.uri };
  return undefined;
}

/** See the module documentation. */
export class McpRequestJudge implements McpStage {
  readonly #mcp: SessionMcp | undefined;
  readonly #report: SessionReport | undefined;

  constructor(mcp: SessionMcp | undefined, report: SessionReport | undefined) {
    this.#mcp = mcp;
    this.#report = report;
  }

  request(m: AgentRequest, line: string): RequestDecision {
    // Own keys only: a method named after Object.prototype's (`constructor`, `hasOwnProperty`) is no method of the table's.
    const judged = Object.hasOwn(JUDGED, m.method) ? JUDGED[m.method] : undefined;
    if (!judged) return this.#relayed(m, line);
    const ask = judged(m.params ?? {});
    if (typeof ask === 'string') return { do: 'answer', code: RpcError.invalidParams, message: hoopSays(ask) };
    const verdict: McpVerdict = this.#mcp ? this.#mcp.decide(ask) : { action: 'allow', reason: 'no mcp policy' };
    const flight: InFlight = { method: m.method, ...(ask.kind === 'tool' ? { tool: ask.name } : {}) };
    if (ask.kind === 'tool') this.#report?.tool(ask.name);
    if (verdict.action === 'allow') return { do: 'forward', line, flight };
    if (verdict.action === 'review') return { do: 'review', ask, verdict, flight };
    return { do: 'refuse', verdict };
  }

  /** A request of a method relayed as it is (or refused where it would reach what the policy hides). */
  #relayed(m: AgentRequest, line: string): RequestDecision {
    if (!RELAYED.has(m.method)) return { do: 'answer', code: RpcError.methodNotFound, message: `hoop: method ${m.method} is not one the gateway relays` };
    // A completion of a prompt's or a resource template's arguments asks the server about it: not of one the listings hide.
    const ref = m.method === 'completion/complete' ? completionRef(m.params) : undefined;
    if (ref && this.#mcp && !this.#mcp.shows(ref.kind, ref.name))
      return { do: 'refuse', verdict: { action: 'deny', rule: 'hoop:completion', reason: `the policy refuses every use of ${ref.kind} ${ref.name}, so its arguments are not completed` } };
    return { do: 'forward', line: m.method === 'initialize' ? this.#initialize(m, line) : line, flight: { method: m.method } };
  }

  /**
   * The agent's `initialize` as the server gets it: without the capabilities (sampling,
   * elicitation, roots) the policy does not let the server use, so that the server does not ask.
   */
  #initialize(m: AgentRequest, line: string): string {
    const capabilities = m.params?.capabilities;
    if (typeof capabilities !== 'object' || capabilities === null) return line;
    const kept = Object.fromEntries(Object.entries(capabilities).filter(([k]) => !Object.hasOwn(SERVER_ASKS, k) || this.#mcp?.serverMay(SERVER_ASKS[k]!) === true));
    return messageLine({ jsonrpc: '2.0', id: m.id, method: m.method, params: { ...m.params, capabilities: kept } });
  }
}
