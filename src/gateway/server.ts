/**
 * The gateway's HTTP(S) server:
 *
 * - `GET /healthz`
 * - `GET /v1/auth/config` (no token): what `hoop login` needs, `{ issuer, clientId, scopes,
 *   resource?, tokenType, workloadAudience? }`; 404 when the gateway has no `login` configured
 * - `GET /v1/whoami`: `{ subject, issuer, kind, email?, groups, expiresAt }`
 * - `POST /v1/devices` `{ publicKey, name, proof }` (JSON, at most 16 KiB): registers the caller's
 *   device key once `proof` shows possession of its private half (src/device-proof.ts), 201 `{ deviceId, fingerprint }` (200 with the same body when it was already registered);
 *   `GET /v1/devices`: `{ devices: [{ deviceId, name, fingerprint, publicKey, createdAt }] }`, the
 *   caller's only
 * - `GET /v1/connections[/{name}]` (with a policy repo: what its access rules admit, each with its
 *   `mode`), and the tunnel endpoint `GET /v1/connections/{name}/tunnel` (`Upgrade: hoop-tunnel/1`;
 *   with a policy repo the 101 carries `Hoop-Policy-Commit: <sha>`)
 * - `GET /v1/policy`: `{ commit, loadedAt }` of the policy in force (404 without a policy repo)
 * - `GET /v1/sessions…` and `GET /v1/keys`: recordings (see sessionsApi); `PUT|GET
 *   /v1/sessions/{id}/client[/{file}]` and `PUT|GET /v1/runs/{id}[/files/{file}]`: the CLIs' own
 *   records (./client-records.ts)
 *
 * Every call but the first two carries a bearer token that is verified before anything else
 * happens; errors are `{ error: { code, message, hint?, reason? } }`. A tunnel is handed to the
 * engine of the connection's type and lives as long as its token (exp plus clock tolerance),
 * unless the client renews it with a `token` control message. One structured log line is written
 * when a tunnel opens and one when it closes (who, which connection, from where, bytes each way,
 * duration, why).
 *
 * Plain HTTP is served only on a loopback address and only when the operator asked for it.
 *
 * @see https://www.rfc-editor.org/rfc/rfc9110#name-upgrade (HTTP/1.1 Upgrade)
 * @see https://www.rfc-editor.org/rfc/rfc6750 (bearer tokens)
 * @see https://www.rfc-editor.org/rfc/rfc9110#name-413-content-too-large
 */
import { deviceProofProblem } from '../device-proof.js';
import { randomUUID } from 'node:crypto';
import * as http from 'node:http';
import * as https from 'node:https';
import * as tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { ErrorCode, HoopError, describeError } from '../errors.js';
import type { Logger } from '../log.js';
import { acceptMux, acceptTunnel, isMuxUpgrade, isTunnelUpgrade, MUX_PATH, rejectUpgrade, type TunnelAnswer, type TunnelErrorBody, type TunnelSessionRequest } from '../tunnel/accept.js';
import type { MuxConnection } from '../tunnel/mux.js';
import type { TunnelStream } from '../tunnel/stream.js';
import { VERSION } from '../version.js';
import { mayUse } from './access.js';
import { CancelRegistry } from '../postgres/cancel-registry.js';
import { isLoopbackHost } from '../loopback.js';
import type { ConnectionConfig, PostgresConnection, SshConnection } from '../config/connection.js';
import { parseSecretRef, resolveSecret } from '../config/secrets.js';
import type { GatewayConfig } from './config.js';
import { SessionEnd, type SessionJudge, type SessionMasking, type SessionOutcome, type SessionSsh, type TunnelSession } from '../session/engine.js';
import { PostgresEngine, type PostgresEngineOptions } from '../postgres/engine.js';
import { SshEngine, type SshEngineOptions } from '../ssh/engine.js';
import { gatewaySshHostKey } from '../ssh/host-key.js';
import { checkRunConnection, GatewayPolicySource, whoOf } from './policy-source.js';
import { describeEnd, describeRun, FileRunStore, isRunToken, parseRunAsk, RunRegistry, runForbidden } from './runs.js';
import { PostgresRunStore } from './runs-postgres.js';
import { principalOf } from '../policy/principal.js';
import type { Principal } from '../policy/principal.js';
import { globMatches } from '../policy/glob.js';
import { RUN_DEFAULTS } from '../policy/schema.js';
import { watchSessionToken } from './session-token.js';
import { accessFor, requestableRule } from '../policy/access.js';
import type { SessionLimits } from '../policy/limits.js';
import { PostgresGatewayStore } from './store-postgres.js';
import { StoreReplica } from './replica.js';
import { PostgresSessionArchive, takeOverSessions } from './recordings-postgres.js';
import { PostgresReviewStore } from './reviews-postgres.js';
import { EPHEMERAL_DEVICE_MS, FileGatewayStore, parseDeviceName, parseDevicePublicKey, type Device, type GatewayStore } from './store.js';
import { GatewayRecordings, TablesTouched, type SessionSummary } from './recordings.js';
import { AuditStream } from './audit.js';
import { PostgresAuditLedger } from './audit-postgres.js';
import { type ConnectionGuard, guardConnections } from './connection-guard.js';
import { DEFAULT_MAX_SESSIONS_PER_IDENTITY, IdentitySessions } from './identity-sessions.js';
import { HttpError } from './http-error.js';
import { ClientRecords, MAX_RECORD_FILE_BYTES } from './client-records.js';
import { PostgresClientRecordStore } from './client-records-postgres.js';
import type { RecordKind } from '../recording/spool.js';
import { CLIENT_RECORD_ROW_CAP, POSTGRES_RECORD_ENCODER } from '../postgres/recording/records.js';
import { SSH_RECORD_ENCODER } from '../ssh/recorder.js';
import { RECORDING_FILE } from '../recording/writer.js';
import { DEFAULT_MAX_GRANT_SECONDS, type RecordingPolicy } from '../policy/schema.js';
import { cutValue } from '../recording/event-line.js';
import type { RecordingStream } from '../recording/thread.js';
import type { ControlMessage } from '../tunnel/frames.js';
import { createReadStream } from 'node:fs';
import { mkdir, statfs } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Identity } from '../identity.js';
import { REVIEW_PATH, ReviewRegistry, reviewRecordingEvent, reviewsApi, type Review } from './reviews.js';
import { reviewSettingsFor } from '../policy/decide.js';
import { ReviewNotifier } from './review-notify.js';
import { TokenRejectedError, TokenVerifier } from './verify-token.js';

/** Options of {@link startGateway}. */
export interface GatewayOptions {
  config: GatewayConfig;
  log: Logger;
  /** Serve plain HTTP (loopback only). */
  insecureDevHttp?: boolean;
  env?: NodeJS.ProcessEnv;
  /** Overrides for tests: timeouts of the PostgreSQL engine, a token verifier. */
  postgres?: Partial<PostgresEngineOptions>;
  /** Overrides for tests: timeouts of the SSH engine. */
  ssh?: Pick<SshEngineOptions, 'handshakeTimeoutMs' | 'upstreamTimeoutMs'>;
  verifier?: TokenVerifier;
  /** The state store; default: as `config.store` says, a {@link FileGatewayStore} in `config.dataDir` or a {@link PostgresGatewayStore} (closed with the gateway). */
  store?: GatewayStore;
  /**
   * Statement enforcement for a new session: the judge of its statements and whether its access
   * is read-only. Without it (or when it returns undefined) statements are relayed uninspected.
   * A stand-in until the gateway loads its policy repository.
   */
  sessionPolicy?: (identity: Identity, connection: ConnectionConfig) => SessionPolicy | undefined;
  /** Tests only: multiplies every maximum session length (e.g. 0.02 turns 60 s into 1.2 s). */
  sessionLimitScale?: number;
  /** How long a connection may take to finish its TLS handshake and send its first request (default 10 s): an idle socket holds no descriptor longer. */
  firstRequestTimeoutMs?: number;
  /** Connections one source address may hold that no accepted token came on (default 256: a balancer or a NAT is one address for many). */
  strangerConnectionsPerAddress?: number;
  /** Free bytes of the data directory that CLIs' records never take: an upload that would leave less is refused 507 (default 1 GiB). */
  clientRecordDiskReserveBytes?: number;
}

/** What {@link GatewayOptions.sessionPolicy} gives a session. */
export interface SessionPolicy {
  judge?: SessionJudge;
  readOnly?: boolean;
  masking?: SessionMasking;
  /** The session ends (reason `session-limit`) this many seconds after it opened. */
  maxSessionSeconds?: number;
  /** Sessions the identity may have open at once on this gateway (default 32). */
  maxSessions?: number;
  /** Server timeouts of the access. */
  limits?: SessionLimits;
  /** What the session's recording keeps (default: masked results, 1000 rows, close on failure). */
  recording?: RecordingPolicy;
  /** SSH: what the session may do. */
  ssh?: SessionSsh;
}

/** Recording without a policy repo. */
const DEFAULT_RECORDING: RecordingPolicy = { results: 'masked', rowCap: 1000, onFailure: 'close', auditors: [] };
const SESSION_PATH = /^\/v1\/sessions\/([A-Za-z0-9_-]{8,64})(?:\/files(?:\/([A-Za-z0-9._-]+))?)?$/;
/** A session's record made by the CLI (`…/client`, `…/client/{file}`). */
const CLIENT_RECORD_PATH = /^\/v1\/sessions\/([A-Za-z0-9_-]{8,64})\/client(?:\/([A-Za-z0-9._-]+))?$/;
/** A `hoop run`'s record (`/v1/runs/{id}`, `…/files/{file}`). */
const RUN_PATH = /^\/v1\/runs\/([A-Za-z0-9_-]{8,64})(?:\/files\/([A-Za-z0-9._-]+))?$/;

