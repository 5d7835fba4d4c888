/**
 * Review settings as rules combine them: one review for two review verdicts of one message, and
 * a rule's settings over the policy's reviewers and the defaults.
 */
import { listNames } from '../glob.js';
import { REVIEW_DEFAULTS, type Action, type Policy, type ReviewSettings } from './schema.js';

/**
 * One review for two review verdicts of one message (two statements, two rules on one statement,
 * a statement and what it EXECUTEs): its reviewers must be of a group both name, it needs as many
 * approvals as the stricter asks, waits the shorter time, opens the shorter window, lets the
 * requester approve only when both do, and notifies both. Undefined when no group is named by
 * both: nobody could approve for both rules, so the message is refused.
 */
export function combineReviews(a: ReviewSettings, b: ReviewSettings): ReviewSettings | undefined {
  const groups = a.groups.filter((g) => b.groups.includes(g));
  if (groups.length === 0) return undefined;
  return {
    groups,
    approvals: Math.max(a.approvals, b.approvals),
    timeoutMs: Math.min(a.timeoutMs, b.timeoutMs),
    selfApprove: a.selfApprove && b.selfApprove,
    windowMs: Math.min(a.windowMs, b.windowMs),
    notify: [...a.notify, ...b.notify.filter((n) => !a.notify.some((m) => m.url === n.url && m.format === n.format))],
  };
}

/** Rule name of the refusal of a message whose review rules no one group of reviewers may approve together. */
export const REVIEW_CONFLICT_RULE = 'review-conflict';

/**
 * The decision for two review decisions of one message: one review under both rules' settings
 * ({@link combineReviews}), or a refusal when a rule names no reviewers or no group may approve
 * for both.
 */
export function combineReviewDecisions<D extends { action: Action; rule?: string; reason: string; message?: string; review?: ReviewSettings }>(a: D, b: D): D {
  if (a.rule === b.rule || !a.review) return a;
  if (!b.review) return b;
  const review = combineReviews(a.review, b.review);
  if (!review) {
    const message = `the message falls under review rules "${a.rule}" and "${b.rule}", which no one group of reviewers may approve together; send their statements separately`;
    return { ...a, action: 'deny', rule: REVIEW_CONFLICT_RULE, message, reason: `${message} (${a.reason}; ${b.reason})`, review: undefined };
  }
  return { ...a, review, reason: `${a.reason}; and ${b.reason}` };
}

/**
 * The review settings of a rule on `connection`: the rule's own over the first entry of
 * `statements.reviewers` that names the connection (or names none), over {@link REVIEW_DEFAULTS}.
 * Undefined when no group may decide (the statement is then refused, as nobody could approve it).
 */
export function reviewSettingsFor(policy: Policy, connection: string, rule?: Partial<ReviewSettings>): ReviewSettings | undefined {
  const entry = (policy.statements.reviewers ?? []).find((r) => !r.connections || listNames(r.connections, connection));
  const { connections: _c, ...base } = entry ?? {};
  const merged = { ...REVIEW_DEFAULTS, ...base, ...rule };
  return merged.groups && merged.groups.length > 0 ? { ...merged, groups: merged.groups } : undefined;
}

/** What a section's rule or default decides on one request (ssh, mcp, http). */
export interface RuleVerdict {
  action: Action;
  rule?: string;
  message?: string;
  /** A human sentence: which rule, and why. */
  reason: string;
  review?: ReviewSettings;
}

/** What `rule` decides, for `reason`: a review's settings as `reviewers` settle them. */
export function ruleVerdict(
  rule: { name: string; action: Action; message?: string; review?: Partial<ReviewSettings> },
  reason: string,
  reviewers: (rule?: Partial<ReviewSettings>) => ReviewSettings | undefined,
): RuleVerdict {
  const review = rule.action === 'review' ? reviewers(rule.review) : undefined;
  return { action: rule.action, rule: rule.name, ...(rule.message !== undefined ? { message: rule.message } : {}), reason, ...(review ? { review } : {}) };
}

/** What a section's default `action` decides (no `rule`), for `why`. */
export function defaultVerdict(action: Action, why: string, reviewers: (rule?: Partial<ReviewSettings>) => ReviewSettings | undefined): RuleVerdict {
  const review = action === 'review' ? reviewers() : undefined;
  return { action, reason: `${why}; the default is ${action}`, ...(review ? { review } : {}) };
}
