/**
 * `hoop mcp --connection NAME`: an MCP connection of the gateway served to the agent on stdio.
 * The agent's MCP client runs this as its server's command; each line it writes goes through a
 * tunnel to the gateway, which judges it and relays it to the connection's server, and what comes
 * back is written to stdout as it came. Nothing is parsed here: the gateway is the authority.
 *
 * The calls are the agent's: inside `hoop run` with the run's credential; otherwise `hoop mcp`
 * begins a run of its own (`via: mcp`, the agent named by `--agent` or by the name the MCP
 * client gives in its `initialize`) and ends it when the client goes, as for hoop's own tools.
 *
 * @see https://modelcontextprotocol.io/specification/2025-06-18/basic/transports#stdio
 */
import { AgentRun } from '../agent/agent-run.js';
import { getConnection } from '../api-client/connections.js';
import type { ResolvedTokenProvider } from '../auth/token-provider.js';
import { TunnelTokenRenewal } from '../auth/token-renewal.js';
import { ErrorCode, HoopError, hoopSays } from '../errors.js';
import { whenAborted, type CliIo } from '../io.js';
import { createLogger, levelFromEnv } from '../log.js';
import { agentName } from '../policy/principal.js';
import type { ControlMessage } from '../tunnel/frames.js';
import { newSessionId, openTunnel } from '../tunnel/transport.js';
import { VERSION } from '../version.js';
import { commandTokenProvider } from './client-config.js';

/** The options `hoop mcp --connection` takes. */
export interface McpRelayOptions {
  gateway?: string;
  tokenFile?: string;
  caFile?: string;
  agent?: string;
  connection: string;
}

/** Serves MCP connection `opts.connection` on `io`'s stdio until the client goes (or the signal aborts). */
export async function relayMcp(io: CliIo, opts: McpRelayOptions): Promise<void> {
  const log = createLogger({ level: levelFromEnv(io.env, 'warn'), sink: io.stderr, fields: { component: 'mcp' } });
  const say = (line: string): void => void io.stderr.write(`${hoopSays(line)}\n`);
  const person = await commandTokenProvider(io, opts);
  const name = opts.connection;
  const stdin = io.stdin;
  if (!stdin) throw new HoopError(ErrorCode.USAGE, "hoop mcp --connection serves MCP on stdin and stdout: run it as an MCP client's server command");
  let run: AgentRun | undefined;
  try {
    const info = await getConnection({ gateway: person.gateway, ca: person.ca }, (await person.current()).token, name);
    if (info.type !== 'mcp') throw new HoopError(ErrorCode.USAGE, `"${name}" is a ${info.type} connection: hoop mcp --connection serves MCP connections`, { hint: `hoop connect ${name}` });
    // The first line names the client (its initialize), which names the agent of a run of its own.
    const first = await firstLine(stdin);
    if (first === undefined) return;
    let provider: ResolvedTokenProvider = person;
    if (person.source !== 'run') {
      say('isolation: none: the agent that started hoop mcp runs as you and can read your hoop login; start the agent with hoop run to keep it out of its reach');
      run = await AgentRun.begin({ person, connections: [name], agent: agentName(opts.agent ?? clientName(first.text) ?? 'mcp'), via: 'mcp', isolation: 'none', say, log });
      provider = run.provider;
    }
    const { token } = await provider.current();
    const { channel } = await openTunnel({ gateway: provider.gateway, connection: name, token, sessionId: newSessionId(), clientVersion: VERSION, ...(provider.ca ? { ca: provider.ca } : {}) });
    const renewal = new TunnelTokenRenewal(provider, log, say);
    renewal.track(channel, token);
    channel.on('control', (m: ControlMessage) => {
      if (m.type === 'close' && typeof m.message === 'string') say(`${m.message}${typeof m.hint === 'string' ? ` (${m.hint})` : ''}`);
    });
    channel.write(first.bytes);
    stdin.pipe(channel);
    channel.pipe(io.stdout, { end: false });
    const ended = new Promise<void>((resolve) => {
      channel.once('close', resolve);
      channel.once('end', resolve);
      io.stdout.on('error', () => resolve());
    });
    await Promise.race([ended, whenAborted(io.signal)]);
    stdin.unpipe(channel);
    channel.destroy();
    renewal.close();
  } finally {
    await run?.end();
    person.close();
  }
}

/** Reads up to the first newline of `stdin` (at most 4 MiB; the gateway judges the rest): the line's text and every byte read, or undefined at its end. */
function firstLine(stdin: NodeJS.ReadableStream): Promise<{ text: string; bytes: Buffer } | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let length = 0;
    const done = (value: { text: string; bytes: Buffer } | undefined): void => {
      stdin.off('data', onData);
      stdin.off('end', onEnd);
      stdin.off('error', reject);
      stdin.pause();
      resolve(value);
    };
    const onData = (chunk: Buffer | string): void => {
      const b = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
      const nl = b.indexOf(0x0a);
      chunks.push(b);
      length += b.length;
      if (nl < 0 && length <= 4 * 1024 * 1024) return;
      const all = Buffer.concat(chunks);
      const end = nl < 0 ? all.length : length - b.length + nl;
      done({ text: all.subarray(0, end).toString('utf8'), bytes: all });
    };
    const onEnd = (): void => done(length > 0 ? { text: Buffer.concat(chunks).toString('utf8'), bytes: Buffer.concat(chunks) } : undefined);
    stdin.on('data', onData);
    stdin.once('end', onEnd);
    stdin.once('error', reject);
  });
}

/** The client's name in an `initialize` line, if it is one. */
function clientName(line: string): string | undefined {
  try {
    const m = JSON.parse(line) as { method?: unknown; params?: { clientInfo?: { name?: unknown } } };
    const n = m.method === 'initialize' ? m.params?.clientInfo?.name : undefined;
    return typeof n === 'string' && n.trim() !== '' ? n : undefined;
  } catch {
    return undefined;
  }
}
