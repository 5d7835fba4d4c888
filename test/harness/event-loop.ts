/**
 * Whether work is done off the event loop: the loop's turns counted while it is pending.
 */

/** `work`'s value, and how many turns of the event loop ran before it settled (none: it was done on the loop, synchronously). */
export async function ticksWhile<T>(work: Promise<T>): Promise<{ value: T; ticks: number }> {
  let done = false;
  let ticks = 0;
  const tick = (): void => {
    if (done) return;
    ticks++;
    setImmediate(tick);
  };
  setImmediate(tick);
  try {
    return { value: await work, ticks };
  } finally {
    done = true;
  }
}
