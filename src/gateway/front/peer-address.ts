/**
 * Where a connection to the gateway's port comes from: the client's address and port a listed
 * load balancer's PROXY protocol header told (./balancers.ts), else the TCP peer's. Every reader of
 * a connection's address in the gateway asks here, never `socket.remoteAddress`, so the caps per
 * address, the refusal tracking, the audit and the sessions all see the client, not the balancer.
 */

/** A connection's source: its address and port (undefined once a socket is closed and Node forgot them). */
export interface Peer {
  address: string | undefined;
  port: number | undefined;
}

/** Anything a connection arrives as: a TCP socket, the TLS socket over it, an HTTP request's socket. */
type Connection = { remoteAddress?: string | undefined; remotePort?: number | undefined };

const told = new WeakMap<object, Peer>();

/** `socket`'s source is `peer` (what a balancer's header said, or a TLS socket's TCP socket's source). */
export function tellPeer(socket: object, peer: Peer): void {
  told.set(socket, peer);
}

/** The source of `socket`: as told, else its TCP peer. */
export function peerOf(socket: Connection): Peer {
  return told.get(socket) ?? { address: socket.remoteAddress, port: socket.remotePort };
}

/** `address:port` of `socket`'s source (`?` for what is unknown), as sessions and the audit say it. */
export function peerText(socket: Connection): string {
  const { address, port } = peerOf(socket);
  return `${address ?? '?'}:${port ?? '?'}`;
}

/**
 * Whose connections and refusals are counted together: an IPv4 address, or an IPv6 address's /64 (one host holds a
 * whole /64: counting each of its addresses apart would let it spray past the limit).
 * @see https://www.rfc-editor.org/rfc/rfc4291#section-2.5.4 (a /64 per link)
 */
export function sourceOf(address: string): string {
  const v4 = /^(?:::ffff:)?(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(address);
  if (v4) return v4[1]!;
  if (!address.includes(':')) return address;
  const [head = '', tail = ''] = address.toLowerCase().split('::');
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const groups = address.includes('::') ? [...left, ...Array(Math.max(0, 8 - left.length - right.length)).fill('0'), ...right] : left;
  return `${groups
    .slice(0, 4)
    .map((g) => g.replace(/^0+(?=.)/, ''))
    .join(':')}::/64`;
}
