/**
 * The gateway's HTTP server before an identity stands behind a connection: deadlines for the
 * TLS handshake and the first request, and a bound on the connections one address may hold that
 * no accepted token came on (see {@link guardConnections}).
 *
 * @see https://nodejs.org/api/http.html#httpcreateserveroptions-requestlistener (headersTimeout, connectionsCheckingInterval)
 * @see https://nodejs.org/api/tls.html#tlscreateserveroptions-secureconnectionlistener (handshakeTimeout)
 */
import type * as http from 'node:http';
import type { Socket } from 'node:net';

/** What {@link guardConnections} is told of a connection. */
export interface ConnectionGuard {
  /** A request on `socket` carried a token the gateway accepted: the connection is someone's, no longer a stranger's. */
  trust(socket: Socket): void;
}

/**
 * Bounds the connections no identity stands behind yet. Each is closed unless it sends a request
 * (or an Upgrade) within `ms` of connecting, its TLS handshake included (`event`: the socket
 * requests arrive on, the TLS one once its handshake ended, else the TCP one); and one source
 * address may hold at most `perAddress` connections that no accepted token came on (silent ones,
 * and ones that only ever sent requests without a valid token), so sockets from one place cannot
 * take every descriptor of the gateway. Later requests on a connection have Node's
 * `headersTimeout`, checked every second (`connectionsCheckingInterval`).
 */
export function guardConnections(server: http.Server, event: 'connection' | 'secureConnection', o: { ms: number; perAddress: number }): ConnectionGuard {
  const waiting = new WeakMap<object, NodeJS.Timeout>();
  const trusted = new WeakSet<object>();
  // Per source address: connections open, and those an accepted token came on (strangers = open - trusted).
  const open = new Map<string, number>();
  const known = new Map<string, number>();
  const add = (m: Map<string, number>, key: string, n: number): void => {
    const v = (m.get(key) ?? 0) + n;
    if (v > 0) m.set(key, v);
    else m.delete(key);
  };
  server.on('connection', (socket: Socket) => {
    const from = socket.remoteAddress ?? '';
    if ((open.get(from) ?? 0) - (known.get(from) ?? 0) >= o.perAddress) {
      socket.destroy();
      return;
    }
    add(open, from, 1);
    socket.once('close', () => add(open, from, -1));
  });
  server.on(event, (socket: Socket) => {
    const timer = setTimeout(() => socket.destroy(), o.ms);
    timer.unref();
    waiting.set(socket, timer);
    socket.once('close', () => clearTimeout(timer));
  });
  const spoke = (req: http.IncomingMessage): void => clearTimeout(waiting.get(req.socket));
  server.on('request', spoke);
  server.on('upgrade', spoke);
  return {
    trust: (socket) => {
      if (trusted.has(socket)) return;
      trusted.add(socket);
      const from = socket.remoteAddress ?? '';
      add(known, from, 1);
      socket.once('close', () => add(known, from, -1));
    },
  };
}
