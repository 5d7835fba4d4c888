/**
 * Refused credentials on record: every bearer token or run credential the gateway refuses (at the
 * API, the tunnel endpoint, a run's control endpoint) becomes an `auth.refused` audit event with
 * the reason, what the token claimed (never the token), whether its signature held, and the source
 * address. A source that keeps failing cannot flood the stream: past {@link PER_SOURCE} refusals
 * a minute its refusals are counted, and one `auth.refused.suppressed` event says how many when its
 * minute is over.
 *
 * @see https://www.rfc-editor.org/rfc/rfc6750#section-3.1 (why a bearer token is refused)
 * @see https://cheatsheetseries.owasp.org/cheatsheets/Logging_Cheat_Sheet.html (authentication failures are events to log)
 */
import { realClock } from '../../clock.js';
import { sourceOf } from '../front/peer-address.js';
import type { Logger } from '../../log.js';
import type { GatewayEvents } from '../audit/events.js';
import { TokenRejectedError } from './verify-token.js';

/** Refusals of one source written in full per minute; the rest are counted. */
export const PER_SOURCE = 20;
const WINDOW_MS = 60_000;
/** Sources tracked at once; beyond, new sources share one count (an address-spraying flood). */
const MAX_SOURCES = 10_000;
const OTHER = '(other sources)';

/** Where a credential was refused. */
export type RefusedAt = 'api' | 'tunnel' | 'run-control';

interface Window {
  since: number;
  count: number;
}

export class AuthRefusals {
  readonly #windows = new Map<string, Window>();
  readonly #timer: NodeJS.Timeout;

  constructor(
    private readonly audit: GatewayEvents,
    private readonly log: Logger,
    private readonly now: () => number = realClock.now,
  ) {
    this.#timer = setInterval(() => this.#flush(false), WINDOW_MS / 4).unref();
  }

  /** Puts a refusal of a credential from `remote` (an address, no port) on record; any other failure is its caller's to report. */
  report(err: unknown, remote: string, at: RefusedAt, path?: string): void {
    if (!(err instanceof TokenRejectedError)) return;
    const source = sourceOf(remote);
    const key = this.#windows.has(source) || this.#windows.size < MAX_SOURCES ? source : OTHER;
    const now = this.now();
    let w = this.#windows.get(key);
    if (w && now - w.since >= WINDOW_MS) {
      this.#summarise(key, w, now);
      w = undefined;
    }
    if (!w) this.#windows.set(key, (w = { since: now, count: 0 }));
    w.count++;
    if (w.count > PER_SOURCE) return;
    this.audit.emit('auth.refused', {
      reason: err.reason,
      message: err.message,
      at,
      ...(path !== undefined ? { path } : {}),
      remote,
      ...(err.token?.issuer !== undefined ? { tokenIssuer: err.token.issuer } : {}),
      ...(err.token?.subject !== undefined ? { tokenSubject: err.token.subject } : {}),
      signed: err.token?.signed ?? false,
    });
  }

  /** Says what was counted of windows that are over (all of them when `all`), and forgets them. */
  #flush(all: boolean): void {
    const now = this.now();
    for (const [key, w] of this.#windows) if (all || now - w.since >= WINDOW_MS) this.#summarise(key, w, now);
  }

  #summarise(key: string, w: Window, now: number): void {
    this.#windows.delete(key);
    if (w.count <= PER_SOURCE) return;
    const suppressed = w.count - PER_SOURCE;
    this.audit.emit('auth.refused.suppressed', { remote: key, count: suppressed, since: new Date(w.since).toISOString(), until: new Date(now).toISOString() });
    this.log.warn('auth.refused.suppressed', { remote: key, count: suppressed });
  }

  /** Says what is still counted, and stops. */
  close(): void {
    clearInterval(this.#timer);
    this.#flush(true);
  }
}
