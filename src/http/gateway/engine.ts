/**
 * The gateway side of HTTP sessions: the tunnel carries a client's HTTP/1.1 connection; the gateway
 * reads its requests, judges each, forwards it to the connection's API with the credential only
 * it holds, and relays the answer masked (see ./session-relay.ts).
 *
 * @see https://www.rfc-editor.org/rfc/rfc9112
 */
import type { HttpConnection } from '../../config/connection.js';
import type { Engine, SessionOutcome, TunnelSession } from '../../session/engine.js';
import { RequestRates } from '../pipeline/request-rate.js';
import { type HttpEngineOptions, HttpSessionRelay } from './session-relay.js';

export type { HttpEngineOptions } from './session-relay.js';

/** The gateway side of HTTP sessions; see the module documentation. */
export class HttpEngine implements Engine<HttpConnection> {
  readonly recordProtocol = 'http';
  readonly #o: HttpEngineOptions;
  /** Each identity's requests on each connection, across its sessions (`http.requestsPerMinute`). */
  readonly #rates = new RequestRates();

  constructor(o: HttpEngineOptions) {
    this.#o = o;
  }

  serve(session: TunnelSession<HttpConnection>): Promise<SessionOutcome> {
    return new HttpSessionRelay(session, this.#o, this.#rates).start();
  }
}
