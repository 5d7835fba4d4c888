/**
 * A React hook: the current time, refreshed every `intervalMs` while `active`.
 *
 * @see https://react.dev/reference/react/useEffect
 */
import { realClock } from '../clock.js';
import { useEffect, useState } from './ink-vendor.js';

/**
 * The current time in milliseconds, re-rendering every `intervalMs` while `active`.
 * @see https://react.dev/reference/react/useEffect#connecting-to-an-external-system
 */
export function useNow(intervalMs: number, active = true, clock: () => number = realClock.now): number {
  const [now, setNow] = useState(clock);
  useEffect(() => {
    if (!active) return undefined;
    const timer = setInterval(() => setNow(clock()), intervalMs);
    return () => clearInterval(timer);
  }, [intervalMs, active, clock]);
  return now;
}
