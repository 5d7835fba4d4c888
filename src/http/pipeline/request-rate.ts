/**
 * Requests one identity may make a minute on one HTTP connection, counted by a gateway's HTTP
 * engine across all its sessions (`http.requestsPerMinute`): a bucket per identity and connection
 * that holds a minute's requests and fills at that rate, so a burst of up to a minute's is taken
 * and the rest waits its turn.
 */
import { realClock } from '../../clock.js';

/** Buckets kept before the full ones (whose identities are idle) are dropped. */
const MAX_BUCKETS = 10_000;

/** See the module documentation. */
export class RequestRates {
  readonly #buckets = new Map<string, { tokens: number; at: number; perMinute: number }>();

  /** Takes one request of `key`'s (`perMinute` a minute): undefined when it may go, else the seconds until one may. */
  take(key: string, perMinute: number): number | undefined {
    const now = realClock.now();
    if (this.#buckets.size > MAX_BUCKETS) this.#prune(now);
    const b = this.#buckets.get(key) ?? { tokens: perMinute, at: now, perMinute };
    b.tokens = Math.min(perMinute, b.tokens + ((now - b.at) / 60_000) * perMinute);
    b.at = now;
    b.perMinute = perMinute;
    this.#buckets.set(key, b);
    if (b.tokens >= 1) {
      b.tokens--;
      return undefined;
    }
    return Math.ceil(((1 - b.tokens) * 60) / perMinute);
  }

  /** Drops the buckets that would be full by now (their identities made no request for a minute). */
  #prune(now: number): void {
    for (const [key, b] of this.#buckets) if (b.tokens + ((now - b.at) / 60_000) * b.perMinute >= b.perMinute) this.#buckets.delete(key);
  }
}
