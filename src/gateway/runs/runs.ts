/**
 * Agents' runs: the credential `hoop run` (and `hoop mcp` with no run around it) gets from the
 * gateway for the command it wraps, so that the agent acts as a principal of its own and never as
 * its person.
 *
 * A person asks for a run (`POST /v1/runs`, with their own credential: a run cannot ask for
 * another). The gateway allocates its id, binds it to that person, and answers two secrets:
 * - the **run credential** (`hooprun_…`), for the run's sessions: only the connections the run
 *   named, only while the run lives, never renewed. The person it acts for, the run, the agent and
 *   how it came (`run` or `mcp`) come from it, never from the client. It cannot decide reviews,
 *   ask for or grant access, read sessions, register keys or ask for runs (src/gateway/server.ts).
 * - the **control credential** (`hoopctl_…`), kept by the `hoop` that asked (never handed to the
 *   command): it alone sends the heartbeats that keep the run alive and ends it.
 *
 * A run ends when its `hoop` ends it, when no heartbeat came for the policy's
 * `runs.heartbeatTimeout` (its `hoop` was killed), after `runs.maxSeconds`, or when its person's
 * own credential runs out: each heartbeat may carry the person's current token, which the gateway
 * verifies as it verifies any, and which then says how long the person is signed in and in which
 * groups (so a person removed from a group, or no longer able to renew their sign-in, takes their
 * runs with them). Its sessions end with it, on every replica, and its credentials are refused
 * from then on. Secrets are kept as
 * their SHA-256 only. Where runs are kept is a {@link RunStore}: a file in the data directory, or
 * the PostgreSQL store replicas share (./runs-postgres.ts).
 *
 * @see https://www.rfc-editor.org/rfc/rfc6750 (bearer tokens)
 */
import { type Clock, every, realClock } from '../../clock.js';
import { createHash, randomBytes } from 'node:crypto';
import * as z from 'zod';
import { RecordFile } from '../store/record-file.js';
import { describeError, ErrorCode } from '../../errors.js';
import { recordObject } from '../../stored-record.js';
import type { Identity, RunGrant } from '../../identity.js';
import type { Logger } from '../../log.js';
import { AGENT_NAME, agentName } from '../../policy/principal.js';
import type { RunPolicy } from '../../policy/schema.js';
import { HttpError } from '../http/http-error.js';
import { checkBody } from '../http/respond.js';
import { runViewSchema, type RunView } from '../../api/answers.js';
import { RUN_ASK_MESSAGES, runAskBody } from '../../api/bodies.js';
import { TokenRejectedError } from '../identity/verify-token.js';

/** Why a run ended, each way. */
export const RUN_ENDS = ['ended', 'heartbeat-lost', 'expired', 'person-expired', 'person-refused'] as const;

/** Why a run ended. */
export type RunEnd = (typeof RUN_ENDS)[number];

/** The person a run acts for, as the gateway verified them when the run began (kept with the run, and with each direct credential). */
export const runOwnerSchema = recordObject({
  issuer: z.string(),
  subject: z.string(),
  kind: z.enum(['user', 'workload']),
  email: z.string().optional(),
  groups: z.array(z.string()),
});
export type RunOwner = z.infer<typeof runOwnerSchema>;

/** The person of a run as a fresh credential of theirs says: who, in which groups, until when. */
export interface FreshOwner {
  owner: RunOwner;
  expiresAt: string;
}

/**
 * The run's person after a heartbeat: as the fresh credential says, in the groups the run had
 * that it still names. A run's groups are fixed at its start; a heartbeat may narrow them (a
 * person removed from a group), never widen them (an older token of theirs with more groups).
 */
export function narrowedOwner(current: RunOwner, fresh: RunOwner): RunOwner {
  return { ...fresh, groups: current.groups.filter((g) => fresh.groups.includes(g)) };
}

const RUN_ID = /^run-[A-Za-z0-9_-]{16,64}$/;
/** A secret as the gateway keeps it: its SHA-256, in hex. */
const SHA256_HEX = /^[0-9a-f]{64}$/;

