/**
 * `hoop connect`'s local MySQL port. Clients are greeted with the server's greeting as the gateway
 * relays it (its version and capabilities, learned once), a nonce of the port's own and TLS
 * offered; a client proves the per-run password (`mysql_native_password`, or
 * `caching_sha2_password`'s scramble when the client answers with it) before a tunnel is opened for
 * it; then the port answers the gateway's greeting for it (the client's capabilities, database and
 * attributes, no password: the tunnel is authenticated) and relays the command phase byte for byte.
 *
 * @see https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_connection_phase.html
 */
import { randomBytes } from 'node:crypto';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { TLSSocket, type SecureContext } from 'node:tls';
import type { Duplex } from 'node:stream';
import { describeError, type HoopError } from '../../errors.js';
import type { ControlMessage } from '../../tunnel/frames.js';
import type { Logger } from '../../log.js';
import { type ClientRecordTerms, newSessionId, type OpenedTunnel } from '../../tunnel/transport.js';
import { CACHING_SHA2_PASSWORD, CachingSha2, NATIVE_PASSWORD, newNonce, scrambleMatches } from '../wire/auth.js';
import { type AgreedCapabilities, Cap, GREETED_ATTRIBUTE, greeting, handshakeResponse, isSslRequest, parseGreeting, parseHandshakeResponse, type Greeting } from '../wire/handshake.js';
import { PacketSource } from '../wire/packet-source.js';
import { nulString, packet } from '../wire/packets.js';
import { MySqlProtocolError } from '../wire/protocol-error.js';
import { ERR_HEADER, errPacket, OK_HEADER, parseErr } from '../wire/results.js';

/** What the listener tells its owner. */
export type MysqlListenerEvent =
  | { kind: 'client-connected'; session: string; user: string; database: string }
  | { kind: 'tunnel-failed'; session: string; error: HoopError }
  | { kind: 'auth-failed'; session: string }
  | { kind: 'protocol-error'; session: string; message: string }
  /** What the gateway says of a statement held for review (the MySQL protocol has no message a client shows meanwhile). */
  | { kind: 'review'; session: string; review: ControlMessage }
  /** The gateway ended the session, saying why. */
  | { kind: 'client-closed'; session: string; message: string };

/** The CLI's record of one session: its tap reads the bytes both ways; `close` ends it once. */
export interface MysqlClientRecord {
  tap: { clientBytes(chunk: Buffer): void; serverBytes(chunk: Buffer): void };
  close(end: { reason: string }): void;
}

/** Opens the CLI's record of session `id`, keeping `rows` rows per result, for the `capabilities` both hops agreed. */
export type MysqlRecordHook = (id: string, terms: ClientRecordTerms, capabilities: AgreedCapabilities) => Promise<MysqlClientRecord | undefined>;

export interface LocalMysqlListenerOptions {
  /** The per-run password local clients prove. */
  password: string;
  /** The port's TLS, offered to clients (the per-run certificate). */
  tls: SecureContext;
  /** A TCP port on 127.0.0.1 (default: any free one). */
  port?: number;
  /** Deadline for a client to sign in (default 30 s). */
  handshakeTimeoutMs?: number;
  log: Logger;
  onEvent?: (e: MysqlListenerEvent) => void;
  /** Opens the session's tunnel to the gateway. */
  openTunnel: (sessionId: string) => Promise<OpenedTunnel>;
  /** Records each session the gateway takes the CLI's record of. */
  record?: MysqlRecordHook;
}

/** The largest handshake packet a local client may send. */
const HANDSHAKE_MAX = 1 << 20;

/** ER_ACCESS_DENIED_ERROR. */
const ACCESS_DENIED = { code: 1045, sqlState: '28000' };

/** See the module documentation. */
export class LocalMysqlListener {
  readonly #o: LocalMysqlListenerOptions;
  readonly #sockets = new Set<Socket>();
  #server: Server | undefined;
  #greeting: Promise<Greeting> | undefined;
  /** The connection id the next client is greeted with: one of its own each (what its driver's cancel names), from a random start (another port of the same person's greets its own). */
  #nextId = randomBytes(4).readUInt32LE() >>> 1;

