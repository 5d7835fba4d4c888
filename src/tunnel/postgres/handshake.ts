/**
 * The startup phase of a PostgreSQL connection, read from any duplex stream (a local client
 * socket or a gateway tunnel): SSLRequest/GSSENCRequest are declined with `N` (the tunnel is the
 * encryption), then a StartupMessage or CancelRequest, then — for the local listener — the SASL
 * messages of its authentication exchange. Everything is read under one deadline, so half-open
 * connections cannot pile up.
 *
 * @see https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-START-UP
 */
import type { Duplex } from 'node:stream';
import { ErrorCode, HoopError } from '../../errors.js';
import { PgProtocolError } from './protocol-error.js';
import { MessageReader, type PgMessage } from './reader.js';
import { readStartupPacket, type StartupPacket } from './startup.js';

/** The packets that end the encryption negotiation. */
export type FirstPacket = Extract<StartupPacket, { kind: 'startup' | 'cancel' }>;

const DECLINE = Buffer.from('N');

/** Reads the startup phase from `stream` until {@link release} hands it to the relay. */
export class HandshakeStream {
  readonly #stream: Duplex;
  readonly #deadline: number;
  readonly reader = new MessageReader({ side: 'frontend' });
  #pending: Buffer = Buffer.alloc(0);
  #startupDone = false;
  #failure: Error | undefined;
  #wake: (() => void) | undefined;
  readonly #onData = (chunk: Buffer): void => {
    if (this.#startupDone) this.reader.push(chunk);
    else this.#pending = this.#pending.length === 0 ? chunk : Buffer.concat([this.#pending, chunk]);
    this.#wake?.();
  };
  readonly #onEnd = (): void => this.#fail(new PgProtocolError('the client closed the connection during the startup phase', { unanswered: true }));
  readonly #onError = (err: Error): void => this.#fail(err);

  /** Starts reading `stream`; everything must be read within `timeoutMs`. */
  constructor(stream: Duplex, timeoutMs: number) {
    this.#stream = stream;
    this.#deadline = Date.now() + timeoutMs;
    stream.on('data', this.#onData);
    stream.on('end', this.#onEnd);
    stream.on('error', this.#onError);
  }

  #fail(err: Error): void {
    this.#failure ??= err;
    this.#wake?.();
  }

  async #waitForData(): Promise<void> {
    if (this.#failure) throw this.#failure;
    const remaining = this.#deadline - Date.now();
    if (remaining <= 0) throw new HoopError(ErrorCode.TIMEOUT, 'the client did not finish the startup phase in time');
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, remaining);
      this.#wake = () => {
        clearTimeout(timer);
        this.#wake = undefined;
        resolve();
      };
    });
    if (this.#failure) throw this.#failure;
  }

  /**
   * Reads until a StartupMessage or CancelRequest, declining SSL and GSS encryption requests.
   * Bytes that follow an encryption request before its answer are a protocol violation (they
   * would have been sent before the TLS handshake: CVE-2021-23222).
   */
  async startup(): Promise<FirstPacket> {
    for (;;) {
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
        this.#stream.write(DECLINE);
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
    this.#stream.off('data', this.#onData);
    this.#stream.off('end', this.#onEnd);
    this.#stream.off('error', this.#onError);
    this.#stream.pause();
    return this.reader;
  }
}
