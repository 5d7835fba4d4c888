/**
 * Automated reviewers: a review whose settings name a `service` is sent to it as it is raised —
 * the held statement or command in full, who asks (the person, and for an agent its name, how it
 * came, its run and the prompt its person gave the run), the connection, the rule and why it held it — and the service's answer is a
 * decision: `approve` (it counts as one approval), `deny` (it decides), or `abstain` (people
 * decide). This is how a team plugs in a risk judge (an LLM, a change-management check) without
 * hoop shipping one. The gateway fails closed: no answer within the service's timeout, an answer
 * that is not one of those, or a failure leaves the review to its human reviewers, and is logged.
 *
 * Requests are `POST`ed as JSON with `Hoop-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of
 * "<t>.<body>" with the service's key>`: a service checks it (and that `t` is recent) before it
 * trusts the body. The answer is JSON `{ "review": "<id>", "sha256": "<the statement's>",
 * "decision": "approve" | "deny" | "abstain", "reason": "…" }`, signed the same way in its own
 * `Hoop-Signature` header: an answer that names another review or statement (a cache replaying an
 * earlier approval), is unsigned, or was signed more than five minutes away from now decides nothing.
 *
 * @see https://www.rfc-editor.org/rfc/rfc2104 (HMAC)
 */
import { realClock } from '../../clock.js';
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import * as z from 'zod';
import { describeError } from '../../errors.js';
import { isLoopbackHost } from '../../loopback.js';
import type { Logger } from '../../log.js';
import type { Review } from '../../policy/review-record.js';
import type { ReviewService } from '../../policy/schema.js';
import { analyzeSql } from '../../policy/sql/analyze.js';
import { tablesTouched } from '../../policy/touched.js';

/** Longest answer read. */
const MAX_ANSWER_BYTES = 16 * 1024;

const answerSchema = z.strictObject({
  review: z.string(),
  sha256: z.string(),
  decision: z.enum(['approve', 'deny', 'abstain']),
  reason: z.string().max(1_000).optional(),
});
/** How far from now an answer's signature time may be. */
const ANSWER_SKEW_S = 300;

/** The SHA-256 (hex) of a held statement or command, as the service must echo it. */
export function statementHash(sql: string): string {
  return createHash('sha256').update(sql, 'utf8').digest('hex');
}

/** Why `header` is not a signature of `body` by `key` made near `nowS`, if it is not. */
function answerSignatureProblem(key: string, header: string | null, body: string, nowS: number): string | undefined {
  const m = /^t=(\d{1,12}),v1=([0-9a-f]{64})$/.exec(header ?? '');
  if (!m) return 'its answer has no Hoop-Signature header (t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">)';
  if (Math.abs(nowS - Number(m[1])) > ANSWER_SKEW_S) return `its answer was signed at ${m[1]}, more than ${ANSWER_SKEW_S} s from now`;
  const expected = createHmac('sha256', key).update(`${m[1]}.${body}`).digest();
  return timingSafeEqual(expected, Buffer.from(m[2]!, 'hex')) ? undefined : "its answer's signature does not verify with the service's key";
}

/** The tables a held statement names (none for SQL that does not parse, or an SSH command). */
function tablesOf(sql: string): readonly string[] {
  try {
    return tablesTouched(analyzeSql(sql)).tables;
  } catch {
    return [];
  }
}

/** The signature header of `body` sent at `t` (seconds) with `key`. */
export function reviewSignature(key: string, t: number, body: string): string {
  return `t=${t},v1=${createHmac('sha256', key).update(`${t}.${body}`).digest('hex')}`;
}

