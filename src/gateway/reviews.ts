/**
 * Just-in-time reviews: a statement a `review` rule holds waits at the gateway until reviewers
 * decide. The registry keeps every review (pending ones in memory with their waiters), decides
 * who may see and decide each, counts approvals, expires what waits too long, and appends every
 * change to `<dataDir>/reviews.jsonl` (one JSON object per line, the review as it now stands), the
 * history `hoop review` reads after a restart. A review still pending when the gateway stopped
 * is marked `expired` when it starts again, never approved: its statement's session is gone.
 *
 * Who may do what:
 * - see a review: its requester, members of its `groups`, and the policy's auditors;
 * - approve: a member of its `groups`, not the requester unless `selfApprove`; each reviewer
 *   once; it is approved once `approvals` distinct reviewers approved;
 * - deny: a member of its `groups` (the requester too, if one); one denial decides.
 *
 * A review raised by a client that does not wait (`Hoop-Review: detach` on its tunnel: `hoop exec
 * --no-wait`, `hoop mcp`) outlives its session: it stays pending until decided or expired. Once
 * approved it runs in its own session if that is still there; if the client went away, it lets
 * the same requester run exactly the same message (its digest: the bytes sent and every SQL text
 * judged for it, so the same statement bodies and parameters) on the same connection once, in a
 * later session, until as long again as its timeout after the approval. Either way it runs once.
 *
 * @see /work/shared/ARCHITECTURE.md ("Approvals and agents")
 */
import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { appendFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Identity } from '../identity.js';
import type { Logger } from '../log.js';
import { describeError, ErrorCode, HoopError } from '../errors.js';
import type { ReviewSettings } from '../policy/schema.js';
import type { Review, ReviewDecision, ReviewPerson, ReviewState } from '../policy/review-record.js';
import type { TemporaryAccess } from '../policy/access.js';
import type { RecordingEvent } from '../recording/event-line.js';
import type { PendingReview, ReviewAsk, ReviewOutcome } from '../tunnel/engine.js';
import { HttpError } from './http-error.js';

export type { Review, ReviewDecision, ReviewPerson, ReviewState };

/** What the registry is told of a new review besides the ask. */
export interface ReviewOrigin {
  session: string;
  run?: string;
  connection: string;
  requester: Identity;
  /** The client does not wait: the review outlives the session (see the module documentation). */
  detached?: boolean;
  /** Told, synchronously, of the review as it is raised and as it ends (the session's recording). */
  observe?: (review: Review) => void;
}

/** Told of each new review and of each end (the audit stream, the recording, webhooks). */
export type ReviewListener = (event: 'requested' | 'decided', review: Review, settings?: ReviewSettings) => void;

/** Reviews kept in memory; older decided ones are only in the history file. */
const MAX_KEPT = 10_000;
/** Pending reviews at once, gateway-wide, and of one requester: beyond, a new one is refused (the statement with it). */
const MAX_PENDING = 1_000;
const MAX_PENDING_PER_REQUESTER = 20;
/** Longest a `?wait=` long-poll waits. */
export const MAX_WAIT_MS = 60_000;
/** Long-polls one viewer may have under way at once. */
const MAX_WAITS_PER_VIEWER = 20;
const REVIEW_ID = /^rv-[0-9a-f]{16}$/;

/** The in-memory and on-disk registry of reviews (see the module documentation). */
export class ReviewRegistry {
  readonly #file: string;
  readonly #log: Logger;
  readonly #listeners: ReviewListener[] = [];
  readonly #reviews = new Map<string, Review>();
  /** Pending reviews' settlers and timers. */
  readonly #live = new Map<string, { settle: (o: ReviewOutcome) => void; timer: NodeJS.Timeout; settings: ReviewSettings; observe?: (review: Review) => void; orphaned?: boolean }>();
  /** Long-polls waiting for a review to leave `pending`. */
  readonly #waiters = new Map<string, Set<() => void>>();
  /** Long-polls under way per viewer (issuer, subject). */
  readonly #waiting = new Map<string, number>();
  #writing: Promise<void> = Promise.resolve();

  private constructor(file: string, log: Logger) {
    this.#file = file;
    this.#log = log;
  }

