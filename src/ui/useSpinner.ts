/**
 * A React hook: the frame of a text spinner, advancing while `active`.
 *
 * @see https://react.dev/reference/react/useEffect
 */
import { useEffect, useState } from './ink-vendor.js';

/** The braille dots spinner frames. @see https://github.com/sindresorhus/cli-spinners */
export const SPINNER_FRAMES = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'] as const;

/**
 * The current spinner frame, advancing every 80 ms while `active`.
 * @see https://react.dev/reference/react/useEffect#connecting-to-an-external-system
 */
export function useSpinner(active = true): string {
  const [index, setIndex] = useState(0);
  useEffect(() => {
    if (!active) return undefined;
    const timer = setInterval(() => setIndex((i) => (i + 1) % SPINNER_FRAMES.length), 80);
    return () => clearInterval(timer);
  }, [active]);
  return SPINNER_FRAMES[index]!;
}