/** A run as the gateway keeps it (its secrets as SHA-256 only): `runs.json`, `hoop.runs`; read back with this schema. */
export const runRecordSchema = runViewSchema.omit({ subject: true, issuer: true, endReason: true }).extend({
  id: z.string().regex(RUN_ID),
  owner: runOwnerSchema,
  endReason: z.enum(RUN_ENDS).optional(),
  tokenHash: z.string().regex(SHA256_HEX),
  controlHash: z.string().regex(SHA256_HEX),
});
export type RunRecord = z.infer<typeof runRecordSchema>;

/** Where runs are kept: the data directory ({@link FileRunStore}) or the store replicas share. */
export interface RunStore {
  /** Adds a run; refuses one over `maxOpen` open runs of its owner. */
  create(run: RunRecord, maxOpen: number): Promise<void>;
  /** The run whose run credential (`kind: 'run'`) or control credential has this SHA-256. */
  find(kind: 'run' | 'control', hash: string): Promise<RunRecord | undefined>;
  get(id: string): Promise<RunRecord | undefined>;
  /** Marks a heartbeat of an open run (with its person as a fresh credential says, when one came: {@link narrowedOwner}); undefined when it has ended. */
  heartbeat(id: string, owner?: FreshOwner): Promise<RunRecord | undefined>;
  /** Ends an open run; undefined when it had ended already. */
  end(id: string, reason: RunEnd): Promise<RunRecord | undefined>;
  /** Ends the open runs past their time or their heartbeat; resolves them as ended (each by one sweep only, across gateways). */
  sweep(): Promise<RunRecord[]>;
  /** Told of each run any gateway sharing the store ended (its id). */
  onEnded?(fn: (id: string) => void): void;
  close(): Promise<void>;
}

/** Most runs one person may have open at once. */
export const MAX_OPEN_RUNS = 100;
/** How often the registry ends runs that went silent or ran out of time. */
const SWEEP_MS = 1_000;
const RUN_TOKEN = 'hooprun_';
const CONTROL_TOKEN = 'hoopctl_';

const sha256 = (s: string): string => createHash('sha256').update(s).digest('hex');
const secret = (prefix: string): string => `${prefix}${randomBytes(32).toString('base64url')}`;

/** Whether `token` is a run credential (as opposed to a token of an identity provider). */
export function isRunToken(token: string | undefined): boolean {
  return token?.startsWith(RUN_TOKEN) === true;
}

/** Whether `token` is a run's control credential. */
export function isControlToken(token: string | undefined): boolean {
  return token?.startsWith(CONTROL_TOKEN) === true;
}

/** Whether `run` is open at `now` (ms): not ended, in its time, heard from lately. */
export function runOpen(run: RunRecord, now: number): boolean {
  return run.endedAt === undefined && overdue(run, now) === undefined;
}

/** Why an open run would end at `now`, if it would. */
function overdue(run: RunRecord, now: number): RunEnd | undefined {
  if (run.endedAt !== undefined) return undefined;
  if (now >= Date.parse(run.expiresAt)) return 'expired';
  if (now >= Date.parse(run.ownerExpiresAt)) return 'person-expired';
  if (now >= Date.parse(run.heartbeatAt) + run.heartbeatTimeoutMs) return 'heartbeat-lost';
  return undefined;
}

/** The person `identity` stands for, as a run keeps them. */
export function ownerOf(identity: Identity): RunOwner {
  return { issuer: identity.issuer, subject: identity.subject, kind: identity.kind, ...(identity.email !== undefined ? { email: identity.email } : {}), groups: identity.groups };
}

/** What a person asks for when a run begins (`POST /v1/runs`). */
export interface RunAsk {
  connections: string[];
  agent: string;
  via: 'run' | 'mcp';
  isolation: string;
  command?: string;
  prompt?: string;
  apply?: 'gate' | 'live';
}

/**
 * The body of `POST /v1/runs`, checked. @throws HttpError 400 saying what is wrong
 */
export function parseRunAsk(body: unknown): RunAsk {
  const ask = checkBody(runAskBody, body);
  if (ask.agent !== undefined && !AGENT_NAME.test(agentName(ask.agent))) throw new HttpError(400, RUN_ASK_MESSAGES.agent);
  return {
    connections: [...new Set(ask.connections)],
    agent: agentName(ask.agent ?? 'agent'),
    via: ask.via ?? 'run',
    isolation: ask.isolation,
    ...(ask.command !== undefined ? { command: ask.command } : {}),
    ...(ask.prompt?.trim() ? { prompt: ask.prompt.trim() } : {}),
    // A run of a command says how its changes reach the tree; one that says nothing writes it itself.
    ...(ask.apply !== undefined || (ask.via ?? 'run') === 'run' ? { apply: ask.apply ?? 'live' } : {}),
  };
}

