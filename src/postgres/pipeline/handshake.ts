/**
 * The startup phase of a PostgreSQL connection, read from any duplex stream (a local client
 * socket or a gateway tunnel): an SSLRequest is accepted with `S` and a TLS handshake when a
 * TLS context is given (the local listener's per-session certificate), declined with `N`
 * otherwise (the tunnel is the encryption); with a TLS context, a TLS ClientHello as the first
 * bytes is PostgreSQL 17's direct TLS (`sslnegotiation=direct`, ALPN `postgresql`), as the
 * gateway's own port takes it; a GSSENCRequest is declined; then a StartupMessage
 * or CancelRequest, then — for the local listener — the SASL messages of its authentication
 * exchange. Everything is read under one deadline, so half-open connections cannot pile up.
 *
 * @see https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-START-UP
 * @see https://www.postgresql.org/docs/current/libpq-connect.html#LIBPQ-CONNECT-SSLNEGOTIATION
 */
import { realClock } from '../../clock.js';
import type { Duplex } from 'node:stream';
import { TLSSocket, type SecureContext } from 'node:tls';
import { ErrorCode, HoopError } from '../../errors.js';
import { PgProtocolError } from '../wire/protocol-error.js';
import { EncryptionAnswer } from '../wire/codes.js';
import { MessageReader, parseSaslInitialResponse, type PgMessage } from '../wire/reader.js';
import { authenticationSASL, authenticationSASLContinue } from '../wire/messages.js';
import { Frontend } from '../wire/codes.js';
import type { ScramServer } from '../wire/scram.js';
import { readStartupPacket, type StartupPacket } from './startup.js';

/** The packets that end the encryption negotiation. */
export type FirstPacket = Extract<StartupPacket, { kind: 'startup' | 'cancel' }>;

/** The first byte of a TLS record carrying a handshake message (a ClientHello). @see https://www.rfc-editor.org/rfc/rfc8446#section-5.1 */
const TLS_HANDSHAKE = 0x16;
/** ALPN's name for PostgreSQL, which a direct TLS client asks for. */
const ALPN = ['postgresql'];
const DECLINE = Buffer.from([EncryptionAnswer.DECLINE]);
const ACCEPT = Buffer.from([EncryptionAnswer.ACCEPT]);

/** Reads the startup phase from `stream` until {@link release} hands it to the relay. */
export class HandshakeStream {
  #stream: Duplex;
  readonly #tls: SecureContext | undefined;
  readonly #deadline: number;
  readonly reader = new MessageReader({ side: 'frontend' });
  #pending: Buffer = Buffer.alloc(0);
  #startupDone = false;
  #encrypted = false;
  #failure: Error | undefined;
  #wake: (() => void) | undefined;
  readonly #onData = (chunk: Buffer): void => {
    if (this.#startupDone) this.reader.push(chunk);
    else this.#pending = this.#pending.length === 0 ? chunk : Buffer.concat([this.#pending, chunk]);
    this.#wake?.();
  };
  readonly #onEnd = (): void => this.#fail(new PgProtocolError('the client closed the connection during the startup phase', { unanswered: true }));
  readonly #onError = (err: Error): void => this.#fail(err);

  /** Starts reading `stream`; everything must be read within `timeoutMs`. With `tls`, an SSLRequest is accepted. */
  constructor(stream: Duplex, timeoutMs: number, tls?: SecureContext) {
    this.#stream = stream;
    this.#tls = tls;
    this.#deadline = realClock.now() + timeoutMs;
    this.#listen(stream);
  }

  /** The stream the connection now runs on: the socket, or the TLS socket over it once TLS was accepted. */
  get stream(): Duplex {
    return this.#stream;
  }

