/**
 * How a session's relay ends, the same in every lane: the first reason given is the one kept, the
 * gateway's end of each connection is ended once and cut {@link END_GRACE_MS} later if its peer
 * has not closed it (a client that never closes must not keep the session, or the gateway's
 * shutdown, waiting), and the engine is told once how it ended, with the bytes counted each way.
 */
import type { Duplex } from 'node:stream';
import type { CloseReason, SessionOutcome, TunnelSession } from './engine.js';

/** How long a peer has to close its side once the gateway ended the session; then the connection is cut. */
export const END_GRACE_MS = 5_000;

/** Bytes a session's client sent, and was sent. */
export interface RelayedBytes {
  fromClient: number;
  toClient: number;
}

/** See the module documentation: one per session, owned by its relay. */
export class RelayEnd {
  /** What the engine is told, once the relay has finished. */
  readonly outcome: Promise<SessionOutcome>;
  /** Bytes counted as they cross; {@link finish} may be given others. */
  readonly bytes: RelayedBytes = { fromClient: 0, toClient: 0 };
  readonly #signal: AbortSignal;
  readonly #onAbort: () => void;
  #resolve: (outcome: SessionOutcome) => void = () => undefined;
  #reason: CloseReason | undefined;
  #detail: string | undefined;
  #ending = false;
  #finished = false;

  /** `onAbort` runs when the gateway ends the session (its token, its run, a shutdown), until the relay has finished. */
  constructor(session: Pick<TunnelSession, 'signal'>, onAbort: () => void) {
    this.outcome = new Promise((resolve) => (this.#resolve = resolve));
    this.#signal = session.signal;
    this.#onAbort = onAbort;
    this.#signal.addEventListener('abort', onAbort, { once: true });
  }

  /** Whether the relay began to end. */
  get ending(): boolean {
    return this.#ending;
  }

  /** Whether the engine has been told. */
  get finished(): boolean {
    return this.#finished;
  }

  /** The reason kept, once one was given. */
  get reason(): CloseReason | undefined {
    return this.#reason;
  }

  /** The detail kept with it. */
  get detail(): string | undefined {
    return this.#detail;
  }

  /** Keeps `why` (`what`: a short, secret-free detail) as how the session ends, unless a reason came first. */
  note(why: CloseReason, what?: string): void {
    this.#reason ??= why;
    this.#detail ??= what;
  }

  /** The relay ends for `why`, unless a reason came first ({@link note}): true the first time only. */
  begin(why: CloseReason, what?: string): boolean {
    this.note(why, what);
    if (this.#ending) return false;
    this.#ending = true;
    return true;
  }

  /** Ends the gateway's side of `stream` (`last` written before), and cuts it {@link END_GRACE_MS} later unless it closed. */
  linger(stream: Duplex, last?: Buffer): void {
    lingerEnd(stream, last);
  }

  /** Tells the engine how the session ended, once: the reason kept (`client-disconnected` when none was given), and `bytes` (by default those counted). */
  finish(bytes: RelayedBytes = this.bytes): void {
    if (this.#finished) return;
    this.#finished = true;
    this.#ending = true;
    this.#signal.removeEventListener('abort', this.#onAbort);
    this.#resolve({
      reason: this.#reason ?? 'client-disconnected',
      bytesFromClient: bytes.fromClient,
      bytesToClient: bytes.toClient,
      ...(this.#detail !== undefined ? { detail: this.#detail } : {}),
    });
  }
}

/**
 * Ends the gateway's side of `stream` (`last` written before) and cuts it {@link END_GRACE_MS}
 * later unless it closed; `drop`: what the peer sends meanwhile is read and dropped, so that its
 * close is seen (a client refused before its session, whose stream was paused).
 */
export function lingerEnd(stream: Duplex, last?: Buffer | string, drop = false): void {
  if (stream.destroyed) return;
  if (!stream.writableEnded) {
    if (last && stream.writable) stream.end(last);
    else stream.end();
  }
  if (drop) stream.resume();
  const cut = setTimeout(() => stream.destroy(), END_GRACE_MS).unref();
  stream.once('close', () => clearTimeout(cut));
}