  /** Opens the registry of `dataDir`, reading its history; reviews left pending by a stopped gateway become `expired`. */
  static async open(dataDir: string, log: Logger): Promise<ReviewRegistry> {
    const r = new ReviewRegistry(join(dataDir, 'reviews.jsonl'), log);
    await r.#load();
    return r;
  }

  /** Adds a listener of new and decided reviews; it must not throw or block. */
  onChange(listener: ReviewListener): void {
    this.#listeners.push(listener);
  }

  /**
   * Raises a review of a held statement. The decision settles once: approved, denied, expired
   * after `settings.timeoutMs`, or withdrawn. Over {@link MAX_PENDING} pending reviews it is
   * refused at once (expired, saying why).
   */
  request(ask: ReviewAsk, origin: ReviewOrigin): PendingReview {
    const approved = this.#claim(ask, origin);
    if (approved) return approved;
    const id = `rv-${randomBytes(8).toString('hex')}`;
    const now = Date.now();
    const { requester } = origin;
    const s = ask.settings;
    const review: Review = {
      id,
      state: 'pending',
      kind: 'statement',
      session: origin.session,
      ...(origin.run !== undefined ? { run: origin.run } : {}),
      connection: origin.connection,
      requester: { subject: requester.subject, issuer: requester.issuer, ...(requester.email !== undefined ? { email: requester.email } : {}), groups: requester.groups },
      sql: ask.sql,
      ...(ask.params ? { params: ask.params } : {}),
      digest: ask.digest,
      ...(ask.rule !== undefined ? { rule: ask.rule } : {}),
      ...(ask.message !== undefined ? { message: ask.message } : {}),
      reason: ask.reason,
      groups: s.groups,
      approvals: s.approvals,
      selfApprove: s.selfApprove,
      windowMs: s.windowMs,
      decisions: [],
      createdAt: new Date(now).toISOString(),
      expiresAt: new Date(now + s.timeoutMs).toISOString(),
      ...(origin.detached ? { detached: true } : {}),
    };
    let settle!: (o: ReviewOutcome) => void;
    const decided = new Promise<ReviewOutcome>((resolve) => (settle = resolve));
    const full =
      this.#live.size >= MAX_PENDING
        ? `the gateway holds ${MAX_PENDING} statements for review already`
        : this.#pendingOf(requester) >= MAX_PENDING_PER_REQUESTER
          ? `${requester.subject} has ${MAX_PENDING_PER_REQUESTER} statements waiting for review already`
          : undefined;
    if (full) {
      // Written to the history, not kept in memory: a flood of refusals never pushes out what others hold.
      this.#persist({ ...review, state: 'expired', decidedAt: new Date(now).toISOString(), closedBecause: full });
      settle({ state: 'expired', afterMs: 0, because: full });
      return { id, decided, withdraw: () => undefined };
    }
    this.#keep(review);
    const timer = setTimeout(() => this.#end(id, { state: 'expired', afterMs: s.timeoutMs }, `not decided within ${Math.round(s.timeoutMs / 1000)} s`), s.timeoutMs);
    timer.unref();
    this.#live.set(id, { settle, timer, settings: s, ...(origin.observe ? { observe: origin.observe } : {}) });
    this.#persist(review);
    origin.observe?.(review);
    this.#log.info('review.requested', { id, session: origin.session, subject: requester.subject, connection: origin.connection, rule: ask.rule, groups: s.groups, approvals: s.approvals });
    this.#tell('requested', review, s);
    return {
      id,
      decided,
      withdraw: (why) => {
        // A detached review waits on without its session (its approval then runs in a later one); a cancel still withdraws it.
        const live = this.#live.get(id);
        if (why === 'session-ended' && review.detached) {
          if (live) live.orphaned = true;
          return;
        }
        this.#end(id, { state: 'withdrawn', why }, why === 'cancel' ? 'the client cancelled the statement' : 'the session ended');
      },
    };
  }

  /**
   * An approved detached review of the same requester, connection, SQL and parameters that no
   * session used yet and whose approval still holds: marked used by this session, and returned
   * settled (approved), else undefined.
   */
  #claim(ask: ReviewAsk, origin: ReviewOrigin): PendingReview | undefined {
    const { requester } = origin;
    const now = Date.now();
    for (const r of this.#reviews.values()) {
      if (r.state !== 'approved' || !r.detached || r.usedBy !== undefined || r.connection !== origin.connection || r.digest !== ask.digest) continue;
      if (r.requester.issuer !== requester.issuer || r.requester.subject !== requester.subject) continue;
      const validFor = Date.parse(r.expiresAt) - Date.parse(r.createdAt);
      if (now > Date.parse(r.decidedAt ?? r.createdAt) + validFor) continue;
      const used: Review = { ...r, usedBy: origin.session, usedAt: new Date(now).toISOString() };
      this.#reviews.set(r.id, used);
      this.#persist(used);
      this.#log.info('review.used', { id: r.id, session: origin.session, subject: requester.subject });
      origin.observe?.(used);
      // Once: no window opens from it.
      return { id: r.id, decided: Promise.resolve({ state: 'approved', by: r.decisions.filter((d) => d.decision === 'approve').map(nameOf), windowMs: 0 }), withdraw: () => undefined, reused: true };
    }
    return undefined;
  }

