/**
 * Admitting a session, however it came (a hoop-tunnel/1 Upgrade, a hoop-mux/1 OPEN, or a direct
 * client signed in with a direct credential at the gateway's port), in explicit
 * steps: who is calling and what the policy lets them do on the connection ({@link authorize}),
 * the identity's bound on open sessions, the session's id, its recording, the channel accepted,
 * what ends it early (its token, its run, its maximum length, a temporary grant), and its engine
 * serving it. What the log, the audit stream, the recording and the index say of it, they hear
 * from the session's owner ({@link LiveSession}).
 */
import { GATEWAY_SESSION_ID, SESSION_ID } from '../../api/answers.js';
import { randomUUID } from 'node:crypto';
import type { ConnectionConfig } from '../../config/connection.js';
import { type Clock, realClock } from '../../clock.js';
import { ErrorCode, HoopError, describeError } from '../../errors.js';
import type { Identity } from '../../identity.js';
import { accessFor } from '../../policy/access.js';
import { directPrincipal, principalOf, type Principal } from '../../policy/principal.js';
import { alertSubject } from '../alerts/alerts.js';
import type { RecordingPolicy } from '../../policy/schema.js';
import { stillIncludes, type DatabaseAccess } from '../../policy/database-access.js';
import { CLIENT_RECORD_ROW_CAP } from '../../postgres/pipeline/recording/records.js';
import { type Engine, SessionEnd, type SessionOutcome, type TunnelSession } from '../../session/engine.js';
import type { Runbook } from '../../policy/schema.js';
import { mayRun } from '../../policy/runbooks.js';
import type { TunnelErrorBody, TunnelSessionRequest } from '../../tunnel/accept.js';
import { BytesSentTally } from './bytes-sent.js';
import type { SessionChannel } from '../../session/engine.js';
import { describeLength } from '../../text-format.js';
import { VERSION } from '../../version.js';
import { mayUse } from '../identity/access.js';
import type { Callers } from './callers.js';
import { type EngineRegistry, engineFor } from '../parts/engines.js';
import { errorBody, errorHeaders, errorStatus, asHoopError } from '../http/respond.js';
import { DEFAULT_MAX_SESSIONS_PER_IDENTITY, SessionSlots } from './session-slots.js';
import { PostgresSlots } from './session-slots-postgres.js';
import type { GatewayParts } from '../parts/parts.js';
import { type PolicySession, type PolicySnapshot, whoOf } from '../config/policy-source.js';
import { describeEnd } from '../runs/runs.js';
import { LiveSession, type SessionEvents, type SessionOrigin, type SessionWho } from './live-session.js';
import { openRecording, startRecording } from './session-recording.js';
import { watchSessionToken } from './session-token.js';
import { directIdentity, watchDirectSession, type DirectRecord } from '../credentials/direct-credentials.js';
import { TokenRejectedError } from '../identity/verify-token.js';
import type { LaneTerms, ReviewAsk, SessionHttp, SessionJudge, SessionMasking, SessionMcp, SessionSsh, StatementVerdict } from '../../session/engine.js';
import { isSecretParam, redactDetected, redactionMarker, redactSql, secretParameters, valuesHiddenFromReview } from '../../policy/sql/redact.js';
import type { DetectorName } from '../../policy/masking/detectors.js';
import type { SessionLimits } from '../../policy/limits.js';

/** Recording without a policy repo. */
const DEFAULT_RECORDING: RecordingPolicy = { results: 'masked', rowCap: 1000, onFailure: 'close', auditors: [] };
/** How long a finished session's tunnel may stay open for the client to read its last bytes. */
const SESSION_LINGER_MS = 5_000;

export const SHUTTING_DOWN: TunnelErrorBody = { error: { code: ErrorCode.GATEWAY_UNREACHABLE, message: 'the gateway is shutting down' } };

