/**
 * The one way out of a contained run's network (its namespace has only its own loopback): an
 * HTTP proxy (`CONNECT host:port`, and requests in absolute form, `GET http://host/...`) and a
 * SOCKS5 proxy (CONNECT, by name or address) on one port, which `hoop run` serves and bridges into
 * the sandbox as it bridges the run's ports (./port-bridge.ts); the command finds it in
 * `HTTPS_PROXY`, `HTTP_PROXY` and `ALL_PROXY`. A program that ignores them reaches nothing.
 *
 * A destination the run serves itself (an HTTP connection's API host: `routes`) is handed to it,
 * never dialled: the agent that calls the API's real name reaches it through the gateway, with the
 * credential the gateway adds and its policy. Every other connection asked for is judged by the
 * host and port as asked (`runs.egress`, src/policy/egress.ts), and told to `onDecision`. A name is resolved here, and an address it
 * resolves to on this machine (loopback, its own interfaces) or a link-local one (a cloud's
 * metadata service) is refused unless the entry named that address itself: a name the policy
 * allows cannot be pointed at the person's own services.
 *
 * @see https://www.rfc-editor.org/rfc/rfc9110#section-9.3.6 (CONNECT)
 * @see https://www.rfc-editor.org/rfc/rfc9112#section-3.2.2 (absolute form)
 * @see https://www.rfc-editor.org/rfc/rfc1928 (SOCKS5)
 */
import { realClock } from '../clock.js';
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

/** Serves a connection the run itself answers for (an HTTP connection's API): the client's bytes, `first` those that came already. */
export type EgressRoute = (client: Socket, first: Buffer) => void;

/** What the proxy is told: its port, the policy's judgement of a destination (it may change while the run lasts), who hears each judgement, and the destinations the run serves itself. */
interface EgressOptions {
  port: number;
  allows: (host: string, port: number) => boolean;
  onDecision: (d: EgressDecision) => void;
  /** The route for `host:port` when the run serves it itself (never dialled, nor judged by `runs.egress`: the gateway judges what goes there). */
  routes?: (host: string, port: number) => EgressRoute | undefined;
}

/** A destination dialled, or why not (refused: the policy's no, else the destination's failure). */
type Dialled = Socket | { why: string; refused: boolean };

/** Reads from a client: exactly `n` bytes, or (`n` 0) what came, at least a byte; `rest` takes what is left and stops reading (a pipe takes over). */
interface ClientReader {
  read: (n: number) => Promise<Buffer>;
  rest: () => Buffer;
}

/** The request line and header lines of an HTTP request head. */
interface RequestHead {
  method: string;
  target: string;
  version: string;
  headers: string[];
}

/**
 * The proxy (see the module documentation), for port `port` inside the sandbox: `allows` judges each destination (it may change while
 * the run lasts), `onDecision` hears each judgement. Serves the clients the bridge hands it.
 */
export function egressProxy(o: EgressOptions): PortAcceptor & { close(): void } {
  return new EgressProxy(o);
}

/** The proxy's state: what it was told, the sockets open through it, and the addresses a name may not resolve to. */
class EgressProxy implements PortAcceptor {
  readonly port: number;
  readonly #o: EgressOptions;
  readonly #open = new Set<Socket>();
  readonly #blocked = hostOnly();

  constructor(o: EgressOptions) {
    this.port = o.port;
    this.#o = o;
  }

  /** Serves a client the bridge hands over, within the proxy's limits (connections open at once, a deadline to say where it goes). */
  accept(client: Socket): void {
    if (this.#open.size >= MAX_OPEN) return void client.destroy();
    this.#open.add(client);
    client.once('close', () => this.#open.delete(client));
    client.on('error', () => client.destroy());
    client.setTimeout(DEADLINE_MS, () => client.destroy());
    void this.#serve(client).then(
      () => client.setTimeout(0),
      () => client.destroy(),
    );
  }

  /** Ends every connection open through the proxy. */
  close(): void {
    for (const s of this.#open) s.destroy();
  }

  /** Tells SOCKS5 from HTTP by the first byte, and hands the client to that side. */
  async #serve(client: Socket): Promise<void> {
    const { read, rest } = clientReader(client);
    const first = await read(1);
    if (first[0] === 5) return this.#socks(client, read, rest);
    // HTTP: the head, then what came after it.
    let head = first;
    while (head.indexOf('\r\n\r\n') < 0) head = Buffer.concat([head, await read(0)]);
    const cut = head.indexOf('\r\n\r\n') + 4;
    return this.#http(client, head.subarray(0, cut), Buffer.concat([head.subarray(cut), rest()]));
  }

  /** The run's own route for `to`, told to `onDecision` as allowed; undefined when it has none. */
  #route(to: Destination): EgressRoute | undefined {
    const route = isHostName(to.host) ? this.#o.routes?.(to.host, to.port) : undefined;
    if (route) this.#o.onDecision({ ...to, allowed: true, at: realClock.now() });
    return route;
  }

