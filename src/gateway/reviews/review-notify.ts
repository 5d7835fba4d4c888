/**
 * Review notifications: each new review and each decision is POSTed to the targets its policy
 * names (`review.notify`), as a generic JSON body or as a body Slack's incoming webhooks take
 * (`text` plus `blocks`). Sent in the background: the data path never waits on a webhook. A
 * failed delivery (a network error, 5xx, 429) is retried with backoff, up to
 * {@link ATTEMPTS} times; what still fails is logged.
 *
 * One target gets at most {@link PER_TARGET_PER_MINUTE} messages a minute from the whole gateway
 * (review notifications and alerts together); past it they are held back and counted, and one
 * message says how many once the minute is over. With the PostgreSQL store the count is shared by
 * every replica and worker process ({@link WebhookMinutes}, ../alerts/webhook-minutes-postgres.ts: a row per
 * target and calendar minute, raised atomically), so N replicas do not send N times the limit, and
 * the held messages are claimed for the summary under the row's lock: one replica says each, once.
 * With the file store the gateway is one process (../workers.ts) and one thread sends: the senders
 * are built once, on the main thread (../parts/parts.ts; worker threads parse SQL and write recordings),
 * so the count in memory is the whole gateway's.
 *
 * The generic body: `{ "event": "review.requested" | "review.decided", "review": { id, state,
 * connection, requester, sql, params, rule, message, groups, approvals, decisions, createdAt,
 * expiresAt, decidedAt }, "approve": "hoop review approve <id>" }`.
 *
 * @see https://api.slack.com/messaging/webhooks
 */
import { realClock } from '../../clock.js';
import { createHash } from 'node:crypto';
import { describeError } from '../../errors.js';
import type { Logger } from '../../log.js';
import type { ReviewNotify } from '../../policy/schema.js';
import type { Review } from './reviews.js';
import { codeBlockSafe, terminalSafe } from '../../ui/terminal-safe.js';

/** Deliveries tried per target and event. */
const ATTEMPTS = 5;
/** Deadline of one delivery. */
const TIMEOUT_MS = 10_000;
/** What a review's statement and parameters may take of a Slack section (3,000 characters), escaped: the rest is its fences and cut notes. */
const SLACK_SQL_MAX = 2_700;

/** The generic JSON body of a review event. */
export function reviewEventBody(event: 'requested' | 'decided', r: Review): Record<string, unknown> {
  return { event: `review.${event}`, review: r, ...(r.state === 'pending' ? { approve: `hoop review approve ${r.id}`, deny: `hoop review deny ${r.id} --reason "…"` } : {}) };
}

/**
 * Text for Slack's `mrkdwn` with its control characters escaped, as Slack asks of any text a
 * message did not write itself: no `<!channel>` or `<@U…>` mention, no `<https://evil|a link that
 * says otherwise>`, no reordered or hidden text, whatever a requester, a reviewer or a statement says.
 * @see https://api.slack.com/reference/surfaces/formatting#escaping
 */
