/**
 * The reviews API: `GET /v1/reviews[?state=pending]` lists what the caller may see (`{ reviews }`,
 * newest first); `GET /v1/reviews/{id}[?wait=S]` answers one, after waiting up to S seconds (60
 * at most) for it to be decided; `POST /v1/reviews/{id}/approve|deny` with `{ "reason": "…" }`
 * (optional for approve) records the caller's decision and answers the review as it then stands.
 * The registry (../reviews/reviews.ts) decides who may see and decide what.
 */
import type { Identity } from '../../identity.js';
import { REVIEW_STATES, type Review, type ReviewState } from '../../policy/review-record.js';
import { reviewDecisionBody } from '../../api/bodies.js';
import { HttpError } from '../http/http-error.js';
import type { ReviewRegistry } from '../reviews/reviews.js';
import { describeEnd, type RunRegistry } from '../runs/runs.js';
import { checkBody } from '../http/respond.js';
import { requestUrl } from '../http/request-target.js';

const STATES: readonly ReviewState[] = REVIEW_STATES;

/** The reviews endpoints (`match`: {@link API_ROUTES}.reviews's groups, the review and the decision). */
export async function reviewsApi(
  registry: ReviewRegistry,
  runs: Pick<RunRegistry, 'get' | 'isOpen'>,
  req: { method?: string | undefined; url?: string | undefined },
  identity: Identity,
  auditor: boolean,
  match: RegExpExecArray,
  readBody: () => Promise<unknown>,
): Promise<{ status: number; body: unknown }> {
  const q = requestUrl(req).searchParams;
  const [, id, action] = match;
  if (id === undefined) {
    const state = q.get('state');
    if (state !== null && !STATES.includes(state as ReviewState)) throw new HttpError(400, `state must be one of ${STATES.join(', ')}`);
    return { status: 200, body: { reviews: registry.list(identity, auditor, (state ?? undefined) as ReviewState | undefined) } };
  }
  if (action === undefined) {
    const wait = q.get('wait');
    const seconds = wait === null ? 0 : Number(wait);
    if (!Number.isFinite(seconds) || seconds < 0) throw new HttpError(400, 'wait must be a number of seconds');
    return { status: 200, body: await registry.wait(id, identity, auditor, seconds * 1000) };
  }
  const reason = checkBody(reviewDecisionBody, await readBody())?.reason;
  if (action === 'deny' && (typeof reason !== 'string' || reason.trim() === '')) throw new HttpError(400, 'a denial needs a reason', { hint: 'hoop review deny <id> --reason "why"' });
  if (action === 'approve') await refuseEndedRun(registry.get(id, identity, auditor), runs);
  return { status: 200, body: await registry.decide(id, identity, auditor, action as 'approve' | 'deny', typeof reason === 'string' && reason.trim() !== '' ? reason.trim() : undefined) };
}

/** A detached statement of a run is claimed by a session of that run alone: once the run ended, an approval would run nothing (a denial is still recorded). */
async function refuseEndedRun(r: Review, runs: Pick<RunRegistry, 'get' | 'isOpen'>): Promise<void> {
  if (r.kind !== 'statement' || !r.detached || r.run === undefined || r.state !== 'pending') return;
  const run = await runs.get(r.run);
  if (run && runs.isOpen(run)) return;
  const why = run === undefined ? 'the gateway knows it no more' : run.endReason ? describeEnd(run.endReason) : 'its time ran out';
  throw new HttpError(409, `review ${r.id} holds a statement of run ${r.run}, which has ended (${why}): no session of it can run the statement now`, {
    hint: `deny it (hoop review deny ${r.id} --reason "…") or let it expire`,
  });
}
