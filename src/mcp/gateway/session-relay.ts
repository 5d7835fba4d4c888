/**
 * One MCP session at the gateway: the agent's messages, one per line over the tunnel, judged and
 * relayed to the connection's server; the server's answered back filtered and masked; every line
 * either way recorded. The relay is the session's one owner of what is in flight: the agent's
 * requests forwarded or held, and the server's requests the agent may answer.
 *
 * The agent's side:
 * - `tools/call`, `resources/read` and `resources/subscribe`, `prompts/get` are judged by the
 *   session's mcp policy: allowed ones are forwarded, denied ones answered with error -32001 (the
 *   rule and its message; the server never hears of them), `review` ones held (nothing reaches
 *   the server) until a reviewer decides, then forwarded or refused; a `notifications/cancelled`
 *   withdraws a held one;
 * - `initialize`, `ping`, the listings, `completion/complete`, `logging/setLevel`,
 *   `resources/unsubscribe` are forwarded; any other method is answered -32601 (the gateway relays
 *   only what it can judge);
 * - a line that is not one JSON-RPC message (not JSON, a batch, past 4 MiB) is answered and ends
 *   the session; at most {@link MAX_IN_FLIGHT} requests may wait at once, and progress
 *   notifications are relayed at most {@link PROGRESS_PER_SECOND} a second either way.
 *
 * The server's side: answers to requests the agent made, with `tools/list`, `resources/list` and
 * `prompts/list` showing only what the policy could allow, and every string of a tool's result, a
 * resource and a prompt masked by the masking detectors; its requests to the agent (sampling,
 * elicitation, roots) refused unless `mcp.serverRequests` allows them (a `ping` the gateway answers
 * itself); answers nobody asked for, unknown requests and notifications dropped.
 *
 * @see https://modelcontextprotocol.io/specification/2025-06-18/basic/lifecycle
 * @see https://modelcontextprotocol.io/specification/2025-06-18/basic/utilities/cancellation
 */
import { createHash } from 'node:crypto';
import type { McpConnection } from '../../config/connection.js';
import type { SecretRef } from '../../config/secrets.js';
import { describeError, hoopSays } from '../../errors.js';
import { MaskingRules } from '../../policy/masking/rules.js';
import { redactDetected } from '../../policy/sql/redact.js';
import type { McpAsk, McpVerdict } from '../../policy/mcp.js';
import { type CloseReason, type PendingReview, type SessionOutcome, sessionEndOf, type TunnelSession } from '../../session/engine.js';
import { RelayEnd } from '../../session/relay-end.js';
import { errorLine, idKey, type JsonRpcId, LineReader, MAX_LINE_BYTES, type McpMessage, messageLine, type NotAMessage, parseMessage, RpcError } from '../wire/json-rpc.js';
import { MCP_FROM_AGENT, MCP_TO_AGENT, recordLine } from '../pipeline/records.js';
import { type McpUpstream, openUpstream } from './upstream.js';

/** Options of the MCP engine. */
export interface McpEngineOptions {
  resolveSecret: (ref: SecretRef) => Promise<string>;
  /** Where a program runs when its connection names no `cwd`. */
  workDir: string;
}

/** Requests of the agent in flight (forwarded or held) at once; more are refused. */
export const MAX_IN_FLIGHT = 64;
/** Requests of the server to the agent in flight at once. */
const MAX_SERVER_ASKS = 16;
/** Progress notifications relayed per second each way (a burst of twice as many); the rest are dropped. */
export const PROGRESS_PER_SECOND = 20;
/** The longest text of a held call a reviewer is shown; a longer one is refused, not held. */
const MAX_REVIEW_TEXT = 64 * 1024;
/**
 * The most bytes waiting for the agent to read; past it the session ends. The agent's own input
 * waits while it is behind, and a stdio server's output too; a Streamable HTTP server's cannot.
 */
