/**
 * The gateway's parts, built in order and stopped in the reverse order by one {@link Disposer}:
 * the state store, the policy repo, this replica among the others (with a PostgreSQL store), the
 * recordings and the CLIs' records, the audit stream, reviews (and their notifications), runs,
 * direct credentials, and the CancelRequest registry. A part that fails to start stops those built before it.
 */
import { checkTrustedPaths, keepOthersFromWriting, trustedPathsOf } from '../../config/trusted-paths.js';
import * as z from 'zod';
import type { Clock } from '../../clock.js';
import { describeError } from '../../errors.js';
import type { Logger } from '../../log.js';
import { CancelRegistry, type CancelAsker } from '../../postgres/gateway/cancel-registry.js';
import { upstreamTarget } from '../../postgres/gateway/session-relay.js';
import { cancelUpstreamPostgres } from '../../postgres/gateway/upstream.js';
import type { ConnectionConfig } from '../../config/connection.js';
import { parseSecretRef, resolveSecret } from '../../config/secrets.js';
import { dirname } from 'node:path';
import { mkdir } from 'node:fs/promises';
import { AuditStream } from '../audit/audit.js';
import { PostgresAuditLedger } from '../audit/audit-postgres.js';
import { ClientRecords } from '../records/client-records.js';
import { PostgresClientRecordStore } from '../records/client-records-postgres.js';
import type { GatewayConfig } from '../config/config.js';
import { GatewayPolicySource } from '../config/policy-source.js';
import { RecordingDisk } from '../records/recording-disk.js';
import { GatewayRecordings, upstreamKeySchema, type UpstreamKey } from '../records/recordings.js';
import { cutStoppedJournals, PostgresSessionArchive, stoppedWithJournals, takeOverSessions } from '../records/recordings-postgres.js';
import { StoreReplica } from '../replicas/replica.js';
import { ReviewNotifier, WebhookSender } from '../reviews/review-notify.js';
import { PostgresWebhookMinutes } from '../alerts/webhook-minutes-postgres.js';
import { ReviewServices } from '../reviews/review-service.js';
import { AlertMonitor, FileAlertStore } from '../alerts/alerts.js';
import { PostgresAlertStore } from '../alerts/alerts-postgres.js';
import { GatewayEvents } from '../audit/events.js';
import { ReviewRegistry } from '../reviews/reviews.js';
import { PostgresReviewStore } from '../reviews/reviews-postgres.js';
import { DirectCredentials, FileDirectStore } from '../credentials/direct-credentials.js';
import { PostgresDirectStore } from '../credentials/direct-credentials-postgres.js';
import { FileRunStore, RunRegistry } from '../runs/runs.js';
import { PostgresRunStore } from '../runs/runs-postgres.js';
import { FileGatewayStore, type GatewayStore } from '../store/store.js';
import { PostgresGatewayStore, type Migration } from '../store/store-postgres.js';
import { TokenVerifier } from '../identity/verify-token.js';
import { reviewAuditFields } from '../reviews/reviews.js';

/** Steps that undo what was started, run in the reverse order (a failing one is logged, the rest still run). */
export class Disposer {
  readonly #steps: Array<() => unknown> = [];

  constructor(private readonly log: Logger) {}

  /** Adds a step, to run before every step added earlier. */
  defer(step: () => unknown): void {
    this.#steps.push(step);
  }

  async dispose(): Promise<void> {
    for (const step of this.#steps.splice(0).reverse()) {
      try {
        await step();
      } catch (err) {
        this.log.error('gateway.stop-failed', { error: describeError(err) });
      }
    }
  }
}

/** What the gateway is made of, once started. */
export interface GatewayParts {
  config: GatewayConfig;
  log: Logger;
  env: NodeJS.ProcessEnv;
  verifier: TokenVerifier;
  store: GatewayStore;
  /** With `config.policy`: the config repo the policy comes from. */
  policySource: GatewayPolicySource | undefined;
  /** With a PostgreSQL store: this replica among the others. */
  replica: StoreReplica | undefined;
  /** With `recording.enabled`. */
  recordings: GatewayRecordings | undefined;
  clientRecords: ClientRecords | undefined;
  /** The audit stream, when the configuration has one. */
  audit: AuditStream | undefined;
  /** Where security events are emitted: to the audit stream and the alerts. */
  events: GatewayEvents;
  alerts: AlertMonitor;
  reviews: ReviewRegistry;
  runs: RunRegistry;
  directs: DirectCredentials;
  cancels: CancelRegistry;
  /** The free space of the data disk: sessions and client records refused, and recorded statements stopped, when it runs low. */
  disk: RecordingDisk;
}