/** What a run credential stands for: the person, with the run (see {@link Identity.run}). */
export function runIdentity(run: RunRecord): Identity {
  const grant: RunGrant = { id: run.id, agent: run.agent, via: run.via, isolated: run.isolation !== 'none', connections: run.connections, ...(run.prompt !== undefined ? { prompt: run.prompt } : {}) };
  const { owner } = run;
  return {
    subject: owner.subject,
    issuer: owner.issuer,
    kind: owner.kind,
    ...(owner.email !== undefined ? { email: owner.email } : {}),
    groups: owner.groups,
    expiresAt: new Date(run.expiresAt),
    claims: {},
    run: grant,
  };
}

/** A run as the API answers it: never its secrets. */
export function describeRun(run: RunRecord): RunView {
  const { tokenHash: _t, controlHash: _c, owner, ...rest } = run;
  return { ...rest, subject: owner.subject, issuer: owner.issuer };
}

/** See the module documentation. */
export class RunRegistry {
  readonly #store: RunStore;
  readonly #log: Logger;
  /** Sessions' listeners per run id: told once the run ends. */
  readonly #watchers = new Map<string, Set<(reason: RunEnd | undefined) => void>>();
  readonly #clock: Clock;
  readonly #stopSweeps: () => void;
  readonly #onEnd: Array<(run: RunRecord) => void> = [];
  #sweeping = false;
  /** Resolves when the sweep under way (if any) has ended. */
  #sweepDone: Promise<void> = Promise.resolve();