/** A running gateway. */
export interface Gateway {
  /** e.g. `https://127.0.0.1:8443` */
  url: string;
  port: number;
  /** Sessions currently relayed. */
  readonly activeSessions: number;
  /** The config repo the policy comes from, when `config.policy` is set. */
  readonly policy: GatewayPolicySource | undefined;
  /** Stops accepting, ends every session with a shutdown error, and resolves when all are gone. */
  close(): Promise<void>;
}

/**
 * TLS 1.3 suites first, AES-128-GCM before AES-256-GCM (as fast as hardware AES gets, and
 * what most TLS stacks prefer), then Node's default TLS 1.2 list.
 * @see https://www.rfc-editor.org/rfc/rfc8446#section-9.1
 */
const TLS_CIPHERS = ['TLS_AES_128_GCM_SHA256', 'TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256', tls.DEFAULT_CIPHERS].join(':');

/** Where replicas tell each other of CancelRequests (`{ processId, secretKey, subject, issuer }`). */
const CANCEL_CHANNEL = 'hoop_cancel';
/** How long a finished session's tunnel may stay open for the client to read its last bytes. */
const SESSION_LINGER_MS = 5_000;
/** Characters of context messages a session records; past it they are dropped (a client's claims cannot fill the disk). */
const CONTEXT_BUDGET = 256 * 1024;
/** A context message's field names: short identifiers; at most {@link MAX_CONTEXT_FIELDS} of them. */
const CONTEXT_FIELD = /^[a-z][A-Za-z0-9_]{0,31}$/;
const MAX_CONTEXT_FIELDS = 8;

/**
 * The fields of a client's `context` control message (`{ type: 'context', fields: { tool, intent, … } }`)
 * as a recording keeps them: string values cut at 4 KiB, names that cannot clash with an event's
 * own (`t`, `at`); undefined for anything else.
 */
export function clientContext(fields: unknown): Record<string, string> | undefined {
  if (typeof fields !== 'object' || fields === null || Array.isArray(fields)) return undefined;
  const entries = Object.entries(fields);
  if (entries.length === 0 || entries.length > MAX_CONTEXT_FIELDS) return undefined;
  const out: Record<string, string> = {};
  for (const [k, v] of entries) {
    if (!CONTEXT_FIELD.test(k) || k === 't' || k === 'at' || typeof v !== 'string') return undefined;
    out[k] = cutValue(v);
  }
  return out;
}

/** A session id as a tunnel may propose it (`Hoop-Session-Id`). */
const SESSION_ID = /^[A-Za-z0-9_-]{8,64}$/;

const TUNNEL_PATH = /^\/v1\/connections\/([^/]+)\/tunnel$/;
/** A run's heartbeat and its end, with its control credential. */
const RUN_CONTROL_PATH = /^\/v1\/runs\/(run-[A-Za-z0-9_-]{16,64})\/(heartbeat|end)$/;
const CONNECTION_PATH = /^\/v1\/connections\/([^/]+)$/;

/** Largest request body accepted (the device registration is the only one). */
const MAX_BODY_BYTES = 16 * 1024;

/** A header of a session's request, when it was given once (a repeated one is as if absent). */
function headerOf(headers: TunnelSessionRequest['headers'], name: string): string | undefined {
  const value = headers[name];
  return typeof value === 'string' ? value : undefined;
}

function errorStatus(err: HoopError): number {
  if (err instanceof HttpError) return err.status;
  switch (err.code) {
    case ErrorCode.TOKEN_REJECTED:
    case ErrorCode.NOT_LOGGED_IN:
      return 401;
    case ErrorCode.ACCESS_DENIED:
      return 403;
    case ErrorCode.CONNECTION_UNKNOWN:
    case ErrorCode.SESSION_UNKNOWN:
    case ErrorCode.REVIEW_UNKNOWN:
      return 404;
    case ErrorCode.RECORDING_UNAVAILABLE:
    case ErrorCode.STORE_UNAVAILABLE:
      return 503;
    case ErrorCode.USAGE:
      return 400;
    case ErrorCode.TOO_MANY_SESSIONS:
      return 429;
    default:
      return 500;
  }
}

function errorBody(err: HoopError): { error: { code: string; message: string; hint?: string; reason?: string } } {
  const body = err.toJSON();
  return err instanceof TokenRejectedError ? { error: { ...body.error, reason: err.reason } } : body;
}

function authenticateHeaders(err: HoopError): Record<string, string> {
  if (err instanceof HttpError) return err.headers;
  return err instanceof TokenRejectedError ? { 'WWW-Authenticate': `Bearer error="invalid_token", error_description="${err.reason}"` } : {};
}

/**
 * Reads a JSON request body of at most `limit` bytes.
 *
 * @see https://www.rfc-editor.org/rfc/rfc8259
 * @throws HttpError 413 (too large), 415 (not JSON), 400 (malformed)
 */
async function readJsonBody(req: http.IncomingMessage, limit: number): Promise<unknown> {
  const type = req.headers['content-type'];
  if (type !== undefined && !/^application\/(?:[\w.+-]+\+)?json\s*(?:;|$)/i.test(type)) {
    throw new HttpError(415, 'the request body must be JSON', { hint: 'send Content-Type: application/json' });
  }
  const body = await readBody(req, limit, 'send only the fields the endpoint takes');
  try {
    return JSON.parse(body.toString('utf8'));
  } catch {
    throw new HttpError(400, 'the request body is not valid JSON');
  }
}

/**
 * Reads a request body of at most `limit` bytes.
 *
 * @throws HttpError 413 (too large; the connection is closed after the answer)
 */
function readBody(req: http.IncomingMessage, limit: number, hint: string): Promise<Buffer> {
  const tooLarge = (): HttpError => new HttpError(413, `the request body is larger than ${limit} bytes`, { hint, headers: { Connection: 'close' } });
  if (Number(req.headers['content-length'] ?? 0) > limit) return Promise.reject(tooLarge());
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const cleanup = (): void => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
    };
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > limit) {
        cleanup();
        req.pause();
        reject(tooLarge());
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = (): void => {
      cleanup();
      resolve(Buffer.concat(chunks));
    };
    const onError = (err: Error): void => {
      cleanup();
      reject(err);
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
  });
}

function describeDevice(d: Device): { deviceId: string; name: string; fingerprint: string; publicKey: string; createdAt: string } {
  return { deviceId: d.deviceId, name: d.name, fingerprint: d.fingerprint, publicKey: d.publicKey, createdAt: d.createdAt };
}

function describeConnection(c: ConnectionConfig, mode?: string, until?: number): { name: string; type: string; database?: string; user?: string; mode?: string; until?: string } {
  return {
    name: c.name,
    type: c.type,
    ...(c.type === 'postgres' ? { database: c.database } : { user: c.user }),
    ...(mode !== undefined ? { mode } : {}),
    ...(until !== undefined ? { until: new Date(until).toISOString() } : {}),
  };
}

/** `N minutes` (or seconds when not a whole number of minutes), for the session-limit message. */
function describeLength(seconds: number): string {
  if (seconds % 60 === 0) return seconds === 60 ? '1 minute' : `${seconds / 60} minutes`;
  return seconds === 1 ? '1 second' : `${seconds} seconds`;
}