/** What {@link buildParts} may be given instead of what the configuration says (tests). */
export interface PartOverrides {
  verifier?: TokenVerifier | undefined;
  store?: GatewayStore | undefined;
  clientRecordDiskReserveBytes?: number | undefined;
  /** The clock runs and direct credentials are begun, kept alive and judged by (default: the real one). */
  clock?: Clock | undefined;
  /** The gateway's URL scheme, for the replica's address. */
  scheme: 'https' | 'http';
  /** The shared store's schema, each feature's steps (../migrations.ts). */
  migrations: readonly Migration[];
}

/** Where replicas tell each other of CancelRequests (`{ processId, secretKey, subject, issuer }`). */
const CANCEL_CHANNEL = 'hoop_cancel';

/** Builds the parts; `disposer` stops them (and stops those built so far when one fails: the caller disposes). */
export async function buildParts(config: GatewayConfig, log: Logger, env: NodeJS.ProcessEnv, o: PartOverrides, disposer: Disposer): Promise<GatewayParts> {
  keepOthersFromWriting();
  // Made before it is checked: one another user made first (in a sticky /tmp) is theirs, and refused.
  await mkdir(config.dataDir, { recursive: true, mode: 0o700 });
  checkTrustedPaths(trustedPathsOf(config));
  const verifier = o.verifier ?? new TokenVerifier(config.issuers);
  const store = o.store ?? (config.store.kind === 'postgres' ? await PostgresGatewayStore.open(await resolveSecret(config.store.url, env), o.migrations) : await FileGatewayStore.open(config.dataDir));
  if (!o.store) disposer.defer(() => store.close());
  const policySource = config.policy ? await GatewayPolicySource.open(config.policy, { log, env }) : undefined;
  if (policySource) disposer.defer(() => policySource.close());
  const replica = store instanceof PostgresGatewayStore ? await startReplica(config, log, store, o.scheme) : undefined;
  if (replica) disposer.defer(() => replica.stop());
  const { recordings, clientRecords } = config.recording.enabled ? await openRecordings(config, log, env, replica, o, disposer) : { recordings: undefined, clientRecords: undefined };
  if (recordings) await keepRetention(recordings, clientRecords, policySource, log, disposer);
  const audit = config.audit ? await openAudit(config, log, env, replica) : undefined;
  if (audit) disposer.defer(() => audit.close()); // the ended sessions' last events
  const events = new GatewayEvents(audit, log, config.audit?.statements);
  // With a shared store, every replica counts one target's messages per minute together.
  const webhooks = new WebhookSender({
    log,
    ...(replica ? { minutes: new PostgresWebhookMinutes(replica) } : {}),
    resolveUrl: async (url) => {
      const ref = parseSecretRef(url, dirname(config.file));
      return ref ? resolveSecret(ref, env) : url;
    },
  });
  disposer.defer(() => webhooks.close());
  const reviews = await openReviews(config, log, env, replica, events, webhooks);
  disposer.defer(async () => {
    reviews.close();
    await reviews.flushed();
  });
  const runs = new RunRegistry(replica ? new PostgresRunStore(replica) : await FileRunStore.open(config.dataDir, log, o.clock), log, o.clock);
  disposer.defer(() => runs.close());
  runs.onEnd((run) => events.emit('run.end', { run: run.id, subject: run.owner.subject, issuer: run.owner.issuer, agent: run.agent, via: run.via, reason: run.endReason ?? 'ended' }));
  const directs = new DirectCredentials(replica ? new PostgresDirectStore(replica) : await FileDirectStore.open(config.dataDir, log, o.clock), log, o.clock);
  disposer.defer(() => directs.close());
  // A run's direct credentials end with it (its sessions end with the run already).
  runs.onEnd((run) => void directs.endRun(run.id));
  const cancels = new CancelRegistry();
  const connectionNamed = (name: string): ConnectionConfig | undefined => (policySource?.current().policy.connections ?? config.connections).find((c) => c.name === name);
  if (replica) shareWithReplicas(replica, cancels, events, log, connectionNamed);
  const alertStore = replica ? new PostgresAlertStore(replica) : new FileAlertStore(config.dataDir, log);
  const alerts = await AlertMonitor.open({ store: alertStore, policy: () => policySource?.current().policy, events, webhooks, log });
  disposer.defer(async () => {
    await alerts.counted();
    if (alertStore instanceof FileAlertStore) await alertStore.flushed();
  });
  await replica?.begin();
  const disk = new RecordingDisk({ dir: config.dataDir, floor: config.recording.minFreeBytes, log });
  return { config, log, env, verifier, store, policySource, replica, recordings, clientRecords, audit, events, alerts, reviews, runs, directs, cancels, disk };
}

