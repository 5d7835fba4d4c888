/**
 * Just-in-time reviews: a statement a `review` rule holds waits at the gateway until reviewers
 * decide. The registry keeps every review (pending ones in memory with their waiters), decides
 * who may see and decide each, counts approvals, expires what waits too long, and saves every
 * change in its {@link ReviewStore}: `<dataDir>/reviews.jsonl` (one JSON object per line, the
 * review as it now stands), the history `hoop review` reads after a restart, or the PostgreSQL
 * store that replicas share (./reviews-postgres.ts). Each change is saved at the next version
 * only if none came first, so two reviewers deciding at once never both win. A review still
 * pending when its gateway stopped is marked `expired`, never approved: its statement's session
 * is gone.
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
 * @see docs/internals.md (§3.6, §4.4)
 */
import { realClock } from '../../clock.js';
import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { appendFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Identity } from '../../identity.js';
import type { Logger } from '../../log.js';
import { describeError, ErrorCode, HoopError } from '../../errors.js';
import type { ReviewSettings } from '../../policy/schema.js';
import { reviewSchema, type Review, type ReviewDecision, type ReviewPerson, type ReviewState } from '../../policy/review-record.js';
import { lineRecord } from '../../stored-record.js';
import type { TemporaryAccess } from '../../policy/access.js';
import type { RecordingEvent } from '../../recording/event-line.js';
import type { PendingReview, ReviewAsk, ReviewOutcome } from '../../session/engine.js';
import { HttpError } from '../http/http-error.js';
import type { Principal } from '../../policy/principal.js';
import { runForbidden } from '../runs/runs.js';
import type { ReviewNamed } from '../audit/events.js';

export type { Review, ReviewDecision, ReviewPerson, ReviewState };

/** What the registry is told of a new review besides the ask. */
export interface ReviewOrigin {
  session: string;
  run?: string;
  /** How the session came, and its agent. */
  principal?: Principal;
  connection: string;
  requester: Identity;
  /** The client does not wait: the review outlives the session (see the module documentation). */
  detached?: boolean;
  /** What the client last said its session is for (its `context` message's `intent`). */
  intent?: string;
  /** The prompt of the run whose session raised it. */
  prompt?: string;
  /** Told, synchronously, of the review as it is raised and as it ends (the session's recording). */
  observe?: (review: Review) => void;
}

/** Told of each new review and of each end (the audit stream, the recording, webhooks). */
export type ReviewListener = (event: 'requested' | 'decided', review: Review, settings?: ReviewSettings) => void;

/** Reviews kept in memory; older decided ones are only in the history file. */
const MAX_KEPT = 10_000;
/** Pending reviews at once held by this gateway process, and of one requester across replicas: beyond, a new one is refused (the statement with it). */
const MAX_PENDING = 1_000;
const MAX_PENDING_PER_REQUESTER = 20;
/** Longest a `?wait=` long-poll waits. */
export const MAX_WAIT_MS = 60_000;
/** Long-polls one viewer may have under way at once. */
const MAX_WAITS_PER_VIEWER = 20;
const REVIEW_ID = /^rv-[0-9a-f]{16}$/;
/** A review as this gateway's history file keeps it: one of its ids. */
const storedReview = reviewSchema.refine((r) => REVIEW_ID.test(r.id), { error: 'not a review id (rv- and 16 hex digits)', path: ['id'] });

/** A review as a {@link ReviewStore} keeps it: at a version (1 when raised, one more per change). */
export interface StoredReview {
  review: Review;
  version: number;
  /** Its reviewers and where to tell of it (kept so any replica can tell of its end). */
  settings?: ReviewSettings;
}

/**
 * Where reviews are kept: the history file in the data directory ({@link FileReviewStore}), or the
 * store shared by replicas (./reviews-postgres.ts), which tells every replica of each change.
 */
