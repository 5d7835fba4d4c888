/**
 * hoop's one small MySQL client: signs in (TLS when asked, `mysql_native_password` or
 * `caching_sha2_password`, switching plugin when the server asks), then runs text-protocol
 * queries and collects their results. The gateway signs in to upstream servers with it; tests
 * and the demo use it to reach a server.
 *
 * @see https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_connection_phase.html
 * @see https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_com_query.html
 */
import { ErrorCode, HoopError } from '../../errors.js';
import type { Duplex } from 'node:stream';
import type { Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import { CACHING_SHA2_PASSWORD, CachingSha2, NATIVE_PASSWORD, scramble } from './auth.js';
import { Cap, handshakeResponse, MariaCap, parseGreeting, sslRequest, type Greeting } from './handshake.js';
import { PacketSource } from './packet-source.js';
import { lenencBytes, packet } from './packets.js';
import { MySqlProtocolError } from './protocol-error.js';
import {
  Command,
  columnCount,
  eofStatus,
  ERR_HEADER,
  isEof,
  LOCAL_INFILE_HEADER,
  OK_HEADER,
  parseColumnDefinition,
  parseErr,
  parseOk,
  parseTextRow,
  parseBinaryRow,
  ColumnType,
  Status,
  type ColumnDefinition,
  type ErrPacket,
  type OkPacket,
} from './results.js';

/** The server refused: an ERR packet's error number, SQLSTATE and message. */
export class MySqlServerError extends HoopError {
  readonly errno: number;
  readonly sqlState: string;

  constructor(e: ErrPacket) {
    // ER_ACCESS_DENIED_ERROR, ER_DBACCESS_DENIED_ERROR: the credentials; anything else the server refused.
    super(e.code === 1045 || e.code === 1044 ? ErrorCode.UPSTREAM_AUTH_FAILED : ErrorCode.UPSTREAM_UNAVAILABLE, e.message);
    this.errno = e.code;
    this.sqlState = e.sqlState;
  }
}

/** How to sign in. */
export interface MySqlSignIn {
  user: string;
  password: string;
  database?: string;
  /** TLS to the server (verified as these options say); without, the connection stays plain. */
  tls?: ConnectionOptions;
  /** Connection attributes sent to the server (`program_name`, …). */
  attributes?: Record<string, string>;
  /** The capabilities to ask for (of those the server offers); without, this client's own. */
  capabilities?: number;
  /** The character set (collation id) of the connection; without, utf8mb4. */
  charset?: number;
  /** MariaDB's extended capabilities to ask for (of those the server offers; a MySQL server has none). */
  mariadbCapabilities?: number;
}

/** What hears a query's results as they arrive: a result set's columns, then its rows, then its end (or a statement's OK). */
export interface ResultHandler {
  columns(columns: ColumnDefinition[]): void | Promise<void>;
  row(values: Array<string | null>): void | Promise<void>;
  /** A result ended: a result set (`ok` undefined), or a statement without one. */
  end(ok: OkPacket | undefined): void | Promise<void>;
}

/** One statement's result: a result set, or what a statement without one did. */
export type MySqlResult = { columns: ColumnDefinition[]; rows: Array<Array<string | null>> } | { ok: OkPacket };

/** The capabilities this client asks for (and gets where the server offers them). */
const WANTED =
  Cap.LONG_PASSWORD | Cap.LONG_FLAG | Cap.PROTOCOL_41 | Cap.TRANSACTIONS | Cap.SECURE_CONNECTION | Cap.MULTI_RESULTS | Cap.PLUGIN_AUTH | Cap.PLUGIN_AUTH_LENENC_CLIENT_DATA | Cap.CONNECT_ATTRS;

const UTF8MB4_GENERAL_CI = 45;

/** A connection whose server has greeted it: what the server offers, before signing in. */
export class MySqlGreeted {
  readonly greeting: Greeting;
  readonly #socket: Duplex;
  readonly #packets: PacketSource;
  readonly #seq: number;

  private constructor(socket: Duplex, packets: PacketSource, greeting: Greeting, seq: number) {
    this.#socket = socket;
    this.#packets = packets;
    this.greeting = greeting;
    this.#seq = seq;
  }

  /** Reads the server's greeting on `socket` (connected, nothing read yet); an ERR in its place (too many connections) rejects. */
  static async read(socket: Duplex): Promise<MySqlGreeted> {
    const packets = new PacketSource(socket);
    try {
      const first = await packets.next();
      if (first.payload[0] === ERR_HEADER) throw new MySqlServerError(parseErr(first.payload));
      return new MySqlGreeted(socket, packets, parseGreeting(first.payload), first.next);
    } catch (err) {
      packets.detach();
      socket.destroy();
      throw err;
    }
  }

  /** Signs in; rejects with a {@link MySqlServerError} when refused, and the connection is closed. */
  async signIn(o: MySqlSignIn): Promise<MySqlClient> {
    const g = this.greeting;
    const socket = this.#socket;
    let packets = this.#packets;
    let stream: Duplex = socket;
    try {
      let caps = ((o.capabilities ?? WANTED) | Cap.PROTOCOL_41 | Cap.SECURE_CONNECTION | Cap.PLUGIN_AUTH | (o.database ? Cap.CONNECT_WITH_DB : 0)) & g.capabilities;
      let seq = this.#seq;
      // A client asks for MariaDB's capabilities by leaving out CLIENT_MYSQL (LONG_PASSWORD), as a MariaDB server does: in its SSLRequest too.
      const mariadb = (o.mariadbCapabilities ?? 0) & g.mariadbCapabilities;
      if (mariadb) caps &= ~Cap.LONG_PASSWORD;
      if (o.tls) {
        if (!(g.capabilities & Cap.SSL)) throw new MySqlProtocolError('the server does not offer TLS');
        caps |= Cap.SSL;
        socket.write(packet(seq++, sslRequest(caps, 1 << 24, UTF8MB4_GENERAL_CI, mariadb)));
        packets.detach();
        const secure = tlsConnect({ ...o.tls, socket });
        await new Promise<void>((resolve, reject) => {
          secure.once('secureConnect', resolve);
          secure.once('error', reject);
        });
        stream = secure;
        packets = new PacketSource(secure);
      }
      const plugin = g.authPlugin === CACHING_SHA2_PASSWORD ? CACHING_SHA2_PASSWORD : NATIVE_PASSWORD;
      const attributes = Object.entries({ _client_name: 'hoop', ...o.attributes });
      const response = handshakeResponse({
        capabilities: caps,
        maxPacketSize: 1 << 24,
        charset: o.charset ?? UTF8MB4_GENERAL_CI,
        mariadbCapabilities: mariadb,
        user: o.user,
        authResponse: scramble(plugin, o.password, g.nonce),
        ...(o.database && { database: o.database }),
        authPlugin: plugin,
        attributes,
      });
      stream.write(packet(seq, response));
      await authenticate(stream, packets, o.password, plugin, g.nonce, Boolean(o.tls));
      return new MySqlClient(stream, packets, g, caps & ~Cap.SSL, mariadb);
    } catch (err) {
      packets.detach();
      stream.destroy();
      throw err;
    }
  }
}

/** A signed-in connection to a MySQL or MariaDB server. */
export class MySqlClient {
  readonly greeting: Greeting;
  /** The capabilities both sides agreed on (TLS aside: they shape the command phase), and MariaDB's. */
  readonly capabilities: number;
  readonly mariadbCapabilities: number;
  #socket: Duplex;
  #packets: PacketSource;

  /** Made by {@link MySqlGreeted.signIn}. */
  constructor(socket: Duplex, packets: PacketSource, greeting: Greeting, capabilities: number, mariadbCapabilities = 0) {
    this.#socket = socket;
    this.#packets = packets;
    this.greeting = greeting;
    this.capabilities = capabilities;
    this.mariadbCapabilities = mariadbCapabilities;
  }

  /** Signs in on `socket` (connected, nothing read yet); rejects with a {@link MySqlServerError} when refused. */
  static async signIn(socket: Duplex, o: MySqlSignIn): Promise<MySqlClient> {
    return (await MySqlGreeted.read(socket)).signIn(o);
  }

  /** The connection no longer keeps the process alive (a gateway's own, idle between lookups). */
  unref(): void {
    (this.#socket as Partial<Pick<Socket, 'unref'>>).unref?.();
  }

  /** The connection, no longer read here, for a relay to take over (nothing may be in flight). */
  release(): Duplex {
    this.#packets.detach();
    return this.#socket;
  }

  /** Runs `sql` (one statement, or several when the server allows) and collects every result; the first error rejects. */
  async query(sql: string): Promise<MySqlResult[]> {
    const results: MySqlResult[] = [];
    let current: { columns: ColumnDefinition[]; rows: Array<Array<string | null>> } | undefined;
    const failed = await this.run(sql, {
      columns: (columns) => void (current = { columns, rows: [] }),
      row: (values) => void current?.rows.push(values),
      end: (ok) => {
        results.push(ok ? { ok } : current!);
        current = undefined;
      },
    });
    if (failed) throw new MySqlServerError(failed);
    return results;
  }

  /**
   * Runs `sql`, handing each result to `handler` as it arrives (reading waits for the handler: a
   * slow consumer holds the rows back in the stream's flow control); resolves the ERR that stopped
   * the statements, or undefined.
   */
  async run(sql: string, handler: ResultHandler): Promise<ErrPacket | undefined> {
    this.#socket.write(packet(0, Buffer.concat([Buffer.from([Command.QUERY]), Buffer.from(sql, 'utf8')])));
    return this.#results(handler, 'text');
  }

  /**
   * Runs one statement `sql` with `params` bound (each `?` in turn, sent as a string, NULL as
   * null: never spliced into the text), as a prepared statement closed after it ran; resolves as
   * {@link run} does.
   * @see https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_com_stmt_execute.html
   */
  async runBound(sql: string, params: ReadonlyArray<string | null>, handler: ResultHandler): Promise<ErrPacket | undefined> {
    this.#socket.write(packet(0, Buffer.concat([Buffer.from([Command.STMT_PREPARE]), Buffer.from(sql, 'utf8')])));
    const prepared = (await this.#packets.next()).payload;
    if (prepared[0] === ERR_HEADER) return parseErr(prepared);
    const id = prepared.readUInt32LE(1);
    const columns = prepared.readUInt16LE(5);
    const count = prepared.readUInt16LE(7);
    const eof = !(this.capabilities & Cap.DEPRECATE_EOF);
    for (const n of [count, columns]) {
      for (let i = 0; i < n; i++) await this.#packets.next();
      if (n > 0 && eof) expectEof((await this.#packets.next()).payload);
    }
    try {
      if (count !== params.length) return { code: 1210, sqlState: 'HY000', message: `the statement takes ${count} parameters, and ${params.length} are bound` }; // ER_WRONG_ARGUMENTS
      const head = Buffer.alloc(10);
      head[0] = Command.STMT_EXECUTE;
      head.writeUInt32LE(id, 1);
      head.writeUInt32LE(1, 6); // one iteration, no cursor
      const nulls = Buffer.alloc(Math.ceil(count / 8));
      params.forEach((v, i) => {
        if (v === null) nulls[i >> 3]! |= 1 << (i & 7);
      });
      // Each parameter a string (MYSQL_TYPE_VAR_STRING): the server converts it as it would a quoted literal.
      const types = Buffer.alloc(count * 2);
      for (let i = 0; i < count; i++) types[i * 2] = ColumnType.VAR_STRING;
      const values = params.flatMap((v) => (v === null ? [] : [lenencBytes(v)]));
      this.#socket.write(packet(0, Buffer.concat([head, ...(count > 0 ? [nulls, Buffer.from([1]), types, ...values] : [])])));
      return await this.#results(handler, 'binary');
    } finally {
      this.#socket.write(packet(0, Buffer.concat([Buffer.from([Command.STMT_CLOSE]), prepared.subarray(1, 5)])));
    }
  }

  /** Reads a command's results to the last, rows in the text or the binary protocol; the ERR that stopped them, or undefined. */
  async #results(handler: ResultHandler, rows: 'text' | 'binary'): Promise<ErrPacket | undefined> {
    for (;;) {
      const p = await this.#packets.next();
      const head = p.payload[0];
      if (head === ERR_HEADER) return parseErr(p.payload);
      if (head === LOCAL_INFILE_HEADER) {
        this.#socket.write(packet(p.next, Buffer.alloc(0)));
        continue;
      }
      let status: number;
      if (head === OK_HEADER) {
        const ok = parseOk(p.payload, this.capabilities);
        await handler.end(ok);
        status = ok.status;
      } else {
        const n = columnCount(p.payload);
        const columns: ColumnDefinition[] = [];
        const extended = (this.mariadbCapabilities & MariaCap.EXTENDED_METADATA) !== 0;
        for (let i = 0; i < n; i++) columns.push(parseColumnDefinition((await this.#packets.next()).payload, extended));
        if (!(this.capabilities & Cap.DEPRECATE_EOF)) expectEof((await this.#packets.next()).payload);
        await handler.columns(columns);
        for (;;) {
          const r = await this.#packets.next();
          if (r.payload[0] === ERR_HEADER) return parseErr(r.payload);
          if (isEof(r.payload)) {
            status = this.capabilities & Cap.DEPRECATE_EOF ? parseOk(r.payload, this.capabilities).status : eofStatus(r.payload);
            break;
          }
          const values = rows === 'text' ? parseTextRow(r.payload, n) : parseBinaryRow(r.payload, columns);
          await handler.row(values.map((v) => (v === null ? null : v.toString('utf8'))));
        }
        await handler.end(undefined);
      }
      if (!(status & Status.MORE_RESULTS_EXISTS)) return undefined;
    }
  }

  /** Sends COM_QUIT and closes. */
  close(): void {
    if (!this.#socket.destroyed && !this.#socket.writableEnded) this.#socket.end(packet(0, Buffer.from([Command.QUIT])));
    this.#packets.detach();
  }
}

function expectEof(payload: Buffer): void {
  if (!isEof(payload)) throw new MySqlProtocolError('the column definitions did not end with an EOF');
}

/** Answers the server's auth exchange until it says OK; rejects on ERR or an exchange hoop will not make. */
async function authenticate(stream: Duplex, packets: PacketSource, password: string, plugin: string, nonce: Buffer, overTls: boolean): Promise<void> {
  for (;;) {
    const p = await packets.next();
    const head = p.payload[0];
    if (head === OK_HEADER) return;
    if (head === ERR_HEADER) throw new MySqlServerError(parseErr(p.payload));
    if (head === 0xfe) {
      const end = p.payload.indexOf(0, 1);
      plugin = p.payload.toString('latin1', 1, end < 0 ? p.payload.length : end);
      if (plugin !== NATIVE_PASSWORD && plugin !== CACHING_SHA2_PASSWORD) throw new MySqlProtocolError(`the server asks for the auth plugin ${plugin}, which hoop does not speak`);
      let data = end < 0 ? Buffer.alloc(0) : p.payload.subarray(end + 1);
      if (data[data.length - 1] === 0) data = data.subarray(0, data.length - 1);
      nonce = data;
      stream.write(packet(p.next, scramble(plugin, password, nonce)));
      continue;
    }
    if (head === 0x01 && plugin === CACHING_SHA2_PASSWORD) {
      if (p.payload[1] === CachingSha2.FAST_AUTH_OK) continue;
      if (p.payload[1] === CachingSha2.FULL_AUTH_NEEDED) {
        if (!overTls) throw new MySqlProtocolError('caching_sha2_password asks for the whole password, which hoop sends only over TLS (set tls on the connection)');
        stream.write(packet(p.next, Buffer.concat([Buffer.from(password, 'utf8'), Buffer.from([0])])));
        continue;
      }
    }
    throw new MySqlProtocolError(`an unexpected packet in the sign-in (0x${(head ?? 0).toString(16)})`);
  }
}
