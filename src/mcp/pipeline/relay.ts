/**
 * The MCP lane's relay at the gateway: the agent's messages, one per line, and the server's, each
 * read once and taken through the stages (./stages.ts) in the order declared here
 * ({@link AGENT_ORDER}, {@link SERVER_ORDER}). The relay is the session's one owner of what is in
 * flight: the agent's requests forwarded or held, and the server's requests the agent may answer.
 *
 * Ids: the server never sees the agent's, nor the agent the server's. Every request forwarded
 * either way goes under an id of the gateway's ({@link GatewayIds}, never reused in the session),
 * and its answer comes back under its sender's; a cancellation names the gateway's id, and a late
 * answer to a cancelled request is dropped, never taken as the answer to a later one of its id.
 *
 * The agent's side: each line recorded, then read as one JSON-RPC message (a line that is not one
 * is answered and ends the session) and written anew (the server never gets bytes the gateway did
 * not judge); a request judged (./judge.ts) and forwarded, answered, refused with error -32001, or
 * held until a reviewer decides (a `notifications/cancelled` withdraws a held one). At most
 * {@link MAX_IN_FLIGHT} requests may wait at once, and progress notifications are relayed at most
 * {@link PROGRESS_PER_SECOND} a second either way.
 *
 * The server's side: answers to requests the agent made, filtered (./listings.ts) and masked
 * (./masking.ts); its requests to the agent (sampling, elicitation, roots) refused unless
 * `mcp.serverRequests` allows them (a `ping` the gateway answers itself); answers nobody asked
 * for, unknown requests and notifications dropped.
 *
 * @see https://modelcontextprotocol.io/specification/2025-06-18/basic/lifecycle
 * @see https://modelcontextprotocol.io/specification/2025-06-18/basic/utilities/cancellation
 */
import { reviewAskOf } from '../../session/review-ask.js';
import { realClock } from '../../clock.js';
import { createHash } from 'node:crypto';
import type { McpConnection } from '../../config/connection.js';
import { describeError } from '../../errors.js';
import { jsonText } from '../../json-number.js';
import { MaskingRules } from '../../policy/masking/rules.js';
import type { McpAsk, McpVerdict } from '../../policy/mcp.js';
import type { CloseReason, TunnelSession } from '../../session/engine.js';
import { errorLine, isId, type JsonRpcId, MAX_LINE_BYTES, type McpMessage, messageLine, type NotAMessage, parseMessage, RpcError } from '../wire/json-rpc.js';
import { GatewayIds } from './ids.js';
import { McpRequestJudge } from './judge.js';
import { McpListings } from './listings.js';
import { McpMasking } from './masking.js';
import { McpRecorder } from './recorder.js';
import type { AgentRequest, InFlight, McpStage, RequestDecision } from './stages.js';

/** Requests of the agent in flight (forwarded or held) at once; more are refused. */
export const MAX_IN_FLIGHT = 64;
/** The server's messages that may wait behind one a stage works on: what one read of its output holds (it is read no more meanwhile); an HTTP server's cannot be paused. */
const MAX_SERVER_LATER = 4096;
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
/** The server's requests to the agent the policy may allow (`mcp.serverRequests`). */
const SERVER_METHODS: Record<string, true> = { 'sampling/createMessage': true, 'elicitation/create': true, 'roots/list': true };

/** The stages, by name. */
interface Stages {
  recorder?: McpRecorder;
  judge: McpRequestJudge;
  listings?: McpListings;
  masking?: McpMasking;
}

/** The order an agent's message goes through the stages: recorded as it came, then judged. */
const AGENT_ORDER: ReadonlyArray<keyof Stages> = ['recorder', 'judge'];
/** The order a message for the agent goes through the stages: filtered, masked, then recorded as it goes. */
const SERVER_ORDER: ReadonlyArray<keyof Stages> = ['listings', 'masking', 'recorder'];

/** The server's side, as the relay uses it (../gateway/upstream.ts). */
export interface McpServer {
  /** Sends one message; false when the server is behind (wait for {@link McpServer.drained}). */
  send(line: string): boolean;
  drained(): Promise<void>;
  pause(): void;
  resume(): void;
  /** Tells the server's transport the protocol version the session agreed on. */
  agreed(protocolVersion: string): void;
}

