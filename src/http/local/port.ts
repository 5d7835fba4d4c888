/**
 * One HTTP connection of the gateway served on a local port for as long as a command runs
 * (`hoop connect api`, `hoop run --connect api`). Each TCP client of the port gets its own
 * authenticated session, a stream of the port's one hoop-mux/1 connection to the gateway, which
 * reads its requests, judges them and adds the API's credential. The port's URLs begin with a path
 * made for this run (`http://127.0.0.1:PORT/<secret>/…`), which the gateway requires of every
 * request (the tunnel names it in `Hoop-Http-Prefix`): another local user or process that reaches
 * the port without it is refused here, before a session is opened for it.
 *
 * @see ../gateway/engine.ts
 */
import { randomBytes } from 'node:crypto';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { ResolvedTokenProvider } from '../../auth/token-provider.js';
import { TunnelTokenRenewal } from '../../auth/token-renewal.js';
import { describeError, ErrorCode, HoopError } from '../../errors.js';
import type { Logger } from '../../log.js';
import { newSessionId, TunnelMux } from '../../tunnel/transport.js';
import type { ControlMessage } from '../../tunnel/frames.js';
import { VERSION } from '../../version.js';
import { firstLine } from '../wire/first-line.js';
import { closingAnswer } from '../wire/status-error.js';
import { lingerEnd } from '../../session/relay-end.js';

/** Options of {@link openHttpPort}. */
export interface HttpPortOptions {
  provider: ResolvedTokenProvider;
  /** The connection, as `hoop connections` lists it. */
  name: string;
  /** A TCP port on 127.0.0.1 (default: any free one). */
  port?: number;
  /** Said at the start of every session (a `context` control message). */
  context?: Record<string, string>;
  log: Logger;
  say: (line: string) => void;
  /** Told each session the port opens (the gateway's session id). */
  onSession?: (id: string) => void;
  /** The API's base URL, as the gateway reaches it: requests routed here for its host (a contained run's egress) name its path. */
  upstream?: string;
}

/** A local HTTP port serving one connection. */
export interface HttpPort {
  connection: string;
  host: string;
  port: number;
  /** The base URL, with the per-run path: `http://127.0.0.1:PORT/<secret>`. */
  url: string;
  /** The API's own base URL, when known (what a contained run's egress routes here). */
  upstream?: string;
  /** Serves a client that reached the port another way than its listener (a contained run's bridge). */
  accept(socket: Socket): void;
  /**
   * Serves a client of the API's own host (a contained run's egress proxy routes it here, its TLS
   * ended): its requests name the API's paths as its base URL has them (`/v1/...`), no per-run path.
   */
  route(socket: Duplex, first: Buffer): void;
  /** Stops listening and ends the tunnels. */
  close(): Promise<void>;
}

/** Opens a local port for HTTP connection `o.name`; see the module documentation. */
export async function openHttpPort(o: HttpPortOptions): Promise<HttpPort> {
  const { provider, say } = o;
  const prefix = randomBytes(18).toString('base64url');
  const renewal = new TunnelTokenRenewal(provider, o.log, say);
  const tunnels = new TunnelMux({ gateway: provider.gateway, clientVersion: VERSION, ...(provider.ca ? { ca: provider.ca } : {}) });
  const sockets = new Set<Socket>();
  const accept = (socket: Socket): void => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    socket.setNoDelay(true);
    void serveClient(socket, o, prefix, tunnels, renewal);
  };
  // A client that ends its side after its requests (a half-close) is still answered: the gateway ends the session once it has.
  const server: Server = createServer({ pauseOnConnect: true, allowHalfOpen: true }, accept);
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(new HoopError(ErrorCode.LISTEN_FAILED, `cannot listen on 127.0.0.1:${o.port ?? 0}: ${err.code ?? err.message}`, { hint: 'choose another --port, or leave it out for a free one' })),
    );
    server.listen(o.port ?? 0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  // A routed client's requests begin with the API's base path, which the gateway takes off as it takes a port's per-run path.
  const basePath = o.upstream ? new URL(o.upstream).pathname.replace(/^\/+|\/+$/g, '') : '';
  return {
    connection: o.name,
    host: '127.0.0.1',
    port,
    url: `http://127.0.0.1:${port}/${prefix}`,
    ...(o.upstream ? { upstream: o.upstream } : {}),
    accept,
    route: (socket, first) => {
      sockets.add(socket as Socket);
      socket.once('close', () => sockets.delete(socket as Socket));
      socket.on('error', () => undefined);
      void openSession(socket, o, basePath || undefined, tunnels, renewal, first);
    },
    close: async () => {
      renewal.close();
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      tunnels.close();
    },
  };
}

/** Answers a local client that is refused here and ends its connection: what it sends meanwhile is dropped (so its close is seen), and it is cut after a grace. */
function refuse(socket: Duplex, status: number, message: string, hint?: string): void {
  lingerEnd(socket, closingAnswer(status, message, hint), true);
}

/**
 * One local client: its first request line must name the port's per-run path before a session is
 * opened for it (a process without it takes no slot of the person's at the gateway, which checks
 * every request again); then its own session, its bytes relayed both ways as they come.
 */
async function serveClient(socket: Socket, o: HttpPortOptions, prefix: string, tunnels: TunnelMux, renewal: TunnelTokenRenewal): Promise<void> {
  const first = await firstLine(socket);
  if (!first) return void socket.destroy();
  const target = first.line.split(' ')[1] ?? '';
  if (!(target === `/${prefix}` || target.startsWith(`/${prefix}/`) || target.startsWith(`/${prefix}?`)))
    return refuse(socket, 404, "the target does not begin with this port's path: use the URL hoop connect printed");
  await openSession(socket, o, prefix, tunnels, renewal);
}

/** Opens the client's own session (its requests beginning with `prefix`, when there is one), writes `first` (bytes read from it another way), and relays its bytes both ways as they come. */
async function openSession(socket: Duplex, o: HttpPortOptions, prefix: string | undefined, tunnels: TunnelMux, renewal: TunnelTokenRenewal, first?: Buffer): Promise<void> {
  const { say } = o;
  try {
    const { token } = await o.provider.current();
    const opened = await tunnels.open({ connection: o.name, token, sessionId: newSessionId(), ...(prefix !== undefined ? { httpPrefix: prefix } : {}), via: 'connect' });
    const channel = opened.channel;
    renewal.track(channel, token);
    if (o.context) channel.sendControl({ type: 'context', fields: o.context });
    o.onSession?.(opened.sessionId);
    channel.on('control', (m: ControlMessage) => {
      if (m.type === 'close' && typeof m.message === 'string') say(`session ${opened.sessionId} closed: ${m.message}`);
      else if (m.type === 'review' && m.state === 'pending')
        say(`session ${opened.sessionId}: a request is held for review ${String(m.id)}; it runs once a reviewer approves: hoop review approve ${String(m.id)}`);
      else if (m.type === 'review') say(`session ${opened.sessionId}: review ${String(m.id)} ${String(m.state)}`);
    });
    channel.on('error', (err: Error) => {
      say(`session ${opened.sessionId}: ${describeError(err)}`);
      socket.destroy();
    });
    socket.on('close', () => channel.destroy());
    if (first && first.length > 0) channel.write(first);
    socket.pipe(channel);
    channel.pipe(socket);
    socket.resume();
  } catch (err) {
    const e = err instanceof HoopError ? err : new HoopError(ErrorCode.GATEWAY_UNREACHABLE, describeError(err));
    say(`${e.message}${e.hint ? ` (${e.hint})` : ''}`);
    refuse(socket, 502, e.message, e.hint);
  }
}