export function slackEscape(text: string, o: { code?: boolean } = {}): string {
  // What changes how text reads (bidirectional overrides, zero-width characters) is shown as an escape too.
  return (o.code ? codeBlockSafe(text) : terminalSafe(text)).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** One character of a text as {@link slackEscape} shows it: an escape, an entity, or the character itself. */
const SHOWN_CHAR = /\\(?:\\|x[0-9a-f]{2}|u\{[0-9a-f]+\}|u[0-9a-f]{4})|&(?:amp|lt|gt);|[\s\S]/gu;

/**
 * `text` escaped for a Slack code block ({@link slackEscape}, every backquote an escape so that no
 * run of them ends the block), as much of it as fits in `max` characters, cut between characters
 * (never inside an escape), and how many characters of `text` were left out.
 */
function escapedWithin(text: string, max: number): { text: string; left: number } {
  const shown = slackEscape(text, { code: true }).match(SHOWN_CHAR) ?? [];
  let out = '';
  for (let i = 0; i < shown.length; i++) {
    if (out.length + shown[i]!.length > max) return { text: out, left: shown.length - i };
    out += shown[i];
  }
  return { text: out, left: 0 };
}

/** A Slack incoming webhook's body for a review event: every text not hoop's own escaped ({@link slackEscape}). */
export function slackBody(event: 'requested' | 'decided', r: Review): Record<string, unknown> {
  const e = slackEscape;
  const who = e(r.requester.email ?? r.requester.subject);
  const params = r.params?.length ? r.params.map((p) => (p === null ? 'NULL' : JSON.stringify(p))).join(', ') : undefined;
  // The statement and its parameters share one section: cut as they read once escaped, never inside an escape, each cut said.
  const sql = escapedWithin(r.sql, SLACK_SQL_MAX);
  const shownParams = params === undefined ? undefined : escapedWithin(params, Math.max(0, SLACK_SQL_MAX - sql.text.length));
  const cutOf = (what: string, c: { text: string; left: number }, whole: string): string =>
    c.left > 0 ? `\n_cut: ${c.left} more characters of ${[...whole].length} in the ${what}; \`hoop review show ${r.id}\` shows it whole_` : '';
  const cut = cutOf('statement', sql, r.sql) + (shownParams && params !== undefined ? cutOf('parameters', shownParams, params) : '');
  const by = r.decisions.map((d) => `${e(d.email ?? d.subject)} ${d.decision === 'approve' ? 'approved' : 'denied'}${d.reason ? `: ${e(d.reason)}` : ''}`).join('; ');
  const text =
    event === 'requested'
      ? `:hourglass: ${who} waits for approval on ${e(r.connection)} (review ${r.id}${r.rule ? `, rule "${e(r.rule)}"` : ''}): ${e(r.message ?? r.reason)}`
      : `${r.state === 'approved' ? ':white_check_mark:' : ':no_entry:'} review ${r.id} of ${who} on ${e(r.connection)} is ${r.state}${by ? ` (${by})` : r.closedBecause ? ` (${e(r.closedBecause)})` : ''}`;
  const blocks: unknown[] = [{ type: 'section', text: { type: 'mrkdwn', text } }];
  if (event === 'requested') {
    const shownLine = shownParams ? `\nparameters: ${shownParams.text}${shownParams.left > 0 ? '…' : ''}` : '';
    blocks.push({ type: 'section', text: { type: 'mrkdwn', text: `\`\`\`${sql.text}${sql.left > 0 ? '…' : ''}\`\`\`${cut}${shownLine}` } });
    blocks.push({
      type: 'context',
      elements: [
        {
          type: 'mrkdwn',
          text: `approve: \`hoop review approve ${r.id}\` · deny: \`hoop review deny ${r.id} --reason "…"\` · ${r.approvals} approval(s) from ${e(r.groups.join(', '))} until ${r.expiresAt}`,
        },
      ],
    });
  }
  return { text, blocks };
}

/** Messages one target gets in full per minute; past it they are counted, and one message says how many once the minute is over. */
export const PER_TARGET_PER_MINUTE = 10;
const MINUTE_MS = 60_000;
/** How often minutes that are over are summarised. */
const SUMMARY_EVERY_MS = MINUTE_MS / 4;
/** A shared minute is summarised this long after it ends: another replica's clock may be a little behind. */
const SHARED_GRACE_MS = 5_000;

/**
 * Messages per target and minute counted by every replica together (the PostgreSQL store's
 * ../alerts/webhook-minutes-postgres.ts). `target`: a hash of the target's URL as written; `minute`: the
 * minute's start (ms since the epoch).
 */
export interface WebhookMinutes {
  /** Counts one message to `target` in `minute`; resolves the minute's count with it. */
  count(target: string, minute: number): Promise<number>;
  /** The messages of `minute` past `limit` no summary said yet, now taken as said: each is told to one caller. */
  claimHeld(target: string, minute: number, limit: number): Promise<number>;
}

/** The held-back message that says `held` messages since `since` (ms) were not sent one by one. */
function summaryBody(target: ReviewNotify, held: number, since: number): Record<string, unknown> {
  const at = new Date(since).toISOString();
  const text = `hoop: ${held} more notification(s) in the minute since ${at} were not sent one by one; \`hoop alerts ls\` and \`hoop review ls\` list them`;
  return target.format === 'slack' ? { text } : { event: 'notifications.held', count: held, since: at, text };
}

/**
 * Sends JSON bodies to webhooks (review notifications, alerts) in the background, retried with
 * backoff; at most {@link PER_TARGET_PER_MINUTE} a minute to one target (a storm of events
 * becomes one summary message), so that no policy can make the gateway flood a channel.
 */
export class WebhookSender {
  readonly #log: Logger;
  readonly #resolve: (url: string) => Promise<string>;
  readonly #fetch: typeof fetch;
  readonly #now: () => number;
  #inFlight = new Set<Promise<void>>();
  /** Per target (its URL as written): the minute's start, messages sent, messages held back. */
  readonly #minutes = new Map<string, { since: number; sent: number; held: number; target: ReviewNotify }>();
  readonly #shared: WebhookMinutes | undefined;
  /** With {@link WebhookMinutes}: the minutes in which this process held a message back (by target hash and minute), to be summarised once over. */
  readonly #heldShared = new Map<string, { key: string; minute: number; target: ReviewNotify }>();
  readonly #timer: NodeJS.Timeout;

  /**
   * `resolveUrl` turns a secret reference into the URL (a plain URL is returned as it is);
   * `minutes`: the count shared by replicas (the PostgreSQL store), else this process's;
   * `summaryEveryMs`: how often minutes that are over are summarised (tests).
   */
  constructor(o: { log: Logger; resolveUrl: (url: string) => Promise<string>; fetch?: typeof fetch; now?: () => number; minutes?: WebhookMinutes; summaryEveryMs?: number }) {
    this.#log = o.log;
    this.#resolve = o.resolveUrl;
    this.#fetch = o.fetch ?? fetch;
    this.#now = o.now ?? realClock.now;
    this.#shared = o.minutes;
    this.#timer = setInterval(() => {
      this.#summarise(false);
      this.#summariseShared(false);
    }, o.summaryEveryMs ?? SUMMARY_EVERY_MS).unref();
  }

  /** Sends `body` to `target` in the background (`what`: fields that name it in the log). */
  send(target: ReviewNotify, body: Record<string, unknown>, what: Record<string, unknown>): void {
    if (this.#shared) return this.#track(this.#sendShared(this.#shared, target, body, what));
    this.#sendLocal(target, body, what);
  }

  /** Counts the message in the minute every replica shares; past the limit it is held back (and this process summarises the minute once it is over). */
  async #sendShared(shared: WebhookMinutes, target: ReviewNotify, body: Record<string, unknown>, what: Record<string, unknown>): Promise<void> {
    const now = this.#now();
    const minute = now - (now % MINUTE_MS);
    const key = createHash('sha256').update(target.url).digest('hex');
    let count: number;
    try {
      count = await shared.count(key, minute);
    } catch (err) {
      // The store down: this process's own count limits what it sends meanwhile.
      this.#log.warn('notify.count-failed', { ...what, error: describeError(err) });
      return this.#sendLocal(target, body, what);
    }
    if (count <= PER_TARGET_PER_MINUTE) return this.#post(target, body, what);
    this.#heldShared.set(`${key} ${minute}`, { key, minute, target });
  }

  /** Says what was held back in shared minutes that are over (all: those not over too, at close), claiming it first so that one replica says each held message. */
  #summariseShared(all: boolean): void {
    const shared = this.#shared;
    if (!shared) return;
    const now = this.#now();
    for (const [id, h] of this.#heldShared) {
      if (!all && now < h.minute + MINUTE_MS + SHARED_GRACE_MS) continue;
      this.#heldShared.delete(id);
      this.#track(
        shared.claimHeld(h.key, h.minute, PER_TARGET_PER_MINUTE).then(
          (held) => {
            if (held > 0) this.#post(h.target, summaryBody(h.target, held, h.minute), { held });
          },
          (err: unknown) => {
            this.#log.warn('notify.summary-failed', { error: describeError(err) });
            // Asked again at the next tick (not when closing).
            if (!all) this.#heldShared.set(id, h);
          },
        ),
      );
    }
  }

  #track(p: Promise<void>): void {
    const tracked = p.catch(() => undefined).finally(() => this.#inFlight.delete(tracked));
    this.#inFlight.add(tracked);
  }

  /** This process's own count of the target's minute (the file store's, or while the shared one cannot be reached). */
  #sendLocal(target: ReviewNotify, body: Record<string, unknown>, what: Record<string, unknown>): void {
    const now = this.#now();
    let m = this.#minutes.get(target.url);
    if (m && now - m.since >= MINUTE_MS) {
      this.#summarise(true, target.url);
      m = undefined;
    }
    if (!m) this.#minutes.set(target.url, (m = { since: now, sent: 0, held: 0, target }));
    if (m.sent >= PER_TARGET_PER_MINUTE) {
      m.held++;
      return;
    }
    m.sent++;
    this.#post(target, body, what);
  }

  /** Resolves once every delivery under way has ended (delivered or given up). */
  async settled(): Promise<void> {
    while (this.#inFlight.size > 0) await Promise.all([...this.#inFlight]);
  }

  /** Says what was held back from targets whose minute is over (all, or `only`), and starts their next minute. */
  #summarise(all: boolean, only?: string): void {
    const now = this.#now();
    for (const [url, m] of this.#minutes) {
      if ((only !== undefined && url !== only) || (!all && now - m.since < MINUTE_MS)) continue;
      this.#minutes.delete(url);
      if (m.held === 0) continue;
      this.#post(m.target, summaryBody(m.target, m.held, m.since), { held: m.held });
    }
  }

  /** Stops the timer (deliveries under way go on). */
  close(): void {
    clearInterval(this.#timer);
    this.#summarise(true);
    this.#summariseShared(true);
  }

  #post(target: ReviewNotify, body: Record<string, unknown>, what: Record<string, unknown>): void {
    this.#track(this.#deliver(target, JSON.stringify(body), what));
  }

  async #deliver(t: ReviewNotify, body: string, what: Record<string, unknown>): Promise<void> {
    let url: string;
    try {
      url = await this.#resolve(t.url);
    } catch (err) {
      this.#log.error('notify.failed', { ...what, error: `its URL could not be resolved: ${describeError(err)}` });
      return;
    }
    let delay = 500;
    for (let attempt = 1; ; attempt++) {
      let problem: string;
      try {
        const res = await this.#fetch(url, {
          method: 'POST',
          headers: { 'Content-Type': 'application/json', 'User-Agent': 'hoop-gateway' },
          body,
          signal: AbortSignal.timeout(TIMEOUT_MS),
          redirect: 'error',
        });
        await res.body?.cancel();
        if (res.ok) return;
        problem = `HTTP ${res.status}`;
        if (res.status < 500 && res.status !== 429) attempt = ATTEMPTS;
      } catch (err) {
        problem = describeError(err);
      }
      if (attempt >= ATTEMPTS) {
        // Never the URL: a Slack webhook's URL is its secret.
        this.#log.error('notify.failed', { ...what, format: t.format, attempts: attempt, error: problem });
        return;
      }
      await new Promise((r) => setTimeout(r, delay).unref());
      delay = Math.min(delay * 2, 8_000);
    }
  }
}

/** Sends review events to their targets (see the module documentation). */
export class ReviewNotifier {
  constructor(private readonly webhooks: WebhookSender) {}

  /** Sends `event` of `review` to each target, in the background. */
  notify(targets: readonly ReviewNotify[], event: 'requested' | 'decided', review: Review): void {
    for (const t of targets) this.webhooks.send(t, t.format === 'slack' ? slackBody(event, review) : reviewEventBody(event, review), { review: review.id, event });
  }

  /** Resolves once every delivery under way has ended. */
  settled(): Promise<void> {
    return this.webhooks.settled();
  }
}
