/**
 * The gateway side of MCP sessions: the tunnel carries the agent's MCP messages, one per line (as
 * on stdio); the gateway opens the connection's server (a program it runs, or a Streamable HTTP
 * endpoint, with the credentials only it holds) and relays each message the policy allows (see
 * ./session-relay.ts).
 *
 * @see https://modelcontextprotocol.io/specification/2025-06-18
 * @see https://goteleport.com/docs/enroll-resources/mcp-access/ (an MCP proxy with per-tool roles)
 */
import type { McpConnection } from '../../config/connection.js';
import type { Engine, SessionOutcome, TunnelSession } from '../../session/engine.js';
import { type McpEngineOptions, McpSessionRelay } from './session-relay.js';

export type { McpEngineOptions } from './session-relay.js';

/** The gateway side of MCP sessions; see the module documentation. */
export class McpEngine implements Engine<McpConnection> {
  readonly recordProtocol = 'mcp';
  readonly #o: McpEngineOptions;

  constructor(o: McpEngineOptions) {
    this.#o = o;
  }

  serve(session: TunnelSession<McpConnection>): Promise<SessionOutcome> {
    return new McpSessionRelay(session, this.#o).start();
  }
}
