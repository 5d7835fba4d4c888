/**
 * Whether work is done off the event loop: the loop's turns counted while it is pending, and how
 * promptly another session is answered meanwhile.
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

/** Asks `ask` again and again until `busy` settles (or `limitMs` passes): how many times it answered, and its slowest answer in ms. */
export async function answersWhile(ask: () => Promise<unknown>, busy: Promise<unknown>, limitMs = 120_000): Promise<{ answers: number; worst: number }> {
  let done = false;
  const settled = (): void => void (done = true);
  busy.then(settled, settled);
  const started = Date.now();
  let answers = 0;
  let worst = 0;
  while (!done && Date.now() - started < limitMs) {
    const t = Date.now();
    await ask();
    worst = Math.max(worst, Date.now() - t);
    answers++;
  }
  return { answers, worst };
}
