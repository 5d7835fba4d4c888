/**
 * The one way out of a contained run's network (its namespace has only its own loopback): an
 * HTTP proxy (`CONNECT host:port`, and requests in absolute form, `GET http://host/...`) and a
 * SOCKS5 proxy (CONNECT, by name or address) on one port, which `hoop run` serves and bridges into
 * the sandbox as it bridges the run's ports (./port-bridge.ts); the command finds it in
 * `HTTPS_PROXY`, `HTTP_PROXY` and `ALL_PROXY`. A program that ignores them reaches nothing.
 *
 * Each connection asked for is judged by the host and port as asked (`runs.egress`,
 * src/policy/egress.ts), and told to `onDecision`. A name is resolved here, and an address it
 * resolves to on this machine (loopback, its own interfaces) or a link-local one (a cloud's
 * metadata service) is refused unless the entry named that address itself: a name the policy
 * allows cannot be pointed at the person's own services.
 *
 * @see https://www.rfc-editor.org/rfc/rfc9110#section-9.3.6 (CONNECT)
 * @see https://www.rfc-editor.org/rfc/rfc9112#section-3.2.2 (absolute form)
 * @see https://www.rfc-editor.org/rfc/rfc1928 (SOCKS5)
 */
import { lookup } from 'node:dns/promises';
import { BlockList, connect, isIP, type Socket } from 'node:net';
import { networkInterfaces } from 'node:os';
import { isHostName, normalHost } from '../policy/egress.js';
import type { PortAcceptor } from './port-bridge.js';

/** What became of one connection the command asked for. */
export interface EgressDecision {
  host: string;
  port: number;
  allowed: boolean;
  /** Why it was refused, for people. */
  why?: string;
  at: number;
}

/** The longest request head the HTTP side reads. */
const MAX_HEAD = 64 * 1024;
/** How long a client has to say where it goes, and a destination to answer. */
const DEADLINE_MS = 10_000;
/** Connections open at once through the proxy, at most. */
const MAX_OPEN = 512;

/** Addresses a name may not resolve to: loopback, unspecified, link-local (metadata services), this machine's own. */
function hostOnly(): BlockList {
  const b = new BlockList();
  b.addSubnet('127.0.0.0', 8, 'ipv4');
  b.addSubnet('0.0.0.0', 8, 'ipv4');
  b.addSubnet('169.254.0.0', 16, 'ipv4');
  b.addAddress('::1', 'ipv6');
  b.addAddress('::', 'ipv6');
  b.addSubnet('fe80::', 10, 'ipv6');
  b.addSubnet('::ffff:127.0.0.0', 104, 'ipv6');
  // IPv4 inside IPv6: compatible (::a.b.c.d) and NAT64 (64:ff9b::a.b.c.d) forms of loopback, unspecified and link-local.
  for (const prefix of ['::', '64:ff9b::']) {
    b.addSubnet(`${prefix}7f00:0`, 104, 'ipv6');
    b.addSubnet(`${prefix}0:0`, 104, 'ipv6');
    b.addSubnet(`${prefix}a9fe:0`, 112, 'ipv6');
  }
  b.addAddress('fd00:ec2::254', 'ipv6'); // AWS's metadata service over IPv6 (a private address, not link-local)
  for (const a of Object.values(networkInterfaces()).flat()) if (a) b.addAddress(a.address, a.family === 'IPv6' ? 'ipv6' : 'ipv4');
  return b;
}

/** Where a connection goes, as the client said it. */
interface Destination {
  host: string;
  port: number;
}

/**
 * The proxy (see the module documentation), for port `port` inside the sandbox: `allows` judges each destination (it may change while
 * the run lasts), `onDecision` hears each judgement. Serves the clients the bridge hands it.
 */
