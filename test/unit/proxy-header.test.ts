/**
 * The PROXY protocol v2 header a listed load balancer sends first (src/gateway/front/proxy-header.ts,
 * src/gateway/front/balancers.ts): TCP over IPv4 and IPv6 say the client, LOCAL says none, TLVs are
 * skipped, a header split across reads waits for the rest; a bad signature, the text form v1, an
 * unknown command or family, a truncated address or TLV and an oversize header are refused. Over a
 * socket, the bytes after the header are given back and the address told (peer-address.ts).
 */
import { connect, createServer, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { Balancers, parseBalancer, receiveProxyHeader } from '../../src/gateway/front/balancers.js';
import { peerOf, peerText } from '../../src/gateway/front/peer-address.js';
import { MAX_PROXY_HEADER, PROXY_V2_SIGNATURE, parseProxyHeader } from '../../src/gateway/front/proxy-header.js';
import { createLogger } from '../../src/log.js';

/** A v2 header: command byte, family byte, address bytes, then TLVs. */
function header(command: number, family: number, addresses: Buffer, tlvs: Buffer = Buffer.alloc(0)): Buffer {
  const length = Buffer.alloc(2);
  length.writeUInt16BE(addresses.length + tlvs.length);
  return Buffer.concat([PROXY_V2_SIGNATURE, Buffer.from([command, family]), length, addresses, tlvs]);
}

function tcp4(src: number[], srcPort: number, dst: number[] = [10, 0, 0, 1], dstPort = 8443): Buffer {
  const b = Buffer.alloc(12);
  Buffer.from(src).copy(b, 0);
  Buffer.from(dst).copy(b, 4);
  b.writeUInt16BE(srcPort, 8);
  b.writeUInt16BE(dstPort, 10);
  return b;
}

function tcp6(src: number[], srcPort: number): Buffer {
  const b = Buffer.alloc(36);
  src.forEach((group, i) => b.writeUInt16BE(group, i * 2));
  b.writeUInt16BE(1, 30); // destination ::1
  b.writeUInt16BE(srcPort, 32);
  b.writeUInt16BE(8443, 34);
  return b;
}

function tlv(type: number, value: Buffer): Buffer {
  const b = Buffer.alloc(3);
  b[0] = type;
  b.writeUInt16BE(value.length, 1);
  return Buffer.concat([b, value]);
}

describe('parseProxyHeader', () => {
  it('reads TCP over IPv4: the client address and port, and the header length', () => {
    const h = header(0x21, 0x11, tcp4([192, 0, 2, 7], 51234));
    expect(parseProxyHeader(Buffer.concat([h, Buffer.from([0x16, 3, 1])]))).toEqual({ state: 'done', length: 28, peer: { address: '192.0.2.7', port: 51234 } });
  });

  it('reads TCP over IPv6 as Node writes an address (compressed; IPv4-mapped in dotted form)', () => {
    expect(parseProxyHeader(header(0x21, 0x21, tcp6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x42], 4000)))).toEqual({ state: 'done', length: 52, peer: { address: '2001:db8::42', port: 4000 } });
    expect(parseProxyHeader(header(0x21, 0x21, tcp6([0, 0, 0, 0, 0, 0xffff, 0xc000, 0x0207], 5)))).toMatchObject({ peer: { address: '::ffff:192.0.2.7', port: 5 } });
  });

  it('takes LOCAL (a health check) with no address, whatever its family, its bytes skipped', () => {
    expect(parseProxyHeader(header(0x20, 0x00, Buffer.alloc(0)))).toEqual({ state: 'done', length: 16 });
    expect(parseProxyHeader(header(0x20, 0x11, tcp4([1, 2, 3, 4], 1)))).toEqual({ state: 'done', length: 28 });
  });

  it('skips TLVs (a NOOP, an ALPN, a unique id) that end where the header does', () => {
    const tlvs = Buffer.concat([tlv(0x04, Buffer.alloc(5)), tlv(0x01, Buffer.from('h2')), tlv(0x05, Buffer.from('id-1'))]);
    expect(parseProxyHeader(header(0x21, 0x11, tcp4([10, 9, 8, 7], 1000), tlvs))).toEqual({ state: 'done', length: 28 + tlvs.length, peer: { address: '10.9.8.7', port: 1000 } });
  });

  it('asks for more at every cut of a header split across reads, and reads it whole once it is there', () => {
    const h = header(0x21, 0x11, tcp4([203, 0, 113, 9], 443), tlv(0x04, Buffer.alloc(3)));
    for (let cut = 1; cut < h.length; cut++) expect(parseProxyHeader(h.subarray(0, cut)), `cut at ${cut}`).toEqual({ state: 'more' });
    expect(parseProxyHeader(h)).toMatchObject({ state: 'done', length: h.length, peer: { address: '203.0.113.9', port: 443 } });
  });

  it('refuses a bad signature at its first wrong byte: a TLS ClientHello, a StartupMessage, a signature one byte off', () => {
    expect(parseProxyHeader(Buffer.from([0x16, 0x03, 0x01]))).toMatchObject({ state: 'bad', problem: 'no PROXY protocol v2 signature' });
    expect(parseProxyHeader(Buffer.from([0, 0, 0, 8, 4, 0xd2, 0x16, 0x2f]))).toMatchObject({ state: 'bad' });
    const off = Buffer.from(PROXY_V2_SIGNATURE);
    off[7] = 0x50;
    expect(parseProxyHeader(off.subarray(0, 8))).toMatchObject({ state: 'bad' });
  });

  it('refuses the text form v1, saying to send v2', () => {
    expect(parseProxyHeader(Buffer.from('PROXY TCP4 192.0.2.7 10.0.0.1 51234 8443\r\n'))).toMatchObject({ state: 'bad', problem: expect.stringContaining('v1') });
  });

  it('refuses another version or command, and PROXY over a family that is not TCP', () => {
    expect(parseProxyHeader(header(0x11, 0x11, tcp4([1, 2, 3, 4], 1)))).toMatchObject({ state: 'bad', problem: expect.stringContaining('version') });
    expect(parseProxyHeader(header(0x22, 0x11, tcp4([1, 2, 3, 4], 1)))).toMatchObject({ state: 'bad' });
    expect(parseProxyHeader(header(0x21, 0x00, Buffer.alloc(0)))).toMatchObject({ state: 'bad', problem: expect.stringContaining('not TCP') });
    expect(parseProxyHeader(header(0x21, 0x12, tcp4([1, 2, 3, 4], 1)))).toMatchObject({ state: 'bad' }); // UDP
    expect(parseProxyHeader(header(0x21, 0x31, Buffer.alloc(216)))).toMatchObject({ state: 'bad' }); // a UNIX socket
  });

  it('refuses a header truncated inside its addresses or a TLV, or a TLV longer than the header', () => {
    expect(parseProxyHeader(header(0x21, 0x11, tcp4([1, 2, 3, 4], 1).subarray(0, 8)))).toMatchObject({ state: 'bad', problem: expect.stringContaining('fewer') });
    expect(parseProxyHeader(header(0x21, 0x11, tcp4([1, 2, 3, 4], 1), Buffer.from([0x04, 0x00])))).toMatchObject({ state: 'bad', problem: 'a TLV cut short' });
    expect(parseProxyHeader(header(0x21, 0x11, tcp4([1, 2, 3, 4], 1), Buffer.from([0x04, 0x00, 0x09, 1])))).toMatchObject({ state: 'bad', problem: 'a TLV longer than the header' });
  });

  it(`refuses a header longer than ${MAX_PROXY_HEADER} bytes as soon as its length says so, and takes one of exactly that`, () => {
    const big = header(0x21, 0x11, tcp4([1, 2, 3, 4], 1), tlv(0x04, Buffer.alloc(MAX_PROXY_HEADER - 28 - 3 + 1)));
    expect(parseProxyHeader(big.subarray(0, 16))).toMatchObject({ state: 'bad', problem: expect.stringContaining(`more than ${MAX_PROXY_HEADER}`) });
    const most = header(0x21, 0x11, tcp4([1, 2, 3, 4], 1), tlv(0x04, Buffer.alloc(MAX_PROXY_HEADER - 28 - 3)));
    expect(parseProxyHeader(most)).toMatchObject({ state: 'done', length: MAX_PROXY_HEADER });
  });
});

