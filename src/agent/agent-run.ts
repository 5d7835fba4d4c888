/**
 * An agent's run as the CLI holds it: begun at the gateway with the person's credential
 * (`POST /v1/runs`), kept alive with its control credential while the `hoop` that began it runs
 * (each heartbeat with the person's current token, renewed as their login allows, so that the run
 * ends when the person's sign-in does), and ended when it ends. Its sessions use the run's
 * credential ({@link AgentRun.provider}); the control credential never leaves this process.
 *
 * @see src/gateway/runs/runs.ts
 */
import type { RunEgressBody } from '../api/bodies.js';
import { MAX_EGRESS_REPORTS } from '../api/bodies.js';
import { controlRun, reportEgress, startRun } from '../api-client/runs.js';
import type { RunStarted } from '../api/answers.js';
import { egressAllows, normalHost } from '../policy/egress.js';
import { runTokenProvider, type ResolvedTokenProvider } from '../auth/token-provider.js';
import { type Clock, every, realClock } from '../clock.js';
import { describeError, ErrorCode, isHoopError } from '../errors.js';
import type { Logger } from '../log.js';

/** Heartbeats go at least this often, and four times within the gateway's timeout. */
const MAX_HEARTBEAT_MS = 15_000;
/** Refused connections are told to the gateway this often (at most), and this many wait at most. */
const EGRESS_REPORT_MS = 1_000;
const MAX_EGRESS_WAITING = 10 * MAX_EGRESS_REPORTS;

/** See the module documentation. */
export class AgentRun {
  readonly id: string;
  readonly agent: string;
  readonly isolation: string;
  readonly expiresAt: Date;
  /** Whether the policy wants the run's changes reviewed before they apply, and the controls it lets through the gate, as it said when the run began. */
  readonly review: boolean;
  readonly applyControls: string[];
  /** The run's credential, for its sessions (and the command's environment). */
  readonly token: string;
  /** Tokens of the run's credential, for its tunnels. */
  readonly provider: ResolvedTokenProvider;
  readonly #controlToken: string;
  readonly #person: ResolvedTokenProvider;
  readonly #endpoint: { gateway: string; ca?: Buffer | undefined };
  readonly #clock: Clock;
  readonly #stopBeats: () => void;
  readonly #say: (line: string) => void;
  readonly #log: Logger;
  /** Where the command may connect, as the gateway last said (besides the gateway itself). */
  #egress: string[];
  /** Refused connections not yet told to the gateway, and the report under way. */
  #refused: RunEgressBody['refused'] = [];
  #stopReport: (() => void) | undefined;
  #reporting: Promise<void> = Promise.resolve();
  #ended = false;

  private constructor(started: RunStarted, person: ResolvedTokenProvider, say: (line: string) => void, log: Logger, clock: Clock) {
    this.id = started.id;
    this.agent = started.agent;
    this.isolation = started.isolation;
    this.expiresAt = new Date(started.expiresAt);
    this.review = started.review === true;
    this.applyControls = started.applyControls ?? [];
    this.token = started.token;
    this.#controlToken = started.controlToken;
    this.#person = person;
    this.#endpoint = { gateway: person.gateway, ca: person.ca };
    this.provider = runTokenProvider(person.gateway, person.ca, started.token);
    this.#egress = started.egress ?? [];
    this.#say = say;
    this.#log = log;
    this.#clock = clock;
    const beat = Math.max(1_000, Math.min(MAX_HEARTBEAT_MS, Math.floor(started.heartbeatTimeoutMs / 4)));
    this.#stopBeats = every(clock, beat, () => void this.#beat());
  }

