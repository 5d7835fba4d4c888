/**
 * The MCP relay's ids: the gateway gives every request it forwards, either way, an id of its own
 * (never reused in the session), so an answer is matched to the request it truly answers. Before,
 * a cancelled call's id reused by a `ping` took the call's late answer as the ping's, unmasked
 * (the sixteenth attack's F10).
 */
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import type { McpConnection } from '../../src/config/connection.js';
import { type McpServer, McpRelay } from '../../src/mcp/pipeline/relay.js';
import type { TunnelSession } from '../../src/session/engine.js';

const CARD = '4111 1111 1111 1111';
type Message = Record<string, unknown>;

/** A relay over a fake session (card masking on, every server request allowed) and a fake server: what each side received. */
function relayed() {
  const channel = Object.assign(new PassThrough(), {});
  const toAgent: Message[] = [];
  channel.on('data', (b: Buffer) => {
    for (const line of b.toString().split('\n').filter(Boolean)) toAgent.push(JSON.parse(line) as Message);
  });
  const quiet = { info() {}, warn() {}, error() {}, debug() {} };
  const session = {
    id: 's1',
    channel,
    log: quiet,
    masking: { policy: { detectors: [{ detector: 'payment-card', strategy: 'last4' }] } },
    lane: { mcp: { decide: () => ({ action: 'allow', reason: 'test' }), shows: () => true, serverMay: () => true } },
  } as unknown as TunnelSession<McpConnection>;
  const relay = new McpRelay(session, { end() {}, ending: () => false });
  const toServer: Message[] = [];
  const server: McpServer = { send: (line) => (toServer.push(JSON.parse(line) as Message), true), drained: async () => {}, pause() {}, resume() {}, agreed() {} };
  relay.opened(server);
  const agent = (m: Message) => relay.fromAgent(JSON.stringify({ jsonrpc: '2.0', ...m }));
  const fromServer = (m: Message) => relay.fromServer({ kind: 'id' in m ? ('method' in m ? 'request' : 'response') : 'notification', ...m, raw: { jsonrpc: '2.0', ...m } } as never);
  return { relay, toAgent, toServer, agent, fromServer };
}

describe("the MCP relay's ids", () => {
  it("a cancelled call's late answer is dropped, not taken as the answer to a ping reusing its id", () => {
    const { toAgent, toServer, agent, fromServer } = relayed();
    agent({ id: 5, method: 'tools/call', params: { name: 'lookup', arguments: {} } });
    agent({ method: 'notifications/cancelled', params: { requestId: 5, reason: 'changed my mind' } });
    agent({ id: 5, method: 'ping' });
    const [call, cancel, ping] = toServer;
    expect(call!.id).not.toBe(ping!.id);
    expect((cancel!.params as Message).requestId).toBe(call!.id);
    // The server answers the call it could not stop, then the ping.
    fromServer({ id: call!.id, result: { content: [{ type: 'text', text: `card ${CARD}` }] } });
    fromServer({ id: ping!.id, result: {} });
    expect(toAgent).toEqual([{ jsonrpc: '2.0', id: 5, result: {} }]);
  });

  it("an agent's answer to a request the server cancelled is not taken as the answer to the server's next one of that id", () => {
    const { toAgent, toServer, agent, fromServer } = relayed();
    fromServer({ id: 'a', method: 'sampling/createMessage', params: {} });
    fromServer({ method: 'notifications/cancelled', params: { requestId: 'a' } });
    fromServer({ id: 'a', method: 'roots/list', params: {} });
    const [sampling, cancel, roots] = toAgent;
    expect(sampling!.id).not.toBe(roots!.id);
    expect((cancel!.params as Message).requestId).toBe(sampling!.id);
    agent({ id: sampling!.id, result: { content: { type: 'text', text: 'late' } } });
    agent({ id: roots!.id, result: { roots: [] } });
    expect(toServer).toEqual([{ jsonrpc: '2.0', id: 'a', result: { roots: [] } }]);
  });
});
