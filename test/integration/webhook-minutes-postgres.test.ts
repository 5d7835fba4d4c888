/**
 * The per-target minute limit of webhook messages (src/gateway/reviews/review-notify.ts) shared by
 * replicas on one PostgreSQL store (src/gateway/alerts/webhook-minutes-postgres.ts): two replicas sending
 * 30 review events to one target in one minute send it 10 in full and one summary of the 20 held
 * back, whichever replica held them; the next minute starts again. Clocks are injected: no test
 * waits a real minute.
 */
import { MIGRATIONS } from '../../src/gateway/migrations.js';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StoreReplica } from '../../src/gateway/replicas/replica.js';
import { PER_TARGET_PER_MINUTE, ReviewNotifier, WebhookSender } from '../../src/gateway/reviews/review-notify.js';
import { PostgresGatewayStore } from '../../src/gateway/store/store-postgres.js';
import { PostgresWebhookMinutes } from '../../src/gateway/alerts/webhook-minutes-postgres.js';
import { createLogger } from '../../src/log.js';
import type { Review } from '../../src/policy/review-record.js';
import { startPgCluster, type PgCluster } from '../harness/postgres.js';
import { eventually } from '../harness/wait.js';
import { webhookReceiver, type WebhookReceiver } from '../harness/webhook-receiver.js';

let target: WebhookReceiver;
let pg: PgCluster;
let dir: string;
const stores: PostgresGatewayStore[] = [];

const log = createLogger({ level: 'error', sink: { write: () => undefined } });

const review = (id: string): Review => ({
  id,
  state: 'pending',
  kind: 'statement',
  session: 's-1',
  connection: 'app',
  requester: { subject: 'mallory', issuer: 'https://idp', groups: [] },
  sql: 'delete from t',
  reason: 'held',
  groups: ['dba'],
  approvals: 1,
  selfApprove: false,
  windowMs: 0,
  decisions: [],
  createdAt: '2026-11-25T00:00:00Z',
  expiresAt: '2026-11-25T00:10:00Z',
});

beforeAll(async () => {
  target = await webhookReceiver();
  dir = await mkdtemp(join(tmpdir(), 'hoop-webhook-minutes-'));
  pg = await startPgCluster();
  await pg.psql('create database hoop_store');
});

afterAll(async () => {
  target.close();
  for (const s of stores) await s.close();
  await pg?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** A replica of its own (pool, data directory) on the shared store, with a sender on clock `now`. */
async function replica(name: string, now: () => number): Promise<WebhookSender> {
  const store = await PostgresGatewayStore.open(pg.url(pg.superuser, { database: 'hoop_store' }), MIGRATIONS);
  stores.push(store);
  const replicaDir = join(dir, name);
  await mkdir(replicaDir, { recursive: true });
  const r = await StoreReplica.create(store.pool, { dataDir: replicaDir, url: `https://${name}.test`, log });
  return new WebhookSender({ log, resolveUrl: async (u) => u, now, minutes: new PostgresWebhookMinutes(r, now), summaryEveryMs: 50 });
}

describe('webhook messages per target and minute, across replicas', () => {
  it('two replicas send one target 10 messages of a minute in full and one summary of the rest; another target is not held back', async () => {
    // Both replicas' clocks: 10 s into a minute.
    let now = 29_000_000 * 60_000 + 10_000;
    const clock = (): number => now;
    const [a, b] = [await replica('a', clock), await replica('b', clock)];
    const notifiers = [new ReviewNotifier(a), new ReviewNotifier(b)];
    const storm = [{ url: `${target.base}/storm`, format: 'json' as const }];
    const quiet = [{ url: `${target.base}/quiet`, format: 'json' as const }];
    for (let i = 0; i < 30; i++) notifiers[i % 2]!.notify(storm, 'requested', review(`rv-${i}`));
    notifiers[1]!.notify(quiet, 'requested', review('rv-quiet'));
    await Promise.all([a.settled(), b.settled()]);
    const at = (path: string) => target.received.filter((r) => r.path === path);
    const full = (): unknown[] => at('/storm').filter((r) => r.body.event === 'review.requested');
    const summaries = (): Array<Record<string, unknown>> =>
      at('/storm')
        .filter((r) => r.body.event === 'notifications.held')
        .map((r) => r.body);
    expect(full()).toHaveLength(PER_TARGET_PER_MINUTE);
    expect(summaries()).toEqual([]);
    expect(at('/quiet')).toHaveLength(1);

    // The minute is over (and its grace for slower clocks): one summary of the 20 held back, from one of the two.
    now += 60_000;
    await eventually(() => expect(summaries()).toEqual([expect.objectContaining({ count: 20, since: new Date(now - 70_000).toISOString() })]));
    await Promise.all([a.settled(), b.settled()]);
    expect(summaries()).toHaveLength(1);

    // The next minute starts again: its messages are sent in full.
    notifiers[0]!.notify(storm, 'decided', { ...review('rv-next'), state: 'approved' });
    notifiers[1]!.notify(storm, 'decided', { ...review('rv-next-2'), state: 'approved' });
    await Promise.all([a.settled(), b.settled()]);
    expect(at('/storm').filter((r) => r.body.event === 'review.decided')).toHaveLength(2);
    a.close();
    b.close();
    await Promise.all([a.settled(), b.settled()]);
    expect(summaries()).toHaveLength(1);
    expect(full()).toHaveLength(PER_TARGET_PER_MINUTE);
  });
});