async function startReplica(config: GatewayConfig, log: Logger, store: PostgresGatewayStore, scheme: 'https' | 'http'): Promise<StoreReplica> {
  await mkdir(config.dataDir, { recursive: true, mode: 0o700 });
  const timing = config.store.kind === 'postgres' ? { heartbeatMs: config.store.heartbeatSeconds * 1000, deadAfterMs: config.store.deadAfterSeconds * 1000 } : {};
  return StoreReplica.create(store.pool, { dataDir: config.dataDir, url: `${scheme}://${config.listen.host}:${config.listen.port}`, log, ...timing });
}

/** The recordings (with a shared store: indexed in it, their bytes in its bucket when one is configured) and the CLIs' records; pruned at start and hourly. */
async function openRecordings(
  config: GatewayConfig,
  log: Logger,
  env: NodeJS.ProcessEnv,
  replica: StoreReplica | undefined,
  o: PartOverrides,
  disposer: Disposer,
): Promise<{ recordings: GatewayRecordings; clientRecords: ClientRecords }> {
  // With store.recordings the files' bytes go to that bucket (../records/recordings-bucket.ts), their index to PostgreSQL.
  const bucketConfig = replica && config.store.kind === 'postgres' ? config.store.recordings : undefined;
  const bucket = bucketConfig ? await (await import('../records/recordings-bucket.js')).S3RecordingBucket.open(bucketConfig, env) : undefined;
  const recordings = await GatewayRecordings.open(config.dataDir, log, replica ? (dir) => new PostgresSessionArchive(replica, dir, log, bucket) : undefined);
  disposer.defer(() => recordings.stop());
  if (recordings.archive instanceof PostgresSessionArchive) await recordings.archive.publish(recordings.ownKeys());
  const clientRecords = await ClientRecords.open(config.dataDir, log, replica ? await PostgresClientRecordStore.open(replica, config.dataDir) : undefined, {
    ...(o.clientRecordDiskReserveBytes !== undefined ? { reserveBytes: o.clientRecordDiskReserveBytes } : {}),
  });
  if (replica) cutJournalsOfStopped(replica, recordings, log);
  const recovered = await recordings.recoverUnindexed();
  if (recovered > 0)
    log.warn('recording.recovered', {
      sessions: recovered,
      message: `${recovered} recording(s) the gateway's last run left in its data directory were indexed; any cut short verify up to their last checkpoint`,
    });
  return { recordings, clientRecords };
}

/**
 * A stopped replica's sessions are cut from the copy of its journals the store keeps, once its
 * take-over is committed (this replica's own last run: from its disk, when its journals are
 * there), and at start for any replica whose cut did not finish.
 */
function cutJournalsOfStopped(replica: StoreReplica, recordings: GatewayRecordings, log: Logger): void {
  const cut = (dead: string): void =>
    void cutStoppedJournals(replica.pool, dead, recordings.key, dead === replica.id && recordings.journalsFound).then(
      ({ cut: sessions, unbound }) => {
        if (sessions > 0)
          log.warn('recording.taken-over', { replica: dead, sessions, message: `${sessions} session(s) replica ${dead} was recording were cut from its journals, to their last commit` });
        if (unbound.length > 0)
          log.warn('recording.journal-unbound', {
            replica: dead,
            sessions: unbound,
            message: 'no commit of the replica that stopped binds what its journal holds of these sessions: nothing of them can be cut as evidence',
          });
      },
      (err: unknown) => log.error('recording.take-over-failed', { replica: dead, error: describeError(err), message: 'its journals stay in the store; the next start of a replica cuts them' }),
    );
  replica.onTakeOver(async (_client, dead) => () => cut(dead));
  void stoppedWithJournals(replica.pool).then(
    (dead) => dead.filter((d) => d !== replica.id).forEach(cut),
    () => undefined,
  );
}

/** Deletes recordings older than the policy's `recording.retentionDays`, and CLIs' records no signature verified within a day: now and hourly. */
async function keepRetention(recordings: GatewayRecordings, clientRecords: ClientRecords, policySource: GatewayPolicySource | undefined, log: Logger, disposer: Disposer): Promise<void> {
  const prune = async (): Promise<void> => {
    try {
      for (const r of await clientRecords.expireUnverified()) log.info('client-record.expired', { kind: r.kind, id: r.id, message: 'no signature verified it within a day of its first file' });
    } catch (err) {
      log.error('client-record.expire-failed', { error: describeError(err) });
    }
    const days = policySource?.current().policy.recording.retentionDays;
    if (days === undefined) return;
    try {
      for (const id of await recordings.prune(days)) {
        await clientRecords.remove('sessions', id);
        log.info('recording.deleted', { session: id, retentionDays: days });
      }
    } catch (err) {
      log.error('recording.prune-failed', { error: describeError(err) });
    }
  };
  await prune();
  const hourly = setInterval(() => void prune(), 3_600_000);
  hourly.unref();
  disposer.defer(() => clearInterval(hourly));
}