  /** Begins a run for the person `person` signs in as. @throws HoopError as the gateway refuses it (access, isolation the policy requires, a run's own credential) */
  static async begin(o: {
    person: ResolvedTokenProvider;
    connections: string[];
    agent: string;
    via: 'run' | 'mcp';
    isolation: string;
    command?: string;
    prompt?: string;
    /** How the command's changes reach its tree (none: a run with no command of its own). */
    apply?: 'gate' | 'live';
    say: (line: string) => void;
    log: Logger;
    /** The clock heartbeats and reports run on (the real one unless a test holds it). */
    clock?: Clock;
  }): Promise<AgentRun> {
    const { token } = await o.person.current();
    const started = await startRun({ gateway: o.person.gateway, ca: o.person.ca }, token, {
      connections: o.connections,
      agent: o.agent,
      via: o.via,
      isolation: o.isolation,
      ...(o.command !== undefined ? { command: o.command } : {}),
      ...(o.prompt !== undefined ? { prompt: o.prompt } : {}),
      ...(o.apply !== undefined ? { apply: o.apply } : {}),
    });
    o.log.info('run.begun', { run: started.id, agent: started.agent, isolation: started.isolation, expiresAt: started.expiresAt });
    return new AgentRun(started, o.person, o.say, o.log, o.clock ?? realClock);
  }

  async #beat(): Promise<void> {
    if (this.#ended) return;
    // The person's current token, renewed as their login allows; none when it cannot be had (the run then ends with the last one).
    const personToken = await this.#person.current().then(
      (grant) => grant.token,
      (err: unknown) => void this.#log.warn('run.person-token-unavailable', { run: this.id, error: describeError(err) }),
    );
    try {
      const now = await controlRun(this.#endpoint, this.#controlToken, this.id, 'heartbeat', personToken ?? undefined);
      this.#egress = now.egress ?? [];
    } catch (err) {
      if (this.#ended) return;
      // Ended at the gateway (its time is up, or the gateway lost it): said once; the command goes on without its sessions.
      if (isHoopError(err, ErrorCode.USAGE) || isHoopError(err, ErrorCode.TOKEN_REJECTED)) {
        this.#ended = true;
        this.#stopBeats();
        this.#say(`the gateway ended run ${this.id}: ${describeError(err)}; the command's sessions through hoop are closed`);
        return;
      }
      this.#log.warn('run.heartbeat-failed', { run: this.id, error: describeError(err) });
    }
  }

  /** Whether the command may connect to `host`:`port`: the gateway, or a destination of the policy's `runs.egress` for this run. */
  allowsEgress(host: string, port: number): boolean {
    const gateway = new URL(this.#endpoint.gateway);
    const own = normalHost(gateway.hostname) === normalHost(host) && Number(gateway.port || (gateway.protocol === 'https:' ? 443 : 80)) === port;
    return own || egressAllows(this.#egress, host, port);
  }

  /** Notes a connection the command was refused: told to the gateway within a second (it counts for alerts). */
  refused(d: { host: string; port: number; at: number }): void {
    if (this.#refused.length >= MAX_EGRESS_WAITING) return;
    this.#refused.push({ host: d.host.slice(0, 255), port: d.port, at: new Date(d.at).toISOString() });
    this.#stopReport ??= this.#clock.timer(EGRESS_REPORT_MS, () => {
      this.#stopReport = undefined;
      this.#reporting = this.#reporting.then(() => this.#report());
    });
  }

  /** Tells the gateway the refused connections waiting, a batch at a time. */
  async #report(): Promise<void> {
    while (this.#refused.length > 0) {
      const batch = this.#refused.splice(0, MAX_EGRESS_REPORTS);
      await reportEgress(this.#endpoint, this.#controlToken, this.id, batch).catch((err: unknown) =>
        this.#log.warn('run.egress-report-failed', { run: this.id, refused: batch.length, error: describeError(err) }),
      );
    }
  }

  /** Ends the run at the gateway (its credential is refused from then on, its sessions end), after telling it the refused connections waiting; once. */
  async end(): Promise<void> {
    this.#stopBeats();
    this.provider.close();
    this.#stopReport?.();
    await (this.#reporting = this.#reporting.then(() => this.#report()));
    if (this.#ended) return;
    this.#ended = true;
    await controlRun(this.#endpoint, this.#controlToken, this.id, 'end').catch((err: unknown) => {
      // The gateway ends it anyway once no heartbeat comes.
      this.#log.warn('run.end-failed', { run: this.id, error: describeError(err) });
    });
  }
}