const MAX_TO_AGENT_BEHIND = 32 * 1024 * 1024;
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
/** The agent's notifications relayed (cancellations and progress are handled on their own). */
const AGENT_NOTIFICATIONS = new Set(['notifications/initialized', 'notifications/roots/list_changed']);
/** The server's notifications relayed. */
const SERVER_NOTIFICATIONS = new Set([
  'notifications/message',
  'notifications/resources/updated',
  'notifications/resources/list_changed',
  'notifications/tools/list_changed',
  'notifications/prompts/list_changed',
]);
/** Listings filtered by what the policy shows: the answer's list, and the kind and name of each item. */
const LISTINGS: Record<string, { list: string; kind: McpAsk['kind']; key: string }> = {
  'tools/list': { list: 'tools', kind: 'tool', key: 'name' },
  'resources/list': { list: 'resources', kind: 'resource', key: 'uri' },
  'prompts/list': { list: 'prompts', kind: 'prompt', key: 'name' },
};

/** A request of the agent the gateway has taken: forwarded to the server, or held for a review. */
interface InFlight {
  method: string;
  /** The tool of a `tools/call`. */
  tool?: string;
  held?: PendingReview;
}

/** Progress notifications allowed now: a bucket of {@link PROGRESS_PER_SECOND} a second. */
class Rate {
  #tokens = 2 * PROGRESS_PER_SECOND;
  #at = Date.now();
  dropped = 0;

  take(): boolean {
    const now = Date.now();
    this.#tokens = Math.min(2 * PROGRESS_PER_SECOND, this.#tokens + ((now - this.#at) / 1000) * PROGRESS_PER_SECOND);
    this.#at = now;
    if (this.#tokens < 1) {
      this.dropped++;
      return false;
    }
    this.#tokens--;
    return true;
  }
}

/** One MCP session; see the module documentation. */
export class McpSessionRelay {
  readonly #session: TunnelSession<McpConnection>;
  readonly #o: McpEngineOptions;
  readonly #inFlight = new Map<string, InFlight>();
  readonly #serverAsks = new Set<string>();
  readonly #progress = { agent: new Rate(), server: new Rate() };
  readonly #masking: MaskingRules | undefined;
  #upstream: McpUpstream | undefined;
  /** Lines from the agent that came before the server was open. */
  #early: string[] | undefined = [];
  /** Why the agent's input waits: the server is behind taking it, or the agent behind reading its answers. */
  readonly #agentWaits = new Set<'server' | 'agent'>();
  /** The server has not taken what the gateway last answered it. */
  #serverBehind = false;
  /** While the agent is behind reading: resolves when it has read what waits (one listener, however many lines are sent meanwhile). */
  #agentDrained: Promise<void> | undefined;
  /** How the session ends (src/session/relay-end.ts). */
  readonly #relayEnd: RelayEnd;

  constructor(session: TunnelSession<McpConnection>, o: McpEngineOptions) {
    this.#session = session;
    this.#o = o;
    const m = session.masking;
    const rules = m ? MaskingRules.of(m.policy, m.key) : undefined;
    this.#masking = rules && rules.detectors.length > 0 ? rules : undefined;
    this.#relayEnd = new RelayEnd(session, () => this.#aborted());
  }

