/**
 * The gateway's port before an identity stands behind a connection: a deadline for the TLS
 * handshake and the first request (or a direct client's startup), and a bound on the connections
 * one address may hold that no accepted credential came on (see {@link ConnectionGuard}).
 *
 * @see https://nodejs.org/api/http.html#httpcreateserveroptions-requestlistener (headersTimeout, connectionsCheckingInterval)
 */
import type * as http from 'node:http';
import type { Socket } from 'node:net';
import { peerOf, sourceOf } from './peer-address.js';

/**
 * Bounds the connections no identity stands behind yet. Each is closed unless it sends a request
 * (or an Upgrade, or a direct client's startup) within `ms` of connecting, its TLS handshake
 * included; and one source address may hold at most `perAddress` connections that no accepted
 * credential came on (silent ones, and ones that only ever sent requests without a valid token),
 * so sockets from one place cannot take every descriptor of the gateway. Later requests on a
 * connection have Node's `headersTimeout`, checked every second (`connectionsCheckingInterval`).
 * A TLS socket made over a TCP one counts as it ({@link alias}). An address is the client's, the
 * one a listed balancer's PROXY header told (./peer-address.ts), whose wait the deadline covers.
 */
export class ConnectionGuard {
  readonly #waiting = new WeakMap<object, NodeJS.Timeout>();
  readonly #trusted = new WeakSet<object>();
  readonly #aliases = new WeakMap<object, Socket>();
  /** Per source address: connections open, and those an accepted credential came on (strangers = open - known). */
  readonly #open = new Map<string, number>();
  readonly #known = new Map<string, number>();

  constructor(private readonly o: { ms: number; perAddress: number }) {}

  /** Listens to `server`'s requests and Upgrades: each one is a connection that spoke. */
  watch(server: http.Server): void {
    const spoke = (req: http.IncomingMessage): void => this.spoke(req.socket);
    server.on('request', spoke);
    server.on('upgrade', spoke);
  }

  /** A new TCP connection's deadline runs from now (a balancer's, before its PROXY header is read); once only. */
  started(socket: Socket): void {
    if (this.#waiting.has(socket)) return;
    const timer = setTimeout(() => socket.destroy(), this.o.ms);
    timer.unref();
    this.#waiting.set(socket, timer);
    socket.once('close', () => clearTimeout(timer));
  }

  /** A new TCP connection, its client's address known: false (and it is closed) when that address holds too many strangers; else its deadline runs. */
  arrived(socket: Socket): boolean {
    const from = sourceOf(peerOf(socket).address ?? '');
    if ((this.#open.get(from) ?? 0) - (this.#known.get(from) ?? 0) >= this.o.perAddress) {
      socket.destroy();
      return false;
    }
    add(this.#open, from, 1);
    socket.once('close', () => add(this.#open, from, -1));
    this.started(socket);
    return true;
  }

  /** `over` (a TLS socket) runs on `raw`: what is said of it is said of `raw`. */
  alias(over: object, raw: Socket): void {
    this.#aliases.set(over, raw);
  }

  /** The connection sent its first request (or startup): its deadline is over. */
  spoke(socket: object): void {
    clearTimeout(this.#waiting.get(this.#raw(socket)));
  }

  /** A request on `socket` carried a credential the gateway accepted: the connection is someone's, no longer a stranger's. */
  trust(socket: object): void {
    const raw = this.#raw(socket);
    if (this.#trusted.has(raw)) return;
    this.#trusted.add(raw);
    const from = sourceOf(peerOf(raw).address ?? '');
    add(this.#known, from, 1);
    raw.once('close', () => add(this.#known, from, -1));
  }

  #raw(socket: object): Socket {
    return this.#aliases.get(socket) ?? (socket as Socket);
  }
}

function add(m: Map<string, number>, key: string, n: number): void {
  const v = (m.get(key) ?? 0) + n;
  if (v > 0) m.set(key, v);
  else m.delete(key);
}
