/**
 * The PostgreSQL store's jsonb columns read back with their schemas (src/stored-record.ts), against a
 * real cluster: a row of another shape (a field the gateway acts on of the wrong type) makes the
 * read that meets it fail, STORE_UNAVAILABLE naming the record and the field, rather than be acted
 * on; rows of the right shape are read as ever, a field a newer gateway added kept. The take-over
 * of a dead replica's sessions ends an unreadable one all the same and says so.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCode, HoopError } from '../../src/errors.js';
import { keyOfAlert } from '../../src/gateway/alerts/alerts.js';
import { PostgresAlertStore } from '../../src/gateway/alerts/alerts-postgres.js';
import { PostgresDirectStore } from '../../src/gateway/credentials/direct-credentials-postgres.js';
import { MIGRATIONS } from '../../src/gateway/migrations.js';
import { PostgresClientRecordStore } from '../../src/gateway/records/client-records-postgres.js';
import { PostgresSessionArchive, takeOverSessions } from '../../src/gateway/records/recordings-postgres.js';
import { StoreReplica } from '../../src/gateway/replicas/replica.js';
import { PostgresReviewStore } from '../../src/gateway/reviews/reviews-postgres.js';
import { PostgresRunStore } from '../../src/gateway/runs/runs-postgres.js';
import { PostgresGatewayStore } from '../../src/gateway/store/store-postgres.js';
import { REVIEW_DEFAULTS } from '../../src/policy/schema.js';
import { startPgCluster, type PgCluster } from '../harness/postgres.js';
import { loggedLines, storedAlert, storedClientState, storedDirect, storedReview, storedRun, storedSummary } from '../harness/stored-records.js';

let cluster: PgCluster;
let dir: string;
let store: PostgresGatewayStore;
let replica: StoreReplica;
const { log, lines } = loggedLines();

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'hoop-stored-records-pg-'));
  cluster = await startPgCluster();
  await cluster.psql('create database hoop_store');
  store = await PostgresGatewayStore.open(cluster.url(cluster.superuser, { database: 'hoop_store' }), MIGRATIONS);
  replica = await StoreReplica.create(store.pool, { dataDir: dir, url: 'https://a.test', log });
});

afterAll(async () => {
  await store?.close();
  await cluster?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const sql = (text: string, values: unknown[] = []) => store.pool.query(text, values);

/** What `p` rejects with; fails the test when it resolves. */
async function refusal(p: Promise<unknown>): Promise<HoopError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, 'the read was refused').toBeInstanceOf(HoopError);
  expect((err as HoopError).code).toBe(ErrorCode.STORE_UNAVAILABLE);
  return err as HoopError;
}