  #listen(stream: Duplex): void {
    stream.on('data', this.#onData);
    stream.on('end', this.#onEnd);
    stream.on('error', this.#onError);
  }

  #unlisten(stream: Duplex): void {
    stream.off('data', this.#onData);
    stream.off('end', this.#onEnd);
    stream.off('error', this.#onError);
  }

  /**
   * Continues on a TLS socket over the stream: after answering `S` to an SSLRequest, or at once
   * for a direct TLS client, whose ClientHello (`hello`, already read) is handed back to it.
   * @see https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-SSL
   */
  #startTls(context: SecureContext, hello?: Buffer): void {
    const raw = this.#stream;
    this.#unlisten(raw);
    if (hello) raw.pause().unshift(hello);
    else raw.write(ACCEPT);
    const secure = new TLSSocket(raw as ConstructorParameters<typeof TLSSocket>[0], { isServer: true, secureContext: context, ALPNProtocols: ALPN });
    this.#stream = secure;
    this.#listen(secure);
  }

  #fail(err: Error): void {
    this.#failure ??= err;
    this.#wake?.();
  }

  async #waitForData(): Promise<void> {
    if (this.#failure) throw this.#failure;
    const remaining = this.#deadline - realClock.now();
    if (remaining <= 0) throw new HoopError(ErrorCode.TIMEOUT, 'the client did not finish the startup phase in time');
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, remaining);
      this.#wake = () => {
        clearTimeout(timer);
        this.#wake = undefined;
        resolve();
      };
    });
    // Bytes that came with the end (a CancelRequest and its end in one read) are read first:
    // the caller parses again and comes back here, where a failure is thrown.
  }

  /**
   * Reads until a StartupMessage or CancelRequest, declining SSL and GSS encryption requests.
   * Bytes that follow an encryption request before its answer are a protocol violation (they
   * would have been sent before the TLS handshake: CVE-2021-23222).
   */
  async startup(): Promise<FirstPacket> {
    for (;;) {
      if (this.#tls && !this.#encrypted && this.#pending[0] === TLS_HANDSHAKE) {
        this.#encrypted = true;
        const hello = this.#pending;
        this.#pending = Buffer.alloc(0);
        this.#startTls(this.#tls, hello);
        continue;
      }
      const parsed = readStartupPacket(this.#pending);
      if (!parsed) {
        await this.#waitForData();
        continue;
      }
      this.#pending = this.#pending.subarray(parsed.size);
      const { packet } = parsed;
      if (packet.kind === 'ssl-request' || packet.kind === 'gssenc-request') {
        if (this.#pending.length > 0) {
          throw new PgProtocolError(`unexpected data after ${packet.kind === 'ssl-request' ? 'SSLRequest' : 'GSSENCRequest'} before its answer`);
        }
        if (packet.kind === 'ssl-request' && this.#tls && !this.#encrypted) {
          this.#encrypted = true;
          this.#startTls(this.#tls);
        } else if (packet.kind === 'ssl-request' && this.#encrypted) {
          throw new PgProtocolError('SSLRequest over an encrypted connection');
        } else this.#stream.write(DECLINE);
        continue;
      }
      this.#startupDone = true;
      if (this.#pending.length > 0) this.reader.push(this.#pending);
      this.#pending = Buffer.alloc(0);
      return packet;
    }
  }

  /** Reads the next typed message (after {@link startup}), e.g. a SASL response. */
  async message(): Promise<PgMessage> {
    for (;;) {
      const msg = this.reader.next();
      if (msg) return msg;
      await this.#waitForData();
    }
  }

  /** Stops reading; the stream is left paused and `reader` holds any bytes already received. */
  release(): MessageReader {
    this.#unlisten(this.#stream);
    this.#stream.pause();
    return this.reader;
  }
}

/**
 * A SCRAM exchange on a client past its StartupMessage: AuthenticationSASL with `scram`'s
 * mechanisms, the client's SASLInitialResponse and SASLResponse checked by `scram`. Resolves the
 * server-final-message, for the caller to send (AuthenticationSASLFinal) once it admits the client.
 *
 * @throws ScramAuthError (a wrong password), PgProtocolError
 * @see https://www.postgresql.org/docs/current/sasl-authentication.html#SASL-SCRAM-SHA-256
 */
export async function scramExchange(handshake: HandshakeStream, scram: ScramServer): Promise<Buffer> {
  const expect = async (what: string): Promise<Buffer> => {
    const m = await handshake.message();
    if (m.type !== Frontend.PASSWORD) throw new PgProtocolError(`expected a ${what}, got message type '${String.fromCharCode(m.type)}'`);
    return m.body;
  };
  handshake.stream.write(authenticationSASL(scram.mechanisms));
  const { mechanism, data } = parseSaslInitialResponse(await expect('SASLInitialResponse'));
  handshake.stream.write(authenticationSASLContinue(scram.start(mechanism, data)));
  return scram.handleClientFinal(await expect('SASLResponse'));
}