export function egressProxy(o: { port: number; allows: (host: string, port: number) => boolean; onDecision: (d: EgressDecision) => void }): PortAcceptor & { close(): void } {
  const open = new Set<Socket>();
  const blocked = hostOnly();

  /** The address to dial for `to`, or why none may be. */
  const address = async (to: Destination): Promise<{ address: string } | { why: string }> => {
    if (isIP(to.host)) return { address: to.host };
    let found: Array<{ address: string; family: number }>;
    try {
      found = await lookup(to.host, { all: true });
    } catch (err) {
      return { why: `${to.host} does not resolve (${(err as NodeJS.ErrnoException).code ?? 'error'})` };
    }
    const fit = to.host === 'localhost' ? found : found.filter((a) => !blocked.check(a.address, a.family === 6 ? 'ipv6' : 'ipv4'));
    return fit[0]
      ? { address: fit[0].address }
      : { why: `${to.host} resolves to this machine or a link-local address (${found.map((a) => a.address).join(', ')}), which only an entry naming that address reaches` };
  };

  /** Judges `to` and, when allowed, dials it; resolves the connected socket, or why not (refused: the policy's no). */
  const dial = async (asked: Destination): Promise<Socket | { why: string; refused: boolean }> => {
    const at = Date.now();
    // A name that is not one (a NUL, a control character) is refused before it is compared or looked up, and said escaped.
    if (!isHostName(asked.host)) {
      const host = JSON.stringify(asked.host.slice(0, 100)).slice(1, -1);
      const why = `"${host}" is not a host name`;
      o.onDecision({ host, port: asked.port, allowed: false, why, at });
      return { why, refused: true };
    }
    const to = asked;
    if (!o.allows(to.host, to.port)) {
      const why = `${to.host}:${to.port} is not among the destinations the policy allows this run (runs.egress)`;
      o.onDecision({ ...to, allowed: false, why, at });
      return { why, refused: true };
    }
    const where = await address(to);
    if ('why' in where) {
      o.onDecision({ ...to, allowed: false, why: where.why, at });
      return { why: where.why, refused: true };
    }
    o.onDecision({ ...to, allowed: true, at });
    return new Promise((resolve) => {
      const upstream = connect({ host: where.address, port: to.port, noDelay: true });
      upstream.setTimeout(DEADLINE_MS, () => upstream.destroy(new Error(`${to.host}:${to.port} did not answer within ${DEADLINE_MS / 1000} s`)));
      upstream.once('connect', () => {
        upstream.setTimeout(0);
        resolve(upstream);
      });
      upstream.once('error', (err) => resolve({ why: `${to.host}:${to.port}: ${err.message}`, refused: false }));
    });
  };

  /** Joins `client` and `upstream` both ways, with back-pressure, after writing `first` upstream. */
  const join = (client: Socket, upstream: Socket, first?: Buffer): void => {
    open.add(upstream);
    upstream.once('close', () => open.delete(upstream));
    if (first && first.length > 0) upstream.write(first);
    client.pipe(upstream);
    upstream.pipe(client);
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  };

  /** The HTTP side: a CONNECT, or one request in absolute form (sent on with `Connection: close`). */
  const http = async (client: Socket, head: Buffer, rest: Buffer): Promise<void> => {
    const text = head.toString('latin1');
    const [line = '', ...headers] = text.split('\r\n');
    const [method = '', target = '', version = 'HTTP/1.1'] = line.split(' ');
    const answer = (status: string, body: string): void =>
      void client.end(`${version} ${status}\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: ${Buffer.byteLength(body) + 1}\r\n\r\n${body}\n`);
    if (method === 'CONNECT') {
      const m = /^\[([0-9a-fA-F:.]+)\]:(\d{1,5})$|^([^:[\]/]+):(\d{1,5})$/.exec(target);
      if (!m) return answer('400 Bad Request', `hoop: CONNECT needs host:port, not ${target}`);
      const to = { host: normalHost(m[1] ?? m[3]!), port: Number(m[2] ?? m[4]) };
      const up = await dial(to);
      if ('why' in up) return answer(up.refused ? '403 Forbidden' : '502 Bad Gateway', `hoop: ${up.why}`);
      client.write(`${version} 200 Connection established\r\n\r\n`);
      return join(client, up, rest);
    }
    let url: URL;
    try {
      url = new URL(target);
    } catch {
      return answer('400 Bad Request', "hoop: this is the run's egress proxy: send CONNECT host:port, or a request for an http:// URL");
    }
    if (url.protocol !== 'http:') return answer('400 Bad Request', `hoop: the proxy sends on http:// requests only (use CONNECT for ${url.protocol})`);
    const to = { host: normalHost(url.hostname), port: Number(url.port || 80) };
    const up = await dial(to);
    if ('why' in up) return answer(up.refused ? '403 Forbidden' : '502 Bad Gateway', `hoop: ${up.why}`);
    const kept = headers.filter((h) => h !== '' && !/^(proxy-connection|proxy-authorization|connection|keep-alive)\s*:/i.test(h));
    join(client, up, Buffer.concat([Buffer.from(`${method} ${url.pathname}${url.search} ${version}\r\n${[...kept, 'Connection: close'].join('\r\n')}\r\n\r\n`, 'latin1'), rest]));
  };

  /** The SOCKS5 side, from its greeting's second byte (the version was read). @see https://www.rfc-editor.org/rfc/rfc1928#section-4 */
  const socks = async (client: Socket, read: (n: number) => Promise<Buffer>, rest: () => Buffer): Promise<void> => {
    const reply = (code: number): boolean => client.write(Buffer.from([5, code, 0, 1, 0, 0, 0, 0, 0, 0]));
    const [methods] = await read(1);
    const offered = methods ? await read(methods) : Buffer.alloc(0);
    if (!offered.includes(0)) return void client.end(Buffer.from([5, 0xff]));
    client.write(Buffer.from([5, 0]));
    const [, command, , kind] = await read(4);
    let host: string;
    if (kind === 1) host = [...(await read(4))].join('.');
    else if (kind === 3) host = (await read((await read(1))[0]! || 1)).toString('latin1');
    else if (kind === 4) host = (await read(16)).toString('hex').replace(/(.{4})(?!$)/g, '$1:');
    else return void (reply(8), client.end());
    const port = (await read(2)).readUInt16BE(0);
    if (command !== 1) return void (reply(7), client.end());
    const up = await dial({ host: normalHost(host), port });
    if ('why' in up) return void (reply(up.refused ? 2 : 5), client.end());
    reply(0);
    join(client, up, rest());
  };

  /** Reads from `client`: exactly `n` bytes, or (`n` 0) what came, at least a byte; `rest` takes what is left and stops reading (a pipe takes over). */
  const reader = (client: Socket): { read: (n: number) => Promise<Buffer>; rest: () => Buffer } => {
    let buf = Buffer.alloc(0);
    let want: { n: number; resolve: (b: Buffer) => void; reject: (e: Error) => void } | undefined;
    const take = (): void => {
      if (!want || buf.length < Math.max(1, want.n)) return;
      const out = buf.subarray(0, want.n === 0 ? buf.length : want.n);
      buf = buf.subarray(out.length);
      const w = want;
      want = undefined;
      w.resolve(out);
    };
    const onData = (b: Buffer): void => {
      buf = Buffer.concat([buf, b]);
      if (buf.length > MAX_HEAD) client.destroy();
      take();
    };
    client.on('data', onData);
    client.once('close', () => want?.reject(new Error('the client went away')));
    return {
      read: (n) =>
        new Promise((resolve, reject) => {
          want = { n, resolve, reject };
          take();
        }),
      rest: () => {
        client.pause();
        client.off('data', onData);
        return buf;
      },
    };
  };

  return {
    port: o.port,
    accept: (client) => {
      if (open.size >= MAX_OPEN) return void client.destroy();
      open.add(client);
      client.once('close', () => open.delete(client));
      client.on('error', () => client.destroy());
      client.setTimeout(DEADLINE_MS, () => client.destroy());
      const { read, rest } = reader(client);
      const serve = async (): Promise<void> => {
        const first = await read(1);
        if (first[0] === 5) return socks(client, read, rest);
        // HTTP: the head, then what came after it.
        let head = first;
        while (head.indexOf('\r\n\r\n') < 0) head = Buffer.concat([head, await read(0)]);
        const cut = head.indexOf('\r\n\r\n') + 4;
        return http(client, head.subarray(0, cut), Buffer.concat([head.subarray(cut), rest()]));
      };
      void serve().then(
        () => client.setTimeout(0),
        () => client.destroy(),
      );
    },
    close: () => {
      for (const s of open) s.destroy();
    },
  };
}
