/**
 * One HTTP session at the gateway (one client connection, its requests one after another), in
 * named steps: the client's bytes read from the tunnel ({@link HttpSessionRelay.start}), the
 * connection's credential resolved and its upstream made ready ({@link #open}), the requests relayed
 * through the lane's relay (../pipeline/relay.ts: each recorded, judged, forwarded, its answer
 * masked), and the session ended once ({@link #end}).
 */
import { realClock } from '../../clock.js';
import type { HttpConnection } from '../../config/connection.js';
import type { SecretRef } from '../../config/secrets.js';
import { describeError } from '../../errors.js';
import { type CloseReason, type SessionOutcome, sessionEndOf, type TunnelSession } from '../../session/engine.js';
import { RelayEnd } from '../../session/relay-end.js';
import { HttpRelay } from '../pipeline/relay.js';
import type { RequestRates } from '../pipeline/request-rate.js';
import { HttpUpstream, resolveCredential } from './upstream.js';

/** Options of the HTTP engine. */
export interface HttpEngineOptions {
  resolveSecret: (ref: SecretRef) => Promise<string>;
}

/** See the module documentation. */
export class HttpSessionRelay {
  readonly #session: TunnelSession<HttpConnection>;
  readonly #o: HttpEngineOptions;
  #relay: HttpRelay | undefined;
  /** What came before the relay was made (the credential resolving), and whether the client's side ended meanwhile. */
  #early: Buffer[] | undefined = [];
  #endedEarly = false;
  readonly #relayEnd: RelayEnd;

  /** The engine's count of each identity's requests. */
  readonly #rates: RequestRates;

  constructor(session: TunnelSession<HttpConnection>, o: HttpEngineOptions, rates: RequestRates) {
    this.#session = session;
    this.#o = o;
    this.#rates = rates;
    this.#relayEnd = new RelayEnd(session, () => this.#aborted());
  }

  /** Serves the session until it ends; never rejects. */
  start(): Promise<SessionOutcome> {
    const { channel } = this.#session;
    channel.on('data', (b: Buffer) => {
      this.#relayEnd.bytes.fromClient += b.length;
      if (this.#relay) this.#relay.fromClient(b);
      else this.#early?.push(b);
    });
    // A half-close: what the client sent whole is answered first (where its side still takes bytes).
    channel.on('end', () => {
      if (!channel.allowHalfOpen || channel.writableEnded || channel.destroyed) this.#end('client-disconnected');
      else if (this.#relay) this.#relay.clientEnded();
      else this.#endedEarly = true;
    });
    channel.on('error', (err: Error) => this.#end('client-disconnected', describeError(err)));
    channel.on('close', () => {
      this.#end('client-disconnected');
      this.#finish();
    });
    void this.#open();
    return this.#relayEnd.outcome;
  }

  /** Resolves the credential and makes the relay; what the client sent meanwhile is read then. */
  async #open(): Promise<void> {
    const { connection, log } = this.#session;
    const owner = { end: (why: CloseReason, what?: string) => this.#end(why, what), ending: () => this.#relayEnd.ending };
    try {
      const credential = await resolveCredential(connection, this.#o.resolveSecret);
      if (this.#relayEnd.ending) return;
      const relay = new HttpRelay(this.#session, owner, credential, this.#rates);
      this.#relay = relay;
      const early = this.#early ?? [];
      this.#early = undefined;
      for (const b of early) relay.fromClient(b);
      relay.opened(new HttpUpstream(connection, credential));
      if (this.#endedEarly) relay.clientEnded();
    } catch (err) {
      const why = describeError(err);
      log.warn('http.upstream-failed', { session: this.#session.id, connection: connection.name, error: why });
      this.#session.recording?.stream.event({ t: 'http-upstream-failed', at: realClock.now(), message: why });
      this.#end('upstream-unavailable', why);
    }
  }

  /** The gateway ends the session (its token, its run, a shutdown): a request waiting is answered why, then it ends. */
  #aborted(): void {
    const e = sessionEndOf(this.#session.signal);
    const said = `${e.message}${e.hint ? ` (${e.hint})` : ''}`;
    this.#session.recording?.stream.event({ t: 'http-end', at: realClock.now(), reason: e.reason, message: e.message });
    this.#relay?.abort(said);
    this.#session.channel.sendControl({ type: 'close', reason: e.reason, message: e.message, ...(e.hint ? { hint: e.hint } : {}) });
    this.#end(e.reason, e.message);
  }

  /** Ends the tunnel, keeping the first reason given. */
  #end(why: CloseReason, what?: string): void {
    if (!this.#relayEnd.begin(why, what)) return;
    this.#relay?.abort(what ?? why);
    const { channel } = this.#session;
    if (channel.destroyed) return this.#finish();
    this.#relayEnd.linger(channel);
  }

  /** Tells the engine how the session ended (once). */
  #finish(): void {
    this.#relayEnd.finish({ fromClient: this.#relayEnd.bytes.fromClient, toClient: this.#session.channel.bytesSent });
  }
}
