/**
 * The review an engine asks for what a section's rule holds (an SSH command, an MCP call, an HTTP
 * request): what the reviewer is shown, the digest of what would run, and the rule's verdict.
 */
import type { RuleVerdict } from '../policy/review-combine.js';
import type { ReviewSettings } from '../policy/schema.js';
import type { ReviewAsk } from './engine.js';

/** The ask of a held `shown` (its `digest`: SHA-256 of exactly what would run) for `verdict`. */
export function reviewAskOf(shown: string, digest: string, verdict: RuleVerdict & { review: ReviewSettings }): ReviewAsk {
  return {
    sql: shown,
    digest,
    ...(verdict.rule !== undefined ? { rule: verdict.rule } : {}),
    ...(verdict.message !== undefined ? { message: verdict.message } : {}),
    reason: verdict.reason,
    settings: verdict.review,
  };
}
