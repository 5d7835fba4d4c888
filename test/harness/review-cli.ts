/** `hoop review` as a reviewer (in group dba) runs it against a test's stack, and the pending review of a statement. */
import { expect } from 'vitest';
import type { HoopStack } from './stack.js';
import { eventually } from './wait.js';

/** The reviewer's CLI on the stack `stackOf` gives (made in a test's beforeAll). */
export function reviewCliOf(stackOf: () => HoopStack): {
  reviewCli: (argv: string[], subject?: string) => Promise<{ code: number; stdout: string; stderr: string }>;
  pendingReview: (text: string) => Promise<string>;
} {
  const reviewCli = async (argv: string[], subject = 'bob') => {
    const stack = stackOf();
    return stack.run(['review', ...argv, '--gateway', stack.gateway.url, '--ca-file', stack.pki.caFile], { HOOP_TOKEN: await stack.token(subject, ['dba']) });
  };
  /** The id of the one pending review whose text contains `text`, once it exists. */
  const pendingReview = (text: string): Promise<string> =>
    eventually(
      async () => {
        const found = (JSON.parse((await reviewCli(['ls', '--json'])).stdout) as { reviews: Array<{ id: string; sql: string; state: string }> }).reviews.find(
          (r) => r.sql.includes(text) && r.state === 'pending',
        );
        expect(found, `a pending review of ${text}`).toBeDefined();
        return found!.id;
      },
      { timeout: 60_000, interval: 100 },
    );
  return { reviewCli, pendingReview };
}
