/**
 * A server's listener made safe to register: whatever it throws ends only what it was called for
 * (that request or socket, as `drop` says) and is logged, never the gateway process and every
 * session on it.
 */
import { describeError } from '../../errors.js';
import type { Logger } from '../../log.js';

/** `listener` for a server's `event`, a throw from it answered by `drop` with the same arguments. */
export function survive<A extends unknown[]>(log: Logger, event: string, listener: (...a: A) => void, drop: (...a: A) => void): (...a: A) => void {
  return (...a: A) => {
    try {
      listener(...a);
    } catch (err) {
      log.error('listener.failed', { on: event, error: describeError(err) });
      try {
        drop(...a);
      } catch {
        // What it was called for is gone already.
      }
    }
  };
}
