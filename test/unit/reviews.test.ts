/**
 * The review registry on its own: who may see and decide, approvals counted once per reviewer, a
 * denial deciding, the timeout, and a gateway restart expiring what was pending (never approving
 * it), read back from the history file.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { type Review, ReviewRegistry, type ReviewStore, type StoredReview } from '../../src/gateway/reviews/reviews.js';
import type { Identity } from '../../src/identity.js';
import { silentLogger } from '../../src/log.js';
import { REVIEW_DEFAULTS } from '../../src/policy/schema.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'hoop-reviews-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const who = (subject: string, groups: string[] = []): Identity => ({ subject, issuer: 'https://idp', kind: 'user', groups, expiresAt: new Date(Date.now() + 3_600_000), claims: {} });
const ask = (settings: Partial<typeof REVIEW_DEFAULTS> & { groups?: string[] } = {}) => ({
  sql: 'DELETE FROM t',
  digest: 'd1',
  rule: 'r',
  reason: 'rule "r" matched',
  settings: { ...REVIEW_DEFAULTS, groups: ['dba'], ...settings },
});
/** What `p` rejects with (undefined when it resolves). */
const fails = (p: Promise<unknown>): Promise<unknown> =>
  p.then(
    () => undefined,
    (e: unknown) => e,
  );
const origin = { session: 'sess-1234', connection: 'app', requester: who('alice') };

describe('the review registry', () => {
  it('lets reviewers decide, counts distinct approvals, and shows each review only to those it concerns', async () => {
    const reg = await ReviewRegistry.open(dir, silentLogger);
    const p = reg.request(ask({ approvals: 2 }), origin);
    expect(reg.list(who('mallory'), false)).toEqual([]);
    expect(reg.list(who('alice'), false)).toHaveLength(1);
    expect(reg.list(who('audrey'), true)).toHaveLength(1);
    expect(((await fails(reg.decide(p.id, who('mallory'), false, 'approve'))) as { code: string }).code).toBe('HOOP_REVIEW_UNKNOWN');
    expect(((await fails(reg.decide(p.id, who('alice', ['dba']), false, 'approve'))) as Error).message).toContain('may not approve their own statement');
    await reg.decide(p.id, who('bob', ['dba']), false, 'approve');
    expect(((await fails(reg.decide(p.id, who('bob', ['dba']), false, 'approve'))) as { status: number }).status).toBe(409);
    expect(reg.get(p.id, who('alice'), false).state).toBe('pending');
    await reg.decide(p.id, who('carol', ['dba']), false, 'approve');
    expect(await p.decided).toEqual({ state: 'approved', by: ['bob', 'carol'], windowMs: 0 });
    await reg.flushed();
  });

  it('lets a viewer long-poll at most 20 reviews at once', async () => {
    const reg = await ReviewRegistry.open(dir, silentLogger);
    const ids = Array.from({ length: 21 }, (_, i) => reg.request(ask(), { ...origin, requester: who(`user${i}`) }).id);
    const waits = ids.slice(0, 20).map((id) => reg.wait(id, who('audrey'), true, 200));
    await expect(reg.wait(ids[20]!, who('audrey'), true, 200)).rejects.toMatchObject({ status: 429 });
    await Promise.all(waits);
    expect((await reg.wait(ids[20]!, who('audrey'), true, 10)).state).toBe('pending');
    reg.close();
    await reg.flushed();
  });

  it('one denial decides; the timeout expires; a restart expires what was pending', async () => {
    const reg = await ReviewRegistry.open(dir, silentLogger);
    const denied = reg.request(ask(), origin);
    await reg.decide(denied.id, who('bob', ['dba']), false, 'deny', 'no');
    expect(await denied.decided).toEqual({ state: 'denied', by: 'bob', reason: 'no' });
    const slow = reg.request(ask({ timeoutMs: 50 }), origin);
    expect(await slow.decided).toEqual({ state: 'expired', afterMs: 50 });
    const left = reg.request(ask(), origin);
    await reg.flushed();

    const after = await ReviewRegistry.open(dir, silentLogger);
    const r = after.get(left.id, who('alice'), false);
    expect(r).toMatchObject({ state: 'expired', closedBecause: 'the gateway restarted while it waited; its statement did not run' });
    expect(after.get(denied.id, who('alice'), false).state).toBe('denied');
    await after.flushed();
    const lines = (await readFile(join(dir, 'reviews.jsonl'), 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { id: string; state: string });
    expect(lines.filter((l) => l.id === left.id).map((l) => l.state)).toEqual(['pending', 'expired']);
  });

  it("expires a review not decided within its timeout, at the timeout and not before (on a clock of the test's own)", async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    try {
      const reg = await ReviewRegistry.open(dir, silentLogger);
      const r = reg.request(ask({ timeoutMs: 600_000 }), origin);
      let decided: unknown;
      void r.decided.then((d) => (decided = d));
      await reg.flushed();
      await vi.advanceTimersByTimeAsync(599_999);
      await reg.flushed();
      expect(decided).toBeUndefined();
      expect(reg.get(r.id, who('alice'), false).state).toBe('pending');
      await vi.advanceTimersByTimeAsync(1);
      expect(await r.decided).toEqual({ state: 'expired', afterMs: 600_000 });
      expect(reg.get(r.id, who('alice'), false)).toMatchObject({ state: 'expired', closedBecause: 'not decided within 600 s' });
      reg.close();
      await reg.flushed();
    } finally {
      vi.useRealTimers();
    }
  });
});

