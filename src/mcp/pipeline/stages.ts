/**
 * The one contract of the MCP lane's relay: every concern on the relay's one read of each
 * direction is an {@link McpStage}, and the relay (./relay.ts) runs the stages it has in the
 * order it declares there. A stage has only the hooks of the directions it cares about:
 *
 * - the recorder (./recorder.ts): each line either way, as it crossed;
 * - the judge (./judge.ts): an agent's request allowed, answered by the gateway, refused or held;
 * - the listings (./listings.ts): what the policy could allow, alone listed;
 * - masking (./masking.ts): what the server says, read by the masking detectors.
 *
 * @see https://modelcontextprotocol.io/specification/2025-06-18/basic
 */
import type { McpAsk, McpVerdict } from '../../policy/mcp.js';
import type { PendingReview } from '../../session/engine.js';
import type { McpMessage } from '../wire/json-rpc.js';

/** A request of the agent the gateway has taken: forwarded to the server, or held for a review. */
export interface InFlight {
  method: string;
  /** The tool of a `tools/call`. */
  tool?: string;
  held?: PendingReview;
}

/** A request the agent sent. */
export type AgentRequest = Extract<McpMessage, { kind: 'request' }>;

/** What a stage decided for an agent's request. */
export type RequestDecision =
  /** Sent to the server as `line`, in flight as `flight`. */
  | { do: 'forward'; line: string; flight: InFlight }
  /** Answered by the gateway with a JSON-RPC error (a request it cannot read or relay). */
  | { do: 'answer'; code: number; message: string }
  /** Refused by the policy. */
  | { do: 'refuse'; verdict: McpVerdict }
  /** Held until a reviewer decides. */
  | { do: 'review'; ask: McpAsk; verdict: McpVerdict; flight: InFlight };

/** One concern on the relay's path, with the hooks of the directions it cares about, called in the relay's declared order. */
export interface McpStage {
  /** A line from the agent, as it came; a Promise while the stage works on it (the relay takes no more of the agent's lines meanwhile). */
  agentLine?(text: string): void | Promise<void>;
  /** An agent's request, written anew as `line`: a decision, or undefined to leave it to the stages after. */
  request?(m: AgentRequest, line: string): RequestDecision | undefined;
  /** A message the agent is to receive (an answer to `flight`, or the server's own): what it becomes, a Promise of it while the stage works (the relay hands on nothing of the server's meanwhile). */
  toAgent?(raw: Record<string, unknown>, flight: InFlight | undefined): Record<string, unknown> | Promise<Record<string, unknown>>;
  /** A line the agent receives, as it goes. */
  sent?(line: string): void;
}