/** The audit stream, its header secrets resolved; with a shared store, its ledger there. */
async function openAudit(config: GatewayConfig, log: Logger, env: NodeJS.ProcessEnv, replica: StoreReplica | undefined): Promise<AuditStream> {
  const audit = config.audit!;
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(audit.headers ?? {})) {
    const ref = parseSecretRef(value, dirname(config.file));
    headers[name] = ref ? await resolveSecret(ref, env) : value;
  }
  return new AuditStream({ ...audit, headers }, log, replica ? { ledger: new PostgresAuditLedger(replica.pool), replica: replica.id } : undefined);
}

/** The reviews, each change told to the audit stream and to the notification targets its settings name. */
async function openReviews(config: GatewayConfig, log: Logger, env: NodeJS.ProcessEnv, replica: StoreReplica | undefined, events: GatewayEvents, webhooks: WebhookSender): Promise<ReviewRegistry> {
  const reviews = await ReviewRegistry.open(config.dataDir, log, replica ? new PostgresReviewStore(replica) : undefined);
  const notifier = new ReviewNotifier(webhooks);
  const services = new ReviewServices({
    log,
    resolve: async (text) => {
      const ref = parseSecretRef(text, dirname(config.file));
      return ref ? resolveSecret(ref, env) : text;
    },
    decide: (id, service, decision, reason) => reviews.decideAsService(id, service, decision, reason),
  });
  reviews.onChange((event, review, settings) => {
    // The audit stream never carries SQL text (as for refusals); the review API and the recording do.
    events.emit(`review.${event}`, reviewAuditFields(event, review));
    if (settings?.notify.length) notifier.notify(settings.notify, event, review);
    // An automated reviewer is asked first, where the review's settings name one.
    if (event === 'requested' && settings?.service && review.state === 'pending') services.ask(review, settings.service);
  });
  return reviews;
}

/**
 * With a shared store: a dead replica's sessions end here (the audit stream says so for it, and
 * what they left running upstream is cancelled), and CancelRequests reach the replica that holds
 * the session.
 */
function shareWithReplicas(replica: StoreReplica, cancels: CancelRegistry, events: GatewayEvents, log: Logger, connectionNamed: (name: string) => ConnectionConfig | undefined): void {
  replica.onTakeOver(async (client, dead) => {
    const ended = await takeOverSessions(client, dead, log);
    return () => {
      for (const { summary: s, upstream } of ended) {
        if (upstream) cancelLeftRunning(connectionNamed(s.connection), upstream, log);
        events.emit('session.end', {
          session: s.id,
          subject: s.subject,
          issuer: s.issuer,
          connection: s.connection,
          remote: s.remote,
          ...(s.runId ? { run: s.runId } : {}),
          reason: s.reason,
          takenOverFrom: dead,
          durationMs: Date.parse(s.endedAt ?? s.startedAt) - Date.parse(s.startedAt),
        });
      }
    };
  });
  // A CancelRequest that reached this replica for a session held by another.
  cancels.elsewhere = (key, asker) => replica.notify(CANCEL_CHANNEL, JSON.stringify({ ...key, ...asker }));
  replica.on(CANCEL_CHANNEL, (payload) => {
    const m = cancelNotice(payload);
    if (!m) return void log.warn('cancel.bad-notice', { message: 'a replica sent a CancelRequest notice this gateway cannot read' });
    void cancels
      .lookup({ processId: m.processId, secretKey: m.secretKey }, m)
      ?.cancel()
      .catch((err: unknown) => log.warn('cancel.failed', { error: describeError(err) }));
  });
}

/** A CancelRequest another replica passed on: its key, and who asked (an owner, or a direct client's request). */
const CANCEL_NOTICE = z.union([
  z.strictObject({ ...upstreamKeySchema.shape, direct: z.literal(true) }),
  z.strictObject({ ...upstreamKeySchema.shape, subject: z.string(), issuer: z.string(), run: z.string().optional(), connection: z.string() }),
]);

/** The notice in `payload`, parsed with its schema; undefined when it is not one. */
function cancelNotice(payload: string): ({ processId: number; secretKey: number } & CancelAsker) | undefined {
  try {
    const parsed = CANCEL_NOTICE.safeParse(JSON.parse(payload));
    return parsed.success ? (parsed.data as { processId: number; secretKey: number } & CancelAsker) : undefined;
  } catch {
    return undefined;
  }
}

/** Cancels the statement a dead replica's session left running on its PostgreSQL server, which would otherwise run on unrecorded. */
function cancelLeftRunning(connection: ConnectionConfig | undefined, key: UpstreamKey, log: Logger): void {
  if (connection?.type !== 'postgres') return;
  cancelUpstreamPostgres({ ...upstreamTarget(connection), timeoutMs: 10_000 }, key).catch((err: unknown) =>
    log.warn('takeover.cancel-failed', { connection: connection.name, error: describeError(err), message: 'a statement the stopped replica left running may still run' }),
  );
}
