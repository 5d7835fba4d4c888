/**
 * Review notifications: each new review and each decision is POSTed to the targets its policy
 * names (`review.notify`), as a generic JSON body or as a body Slack's incoming webhooks take
 * (`text` plus `blocks`). Sent in the background: the data path never waits on a webhook. A
 * failed delivery (a network error, 5xx, 429) is retried with backoff, up to
 * {@link ATTEMPTS} times; what still fails is logged.
 *
 * The generic body: `{ "event": "review.requested" | "review.decided", "review": { id, state,
 * connection, requester, sql, params, rule, message, groups, approvals, decisions, createdAt,
 * expiresAt, decidedAt }, "approve": "hoop review approve <id>" }`.
 *
 * @see https://api.slack.com/messaging/webhooks
 */
import { describeError } from '../errors.js';
import type { Logger } from '../log.js';
import type { ReviewNotify } from '../policy/schema.js';
import type { Review } from './reviews.js';

/** Deliveries tried per target and event. */
const ATTEMPTS = 5;
/** Deadline of one delivery. */
const TIMEOUT_MS = 10_000;
/** Longest SQL text a Slack message shows. */
const SLACK_SQL_MAX = 2_800;

/** The generic JSON body of a review event. */
export function reviewEventBody(event: 'requested' | 'decided', r: Review): Record<string, unknown> {
  return { event: `review.${event}`, review: r, ...(r.state === 'pending' ? { approve: `hoop review approve ${r.id}`, deny: `hoop review deny ${r.id} --reason "…"` } : {}) };
}

/** A Slack incoming webhook's body for a review event. */
export function slackBody(event: 'requested' | 'decided', r: Review): Record<string, unknown> {
  const who = r.requester.email ?? r.requester.subject;
  const sql = r.sql.length > SLACK_SQL_MAX ? `${r.sql.slice(0, SLACK_SQL_MAX)}…` : r.sql;
  const by = r.decisions.map((d) => `${d.email ?? d.subject} ${d.decision === 'approve' ? 'approved' : 'denied'}${d.reason ? `: ${d.reason}` : ''}`).join('; ');
  const text =
    event === 'requested'
      ? `:hourglass: ${who} waits for approval on ${r.connection} (review ${r.id}${r.rule ? `, rule "${r.rule}"` : ''}): ${r.message ?? r.reason}`
      : `${r.state === 'approved' ? ':white_check_mark:' : ':no_entry:'} review ${r.id} of ${who} on ${r.connection} is ${r.state}${by ? ` (${by})` : r.closedBecause ? ` (${r.closedBecause})` : ''}`;
  const blocks: unknown[] = [{ type: 'section', text: { type: 'mrkdwn', text } }];
  if (event === 'requested') {
    blocks.push({ type: 'section', text: { type: 'mrkdwn', text: `\`\`\`${sql.replace(/```/g, "'''")}\`\`\`${r.params?.length ? `\nparameters: ${r.params.map((p) => (p === null ? 'NULL' : JSON.stringify(p))).join(', ')}` : ''}` } });
    blocks.push({ type: 'context', elements: [{ type: 'mrkdwn', text: `approve: \`hoop review approve ${r.id}\` · deny: \`hoop review deny ${r.id} --reason "…"\` · ${r.approvals} approval(s) from ${r.groups.join(', ')} until ${r.expiresAt}` }] });
  }
  return { text, blocks };
}

/** Sends review events to webhooks (see the module documentation). */
export class ReviewNotifier {
  readonly #log: Logger;
  readonly #resolve: (url: string) => Promise<string>;
  readonly #fetch: typeof fetch;
  #inFlight = new Set<Promise<void>>();

  /** `resolveUrl` turns a secret reference into the URL (a plain URL is returned as it is). */
  constructor(o: { log: Logger; resolveUrl: (url: string) => Promise<string>; fetch?: typeof fetch }) {
    this.#log = o.log;
    this.#resolve = o.resolveUrl;
    this.#fetch = o.fetch ?? fetch;
  }

  /** Sends `event` of `review` to each target, in the background. */
  notify(targets: readonly ReviewNotify[], event: 'requested' | 'decided', review: Review): void {
    for (const t of targets) {
      const p = this.#deliver(t, event, review).finally(() => this.#inFlight.delete(p));
      this.#inFlight.add(p);
    }
  }

  /** Resolves once every delivery under way has ended (delivered or given up). */
  async settled(): Promise<void> {
    while (this.#inFlight.size > 0) await Promise.all([...this.#inFlight]);
  }

  async #deliver(t: ReviewNotify, event: 'requested' | 'decided', review: Review): Promise<void> {
    const body = JSON.stringify(t.format === 'slack' ? slackBody(event, review) : reviewEventBody(event, review));
    let url: string;
    try {
      url = await this.#resolve(t.url);
    } catch (err) {
      this.#log.error('review.notify-failed', { id: review.id, event, error: `its URL could not be resolved: ${describeError(err)}` });
      return;
    }
    let delay = 500;
    for (let attempt = 1; ; attempt++) {
      let problem: string;
      try {
        const res = await this.#fetch(url, { method: 'POST', headers: { 'Content-Type': 'application/json', 'User-Agent': 'hoop-gateway' }, body, signal: AbortSignal.timeout(TIMEOUT_MS), redirect: 'error' });
        await res.body?.cancel();
        if (res.ok) return;
        problem = `HTTP ${res.status}`;
        if (res.status < 500 && res.status !== 429) attempt = ATTEMPTS;
      } catch (err) {
        problem = describeError(err);
      }
      if (attempt >= ATTEMPTS) {
        // Never the URL: a Slack webhook's URL is its secret.
        this.#log.error('review.notify-failed', { id: review.id, event, format: t.format, attempts: attempt, error: problem });
        return;
      }
      await new Promise((r) => setTimeout(r, delay).unref());
      delay = Math.min(delay * 2, 8_000);
    }
  }
}