describe("the store's records, read back with their schemas", () => {
  it('hoop.reviews: a review whose approvals is a text, or whose settings list no groups, is refused naming it; a good one is read, a newer field kept', async () => {
    const reviews = new PostgresReviewStore(replica);
    const [good, bad, badSettings] = ['rv-1111111111111111', 'rv-2222222222222222', 'rv-3333333333333333'];
    const settings = { ...REVIEW_DEFAULTS, groups: ['dba'] };
    expect(await reviews.save({ ...storedReview(good), addedLater: 1 } as ReturnType<typeof storedReview>, 1, settings)).toBe(true);
    expect(await reviews.save(storedReview(bad), 1, settings)).toBe(true);
    expect(await reviews.save(storedReview(badSettings), 1, settings)).toBe(true);
    await sql(`update hoop.reviews set review = jsonb_set(review, '{approvals}', '"two"') where id = $1`, [bad]);
    await sql(`update hoop.reviews set settings = jsonb_set(settings, '{groups}', '"dba"') where id = $1`, [badSettings]);

    expect(await reviews.get(good)).toMatchObject({ version: 1, review: { id: good, addedLater: 1 }, settings: { groups: ['dba'] } });
    const err = await refusal(reviews.get(bad));
    expect(err.message).toMatch(new RegExp(`^the store holds review ${bad} that this gateway cannot read: approvals: `));
    expect(err.hint).toMatch(/same version on every replica/);
    expect((await refusal(reviews.get(badSettings))).message).toMatch(new RegExp(`review ${badSettings} \\(its settings\\) that this gateway cannot read: groups: `));
    // Loading all of them meets the bad row: refused, never loaded without it or with it as it is.
    expect((await refusal(reviews.load())).message).toContain('cannot read');
    await sql('delete from hoop.reviews where id = any($1)', [[bad, badSettings]]);
    expect((await reviews.load()).map((s) => s.review.id)).toEqual([good]);
  });

  it('hoop.alerts and hoop.alert_hits: an alert whose suspend is a text, and evidence whose time is a number, are refused naming them', async () => {
    const alerts = new PostgresAlertStore(replica);
    const good = storedAlert('alert-good');
    expect(await alerts.open(good, keyOfAlert(good))).toBe(true);
    await sql(`insert into hoop.alerts (id, rule, key, state, alert) values ('alert-bad', 'other', 'k', 'open', $1)`, [JSON.stringify({ ...storedAlert('alert-bad'), suspend: 'yes' })]);
    expect(await alerts.openFor(good.rule, keyOfAlert(good))).toMatchObject({ id: 'alert-good', suspend: true });
    expect((await refusal(alerts.openFor('other', 'k'))).message).toMatch(/^the store holds alert alert-bad that this gateway cannot read: suspend: /);
    expect((await refusal(alerts.load())).message).toContain('alert-bad');
    await sql(`delete from hoop.alerts where id = 'alert-bad'`);
    expect((await alerts.load()).map((a) => a.id)).toEqual(['alert-good']);

    await sql(`insert into hoop.alert_hits (rule, key, evidence) values ('counted', 'k', '{"at": 5}')`);
    const evidence = { at: new Date().toISOString(), session: 'session-1234' };
    expect((await refusal(alerts.count('counted', 'k', evidence, 60_000, 5, 10))).message).toMatch(/evidence of alert rule counted that this gateway cannot read: 0\.at: /);
    expect(await alerts.count('elsewhere', 'k', evidence, 60_000, 5, 10)).toEqual({ count: 1, evidence: [evidence] });
  });

  it("hoop.runs: a run whose owner's kind is unknown is refused naming it, by id and by credential", async () => {
    const runs = new PostgresRunStore(replica);
    const [good, bad] = [storedRun('run-good000000000000', 'a'), storedRun('run-bad0000000000000', 'b')];
    await runs.create(good, 100);
    await runs.create(bad, 100);
    await sql(`update hoop.runs set run = jsonb_set(run, '{owner,kind}', '"robot"') where id = $1`, [bad.id]);
    expect(await runs.get(good.id)).toMatchObject({ id: good.id, owner: { subject: 'alice' }, tokenHash: good.tokenHash });
    expect((await refusal(runs.get(bad.id))).message).toMatch(new RegExp(`^the store holds run ${bad.id} that this gateway cannot read: owner\\.kind: `));
    await refusal(runs.find('run', bad.tokenHash));
  });

  it('hoop.direct_credentials: a credential whose verifier iterations is a text is refused naming it', async () => {
    const directs = new PostgresDirectStore(replica);
    const [good, bad] = [storedDirect('dc_good000000000000000000'), storedDirect('dc_bad0000000000000000000')];
    await directs.create(good, 100);
    await directs.create(bad, 100);
    await sql(`update hoop.direct_credentials set record = jsonb_set(record, '{scram,iterations}', '"many"') where id = $1`, [bad.id]);
    expect(await directs.get(good.id)).toMatchObject({ id: good.id, scram: { iterations: 4096 } });
    expect((await refusal(directs.get(bad.id))).message).toMatch(new RegExp(`^the store holds direct credential ${bad.id} that this gateway cannot read: scram\\.iterations: `));
  });

  it("hoop.client_records: a record's state of an unknown kind is refused naming the record, in a listing and under its hold", async () => {
    const records = await PostgresClientRecordStore.open(replica, dir);
    await sql(`insert into hoop.client_records (kind, id, state) values ('sessions', 'session-good', $1), ('sessions', 'session-bad0', $2)`, [
      JSON.stringify(storedClientState('sessions', 'session-good')),
      JSON.stringify({ ...storedClientState('sessions', 'session-bad0'), state: 'done' }),
    ]);
    expect([...(await records.states('sessions', ['session-good'])).keys()]).toEqual(['session-good']);
    expect((await refusal(records.states('sessions', ['session-good', 'session-bad0']))).message).toMatch(
      /^the store holds CLI's record sessions\/session-bad0 that this gateway cannot read: state: /,
    );
    await refusal(records.update('sessions', 'session-bad0', (held) => held.state()));
  });

  it('hoop.sessions: a summary whose start is not a time is refused naming it; the take-over ends it all the same and says so', async () => {
    const archive = new PostgresSessionArchive(replica, dir, log);
    const insert = (id: string, summary: unknown, upstream: unknown = null, replicaId = 'r-alive', ended = true) =>
      sql('insert into hoop.sessions (id, replica, started_at, ended_at, summary, upstream) values ($1, $2, now(), $3, $4, $5)', [
        id,
        replicaId,
        ended ? new Date() : null,
        JSON.stringify(summary),
        upstream === null ? null : JSON.stringify(upstream),
      ]);
    await insert('session-good', storedSummary('session-good'));
    await insert('session-bad0', { ...storedSummary('session-bad0'), startedAt: 'yesterday' });
    expect(await archive.session('session-good')).toMatchObject({ id: 'session-good', recording: 'complete' });
    expect((await refusal(archive.session('session-bad0'))).message).toMatch(/^the store holds session session-bad0 that this gateway cannot read: startedAt: /);
    await refusal(archive.sessions());

    const running = { ...storedSummary('session-left'), endedAt: undefined, reason: 'running', recording: 'running' };
    await insert('session-left', running, { processId: 42, secretKey: 7 }, 'r-dead', false);
    await insert('session-odd0', { ...running, id: 'session-odd0', connection: ['app'] }, null, 'r-dead', false);
    const client = await store.pool.connect();
    let ended: Awaited<ReturnType<typeof takeOverSessions>>;
    try {
      await client.query('begin');
      ended = await takeOverSessions(client, 'r-dead', log);
      await client.query('commit');
    } finally {
      client.release();
    }
    expect(ended.map((e) => [e.summary.id, e.summary.reason, e.summary.recording, e.upstream])).toEqual([['session-left', 'gateway-stopped', 'truncated', { processId: 42, secretKey: 7 }]]);
    expect(lines.filter((l) => l.event === 'replica.session-unreadable')).toEqual([
      expect.objectContaining({ level: 'error', replica: 'r-dead', session: 'session-odd0', error: expect.stringContaining('connection') }),
    ]);
    expect((await sql(`select count(*)::int as n from hoop.sessions where replica = 'r-dead' and ended_at is null`)).rows[0]).toEqual({ n: 0 });
    await archive.close();
  });
});