export interface ReviewStore {
  /** Whether other gateways share it: pending reviews found at start are then theirs (or the take-over's), not expired. */
  readonly shared: boolean;
  /** The reviews kept, oldest first. */
  load(): Promise<StoredReview[]>;
  /**
   * Saves `r` at `version` if the stored one is still at `version - 1` (absent for 1): false when
   * another change came first. Rejects when the store cannot be written.
   */
  save(r: Review, version: number, settings?: ReviewSettings): Promise<boolean>;
  /** The review as stored now. */
  get(id: string): Promise<StoredReview | undefined>;
  /** Told of each change saved by any gateway sharing the store (its id and version). */
  onChange?(fn: (id: string, version: number) => void): void;
  /**
   * Whether this gateway saved that change itself, sweeping reviews no gateway holds (a dead
   * replica's, overdue ones): it then tells of it, as of its own decisions. Asked once per change.
   */
  sweptHere?(id: string, version: number): boolean;
  /** Waits for the writes so far. */
  flushed(): Promise<void>;
}

/** Reviews in `<dataDir>/reviews.jsonl`: each change appended as a line, the review as it then stands. */
export class FileReviewStore implements ReviewStore {
  readonly shared = false;
  readonly #file: string;
  readonly #log: Logger;
  readonly #versions = new Map<string, number>();
  #writing: Promise<void> = Promise.resolve();

  constructor(dataDir: string, log: Logger) {
    this.#file = join(dataDir, 'reviews.jsonl');
    this.#log = log;
  }