/** What the relay needs of its session relay (../gateway/session-relay.ts). */
export interface RelayOwner {
  /** Ends the session with `why`. */
  end(why: CloseReason, what?: string): void;
  /** Whether the session is ending. */
  ending(): boolean;
}

/** Progress notifications allowed now: a bucket of {@link PROGRESS_PER_SECOND} a second. */
class Rate {
  #tokens = 2 * PROGRESS_PER_SECOND;
  #at = realClock.now();
  dropped = 0;

  take(): boolean {
    const now = realClock.now();
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

/** See the module documentation. */
export class McpRelay {
  readonly #session: TunnelSession<McpConnection>;
  readonly #owner: RelayOwner;
  readonly #agentStages: McpStage[];
  readonly #serverStages: McpStage[];
  readonly #inFlight = new GatewayIds<InFlight>();
  readonly #serverAsks = new GatewayIds<undefined>();
  readonly #progress = { agent: new Rate(), server: new Rate() };
  #server: McpServer | undefined;
  /** Lines for the server that came before it was open. */
  #early: string[] | undefined = [];
  /** Why the agent's input waits: the server is behind taking it, the agent behind reading its answers, or a stage at work on a line. */
  readonly #agentWaits = new Set<'server' | 'agent' | 'stage'>();
  /** While a stage works on a line of the agent's (a long line recorded by the worker): the agent's lines after it, in turn. */
  #agentLater: string[] | undefined;
  /** The server has not taken what the gateway last answered it. */
  #serverBehind = false;
  /** While the agent is behind reading: resolves when it has read what waits (one listener, however many lines are sent meanwhile). */
  #agentDrained: Promise<void> | undefined;
  /** While a stage works on a message of the server's (a long text masked in the worker): the server's messages after it, in turn. */
  #serverLater: Array<McpMessage | NotAMessage> | undefined;
  #serverLaterBytes = 0;

  constructor(session: TunnelSession<McpConnection>, owner: RelayOwner) {
    this.#session = session;
    this.#owner = owner;
    const m = session.masking;
    const all = m ? MaskingRules.of(m.policy, m.key) : undefined;
    const rules = all && all.detectors.length > 0 ? all : undefined;
    const mcp = session.lane?.mcp;
    const stages: Stages = {
      ...(session.recording ? { recorder: new McpRecorder(session.recording.stream, rules, session.recording.redactionKey) } : {}),
      judge: new McpRequestJudge(mcp, session.report),
      ...(mcp ? { listings: new McpListings(mcp) } : {}),
      ...(rules ? { masking: new McpMasking(rules, session.report) } : {}),
    };
    const inOrder = (order: ReadonlyArray<keyof Stages>): McpStage[] => order.flatMap((n) => stages[n] ?? []);
    this.#agentStages = inOrder(AGENT_ORDER);
    this.#serverStages = inOrder(SERVER_ORDER);
  }

  /** Progress notifications dropped either way. */
  get dropped(): number {
    return this.#progress.agent.dropped + this.#progress.server.dropped;
  }

  /** The server is open: what the agent sent meanwhile goes to it in order. */
  opened(server: McpServer): void {
    this.#server = server;
    const early = this.#early ?? [];
    this.#early = undefined;
    for (const line of early) this.#toServer(line);
  }

  /** The server could not be opened: nothing waits for it. */
  failedToOpen(): void {
    this.#early = undefined;
  }

  /** One line from the agent: recorded, then judged and relayed, refused, or held. In turn: while a stage works on one, those after it wait. */
  fromAgent(text: string): void {
    if (this.#owner.ending()) return;
    if (this.#agentLater) return void this.#agentLater.push(text);
    const working = this.#agentStaged(text, 0);
    if (working) this.#waitForStage(working);
  }

  /** Agent's line `text` through the stages' `agentLine` from the `from`th on, then taken; a Promise while a stage works. */
  #agentStaged(text: string, from: number): Promise<void> | undefined {
    for (let i = from; i < this.#agentStages.length; i++) {
      const working = this.#agentStages[i]!.agentLine?.(text);
      if (working) return working.then(() => (this.#owner.ending() ? undefined : this.#agentStaged(text, i + 1)));
    }
    this.#take(text);
    return undefined;
  }

  /** Reads no more of the agent (its later lines wait, in turn) until `working` is done. */
  #waitForStage(working: Promise<void>): void {
    this.#agentLater = [];
    this.#agentWait('stage', true);
    working.then(
      () => {
        const later = this.#agentLater ?? [];
        this.#agentLater = undefined;
        const rest = inTurn(
          later,
          (text) => this.fromAgent(text),
          () => this.#agentStageWorks,
        );
        if (rest) return void this.#agentLater!.push(...rest);
        this.#agentWait('stage', false);
      },
      (err: unknown) => this.#owner.end('protocol-violation', `the agent's line could not be recorded: ${describeError(err)}`),
    );
  }

  /** Agent's line `text`, recorded: parsed, then judged and relayed, refused, or held. */
  #take(text: string): void {
    const m = parseMessage(text);
    if ('invalid' in m) {
      this.#send(errorLine(m.id, m.code, `hoop: ${m.invalid}; the session ends`));
      return this.#owner.end('protocol-violation', `the agent sent ${m.invalid}`);
    }
    try {
      // What the server is sent is the message as the gateway read it, written anew: never bytes it did not judge or a reviewer did not see (a duplicate key, a number past double precision).
      if (m.kind === 'request') return this.#request(m);
      if (m.kind === 'notification') return this.#agentNotification(m, messageLine(asRead(m)));
      // An answer to the server's request: only to one it made and the agent was given, under the server's id.
      const ask = this.#serverAsks.ofOurs(m.id);
      if (!ask) return;
      this.#serverAsks.delete(ask);
      this.#toServer(messageLine({ ...asRead(m), id: ask.theirs }));
    } catch (err) {
      // Nothing the agent sends may throw out of the relay (into the tunnel, which would end every stream of the connection).
      this.#session.log.warn('mcp.agent-message-failed', { session: this.#session.id, error: describeError(err) });
      this.#send(errorLine(m.kind === 'request' ? m.id : null, RpcError.invalidRequest, 'hoop: a message the gateway could not handle; the session ends'));
      this.#owner.end('protocol-violation', `the agent sent a message the gateway could not handle: ${describeError(err)}`);
    }
  }

  /** The agent sent a line over {@link MAX_LINE_BYTES}: it is told, and the session ends. */
  tooLong(bytes: number): void {
    this.#send(errorLine(null, RpcError.invalidRequest, `hoop: a message over ${MAX_LINE_BYTES} bytes (${bytes} so far); the session ends`));
    this.#owner.end('protocol-violation', `the agent sent a message over ${MAX_LINE_BYTES} bytes`);
  }

  /** An agent's request, judged under the gateway's id for it: forwarded, answered, refused or held. */
  #request(m: AgentRequest): void {
    if (this.#inFlight.ofTheirs(m.id)) return this.#answerError(m.id, RpcError.invalidRequest, `hoop: request id ${jsonText(m.id)} is already in flight`);
    if (this.#inFlight.size >= MAX_IN_FLIGHT) return this.#answerError(m.id, RpcError.refused, `hoop: ${MAX_IN_FLIGHT} requests are in flight on this session; wait for their answers`);
    const ours = { ...m, id: this.#inFlight.next() };
    const line = messageLine(asRead(ours));
    let decision: RequestDecision | undefined;
    for (const stage of this.#agentStages) decision ??= stage.request?.(ours, line);
    if (!decision) return;
    if (decision.do === 'answer') return this.#answerError(m.id, decision.code, decision.message);
    if (decision.do === 'refuse') return this.#refuse(m.id, decision.verdict);
    if (decision.do === 'review') return this.#hold(m, ours.id, line, decision.ask, decision.verdict, decision.flight);
    this.#inFlight.add(ours.id, m.id, decision.flight);
    this.#toServer(decision.line);
  }

  /** Holds a call a `review` rule matched until a reviewer decides; nothing reaches the server meanwhile. */
  #hold(m: AgentRequest, ours: number, text: string, ask: McpAsk, verdict: McpVerdict, flight: InFlight): void {
    const { reviews } = this.#session;
    const shown = `${m.method} ${jsonText(m.params ?? {}, 2)}`;
    if (!reviews || !verdict.review) return this.#refuse(m.id, { ...verdict, action: 'deny', reason: `${verdict.reason}; it asks for a review, and nobody may review it here` });
    if (shown.length > MAX_REVIEW_TEXT)
      return this.#refuse(m.id, { ...verdict, action: 'deny', reason: `${verdict.reason}; it asks for a review, and its arguments are over ${MAX_REVIEW_TEXT} characters to show` });
    // What would run: the method and its parameters as sent (the id is the client's to choose again).
    const digest = createHash('sha256')
      .update(`${m.method}\n${jsonText(m.params ?? {})}`)
      .digest('hex');
    const held = reviews.request(reviewAskOf(shown, digest, { ...verdict, review: verdict.review }));
    const sent = this.#inFlight.add(ours, m.id, { ...flight, held });
    const what = ask.kind === 'resource' ? ask.uri : ask.name;
    this.notice(`hoop: ${m.method} of ${what} is held for review ${held.id}${verdict.rule ? ` (rule ${verdict.rule})` : ''}; it runs once a reviewer approves: hoop review approve ${held.id}`);
    void held.decided.then((outcome) => {
      if (this.#inFlight.ofOurs(ours) !== sent || this.#owner.ending()) return;
      if (outcome.state === 'approved') {
        sent.value = flight;
        return this.#toServer(text);
      }
      this.#inFlight.delete(sent);
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
      if (!isId(requestId)) return;
      const sent = this.#inFlight.ofTheirs(requestId);
      if (!sent) return;
      this.#inFlight.delete(sent);
      if (sent.value.held) return sent.value.held.withdraw('cancel');
      // The server need not answer a cancelled request, and the agent expects no answer: it waits no more, and a late answer (to an id the gateway never gives again) is dropped.
      return this.#toServer(cancelled(m.params, sent.ours));
    }
    if (m.method === 'notifications/progress') return void (this.#progress.agent.take() && this.#toServer(text));
    if (AGENT_NOTIFICATIONS.has(m.method)) this.#toServer(text);
  }

  /** One message from the server: an answer to the agent, filtered and masked; its own requests and notifications as the policy says. In turn: while a stage works on one, those after it wait. */
  fromServer(m: McpMessage | NotAMessage, bytes = 0): void {
    if (this.#owner.ending()) return;
    if (this.#serverLater) {
      // What waits is bounded as what the agent has not read is: an HTTP server's messages (which cannot be paused) measured as written.
      this.#serverLaterBytes += bytes > 0 ? bytes : 'raw' in m ? jsonText(m.raw).length : 0;
      if (this.#serverLater.length < MAX_SERVER_LATER && this.#serverLaterBytes <= MAX_TO_AGENT_BEHIND) return void this.#serverLater.push(m);
      return this.#owner.end('protocol-violation', `the MCP server sent ${this.#serverLater.length} messages (${this.#serverLaterBytes} bytes) while the gateway masked one`);
    }
    try {
      this.#fromServerMessage(m);
    } catch (err) {
      this.#serverFailed(err);
    }
  }

  /** Nothing the server sends may throw out of the relay (out of its stdout's handler: the gateway's process would end): the session ends. */
  #serverFailed(err: unknown): void {
    this.#session.log.warn('mcp.server-message-failed', { session: this.#session.id, error: describeError(err) });
    this.failInFlight('hoop: the MCP server sent a message the gateway could not handle; the session ends');
    this.#owner.end('protocol-violation', `the MCP server sent a message the gateway could not handle: ${describeError(err)}`);
  }

  #fromServerMessage(m: McpMessage | NotAMessage): void {
    if ('invalid' in m) {
      this.failInFlight(`hoop: the MCP server sent ${m.invalid}; the session ends`);
      return this.#owner.end('protocol-violation', `the MCP server sent ${m.invalid}`);
    }
    if (m.kind === 'response') {
      // Staged by the request it answers (by the gateway's id, never reused), and given back the agent's id.
      const sent = this.#inFlight.ofOurs(m.id);
      if (!sent || sent.value.held) return;
      this.#inFlight.delete(sent);
      const flight = sent.value;
      const version = flight.method === 'initialize' ? (m.raw.result as { protocolVersion?: unknown } | undefined)?.protocolVersion : undefined;
      if (typeof version === 'string' && !('error' in m.raw)) this.#server?.agreed(version);
      return this.#toAgent({ ...m.raw, id: sent.theirs }, flight);
    }
    if (m.kind === 'request') {
      if (m.method === 'ping') return this.#answerServer(messageLine({ jsonrpc: '2.0', id: m.id, result: {} }));
      const mcp = this.#session.lane?.mcp;
      if (!mcp?.serverMay(m.method) || this.#serverAsks.size >= MAX_SERVER_ASKS) {
        // Recorded, not counted as the agent's refusal (nor told to alerts): the server asked, not the agent.
        this.#session.recording?.stream.event({ t: 'mcp-server-request-refused', at: realClock.now(), method: m.method });
        const code = Object.hasOwn(SERVER_METHODS, m.method) ? RpcError.refused : RpcError.methodNotFound;
        return this.#answerServer(errorLine(m.id, code, `hoop: the policy does not let this MCP server send ${m.method} to the agent (mcp.serverRequests)`));
      }
      if (this.#serverAsks.ofTheirs(m.id)) return this.#answerServer(errorLine(m.id, RpcError.invalidRequest, `hoop: request id ${jsonText(m.id)} is already in flight`));
      const ask = this.#serverAsks.add(this.#serverAsks.next(), m.id, undefined);
      // What it asks the agent's model (a sampling's messages, an elicitation's text) passes the stages, masking among them.
      return this.#toAgent({ ...m.raw, id: ask.ours }, undefined);
    }
    if (m.method === 'notifications/progress') return void (this.#progress.server.take() && this.#toAgent(m.raw, undefined));
    if (m.method === 'notifications/cancelled') {
      const id = m.params?.requestId;
      const ask = isId(id) ? this.#serverAsks.ofTheirs(id) : undefined;
      if (!ask) return;
      this.#serverAsks.delete(ask);
      return this.#send(cancelled(m.params, ask.ours));
    }
    // A resource's update names its URI: not one the listings hide.
    const uri = m.method === 'notifications/resources/updated' ? m.params?.uri : undefined;
    if (typeof uri === 'string' && this.#session.lane?.mcp && !this.#session.lane.mcp.shows('resource', uri)) return;
    if (SERVER_NOTIFICATIONS.has(m.method)) this.#toAgent(m.raw, undefined);
  }

  /** Sends the server's message `raw` (an answer to `flight`, or its own) to the agent as the stages make it. */
  #toAgent(raw: Record<string, unknown>, flight: InFlight | undefined): void {
    const working = this.#staged(raw, flight, 0);
    if (working) this.#waitFor(working);
  }

  /** `raw` through the stages from the `from`th on, then sent to the agent; a Promise while a stage works. */
  #staged(raw: Record<string, unknown>, flight: InFlight | undefined, from: number): Promise<void> | undefined {
    let out = raw;
    for (let i = from; i < this.#serverStages.length; i++) {
      const made = this.#serverStages[i]!.toAgent?.(out, flight) ?? out;
      if (made instanceof Promise) return made.then((o) => (this.#owner.ending() ? undefined : this.#staged(o, flight, i + 1)));
      out = made;
    }
    this.#send(messageLine(out));
    return undefined;
  }

  /** Whether a stage works on a message of the server's. */
  get #serverStageWorks(): boolean {
    return this.#serverLater !== undefined;
  }

  /** Whether a stage works on a line of the agent's. */
  get #agentStageWorks(): boolean {
    return this.#agentLater !== undefined;
  }

  /** Hands on nothing more of the server's (its later messages wait, its output is not read) until `working` is done. */
  #waitFor(working: Promise<void>): void {
    this.#serverLater = [];
    this.#serverLaterBytes = 0;
    this.#server?.pause();
    working.then(
      () => {
        const later = this.#serverLater ?? [];
        this.#serverLater = undefined;
        const rest = inTurn(
          later,
          (m) => this.fromServer(m),
          () => this.#serverStageWorks,
        );
        if (rest) return void this.#serverLater!.push(...rest);
        if (!this.#agentDrained && !this.#session.recording?.stream.behind) this.#server?.resume();
      },
      (err: unknown) => this.#serverFailed(err),
    );
  }

  /** Sends a line to the server (or keeps it until the server is open); the agent's side waits while the server is behind. */
  #toServer(line: string): void {
    // Before the server is open, at most what a session may have in flight waits (a flood of notifications is dropped).
    if (this.#early) return void (this.#early.length < 4 * MAX_IN_FLIGHT && this.#early.push(line));
    const u = this.#server;
    if (!u || this.#owner.ending()) return;
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
    const u = this.#server;
    if (!u || this.#serverBehind) return;
    if (!u.send(line)) {
      this.#serverBehind = true;
      void u.drained().then(() => (this.#serverBehind = false));
    }
  }

  /** Stops (or, once no reason is left, restarts) reading the agent's input. */
  #agentWait(why: 'server' | 'agent' | 'stage', waits: boolean): void {
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
    for (const stage of this.#serverStages) stage.sent?.(line);
    const behind = !channel.write(line);
    if (behind && channel.writableLength > MAX_TO_AGENT_BEHIND && !this.#owner.ending()) {
      this.#session.log.warn('mcp.agent-behind', { session: this.#session.id, bytes: channel.writableLength });
      return this.#owner.end('protocol-violation', `the agent did not read ${channel.writableLength} bytes sent to it`);
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
    if (waits && this.#server) {
      const u = this.#server;
      u.pause();
      void waits.then(() => this.#serverLater || u.resume());
    }
  }

  #answerError(id: JsonRpcId | null, code: number, message: string, data?: unknown): void {
    this.#send(errorLine(id, code, message, data));
  }

  /** A log notification to the agent (MCP clients show them): what the gateway is doing with its request. */
  notice(text: string): void {
    this.#send(messageLine({ jsonrpc: '2.0', method: 'notifications/message', params: { level: 'notice', logger: 'hoop', data: text } }));
  }

  /** Answers every request in flight with `message` (the server is gone, or the session ends); held ones are withdrawn. */
  failInFlight(message: string): void {
    for (const sent of this.#inFlight.values()) {
      sent.value.held?.withdraw('session-ended');
      this.#answerError(sent.theirs, RpcError.internal, message);
    }
    this.#inFlight.clear();
  }

  /** Withdraws every review a request waits for (the session ends). */
  withdrawAll(): void {
    for (const sent of this.#inFlight.values()) sent.value.held?.withdraw('session-ended');
  }
}

/**
 * What waited behind a stage's work, now done (`later`), taken in turn by `take` until `works()`
 * says a stage works again: then what is left, to wait behind that; undefined when all was taken.
 */
function inTurn<T>(later: readonly T[], take: (item: T) => void, works: () => boolean): T[] | undefined {
  let i = 0;
  while (i < later.length && !works()) take(later[i++]!);
  return works() ? later.slice(i) : undefined;
}

/** A cancellation, with `params` as read, of the request the receiver knows as `id`. */
function cancelled(params: Record<string, unknown> | undefined, id: number): string {
  return messageLine({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { ...params, requestId: id } });
}

/** A message of the agent's as the gateway read it: its JSON-RPC fields alone, each as parsed. */
function asRead(m: McpMessage): Record<string, unknown> {
  const params = m.kind !== 'response' && m.params !== undefined ? { params: m.params } : {};
  if (m.kind === 'request') return { jsonrpc: '2.0', id: m.id, method: m.method, ...params };
  if (m.kind === 'notification') return { jsonrpc: '2.0', method: m.method, ...params };
  return { jsonrpc: '2.0', id: m.id, ...('result' in m.raw ? { result: m.raw.result } : { error: m.raw.error }) };
}
