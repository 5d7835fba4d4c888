/**
 * `hoop review watch`: the reviews that wait for the caller. On a terminal, a live inbox to
 * approve or deny them from (../ui/ReviewInbox.tsx); elsewhere, each review that starts waiting
 * printed once as it comes (as `hoop review show` prints it, or one JSON object per line), polled
 * every second until interrupted.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { decideReview, listReviews, type ReviewInfo } from '../api-client/reviews.js';
import type { CliIo } from '../io.js';
import { reviewText } from '../ui/review-lines.js';
import { type GatewayFlags, withGateway } from './client-config.js';

/** Watches the pending reviews (see the module documentation) until `io.signal`. */
export function watchPendingReviews(io: CliIo, opts: GatewayFlags & { json?: boolean }): Promise<void> {
  return withGateway(io, opts, async (endpoint, token) => {
    const load = async (): Promise<ReviewInfo[]> => listReviews(endpoint, await token(), 'pending');
    const decide = async (id: string, decision: 'approve' | 'deny', reason?: string): Promise<ReviewInfo> => decideReview(endpoint, await token(), id, decision, reason);
    const tty = (io.stdout as { isTTY?: boolean }).isTTY === true && (io.stdin as { isTTY?: boolean } | undefined)?.isTTY === true;
    if (tty && !opts.json) {
      // The inbox (React and Ink) is loaded only where it is drawn: every other review command starts without it.
      const { watchReviews } = await import('../ui/ReviewInbox.js');
      await watchReviews({ load, decide }, { stdout: io.stdout as NodeJS.WriteStream, stdin: io.stdin as NodeJS.ReadStream, signal: io.signal });
      return;
    }
    // Not on a terminal: each review that starts waiting, once, as `show` prints it (or one JSON object per line).
    const seen = new Set<string>();
    while (!io.signal.aborted) {
      for (const r of (await load()).reverse()) {
        if (seen.has(r.id)) continue;
        seen.add(r.id);
        io.stdout.write(opts.json ? `${JSON.stringify(r)}\n` : `${reviewText(r)}\n`);
      }
      await sleep(1000, undefined, { signal: io.signal }).catch(() => undefined);
    }
  });
}