/** A shared store in memory that can stop answering: before a claim is saved (`down`), or after, its answer lost (`lost-reply`). */
class FlakyStore implements ReviewStore {
  readonly shared = true;
  rows = new Map<string, StoredReview>();
  mode: 'ok' | 'down' | 'lost-reply' = 'ok';
  async load(): Promise<StoredReview[]> {
    return [...this.rows.values()];
  }
  async save(r: Review, version: number): Promise<boolean> {
    if (this.mode === 'down') throw new Error('the store does not answer');
    if ((this.rows.get(r.id)?.version ?? 0) !== version - 1) return false;
    this.rows.set(r.id, { review: structuredClone(r), version });
    if (r.ranAt && this.mode === 'lost-reply') {
      this.mode = 'down';
      throw new Error('the connection reset after the commit');
    }
    return true;
  }
  async get(id: string): Promise<StoredReview | undefined> {
    if (this.mode === 'down') throw new Error('the store does not answer');
    return this.rows.get(id);
  }
  async flushed(): Promise<void> {}
}

describe('an approval its holder cannot claim in a shared store', () => {
  for (const how of ['down', 'lost-reply'] as const)
    it(`runs nothing, tells the client, and is expired in the store once it answers (the store ${how === 'down' ? 'down as the claim is saved' : 'losing the answer to the saved claim'})`, async () => {
      vi.useFakeTimers({ toFake: ['setTimeout'] });
      try {
        const store = new FlakyStore();
        const reg = await ReviewRegistry.open(dir, silentLogger, store);
        const p = reg.request(ask(), origin);
        await vi.waitFor(() => expect(store.rows.has(p.id)).toBe(true));
        const approving = reg.decide(p.id, who('bob', ['dba']), false, 'approve');
        // The approval is saved; the store fails at the holder's claim that follows it.
        store.mode = how === 'down' ? 'ok' : 'lost-reply';
        if (how === 'down') {
          const save = store.save.bind(store);
          store.save = async (r, v) => {
            if (r.ranAt) store.mode = 'down';
            return save(r, v);
          };
        }
        await approving.catch(() => undefined);
        expect(await p.decided).toMatchObject({ state: 'expired', because: expect.stringContaining('could not claim the approval') });
        // Before: the row stayed approved (no claim), or approved and claimed, though nothing ran.
        store.mode = 'ok';
        await vi.advanceTimersByTimeAsync(5_000);
        await vi.waitFor(() => expect(store.rows.get(p.id)?.review).toMatchObject({ state: 'expired', closedBecause: expect.stringContaining('did not run') }));
        expect(store.rows.get(p.id)?.review.ranAt).toBeUndefined();
      } finally {
        vi.useRealTimers();
      }
    });
});