describe('the balancers listed', () => {
  it('reads addresses and CIDR blocks of either family, and nothing else', () => {
    expect(parseBalancer('10.0.0.5')).toEqual({ address: '10.0.0.5', prefix: 32, family: 'ipv4' });
    expect(parseBalancer('10.1.0.0/16')).toEqual({ address: '10.1.0.0', prefix: 16, family: 'ipv4' });
    expect(parseBalancer('fd00::/8')).toEqual({ address: 'fd00::', prefix: 8, family: 'ipv6' });
    for (const bad of ['10.0.0.0/33', '::1/129', 'lb.internal', '10.0.0.5/', '10.0.0.5/8/1', '10.0.0.256', '', '::1/-1']) expect(parseBalancer(bad), bad).toBeUndefined();
  });

  it('matches an address as a socket says it, IPv4-mapped or not, and no other', () => {
    const b = new Balancers(['10.0.0.5', '10.1.0.0/16', '::1']);
    for (const yes of ['10.0.0.5', '::ffff:10.0.0.5', '10.1.200.3', '::1']) expect(b.has(yes), yes).toBe(true);
    for (const no of ['10.0.0.6', '10.2.0.1', '::2', '::ffff:10.2.0.1', undefined, '']) expect(b.has(no), String(no)).toBe(false);
  });
});