  /** Serves the session until it ends; never rejects. */
  start(): Promise<SessionOutcome> {
    const { channel } = this.#session;
    const reader = new LineReader(
      (text) => this.#fromAgentLine(text),
      (bytes) => {
        this.#send(errorLine(null, RpcError.invalidRequest, `hoop: a message over ${MAX_LINE_BYTES} bytes (${bytes} so far); the session ends`));
        this.#end('protocol-violation', `the agent sent a message over ${MAX_LINE_BYTES} bytes`);
      },
    );
    channel.on('data', (b: Buffer) => {
      this.#relayEnd.bytes.fromClient += b.length;
      reader.push(b);
    });
    channel.on('end', () => this.#end('client-disconnected'));
    channel.on('error', (err: Error) => this.#end('client-disconnected', describeError(err)));
    channel.on('close', () => {
      this.#end('client-disconnected');
      this.#finish();
    });
    this.#open();
    return this.#relayEnd.outcome;
  }

  /** Opens the server; what the agent sent meanwhile goes to it in order, or is answered with why it could not open. */
  #open(): void {
    const { connection, log } = this.#session;
    openUpstream(connection, this.#o.resolveSecret, this.#o.workDir, {
      message: (m) => this.#fromServer(m),
      closed: (why, stderr) => {
        log.info('mcp.upstream-closed', { session: this.#session.id, connection: connection.name, why, ...(stderr !== undefined ? { stderr } : {}) });
        this.#failInFlight(hoopSays(why));
        this.#end('upstream-closed', why);
      },
    }).then(
      (u) => {
        if (this.#relayEnd.ending) return void u.close();
        this.#upstream = u;
        const early = this.#early ?? [];
        this.#early = undefined;
        for (const line of early) this.#toServer(line);
      },
      (err: unknown) => {
        const why = describeError(err);
        log.warn('mcp.upstream-failed', { session: this.#session.id, connection: connection.name, error: why });
        this.#session.recording?.stream.event({ t: 'mcp-upstream-failed', at: Date.now(), message: why });
        this.#early = undefined;
        this.#failInFlight(`hoop: the MCP server of "${connection.name}" could not be reached: ${why}`);
        this.#end('upstream-unavailable', why);
      },
    );
  }

  /**
   * An agent's line as it is written down: what the masking detectors find in its strings and
   * numbers (a card in a `write_file`'s content) as keyed hashes (src/policy/sql/redact.ts), the
   * line as sent when they find nothing.
   */
  #redacted(text: string, key: Buffer | undefined): string {
    const detectors = this.#masking?.detectors;
    if (!detectors?.length) return text;
    const o = { ...(key ? { key } : {}), detectors };
    if (!redactDetected(text, o).redacted) return text;
    try {
      return JSON.stringify(mapStrings(JSON.parse(text), (s) => redactDetected(s, o).text));
    } catch {
      return redactDetected(text, o).text;
    }
  }

  /** One line from the agent: recorded, then judged and relayed, refused, or held. */
  #fromAgentLine(text: string): void {
    if (this.#relayEnd.ending) return;
    const recording = this.#session.recording;
    if (recording) recordLine(recording.stream, MCP_FROM_AGENT, this.#redacted(text, recording.redactionKey));
    const m = parseMessage(text);
    if ('invalid' in m) {
      this.#send(errorLine(m.id, m.code, `hoop: ${m.invalid}; the session ends`));
      return this.#end('protocol-violation', `the agent sent ${m.invalid}`);
    }
    try {
      // What the server is sent is the message as the gateway read it, written anew: never bytes it did not judge or a reviewer did not see (a duplicate key, a number past double precision).
      const line = messageLine(asRead(m));
      if (m.kind === 'request') return this.#request(m, line);
      if (m.kind === 'notification') return this.#agentNotification(m, line);
      // An answer to the server's request: only to one it made and the agent was given.
      if (this.#serverAsks.delete(idKey(m.id))) this.#toServer(line);
    } catch (err) {
      // Nothing the agent sends may throw out of the relay (into the tunnel, which would end every stream of the connection).
      this.#session.log.warn('mcp.agent-message-failed', { session: this.#session.id, error: describeError(err) });
      this.#send(errorLine(m.kind === 'request' ? m.id : null, RpcError.invalidRequest, 'hoop: a message the gateway could not handle; the session ends'));
      this.#end('protocol-violation', `the agent sent a message the gateway could not handle: ${describeError(err)}`);
    }
  }

  #request(m: Extract<McpMessage, { kind: 'request' }>, text: string): void {
    const key = idKey(m.id);
    if (this.#inFlight.has(key)) return this.#answerError(m.id, RpcError.invalidRequest, `hoop: request id ${JSON.stringify(m.id)} is already in flight`);
    if (this.#inFlight.size >= MAX_IN_FLIGHT) return this.#answerError(m.id, RpcError.refused, `hoop: ${MAX_IN_FLIGHT} requests are in flight on this session; wait for their answers`);
    // Own keys only: a method named after Object.prototype's (`constructor`, `hasOwnProperty`) is no method of the table's.
    const judged = Object.hasOwn(JUDGED, m.method) ? JUDGED[m.method] : undefined;
    if (!judged) {
      if (!RELAYED.has(m.method)) return this.#answerError(m.id, RpcError.methodNotFound, `hoop: method ${m.method} is not one the gateway relays`);
      // A completion of a prompt's or a resource template's arguments asks the server about it: not of one the listings hide.
      const ref = m.method === 'completion/complete' ? completionRef(m.params) : undefined;
      if (ref && this.#session.lane?.mcp && !this.#session.lane.mcp.shows(ref.kind, ref.name))
        return this.#refuse(m.id, { action: 'deny', rule: 'hoop:completion', reason: `the policy refuses every use of ${ref.kind} ${ref.name}, so its arguments are not completed` });
      this.#inFlight.set(key, { method: m.method });
      return this.#toServer(m.method === 'initialize' ? this.#initialize(m) : text);
    }
    const ask = judged(m.params ?? {});
    if (typeof ask === 'string') return this.#answerError(m.id, RpcError.invalidParams, hoopSays(ask));
    const mcp = this.#session.lane?.mcp;
    const verdict: McpVerdict = mcp ? mcp.decide(ask) : { action: 'allow', reason: 'no mcp policy' };
    const flight: InFlight = { method: m.method, ...(ask.kind === 'tool' ? { tool: ask.name } : {}) };
    if (ask.kind === 'tool') this.#session.report?.tool(ask.name);
    if (verdict.action === 'allow') {
      this.#inFlight.set(key, flight);
      return this.#toServer(text);
    }
    if (verdict.action === 'review') return this.#hold(m, text, ask, verdict, flight);
    this.#refuse(m.id, verdict);
  }

  /**
   * The agent's `initialize` as the server gets it: without the capabilities (sampling,
   * elicitation, roots) the policy does not let the server use, so that the server does not ask.
   */
  #initialize(m: Extract<McpMessage, { kind: 'request' }>): string {
    const capabilities = m.params?.capabilities;
    if (typeof capabilities !== 'object' || capabilities === null) return messageLine(asRead(m));
    const asks: Record<string, string> = { sampling: 'sampling/createMessage', elicitation: 'elicitation/create', roots: 'roots/list' };
    const kept = Object.fromEntries(Object.entries(capabilities).filter(([k]) => !Object.hasOwn(asks, k) || this.#session.lane?.mcp?.serverMay(asks[k]!) === true));
    return messageLine({ ...asRead(m), params: { ...m.params, capabilities: kept } });
  }

  /** Holds a call a `review` rule matched until a reviewer decides; nothing reaches the server meanwhile. */
  #hold(m: Extract<McpMessage, { kind: 'request' }>, text: string, ask: McpAsk, verdict: McpVerdict, flight: InFlight): void {
    const { reviews } = this.#session;
    const shown = `${m.method} ${JSON.stringify(m.params ?? {}, null, 2)}`;
    if (!reviews || !verdict.review) return this.#refuse(m.id, { ...verdict, action: 'deny', reason: `${verdict.reason}; it asks for a review, and nobody may review it here` });
    if (shown.length > MAX_REVIEW_TEXT)
      return this.#refuse(m.id, { ...verdict, action: 'deny', reason: `${verdict.reason}; it asks for a review, and its arguments are over ${MAX_REVIEW_TEXT} characters to show` });
    // What would run: the method and its parameters as sent (the id is the client's to choose again).
    const digest = createHash('sha256')
      .update(`${m.method}\n${JSON.stringify(m.params ?? {})}`)
      .digest('hex');
    const held = reviews.request({
      sql: shown,
      digest,
      ...(verdict.rule !== undefined ? { rule: verdict.rule } : {}),
      ...(verdict.message !== undefined ? { message: verdict.message } : {}),
      reason: verdict.reason,
      settings: verdict.review,
    });
    const key = idKey(m.id);
    this.#inFlight.set(key, { ...flight, held });
    const what = ask.kind === 'resource' ? ask.uri : ask.name;
    this.#notice(`hoop: ${m.method} of ${what} is held for review ${held.id}${verdict.rule ? ` (rule ${verdict.rule})` : ''}; it runs once a reviewer approves: hoop review approve ${held.id}`);
    void held.decided.then((outcome) => {
      const flightNow = this.#inFlight.get(key);
      if (flightNow?.held !== held || this.#relayEnd.ending) return;
      if (outcome.state === 'approved') {
        this.#inFlight.set(key, flight);
        return this.#toServer(text);
      }
      this.#inFlight.delete(key);
      if (outcome.state === 'withdrawn') return;
      const why = outcome.state === 'denied' ? `denied by ${outcome.by}${outcome.reason ? `: ${outcome.reason}` : ''}` : `expired${outcome.because ? ` (${outcome.because})` : ''}`;
      this.#answerError(m.id, RpcError.refused, `hoop: review ${held.id} ${why}; the call did not run`, { review: held.id, state: outcome.state });
    });
  }

  /** Answers a refused request with the rule and its message, and tells the session's report. */
  #refuse(id: JsonRpcId, verdict: McpVerdict): void {
    const { report, log } = this.#session;
    const rule = verdict.rule ?? 'mcp.default';
    log.info('mcp.refused', { session: this.#session.id, rule, reason: verdict.reason });
    report?.refused({ action: verdict.action === 'review' ? 'review' : 'deny', rule, reason: verdict.reason, message: verdict.message ?? '' });
    this.#answerError(id, RpcError.refused, `hoop: ${verdict.message ?? 'the policy does not allow this'} (${verdict.reason})`, { rule, reason: verdict.reason });
  }

  #agentNotification(m: Extract<McpMessage, { kind: 'notification' }>, text: string): void {
    if (m.method === 'notifications/cancelled') {
      const requestId = m.params?.requestId;
      if (typeof requestId !== 'string' && typeof requestId !== 'number') return;
      const flight = this.#inFlight.get(idKey(requestId));
      if (!flight) return;
      if (flight.held) {
        this.#inFlight.delete(idKey(requestId));
        return flight.held.withdraw('cancel');
      }
      // The server need not answer a cancelled request, and the agent expects no answer (a late one is dropped): it waits no more.
      this.#inFlight.delete(idKey(requestId));
      return this.#toServer(text);
    }
    if (m.method === 'notifications/progress') return void (this.#progress.agent.take() && this.#toServer(text));
    if (AGENT_NOTIFICATIONS.has(m.method)) this.#toServer(text);
  }

  /** One message from the server: an answer to the agent, filtered and masked; its own requests and notifications as the policy says. */
  #fromServer(m: McpMessage | NotAMessage): void {
    if (this.#relayEnd.ending) return;
    try {
      this.#fromServerMessage(m);
    } catch (err) {
      // Nothing the server sends may throw out of the relay (out of its stdout's handler: the gateway's process would end).
      this.#session.log.warn('mcp.server-message-failed', { session: this.#session.id, error: describeError(err) });
      this.#failInFlight('hoop: the MCP server sent a message the gateway could not handle; the session ends');
      this.#end('protocol-violation', `the MCP server sent a message the gateway could not handle: ${describeError(err)}`);
    }
  }

  #fromServerMessage(m: McpMessage | NotAMessage): void {
    if ('invalid' in m) {
      this.#failInFlight(`hoop: the MCP server sent ${m.invalid}; the session ends`);
      return this.#end('protocol-violation', `the MCP server sent ${m.invalid}`);
    }
    if (m.kind === 'response') {
      const key = idKey(m.id);
      const flight = this.#inFlight.get(key);
      if (!flight || flight.held) return;
      this.#inFlight.delete(key);
      return this.#send(messageLine(this.#answer(flight, m.raw)));
    }
    if (m.kind === 'request') {
      if (m.method === 'ping') return this.#answerServer(messageLine({ jsonrpc: '2.0', id: m.id, result: {} }));
      const mcp = this.#session.lane?.mcp;
      if (!mcp?.serverMay(m.method) || this.#serverAsks.size >= MAX_SERVER_ASKS) {
        // Recorded, not counted as the agent's refusal (nor told to alerts): the server asked, not the agent.
        this.#session.recording?.stream.event({ t: 'mcp-server-request-refused', at: Date.now(), method: m.method });
        const code = Object.hasOwn(SERVER_METHODS, m.method) ? RpcError.refused : RpcError.methodNotFound;
        return this.#answerServer(errorLine(m.id, code, `hoop: the policy does not let this MCP server send ${m.method} to the agent (mcp.serverRequests)`));
      }
      this.#serverAsks.add(idKey(m.id));
      return this.#send(messageLine(m.raw));
    }
    if (m.method === 'notifications/progress') return void (this.#progress.server.take() && this.#send(messageLine(this.#masked(undefined, m.raw, 'params'))));
    if (m.method === 'notifications/cancelled') {
      const id = m.params?.requestId;
      if ((typeof id === 'string' || typeof id === 'number') && this.#serverAsks.delete(idKey(id))) this.#send(messageLine(m.raw));
      return;
    }
    // The server's log is read by the detectors as its results are (a server may log the row it read).
    if (m.method === 'notifications/message') return this.#send(messageLine(this.#masked(undefined, m.raw, 'params')));
    // A resource's update names its URI: not one the listings hide.
    const uri = m.method === 'notifications/resources/updated' ? m.params?.uri : undefined;
    if (typeof uri === 'string' && this.#session.lane?.mcp && !this.#session.lane.mcp.shows('resource', uri)) return;
    if (SERVER_NOTIFICATIONS.has(m.method)) this.#send(messageLine(m.raw));
  }

  /** The server's answer to `flight` as the agent receives it: listings filtered, results masked. */
  #answer(flight: InFlight, raw: Record<string, unknown>): Record<string, unknown> {
    const result = raw.result;
    // An error answer to what the detectors read (a server's error may quote the row it failed on) is read as its result is.
    if ('error' in raw) return Object.hasOwn(MASKED, flight.method) ? this.#masked(flight, raw, 'error') : raw;
    if (Object.hasOwn(MASKED, flight.method)) return this.#masked(flight, raw, 'result');
    if (typeof result !== 'object' || result === null) return raw;
    if (flight.method === 'initialize') {
      const version = (result as { protocolVersion?: unknown }).protocolVersion;
      if (typeof version === 'string') this.#upstream?.agreed(version);
      // The server's instructions go to the agent's model: read by the detectors as a result is.
      return this.#masked(flight, raw, 'result');
    }
    const listing = Object.hasOwn(LISTINGS, flight.method) ? LISTINGS[flight.method] : undefined;
    const mcp = this.#session.lane?.mcp;
    if (listing && mcp) {
      const items = (result as Record<string, unknown>)[listing.list];
      if (!Array.isArray(items)) return raw;
      const shown = items.filter((item: unknown) => {
        const name = (item as Record<string, unknown> | null)?.[listing.key];
        return typeof name === 'string' && mcp.shows(listing.kind, name);
      });
      return shown.length === items.length ? raw : { ...raw, result: { ...result, [listing.list]: shown } };
    }
    return raw;
  }

  /** `raw` with every string (and key) of its `field` masked by the detectors; `raw` itself when none matched. */
  #masked(flight: InFlight | undefined, raw: Record<string, unknown>, field: string): Record<string, unknown> {
    const masking = this.#masking;
    if (!masking) return raw;
    let changed = false;
    const masked = mapStrings(raw[field], (s) => {
      const out = masking.maskText(s);
      if (out.changed) changed = true;
      return out.text;
    });
    if (!changed) return raw;
    this.#session.report?.masked(flight?.tool !== undefined ? `tool:${flight.tool}` : (flight?.method ?? String(raw.method)), 'detector');
    return { ...raw, [field]: masked };
  }

  /** Sends a line to the server (or keeps it until the server is open); the agent's side waits while the server is behind. */
  #toServer(line: string): void {
    // Before the server is open, at most what a session may have in flight waits (a flood of notifications is dropped).
    if (this.#early) return void (this.#early.length < 4 * MAX_IN_FLIGHT && this.#early.push(line));
    const u = this.#upstream;
    if (!u || this.#relayEnd.ending) return;
    if (!u.send(line.endsWith('\n') ? line : `${line}\n`)) {
      this.#agentWait('server', true);
      void u.drained().then(() => this.#agentWait('server', false));
    }
  }

  /**
   * Sends the server the gateway's own answer to its request (a ping, a refusal), unless the
   * server is not reading what it is sent: then the answer is dropped (a server that asks without
   * reading would have the gateway hold every answer).
   */
  #answerServer(line: string): void {
    const u = this.#upstream;
    if (!u || this.#serverBehind) return;
    if (!u.send(line)) {
      this.#serverBehind = true;
      void u.drained().then(() => (this.#serverBehind = false));
    }
  }

  /** Stops (or, once no reason is left, restarts) reading the agent's input. */
  #agentWait(why: 'server' | 'agent', waits: boolean): void {
    const { channel } = this.#session;
    const before = this.#agentWaits.size;
    if (waits) this.#agentWaits.add(why);
    else this.#agentWaits.delete(why);
    if (before === 0 && this.#agentWaits.size > 0) channel.pause();
    else if (before > 0 && this.#agentWaits.size === 0) channel.resume();
  }

  /** Sends a line to the agent, recorded; the server's side waits while the agent (or the recording) is behind. */
  #send(line: string): void {
    const { channel, recording } = this.#session;
    if (channel.destroyed || channel.writableEnded) return;
    if (recording) recordLine(recording.stream, MCP_TO_AGENT, line);
    const behind = !channel.write(line);
    if (behind && channel.writableLength > MAX_TO_AGENT_BEHIND && !this.#relayEnd.ending) {
      this.#session.log.warn('mcp.agent-behind', { session: this.#session.id, bytes: channel.writableLength });
      return this.#end('protocol-violation', `the agent did not read ${channel.writableLength} bytes sent to it`);
    }
    if (behind)
      this.#agentDrained ??= new Promise<void>((r) =>
        channel.once('drain', () => {
          this.#agentDrained = undefined;
          r();
        }),
      );
    const waits = behind ? this.#agentDrained : recording?.stream.behind;
    // An agent that does not read what it is answered is read no more until it does: its answers would pile up in the gateway.
    if (behind) {
      this.#agentWait('agent', true);
      void waits!.then(() => this.#agentWait('agent', false));
    }
    if (waits && this.#upstream) {
      const u = this.#upstream;
      u.pause();
      void waits.then(() => u.resume());
    }
  }

  #answerError(id: JsonRpcId | null, code: number, message: string, data?: unknown): void {
    this.#send(errorLine(id, code, message, data));
  }

  /** A log notification to the agent (MCP clients show them): what the gateway is doing with its request. */
  #notice(text: string): void {
    this.#send(messageLine({ jsonrpc: '2.0', method: 'notifications/message', params: { level: 'notice', logger: 'hoop', data: text } }));
  }

  /** Answers every request in flight with `message` (the server is gone, or the session ends); held ones are withdrawn. */
  #failInFlight(message: string): void {
    for (const [key, flight] of this.#inFlight) {
      flight.held?.withdraw('session-ended');
      const id: JsonRpcId = key.startsWith('n') ? Number(key.slice(1)) : key.slice(1);
      this.#answerError(id, RpcError.internal, message);
    }
    this.#inFlight.clear();
  }

  /** The gateway ends the session (its token, its run, a shutdown): what is in flight fails, the agent is told why, then it ends. */
  #aborted(): void {
    const e = sessionEndOf(this.#session.signal);
    this.#session.recording?.stream.event({ t: 'mcp-end', at: Date.now(), reason: e.reason, message: e.message });
    this.#failInFlight(`${e.message}${e.hint ? ` (${e.hint})` : ''}`);
    this.#notice(`${e.message}${e.hint ? ` (${e.hint})` : ''}`);
    this.#session.channel.sendControl({ type: 'close', reason: e.reason, message: e.message, ...(e.hint ? { hint: e.hint } : {}) });
    this.#end(e.reason, e.message);
  }

  /** Ends the server and the tunnel, keeping the first reason given. */
  #end(why: CloseReason, what?: string): void {
    if (!this.#relayEnd.begin(why, what)) return;
    for (const flight of this.#inFlight.values()) flight.held?.withdraw('session-ended');
    void this.#upstream?.close();
    const { channel } = this.#session;
    if (channel.destroyed) return this.#finish();
    this.#relayEnd.linger(channel);
  }

  /** Tells the engine how the session ended (once). */
  #finish(): void {
    if (this.#relayEnd.finished) return;
    const dropped = this.#progress.agent.dropped + this.#progress.server.dropped;
    if (dropped > 0) this.#session.log.info('mcp.progress-dropped', { session: this.#session.id, dropped });
    this.#relayEnd.finish({ fromClient: this.#relayEnd.bytes.fromClient, toClient: this.#session.channel.bytesSent });
  }
}

/** What a `completion/complete` completes the arguments of: a prompt by name, or a resource (template) by URI. */
function completionRef(params: Record<string, unknown> | undefined): { kind: 'prompt' | 'resource'; name: string } | undefined {
  const ref = params?.ref as { type?: unknown; name?: unknown; uri?: unknown } | undefined;
  if (ref?.type === 'ref/prompt' && typeof ref.name === 'string') return { kind: 'prompt', name: ref.name };
  if (ref?.type === 'ref/resource' && typeof ref.uri === 'string') return { kind: 'resource', name: ref.uri };
  return undefined;
}

/** A message of the agent's as the gateway read it: its JSON-RPC fields alone, each as parsed. */
function asRead(m: McpMessage): Record<string, unknown> {
  const params = m.kind !== 'response' && m.params !== undefined ? { params: m.params } : {};
  if (m.kind === 'request') return { jsonrpc: '2.0', id: m.id, method: m.method, ...params };
  if (m.kind === 'notification') return { jsonrpc: '2.0', method: m.method, ...params };
  return { jsonrpc: '2.0', id: m.id, ...('result' in m.raw ? { result: m.raw.result } : { error: m.raw.error }) };
}

/** The server's requests to the agent the policy may allow (`mcp.serverRequests`). */
const SERVER_METHODS: Record<string, true> = { 'sampling/createMessage': true, 'elicitation/create': true, 'roots/list': true };
/** The answers (results and errors) whose strings the masking detectors read: what a call, a read, a prompt or a completion returns. */
const MASKED: Record<string, true> = { 'tools/call': true, 'resources/read': true, 'prompts/get': true, 'completion/complete': true };

/**
 * `value` with every string and every key replaced by `f` of it (a structured result may key its
 * data by it), and every number by `f` of its JSON when that changes it (a card sent as a number
 * comes back as its masked text), but for binary content as base64 (an image's or audio's `data`,
 * a resource's `blob`), which no detector reads as text.
 */
export function mapStrings(value: unknown, f: (s: string) => string): unknown {
  if (typeof value === 'string') return f(value);
  if (typeof value === 'number') {
    const text = JSON.stringify(value);
    const out = f(text);
    return out === text ? value : out;
  }
  if (Array.isArray(value)) return value.map((v) => mapStrings(v, f));
  if (typeof value !== 'object' || value === null) return value;
  const binary = (value as { type?: unknown }).type === 'image' || (value as { type?: unknown }).type === 'audio';
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [f(k), k === 'blob' || (binary && k === 'data') ? v : mapStrings(v, f)]));
}
