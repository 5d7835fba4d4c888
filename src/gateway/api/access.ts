/**
 * Just-in-time access: `POST /v1/requests` `{ connection, mode?, seconds, reason }` asks for
 * temporary access under a requestable access rule that admits the caller; its reviewers decide it
 * as any review. A person's decisions (a review's, or asking for access) need a recent sign-in
 * when the policy says so (`reviews.requireSignInWithin`), answered as a step-up challenge.
 *
 * @see https://www.rfc-editor.org/rfc/rfc9470 (OAuth 2.0 step-up authentication challenge)
 */
import { realClock } from '../../clock.js';
import { ErrorCode, HoopError } from '../../errors.js';
import { describeLength } from '../../text-format.js';
import type { Identity } from '../../identity.js';
import { accessFor, requestableRule } from '../../policy/access.js';
import { reviewSettingsFor } from '../../policy/review-combine.js';
import { DEFAULT_MAX_GRANT_SECONDS } from '../../policy/schema.js';
import { HttpError } from '../http/http-error.js';
import { checkBody } from '../http/respond.js';
import { accessRequestBody } from '../../api/bodies.js';
import type { GatewayParts } from '../parts/parts.js';
import { whoOf } from '../config/policy-source.js';
import type { Review } from '../reviews/reviews.js';
import { runForbidden } from '../runs/runs.js';

/**
 * Why a token's `auth_time` does not show a sign-in within `withinMs` of `now`, or undefined when
 * it does: none said, a time later than the token's own issue (`iat`) or in the future beyond
 * `toleranceSeconds` (no sign-in can be), or too long ago.
 */
export function signInProblem(claims: Record<string, unknown>, withinMs: number, toleranceSeconds: number, now: number): string | undefined {
  const at = claims.auth_time;
  if (typeof at !== 'number' || !Number.isFinite(at)) return 'and the token does not say when they did (no auth_time)';
  if (at * 1000 > now + toleranceSeconds * 1000)
    return `and the token says they did ${Math.round(at - now / 1000)} s from now, which no sign-in can be (the clocks disagree, or the token was made so)`;
  if (typeof claims.iat === 'number' && at > claims.iat) return 'and the token says they did after it was issued (auth_time after iat), which no sign-in can be';
  const age = now - at * 1000;
  return age <= withinMs ? undefined : `the last sign-in was ${Math.round(age / 60_000)} min ago`;
}

/**
 * Refuses a person's decision unless they signed in within the policy's
 * `reviews.requireSignInWithin`, as their token's `auth_time` says ({@link signInProblem}): an
 * agent that took a token cannot sign in anew, a person can.
 */
export function requireRecentSignIn({ policySource, verifier }: GatewayParts, identity: Identity, what: string): void {
  const within = policySource?.current().policy.reviews?.requireSignInWithinMs;
  if (within === undefined) return;
  const problem = signInProblem(identity.claims, within, verifier.issuerConfig(identity.issuer)?.clockToleranceSeconds ?? 0, realClock.now());
  if (problem === undefined) return;
  const limit = describeLength(Math.round(within / 1000));
  throw new HttpError(401, `to ${what}, ${identity.subject} must have signed in within the last ${limit}${problem.startsWith('and') ? ', ' : '; '}${problem}`, {
    code: ErrorCode.SIGN_IN_REQUIRED,
    hint: 'sign in again (hoop login --reauth: your identity provider asks for your credentials), then decide again',
    headers: { 'WWW-Authenticate': `Bearer error="insufficient_user_authentication", error_description="a recent sign-in is required", max_age="${Math.round(within / 1000)}"` },
  });
}

/** `POST /v1/requests`: the review that decides the request. */
export function requestAccess({ policySource, reviews, log }: GatewayParts, identity: Identity, body: unknown): Review {
  if (identity.run) throw runForbidden('request');
  if (!policySource) throw new HttpError(404, 'this gateway does not load its policy from a config repo, so it has no requestable access');
  const { connection, mode, seconds, reason } = checkBody(accessRequestBody, body, { reason: 'hoop request <connection> --for 1h --reason "…"' });
  const { policy } = policySource.current();
  const who = whoOf(identity);
  if (!policy.connections.some((c) => c.name === connection)) throw new HoopError(ErrorCode.CONNECTION_UNKNOWN, `the gateway has no connection named "${connection}"`);
  const standing = accessFor(policy, who, connection, reviews.grantsOf(identity));
  if (standing && (standing.mode === 'read-write' || mode === 'read-only'))
    throw new HttpError(409, `${identity.subject} has ${standing.mode} access to "${connection}" already${standing.until ? ` (until ${new Date(standing.until).toISOString()})` : ''}`);
  const rule = requestableRule(policy, who, connection, mode);
  if (!rule)
    throw new HttpError(403, `no access rule lets ${identity.subject} ask for ${mode} access to "${connection}"`, {
      hint: 'an access rule with requestable: true that admits you and names the connection (ask the owners of the policy)',
    });
  const max = rule.maxGrantSeconds ?? DEFAULT_MAX_GRANT_SECONDS;
  if (seconds > max) throw new HttpError(400, `access rule "${rule.name}" grants at most ${describeLength(max)}; ask for less`);
  const settings = reviewSettingsFor(policy, connection, rule.review);
  if (!settings) throw new HttpError(409, `nobody can approve requests under access rule "${rule.name}": it names no reviewers (its review.groups, or statements.reviewers)`);
  const r = reviews.requestAccess({ requester: identity, connection, rule: rule.name, mode, seconds, reason }, settings);
  log.info('access.requested', { id: r.id, subject: identity.subject, connection, mode, seconds, rule: rule.name });
  return r;
}
