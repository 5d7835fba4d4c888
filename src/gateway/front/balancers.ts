/**
 * The load balancers whose PROXY protocol v2 header the gateway reads (`proxyProtocol.from`): a
 * connection from one of them must begin with a valid header, which says the client's address
 * (./peer-address.ts), or it is closed; a connection from anywhere else is never read for one, so
 * a client cannot claim another address by sending a header itself.
 *
 * @see https://www.haproxy.org/download/2.6/doc/proxy-protocol.txt
 */
import { BlockList, isIPv4, isIPv6, type Socket } from 'node:net';
import type { Logger } from '../../log.js';
import { peerOf, tellPeer } from './peer-address.js';
import { parseProxyHeader } from './proxy-header.js';

/** An entry of `proxyProtocol.from`: an address or a CIDR block, IPv4 or IPv6. */
export function parseBalancer(text: string): { address: string; prefix: number; family: 'ipv4' | 'ipv6' } | undefined {
  const [address = '', prefixText, ...rest] = text.trim().split('/');
  const family = isIPv4(address) ? 'ipv4' : isIPv6(address) ? 'ipv6' : undefined;
  if (!family || rest.length > 0) return undefined;
  const max = family === 'ipv4' ? 32 : 128;
  const prefix = prefixText === undefined ? max : /^\d{1,3}$/.test(prefixText) ? Number(prefixText) : Number.NaN;
  return prefix >= 0 && prefix <= max ? { address, prefix, family } : undefined;
}

/** The balancers listed, matched as a socket says its peer (an IPv4 one as `::ffff:a.b.c.d` on a dual-stack port). */
export class Balancers {
  readonly #list = new BlockList();

  /** `from`: addresses and CIDR blocks each {@link parseBalancer} reads. */
  constructor(from: readonly string[]) {
    for (const text of from) {
      const b = parseBalancer(text);
      if (!b) throw new Error(`not an address or CIDR block: ${text}`);
      this.#list.addSubnet(b.address, b.prefix, b.family);
    }
  }

  /** Whether a connection from `address` comes from a listed balancer. */
  has(address: string | undefined): boolean {
    if (address === undefined) return false;
    const v4 = address.startsWith('::ffff:') ? address.slice(7) : address;
    if (isIPv4(v4)) return this.#list.check(v4, 'ipv4');
    return isIPv6(address) && this.#list.check(address, 'ipv6');
  }
}

/**
 * Reads the PROXY protocol v2 header `raw` begins with (over as many reads as it comes in), tells
 * its client's address, gives back the bytes after it and calls `then` with `raw` paused; without
 * a valid header `raw` is closed, said in the log. Its deadline is the caller's.
 */
export function receiveProxyHeader(raw: Socket, log: Logger, then: () => void): void {
  let seen: Buffer = Buffer.alloc(0);
  const onData = (chunk: Buffer): void => {
    seen = seen.length === 0 ? chunk : Buffer.concat([seen, chunk]);
    const header = parseProxyHeader(seen);
    if (header.state === 'more') return;
    raw.off('data', onData);
    raw.pause();
    if (header.state === 'bad') {
      log.warn('front.proxy-header-refused', {
        balancer: peerOf(raw).address,
        problem: header.problem,
        hint: 'a listed balancer (proxyProtocol.from) must send a PROXY protocol v2 header (HAProxy: send-proxy-v2)',
      });
      return void raw.destroy();
    }
    if (header.peer) tellPeer(raw, header.peer);
    else log.debug('front.proxy-local', { balancer: peerOf(raw).address });
    if (seen.length > header.length) raw.unshift(seen.subarray(header.length));
    then();
  };
  raw.on('data', onData);
}