  /** Judges `asked` and, when allowed, dials it; resolves the connected socket, or why not (refused: the policy's no). */
  async #dial(asked: Destination): Promise<Dialled> {
    const judged = await this.#judge(asked, realClock.now());
    if ('why' in judged) return { why: judged.why, refused: true };
    return connectTo(asked, judged.address);
  }

  /**
   * The address to dial for `to`, or why it is refused, told to `onDecision` either way. In this order: a name that is not one
   * (a NUL, a control character) is refused before it is compared or looked up, and said escaped; then the policy; then where
   * the name resolves.
   */
  async #judge(to: Destination, at: number): Promise<{ address: string } | { why: string }> {
    if (!isHostName(to.host)) {
      const host = JSON.stringify(to.host.slice(0, 100)).slice(1, -1);
      return this.#refuse({ host, port: to.port }, `"${host}" is not a host name`, at);
    }
    if (!this.#o.allows(to.host, to.port)) return this.#refuse(to, `${to.host}:${to.port} is not among the destinations the policy allows this run (runs.egress)`, at);
    const where = await this.#address(to);
    if ('why' in where) return this.#refuse(to, where.why, at);
    this.#o.onDecision({ ...to, allowed: true, at });
    return where;
  }

  /** Tells `onDecision` that `to` was refused and why; returns the why. */
  #refuse(to: Destination, why: string, at: number): { why: string } {
    this.#o.onDecision({ ...to, allowed: false, why, at });
    return { why };
  }

  /** The address to dial for `to`, or why none may be. */
  async #address(to: Destination): Promise<{ address: string } | { why: string }> {
    if (isIP(to.host)) return { address: to.host };
    let found: Array<{ address: string; family: number }>;
    try {
      found = await lookup(to.host, { all: true });
    } catch (err) {
      return { why: `${to.host} does not resolve (${(err as NodeJS.ErrnoException).code ?? 'error'})` };
    }
    const fit = to.host === 'localhost' ? found : found.filter((a) => !this.#blocked.check(a.address, a.family === 6 ? 'ipv6' : 'ipv4'));
    return fit[0]
      ? { address: fit[0].address }
      : { why: `${to.host} resolves to this machine or a link-local address (${found.map((a) => a.address).join(', ')}), which only an entry naming that address reaches` };
  }

  /** Joins `client` and `upstream` both ways, with back-pressure, after writing `first` upstream. */
  #join(client: Socket, upstream: Socket, first?: Buffer): void {
    this.#open.add(upstream);
    upstream.once('close', () => this.#open.delete(upstream));
    if (first && first.length > 0) upstream.write(first);
    client.pipe(upstream);
    upstream.pipe(client);
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  }

  /** The HTTP side: a CONNECT, or one request in absolute form (sent on with `Connection: close`). */
  async #http(client: Socket, head: Buffer, rest: Buffer): Promise<void> {
    const request = requestHead(head);
    if (request.method === 'CONNECT') return this.#tunnel(client, request, rest);
    return this.#forward(client, request, rest);
  }

  /** A CONNECT: `host:port` (an IPv6 address bracketed) dialled, then joined to the client with what came after the head. */
  async #tunnel(client: Socket, request: RequestHead, rest: Buffer): Promise<void> {
    const m = /^\[([0-9a-fA-F:.]+)\]:(\d{1,5})$|^([^:[\]/]+):(\d{1,5})$/.exec(request.target);
    if (!m) return answer(client, request.version, '400 Bad Request', `hoop: CONNECT needs host:port, not ${request.target}`);
    const to = { host: normalHost(m[1] ?? m[3]!), port: Number(m[2] ?? m[4]) };
    const route = this.#route(to);
    if (route) {
      client.write(`${request.version} 200 Connection established\r\n\r\n`);
      return route(client, rest);
    }
    const up = await this.#dial(to);
    if ('why' in up) return answerFailure(client, request.version, up);
    client.write(`${request.version} 200 Connection established\r\n\r\n`);
    return this.#join(client, up, rest);
  }

  /** A request in absolute form for an http:// URL: sent on in origin form, its proxy headers dropped, the connection closed after. */
  async #forward(client: Socket, request: RequestHead, rest: Buffer): Promise<void> {
    let url: URL;
    try {
      url = new URL(request.target);
    } catch {
      return answer(client, request.version, '400 Bad Request', "hoop: this is the run's egress proxy: send CONNECT host:port, or a request for an http:// URL");
    }
    if (url.protocol !== 'http:') return answer(client, request.version, '400 Bad Request', `hoop: the proxy sends on http:// requests only (use CONNECT for ${url.protocol})`);
    const to = { host: normalHost(url.hostname), port: Number(url.port || 80) };
    const route = this.#route(to);
    if (route) return route(client, Buffer.concat([originFormHead(request, url), rest]));
    const up = await this.#dial(to);
    if ('why' in up) return answerFailure(client, request.version, up);
    this.#join(client, up, Buffer.concat([originFormHead(request, url), rest]));
  }

  /** The SOCKS5 side, from its greeting's second byte (the version was read). @see https://www.rfc-editor.org/rfc/rfc1928#section-4 */
  async #socks(client: Socket, read: ClientReader['read'], rest: ClientReader['rest']): Promise<void> {
    if (!(await socksGreeting(client, read))) return;
    const request = await socksRequest(read);
    if (typeof request === 'number') return void (socksReply(client, request), client.end());
    const to = { host: normalHost(request.host), port: request.port };
    const route = this.#route(to);
    if (route) {
      socksReply(client, 0);
      return route(client, rest());
    }
    const up = await this.#dial(to);
    if ('why' in up) return void (socksReply(client, up.refused ? 2 : 5), client.end());
    socksReply(client, 0);
    this.#join(client, up, rest());
  }
}