describe('receiveProxyHeader on a socket', () => {
  let server: Server | undefined;
  afterEach(() => server?.close());

  /** A server that reads a header from each connection, then collects what follows; resolves with the socket once read. */
  async function serve(): Promise<{ port: number; next: () => Promise<{ socket: Socket; after: () => string } | 'closed'>; logs: string[] }> {
    const logs: string[] = [];
    const log = createLogger({ level: 'debug', sink: { write: (l: string) => logs.push(l) } });
    const waiting: Array<(v: { socket: Socket; after: () => string } | 'closed') => void> = [];
    server = createServer((raw) => {
      const done = waiting.shift()!;
      raw.once('close', () => done('closed'));
      receiveProxyHeader(raw, log, () => {
        let text = '';
        raw.on('data', (d: Buffer) => (text += d.toString('latin1')));
        raw.resume();
        done({ socket: raw, after: () => text });
      });
    });
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    return { port, logs, next: () => new Promise((r) => waiting.push(r)) };
  }

  it('takes a header written a byte at a time, tells the client, and gives back the bytes after it', async () => {
    const s = await serve();
    const accepted = s.next();
    const c = connect(s.port, '127.0.0.1');
    const bytes = Buffer.concat([header(0x21, 0x11, tcp4([198, 51, 100, 20], 40_000)), Buffer.from('hello')]);
    for (const byte of bytes.subarray(0, 30)) {
      c.write(Buffer.from([byte]));
      await new Promise((r) => setImmediate(r));
    }
    c.write(bytes.subarray(30));
    const got = await accepted;
    if (got === 'closed') throw new Error('closed');
    expect(peerOf(got.socket)).toEqual({ address: '198.51.100.20', port: 40_000 });
    expect(peerText(got.socket)).toBe('198.51.100.20:40000');
    await expect.poll(got.after).toBe('hello');
    c.destroy();
  });

  it('keeps the real peer for LOCAL, and closes a connection without a header, saying why in the log', async () => {
    const s = await serve();
    const local = s.next();
    const c = connect(s.port, '127.0.0.1', () => c.write(header(0x20, 0x00, Buffer.alloc(0))));
    const got = await local;
    if (got === 'closed') throw new Error('closed');
    expect(peerOf(got.socket).address).toBe('127.0.0.1');
    c.destroy();

    const plain = s.next();
    const d = connect(s.port, '127.0.0.1', () => d.write(Buffer.from([0x16, 3, 1, 0, 5])));
    d.on('error', () => undefined);
    expect(await plain).toBe('closed');
    expect(s.logs.join('\n')).toContain('front.proxy-header-refused');
  });
});
