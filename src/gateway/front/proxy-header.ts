/**
 * The PROXY protocol version 2 header a load balancer in TCP mode (HAProxy's `send-proxy-v2`)
 * sends before its client's bytes: the client's address and port, in binary. Read from a listed
 * balancer only (./balancers.ts); the text form of version 1 is refused, as its unbounded text
 * read before TLS is more to get wrong and every balancer that sends v1 also sends v2.
 *
 * @see https://www.haproxy.org/download/2.6/doc/proxy-protocol.txt (section 2.2: the binary header)
 */
import { isIPv4 } from 'node:net';

/** The twelve bytes a version 2 header begins with. */
export const PROXY_V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
/** The fixed part: the signature, the version and command, the family and transport, the length of the rest. */
const FIXED = 16;
/** A header of more bytes is refused: the spec's bound of what fits a minimal TCP segment (536), TLVs included. */
export const MAX_PROXY_HEADER = 536;
/** Version 2 with the command LOCAL (the balancer's own connection: a health check) or PROXY (a client's). */
const LOCAL = 0x20;
const PROXY = 0x21;
/** The family and transport byte of TCP over IPv4 and over IPv6, and the bytes of their addresses and ports. */
const TCP4 = 0x11;
const TCP6 = 0x21;
const ADDRESS_BYTES: Record<number, number> = { [TCP4]: 12, [TCP6]: 36 };

/** A client's address and port as a header says them. */
export interface ProxiedPeer {
  address: string;
  port: number;
}

/** What the bytes a connection began with say: more are needed, they are no valid header, or a header of `length` bytes (`peer` absent for LOCAL). */
export type ProxyHeaderVerdict = { state: 'more' } | { state: 'bad'; problem: string } | { state: 'done'; length: number; peer?: ProxiedPeer };

/** Reads the PROXY protocol v2 header at the start of `b` (the bytes read so far). */
export function parseProxyHeader(b: Buffer): ProxyHeaderVerdict {
  const head = b.subarray(0, PROXY_V2_SIGNATURE.length);
  if (!head.equals(PROXY_V2_SIGNATURE.subarray(0, head.length))) {
    return { state: 'bad', problem: b.subarray(0, 6).toString('latin1') === 'PROXY ' ? 'a PROXY protocol v1 (text) header: hoop reads v2 only (send-proxy-v2)' : 'no PROXY protocol v2 signature' };
  }
  if (b.length < FIXED) return { state: 'more' };
  const command = b[12]!;
  if (command !== LOCAL && command !== PROXY) return { state: 'bad', problem: `version and command 0x${command.toString(16)}, not 2 with LOCAL or PROXY` };
  const length = FIXED + b.readUInt16BE(14);
  if (length > MAX_PROXY_HEADER) return { state: 'bad', problem: `a header of ${length} bytes, more than ${MAX_PROXY_HEADER}` };
  if (b.length < length) return { state: 'more' };
  return command === LOCAL ? { state: 'done', length } : proxied(b.subarray(0, length));
}

/** The client a whole PROXY command header (`h`) names: TCP over IPv4 or IPv6 only, its TLVs well formed and skipped. */
function proxied(h: Buffer): ProxyHeaderVerdict {
  const family = h[13]!;
  const bytes = ADDRESS_BYTES[family];
  if (bytes === undefined) return { state: 'bad', problem: `family and transport 0x${family.toString(16)}, not TCP over IPv4 or IPv6` };
  if (h.length < FIXED + bytes) return { state: 'bad', problem: `${h.length - FIXED} bytes of addresses, fewer than the ${bytes} of its family` };
  const tlvProblem = checkTlvs(h.subarray(FIXED + bytes));
  if (tlvProblem) return { state: 'bad', problem: tlvProblem };
  const a = h.subarray(FIXED);
  const peer = family === TCP4 ? { address: [...a.subarray(0, 4)].join('.'), port: a.readUInt16BE(8) } : { address: ipv6Text(a.subarray(0, 16)), port: a.readUInt16BE(32) };
  return { state: 'done', length: h.length, peer };
}

/** Why the TLVs after the addresses are not a run of type, length, value that ends where the header does; undefined when they are. */
function checkTlvs(t: Buffer): string | undefined {
  let at = 0;
  while (at < t.length) {
    if (t.length - at < 3) return 'a TLV cut short';
    at += 3 + t.readUInt16BE(at + 1);
  }
  return at === t.length ? undefined : 'a TLV longer than the header';
}

/** An IPv6 address as Node writes a socket's (`::1`, `::ffff:10.0.0.5`). */
function ipv6Text(a: Buffer): string {
  if (a.subarray(0, 10).every((x) => x === 0) && a.readUInt16BE(10) === 0xffff) {
    const v4 = [...a.subarray(12)].join('.');
    if (isIPv4(v4)) return `::ffff:${v4}`;
  }
  const groups = Array.from({ length: 8 }, (_, i) => a.readUInt16BE(i * 2).toString(16)).join(':');
  return new URL(`http://[${groups}]/`).hostname.slice(1, -1);
}