  /** How many reviews of `who` are pending. */
  #pendingOf(who: Identity): number {
    let n = 0;
    for (const id of this.#live.keys()) {
      const r = this.#reviews.get(id);
      if (r && r.requester.issuer === who.issuer && r.requester.subject === who.subject) n++;
    }
    return n;
  }

  /** The reviews `viewer` may see, newest first; `state` filters. */
  list(viewer: Identity, auditor: boolean, state?: ReviewState): Review[] {
    const out: Review[] = [];
    for (const r of this.#reviews.values()) if ((state === undefined || r.state === state) && mayView(r, viewer, auditor)) out.push(r);
    return out.reverse();
  }

  /** One review `viewer` may see. @throws HoopError REVIEW_UNKNOWN (404) otherwise */
  get(id: string, viewer: Identity, auditor: boolean): Review {
    const r = REVIEW_ID.test(id) ? this.#reviews.get(id) : undefined;
    if (!r || !mayView(r, viewer, auditor)) throw new HoopError(ErrorCode.REVIEW_UNKNOWN, `no review ${id} that you may see`, { hint: '`hoop review ls` lists the reviews you may see' });
    return r;
  }

  /**
   * Resolves with the review once it is no longer pending, or after `ms`, as it then stands.
   * @throws HttpError 429 when `viewer` already waits on {@link MAX_WAITS_PER_VIEWER} reviews
   */
  async wait(id: string, viewer: Identity, auditor: boolean, ms: number): Promise<Review> {
    const r = this.get(id, viewer, auditor);
    if (r.state !== 'pending' || ms <= 0) return r;
    const who = `${viewer.issuer}\n${viewer.subject}`;
    const waiting = this.#waiting.get(who) ?? 0;
    if (waiting >= MAX_WAITS_PER_VIEWER) throw new HttpError(429, `${viewer.subject} waits on ${MAX_WAITS_PER_VIEWER} reviews already`, { hint: 'wait without ?wait= (poll), or for fewer reviews at once' });
    this.#waiting.set(who, waiting + 1);
    try {
      return await this.#waitFor(id, r, ms);
    } finally {
      const left = (this.#waiting.get(who) ?? 1) - 1;
      if (left > 0) this.#waiting.set(who, left);
      else this.#waiting.delete(who);
    }
  }

  async #waitFor(id: string, r: Review, ms: number): Promise<Review> {
    await new Promise<void>((resolve) => {
      const set = this.#waiters.get(id) ?? new Set();
      this.#waiters.set(id, set);
      const done = (): void => {
        clearTimeout(timer);
        set.delete(done);
        if (set.size === 0) this.#waiters.delete(id);
        resolve();
      };
      const timer = setTimeout(done, Math.min(ms, MAX_WAIT_MS));
      set.add(done);
    });
    return this.#reviews.get(id) ?? r;
  }

  /**
   * Records `reviewer`'s decision. @throws HttpError 403 (not a reviewer of it, or approving one's
   * own statement), 409 (no longer pending, or already approved by them); HoopError 404 (unknown)
   */
  decide(id: string, reviewer: Identity, auditor: boolean, decision: 'approve' | 'deny', reason?: string): Review {
    const r = this.get(id, reviewer, auditor);
    if (r.state !== 'pending') throw new HttpError(409, `review ${id} is ${r.state} already${r.decidedAt ? ` (since ${r.decidedAt})` : ''}`);
    const own = r.requester.issuer === reviewer.issuer && r.requester.subject === reviewer.subject;
    if (!reviewer.groups.some((g) => r.groups.includes(g))) {
      throw new HttpError(403, `${reviewer.subject} may not decide review ${id}: its reviewers are the group${r.groups.length > 1 ? 's' : ''} ${r.groups.join(', ')}`, {
        hint: 'ask a member of those groups (`hoop review show` names them)',
      });
    }
    if (decision === 'approve' && own && !r.selfApprove) {
      throw new HttpError(403, `${reviewer.subject} may not approve their own ${r.kind === 'access' ? 'request' : 'statement'} (review ${id})`, { hint: 'another member of its reviewer groups must approve it; the rule\'s review.selfApprove is false' });
    }
    if (decision === 'approve' && r.decisions.some((d) => d.issuer === reviewer.issuer && d.subject === reviewer.subject)) {
      throw new HttpError(409, `${reviewer.subject} approved review ${id} already; it needs ${r.approvals - r.decisions.length} more from others`);
    }
    const d: ReviewDecision = {
      subject: reviewer.subject,
      issuer: reviewer.issuer,
      ...(reviewer.email !== undefined ? { email: reviewer.email } : {}),
      decision,
      ...(reason ? { reason } : {}),
      at: new Date().toISOString(),
    };
    const next: Review = { ...r, decisions: [...r.decisions, d] };
    this.#reviews.set(id, next);
    this.#log.info('review.decision', { id, reviewer: reviewer.subject, decision });
    if (decision === 'deny') this.#end(id, { state: 'denied', by: nameOf(d), ...(reason ? { reason } : {}) });
    else if (next.decisions.length >= next.approvals) this.#end(id, { state: 'approved', by: next.decisions.map(nameOf), windowMs: next.windowMs });
    else this.#persist(next);
    return this.#reviews.get(id)!;
  }

  /**
   * Raises a request for temporary access under the requestable access `rule` (its reviewers in
   * `settings`). Nobody waits on it in-process: the requester follows it with the API.
   */
  requestAccess(input: { requester: Identity; connection: string; rule: string; mode: 'read-only' | 'read-write'; seconds: number; reason: string; run?: string }, settings: ReviewSettings): Review {
    const { requester } = input;
    const now = Date.now();
    const id = `rv-${randomBytes(8).toString('hex')}`;
    const what = `${input.mode} access to ${input.connection} for ${input.seconds} s`;
    const review: Review = {
      id,
      state: 'pending',
      kind: 'access',
      session: '',
      ...(input.run !== undefined ? { run: input.run } : {}),
      connection: input.connection,
      requester: { subject: requester.subject, issuer: requester.issuer, ...(requester.email !== undefined ? { email: requester.email } : {}), groups: requester.groups },
      sql: '',
      rule: input.rule,
      message: input.reason,
      reason: `${requester.subject} asks for ${what} under access rule "${input.rule}": ${input.reason}`,
      groups: settings.groups,
      approvals: settings.approvals,
      selfApprove: settings.selfApprove,
      windowMs: 0,
      decisions: [],
      createdAt: new Date(now).toISOString(),
      expiresAt: new Date(now + settings.timeoutMs).toISOString(),
      access: { mode: input.mode, seconds: input.seconds, reason: input.reason },
    };
    if (this.#pendingOf(requester) >= MAX_PENDING_PER_REQUESTER || this.#live.size >= MAX_PENDING) {
      const refused: Review = { ...review, state: 'expired', decidedAt: review.createdAt, closedBecause: 'too many requests wait for review already' };
      this.#persist(refused);
      return refused;
    }
    this.#keep(review);
    const timer = setTimeout(() => this.#end(id, { state: 'expired', afterMs: settings.timeoutMs }, `not decided within ${Math.round(settings.timeoutMs / 1000)} s`), settings.timeoutMs);
    timer.unref();
    this.#live.set(id, { settle: () => undefined, timer, settings });
    this.#persist(review);
    this.#log.info('review.requested', { id, kind: 'access', subject: requester.subject, connection: input.connection, rule: input.rule, mode: input.mode, seconds: input.seconds });
    this.#tell('requested', review, settings);
    return review;
  }

  /** The temporary access `who` holds now: their approved access requests whose grant has not ended. */
  grantsOf(who: { issuer: string; subject: string }, now = Date.now()): TemporaryAccess[] {
    const out: TemporaryAccess[] = [];
    for (const r of this.#reviews.values()) {
      if (r.kind !== 'access' || r.state !== 'approved' || !r.access?.until || r.rule === undefined) continue;
      if (r.requester.issuer !== who.issuer || r.requester.subject !== who.subject) continue;
      const until = Date.parse(r.access.until);
      if (until > now) out.push({ rule: r.rule, connection: r.connection, mode: r.access.mode, until, request: r.id });
    }
    return out;
  }

  /** Settles every pending review as withdrawn (the gateway stops: their sessions end). */
  close(): void {
    for (const id of [...this.#live.keys()]) this.#end(id, { state: 'withdrawn', why: 'session-ended' }, 'the gateway stopped');
  }

  /** Waits for the history file's writes so far. */
  flushed(): Promise<void> {
    return this.#writing;
  }

  /** Ends a pending review with `outcome`; a no-op once it is not pending. */
  #end(id: string, outcome: ReviewOutcome, because?: string): void {
    const live = this.#live.get(id);
    const r = this.#reviews.get(id);
    if (!live || !r) return;
    this.#live.delete(id);
    clearTimeout(live.timer);
    // A detached approval whose session is still there runs in it: it is used.
    const own = outcome.state === 'approved' && r.detached && !live.orphaned ? { usedBy: r.session, usedAt: new Date().toISOString() } : {};
    const closed = this.#close({ ...r, ...own }, outcome.state, because, live.settings);
    live.observe?.(closed);
    live.settle(outcome);
  }

  #close(r: Review, state: ReviewState, because: string | undefined, settings?: ReviewSettings): Review {
    const now = Date.now();
    // An approved access request is a grant from now on, for the time it asked.
    const access = r.access && state === 'approved' ? { ...r.access, until: new Date(now + r.access.seconds * 1000).toISOString() } : r.access;
    const done: Review = { ...r, state, decidedAt: new Date(now).toISOString(), ...(because ? { closedBecause: because } : {}), ...(access ? { access } : {}) };
    this.#reviews.set(r.id, done);
    this.#persist(done);
    this.#log.info('review.decided', { id: r.id, state, ...(because ? { because } : {}) });
    this.#tell('decided', done, settings);
    for (const wake of [...(this.#waiters.get(r.id) ?? [])]) wake();
    return done;
  }

  #tell(event: 'requested' | 'decided', review: Review, settings?: ReviewSettings): void {
    for (const l of this.#listeners) {
      try {
        l(event, review, settings);
      } catch (err) {
        this.#log.warn('review.listener-failed', { error: describeError(err) });
      }
    }
  }

  /** Keeps `r` in memory; past {@link MAX_KEPT} the oldest decided one goes (never a pending one, a live grant or an unused approval). */
  #keep(r: Review): void {
    this.#reviews.set(r.id, r);
    if (this.#reviews.size <= MAX_KEPT) return;
    const now = Date.now();
    for (const [id, old] of this.#reviews) {
      const holds = old.state === 'pending' || (old.state === 'approved' && ((old.access?.until !== undefined && Date.parse(old.access.until) > now) || (old.detached === true && old.usedBy === undefined)));
      if (!holds) {
        this.#reviews.delete(id);
        break;
      }
    }
  }

  /** Appends the review as it stands to the history file, in order, without holding anyone up. */
  #persist(r: Review): void {
    const line = `${JSON.stringify(r)}\n`;
    this.#writing = this.#writing.then(() => appendFile(this.#file, line, { mode: 0o600 })).catch((err: unknown) => this.#log.error('review.persist-failed', { id: r.id, error: describeError(err) }));
  }

  async #load(): Promise<void> {
    const stale: Review[] = [];
    try {
      const lines = createInterface({ input: createReadStream(this.#file), crlfDelay: Infinity });
      for await (const line of lines) {
        if (line.trim() === '') continue;
        let r: Review;
        try {
          r = JSON.parse(line) as Review;
        } catch {
          continue; // a line cut short by a crash
        }
        if (typeof r?.id !== 'string' || !REVIEW_ID.test(r.id)) continue;
        this.#reviews.delete(r.id);
        this.#keep(r);
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    for (const r of this.#reviews.values()) if (r.state === 'pending') stale.push(r);
    for (const r of stale) this.#close(r, 'expired', 'the gateway restarted while it waited; its statement did not run');
  }
}

function mayView(r: Review, viewer: Identity, auditor: boolean): boolean {
  return auditor || (r.requester.issuer === viewer.issuer && r.requester.subject === viewer.subject) || viewer.groups.some((g) => r.groups.includes(g));
}

/** How a decision names its reviewer: their email, else their subject. */
function nameOf(p: ReviewPerson): string {
  return p.email ?? p.subject;
}

/**
 * A review as the session's recording keeps it (docs/recording-format.md, `review`): raised
 * (`pending`, with the statement and who may decide), then how it ended and by whom.
 */
export function reviewRecordingEvent(r: Review): RecordingEvent {
  const common = { t: 'review', at: Date.now(), id: r.id, state: r.state, ...(r.usedBy !== undefined ? { usedBy: r.usedBy } : {}) };
  if (r.state === 'pending') {
    return { ...common, ...(r.rule !== undefined ? { rule: r.rule } : {}), reason: r.reason, sql: r.sql, ...(r.params ? { params: r.params } : {}), groups: r.groups, approvals: r.approvals, expiresAt: r.expiresAt };
  }
  return { ...common, decisions: r.decisions, ...(r.closedBecause ? { because: r.closedBecause } : {}) };
}

/** `/v1/reviews`, `/v1/reviews/{id}`, `/v1/reviews/{id}/approve|deny`. */
export const REVIEW_PATH = /^\/v1\/reviews(?:\/([A-Za-z0-9-]{1,64})(?:\/(approve|deny))?)?$/;
/** Longest reason a reviewer gives. */
const MAX_REASON = 1_000;
const STATES: readonly ReviewState[] = ['pending', 'approved', 'denied', 'expired', 'withdrawn'];

/**
 * The reviews API: `GET /v1/reviews[?state=pending]` lists what the caller may see (`{ reviews }`,
 * newest first); `GET /v1/reviews/{id}[?wait=S]` answers one, after waiting up to S seconds (60
 * at most) for it to be decided; `POST /v1/reviews/{id}/approve|deny` with `{ "reason": "…" }`
 * (optional for approve) records the caller's decision and answers the review as it then stands.
 */
export async function reviewsApi(
  registry: ReviewRegistry,
  req: { method?: string | undefined; url?: string | undefined },
  identity: Identity,
  auditor: boolean,
  match: RegExpExecArray,
  readBody: () => Promise<unknown>,
): Promise<{ status: number; body: unknown }> {
  const q = new URL(req.url ?? '/', 'http://gateway').searchParams;
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
  const body = await readBody();
  if (body !== null && body !== undefined && (typeof body !== 'object' || Array.isArray(body))) throw new HttpError(400, 'the request body must be a JSON object { "reason": "…" }');
  const reason = (body as { reason?: unknown } | null)?.reason;
  if (reason !== undefined && (typeof reason !== 'string' || reason.length > MAX_REASON)) throw new HttpError(400, `reason must be a text of at most ${MAX_REASON} characters`);
  if (action === 'deny' && (typeof reason !== 'string' || reason.trim() === '')) throw new HttpError(400, 'a denial needs a reason', { hint: 'hoop review deny <id> --reason "why"' });
  return { status: 200, body: registry.decide(id, identity, auditor, action as 'approve' | 'deny', typeof reason === 'string' && reason.trim() !== '' ? reason.trim() : undefined) };
}