/** The longest delay `setTimeout` takes; a session limit is at most 7 days, so clamp. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Starts the gateway and resolves once it listens. */
export async function startGateway(options: GatewayOptions): Promise<Gateway> {
  const { config, log } = options;
  const env = options.env ?? process.env;
  const useTls = !options.insecureDevHttp;
  if (useTls && !config.tls) {
    throw new HoopError(ErrorCode.CONFIG_INVALID, `${config.file}: no tls certificate and key are configured`, {
      hint: 'add `tls: { cert: ..., key: ... }`, or for local development on a loopback address start with --insecure-dev-http',
    });
  }
  if (!useTls && !isLoopbackHost(config.listen.host)) {
    throw new HoopError(ErrorCode.USAGE, `--insecure-dev-http refused: ${config.listen.host} is not a loopback address`, {
      hint: 'plain HTTP would expose tokens on the network; configure tls, or listen on 127.0.0.1',
    });
  }

  const verifier = options.verifier ?? new TokenVerifier(config.issuers);
  const ownStore = options.store === undefined;
  const store = options.store ?? (config.store.kind === 'postgres' ? await PostgresGatewayStore.open(await resolveSecret(config.store.url, env)) : await FileGatewayStore.open(config.dataDir));
  let policySource: GatewayPolicySource | undefined;
  if (config.policy) {
    try {
      policySource = await GatewayPolicySource.open(config.policy, { log, env });
    } catch (err) {
      if (ownStore) await store.close();
      throw err;
    }
  }
  /** With a PostgreSQL store: this replica among the others. */
  let replica: StoreReplica | undefined;
  let recordings: GatewayRecordings | undefined;
  let clientRecords: ClientRecords | undefined;
  if (store instanceof PostgresGatewayStore) {
    try {
      await mkdir(config.dataDir, { recursive: true, mode: 0o700 });
      const timing = config.store.kind === 'postgres' ? { heartbeatMs: config.store.heartbeatSeconds * 1000, deadAfterMs: config.store.deadAfterSeconds * 1000 } : {};
      replica = await StoreReplica.create(store.pool, { dataDir: config.dataDir, url: `${useTls ? 'https' : 'http'}://${config.listen.host}:${config.listen.port}`, log, ...timing });
    } catch (err) {
      if (ownStore) await store.close();
      await policySource?.close();
      throw err;
    }
  }
  if (config.recording.enabled) {
    try {
      const shared = replica;
      // With store.recordings the files' bytes go to that bucket (./recordings-bucket.ts), their index to PostgreSQL.
      const bucketConfig = shared && config.store.kind === 'postgres' ? config.store.recordings : undefined;
      const bucket = bucketConfig ? await (await import('./recordings-bucket.js')).S3RecordingBucket.open(bucketConfig, env) : undefined;
      recordings = await GatewayRecordings.open(config.dataDir, shared ? (dir) => new PostgresSessionArchive(shared, dir, log, bucket) : undefined);
      if (recordings.archive instanceof PostgresSessionArchive) await recordings.archive.publish(recordings.ownKeys());
      clientRecords = await ClientRecords.open(config.dataDir, shared ? await PostgresClientRecordStore.open(shared, config.dataDir) : undefined, {
        ...(options.clientRecordDiskReserveBytes !== undefined ? { reserveBytes: options.clientRecordDiskReserveBytes } : {}),
      });
      const recovered = await recordings.recoverUnindexed();
      if (recovered > 0)
        log.warn('recording.recovered', {
          sessions: recovered,
          message: `${recovered} recording(s) the gateway's last run left in its data directory were indexed; any cut short verify up to their last checkpoint`,
        });
    } catch (err) {
      if (ownStore) await store.close();
      await policySource?.close();
      throw err;
    }
  }
  /** Deletes recordings older than the policy's `recording.retentionDays`, and CLIs' records no signature verified within a day, at start and hourly. */
  const prune = async (): Promise<void> => {
    try {
      for (const r of (await clientRecords?.expireUnverified()) ?? [])
        log.info('client-record.expired', { kind: r.kind, id: r.id, message: 'no signature verified it within a day of its first file' });
    } catch (err) {
      log.error('client-record.expire-failed', { error: describeError(err) });
    }
    const days = policySource?.current().policy.recording.retentionDays;
    if (!recordings || days === undefined) return;
    try {
      for (const id of await recordings.prune(days)) {
        await clientRecords?.remove('sessions', id);
        log.info('recording.deleted', { session: id, retentionDays: days });
      }
    } catch (err) {
      log.error('recording.prune-failed', { error: describeError(err) });
    }
  };
  await prune();
  const pruning = setInterval(() => void prune(), 3_600_000);
  pruning.unref();
  let audit: AuditStream | undefined;
  if (config.audit) {
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(config.audit.headers ?? {})) {
      const ref = parseSecretRef(value, dirname(config.file));
      headers[name] = ref ? await resolveSecret(ref, env) : value;
    }
    audit = new AuditStream({ ...config.audit, headers }, log, replica ? { ledger: new PostgresAuditLedger(replica.pool), replica: replica.id } : undefined);
  }
  const reviews = await ReviewRegistry.open(config.dataDir, log, replica ? new PostgresReviewStore(replica) : undefined);
  const notifier = new ReviewNotifier({
    log,
    resolveUrl: async (url) => {
      const ref = parseSecretRef(url, dirname(config.file));
      return ref ? resolveSecret(ref, env) : url;
    },
  });
  reviews.onChange((event, review, settings) => {
    // The audit stream never carries SQL text (as for refusals); the review API and the recording do.
    audit?.emit(`review.${event}`, {
      session: review.session,
      subject: review.requester.subject,
      issuer: review.requester.issuer,
      connection: review.connection,
      ...(review.run !== undefined ? { run: review.run } : {}),
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
    });
    if (settings?.notify.length) notifier.notify(settings.notify, event, review);
  });
  const runs = new RunRegistry(replica ? new PostgresRunStore(replica) : await FileRunStore.open(config.dataDir), log);
  runs.onEnd((run) => audit?.emit('run.end', { run: run.id, subject: run.owner.subject, issuer: run.owner.issuer, agent: run.agent, via: run.via, reason: run.endReason ?? 'ended' }));
  const cancels = new CancelRegistry();
  if (replica) {
    const shared = replica;
    // A dead replica's sessions end here, and the audit stream says so for it.
    shared.onTakeOver(async (client, dead) => {
      const ended = await takeOverSessions(client, dead);
      return () => {
        for (const s of ended) {
          audit?.emit('session.end', {
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
    cancels.elsewhere = (key, owner) => shared.notify(CANCEL_CHANNEL, JSON.stringify({ ...key, ...owner }));
    shared.on(CANCEL_CHANNEL, (payload) => {
      const m = JSON.parse(payload) as { processId: number; secretKey: number; subject: string; issuer: string };
      void cancels
        .lookup({ processId: m.processId, secretKey: m.secretKey }, m)
        ?.cancel()
        .catch((err: unknown) => log.warn('cancel.failed', { error: describeError(err) }));
    });
  }
  try {
    await replica?.begin();
  } catch (err) {
    await recordings?.stop();
    await policySource?.close();
    if (ownStore) await store.close();
    throw err;
  }
  let closing = false;
  /** Every live session's controller: aborting one ends that session with a {@link SessionEnd}. */
  const sessions = new Set<AbortController>();
  // Taken for dead by another replica while it lived: the store says its sessions ended, so they end.
  replica?.onFenced(() => {
    for (const c of sessions)
      c.abort(
        new SessionEnd(
          'gateway-shutdown',
          'hoop: this gateway replica stopped answering its store for too long and another replica ended its sessions',
          'connect again: a live replica takes the session',
        ),
      );
  });
  /** Sessions running now, as `GET /v1/sessions` lists them until they are in the index. */
  const running = new Map<string, () => SessionSummary>();
  /** Session ids in use: running, or being opened. */
  const claimed = new Set<string>();
  /** Told which connections an accepted token came on (set once the server exists). */
  let connectionGuard: ConnectionGuard | undefined;
  const identitySessions = new IdentitySessions();
  /**
   * The id of a new session: the one the client proposed when it is well formed, not in use, and
   * never recorded (a recording is never written over), else a new random one. The gateway echoes
   * the id it chose, and the client uses that.
   */
  /**
   * The new session's id: the one its client proposed when nobody ever had it (claimed in the
   * archive, atomically across replicas, so that no recording is written over or mixed with
   * another's), else a new one.
   */
  const claimSessionId = async (requested: unknown): Promise<string> => {
    if (typeof requested === 'string' && SESSION_ID.test(requested) && !claimed.has(requested)) {
      claimed.add(requested);
      // When the store cannot say, the id counts as taken.
      if (!recordings || (await recordings.claim(requested).catch(() => false))) return requested;
      claimed.delete(requested);
    }
    for (;;) {
      const id = randomUUID();
      claimed.add(id);
      if (!recordings || (await recordings.claim(id).catch(() => true))) return id;
      claimed.delete(id);
    }
  };
  const postgresEngine = new PostgresEngine({ cancels, resolveSecret: (ref) => resolveSecret(ref, env), ...config.postgres, ...options.postgres });
  const sshHostKey = await gatewaySshHostKey(config.dataDir);
  await replica?.publishSshHostKey(sshHostKey.public);
  const sshEngine = new SshEngine({ hostKey: sshHostKey.private, resolveSecret: (ref) => resolveSecret(ref, env), ...options.ssh });
  const serve = (session: TunnelSession): Promise<SessionOutcome> =>
    session.connection.type === 'ssh' ? sshEngine.serve(session as TunnelSession<SshConnection>) : postgresEngine.serve(session as TunnelSession<PostgresConnection>);
  /** A connection as a caller sees it; an SSH one with the gateway's host keys (every replica's), which `hoop connect` pins. */
  const describe = async (c: ConnectionConfig, mode?: string, until?: number): Promise<ReturnType<typeof describeConnection> & { hostKeys?: string[] }> => ({
    ...describeConnection(c, mode, until),
    ...(c.type === 'ssh' ? { hostKeys: replica ? await replica.sshHostKeys() : [sshHostKey.public] } : {}),
  });
  const connections = new Map(config.connections.map((c) => [c.name, c]));
  const live = new Set<Promise<unknown>>();
  /** Channels whose session ended, waiting for the client to close its side. */
  const lingering = new Set<TunnelStream>();

  /** Who a bearer token stands for: a person or workload (an issuer's token), or an agent's run (a run credential this gateway issued). */
  const authenticate = async (authorization: string | undefined): Promise<Identity> => {
    const bearer = TokenVerifier.bearerFromHeader(authorization);
    if (!isRunToken(bearer)) return verifier.verify(bearer);
    const identity = await runs.verify(bearer!);
    // A run stands for its person only while the gateway trusts their issuer.
    if (!verifier.issuerConfig(identity.issuer)) throw new TokenRejectedError('untrusted-issuer', `the run's person was signed in by ${identity.issuer}, which this gateway no longer trusts`);
    return identity;
  };

  const lookup = (identity: Identity, name: string): ConnectionConfig => {
    if (policySource) return policySource.lookup(identity, name, reviews.grantsOf(identity)).connection;
    checkRunConnection(identity, name);
    const connection = connections.get(name);
    if (!connection) {
      throw new HoopError(ErrorCode.CONNECTION_UNKNOWN, `the gateway has no connection named "${name}"`, {
        hint: 'run `hoop connections` to list the ones you may use (or ask your administrator)',
      });
    }
    if (!mayUse(identity, connection)) {
      throw new HoopError(ErrorCode.ACCESS_DENIED, `${identity.subject} may not use the connection "${name}"`, {
        hint: 'ask an administrator to grant you access in the gateway configuration',
      });
    }
    return connection;
  };

  const sendJson = (res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void => {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text), 'Cache-Control': 'no-store', ...headers });
    res.end(text);
  };

  const authConfig = (): Record<string, unknown> => {
    const login = config.login;
    if (!login) {
      throw new HttpError(404, 'this gateway has no login configured', {
        hint: 'use a token from a workload identity (hoop login --id-token-file, HOOP_ID_TOKEN) or ask the gateway operator to configure login',
      });
    }
    const issuer = config.issuers.find((i) => i.issuer === login.issuer);
    const workload = config.issuers.find((i) => i.kind === 'workload');
    return {
      issuer: login.issuer,
      clientId: login.clientId,
      scopes: login.scopes,
      ...(login.resource !== undefined ? { resource: login.resource } : {}),
      tokenType: issuer?.tokenType ?? 'any',
      ...(workload ? { workloadAudience: workload.audience[0] } : {}),
    };
  };

  const registerDevice = async (req: http.IncomingMessage, identity: Identity): Promise<{ status: number; body: unknown }> => {
    const body = await readJsonBody(req, MAX_BODY_BYTES);
    if (body === null || typeof body !== 'object' || Array.isArray(body)) {
      throw new HttpError(400, 'the request body must be a JSON object { publicKey, name, proof }');
    }
    const fields = body as Record<string, unknown>;
    const key = parseDevicePublicKey(fields.publicKey);
    const name = parseDeviceName(fields.name);
    const problem = deviceProofProblem(fields.proof, key.publicKey, TokenVerifier.bearerFromHeader(req.headers.authorization) ?? '');
    if (problem) throw new HttpError(400, `the device key's proof of possession was refused: ${problem}`);
    if (fields.ephemeral !== undefined && typeof fields.ephemeral !== 'boolean') throw new HttpError(400, 'ephemeral must be true or false');
    // An ephemeral key (a CLI with a token from the environment) signs that CLI's records for a while, then goes.
    const expiresAt = fields.ephemeral === true ? new Date(Date.now() + EPHEMERAL_DEVICE_MS).toISOString() : undefined;
    const { device, created } = await store.registerDevice({ issuer: identity.issuer, subject: identity.subject }, { ...key, name, ...(expiresAt ? { expiresAt } : {}) });
    if (created) log.info('device.registered', { subject: identity.subject, issuer: identity.issuer, deviceId: device.deviceId, fingerprint: device.fingerprint });
    return { status: created ? 201 : 200, body: { deviceId: device.deviceId, fingerprint: device.fingerprint } };
  };

  /**
   * `GET /v1/sessions[?user=&connection=&since=&until=&denied=1]`, `GET /v1/sessions/{id}`, and a
   * recording's files (`…/files`, `…/files/{name}`). A caller sees their own sessions; members of
   * the policy's `recording.auditors` groups see everyone's. A session the caller may not see is
   * answered as unknown.
   */
  const isAuditor = (identity: Identity): boolean => {
    const auditors = policySource?.current().policy.recording.auditors ?? [];
    return identity.groups.some((g) => auditors.includes(g));
  };
  const owns = (identity: Identity, of: { issuer: string; subject: string }): boolean => of.issuer === identity.issuer && of.subject === identity.subject;
  /**
   * The sessions `identity` may see (its own; an auditor's: everyone's), running ones first, then
   * ended ones, each newest (by start) first; each says how much of the CLI's record of it was uploaded.
   */
  const visibleSessions = async (identity: Identity): Promise<SessionSummary[]> => {
    if (!recordings) throw new HttpError(404, 'this gateway does not record sessions', { hint: 'recording.enabled is false in its configuration' });
    const auditor = isAuditor(identity);
    // Running ones first taken, then the index: a session that ends in between is in both (and listed once), never in neither.
    const now = [...running.values()].map((summary) => summary());
    const here = new Set(now.map((s) => s.id));
    // A shared store lists every replica's running sessions too; this replica's own are told from memory, fresher.
    const indexed = (await recordings.sessions()).filter((s) => s.endedAt !== undefined || !here.has(s.id));
    const ended = new Set(indexed.filter((s) => s.endedAt !== undefined).map((s) => s.id));
    const order = (a: SessionSummary, b: SessionSummary): number => Number(a.endedAt !== undefined) - Number(b.endedAt !== undefined) || b.startedAt.localeCompare(a.startedAt);
    const listed = [...now.filter((s) => !ended.has(s.id)), ...indexed].sort(order).filter((s) => auditor || owns(identity, s));
    // The CLIs' records of the listed sessions, in one lookup (a shared store holds every replica's).
    const clients =
      (await clientRecords?.states(
        'sessions',
        listed.map((s) => s.id),
      )) ?? new Map<string, never>();
    return listed.map((s) => {
      const client = clients.get(s.id)?.state;
      return client ? { ...s, clientRecord: client } : s;
    });
  };

  /** Session `id` as {@link visibleSessions} lists it, if `identity` may see it (one lookup, not the whole index). */
  const visibleSession = async (identity: Identity, id: string): Promise<SessionSummary | undefined> => {
    if (!recordings) throw new HttpError(404, 'this gateway does not record sessions', { hint: 'recording.enabled is false in its configuration' });
    const indexed = await recordings.archive.session(id);
    // As in the listing: ended, the index's; running here, from memory (fresher).
    const s = indexed?.endedAt !== undefined ? indexed : (running.get(id)?.() ?? indexed);
    if (!s || !(isAuditor(identity) || owns(identity, s))) return undefined;
    const client = (await clientRecords?.state('sessions', id))?.state;
    return client ? { ...s, clientRecord: client } : s;
  };

  const sessionsApi = async (req: http.IncomingMessage, identity: Identity, path: string, recorded: RegExpExecArray | null): Promise<{ status: number; body: unknown; file?: string | Buffer }> => {
    if (!recorded) {
      const all = await visibleSessions(identity);
      const auditor = isAuditor(identity);
      const q = new URL(req.url ?? '/', 'http://gateway').searchParams;
      const time = (name: string): number | undefined => {
        const v = q.get(name);
        if (v === null) return undefined;
        const t = Date.parse(v);
        if (Number.isNaN(t)) throw new HttpError(400, `${name} must be a date or time, such as 2026-11-22 or 2026-11-22T10:00:00Z`);
        return t;
      };
      const since = time('since');
      const until = time('until');
      const user = q.get('user');
      const run = q.get('run');
      const agent = q.get('agent')?.toLowerCase() ?? null;
      const via = q.get('via');
      const connection = q.get('connection');
      const table = q.get('table')?.toLowerCase() ?? null;
      const column = q.get('column')?.toLowerCase() ?? null;
      const sessions = all.filter(
        (s) =>
          (user === null || s.subject === user || s.email?.toLowerCase() === user.toLowerCase()) &&
          (connection === null || s.connection === connection) &&
          (run === null || s.runId === run) &&
          (agent === null || (s.agent !== undefined && globMatches(agent, s.agent))) &&
          (via === null || (s.via ?? 'connect') === via) &&
          (since === undefined || s.endedAt === undefined || Date.parse(s.endedAt) >= since) &&
          (until === undefined || Date.parse(s.startedAt) <= until) &&
          (q.get('denied') === null || s.refused > 0) &&
          (table === null || (s.tables ?? []).some((t) => t === table || t.endsWith(`.${table}`) || table.endsWith(`.${t}`))) &&
          (column === null || (s.maskedColumns ?? []).some((m) => m.column === column || m.column.endsWith(`.${column}`))),
      );
      return { status: 200, body: { sessions, auditor } };
    }
    const id = recorded[1]!;
    const summary = await visibleSession(identity, id);
    if (!summary) throw new HoopError(ErrorCode.SESSION_UNKNOWN, `no session ${id} that you may see`, { hint: '`hoop sessions ls` lists the sessions you may see' });
    if (!path.includes('/files')) return { status: 200, body: summary };
    const name = recorded[2];
    if (name === undefined) return { status: 200, body: { files: await recordings!.archive.files(id) } };
    if (!RECORDING_FILE.test(name)) throw new HoopError(ErrorCode.SESSION_UNKNOWN, `a recording holds no file ${name}`);
    const file = await recordings!.archive.file(id, name);
    if (file === undefined) throw new HoopError(ErrorCode.SESSION_UNKNOWN, `no such file in this recording: ${name}`);
    return { status: 200, body: undefined, file };
  };

  /**
   * The CLIs' records (./client-records.ts). `PUT /v1/sessions/{id}/client/{file}` and
   * `PUT /v1/runs/{id}/files/{file}` store one file (raw bytes, at most 16 MiB): a session's
   * record only from its owner, a run's from whoever uploaded to it first. `GET …/client` and
   * `GET /v1/runs/{id}` say `{ record, files }`; `GET …/{file}` hands one out, to whoever may see
   * the session (a run: its uploader, or an auditor).
   */
  const clientRecordApi = async (
    req: http.IncomingMessage,
    identity: Identity,
    kind: RecordKind,
    id: string,
    name: string | undefined,
  ): Promise<{ status: number; body: unknown; file?: string | Buffer }> => {
    if (!recordings || !clientRecords) throw new HttpError(404, 'this gateway does not record sessions', { hint: 'recording.enabled is false in its configuration' });
    const what = kind === 'sessions' ? `session ${id}` : `run ${id}`;
    const unknown = (): HoopError =>
      new HoopError(ErrorCode.SESSION_UNKNOWN, `no ${what} that you may see`, {
        hint: kind === 'sessions' ? '`hoop sessions ls` lists the sessions you may see' : 'the id is the HOOP_RUN_ID hoop run gave its command',
      });
    const put = req.method === 'PUT';
    if (kind === 'sessions') {
      const summary = await visibleSession(identity, id);
      if (!summary) throw unknown();
      if (put && !owns(identity, summary)) throw new HttpError(403, `only the owner of session ${id} uploads its record`);
      // A record only beside the gateway's own: not for a session it did not record, or whose recording retention removed.
      if (put && !['running', 'complete', 'truncated'].includes(summary.recording))
        throw new HttpError(409, `session ${id} has no recording here (${summary.recording}): the gateway takes no CLI record of it`);
    } else if (put) {
      // A run's record is its person's: the run must be one this gateway began for them.
      const run = await runs.get(id);
      if (!run) throw unknown();
      if (!owns(identity, run.owner)) throw new HttpError(403, `run ${id} was not begun by ${identity.subject}; only its person uploads its record`);
    } else {
      const state = await clientRecords.state('runs', id);
      if (!state || !(isAuditor(identity) || owns(identity, state))) throw unknown();
    }
    if (put) {
      if (name === undefined) throw new HttpError(405, 'PUT a file of the record, at …/{file}', { headers: { Allow: 'GET' } });
      await checkFreeSpace('store more records');
      const data = await readBody(req, MAX_RECORD_FILE_BYTES, "a record's files are its chunks, manifests and signatures, as hoop wrote them");
      const owner = { issuer: identity.issuer, subject: identity.subject };
      const { stored, state } = await clientRecords.put(kind, id, name, data, owner, () => store.listDevices(owner));
      if (stored && name.endsWith('.sig')) log.info('client-record.uploaded', { kind, id, subject: identity.subject, state: state.state, fingerprint: state.fingerprint });
      return { status: stored ? 201 : 200, body: { stored, record: state } };
    }
    if (name === undefined) return { status: 200, body: { record: (await clientRecords.state(kind, id)) ?? null, files: await clientRecords.files(kind, id) } };
    if (!RECORDING_FILE.test(name)) throw new HoopError(ErrorCode.SESSION_UNKNOWN, `a record holds no file ${name}`);
    const file = await clientRecords.file(kind, id, name);
    if (file === undefined) throw new HoopError(ErrorCode.SESSION_UNKNOWN, `no such file in this record: ${name}`);
    return { status: 200, body: undefined, file };
  };

  /**
   * `POST /v1/requests` `{ connection, mode?, seconds, reason }`: asks for temporary access under a
   * requestable access rule that admits the caller; its reviewers decide it as any review.
   */
  const requestAccess = (identity: Identity, body: unknown): Review => {
    if (identity.run) throw runForbidden('request');
    if (!policySource) throw new HttpError(404, 'this gateway does not load its policy from a config repo, so it has no requestable access');
    const b = (body ?? {}) as Record<string, unknown>;
    const connection = b.connection;
    const mode = b.mode ?? 'read-only';
    const seconds = b.seconds;
    const reason = b.reason;
    if (typeof connection !== 'string' || connection === '') throw new HttpError(400, 'connection must be a connection name');
    if (mode !== 'read-only' && mode !== 'read-write') throw new HttpError(400, 'mode must be read-only or read-write');
    if (typeof seconds !== 'number' || !Number.isInteger(seconds) || seconds < 1) throw new HttpError(400, 'seconds must be a whole number of seconds, at least 1');
    if (typeof reason !== 'string' || reason.trim() === '' || reason.length > 1000)
      throw new HttpError(400, 'reason must say why, in at most 1000 characters', { hint: 'hoop request <connection> --for 1h --reason "…"' });
    const { policy } = policySource.current();
    const who = whoOf(identity);
    if (!policy.connections.some((c) => c.name === connection)) throw new HoopError(ErrorCode.CONNECTION_UNKNOWN, `the gateway has no connection named "${connection}"`);
    const standing = accessFor(policy, who, connection, reviews.grantsOf(identity));
    if (standing && (standing.mode === 'read-write' || mode === 'read-only'))
      throw new HttpError(409, `${identity.subject} has ${standing.mode} access to "${connection}" already${standing.until ? ` (until ${new Date(standing.until).toISOString()})` : ''}`);
    const rule = requestableRule(policy, who, connection, mode);
    if (!rule)
      throw new HttpError(403, `no access rule lets ${identity.subject} ask for ${mode} access to "${connection}"`, {
        hint: 'an access rule with requestable: true that admits you and names the connection (ask the owners of the policy)',
      });
    const max = rule.maxGrantSeconds ?? DEFAULT_MAX_GRANT_SECONDS;
    if (seconds > max) throw new HttpError(400, `access rule "${rule.name}" grants at most ${describeLength(max)}; ask for less`);
    const settings = reviewSettingsFor(policy, connection, rule.review);
    if (!settings) throw new HttpError(409, `nobody can approve requests under access rule "${rule.name}": it names no reviewers (its review.groups, or statements.reviewers)`);
    const r = reviews.requestAccess({ requester: identity, connection, rule: rule.name, mode, seconds, reason: reason.trim() }, settings);
    log.info('access.requested', { id: r.id, subject: identity.subject, connection, mode, seconds, rule: rule.name });
    return r;
  };

  /**
   * `POST /v1/runs` `{ connections, agent, via, isolation, command? }`: begins an agent's run for
   * the caller (a person's credential), once every connection it names admits the agent; answers
   * the run with its credential and its control credential (./runs.ts).
   */
  const startRun = async (identity: Identity, body: unknown): Promise<Record<string, unknown>> => {
    if (identity.run) throw runForbidden('runs');
    const ask = parseRunAsk(body);
    const principal = { via: ask.via, run: 'run-new', agent: ask.agent, isolated: ask.isolation !== 'none' };
    // A run that may not use what it names is refused now, saying which, rather than at its first session.
    for (const name of ask.connections) {
      if (policySource) policySource.lookup(identity, name, reviews.grantsOf(identity), undefined, principal);
      else lookup(identity, name);
    }
    const { run, token, controlToken } = await runs.create(identity, ask, policySource?.current().policy.runs ?? RUN_DEFAULTS);
    audit?.emit('run.start', {
      run: run.id,
      subject: identity.subject,
      issuer: identity.issuer,
      agent: run.agent,
      via: run.via,
      isolation: run.isolation,
      connections: run.connections,
      expiresAt: run.expiresAt,
    });
    return { ...describeRun(run), token, controlToken };
  };

  /**
   * What an agent's run credential may not do, refused here for every endpoint at once: only who
   * it is, its connections, the policy's commit and the reviews its own statements raised are
   * open to it (tunnels to its connections are admitted as any session).
   */
  const refuseForRun = (method: string, path: string, review: RegExpExecArray | null): void => {
    if (path === '/v1/whoami' || path === '/v1/connections' || CONNECTION_PATH.test(path) || path === '/v1/policy') return;
    if (review && method === 'GET') return; // its own reviews only (mayView)
    throw runForbidden(
      review
        ? 'decide'
        : path === '/v1/requests'
          ? 'request'
          : path === '/v1/devices'
            ? 'devices'
            : path === '/v1/runs'
              ? 'runs'
              : path.startsWith('/v1/runs/') || CLIENT_RECORD_PATH.test(path)
                ? 'records'
                : 'sessions',
    );
  };

  /**
   * Refuses a person's decision (a review's, or asking for access) unless they signed in within
   * the policy's `reviews.requireSignInWithin`, as their token's `auth_time` says: an agent that
   * took a token cannot sign in anew, a person can. Answered as a step-up challenge.
   * @see https://www.rfc-editor.org/rfc/rfc9470 (OAuth 2.0 step-up authentication challenge)
   */
  const requireRecentSignIn = (identity: Identity, what: string): void => {
    const within = policySource?.current().policy.reviews?.requireSignInWithinMs;
    if (within === undefined) return;
    const at = identity.claims.auth_time;
    const age = typeof at === 'number' && Number.isFinite(at) ? Date.now() - at * 1000 : undefined;
    if (age !== undefined && age <= within) return;
    const limit = describeLength(Math.round(within / 1000));
    throw new HttpError(
      401,
      age === undefined
        ? `to ${what}, ${identity.subject} must have signed in within the last ${limit}, and the token does not say when they did (no auth_time)`
        : `to ${what}, ${identity.subject} must have signed in within the last ${limit}; the last sign-in was ${Math.round(age / 60_000)} min ago`,
      {
        code: ErrorCode.SIGN_IN_REQUIRED,
        hint: 'sign in again (hoop login --reauth: your identity provider asks for your credentials), then decide again',
        headers: { 'WWW-Authenticate': `Bearer error="insufficient_user_authentication", error_description="a recent sign-in is required", max_age="${Math.round(within / 1000)}"` },
      },
    );
  };

  /**
   * The person a run's heartbeat brings (`{ personToken }`), verified as any person's token: their
   * identity, or why it was refused for good (the run then ends); none when it brings none, or one
   * that cannot be checked for now (the issuer's keys out of reach: the run ends when the last one
   * it had runs out).
   */
  const heartbeatPerson = async (req: http.IncomingMessage): Promise<Identity | { refused: string } | undefined> => {
    const body = (req.headers['content-length'] ?? '0') === '0' && req.headers['transfer-encoding'] === undefined ? undefined : await readJsonBody(req, MAX_BODY_BYTES);
    const token = (body as { personToken?: unknown } | undefined)?.personToken;
    if (typeof token !== 'string' || isRunToken(token)) return undefined;
    try {
      return await verifier.verify(token);
    } catch (err) {
      log.info('run.person-token-refused', { error: describeError(err) });
      const transient = err instanceof TokenRejectedError && (err.reason === 'discovery-failed' || err.reason === 'unknown-key');
      return transient || !(err instanceof TokenRejectedError) ? undefined : { refused: err.message };
    }
  };

  /** Answers one API request; throws HoopErrors that become JSON error bodies. */
  const route = async (req: http.IncomingMessage, path: string): Promise<{ status: number; body: unknown; headers?: Record<string, string>; file?: string | Buffer }> => {
    const method = req.method ?? 'GET';
    const only = (...methods: string[]): void => {
      if (!methods.includes(method)) throw new HttpError(405, `${method} is not supported here`, { headers: { Allow: methods.join(', ') } });
    };
    if (path === '/healthz') {
      only('GET');
      return { status: 200, body: { status: 'ok', version: VERSION } };
    }
    if (TUNNEL_PATH.test(path)) {
      only('GET');
      throw new HttpError(426, 'this endpoint needs Upgrade: hoop-tunnel/1', { headers: { Upgrade: 'hoop-tunnel/1', Connection: 'Upgrade' } });
    }
    if (path === '/v1/auth/config') {
      only('GET');
      return { status: 200, body: authConfig() };
    }
    if (path === '/v1/keys') {
      only('GET');
      if (!recordings) throw new HttpError(404, 'this gateway does not record sessions', { hint: 'recording.enabled is false in its configuration' });
      return { status: 200, body: { namespace: 'hoop-recording', keys: await recordings.publicKeys() } };
    }
    const one = CONNECTION_PATH.exec(path);
    const recorded = SESSION_PATH.exec(path);
    const clientRecord = CLIENT_RECORD_PATH.exec(path) ?? RUN_PATH.exec(path);
    const review = REVIEW_PATH.exec(path);
    const control = RUN_CONTROL_PATH.exec(path);
    if (control) {
      // The control credential, never a person's nor the run's own: only the hoop that began the run keeps it alive or ends it.
      only('POST');
      const action = control[2] as 'heartbeat' | 'end';
      const run = await runs.control(TokenVerifier.bearerFromHeader(req.headers.authorization), control[1]!, action, action === 'heartbeat' ? await heartbeatPerson(req) : undefined);
      return { status: 200, body: describeRun(run) };
    }
    if (review) only(...(review[2] !== undefined ? ['POST'] : ['GET']));
    else if (path === '/v1/requests' || path === '/v1/runs') only('POST');
    else if (path === '/v1/whoami' || path === '/v1/connections' || path === '/v1/policy' || path === '/v1/sessions' || one || recorded) only('GET');
    else if (path === '/v1/devices') only('GET', 'POST');
    else if (clientRecord) only('GET', ...(clientRecord[2] !== undefined ? ['PUT'] : []));
    else throw new HttpError(404, `no such endpoint: ${path}`);

    const identity = await authenticate(req.headers.authorization);
    connectionGuard?.trust(req.socket);
    if (identity.run) refuseForRun(method, path, review);
    if (path === '/v1/whoami') {
      return {
        status: 200,
        body: {
          subject: identity.subject,
          issuer: identity.issuer,
          kind: identity.kind,
          ...(identity.email !== undefined ? { email: identity.email } : {}),
          groups: identity.groups,
          expiresAt: identity.expiresAt.toISOString(),
          ...(identity.run ? { run: identity.run } : {}),
        },
      };
    }
    if (path === '/v1/runs') return { status: 201, body: await startRun(identity, await readJsonBody(req, MAX_BODY_BYTES)) };
    if (path === '/v1/devices') {
      if (method === 'POST') return registerDevice(req, identity);
      const devices = await store.listDevices({ issuer: identity.issuer, subject: identity.subject });
      return { status: 200, body: { devices: devices.map(describeDevice) } };
    }
    if (review) {
      if (review[2] !== undefined) requireRecentSignIn(identity, `${review[2]} a review`);
      const readBody = async (): Promise<unknown> => ((req.headers['content-length'] ?? '0') === '0' && req.headers['transfer-encoding'] === undefined ? null : readJsonBody(req, MAX_BODY_BYTES));
      return reviewsApi(reviews, req, identity, isAuditor(identity), review, readBody);
    }
    if (path === '/v1/requests') {
      requireRecentSignIn(identity, 'ask for access');
      return { status: 201, body: requestAccess(identity, await readJsonBody(req, MAX_BODY_BYTES)) };
    }
    if (clientRecord) return clientRecordApi(req, identity, path.startsWith('/v1/runs/') ? 'runs' : 'sessions', clientRecord[1]!, clientRecord[2]);
    if (path === '/v1/sessions' || recorded) return sessionsApi(req, identity, path, recorded);
    if (path === '/v1/policy') {
      if (!policySource) throw new HttpError(404, 'this gateway does not load its policy from a config repo');
      const { commit, loadedAt } = policySource.current();
      return { status: 200, body: { commit, loadedAt: loadedAt.toISOString() } };
    }
    if (policySource) {
      if (one) {
        const { connection, grant } = policySource.lookup(identity, decodeURIComponent(one[1]!), reviews.grantsOf(identity));
        return { status: 200, body: await describe(connection, grant.mode, grant.until) };
      }
      return {
        status: 200,
        body: { connections: await Promise.all(policySource.connectionsFor(identity, reviews.grantsOf(identity)).map(({ connection, grant }) => describe(connection, grant.mode, grant.until))) },
      };
    }
    if (one) return { status: 200, body: await describe(lookup(identity, decodeURIComponent(one[1]!))) };
    return { status: 200, body: { connections: await Promise.all(config.connections.filter((c) => mayUse(identity, c)).map((c) => describe(c))) } };
  };

  const onRequest = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    const path = new URL(req.url ?? '/', 'http://gateway').pathname;
    route(req, path).then(
      ({ status, body, headers, file }) => {
        if (!file) return sendJson(res, status, body, headers);
        if (Buffer.isBuffer(file)) {
          res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': file.length, 'Cache-Control': 'no-store' });
          res.end(file);
          return;
        }
        const stream = createReadStream(file);
        stream.once('open', () => {
          res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Cache-Control': 'no-store' });
          stream.pipe(res);
        });
        stream.once('error', (err) => {
          if (res.headersSent) res.destroy();
          else sendJson(res, 404, { error: { code: ErrorCode.SESSION_UNKNOWN, message: `no such file in this recording: ${describeError(err)}` } });
        });
      },
      (err: unknown) => {
        const e = err instanceof HoopError ? err : new HoopError(ErrorCode.INTERNAL, describeError(err));
        if (!(err instanceof HoopError)) log.error('api.error', { path, error: describeError(err) });
        if (!res.headersSent) sendJson(res, errorStatus(e), errorBody(e), authenticateHeaders(e));
      },
    );
  };

  /** Throws RECORDING_UNAVAILABLE when the data disk is below its free-space floor (`what`: what it then cannot do). */
  const checkFreeSpace = async (what: string): Promise<void> => {
    const fs = await statfs(config.dataDir);
    const free = fs.bavail * fs.bsize;
    if (free < config.recording.minFreeBytes) {
      throw new HoopError(
        ErrorCode.RECORDING_UNAVAILABLE,
        `hoop: the gateway's data disk has ${Math.floor(free / 1024 / 1024)} MiB free, under its floor of ${Math.floor(config.recording.minFreeBytes / 1024 / 1024)} MiB, so it cannot ${what}`,
        {
          hint: "try again later, and tell the gateway's operators (free space in its dataDir, or lower recording.minFreeBytes)",
        },
      );
    }
  };
  /** A new session's recording, unless the data disk is below its free-space floor. */
  const startRecording = async (sessionId: string, protocol: ConnectionConfig['type']): Promise<RecordingStream> => {
    await checkFreeSpace('record new sessions');
    if (replica && !replica.reachable) {
      throw new HoopError(ErrorCode.RECORDING_UNAVAILABLE, 'hoop: the gateway cannot reach its store (PostgreSQL), so it cannot record new sessions', {
        hint: "try again in a moment, and tell the gateway's operators (`hoop gateway status` says whether the store answers)",
      });
    }
    return recordings!.start(sessionId, protocol === 'ssh' ? SSH_RECORD_ENCODER : POSTGRES_RECORD_ENCODER, config.recording.checkpointSeconds * 1000);
  };

  const shuttingDown: TunnelErrorBody = { error: { code: ErrorCode.GATEWAY_UNREACHABLE, message: 'the gateway is shutting down' } };
  /** The hoop-mux/1 connections open now: closed at shutdown, once their sessions have ended. */
  const muxes = new Set<MuxConnection>();

  /** Logs why a tunnel (or a hoop-mux/1 connection) is refused, and refuses it with the error's status, body and headers. */
  const refuseTunnel = (err: unknown, fields: Record<string, string>, refuse: TunnelAnswer['refuse']): void => {
    const e = err instanceof HoopError ? err : new HoopError(ErrorCode.INTERNAL, describeError(err));
    log.warn('tunnel.refused', { ...fields, code: e.code, reason: e instanceof TokenRejectedError ? e.reason : undefined, message: e.message });
    refuse(errorStatus(e), errorBody(e), authenticateHeaders(e));
  };

  const onUpgrade = (req: http.IncomingMessage, socket: Duplex, head: Buffer): void => {
    socket.on('error', () => undefined);
    const path = new URL(req.url ?? '/', 'http://gateway').pathname;
    const remoteAddress = `${req.socket.remoteAddress ?? '?'}:${req.socket.remotePort ?? '?'}`;
    if (path === MUX_PATH && isMuxUpgrade(req)) {
      void acceptMuxConnection(req, socket, head, remoteAddress);
      return;
    }
    const match = TUNNEL_PATH.exec(path);
    let name: string | undefined;
    try {
      name = match ? decodeURIComponent(match[1]!) : undefined;
    } catch {
      name = undefined;
    }
    if (name === undefined || !isTunnelUpgrade(req)) {
      rejectUpgrade(socket, 404, { error: { code: ErrorCode.USAGE, message: `no tunnel endpoint at ${path}` } });
      return;
    }
    if (closing) {
      rejectUpgrade(socket, 503, shuttingDown);
      return;
    }
    admitSession(
      { name, headers: req.headers, remoteAddress },
      {
        refuse: (status, body, headers) => rejectUpgrade(socket, status, body, headers),
        accept: (headers) => {
          connectionGuard?.trust(req.socket);
          return acceptTunnel(req, socket, head, headers);
        },
      },
    );
  };

  /**
   * A hoop-mux/1 connection: its Upgrade must carry a valid token (who may hold a connection
   * open), then every session it opens is admitted on its own, with its own token and headers.
   */
  const acceptMuxConnection = async (req: http.IncomingMessage, socket: Duplex, head: Buffer, remoteAddress: string): Promise<void> => {
    if (closing) return rejectUpgrade(socket, 503, shuttingDown);
    try {
      await authenticate(req.headers.authorization);
      connectionGuard?.trust(req.socket);
    } catch (err) {
      return refuseTunnel(err, { remote: remoteAddress }, (status, body, headers) => rejectUpgrade(socket, status, body, headers));
    }
    if (closing) return rejectUpgrade(socket, 503, shuttingDown);
    const mux = acceptMux(socket, head, (stream, request) => {
      if (closing) return stream.refuse(503, shuttingDown);
      admitSession({ name: request.connection, headers: request.headers, remoteAddress }, { refuse: (status, body) => stream.refuse(status, body), accept: (headers) => stream.accept(headers) });
    });
    muxes.add(mux);
    mux.once('close', () => muxes.delete(mux));
  };

  /**
   * Admits one session, however it came (a hoop-tunnel/1 Upgrade or a hoop-mux/1 OPEN): checks
   * who is calling and what they may do, then serves it with the engine of its connection's type.
   */
  const admitSession = (request: TunnelSessionRequest, answer: TunnelAnswer): void => {
    const { name, remoteAddress } = request;
    // The token is handed to the verifier here and not kept: a session holds who it is (its
    // identity), not the bearer token, nor the rest of the request's headers (only what it reads).
    const identified = authenticate(headerOf(request.headers, 'authorization'));
    const asked = {
      sessionId: headerOf(request.headers, 'hoop-session-id'),
      runId: headerOf(request.headers, 'hoop-run-id'),
      client: headerOf(request.headers, 'hoop-client-version'),
      sshKey: headerOf(request.headers, 'hoop-ssh-key'),
      detached: headerOf(request.headers, 'hoop-review') === 'detach',
      via: headerOf(request.headers, 'hoop-via'),
    };
    const started = Date.now();
    const task = (async () => {
      let identity: Identity;
      let connection: ConnectionConfig;
      let policy: SessionPolicy | undefined;
      let policyCommit: string | undefined;
      let stillAllowed: (id: Identity) => boolean;
      /** The session rests on a temporary grant: it ends then. */
      let grantUntil: { until: number; request: string } | undefined;
      let principal: Principal;
      try {
        identity = await identified;
        // How it came: a run's, from its credential; a person's own, as their client says (connect or exec).
        principal = principalOf(identity, asked.via);
        if (policySource) {
          const ps = await policySource.forSession(identity, name, reviews.grantsOf(identity), principal);
          grantUntil = ps.grant.until !== undefined ? { until: ps.grant.until, request: ps.grant.request! } : undefined;
          connection = ps.connection;
          policyCommit = ps.snapshot.commit;
          policy = {
            judge: ps.judge,
            readOnly: ps.readOnly,
            recording: ps.snapshot.policy.recording,
            ...(ps.ssh ? { ssh: ps.ssh } : {}),
            ...(ps.masking ? { masking: ps.masking } : {}),
            ...(ps.maxSessionSeconds !== undefined ? { maxSessionSeconds: ps.maxSessionSeconds } : {}),
            maxSessions: ps.maxSessions,
            limits: ps.limits,
          };
          const pinned = ps.snapshot.policy;
          const mode = ps.grant.mode;
          // A renewed token keeps the session only with the same access under the policy the session started with.
          stillAllowed = (id) => accessFor(pinned, whoOf(id, principal), name, reviews.grantsOf(id))?.mode === mode;
        } else {
          const conn = lookup(identity, name);
          connection = conn;
          policy = options.sessionPolicy?.(identity, conn);
          stillAllowed = (id) => mayUse(id, conn);
        }
      } catch (err) {
        refuseTunnel(err, { connection: name, remote: remoteAddress }, answer.refuse);
        return;
      }
      if (closing) {
        answer.refuse(503, shuttingDown);
        return;
      }
      // Each identity's sessions on this gateway are bounded: one person's (or agent's) idle sessions cannot take every upstream slot.
      const sessionsOf = identitySessions.take(identity, policy?.maxSessions ?? connection.allow?.maxSessions ?? DEFAULT_MAX_SESSIONS_PER_IDENTITY);
      if (sessionsOf instanceof HoopError) {
        refuseTunnel(sessionsOf, { connection: name, remote: remoteAddress }, answer.refuse);
        return;
      }
      // A client proposes its session's id (so both ends name it alike); one in use or already recorded is replaced.
      const sessionId = await claimSessionId(asked.sessionId);
      try {
        // The run is the credential's, never a client's claim (a person's own session belongs to no run).
        const runId = identity.run?.id;
        const recordingPolicy = policy?.recording ?? DEFAULT_RECORDING;
        let recording: RecordingStream | undefined;
        if (recordings) {
          try {
            recording = await startRecording(sessionId, connection.type);
          } catch (err) {
            const e = err instanceof HoopError ? err : new HoopError(ErrorCode.RECORDING_UNAVAILABLE, `the gateway cannot record this session: ${describeError(err)}`);
            log.error('recording.unavailable', { session: sessionId, connection: name, subject: identity.subject, message: e.message, onFailure: recordingPolicy.onFailure });
            if (recordingPolicy.onFailure !== 'continue') {
              answer.refuse(503, errorBody(e));
              return;
            }
          }
        }
        const channel = answer.accept({
          'Hoop-Session-Id': sessionId,
          'Hoop-Gateway-Version': VERSION,
          // The gateway records this session, and takes the CLI's record of it (PUT …/client/{file}), with as many rows as the policy keeps (at most 100).
          ...(recording !== undefined ? { 'Hoop-Client-Record': `rows=${recordingPolicy.results === 'none' ? 0 : Math.min(recordingPolicy.rowCap, CLIENT_RECORD_ROW_CAP)}` } : {}),
          ...(policyCommit !== undefined ? { 'Hoop-Policy-Commit': policyCommit } : {}),
        });
        const who = {
          session: sessionId,
          subject: identity.subject,
          issuer: identity.issuer,
          connection: name,
          remote: remoteAddress,
          via: principal.via,
          ...(runId ? { run: runId } : {}),
          ...(principal.agent !== undefined ? { agent: principal.agent } : {}),
        };
        log.info('tunnel.open', {
          ...who,
          type: connection.type,
          kind: identity.kind,
          expiresAt: identity.expiresAt.toISOString(),
          client: asked.client,
          ...(policyCommit !== undefined ? { policyCommit } : {}),
          ...(policy?.readOnly ? { readOnly: true } : {}),
          ...(policy?.maxSessionSeconds !== undefined ? { maxSessionSeconds: policy.maxSessionSeconds } : {}),
        });
        audit?.emit('session.start', {
          ...who,
          kind: identity.kind,
          groups: identity.groups,
          ...(identity.email !== undefined ? { email: identity.email } : {}),
          type: connection.type,
          ...(asked.client !== undefined ? { client: asked.client } : {}),
          ...(policyCommit !== undefined ? { policyCommit } : {}),
          recorded: recording !== undefined,
        });
        const controller = new AbortController();
        sessions.add(controller);
        // A run's sessions end with it, on whichever replica it ends.
        const unwatchRun = runId
          ? runs.watch(runId, (reason) =>
              controller.abort(new SessionEnd('run-ended', `hoop: run ${runId} ended${reason ? ` (${describeEnd(reason)})` : ''}; its sessions end with it`, 'start the command again with hoop run')),
            )
          : undefined;
        /** The tables the session's statements name, for the index: from the judge's verdicts. */
        const touched = new TablesTouched();
        const judge = policy?.judge;
        const session: TunnelSession = {
          id: sessionId,
          identity,
          connection,
          channel,
          remoteAddress,
          log,
          signal: controller.signal,
          ...(judge
            ? {
                judge: {
                  judge: (sql, analysis) => {
                    const verdict = judge.judge(sql, analysis);
                    touched.addVerdict(verdict.touched);
                    return verdict;
                  },
                },
              }
            : {}),
          ...(policy?.readOnly ? { readOnly: true } : {}),
          ...(policy?.ssh ? { ssh: policy.ssh } : {}),
          ...(asked.sshKey !== undefined ? { sshClientKey: asked.sshKey } : {}),
          ...(policy?.masking ? { masking: policy.masking } : {}),
          ...(policy?.limits ? { limits: policy.limits } : {}),
          ...(audit ? { onRefusal: (r) => audit!.emit('statement.refused', { ...who, ...r }) } : {}),
          reviews: {
            // Each review's request and end are in the session's recording as `review` events.
            request: (ask) =>
              reviews.request(ask, {
                session: sessionId,
                ...(runId ? { run: runId } : {}),
                principal,
                connection: name,
                requester: session.identity,
                // A client that does not wait (hoop exec --no-wait, hoop mcp): its reviews outlive the session.
                ...(asked.detached ? { detached: true } : {}),
                observe: (r) => recording?.event(reviewRecordingEvent(r)),
              }),
          },
        };
        /** What the recording's start and the index say of where the session came from. */
        const facts = {
          connection: name,
          type: connection.type,
          remote: remoteAddress,
          ...(asked.client !== undefined ? { client: asked.client } : {}),
          ...(policyCommit !== undefined ? { policyCommit } : {}),
          ...(runId ? { runId } : {}),
          via: principal.via,
          ...(principal.agent !== undefined ? { agent: principal.agent } : {}),
          ...(identity.run ? { isolated: identity.run.isolated } : {}),
        };
        const counts = { statements: 0, refused: 0 };
        const maskedColumns = new Map<string, string>();
        let recordingFailed = recordings !== undefined && recording === undefined;
        /** The index's line for the session: as it ends, or while it runs. */
        const summarize = (end?: SessionOutcome, tables?: { tables: string[]; written: string[]; tablesComplete: boolean }): SessionSummary => ({
          id: sessionId,
          subject: identity.subject,
          issuer: identity.issuer,
          ...(identity.email !== undefined ? { email: identity.email } : {}),
          groups: identity.groups,
          kind: identity.kind,
          ...facts,
          startedAt: new Date(started).toISOString(),
          ...(end ? { endedAt: new Date().toISOString() } : {}),
          reason: end?.reason ?? 'running',
          statements: counts.statements,
          refused: counts.refused,
          // While it runs, the tables are not known yet: they are read from its statements at the end.
          ...(tables ?? { tables: [], written: [], tablesComplete: false }),
          maskedColumns: [...maskedColumns].map(([column, strategy]) => ({ column, strategy })).sort((a, b) => a.column.localeCompare(b.column)),
          recording: recording === undefined ? 'none' : recordingFailed ? 'failed' : end ? 'complete' : 'running',
          bytesFromClient: end?.bytesFromClient ?? 0,
          bytesToClient: end?.bytesToClient ?? 0,
        });
        if (recording) {
          // A failure to write: from then on nothing more is written; the policy's `onFailure` says what becomes of the session.
          recording.onFailure = (err) => {
            recordingFailed = true;
            log.error('recording.failed', { ...who, error: describeError(err), onFailure: recordingPolicy.onFailure });
            if (recordingPolicy.onFailure === 'close') {
              controller.abort(
                new SessionEnd(
                  'recording-failed',
                  'hoop: this session can no longer be recorded, so the gateway ended it',
                  "connect again; if it happens again, tell the gateway's operators (its data disk may be full)",
                ),
              );
            }
          };
          recording.event({
            t: 'start',
            at: started,
            session: sessionId,
            identity: { subject: identity.subject, issuer: identity.issuer, kind: identity.kind, groups: identity.groups, ...(identity.email !== undefined ? { email: identity.email } : {}) },
            ...facts,
            gateway: VERSION,
          });
          session.recording = {
            stream: recording,
            results: recordingPolicy.results,
            rowCap: recordingPolicy.rowCap,
            ...(recordingPolicy.sshInput ? { sshInput: recordingPolicy.sshInput } : {}),
            notes: {
              statement: () => counts.statements++,
              sql: (text) => {
                // With a judge, its verdicts name the tables (see above); without one the SQL is read at the end.
                if (!session.judge) touched.addText(text);
              },
              refused: () => counts.refused++,
              masked: (column, strategy) => {
                if (maskedColumns.size < 1000) maskedColumns.set(column, strategy);
              },
            },
          };
        }
        if (recording) {
          // What the client says about why (an MCP tool call and the agent's intent): recorded as its claim, bounded.
          let budget = CONTEXT_BUDGET;
          channel.on('control', (m: ControlMessage) => {
            if (m.type !== 'context' || budget <= 0) return;
            const fields = clientContext(m.fields);
            if (!fields) return;
            budget -= Object.values(fields).reduce((n, v) => n + v.length, 0);
            // Past its budget, or while the disk is behind, a session's claims are no longer recorded: said once.
            if (budget <= 0 || recording.behind) {
              budget = 0;
              recording.event({ t: 'context-dropped', at: Date.now() });
              return;
            }
            recording.event({ t: 'context', at: Date.now(), ...fields }); // fields never hold t or at (clientContext)
          });
        }
        const watch = watchSessionToken({
          session,
          verifier,
          toleranceSeconds: (id) => verifier.issuerConfig(id.issuer)?.clockToleranceSeconds ?? config.issuers.find((i) => i.issuer === id.issuer)?.clockToleranceSeconds ?? 0,
          mayUse: stillAllowed,
          end: (reason) => controller.abort(reason),
          log,
          logFields: who,
        });
        let limit: NodeJS.Timeout | undefined;
        if (policy?.maxSessionSeconds !== undefined) {
          const seconds = policy.maxSessionSeconds;
          const ms = Math.min(MAX_TIMER_MS, Math.max(0, Math.round(seconds * 1000 * (options.sessionLimitScale ?? 1))));
          limit = setTimeout(() => {
            log.info('tunnel.session-limit', { ...who, maxSessionSeconds: seconds });
            controller.abort(new SessionEnd('session-limit', `hoop: this session reached its maximum length of ${describeLength(seconds)}`, 'connect again'));
          }, ms);
          limit.unref();
        }
        let grantEnd: NodeJS.Timeout | undefined;
        if (grantUntil) {
          const { until, request } = grantUntil;
          grantEnd = setTimeout(
            () => {
              log.info('tunnel.grant-expired', { ...who, request });
              controller.abort(
                new SessionEnd(
                  'grant-expired',
                  `hoop: your temporary access to "${name}" (request ${request}) ended at ${new Date(until).toISOString()}`,
                  `ask again: hoop request ${name} --for 1h --reason "…"`,
                ),
              );
            },
            Math.min(MAX_TIMER_MS, Math.max(0, until - Date.now())),
          );
          grantEnd.unref();
        }
        let outcome: SessionOutcome;
        if (recordings) {
          running.set(sessionId, summarize);
          recordings.archive.started(summarize());
        }
        try {
          // A client that left while it was being admitted has nothing to serve.
          outcome = channel.destroyed ? { reason: 'client-disconnected', bytesFromClient: 0, bytesToClient: 0, detail: 'the client left before its session opened' } : await serve(session);
        } catch (err) {
          log.error('engine.error', { ...who, error: describeError(err) });
          channel.destroy();
          outcome = { reason: 'internal-error', bytesFromClient: 0, bytesToClient: 0, detail: describeError(err) };
        } finally {
          watch.stop();
          unwatchRun?.();
          clearTimeout(limit);
          clearTimeout(grantEnd);
          sessions.delete(controller);
        }
        if (!channel.destroyed) {
          // The session is over: give the client a moment to read the last bytes and close, then cut it.
          if (!channel.writableEnded) channel.end();
          lingering.add(channel);
          channel.once('close', () => lingering.delete(channel));
          setTimeout(() => channel.destroy(), SESSION_LINGER_MS).unref();
        }
        log.info('tunnel.close', {
          ...who,
          reason: outcome.reason,
          ...(outcome.detail ? { detail: outcome.detail } : {}),
          bytesFromClient: outcome.bytesFromClient,
          bytesToClient: outcome.bytesToClient,
          durationMs: Date.now() - started,
        });
        audit?.emit('session.end', {
          ...who,
          reason: outcome.reason,
          statements: counts.statements,
          refused: counts.refused,
          bytesFromClient: outcome.bytesFromClient,
          bytesToClient: outcome.bytesToClient,
          durationMs: Date.now() - started,
        });
        if (recordings) {
          if (recording) {
            recording.event({
              t: 'end',
              at: Date.now(),
              reason: outcome.reason,
              ...(outcome.detail ? { detail: outcome.detail } : {}),
              bytesFromClient: outcome.bytesFromClient,
              bytesToClient: outcome.bytesToClient,
            });
            await recording.close().catch((err: unknown) => {
              if (!recordingFailed) log.error('recording.failed', { ...who, error: describeError(err) });
              recordingFailed = true;
            });
          }
          const summary = summarize(outcome, await touched.summary().catch(() => undefined));
          // Listed as running until the index has it: never neither.
          await recordings
            .index(summary)
            .catch((err: unknown) => log.error('recording.index-failed', { ...who, error: describeError(err) }))
            .finally(() => running.delete(sessionId));
        }
      } finally {
        // Whatever happened above: the id is free again, the session no longer listed as running nor counted as its identity's.
        claimed.delete(sessionId);
        running.delete(sessionId);
        sessionsOf.release();
      }
    })();
    live.add(task);
    void task.finally(() => live.delete(task));
  };

  const serverOptions: http.ServerOptions = { headersTimeout: 10_000, requestTimeout: 30_000, keepAliveTimeout: 5_000, connectionsCheckingInterval: 1_000, noDelay: true };
  const firstRequestMs = options.firstRequestTimeoutMs ?? 10_000;
  const server = useTls
    ? https.createServer(
        { ...serverOptions, handshakeTimeout: firstRequestMs, cert: config.tls!.cert, key: config.tls!.key, minVersion: 'TLSv1.2', ciphers: TLS_CIPHERS, honorCipherOrder: true },
        onRequest,
      )
    : http.createServer(serverOptions, onRequest);
  server.on('upgrade', onUpgrade);
  // Before an identity stands behind it: a connection that sends no request in time is closed (and the TLS handshake has as long), and each source holds only so many.
  connectionGuard = guardConnections(server, useTls ? 'secureConnection' : 'connection', { ms: firstRequestMs, perAddress: options.strangerConnectionsPerAddress ?? 256 });
  // An HTTP request that cannot be parsed gets a 400; anything else (a TLS handshake that failed or
  // timed out: https hands its tlsClientError here) has no HTTP to answer in, and is closed.
  server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    log.debug('http.client-error', { error: describeError(err) });
    if (socket.writable && err.code?.startsWith('HPE_')) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
    else socket.destroy();
  });

  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err) => reject(new HoopError(ErrorCode.LISTEN_FAILED, `cannot listen on ${config.listen.host}:${config.listen.port}: ${describeError(err)}`, { cause: err })));
      server.listen(config.listen.port, config.listen.host, () => resolve());
    });
  } catch (err) {
    await replica?.stop();
    await recordings?.stop();
    await policySource?.close();
    if (ownStore) await store.close();
    throw err;
  }
  const port = (server.address() as AddressInfo).port;
  const host = config.listen.host.includes(':') ? `[${config.listen.host}]` : config.listen.host;
  const url = `${useTls ? 'https' : 'http'}://${host}:${port}`;
  await replica?.listening(url);
  log.info('gateway.listening', {
    url,
    tls: useTls,
    connections: (policySource ? policySource.current().policy.connections : config.connections).map((c) => c.name),
    ...(policySource ? { policyCommit: policySource.current().commit } : {}),
  });

  return {
    url,
    port,
    get activeSessions() {
      return live.size;
    },
    policy: policySource,
    async close() {
      closing = true;
      clearInterval(pruning);
      const end = new SessionEnd('gateway-shutdown', 'hoop: the gateway is shutting down', 'connect again in a moment');
      for (const controller of sessions) controller.abort(end);
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      await Promise.allSettled([...live]);
      reviews.close();
      await reviews.flushed();
      await runs.close();
      await audit?.close(); // the ended sessions' last events
      await recordings?.stop();
      await replica?.stop();
      for (const channel of lingering) channel.destroy();
      for (const mux of muxes) mux.close();
      const grace = setTimeout(() => server.closeAllConnections(), 5_000);
      await closed;
      clearTimeout(grace);
      await policySource?.close();
      if (ownStore) await store.close();
      log.info('gateway.stopped', {});
    },
  };
}