  constructor(store: RunStore, log: Logger, clock: Clock = realClock) {
    this.#store = store;
    this.#log = log;
    this.#clock = clock;
    store.onEnded?.((id) => void this.#ended(id));
    this.#stopSweeps = every(clock, SWEEP_MS, () => void this.#sweep());
  }

  /**
   * Begins a run for `owner` (a person's credential, never a run's) under `policy`; resolves the
   * run and its two secrets, which the gateway never sees again.
   *
   * @throws HttpError 403 (a run asking, isolation the policy requires), 429 (too many open runs)
   */
  async create(owner: Identity, ask: RunAsk, policy: RunPolicy): Promise<{ run: RunRecord; token: string; controlToken: string }> {
    if (owner.run) throw runForbidden('runs');
    if (policy.requireIsolation && ask.isolation === 'none') {
      throw new HttpError(403, 'the policy refuses runs whose command is not contained (runs.requireIsolation), and this one is not', {
        hint: 'run the agent where hoop run can contain it (Linux with bubblewrap: apt install bubblewrap), or ask the policy owners',
      });
    }
    if (policy.apply === 'gate' && ask.apply === 'live') {
      throw new HttpError(
        403,
        `the policy wants a run's changes to reach its person only through the gate (runs.apply: gate), and this one's command writes ${ask.isolation === 'none' ? 'uncontained' : 'the tree itself (--apply live)'}`,
        {
          hint: 'run it contained, without --apply live: its changes are applied when it ends, or reviewed with --review',
        },
      );
    }
    const now = this.#clock.now();
    const token = secret(RUN_TOKEN);
    const controlToken = secret(CONTROL_TOKEN);
    const run: RunRecord = {
      id: `run-${randomBytes(12).toString('base64url')}`,
      owner: ownerOf(owner),
      agent: ask.agent,
      via: ask.via,
      isolation: ask.isolation,
      connections: ask.connections,
      ...(ask.command !== undefined ? { command: ask.command } : {}),
      ...(ask.prompt !== undefined ? { prompt: ask.prompt } : {}),
      ...(ask.apply !== undefined ? { apply: ask.apply } : {}),
      createdAt: new Date(now).toISOString(),
      expiresAt: new Date(now + policy.maxSeconds * 1000).toISOString(),
      heartbeatAt: new Date(now).toISOString(),
      heartbeatTimeoutMs: policy.heartbeatTimeoutMs,
      ownerExpiresAt: owner.expiresAt.toISOString(),
      tokenHash: sha256(token),
      controlHash: sha256(controlToken),
    };
    await this.#store.create(run, MAX_OPEN_RUNS);
    this.#log.info('run.started', {
      run: run.id,
      subject: owner.subject,
      issuer: owner.issuer,
      agent: run.agent,
      via: run.via,
      isolation: run.isolation,
      connections: run.connections,
      expiresAt: run.expiresAt,
    });
    return { run, token, controlToken };
  }

  /**
   * The identity a run credential stands for, while its run is open.
   * @throws TokenRejectedError (`unknown-run`, `run-ended`)
   */
  async verify(token: string): Promise<Identity> {
    const run = await this.#store.find('run', sha256(token));
    if (!run) throw new TokenRejectedError('unknown-run', 'the gateway issued no such run credential');
    const now = this.#clock.now();
    if (!runOpen(run, now)) {
      const why = run.endReason ?? overdue(run, now);
      throw new TokenRejectedError('run-ended', `run ${run.id} has ended${why ? ` (${describeEnd(why)})` : ''}; its credential is no longer accepted`);
    }
    return runIdentity(run);
  }

  /**
   * The open run `id` whose control credential is `token`, after a heartbeat (`end`: ended). A
   * heartbeat may bring `person`: the run's person as a fresh credential of theirs says (verified
   * by the caller), which must be the run's person.
   * @throws TokenRejectedError when the credential is not that run's control credential; HttpError 403 for another person, 410 when the run has ended
   */
  async control(token: string | undefined, id: string, action: 'heartbeat' | 'end', person?: Identity | { refused: string }): Promise<RunRecord> {
    const run = await this.controlled(token, id);
    const identity = person && !('refused' in person) ? person : undefined;
    if (identity && (identity.run || identity.issuer !== run.owner.issuer || identity.subject !== run.owner.subject)) {
      throw new HttpError(403, `the credential a heartbeat of run ${id} brought is not its person's (${run.owner.subject})`, { hint: "the hoop that began the run sends its person's own credential" });
    }
    const fresh = identity ? { owner: ownerOf(identity), expiresAt: identity.expiresAt.toISOString() } : undefined;
    // A run past a deadline that no sweep has ended yet is ended here, for its reason; so is one whose person's credential is refused.
    const late = overdue(run, this.#clock.now()) ?? (person && 'refused' in person && run.endedAt === undefined ? 'person-refused' : undefined);
    if (late) {
      const ended = await this.#store.end(id, late);
      if (ended) this.#endedHere(ended);
    }
    const done = late ? undefined : action === 'end' ? await this.#store.end(id, 'ended') : await this.#store.heartbeat(id, fresh);
    if (!done) {
      let now = await this.#store.get(id);
      // The store's clock found it past a deadline this process's had not reached: ended here now, for its reason.
      if (now && now.endedAt === undefined) {
        for (const ended of await this.#store.sweep()) this.#endedHere(ended);
        now = await this.#store.get(id);
      }
      const why = now?.endReason ?? late;
      throw new HttpError(410, `run ${id} has ended${why ? ` (${describeEnd(why)})` : ''}`, { hint: 'start the command again with hoop run' });
    }
    if (action === 'end') this.#endedHere(done);
    return done;
  }

  /**
   * The run `id` whose control credential is `token`, open or ended (a report may come as it ends).
   * @throws TokenRejectedError when the credential is not that run's control credential
   */
  async controlled(token: string | undefined, id: string): Promise<RunRecord> {
    const run = isControlToken(token) ? await this.#store.find('control', sha256(token!)) : undefined;
    if (!run || run.id !== id) throw new TokenRejectedError('unknown-run', `that is not the control credential of run ${id}`);
    return run;
  }

  /** Told of each run this gateway ended (its hoop ended it, or this gateway's sweep found it silent or out of time): once per run, across replicas. */
  onEnd(fn: (run: RunRecord) => void): void {
    this.#onEnd.push(fn);
  }

  #endedHere(run: RunRecord): void {
    for (const fn of this.#onEnd) fn(run);
    this.#ended(run.id, run.endReason);
  }

  /** Run `id`, if any. */
  get(id: string): Promise<RunRecord | undefined> {
    return RUN_ID.test(id) ? this.#store.get(id) : Promise.resolve(undefined);
  }

  /** Whether `run` is open now, by the registry's clock. */
  isOpen(run: RunRecord): boolean {
    return runOpen(run, this.#clock.now());
  }

  /** Calls `onEnd` once run `id` ends (at once when it has); returns a function that stops watching. */
  watch(id: string, onEnd: (reason: RunEnd | undefined) => void): () => void {
    let set = this.#watchers.get(id);
    if (!set) this.#watchers.set(id, (set = new Set()));
    set.add(onEnd);
    // Ended between the session's admission and now: told at once.
    void this.#store.get(id).then(
      (run) => {
        if (run && !runOpen(run, this.#clock.now())) this.#ended(id, run.endReason);
      },
      () => undefined,
    );
    return () => {
      set.delete(onEnd);
      if (set.size === 0) this.#watchers.delete(id);
    };
  }

  async close(): Promise<void> {
    this.#stopSweeps();
    // A sweep under way may still end runs, and write them: the store closes after it.
    await this.#sweepDone;
    await this.#store.close();
  }

  async #sweep(): Promise<void> {
    if (this.#sweeping) return;
    this.#sweeping = true;
    let done!: () => void;
    this.#sweepDone = new Promise<void>((resolve) => (done = resolve));
    try {
      for (const run of await this.#store.sweep()) this.#endedHere(run);
      // A watched run this gateway did not see end (ended elsewhere, a notification lost): looked at again.
      for (const id of [...this.#watchers.keys()]) {
        const run = await this.#store.get(id);
        if (!run) this.#ended(id);
        else if (!runOpen(run, this.#clock.now())) this.#ended(id, run.endReason ?? overdue(run, this.#clock.now()));
      }
    } catch (err) {
      this.#log.warn('run.sweep-failed', { error: describeError(err) });
    } finally {
      this.#sweeping = false;
      done();
    }
  }

  /** Tells the sessions of run `id` that it ended (why: `reason`, else as the store says). */
  #ended(id: string, reason?: RunEnd): void {
    const set = this.#watchers.get(id);
    if (!set) return;
    this.#watchers.delete(id);
    const tell = (why: RunEnd | undefined): void => {
      this.#log.info('run.ended', { run: id, ...(why ? { reason: why } : {}), sessions: set.size });
      for (const fn of set) fn(why);
    };
    if (reason) tell(reason);
    else
      void this.#store.get(id).then(
        (run) => tell(run?.endReason),
        () => tell(undefined),
      );
  }
}

/** Why a run ended, in words. */
export function describeEnd(reason: RunEnd): string {
  return reason === 'ended'
    ? 'its hoop ended it'
    : reason === 'heartbeat-lost'
      ? 'its hoop stopped answering'
      : reason === 'person-expired'
        ? "its person's own sign-in ran out"
        : reason === 'person-refused'
          ? "the gateway refused its person's credential"
          : 'it reached its maximum length';
}

/** What a run's credential may not do, and why: a person does these. */
const FORBIDDEN = {
  decide: ['decide reviews', 'a reviewer is a person, signed in as themselves'],
  request: ['ask for access', 'access is asked for by the person the run acts for'],
  devices: ['register or list device keys', "keys are the person's"],
  runs: ['ask for a run', 'a run cannot start another; the person who started it can'],
  records: ['upload or read records', "records are uploaded by the hoop that holds the person's login"],
  sessions: ['read sessions', 'sessions and recordings are for the people who may see them'],
  alerts: ['read or clear alerts', 'an alert is cleared by a person, signed in as themselves, never by what it is about'],
  policy: ['read how the gateway runs its policy', 'its settings and refusals are for the people who write the policy'],
  direct: ['renew a direct credential', "a run's direct credential lives as long as the run"],
} as const;

/** The refusal of something a run's credential may not do. */
export function runForbidden(what: keyof typeof FORBIDDEN): HttpError {
  const [action, why] = FORBIDDEN[what];
  return new HttpError(403, `a run's credential cannot ${action}: ${why}`, {
    hint: "a person does this with their own credential, outside the agent's run",
    code: ErrorCode.RUN_FORBIDDEN,
  });
}

/** Whether `run` ended more than a day before `now`: a file store forgets it. */
function forgotten(run: RunRecord, now: number): boolean {
  return run.endedAt !== undefined && Date.parse(run.endedAt) < now - 86_400_000;
}

/** Runs in `<dataDir>/runs.json`: one gateway process owns the file (its lock). */
export class FileRunStore implements RunStore {
  readonly #file: RecordFile<RunRecord>;
  readonly #runs = new Map<string, RunRecord>();
  readonly #byHash = new Map<string, RunRecord>();
  readonly #clock: Clock;

  private constructor(dir: string, log: Logger, clock: Clock) {
    this.#clock = clock;
    this.#file = new RecordFile(dir, 'runs.json', { schema: runRecordSchema, what: 'run' }, log);
  }

  /**
   * Loads the runs kept, as they were last heard from: a run whose hoop went silent while the
   * gateway was down longer than its timeout has ended. An entry that is not a run is skipped (said).
   */
  static async open(dataDir: string, log: Logger, clock: Clock = realClock): Promise<FileRunStore> {
    const store = new FileRunStore(dataDir, log, clock);
    for (const run of await store.#file.read()) if (!forgotten(run, clock.now())) store.#keep(run);
    return store;
  }

  #keep(run: RunRecord): void {
    this.#runs.set(run.id, run);
    this.#byHash.set(`run ${run.tokenHash}`, run);
    this.#byHash.set(`control ${run.controlHash}`, run);
  }

  #forget(run: RunRecord): void {
    this.#runs.delete(run.id);
    this.#byHash.delete(`run ${run.tokenHash}`);
    this.#byHash.delete(`control ${run.controlHash}`);
  }

  /**
   * Changes the runs, one change at a time: `change` sees them as the changes before it left them
   * and returns the run it makes (or undefined for none); the file is written with it, and only
   * then is it kept (a change the file does not hold is not made). Resolves the run made.
   */
  #change(change: () => RunRecord | undefined): Promise<RunRecord | undefined> {
    return this.#file.serially(async () => {
      const next = change();
      if (!next) return undefined;
      // What a day past its end is forgotten here too, not only at start: a gateway up for months writes the day's runs, not all it saw.
      const now = this.#clock.now();
      const gone = [...this.#runs.values()].filter((r) => forgotten(r, now));
      await this.#file.write([...this.#runs.values()].filter((r) => r.id !== next.id && !forgotten(r, now)).concat(next));
      for (const r of gone) this.#forget(r);
      this.#keep(next);
      return next;
    });
  }

  async create(run: RunRecord, maxOpen: number): Promise<void> {
    await this.#change(() => {
      const open = [...this.#runs.values()].filter((r) => r.owner.issuer === run.owner.issuer && r.owner.subject === run.owner.subject && runOpen(r, this.#clock.now())).length;
      if (open >= maxOpen) throw tooManyRuns(run.owner.subject, maxOpen);
      return run;
    });
  }

  async find(kind: 'run' | 'control', hash: string): Promise<RunRecord | undefined> {
    return this.#byHash.get(`${kind} ${hash}`);
  }

  async get(id: string): Promise<RunRecord | undefined> {
    return this.#runs.get(id);
  }

  heartbeat(id: string, fresh?: FreshOwner): Promise<RunRecord | undefined> {
    return this.#change(() => {
      const run = this.#runs.get(id);
      const now = this.#clock.now();
      if (!run || !runOpen(run, now)) return undefined;
      return { ...run, heartbeatAt: new Date(now).toISOString(), ...(fresh ? { owner: narrowedOwner(run.owner, fresh.owner), ownerExpiresAt: fresh.expiresAt } : {}) };
    });
  }

  end(id: string, reason: RunEnd): Promise<RunRecord | undefined> {
    return this.#change(() => {
      const run = this.#runs.get(id);
      if (!run || run.endedAt !== undefined) return undefined;
      return { ...run, endedAt: new Date(this.#clock.now()).toISOString(), endReason: reason };
    });
  }

  async sweep(): Promise<RunRecord[]> {
    const now = this.#clock.now();
    const ended: RunRecord[] = [];
    for (const run of [...this.#runs.values()]) {
      const why = overdue(run, now);
      const done = why ? await this.end(run.id, why) : undefined;
      if (done) ended.push(done);
    }
    return ended;
  }

  close(): Promise<void> {
    return this.#file.close();
  }
}

/** The refusal of a run over a person's limit of open runs. */
export function tooManyRuns(subject: string, max: number): HttpError {
  return new HttpError(429, `${subject} has ${max} runs open already`, { hint: 'end some (each ends with its hoop run), or wait for them to end' });
}
