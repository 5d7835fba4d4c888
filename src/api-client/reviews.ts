/**
 * Reviews (just-in-time approvals) and requests for temporary access: list, read, follow until
 * decided, decide; ask.
 *
 * @see docs/internals.md (§3.6, §4.4)
 */
import { realClock } from '../clock.js';
import type { AccessRequestBody, ReviewDecisionBody } from '../api/bodies.js';
import { apiPath } from '../api/paths.js';
import { type Review, reviewSchema } from '../policy/review-record.js';
import * as z from 'zod';
import { answerAs, type GatewayEndpoint, requestJson } from './request.js';
import { ErrorCode } from '../errors.js';
import { suggestingNearest } from '../suggest.js';

/** A review as `GET /v1/reviews` answers it (the gateway's own record of it). */
export type ReviewInfo = Review;

/** `GET /v1/reviews[?state=]`: the reviews the caller may see (theirs, those they may decide; an auditor's: all), newest first. */
export async function listReviews(endpoint: GatewayEndpoint, token: string, state?: string): Promise<ReviewInfo[]> {
  const { body } = await requestJson(endpoint, 'GET', apiPath.reviews(state), { token });
  return answerAs(endpoint, 'its reviews', z.object({ reviews: z.array(reviewSchema) }), body).reviews;
}

/** `GET /v1/reviews/{id}[?wait=S]`: one review, after waiting up to `waitSeconds` (60 at most) for its decision. */
export async function getReview(endpoint: GatewayEndpoint, token: string, id: string, waitSeconds = 0): Promise<ReviewInfo> {
  const wait = Math.min(60, Math.max(0, Math.floor(waitSeconds)));
  const asked = requestJson({ ...endpoint, timeoutMs: Math.max(endpoint.timeoutMs ?? 10_000, (wait + 15) * 1000) }, 'GET', apiPath.review(id, wait), { token });
  const { body } = await suggestingNearest(asked, ErrorCode.REVIEW_UNKNOWN, id, async () => (await listReviews(endpoint, token)).map((r) => r.id));
  return answerAs(endpoint, `review ${id}`, reviewSchema, body);
}

/** `POST /v1/requests`: asks for temporary access to `connection`; resolves the request (a review) as raised. */
export async function requestAccess(endpoint: GatewayEndpoint, token: string, body: AccessRequestBody & { mode: 'read-only' | 'read-write' }): Promise<ReviewInfo> {
  const { body: answer } = await requestJson(endpoint, 'POST', apiPath.requests, { token, body, connection: body.connection });
  return answerAs(endpoint, 'the access request', reviewSchema, answer);
}

/**
 * Follows review `id` (long polls of at most 60 s) until it is decided or `seconds` have passed
 * (`Infinity`: until decided); `token` gives a fresh token for each poll. Resolves it as it then stands.
 */
export async function followReview(endpoint: GatewayEndpoint, token: () => Promise<string>, id: string, seconds: number): Promise<ReviewInfo> {
  const until = realClock.now() + (Number.isFinite(seconds) ? seconds * 1000 : Number.MAX_SAFE_INTEGER);
  for (;;) {
    const r = await getReview(endpoint, await token(), id, Math.min(60, Math.max(0, until - realClock.now()) / 1000));
    if (r.state !== 'pending' || realClock.now() >= until) return r;
  }
}

/** `POST /v1/reviews/{id}/approve|deny`: records the caller's decision; resolves the review as it then stands. */
export async function decideReview(endpoint: GatewayEndpoint, token: string, id: string, decision: 'approve' | 'deny', reason?: string): Promise<ReviewInfo> {
  const asked = requestJson(endpoint, 'POST', apiPath.reviewDecision(id, decision), { token, body: (reason !== undefined ? { reason } : {}) satisfies ReviewDecisionBody });
  const { body } = await suggestingNearest(asked, ErrorCode.REVIEW_UNKNOWN, id, async () => (await listReviews(endpoint, token, 'pending')).map((r) => r.id));
  return answerAs(endpoint, `review ${id}`, reviewSchema, body);
}