/** Logs why a tunnel (or a hoop-mux/1 connection) is refused, and refuses it with the error's status, body and headers. */
export function refuseTunnel(parts: GatewayParts, err: unknown, fields: Record<string, string>, refuse: SessionAnswer['refuse']): void {
  const e = asHoopError(err);
  parts.log.warn('tunnel.refused', { ...fields, code: e.code, reason: e instanceof TokenRejectedError ? e.reason : undefined, message: e.message });
  refuse(errorStatus(e), errorBody(e), errorHeaders(e));
}

/** A header of a session's request, when it was given once (a repeated one is as if absent). */
function headerOf(headers: TunnelSessionRequest['headers'], name: string): string | undefined {
  const value = headers[name];
  return typeof value === 'string' ? value : undefined;
}

/** How a session is answered: refused (a status and body, said in the client's protocol), or accepted with the channel it runs on. */
export interface SessionAnswer {
  refuse(status: number, body: TunnelErrorBody, headers?: Record<string, string>): void;
  accept(headers: Record<string, string>): SessionChannel;
}

/** What a session's client asks for in its request's headers (a direct client: its credential). */
interface Asked {
  sessionId: string | undefined;
  client: string | undefined;
  sshKey: string | undefined;
  /** HTTP: the local port's per-run path (`Hoop-Http-Prefix`). */
  httpPrefix?: string | undefined;
  /** A client that does not wait for reviews (hoop exec --no-wait, hoop mcp): its reviews outlive the session. */
  detached: boolean;
  via: string | undefined;
  /** A direct client's credential (its principal is the credential's, its life the credential's), and how its engine serves it (its startup was read). */
  direct?: { record: DirectRecord; protocol: 'postgres' | 'mysql' | 'http'; serve: (session: TunnelSession) => Promise<SessionOutcome> };
  /** A runbook's run (../api/runbook-run.ts): the runbook, as found in `snapshot` by its caller as `principal`, and what drives its session on its engine. */
  runbook?: RunbookAsked;
}

/** A runbook's run, as admitted. */
export interface RunbookAsked {
  runbook: Runbook;
  /** SSH: the public key the run signs in to its session with. */
  clientKey?: string;
  snapshot: PolicySnapshot;
  principal: Principal;
  serve: (session: TunnelSession, engine: Engine) => Promise<SessionOutcome>;
}

/** What the policy lets a caller do on a connection, for one session. */
interface Authorized {
  identity: Identity;
  principal: Principal;
  connection: ConnectionConfig;
  policy: SessionPolicy | undefined;
  policyCommit: string | undefined;
  /** Whether a renewed token keeps the session. */
  stillAllowed: (id: Identity) => boolean;
  /** The session rests on a temporary grant: it ends then. */
  grantUntil: { until: number; request: string } | undefined;
}

/** What a session may do without a policy repo (GatewayOptions.sessionPolicy), or as the policy repo says. */
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
  /** MCP: what the session may call, read and see. */
  mcp?: SessionMcp;
  /** HTTP: what the session may request. */
  http?: SessionHttp;
  /** PostgreSQL: the database roles and databases the session may pick (default: the connection's own). */
  databaseAccess?: DatabaseAccess;
}

/** Options of {@link SessionAdmission} (tests). */
export interface AdmissionOptions {
  sessionPolicy?: ((identity: Identity, connection: ConnectionConfig) => SessionPolicy | undefined) | undefined;
  /** The clock of sessions' timers (their maximum length, a grant's end, a direct credential's expiry); tests hold it to fire them when they choose. */
  clock?: Clock | undefined;
  /** How often the bytes sent to each client are told (default BYTES_TICK_MS of ./bytes-sent.ts). */
  bytesTickMs?: number | undefined;
}

/** Admits, serves and ends the gateway's sessions; knows every live one. */
export class SessionAdmission {
  /** Set at shutdown: no new session is admitted. */
  closing = false;
  /** Each live session's controller, with whom it serves (an alert that suspends them ends it). */
  readonly #controllers = new Map<AbortController, { identity: Identity; agent: string | undefined }>();
  readonly #live = new Set<Promise<unknown>>();
  readonly #lingering = new Set<SessionChannel>();
  readonly #claimed = new Set<string>();
  readonly #slots: SessionSlots;
  readonly #bytesSent: BytesSentTally;