/** What the service is sent: the review as its people see it. */
function requestBody(r: Review): string {
  return JSON.stringify({
    event: 'review.requested',
    review: {
      id: r.id,
      kind: r.kind,
      connection: r.connection,
      requester: r.requester,
      ...(r.via !== undefined ? { via: r.via } : {}),
      ...(r.agent !== undefined ? { agent: r.agent } : {}),
      ...(r.run !== undefined ? { run: r.run } : {}),
      ...(r.intent !== undefined ? { intent: r.intent } : {}),
      ...(r.prompt !== undefined ? { prompt: r.prompt } : {}),
      session: r.session,
      sql: r.sql,
      sha256: statementHash(r.sql),
      ...(r.kind === 'statement' ? { tables: tablesOf(r.sql) } : {}),
      ...(r.params ? { params: r.params } : {}),
      ...(r.rule !== undefined ? { rule: r.rule } : {}),
      ...(r.message !== undefined ? { message: r.message } : {}),
      reason: r.reason,
      createdAt: r.createdAt,
      expiresAt: r.expiresAt,
    },
    answer: '{ "review": "<review.id>", "sha256": "<review.sha256>", "decision": "approve" | "deny" | "abstain", "reason": "…" }, signed in a Hoop-Signature header as this request is',
  });
}

/** Asks review services (see the module documentation). */
export class ReviewServices {
  readonly #inFlight = new Set<Promise<void>>();

  constructor(
    private readonly o: {
      log: Logger;
      /** A secret reference's value (a plain URL as it is). */
      resolve: (text: string) => Promise<string>;
      /** Records the service's decision on review `id`. */
      decide: (id: string, service: string, decision: 'approve' | 'deny', reason: string) => Promise<unknown>;
      fetch?: typeof fetch;
    },
  ) {}

  /** Sends `review` to `service` in the background; its answer decides, or people do. */
  ask(review: Review, service: ReviewService): void {
    const p = this.#ask(review, service)
      .catch((err: unknown) => this.o.log.warn('review.service-failed', { id: review.id, service: service.name, error: describeError(err), left: 'to its reviewers' }))
      .finally(() => this.#inFlight.delete(p));
    this.#inFlight.add(p);
  }

  /** Resolves once every question under way has its answer (or none). */
  async settled(): Promise<void> {
    while (this.#inFlight.size > 0) await Promise.all([...this.#inFlight]);
  }

  async #ask(review: Review, service: ReviewService): Promise<void> {
    const [url, key] = await Promise.all([this.o.resolve(service.url), this.o.resolve(service.secret)]);
    // Its answer decides: it must come over TLS (or never leave this machine), or anyone on the path could approve.
    const target = new URL(url);
    if (target.protocol !== 'https:' && !(target.protocol === 'http:' && isLoopbackHost(target.hostname.replace(/^\[|\]$/g, '')))) {
      throw new Error(`its URL must be https (or http on a loopback address), not ${target.protocol}//${target.host}`);
    }
    const body = requestBody(review);
    const res = await (this.o.fetch ?? fetch)(url, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'User-Agent': 'hoop-gateway', 'Hoop-Signature': reviewSignature(key, Math.floor(realClock.now() / 1000), body) },
      body,
      signal: AbortSignal.timeout(service.timeoutMs),
      redirect: 'error',
    });
    const text = await readAtMost(res, MAX_ANSWER_BYTES);
    if (!res.ok) throw new Error(`it answered HTTP ${res.status}`);
    const unsigned = answerSignatureProblem(key, res.headers.get('hoop-signature'), text, Math.floor(realClock.now() / 1000));
    if (unsigned) throw new Error(unsigned);
    let answer: z.infer<typeof answerSchema>;
    try {
      answer = answerSchema.parse(JSON.parse(text));
    } catch {
      throw new Error('its answer is not { "review", "sha256", "decision": "approve" | "deny" | "abstain", "reason"? }');
    }
    // An answer binds the review and the statement it decides: one replayed from another review decides nothing.
    if (answer.review !== review.id || answer.sha256 !== statementHash(review.sql))
      throw new Error(`its answer is for review ${answer.review} (statement ${answer.sha256.slice(0, 12)}…), not this one`);
    this.o.log.info('review.service-answered', { id: review.id, service: service.name, decision: answer.decision });
    if (answer.decision === 'abstain') return;
    await this.o.decide(review.id, service.name, answer.decision, answer.reason?.trim() || `the review service ${service.name} ${answer.decision === 'approve' ? 'approved' : 'denied'} it`);
  }
}

/** The body of `res`, refused past `max` bytes. */
async function readAtMost(res: Response, max: number): Promise<string> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of res.body ?? []) {
    size += chunk.length;
    if (size > max) throw new Error(`its answer is longer than ${max} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}
