/**
 * Alerts in the PostgreSQL store, shared by every replica: the events each alert rule counts
 * (`hoop.alert_hits`, per rule and subject, older than a week deleted) and the alerts raised
 * (`hoop.alerts`; a unique index keeps one open per rule and subject, so two replicas counting the
 * same burst raise it once). A raised or changed alert is told to every replica
 * (`NOTIFY hoop_alerts '<id>'`): each keeps it, and ends the sessions it suspends there.
 *
 * @see https://www.postgresql.org/docs/current/sql-notify.html
 * @see docs/internals.md (§4.7)
 */
import type pg from 'pg';
import * as z from 'zod';
import { alertEvidenceSchema, raisedAlertSchema, type AlertEvidence, type RaisedAlert } from '../../api/answers.js';
import { storedRow } from '../../stored-record.js';
import { type AlertStore, KEEP_CLEARED_MS } from './alerts.js';
import type { StoreReplica } from '../replicas/replica.js';
import { storeError, type Migration } from '../store/store-postgres.js';

/** The alerts' steps of the store's schema. */
export const ALERTS_MIGRATIONS: readonly Migration[] = [
  {
    version: 7,
    name: 'alerts, counted by every replica together',
    // The events an alert rule counts (per rule and subject), and the alerts raised: one open per rule and subject, whichever replica raises it.
    sql: `
      create table hoop.alert_hits (
        rule     text not null,
        key      text not null,
        at       timestamptz not null default now(),
        evidence jsonb not null
      );
      create index alert_hits_by_key on hoop.alert_hits (rule, key, at);
      create table hoop.alerts (
        id         text primary key,
        rule       text not null,
        key        text not null,
        state      text not null,
        alert      jsonb not null,
        updated_at timestamptz not null default now()
      );
      create unique index alerts_one_open on hoop.alerts (rule, key) where state = 'open';
      create index alerts_updated on hoop.alerts (updated_at);`,
  },
  {
    version: 8,
    name: 'alerts that count rows',
    // What one event weighs in its rule's window: 1, or the rows a statement read (`rows-read`).
    sql: 'alter table hoop.alert_hits add column weight bigint not null default 1;',
  },
];

const CHANNEL = 'hoop_alerts';

/** The evidence of a rule's window, as `count` reads it from `hoop.alert_hits`. */
const EVIDENCE = z.array(alertEvidenceSchema);

/** A row of `hoop.alerts`: its alert as the store holds it. */
interface Row {
  id: string;
  alert: unknown;
}

/** A row's alert, read with its schema: a row this gateway cannot read fails the read (STORE_UNAVAILABLE) rather than be acted on. */
const alertOf = (r: Row): RaisedAlert => storedRow(raisedAlertSchema, r.alert, `alert ${r.id}`);

/** See the module documentation. */
export class PostgresAlertStore implements AlertStore {
  readonly #replica: StoreReplica;
  readonly #changes: Array<(alert: RaisedAlert) => void> = [];

  constructor(replica: StoreReplica) {
    this.#replica = replica;
    // A notification this replica cannot read now is read again at its next catch-up.
    replica.on(CHANNEL, (id) => void this.#tell(id).catch(() => undefined));
    // Notifications sent while this replica was not listening are lost: what changed lately is read again.
    replica.onCatchUp(async () => {
      for (const a of await this.#recent("updated_at > now() - interval '1 hour' or state = 'open'")) for (const fn of this.#changes) fn(a);
    });
    replica.onBeat(() =>
      this.#run((pool) => pool.query("delete from hoop.alert_hits where at < now() - interval '7 days'"), 'forget old alert counts').then(
        () => undefined,
        () => undefined,
      ),
    );
  }

  load(): Promise<RaisedAlert[]> {
    return this.#recent(`state = 'open' or updated_at > now() - make_interval(secs => ${KEEP_CLEARED_MS / 1000})`);
  }

  async count(rule: string, key: string, evidence: AlertEvidence, withinMs: number, _need: number, max: number, weight = 1): Promise<{ count: number; evidence: AlertEvidence[] }> {
    const r = await this.#run(
      (pool) =>
        pool.query<{ count: string; evidence: unknown }>(
          `with hit as (insert into hoop.alert_hits (rule, key, evidence, weight) values ($1, $2, $3, $6) returning at, evidence, weight),
                counted as (select at, evidence, weight from hoop.alert_hits where rule = $1 and key = $2 and at > now() - make_interval(secs => $4::float8) union all select at, evidence, weight from hit)
           select sum(weight) as count, (select jsonb_agg(evidence order by at) from (select at, evidence from counted order by at desc limit $5) newest) as evidence from counted`,
          [rule, key, JSON.stringify(evidence), withinMs / 1000, max, weight],
        ),
      'count an alert rule',
    );
    const counted = r.rows[0]?.evidence;
    return { count: Number(r.rows[0]?.count ?? 0), evidence: counted ? storedRow(EVIDENCE, counted, `evidence of alert rule ${rule}`) : [evidence] };
  }

  async reset(rule: string, key: string): Promise<void> {
    await this.#run((pool) => pool.query('delete from hoop.alert_hits where rule = $1 and key = $2', [rule, key]), 'reset an alert rule');
  }

  async openFor(rule: string, key: string): Promise<RaisedAlert | undefined> {
    const r = await this.#run((pool) => pool.query<Row>("select id, alert from hoop.alerts where rule = $1 and key = $2 and state = 'open'", [rule, key]), 'read the alerts');
    return r.rows[0] ? alertOf(r.rows[0]) : undefined;
  }

  async open(alert: RaisedAlert, key: string): Promise<boolean> {
    const r = await this.#run(
      (pool) =>
        pool.query(
          `with x as (insert into hoop.alerts (id, rule, key, state, alert) values ($1, $2, $3, 'open', $4) on conflict (rule, key) where state = 'open' do nothing returning id)
           select pg_notify('${CHANNEL}', id) from x`,
          [alert.id, alert.rule, key, JSON.stringify(alert)],
        ),
      'raise an alert',
    );
    return r.rowCount === 1;
  }

  async save(alert: RaisedAlert, onlyIfOpen: boolean): Promise<boolean> {
    const r = await this.#run(
      (pool) =>
        pool.query(
          `with x as (update hoop.alerts set state = $2, alert = $3, updated_at = now() where id = $1${onlyIfOpen ? " and state = 'open'" : ''} returning id)
           select pg_notify('${CHANNEL}', id) from x`,
          [alert.id, alert.state, JSON.stringify(alert)],
        ),
      'save an alert',
    );
    return r.rowCount === 1;
  }

  onChange(fn: (alert: RaisedAlert) => void): void {
    this.#changes.push(fn);
  }

  /** Tells this replica's monitor of alert `id` as it now stands. */
  async #tell(id: string): Promise<void> {
    const [a] = await this.#recent('id = $1', [id]);
    if (a) for (const fn of this.#changes) fn(a);
  }

  async #recent(where: string, values: unknown[] = []): Promise<RaisedAlert[]> {
    const r = await this.#run((pool) => pool.query<Row>(`select id, alert from hoop.alerts where ${where} order by updated_at`, values), 'read the alerts');
    return r.rows.map(alertOf);
  }

  async #run<T>(fn: (pool: pg.Pool) => Promise<T>, doing: string): Promise<T> {
    try {
      return await fn(this.#replica.pool);
    } catch (err) {
      throw storeError(err, doing);
    }
  }
}