  async load(): Promise<StoredReview[]> {
    const out = new Map<string, StoredReview>();
    try {
      const lines = createInterface({ input: createReadStream(this.#file), crlfDelay: Infinity });
      let n = 0;
      for await (const line of lines) {
        n++;
        if (line.trim() === '') continue;
        // A line that is not a review (one a crash cut short, or of another shape) is skipped, said; the others are kept.
        const r = lineRecord(storedReview, line, 'review', { file: this.#file, line: n }, this.#log);
        if (!r) continue;
        const version = (this.#versions.get(r.id) ?? 0) + 1;
        this.#versions.set(r.id, version);
        out.delete(r.id);
        out.set(r.id, { review: r, version });
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    return [...out.values()];
  }

  /** Checks the version in memory (one process owns the file), then appends without holding anyone up. */
  async save(r: Review, version: number): Promise<boolean> {
    if ((this.#versions.get(r.id) ?? 0) !== version - 1) return false;
    this.#versions.set(r.id, version);
    const line = `${JSON.stringify(r)}\n`;
    this.#writing = this.#writing.then(() => appendFile(this.#file, line, { mode: 0o600 })).catch((err: unknown) => this.#log.error('review.persist-failed', { id: r.id, error: describeError(err) }));
    return true;
  }

  async get(): Promise<undefined> {
    return undefined;
  }

  flushed(): Promise<void> {
    return this.#writing;
  }
}

/** How often an approval this gateway could not claim is tried again, to expire it in the store. */
const UNCLAIM_RETRY_MS = 5_000;

/** Live state of a pending review held here: its statement's settler and its timer. */
interface Held {
  settle: (o: ReviewOutcome) => void;
  timer: NodeJS.Timeout;
  settings: ReviewSettings;
  observe?: (review: Review) => void;
  orphaned?: boolean;
}

/** The registry of reviews (see the module documentation). */
export class ReviewRegistry {
  readonly #store: ReviewStore;
  readonly #log: Logger;
  readonly #listeners: ReviewListener[] = [];
  readonly #reviews = new Map<string, Review>();
  /** The version of each review as this registry last saw it. */
  readonly #versions = new Map<string, number>();
  /** Settings of pending reviews raised elsewhere (to tell of their end when decided here). */
  readonly #settings = new Map<string, ReviewSettings>();
  /** Pending reviews held here: their statements' settlers and timers. */
  readonly #live = new Map<string, Held>();
  /** Long-polls waiting for a review to leave `pending`. */
  readonly #waiters = new Map<string, Set<() => void>>();
  /** Long-polls under way per viewer (issuer, subject). */
  readonly #waiting = new Map<string, number>();
  /** The changes of each review made here, one after the other. */
  readonly #chains = new Map<string, Promise<unknown>>();
  /** Saves under way, so {@link flushed} waits for them. */
  readonly #saving = new Set<Promise<unknown>>();

  private constructor(store: ReviewStore, log: Logger) {
    this.#store = store;
    this.#log = log;
  }

  /**
   * Opens the registry on `store` (default: the history file of `dataDir`). With a file, reviews
   * left pending by a stopped gateway become `expired`; with a shared store they belong to the
   * replica holding them (a dead one's are expired by the take-over).
   */
  static async open(dataDir: string, log: Logger, store: ReviewStore = new FileReviewStore(dataDir, log)): Promise<ReviewRegistry> {
    const r = new ReviewRegistry(store, log);
    for (const s of await store.load()) r.#learn(s);
    store.onChange?.((id, version) => void r.#changed(id, version));
    if (!store.shared) {
      for (const review of [...r.#reviews.values()].filter((x) => x.state === 'pending')) {
        await r.#commit(r.#closed(review, 'expired', 'the gateway restarted while it waited; its statement did not run'));
      }
    }
    return r;
  }

  /** Adds a listener of new and decided reviews; it must not throw or block. */
  onChange(listener: ReviewListener): void {
    this.#listeners.push(listener);
  }

  /**
   * Raises a review of a held statement. The decision settles once: approved, denied, expired
   * after `settings.timeoutMs`, or withdrawn. Over {@link MAX_PENDING} pending reviews it is
   * refused at once (expired, saying why); so is a review the store cannot keep (no reviewer
   * could see it).
   */
  request(ask: ReviewAsk, origin: ReviewOrigin): PendingReview {
    const approved = this.#claim(ask, origin);
    if (approved) return approved;
    const id = `rv-${randomBytes(8).toString('hex')}`;
    const now = realClock.now();
    const { requester } = origin;
    const s = ask.settings;
    const review: Review = {
      id,
      state: 'pending',
      kind: 'statement',
      session: origin.session,
      ...(origin.run !== undefined ? { run: origin.run } : {}),
      ...(origin.principal ? { via: origin.principal.via, ...(origin.principal.agent !== undefined ? { agent: origin.principal.agent } : {}) } : {}),
      ...(origin.intent !== undefined ? { intent: origin.intent } : {}),
      ...(origin.prompt !== undefined ? { prompt: origin.prompt } : {}),
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
    const refused =
      ask.unseen !== undefined
        ? `its reviewer could not read all it runs: hoop hides every value of it, as ${ask.unseen}`
        : this.#live.size >= MAX_PENDING
          ? `the gateway holds ${MAX_PENDING} statements for review already`
          : this.#pendingOf(requester) >= MAX_PENDING_PER_REQUESTER
            ? `${requester.subject} has ${MAX_PENDING_PER_REQUESTER} statements waiting for review already`
            : undefined;
    if (refused) {
      // Written to the history, not kept in memory: a flood of refusals never pushes out what others hold.
      this.#track(this.#store.save({ ...review, state: 'expired', decidedAt: new Date(now).toISOString(), closedBecause: refused }, 1).catch(() => false));
      settle({ state: 'expired', afterMs: 0, because: refused });
      return { id, decided, withdraw: () => undefined };
    }
    this.#hold(review, { settle, settings: s, ...(origin.observe ? { observe: origin.observe } : {}) }, s.timeoutMs);
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
        void this.#end(id, 'withdrawn', why === 'cancel' ? 'the client cancelled the statement' : 'the session ended');
      },
    };
  }

  /** Keeps a new pending review held here, with its timer, and saves it; one the store cannot keep expires at once. */
  #hold(review: Review, held: Omit<Held, 'timer'>, timeoutMs: number): void {
    this.#keep(review);
    const timer = setTimeout(() => void this.#end(review.id, 'expired', `not decided within ${Math.round(timeoutMs / 1000)} s`), timeoutMs);
    timer.unref();
    this.#live.set(review.id, { ...held, timer });
    this.#track(
      this.#serial(review.id, () => this.#commit(review, held.settings)).catch((err: unknown) => {
        this.#log.error('review.persist-failed', { id: review.id, error: describeError(err) });
        void this.#end(review.id, 'expired', 'the gateway could not keep it in its store, so no reviewer could see it');
      }),
    );
  }

  /**
   * An approved detached review of the same requester, connection, SQL and parameters that no
   * session used yet and whose approval still holds: marked used by this session (once, across
   * replicas), and returned settled (approved; expired when another session used it first), else
   * undefined.
   */
  #claim(ask: ReviewAsk, origin: ReviewOrigin): PendingReview | undefined {
    const { requester } = origin;
    const now = realClock.now();
    for (const r of this.#reviews.values()) {
      if (r.state !== 'approved' || !r.detached || r.usedBy !== undefined || r.connection !== origin.connection || r.digest !== ask.digest) continue;
      if (r.requester.issuer !== requester.issuer || r.requester.subject !== requester.subject) continue;
      // An approval given to an agent's statement is that run's alone, and a person's is not an agent's.
      if (r.run !== origin.run) continue;
      const validFor = Date.parse(r.expiresAt) - Date.parse(r.createdAt);
      if (now > Date.parse(r.decidedAt ?? r.createdAt) + validFor) continue;
      const used: Review = { ...r, usedBy: origin.session, usedAt: new Date(now).toISOString() };
      this.#reviews.set(r.id, used);
      const decided = this.#commit(used).then(
        (ok): ReviewOutcome => {
          if (!ok) return { state: 'expired', afterMs: 0, because: `another session used approval ${r.id} first` };
          this.#log.info('review.used', { id: r.id, session: origin.session, subject: requester.subject });
          origin.observe?.(used);
          // Once: no window opens from it.
          return { state: 'approved', by: r.decisions.filter((d) => d.decision === 'approve').map(nameOf), windowMs: 0 };
        },
        (): ReviewOutcome => ({ state: 'expired', afterMs: 0, because: 'the gateway could not mark the approval used in its store' }),
      );
      this.#track(decided);
      return { id: r.id, decided, withdraw: () => undefined, reused: true };
    }
    return undefined;
  }

  /**
   * How many reviews of `who` are pending, held here or (with the PostgreSQL store) on another
   * replica, as this one knows them (each change is told to every replica): a requester spreading
   * sessions over replicas has {@link MAX_PENDING_PER_REQUESTER} pending in all, give or take those
   * raised at the same moment on two replicas. One past its expiry (its replica gone) counts no more.
   */
  #pendingOf(who: Identity): number {
    const now = realClock.now();
    let n = 0;
    for (const r of this.#reviews.values()) {
      if (r.state === 'pending' && Date.parse(r.expiresAt) > now && r.requester.issuer === who.issuer && r.requester.subject === who.subject) n++;
    }
    return n;
  }

  /** The reviews `viewer` may see, newest first; `state` filters. */
  list(viewer: Identity, auditor: boolean, state?: ReviewState): Review[] {
    const out: Review[] = [];
    for (const r of this.#reviews.values()) if ((state === undefined || r.state === state) && mayView(r, viewer, auditor)) out.push(r);
    return out.reverse().sort((a, b) => b.createdAt.localeCompare(a.createdAt));
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
    if (waiting >= MAX_WAITS_PER_VIEWER)
      throw new HttpError(429, `${viewer.subject} waits on ${MAX_WAITS_PER_VIEWER} reviews already`, { hint: 'wait without ?wait= (poll), or for fewer reviews at once' });
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
   * Records `reviewer`'s decision, on whichever replica holds the statement. @throws HttpError 403
   * (not a reviewer of it, or approving one's own statement), 409 (no longer pending, already
   * approved by them, or changed by someone else meanwhile); HoopError 404 (unknown),
   * STORE_UNAVAILABLE
   */
  async decide(id: string, reviewer: Identity, auditor: boolean, decision: 'approve' | 'deny', reason?: string): Promise<Review> {
    if (reviewer.run) throw runForbidden('decide');
    this.get(id, reviewer, auditor);
    // After the review's own save and any decision before it here: each starts from the review as it then stands.
    return this.#serial(id, () => this.#decide(id, reviewer, auditor, decision, reason));
  }

  async #decide(id: string, reviewer: Identity, auditor: boolean, decision: 'approve' | 'deny', reason?: string): Promise<Review> {
    const r = this.get(id, reviewer, auditor);
    if (r.state !== 'pending') throw new HttpError(409, `review ${id} is ${r.state} already${r.decidedAt ? ` (since ${r.decidedAt})` : ''}${r.closedBecause ? `: ${r.closedBecause}` : ''}`);
    const own = r.requester.issuer === reviewer.issuer && r.requester.subject === reviewer.subject;
    if (!reviewer.groups.some((g) => r.groups.includes(g))) {
      throw new HttpError(403, `${reviewer.subject} may not decide review ${id}: its reviewers are the group${r.groups.length > 1 ? 's' : ''} ${r.groups.join(', ')}`, {
        hint: 'ask a member of those groups (`hoop review show` names them)',
      });
    }
    if (decision === 'approve' && own && !r.selfApprove) {
      throw new HttpError(403, `${reviewer.subject} may not approve their own ${r.kind === 'access' ? 'request' : 'statement'} (review ${id})`, {
        hint: "another member of its reviewer groups must approve it; the rule's review.selfApprove is false",
      });
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
      at: new Date(realClock.now()).toISOString(),
    };
    const next: Review = { ...r, decisions: [...r.decisions, d] };
    const final = decision === 'deny' ? this.#closed(next, 'denied') : next.decisions.length >= next.approvals ? this.#closed(next, 'approved') : next;
    if (!(await this.#commit(final))) {
      const now = await this.#refresh(id);
      throw new HttpError(409, `review ${id} changed while you decided${now ? ` (it is ${now.state} now${now.closedBecause ? `: ${now.closedBecause}` : ''})` : ''}; look at it again`, {
        hint: `hoop review show ${id}`,
      });
    }
    this.#log.info('review.decision', { id, reviewer: reviewer.subject, decision });
    return this.#reviews.get(id)!;
  }

  /**
   * Records the decision of the review service `name` the review's settings named (an automated
   * reviewer, ./review-service.ts): it needs no group (the rule named it), its approval counts as
   * one, its denial decides. Nothing when the review is no longer pending.
   */
  decideAsService(id: string, name: string, decision: 'approve' | 'deny', reason: string): Promise<Review | undefined> {
    return this.#serial(id, async () => {
      const r = this.#reviews.get(id);
      if (r?.state !== 'pending') return undefined;
      const d: ReviewDecision = { subject: `service:${name}`, issuer: 'hoop', decision, reason, at: new Date(realClock.now()).toISOString() };
      const next: Review = { ...r, decisions: [...r.decisions, d] };
      const final = decision === 'deny' ? this.#closed(next, 'denied') : next.decisions.length >= next.approvals ? this.#closed(next, 'approved') : next;
      if (!(await this.#commit(final))) return undefined;
      this.#log.info('review.decision', { id, reviewer: d.subject, decision });
      return this.#reviews.get(id);
    });
  }

  /**
   * Raises a request for temporary access under the requestable access `rule` (its reviewers in
   * `settings`). Nobody waits on it in-process: the requester follows it with the API.
   */
  requestAccess(input: { requester: Identity; connection: string; rule: string; mode: 'read-only' | 'read-write'; seconds: number; reason: string; run?: string }, settings: ReviewSettings): Review {
    const { requester } = input;
    const now = realClock.now();
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
      this.#track(this.#store.save(refused, 1).catch(() => false));
      return refused;
    }
    this.#hold(review, { settle: () => undefined, settings }, settings.timeoutMs);
    this.#log.info('review.requested', { id, kind: 'access', subject: requester.subject, connection: input.connection, rule: input.rule, mode: input.mode, seconds: input.seconds });
    this.#tell('requested', review, settings);
    return review;
  }

  /** The temporary access `who` holds now: their approved access requests whose grant has not ended. */
  grantsOf(who: { issuer: string; subject: string }, now = realClock.now()): TemporaryAccess[] {
    const out: TemporaryAccess[] = [];
    for (const r of this.#reviews.values()) {
      if (r.kind !== 'access' || r.state !== 'approved' || !r.access?.until || r.rule === undefined) continue;
      if (r.requester.issuer !== who.issuer || r.requester.subject !== who.subject) continue;
      const until = Date.parse(r.access.until);
      if (until > now) out.push({ rule: r.rule, connection: r.connection, mode: r.access.mode, until, request: r.id });
    }
    return out;
  }

  /** Settles every pending review held here as withdrawn (the gateway stops: their sessions end). */
  close(): void {
    for (const id of [...this.#live.keys()]) void this.#end(id, 'withdrawn', 'the gateway stopped');
  }

  /** Waits for the store's writes so far. */
  async flushed(): Promise<void> {
    while (this.#saving.size > 0) await Promise.allSettled([...this.#saving]);
    await this.#store.flushed();
  }

  /** Runs `task` after every earlier change of review `id` made here. */
  #serial<T>(id: string, task: () => Promise<T>): Promise<T> {
    const run = (this.#chains.get(id) ?? Promise.resolve()).then(task, task);
    const tail = run.catch(() => undefined);
    this.#chains.set(id, tail);
    void tail.then(() => {
      if (this.#chains.get(id) === tail) this.#chains.delete(id);
    });
    return run;
  }

  #track<T>(p: Promise<T>): void {
    this.#saving.add(p);
    void p.finally(() => this.#saving.delete(p));
  }

  /** Ends a pending review held here, as `state` (expired, withdrawn), unless someone decided it first. */
  #end(id: string, state: 'expired' | 'withdrawn', because: string): Promise<void> {
    const done = this.#serial(id, () => this.#ending(id, state, because));
    this.#track(done);
    return done;
  }

  async #ending(id: string, state: 'expired' | 'withdrawn', because: string): Promise<void> {
    const r = this.#reviews.get(id);
    if (!this.#live.has(id) || !r || r.state !== 'pending') return;
    try {
      if (await this.#commit(this.#closed(r, state, because))) return;
      await this.#refresh(id);
    } catch (err) {
      // The store cannot be written: the statement is refused here all the same (never approved by default).
      this.#log.error('review.persist-failed', { id, error: describeError(err) });
      this.#apply(this.#closed(r, state, because), (this.#versions.get(id) ?? 0) + 1);
    }
  }

  /** `r` closed as `state` now; an approved access request becomes a grant from now on, for the time it asked. */
  #closed(r: Review, state: ReviewState, because?: string): Review {
    const now = realClock.now();
    const access = r.access && state === 'approved' ? { ...r.access, until: new Date(now + r.access.seconds * 1000).toISOString() } : r.access;
    // A detached approval whose session is still here runs in it: it is used.
    const live = this.#live.get(r.id);
    const used = state === 'approved' && r.detached && live && !live.orphaned ? { usedBy: r.session, usedAt: new Date(now).toISOString() } : {};
    return { ...r, ...used, state, decidedAt: new Date(now).toISOString(), ...(because ? { closedBecause: because } : {}), ...(access ? { access } : {}) };
  }

  /** Saves `next` one version on; applies it here when it was saved. Rejects when the store cannot be written. */
  async #commit(next: Review, settings?: ReviewSettings): Promise<boolean> {
    const version = (this.#versions.get(next.id) ?? 0) + 1;
    if (!(await this.#store.save(next, version, settings))) return false;
    this.#apply(next, version, settings, true);
    return true;
  }

  /** Reads review `id` from the store and applies it; resolves it as it now stands. */
  async #refresh(id: string): Promise<Review | undefined> {
    const s = await this.#store.get(id).catch((err: unknown) => void this.#log.warn('review.read-failed', { id, error: describeError(err) }));
    if (s && s.version > (this.#versions.get(id) ?? 0)) this.#apply(s.review, s.version, s.settings, this.#store.sweptHere?.(id, s.version));
    return this.#reviews.get(id);
  }

  /** Another gateway changed review `id`. */
  async #changed(id: string, version: number): Promise<void> {
    if (version <= (this.#versions.get(id) ?? 0)) return;
    await this.#refresh(id);
  }

  /** Keeps a review read from the store. */
  #learn(s: StoredReview): void {
    this.#reviews.delete(s.review.id);
    this.#keep(s.review);
    this.#versions.set(s.review.id, s.version);
    if (s.settings && s.review.state === 'pending') this.#settings.set(s.review.id, s.settings);
  }

  /**
   * `r` at `version` is how the review stands now: kept; when it left `pending`, the statement
   * held here (if it is) settles by it, those waiting are woken, and the gateway that made the
   * change (`mine`) tells of it.
   */
  #apply(r: Review, version: number, settings?: ReviewSettings, mine = false): void {
    if (version <= (this.#versions.get(r.id) ?? 0)) return;
    const before = this.#reviews.get(r.id);
    this.#versions.set(r.id, version);
    if (before) this.#reviews.set(r.id, r);
    else this.#keep(r);
    if (r.state === 'pending') {
      if (settings) this.#settings.set(r.id, settings);
      return;
    }
    if (before?.state !== 'pending' && before !== undefined) return;
    const live = this.#live.get(r.id);
    const known = live?.settings ?? settings ?? this.#settings.get(r.id);
    this.#settings.delete(r.id);
    if (live) {
      this.#live.delete(r.id);
      clearTimeout(live.timer);
      live.observe?.(r);
      if (r.state === 'approved' && this.#store.shared) this.#track(this.#claimed(r, version).then(live.settle));
      else live.settle(outcomeOf(r));
    }
    if (before) {
      this.#log.info('review.decided', { id: r.id, state: r.state, ...(r.closedBecause ? { because: r.closedBecause } : {}) });
      // Told once, by the gateway whose change ended it.
      if (mine) this.#tell('decided', r, known);
    }
    for (const wake of [...(this.#waiters.get(r.id) ?? [])]) wake();
  }

  /**
   * How approved statement `r` (at `version`) ends here, in a shared store: it runs once this
   * holder's claim on the approval is saved; a take-over that declared this holder dead first
   * expired it (the claim then fails, and the statement does not run), so an approval never stays
   * `approved` with nothing run. A claim whose answer is lost is read back: saved, it runs; not
   * known, the statement does not run and the review is expired in the store once it answers.
   */
  async #claimed(r: Review, version: number): Promise<ReviewOutcome> {
    const ranAt = new Date(realClock.now()).toISOString();
    const saved = await this.#store.save({ ...r, ranAt }, version + 1).catch(() => undefined);
    if (saved) return outcomeOf(r);
    const now = await this.#store.get(r.id).catch(() => undefined);
    if (now?.review.ranAt === ranAt) return outcomeOf(r);
    if (now && now.review.state !== 'approved') return outcomeOf(now.review);
    const because = 'the gateway holding its statement could not claim the approval to run it (its store did not answer); the statement did not run';
    this.#unclaim(r.id, ranAt, because);
    return { state: 'expired', afterMs: 0, because };
  }

  /** Expires approved review `id` in the store, unless another claim than this one's (`ranAt`) ran it: retried until the store answers (a few minutes at most). */
  #unclaim(id: string, ranAt: string, because: string, tries = 60): void {
    const attempt = async (): Promise<boolean> => {
      const now = await this.#store.get(id);
      if (now?.review.state !== 'approved' || (now.review.ranAt !== undefined && now.review.ranAt !== ranAt)) return true;
      const { ranAt: _claimed, ...review } = now.review;
      return this.#store.save({ ...review, state: 'expired', closedBecause: because }, now.version + 1);
    };
    const retry = (left: number): void => {
      this.#track(
        attempt().then(
          (done) => (done || left <= 0 ? undefined : retry(left - 1)),
          () => (left <= 0 ? undefined : void setTimeout(() => retry(left - 1), UNCLAIM_RETRY_MS).unref()),
        ),
      );
    };
    retry(tries);
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
    const now = realClock.now();
    for (const [id, old] of this.#reviews) {
      const holds =
        old.state === 'pending' || (old.state === 'approved' && ((old.access?.until !== undefined && Date.parse(old.access.until) > now) || (old.detached === true && old.usedBy === undefined)));
      if (!holds) {
        this.#reviews.delete(id);
        this.#versions.delete(id);
        break;
      }
    }
  }
}

/** What the statement held for `r` is told: how the review ended. */
function outcomeOf(r: Review): ReviewOutcome {
  switch (r.state) {
    case 'approved':
      return { state: 'approved', by: r.decisions.filter((d) => d.decision === 'approve').map(nameOf), windowMs: r.windowMs };
    case 'denied': {
      const d = r.decisions.find((x) => x.decision === 'deny');
      return { state: 'denied', by: d ? nameOf(d) : '?', ...(d?.reason ? { reason: d.reason } : {}) };
    }
    case 'withdrawn':
      return { state: 'withdrawn', why: r.closedBecause === 'the client cancelled the statement' ? 'cancel' : 'session-ended' };
    default:
      return {
        state: 'expired',
        afterMs: Date.parse(r.expiresAt) - Date.parse(r.createdAt),
        ...(r.closedBecause && !r.closedBecause.startsWith('not decided within') ? { because: r.closedBecause } : {}),
      };
  }
}

function mayView(r: Review, viewer: Identity, auditor: boolean): boolean {
  // An agent's run sees the reviews its own statements raised, and nothing else.
  if (viewer.run) return r.run === viewer.run.id;
  return auditor || (r.requester.issuer === viewer.issuer && r.requester.subject === viewer.subject) || viewer.groups.some((g) => r.groups.includes(g));
}

/** How a decision names its reviewer: their email, else their subject. */
function nameOf(p: ReviewPerson): string {
  return p.email ?? p.subject;
}

/** A review's change as the audit stream carries it (`review.requested`, `review.decided`): who, what and how it stands, never the SQL text. */
export function reviewAuditFields(event: 'requested' | 'decided', review: Review): ReviewNamed {
  return {
    session: review.session,
    subject: review.requester.subject,
    issuer: review.requester.issuer,
    connection: review.connection,
    ...(review.run !== undefined ? { run: review.run } : {}),
    ...(review.agent !== undefined ? { agent: review.agent } : {}),
    review: review.id,
    kind: review.kind,
    ...(review.access ? { access: review.access } : {}),
    state: review.state,
    ...(review.rule !== undefined ? { rule: review.rule } : {}),
    groups: review.groups,
    approvals: review.approvals,
    ...(event === 'requested'
      ? { expiresAt: review.expiresAt }
      : {
          decisions: review.decisions.map(({ subject, issuer, decision, reason, at }) => ({ subject, issuer, decision, ...(reason ? { reason } : {}), at })),
          ...(review.closedBecause ? { because: review.closedBecause } : {}),
        }),
  };
}

/**
 * A review as the session's recording keeps it (docs/recording-format.md, `review`): raised
 * (`pending`, with the statement and who may decide), then how it ended and by whom.
 */
export function reviewRecordingEvent(r: Review): RecordingEvent {
  const common = { t: 'review', at: realClock.now(), id: r.id, state: r.state, ...(r.usedBy !== undefined ? { usedBy: r.usedBy } : {}) };
  if (r.state === 'pending') {
    return {
      ...common,
      ...(r.rule !== undefined ? { rule: r.rule } : {}),
      reason: r.reason,
      sql: r.sql,
      ...(r.params ? { params: r.params } : {}),
      groups: r.groups,
      approvals: r.approvals,
      expiresAt: r.expiresAt,
    };
  }
  return { ...common, decisions: r.decisions, ...(r.closedBecause ? { because: r.closedBecause } : {}) };
}