  constructor(o: LocalMysqlListenerOptions) {
    this.#o = o;
  }

  /** Listens on 127.0.0.1; resolves the address. */
  async listen(): Promise<{ host: string; port: number }> {
    const server = createServer((socket) => this.accept(socket));
    this.#server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.#o.port ?? 0, '127.0.0.1', () => resolve());
    });
    const address = server.address() as AddressInfo;
    return { host: '127.0.0.1', port: address.port };
  }

  /** Serves a client that reached the port (or was handed to it). */
  accept(socket: Socket): void {
    this.#sockets.add(socket);
    socket.setNoDelay(true);
    socket.once('close', () => this.#sockets.delete(socket));
    socket.on('error', () => undefined);
    const session = newSessionId();
    this.#serve(socket, session).catch((err: unknown) => {
      this.#o.onEvent?.({ kind: 'protocol-error', session, message: describeError(err) });
      socket.destroy();
    });
  }

  /** Stops listening and ends every client. */
  async close(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    const server = this.#server;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /**
   * The server's greeting as the gateway relays it (version, capabilities), which local clients are
   * greeted with: learned once, from a tunnel opened for it alone, so that every client proves the
   * password before a tunnel is opened for it.
   */
  #serverGreeting(): Promise<Greeting> {
    this.#greeting ??= (async () => {
      const { channel } = await this.#o.openTunnel(newSessionId());
      try {
        const first = await new PacketSource(channel).next();
        if (first.payload[0] === ERR_HEADER) throw new MySqlProtocolError(`the gateway could not open the connection: ${parseErr(first.payload).message}`);
        return parseGreeting(first.payload);
      } finally {
        channel.destroy();
      }
    })();
    this.#greeting.catch(() => (this.#greeting = undefined));
    return this.#greeting;
  }

  async #serve(raw: Socket, session: string): Promise<void> {
    const deadline = setTimeout(() => raw.destroy(), this.#o.handshakeTimeoutMs ?? 30_000);
    deadline.unref();
    // Once the client asked for TLS, what it is told goes over TLS.
    let client: Socket | TLSSocket = raw;
    const refuse = (seq: number, err: Error): void => {
      const e = err as HoopError;
      this.#o.onEvent?.({ kind: 'tunnel-failed', session, error: e });
      client.end(packet(seq, errPacket({ code: 1105, sqlState: 'HY000', message: `hoop: ${e.message}${e.hint ? ` (${e.hint})` : ''}` })));
    };
    const g = await this.#serverGreeting().catch((err: Error) => err);
    if (g instanceof Error) return refuse(0, g);
    // The client signs in here first: no tunnel is opened for a client without the password.
    this.#nextId = (this.#nextId + 1) >>> 0;
    const local: Greeting = { ...g, connectionId: this.#nextId, nonce: newNonce(), capabilities: (g.capabilities | Cap.SSL) >>> 0 };
    raw.write(packet(0, greeting(local)));
    let fromClient = new PacketSource(raw, HANDSHAKE_MAX);
    let p = await fromClient.next();
    if (isSslRequest(p.payload)) {
      fromClient.detach();
      const secure = new TLSSocket(raw, { isServer: true, secureContext: this.#o.tls });
      secure.on('error', () => raw.destroy());
      client = secure;
      fromClient = new PacketSource(secure, HANDSHAKE_MAX);
      p = await fromClient.next();
    }
    const hello = parseHandshakeResponse(p.payload);
    const seq = await this.#authenticate(client, fromClient, hello.authPlugin, hello.authResponse, local.nonce, p.next);
    if (seq === undefined) {
      this.#o.onEvent?.({ kind: 'auth-failed', session });
      client.end(packet(p.next, errPacket({ ...ACCESS_DENIED, message: `Access denied for user '${hello.user}' (hoop connect: the per-run password)` })));
      return;
    }
    let tunnel: OpenedTunnel;
    try {
      tunnel = await this.#o.openTunnel(session);
    } catch (err) {
      return refuse(seq, err as Error);
    }
    const { channel } = tunnel;
    channel.on('control', (msg: ControlMessage) => {
      if (msg.type === 'review') this.#o.onEvent?.({ kind: 'review', session: tunnel.sessionId, review: msg });
      else if (msg.type === 'close' && typeof msg.message === 'string') this.#o.onEvent?.({ kind: 'client-closed', session: tunnel.sessionId, message: msg.message });
    });
    client.once('close', () => channel.destroy());
    channel.once('close', () => client.destroy());
    const fromGateway = new PacketSource(channel);
    const first = await fromGateway.next();
    if (first.payload[0] === ERR_HEADER) {
      client.end(packet(seq, first.payload));
      return;
    }
    const now = parseGreeting(first.payload);
    const agreed = (hello.capabilities & ~Cap.SSL & g.capabilities) >>> 0;
    if ((agreed & ~now.capabilities) !== 0) {
      // The server changed since the port learned its greeting: the client agreed to what it no longer offers.
      this.#greeting = undefined;
      channel.destroy();
      return refuse(seq, new MySqlProtocolError('the server changed its capabilities since this port started; connect again'));
    }
    // The gateway is told which id the client was greeted with here (a sign-in attribute: only signing in reads CONNECT_ATTRS).
    const attributes: Array<[string, string]> = [...hello.attributes.filter(([k]) => k !== GREETED_ATTRIBUTE), [GREETED_ATTRIBUTE, String(local.connectionId)]];
    channel.write(packet(first.next, handshakeResponse({ ...hello, attributes, capabilities: (agreed | Cap.CONNECT_ATTRS) >>> 0, authResponse: Buffer.alloc(0), authPlugin: NATIVE_PASSWORD })));
    const answer = await fromGateway.next();
    client.write(packet(seq, answer.payload));
    clearTimeout(deadline);
    if (answer.payload[0] !== OK_HEADER) {
      client.end();
      return;
    }
    this.#o.onEvent?.({ kind: 'client-connected', session: tunnel.sessionId, user: hello.user, database: hello.database ?? '' });
    // MariaDB's capabilities as the gateway agrees them: asked for by a client that leaves out CLIENT_MYSQL, of those it offered.
    const mariadb = hello.capabilities & Cap.LONG_PASSWORD ? 0 : hello.mariadbCapabilities & now.mariadbCapabilities;
    const record = tunnel.clientRecord && this.#o.record ? await this.#o.record(tunnel.sessionId, tunnel.clientRecord, { lower: agreed, mariadb }) : undefined;
    if (record) {
      client.on('data', (chunk: Buffer) => record.tap.clientBytes(chunk));
      channel.on('data', (chunk: Buffer) => record.tap.serverBytes(chunk));
      client.once('close', () => record.close({ reason: 'client-terminated' }));
      channel.once('close', () => record.close({ reason: 'tunnel-closed' }));
    }
    fromClient.detach();
    fromGateway.detach();
    client.pipe(channel);
    channel.pipe(client);
  }

  /**
   * Checks the client's proof of the per-run password, switching it to `mysql_native_password`
   * when it answered with another plugin; resolves the sequence id of the answer due, or
   * undefined when the proof is wrong.
   */
  async #authenticate(client: Duplex, reader: PacketSource, plugin: string | undefined, response: Buffer, n: Buffer, seq: number): Promise<number | undefined> {
    const { password } = this.#o;
    if (plugin === CACHING_SHA2_PASSWORD) {
      if (!scrambleMatches(CACHING_SHA2_PASSWORD, password, n, response)) return undefined;
      client.write(packet(seq, Buffer.from([0x01, CachingSha2.FAST_AUTH_OK])));
      return seq + 1;
    }
    if (plugin === undefined || plugin === NATIVE_PASSWORD) return scrambleMatches(NATIVE_PASSWORD, password, n, response) ? seq : undefined;
    client.write(packet(seq, Buffer.concat([Buffer.from([0xfe]), nulString(NATIVE_PASSWORD), n, Buffer.from([0])])));
    const switched = await reader.next();
    return scrambleMatches(NATIVE_PASSWORD, password, n, switched.payload) ? switched.next : undefined;
  }
}