/** Dials `address` for `to` (named in errors as asked); resolves the connected socket, or why not (not the policy's no). */
function connectTo(to: Destination, address: string): Promise<Dialled> {
  return new Promise((resolve) => {
    const upstream = connect({ host: address, port: to.port, noDelay: true });
    upstream.setTimeout(DEADLINE_MS, () => upstream.destroy(new Error(`${to.host}:${to.port} did not answer within ${DEADLINE_MS / 1000} s`)));
    upstream.once('connect', () => {
      upstream.setTimeout(0);
      resolve(upstream);
    });
    upstream.once('error', (err) => resolve({ why: `${to.host}:${to.port}: ${err.message}`, refused: false }));
  });
}

/** The request line and header lines of an HTTP request head (read as latin1). */
function requestHead(head: Buffer): RequestHead {
  const [line = '', ...headers] = head.toString('latin1').split('\r\n');
  const [method = '', target = '', version = 'HTTP/1.1'] = line.split(' ');
  return { method, target, version, headers };
}

/** Ends `client` with a plain-text HTTP answer. */
function answer(client: Socket, version: string, status: string, body: string): void {
  void client.end(`${version} ${status}\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: ${Buffer.byteLength(body) + 1}\r\n\r\n${body}\n`);
}

/** Ends `client` with why its destination was not dialled: 403 for the policy's no, 502 for a destination that failed. */
function answerFailure(client: Socket, version: string, failed: { why: string; refused: boolean }): void {
  answer(client, version, failed.refused ? '403 Forbidden' : '502 Bad Gateway', `hoop: ${failed.why}`);
}

/** The head of `request` in origin form for `url`, its proxy and connection headers dropped and `Connection: close` added. */
function originFormHead(request: RequestHead, url: URL): Buffer {
  const kept = request.headers.filter((h) => h !== '' && !/^(proxy-connection|proxy-authorization|connection|keep-alive)\s*:/i.test(h));
  return Buffer.from(`${request.method} ${url.pathname}${url.search} ${request.version}\r\n${[...kept, 'Connection: close'].join('\r\n')}\r\n\r\n`, 'latin1');
}

/** Reads a SOCKS5 greeting's methods and answers it: true when "no authentication" was offered (and accepted), else the client is ended. */
async function socksGreeting(client: Socket, read: ClientReader['read']): Promise<boolean> {
  const [methods] = await read(1);
  const offered = methods ? await read(methods) : Buffer.alloc(0);
  if (!offered.includes(0)) {
    client.end(Buffer.from([5, 0xff]));
    return false;
  }
  client.write(Buffer.from([5, 0]));
  return true;
}

/**
 * Reads a SOCKS5 request: its destination (an IPv4 address, a name or an IPv6 address, as sent), or the reply code that
 * refuses it (8: an address type it does not know, 7: a command other than CONNECT).
 */
async function socksRequest(read: ClientReader['read']): Promise<Destination | number> {
  const [, command, , kind] = await read(4);
  let host: string;
  if (kind === 1) host = [...(await read(4))].join('.');
  else if (kind === 3) host = (await read((await read(1))[0]! || 1)).toString('latin1');
  else if (kind === 4) host = (await read(16)).toString('hex').replace(/(.{4})(?!$)/g, '$1:');
  else return 8;
  const port = (await read(2)).readUInt16BE(0);
  if (command !== 1) return 7;
  return { host, port };
}

/** Writes a SOCKS5 reply with `code` (0: succeeded) and an empty bound address. */
function socksReply(client: Socket, code: number): boolean {
  return client.write(Buffer.from([5, code, 0, 1, 0, 0, 0, 0, 0, 0]));
}

/** Reads from `client` (see {@link ClientReader}); a client that sends more than {@link MAX_HEAD} unread bytes is cut off. */
function clientReader(client: Socket): ClientReader {
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
}