  constructor(
    private readonly parts: GatewayParts,
    private readonly callers: Callers,
    private readonly engines: EngineRegistry,
    private readonly events: SessionEvents,
    private readonly o: AdmissionOptions,
  ) {
    this.#slots = new SessionSlots(parts.replica ? new PostgresSlots(parts.replica, parts.log) : undefined);
    this.#bytesSent = new BytesSentTally((event, fields) => parts.events.emit(event, fields), o.bytesTickMs);
    parts.alerts.onSuspend((alert, matches) => {
      const end = new SessionEnd(
        'alert-suspended',
        `hoop: ${alertSubject(alert)} is suspended by alert ${alert.id} (${alert.rule})`,
        `hoop alerts ls shows it; a member of the groups that may clear it can: hoop alerts clear ${alert.id}`,
      );
      for (const [c, who] of this.#controllers) if (matches(who.identity, who.agent)) c.abort(end);
    });
  }

  /** Sessions being admitted or served. */
  get active(): number {
    return this.#live.size;
  }

  /**
   * Admits one session, in the background; `answer` refuses or accepts it. The token is handed to
   * the verifier here and not kept: a session holds who it is, not the bearer token, nor the rest
   * of the request's headers (only what it reads).
   */
  admit(request: TunnelSessionRequest, answer: SessionAnswer): void {
    // remoteAddress is `address:port`.
    const remote = request.remoteAddress.slice(0, Math.max(0, request.remoteAddress.lastIndexOf(':'))) || request.remoteAddress;
    const identified = this.callers.authenticate(headerOf(request.headers, 'authorization'), { remote, at: 'tunnel' });
    const asked: Asked = {
      sessionId: headerOf(request.headers, 'hoop-session-id'),
      client: headerOf(request.headers, 'hoop-client-version'),
      sshKey: headerOf(request.headers, 'hoop-ssh-key'),
      httpPrefix: headerOf(request.headers, 'hoop-http-prefix'),
      detached: headerOf(request.headers, 'hoop-review') === 'detach',
      via: headerOf(request.headers, 'hoop-via'),
    };
    const task = this.#admit(request.name, request.remoteAddress, identified, asked, answer);
    this.#live.add(task);
    void task.finally(() => this.#live.delete(task));
  }

  /**
   * Admits a direct client signed in with the credential `record` (../../postgres/gateway/direct-front.ts),
   * in the background; `serve` runs its session on the engine, its startup read. A refusal is
   * said in the client's protocol by `refuse`. An HTTP client's requests begin with `httpPrefix`.
   */
  admitDirect(
    record: DirectRecord,
    protocol: 'postgres' | 'mysql' | 'http',
    remoteAddress: string,
    answer: SessionAnswer,
    serve: (session: TunnelSession) => Promise<SessionOutcome>,
    httpPrefix?: string,
  ): void {
    const asked: Asked = {
      sessionId: undefined,
      client: undefined,
      sshKey: undefined,
      detached: false,
      via: undefined,
      direct: { record, protocol, serve },
      ...(httpPrefix !== undefined ? { httpPrefix } : {}),
    };
    const task = this.#admit(record.connection, remoteAddress, Promise.resolve(directIdentity(record)), asked, answer);
    this.#live.add(task);
    void task.finally(() => this.#live.delete(task));
  }

  /**
   * Admits a run of a runbook by `identity` (../api/runbook-run.ts), in the background, as a session
   * of its own on the runbook's connection; `serve` drives it (its client is the gateway itself).
   */
  admitRunbook(identity: Identity, run: RunbookAsked, remoteAddress: string, answer: SessionAnswer): void {
    const asked: Asked = { sessionId: undefined, client: undefined, sshKey: run.clientKey, detached: true, via: run.principal.via, runbook: run };
    const task = this.#admit(run.runbook.connection, remoteAddress, Promise.resolve(identity), asked, answer);
    this.#live.add(task);
    void task.finally(() => this.#live.delete(task));
  }

  /** Ends every live session with `reason`. */
  endAll(reason: SessionEnd): void {
    for (const c of this.#controllers.keys()) c.abort(reason);
  }

  /** Resolves once every session has ended; then cuts the channels still lingering. */
  async drained(): Promise<void> {
    await Promise.allSettled([...this.#live]);
    for (const channel of this.#lingering) channel.destroy();
    await this.#slots.flush();
  }

  async #admit(name: string, remoteAddress: string, identified: Promise<Identity>, asked: Asked, answer: SessionAnswer): Promise<void> {
    const refuse = (err: unknown): void => refuseTunnel(this.parts, err, { connection: name, remote: remoteAddress }, answer.refuse);
    const started = realClock.now();
    let authorized: Authorized;
    try {
      authorized = await this.#authorize(await identified, name, asked);
    } catch (err) {
      return refuse(err);
    }
    if (this.closing) return answer.refuse(503, SHUTTING_DOWN);
    const { identity, connection, policy } = authorized;
    // A credential serves its connection at that protocol's port only (a MySQL connection's at the MySQL port).
    if (asked.direct && connection.type !== asked.direct.protocol) {
      return refuse(
        new HoopError(ErrorCode.USAGE, `"${name}" is a ${connection.type} connection: its direct clients connect at the gateway's ${connection.type === 'mysql' ? 'MySQL port' : 'main port'}`),
      );
    }
    // An alert that suspends this identity (its run, its agent) refuses it until someone clears it.
    const suspended = this.parts.alerts.refusal(identity, authorized.principal.agent);
    if (suspended) return refuse(suspended);
    // Each identity's sessions are bounded: one person's (or agent's) idle sessions cannot take every upstream slot; and each PostgreSQL connection's, whoever's: the server keeps slots for others.
    const max = policy?.maxSessions ?? connection.allow?.maxSessions ?? DEFAULT_MAX_SESSIONS_PER_IDENTITY;
    const ceiling = connection.type !== 'ssh' && connection.maxSessions !== undefined ? { name: connection.name, max: connection.maxSessions } : undefined;
    const slot = await this.#slots.take(identity, max, ceiling).catch((err: unknown) => asHoopError(err));
    if (slot instanceof HoopError) return refuse(slot);
    // A client proposes its session's id (so both ends name it alike); one in use or already recorded is replaced.
    const sessionId = await this.#claimSessionId(asked.sessionId);
    try {
      await this.#serve(sessionId, authorized, asked, remoteAddress, answer, started);
    } finally {
      // Whatever happened: the id is free again, and no longer counted as its identity's. (Its index
      // observer lists it as running, then as it ended until the index has it: ./session-events.ts.)
      this.#claimed.delete(sessionId);
      slot.release();
    }
  }

  /** Who is calling, and what the policy (or without a policy repo, the configuration) lets them do on connection `name`. */
  async #authorize(identity: Identity, name: string, asked: Asked): Promise<Authorized> {
    const { policySource, reviews } = this.parts;
    // How it came: a run's, from its credential; a direct client's, from its credential; a person's own, as their client says (connect or exec).
    const principal = asked.runbook ? asked.runbook.principal : asked.direct ? directPrincipal(identity) : principalOf(identity, asked.via);
    if (asked.runbook) return this.#authorizeRunbook(identity, asked.runbook);
    if (!policySource) {
      const connection = this.callers.lookup(identity, name);
      return { identity, principal, connection, policy: this.o.sessionPolicy?.(identity, connection), policyCommit: undefined, stillAllowed: (id) => mayUse(id, connection), grantUntil: undefined };
    }
    const ps = await policySource.forSession(identity, name, reviews.grantsOf(identity), principal);
    const pinned = ps.snapshot.policy;
    const mode = ps.grant.mode;
    return {
      identity,
      principal,
      connection: ps.connection,
      policyCommit: ps.snapshot.commit,
      policy: sessionPolicyOf(ps),
      // A renewed token keeps the session only with the same access under the policy the session started with.
      stillAllowed: (id) => {
        const now = accessFor(pinned, whoOf(id, principal), name, reviews.grantsOf(id));
        // The role and database the session signed in as must still be allowed: so must everything it could pick.
        return now?.mode === mode && stillIncludes(now.databaseAccess, ps.databaseAccess);
      },
      grantUntil: ps.grant.until !== undefined ? { until: ps.grant.until, request: ps.grant.request! } : undefined,
    };
  }

  /** What a runbook's run may do: the runbook's own grant, needing no access rule, and the policy's statement rules and masking. */
  async #authorizeRunbook(identity: Identity, { runbook, snapshot, principal }: RunbookAsked): Promise<Authorized> {
    const ps = await this.parts.policySource!.forRunbook(identity, runbook, snapshot, principal);
    return {
      identity,
      principal,
      connection: ps.connection,
      policyCommit: snapshot.commit,
      policy: sessionPolicyOf(ps),
      // A renewed token keeps the run while the runbook still admits it.
      stillAllowed: (id) => mayRun(runbook, id, principal),
      grantUntil: undefined,
    };
  }

  /**
   * The new session's id: the one its client proposed when nobody ever had it (claimed in the
   * archive, atomically across replicas, so that no recording is written over or mixed with
   * another's), else a new one. The gateway's own ids are UUIDs, a shape no proposal may take
   * ({@link GATEWAY_SESSION_ID}): nobody else can have one, so it needs no claim (no wait for the
   * store or the disk before the session starts).
   */
  async #claimSessionId(requested: string | undefined): Promise<string> {
    const { recordings } = this.parts;
    if (requested !== undefined && SESSION_ID.test(requested) && !GATEWAY_SESSION_ID.test(requested) && !this.#claimed.has(requested)) {
      this.#claimed.add(requested);
      // When the store cannot say, the id counts as taken.
      if (!recordings || (await recordings.claim(requested).catch(() => false))) return requested;
      this.#claimed.delete(requested);
    }
    const id = randomUUID();
    this.#claimed.add(id);
    return id;
  }

  /** Records, accepts and serves an authorized session to its end. */
  async #serve(sessionId: string, a: Authorized, asked: Asked, remoteAddress: string, answer: SessionAnswer, started: number): Promise<void> {
    const { parts } = this;
    const { identity, connection, policy, principal, policyCommit } = a;
    const name = connection.name;
    const engine = engineFor(this.engines, connection);
    // The run is the credential's, never a client's claim (a person's own session belongs to no run).
    const runId = identity.run?.id;
    const recordingPolicy = policy?.recording ?? DEFAULT_RECORDING;
    let recording: Awaited<ReturnType<typeof openRecording>>;
    try {
      recording = await openRecording(parts, engine, sessionId, recordingPolicy, { connection: name, subject: identity.subject });
    } catch (err) {
      return answer.refuse(503, errorBody(asHoopError(err)));
    }
    const detectors = policy?.masking?.policy.detectors.map((d) => d.detector) ?? [];
    const channel = answer.accept({
      'Hoop-Session-Id': sessionId,
      'Hoop-Gateway-Version': VERSION,
      // The gateway records this session, and takes the CLI's record of it (PUT …/client/{file}), with as many rows as the policy keeps (at most 100), what its detectors find redacted.
      ...(recording !== undefined
        ? {
            'Hoop-Client-Record': `rows=${recordingPolicy.results === 'none' ? 0 : Math.min(recordingPolicy.rowCap, CLIENT_RECORD_ROW_CAP)}${detectors.length > 0 ? `;detectors=${detectors.join(',')}` : ''}`,
          }
        : {}),
      ...(policyCommit !== undefined ? { 'Hoop-Policy-Commit': policyCommit } : {}),
    });
    const who: SessionWho = {
      session: sessionId,
      subject: identity.subject,
      issuer: identity.issuer,
      connection: name,
      remote: remoteAddress,
      via: principal.via,
      ...(runId ? { run: runId } : {}),
      ...(principal.agent !== undefined ? { agent: principal.agent } : {}),
    };
    const live = new LiveSession(
      {
        who,
        identity,
        connection,
        origin: originOf(a, asked, remoteAddress),
        started,
        policyCommit,
        readOnly: policy?.readOnly === true,
        maxSessionSeconds: policy?.maxSessionSeconds,
        recording,
        recordingFailed: parts.recordings !== undefined && recording === undefined,
        judged: policy?.judge !== undefined,
      },
      this.events,
    );
    const controller = new AbortController();
    this.#controllers.set(controller, { identity, agent: principal.agent });
    // An alert raised while this session was being admitted ends it now (its suspension ended the live ones).
    const suspendedMeanwhile = parts.alerts.suspension(identity, principal.agent);
    if (suspendedMeanwhile)
      controller.abort(new SessionEnd('alert-suspended', `hoop: ${alertSubject(suspendedMeanwhile)} is suspended by alert ${suspendedMeanwhile.id} (${suspendedMeanwhile.rule})`));
    const session = this.#session(live, channel, controller.signal, a, asked);
    const unwatchDisk = recording ? startRecording(live, recording, session, recordingPolicy, parts, (reason) => controller.abort(reason)) : undefined;
    const stopWatching = this.#watch(live, session, a, asked.direct?.record, (reason) => controller.abort(reason));
    const tellBytesSent = this.#bytesSent.watch(who, channel);
    live.opened();
    let outcome: SessionOutcome;
    try {
      // A client that left while it was being admitted has nothing to serve.
      outcome = channel.destroyed
        ? { reason: 'client-disconnected', bytesFromClient: 0, bytesToClient: 0, detail: 'the client left before its session opened' }
        : await (asked.direct ? asked.direct.serve(session) : asked.runbook ? asked.runbook.serve(session, engine as Engine) : engine.serve(session));
    } catch (err) {
      parts.log.error('engine.error', { ...who, error: describeError(err) });
      channel.destroy();
      outcome = { reason: 'internal-error', bytesFromClient: 0, bytesToClient: 0, detail: describeError(err) };
    } finally {
      stopWatching();
      unwatchDisk?.();
      live.bytesTold = tellBytesSent();
      this.#controllers.delete(controller);
    }
    this.#linger(channel);
    await this.events.ended(live, outcome);
  }

  /** The session an engine serves: who, where, and the policy's parts for it. */
  #session(live: LiveSession, channel: SessionChannel, signal: AbortSignal, { policy, principal }: Authorized, asked: Asked): TunnelSession {
    const { parts } = this;
    const { who, identity, connection, touched } = live;
    const judge = policy?.judge;
    const session: TunnelSession = {
      id: who.session,
      identity,
      connection,
      channel,
      ...(asked.direct ? { direct: true } : {}),
      remoteAddress: who.remote,
      log: parts.log,
      signal,
      // The tables the session's statements name, for the index: from the judge's verdicts.
      ...(judge
        ? {
            judge: {
              judge: (sql, analysis) => {
                const verdict = judge.judge(sql, analysis);
                touched.addVerdict(verdict.touched);
                return verdict;
              },
              ...(judge.ownBackend ? { ownBackend: (pid: number) => judge.ownBackend!(pid) } : {}),
              ...(judge.limitsRows ? { limitsRows: true } : {}),
              ...(judge.tableRules && judge.judgeUnder ? { tableRules: true, judgeUnder: noting(judge.judgeUnder.bind(judge), (v) => touched.addVerdict(v.touched)) } : {}),
            },
          }
        : {}),
      ...(policy?.readOnly ? { readOnly: true } : {}),
      lane: laneTerms(connection.type, policy, asked),
      ...(policy?.masking ? { masking: policy.masking } : {}),
      ...(policy?.limits ? { limits: policy.limits } : {}),
      report: live,
      reviews: {
        // Each review's request and end are in the session's recording as `review` events.
        // What a reviewer sees of a request is what its recording keeps: its secrets redacted.
        request: (ask) =>
          parts.reviews.request(
            redactedAsk(ask, asked.runbook ? 'runbook' : connection.type, {
              ...(parts.recordings ? { key: parts.recordings.redactionKey } : {}),
              detectors: policy?.masking?.policy.detectors.map((d) => d.detector) ?? [],
            }),
            {
              session: who.session,
              ...(who.run ? { run: who.run } : {}),
              principal,
              connection: connection.name,
              requester: session.identity,
              ...(asked.detached ? { detached: true } : {}),
              ...(live.intent !== undefined ? { intent: live.intent } : {}),
              ...(session.identity.run?.prompt !== undefined ? { prompt: session.identity.run.prompt } : {}),
              observe: (r) => live.reviewed(r),
            },
          ),
      },
    };
    return session;
  }

  /** What ends the session before its client does: its token running out (unless renewed), its run ending, its maximum length, its temporary grant. Returns what stops watching. */
  #watch(live: LiveSession, session: TunnelSession, a: Authorized, direct: DirectRecord | undefined, end: (reason: SessionEnd) => void): () => void {
    const { log, runs, verifier, config } = this.parts;
    const { who } = live;
    // A tunnel lives on its token (renewed by its client), a direct session on its credential.
    const stopLifetime = direct
      ? watchDirectSession({ session, credentials: this.parts.directs, record: direct, mayUse: a.stillAllowed, end, log, logFields: who })
      : watchSessionToken({
          session,
          verifier,
          toleranceSeconds: (id) => verifier.issuerConfig(id.issuer)?.clockToleranceSeconds ?? config.issuers.find((i) => i.issuer === id.issuer)?.clockToleranceSeconds ?? 0,
          mayUse: a.stillAllowed,
          end,
          log,
          logFields: who,
          clock: this.o.clock ?? realClock,
        }).stop;
    // A run's sessions end with it, on whichever replica it ends.
    const runId = who.run;
    const unwatchRun = runId
      ? runs.watch(runId, (reason) =>
          end(new SessionEnd('run-ended', `hoop: run ${runId} ended${reason ? ` (${describeEnd(reason)})` : ''}; its sessions end with it`, 'start the command again with hoop run')),
        )
      : undefined;
    const timers: Array<() => void> = [];
    const at = (ms: number, fire: () => void): void => void timers.push((this.o.clock ?? realClock).timer(ms, fire));
    const seconds = a.policy?.maxSessionSeconds;
    if (seconds !== undefined) {
      at(seconds * 1000, () => {
        log.info('tunnel.session-limit', { ...who, maxSessionSeconds: seconds });
        end(new SessionEnd('session-limit', `hoop: this session reached its maximum length of ${describeLength(seconds)}`, 'connect again'));
      });
    }
    if (a.grantUntil) {
      const { until, request } = a.grantUntil;
      at(until - (this.o.clock ?? realClock).now(), () => {
        log.info('tunnel.grant-expired', { ...who, request });
        end(
          new SessionEnd(
            'grant-expired',
            `hoop: your temporary access to "${who.connection}" (request ${request}) ended at ${new Date(until).toISOString()}`,
            `ask again: hoop request ${who.connection} --for 1h --reason "…"`,
          ),
        );
      });
    }
    return () => {
      stopLifetime();
      unwatchRun?.();
      for (const stop of timers) stop();
    };
  }

  /** The session is over: give the client a moment to read the last bytes and close, then cut it. */
  #linger(channel: SessionChannel): void {
    if (channel.destroyed) return;
    if (!channel.writableEnded) channel.end();
    this.#lingering.add(channel);
    channel.once('close', () => this.#lingering.delete(channel));
    setTimeout(() => channel.destroy(), SESSION_LINGER_MS).unref();
  }
}

/** What a session enforces of the policy in force (`ps`, for its identity, connection and grant): one function for every way a session is admitted. */
function sessionPolicyOf(ps: PolicySession): SessionPolicy {
  return {
    judge: ps.judge,
    readOnly: ps.readOnly,
    recording: ps.snapshot.policy.recording,
    ...(ps.ssh ? { ssh: ps.ssh } : {}),
    ...(ps.mcp ? { mcp: ps.mcp } : {}),
    ...(ps.http ? { http: ps.http } : {}),
    ...(ps.masking ? { masking: ps.masking } : {}),
    ...(ps.maxSessionSeconds !== undefined ? { maxSessionSeconds: ps.maxSessionSeconds } : {}),
    maxSessions: ps.maxSessions,
    limits: ps.limits,
    ...(ps.databaseAccess ? { databaseAccess: ps.databaseAccess } : {}),
  };
}

/** Where a session came from, as its recording's start and its summary say it. */
function originOf({ identity, connection, principal, policyCommit }: Authorized, asked: Asked, remote: string): SessionOrigin {
  const runId = identity.run?.id;
  return {
    connection: connection.name,
    type: connection.type,
    remote,
    ...(asked.client !== undefined ? { client: asked.client } : {}),
    ...(policyCommit !== undefined ? { policyCommit } : {}),
    ...(runId ? { runId } : {}),
    via: principal.via,
    ...(principal.agent !== undefined ? { agent: principal.agent } : {}),
    ...(identity.run ? { isolated: identity.run.isolated } : {}),
    ...(asked.direct ? { direct: true as const } : {}),
    ...(asked.runbook ? { runbook: { name: asked.runbook.runbook.name, digest: asked.runbook.runbook.digest } } : {}),
  };
}

/** What only the session's lane reads: the policy's terms for its connection type, and an SSH client's key. */
function laneTerms(type: ConnectionConfig['type'], policy: SessionPolicy | undefined, asked: Asked): LaneTerms[ConnectionConfig['type']] {
  if (type === 'postgres') return policy?.databaseAccess ? { databaseAccess: policy.databaseAccess } : {};
  if (type === 'ssh') return { ...(policy?.ssh ? { ssh: policy.ssh } : {}), ...(asked.sshKey !== undefined ? { clientKey: asked.sshKey } : {}) };
  if (type === 'mcp') return policy?.mcp ? { mcp: policy.mcp } : {};
  if (type === 'http') return { ...(policy?.http ? { http: policy.http } : {}), ...(asked.httpPrefix !== undefined ? { prefix: asked.httpPrefix } : {}) };
  return {};
}

/** `ask` as a reviewer is shown it: the secrets in its SQL (or, for another lane, what the detectors find) and in its parameters redacted, and why it cannot be shown where it hides more. */
function redactedAsk(ask: ReviewAsk, lane: string, o: { key?: Buffer; detectors: DetectorName[] }): ReviewAsk {
  const sqlLane = lane === 'postgres' || lane === 'mysql' ? lane : undefined;
  const sql = sqlLane ? redactSql(ask.sql, sqlLane, o).text : redactDetected(ask.sql, o).text;
  const secret = sqlLane && ask.params ? secretParameters(ask.sql, sqlLane) : [];
  const param = (p: string | null, i: number): string | null => (p === null ? null : isSecretParam(secret, i + 1) ? redactionMarker(p, o.key) : redactDetected(p, o).text);
  const unseen = sqlLane ? valuesHiddenFromReview(ask.sql, sqlLane, ask.params?.length ?? 0) : undefined;
  return { ...ask, sql, ...(ask.params ? { params: ask.params.map(param) } : {}), ...(unseen !== undefined ? { unseen } : {}) };
}

/** `judgeUnder`, its verdicts told to `note` first. */
function noting(judgeUnder: NonNullable<SessionJudge['judgeUnder']>, note: (verdict: StatementVerdict) => void): NonNullable<SessionJudge['judgeUnder']> {
  return (sql, analysis, under) => {
    const verdict = judgeUnder(sql, analysis, under);
    note(verdict);
    return verdict;
  };
}
