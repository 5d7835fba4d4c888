/**
 * A hand-driven PostgreSQL frontend for tests that must send what no well-behaved client sends:
 * it speaks over any duplex stream (a TCP socket to `hoop connect`, or a tunnel channel straight to
 * the gateway) and collects the backend messages it gets back.
 */
import { connect, type Socket } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import type { Duplex } from 'node:stream';
import { query as queryMessage, saslInitialResponse, saslResponse, sslRequest, startupMessage } from '../../src/postgres/wire/messages.js';
import { MessageReader, parseAuthentication, parseErrorFields, type PgMessage } from '../../src/postgres/wire/reader.js';
import { ScramClient } from '../../src/postgres/wire/scram.js';
import { poll } from './wait.js';

/** A raw frontend over `stream`. */
export class RawFrontend {
  readonly stream: Duplex;
  readonly #reader = new MessageReader({ side: 'backend' });
  readonly #messages: PgMessage[] = [];
  #wake: (() => void) | undefined;
  ended = false;
  /** Every byte received, in a buffer that doubles as it fills (a concat per chunk made a 60 MiB answer cost seconds of copies). */
  #received = Buffer.alloc(0);
  #length = 0;

  constructor(stream: Duplex) {
    this.stream = stream;
    stream.on('data', (chunk: Buffer) => {
      if (this.#length + chunk.length > this.#received.length) {
        const grown = Buffer.allocUnsafe(Math.max(2 * this.#received.length, this.#length + chunk.length, 4096));
        this.#received.copy(grown, 0, 0, this.#length);
        this.#received = grown;
      }
      this.#length += chunk.copy(this.#received, this.#length);
      if (this.#length === 1 && chunk.length === 1) return;
      this.#reader.push(chunk);
      for (let m = this.#reader.next(); m; m = this.#reader.next()) this.#messages.push({ type: m.type, body: Buffer.from(m.body), raw: Buffer.from(m.raw) });
      this.#wake?.();
    });
    const end = (): void => {
      this.ended = true;
      this.#wake?.();
    };
    stream.on('end', end);
    stream.on('close', end);
    stream.on('error', end);
  }

  /** Every byte received so far. */
  get raw(): Buffer {
    return this.#received.subarray(0, this.#length);
  }

  /** Opens a TCP connection to 127.0.0.1:port. */
  static async tcp(port: number): Promise<RawFrontend> {
    const socket: Socket = connect({ host: '127.0.0.1', port });
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    return new RawFrontend(socket);
  }

  /**
   * A TLS connection to the gateway's own port, as a direct client makes it: an SSLRequest, then
   * TLS (or with `alpn`, TLS at once with ALPN `postgresql`, as PostgreSQL 17's direct TLS), the
   * gateway's certificate verified with `ca`.
   */
  static async direct(port: number, ca: Buffer, alpn = false): Promise<RawFrontend> {
    const secure = (socket?: Socket): Promise<TLSSocket> =>
      new Promise((resolve, reject) => {
        const t = tlsConnect({ ...(socket ? { socket } : { port }), host: '127.0.0.1', ca, ...(alpn ? { ALPNProtocols: ['postgresql'] } : {}) }, () => resolve(t));
        t.once('error', reject);
      });
    if (alpn) return new RawFrontend(await secure());
    const socket: Socket = connect({ host: '127.0.0.1', port });
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    socket.write(sslRequest());
    const answer = await new Promise<Buffer>((resolve, reject) => socket.once('data', resolve).once('error', reject));
    if (answer.toString('latin1') !== 'S') throw new Error(`the gateway answered the SSLRequest with ${JSON.stringify(answer.toString('latin1'))}`);
    return new RawFrontend(await secure(socket));
  }

  /** A frontend signed in to a `hoop connect` listener (its user and database), up to ReadyForQuery. */
  static async signedIn(info: { port: number; password: string; user: string; database: string }, params: Array<[string, string]> = []): Promise<RawFrontend> {
    const f = await RawFrontend.tcp(info.port);
    await f.startup(info.password, [['user', info.user], ['database', info.database], ...params]);
    return f;
  }

  write(bytes: Buffer): void {
    this.stream.write(bytes);
  }

  /** Sends one simple Query and returns every message up to its ReadyForQuery. */
  async simple(sql: string, timeoutMs = 90_000): Promise<PgMessage[]> {
    const from = this.raw.length;
    this.write(queryMessage(sql));
    return this.messagesSince(from, 1, timeoutMs);
  }

  /** Waits for a message of `type` (a character), or for the stream to end (then undefined). */
  async waitFor(type: string, timeoutMs = 60_000): Promise<PgMessage | undefined> {
    const code = type.charCodeAt(0);
    const take = (): PgMessage | undefined => {
      const i = this.#messages.findIndex((m) => m.type === code);
      return i >= 0 ? this.#messages.splice(0, i + 1).at(-1) : undefined;
    };
    const now = take();
    if (now || this.ended) return now;
    return new Promise((resolve, reject) => {
      const deadline = setTimeout(() => {
        this.#wake = undefined;
        reject(new Error(`no '${type}' message within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#wake = () => {
        const m = take();
        if (!m && !this.ended) return;
        clearTimeout(deadline);
        this.#wake = undefined;
        resolve(m);
      };
    });
  }

  /** Waits for an ErrorResponse and returns its fields. */
  async error(timeoutMs?: number): Promise<ReturnType<typeof parseErrorFields> | undefined> {
    const m = await this.waitFor('E', timeoutMs);
    return m ? parseErrorFields(m.body) : undefined;
  }

  /** Waits until the peer closes. */
  async closed(timeoutMs = 60_000): Promise<boolean> {
    return (await poll(() => this.ended || undefined, { timeout: timeoutMs })) ?? false;
  }

  /** Sends a StartupMessage and signs in with SCRAM-SHA-256 (if asked), up to ReadyForQuery. */
  async startup(
    password: string,
    params: Array<[string, string]> = [
      ['user', 'hoop'],
      ['database', 'app'],
    ],
  ): Promise<void> {
    this.write(startupMessage(params));
    const auth = await this.waitFor('R');
    if (!auth) throw new Error(`closed during startup: ${JSON.stringify(this.#messages.map((m) => String.fromCharCode(m.type)))}`);
    const first = parseAuthentication(auth.body);
    if (first.code === 10) {
      const scram = new ScramClient(password);
      this.write(saslInitialResponse('SCRAM-SHA-256', scram.clientFirstMessage()));
      const cont = parseAuthentication((await this.waitFor('R'))!.body);
      this.write(saslResponse(scram.handleServerFirst(cont.data!)));
      const fin = parseAuthentication((await this.waitFor('R'))!.body);
      scram.verifyServerFinal(fin.data!);
    }
    const ready = await this.waitFor('Z');
    if (!ready) throw new Error('closed before ReadyForQuery');
  }

  /** Every backend message received from byte `from` of {@link raw} on, once `readyForQuery` ReadyForQuery have arrived there. */
  async messagesSince(from: number, readyForQuery: number, timeoutMs = 60_000): Promise<PgMessage[]> {
    let all: PgMessage[] = [];
    const arrived = await poll(
      () => {
        const reader = new MessageReader({ side: 'backend' });
        reader.push(this.raw.subarray(from));
        all = [];
        for (let m = reader.next(); m; m = reader.next()) all.push(m);
        if (all.filter((m) => m.type === 0x5a).length >= readyForQuery) return all;
        return this.ended ? null : undefined;
      },
      { timeout: timeoutMs },
    );
    if (!arrived) throw new Error(`only ${all.map((m) => String.fromCharCode(m.type)).join('')} arrived`);
    return arrived;
  }

  destroy(): void {
    this.stream.destroy();
  }
}

/** The fields of the first ErrorResponse among `messages`, if any. */
export function errorIn(messages: readonly PgMessage[]): ReturnType<typeof parseErrorFields> | undefined {
  const e = messages.find((m) => m.type === 0x45);
  return e ? parseErrorFields(e.body) : undefined;
}

/** `other`'s answer to `select 1`; throws when it is an error. */
export async function selectOne(other: RawFrontend): Promise<void> {
  const error = errorIn(await other.simple('select 1'));
  if (error) throw new Error(`another session's select 1 failed: ${error.message}`);
}
