/**
 * Direct credentials: what a PostgreSQL, MySQL or HTTP client needs to reach a connection straight
 * at the gateway's port, with no hoop on its machine in the path (`hoop connect --direct`, `hoop run
 * --direct`). A person (or a run, with its run credential) asks for one connection
 * (`POST /v1/connections/{name}/direct`); the gateway mints a user name (`dc_…`, also the
 * credential's id) and a random password, keeps only the password's verifiers (SCRAM-SHA-256's;
 * on a MySQL connection also `mysql_native_password`'s, for the gateway's MySQL port; an HTTP
 * client sends the password in its URL's path, checked against the SCRAM verifier), and
 * binds the credential to that connection and to who asked, as the gateway verified them then.
 *
 * A credential is short-lived (15 minutes unless asked otherwise, at most {@link MAX_DIRECT_SECONDS};
 * a run's never outlives the run), renewable only by its person with a fresh credential of theirs
 * (which brings their groups as they are now), revocable by whoever asked for it, and useless for
 * anything else: it is no bearer token of the API, and a session it opens is on its connection
 * only. Its sessions end when it expires or is revoked, on every replica.
 *
 * @see https://www.rfc-editor.org/rfc/rfc5802#section-3 (the verifier: salt, iterations, StoredKey, ServerKey)
 */
import { randomBytes } from 'node:crypto';
import * as z from 'zod';
import { RecordFile } from '../store/record-file.js';
import { type Clock, realClock } from '../../clock.js';
import { describeError, ErrorCode } from '../../errors.js';
import { runGrantSchema, type Identity } from '../../identity.js';
import type { Logger } from '../../log.js';
import { SessionEnd, type TunnelSession } from '../../session/engine.js';
import { makeScramSecret, type ScramSecret } from '../../postgres/wire/scram.js';
import { nativeVerifier } from '../../mysql/wire/auth.js';
import { HttpError } from '../http/http-error.js';
import { ownerOf, runOwnerSchema, type RunOwner } from '../runs/runs.js';
import { recordObject, storedTime } from '../../stored-record.js';

/** How long a credential lives unless its asker says otherwise. */
export const DEFAULT_DIRECT_SECONDS = 900;
/** The longest a credential lives before it must be renewed. */
export const MAX_DIRECT_SECONDS = 12 * 3600;
/** Most open credentials one person (their runs included) holds at once. */
export const MAX_OPEN_DIRECT = 100;
/** Open credentials one run may hold at once: a run's count against the run, never against its person (an agent cannot lock its person out). */
export const MAX_OPEN_DIRECT_PER_RUN = 20;
/** A credential's id, which is also the PostgreSQL user name its client signs in with. */
export const DIRECT_USER = /^dc_[A-Za-z0-9_-]{22}$/;
/** PBKDF2 rounds of the verifier: the password is 256 random bits, so they guard nothing guessable; RFC 7677's minimum, which every client accepts. */
const ITERATIONS = 4096;

/** Why a credential stopped being accepted before its time. */
export type DirectEnd = 'revoked' | 'run-ended';

/** A direct credential as the gateway keeps it (`direct-credentials.json`, `hoop.direct_credentials`), the verifier of its password, never the password: read back with this schema. */
export const directRecordSchema = recordObject({
  id: z.string().regex(DIRECT_USER),
  connection: z.string(),
  owner: runOwnerSchema,
  /** Asked for with a run's credential: the run it belongs to (its sessions are the run's). */
  run: runGrantSchema.optional(),
  createdAt: storedTime,
  expiresAt: storedTime,
  endedAt: storedTime.optional(),
  endReason: z.enum(['revoked', 'run-ended']).optional(),
  /** The SCRAM-SHA-256 verifier, base64. */
  scram: recordObject({ salt: z.base64(), iterations: z.number().int().positive(), storedKey: z.base64(), serverKey: z.base64() }),
  /** MySQL's verifier of the same password (`mysql_native_password`'s SHA1(SHA1(password))), base64: minted for MySQL connections. */
  mysqlNative: z.base64().optional(),
});
export type DirectRecord = z.infer<typeof directRecordSchema>;

/** A credential as `POST /v1/connections/{name}/direct` answers it (the password once, never again). */
export interface MintedDirect {
  id: string;
  user: string;
  password: string;
  connection: string;
  expiresAt: string;
}

/** Where credentials are kept: the data directory ({@link FileDirectStore}) or the store replicas share. */
export interface DirectStore {
  /** Adds a credential; refuses one over `maxOpen` open credentials of its owner. */
  create(record: DirectRecord, maxOpen: number): Promise<void>;
  get(id: string): Promise<DirectRecord | undefined>;
  /** Moves an open credential's end to `expiresAt`, with its owner as now verified; undefined when it is no longer open. */
  extend(id: string, expiresAt: string, owner: RunOwner): Promise<DirectRecord | undefined>;
  /** Ends an open credential; undefined when it had ended. */
  end(id: string, reason: DirectEnd): Promise<DirectRecord | undefined>;
  /** Ends the open credentials of run `runId`. */
  endRun(runId: string): Promise<DirectRecord[]>;
  /** Told of each credential any gateway sharing the store extended or ended (its id). */
  onChanged?(fn: (id: string) => void): void;
  close(): Promise<void>;
}

/** Whether `record` is accepted at `now` (ms): not ended, not expired. */
export function directOpen(record: DirectRecord, now: number): boolean {
  return record.endedAt === undefined && now < Date.parse(record.expiresAt);
}

/** The SCRAM verifier of `record`. */
export function directSecret(record: DirectRecord): ScramSecret {
  const { salt, iterations, storedKey, serverKey } = record.scram;
  return { salt: Buffer.from(salt, 'base64'), iterations, storedKey: Buffer.from(storedKey, 'base64'), serverKey: Buffer.from(serverKey, 'base64') };
}

/** Who a session opened with `record` is: its person (with their groups when it was minted or last renewed), its run if any, until it expires. */
export function directIdentity(record: DirectRecord): Identity {
  const { owner } = record;
  return {
    subject: owner.subject,
    issuer: owner.issuer,
    kind: owner.kind,
    ...(owner.email !== undefined ? { email: owner.email } : {}),
    groups: owner.groups,
    expiresAt: new Date(record.expiresAt),
    claims: {},
    ...(record.run ? { run: record.run } : {}),
  };
}

/** Why `record` is not accepted, in words, or undefined while it is. */
export function directRefusal(record: DirectRecord, now: number): string | undefined {
  if (record.endReason === 'run-ended') return `direct credential ${record.id} ended with run ${record.run?.id ?? ''}`;
  if (record.endedAt !== undefined) return `direct credential ${record.id} was revoked at ${record.endedAt}`;
  if (now >= Date.parse(record.expiresAt)) return `direct credential ${record.id} expired at ${record.expiresAt}`;
  return undefined;
}

/** The seconds a credential is asked for, checked. @throws HttpError 400 */
export function directSeconds(value: unknown): number {
  if (value === undefined) return DEFAULT_DIRECT_SECONDS;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 60 || value > MAX_DIRECT_SECONDS) {
    throw new HttpError(400, `seconds must be a whole number from 60 to ${MAX_DIRECT_SECONDS}`);
  }
  return value;
}

/** See the module documentation. */
export class DirectCredentials {
  readonly #store: DirectStore;
  readonly #log: Logger;
  /** Sessions' listeners per credential id: told when it is extended or ended. */
  readonly #watchers = new Map<string, Set<(record: DirectRecord | undefined) => void>>();

  readonly #clock: Clock;

  /** `clock`: what time it is when a credential is minted or renewed (a test holds it). */
  constructor(store: DirectStore, log: Logger, clock: Clock = realClock) {
    this.#store = store;
    this.#log = log;
    this.#clock = clock;
    store.onChanged?.((id) => this.#changed(id));
  }

  /**
   * Mints a credential for `caller` (a person, or a run's credential) on `connection`, for
   * `seconds` (a run's ends with the run at the latest). Resolves it with its password, which the
   * gateway never sees again.
   *
   * @throws HttpError 403 (a run's credential for a connection not its run's), 429 (too many open)
   */
  async mint(caller: Identity, connection: string, seconds: number, kind: 'postgres' | 'mysql' | 'http' = 'postgres'): Promise<MintedDirect> {
    const run = caller.run;
    if (run && !run.connections.includes(connection)) {
      throw new HttpError(403, `run ${run.id} may use only ${run.connections.map((c) => `"${c}"`).join(', ')}, not "${connection}"`);
    }
    const now = this.#clock.now();
    const password = randomBytes(32).toString('base64url');
    const secret = makeScramSecret(password, ITERATIONS);
    // A run's credential lives no longer than the run's own (its expiresAt is the run's deadline).
    const end = Math.min(now + seconds * 1000, run ? caller.expiresAt.getTime() : Number.POSITIVE_INFINITY);
    const record: DirectRecord = {
      id: `dc_${randomBytes(16).toString('base64url')}`,
      connection,
      owner: ownerOf(caller),
      ...(run ? { run } : {}),
      createdAt: new Date(now).toISOString(),
      expiresAt: new Date(end).toISOString(),
      scram: { salt: secret.salt.toString('base64'), iterations: secret.iterations, storedKey: secret.storedKey.toString('base64'), serverKey: secret.serverKey.toString('base64') },
      ...(kind === 'mysql' ? { mysqlNative: nativeVerifier(password).toString('base64') } : {}),
    };
    await this.#store.create(record, run ? MAX_OPEN_DIRECT_PER_RUN : MAX_OPEN_DIRECT);
    this.#log.info('direct.minted', { credential: record.id, subject: caller.subject, issuer: caller.issuer, connection, ...(run ? { run: run.id } : {}), expiresAt: record.expiresAt });
    return { id: record.id, user: record.id, password, connection, expiresAt: record.expiresAt };
  }

  /** The credential whose user name is `user`, open or not (the caller checks its password, then {@link directRefusal}). */
  async find(user: string): Promise<DirectRecord | undefined> {
    return DIRECT_USER.test(user) ? this.#store.get(user) : undefined;
  }

  /** Why `record` signs in no more now (expired, revoked, its run ended), or undefined while it is open. */
  refusal(record: DirectRecord): string | undefined {
    return directRefusal(record, this.#clock.now());
  }

  /** The clock its credentials live by (their sessions' timers run on it). */
  get clock(): Clock {
    return this.#clock;
  }

  /**
   * Extends credential `id` by `seconds` from now, for its person only (not a run: a run's ends
   * with it), whose groups as `person` is verified now it takes.
   *
   * @throws HttpError 404 (no such credential of theirs), 410 (ended)
   */
  async renew(person: Identity, id: string, seconds: number): Promise<DirectRecord> {
    const record = await this.#theirs(person, id);
    if (record.run) throw new HttpError(403, `direct credential ${id} is run ${record.run.id}'s: it lives as long as the run`);
    const done = directOpen(record, this.#clock.now()) ? await this.#store.extend(id, new Date(this.#clock.now() + seconds * 1000).toISOString(), ownerOf(person)) : undefined;
    if (!done) throw new HttpError(410, directRefusal(record, this.#clock.now()) ?? `direct credential ${id} has ended`, { hint: 'ask for a new one: hoop connect --direct' });
    this.#changed(id, done);
    return done;
  }

  /** Ends credential `id` (its sessions with it), when `caller` is who asked for it. @throws HttpError 404 */
  async revoke(caller: Identity, id: string): Promise<void> {
    const record = await this.#theirs(caller, id);
    if ((caller.run?.id ?? '') !== (record.run?.id ?? '')) throw notTheirs(id);
    const done = await this.#store.end(id, 'revoked');
    if (done) {
      this.#log.info('direct.revoked', { credential: id, subject: caller.subject });
      this.#changed(id, done);
    }
  }

  /** Ends the credentials of run `runId` (it ended). */
  async endRun(runId: string): Promise<void> {
    try {
      for (const done of await this.#store.endRun(runId)) this.#changed(done.id, done);
    } catch (err) {
      this.#log.warn('direct.end-run-failed', { run: runId, error: describeError(err) });
    }
  }

  /** Calls `onChange` with the credential as it is now each time it is extended or ended; returns what stops watching. */
  watch(id: string, onChange: (record: DirectRecord | undefined) => void): () => void {
    let set = this.#watchers.get(id);
    if (!set) this.#watchers.set(id, (set = new Set()));
    set.add(onChange);
    return () => {
      set.delete(onChange);
      if (set.size === 0) this.#watchers.delete(id);
    };
  }

  close(): Promise<void> {
    return this.#store.close();
  }

  async #theirs(caller: Identity, id: string): Promise<DirectRecord> {
    const record = DIRECT_USER.test(id) ? await this.#store.get(id) : undefined;
    if (!record || record.owner.issuer !== caller.issuer || record.owner.subject !== caller.subject) throw notTheirs(id);
    return record;
  }

  /** Tells the sessions of credential `id` what it is now (read again when not given). */
  #changed(id: string, record?: DirectRecord): void {
    const set = this.#watchers.get(id);
    if (!set) return;
    const tell = (r: DirectRecord | undefined): void => {
      for (const fn of [...set]) fn(r);
    };
    if (record) tell(record);
    else void this.#store.get(id).then(tell, () => tell(undefined));
  }
}

function notTheirs(id: string): HttpError {
  return new HttpError(404, `you have no direct credential ${id}`, { code: ErrorCode.USAGE });
}

/** Whether `r` counts against the same limit as `mint`: the same run's, or the same person's own (a run's count against the run). */
export function sameLimit(r: DirectRecord, mint: DirectRecord): boolean {
  return mint.run ? r.run?.id === mint.run.id : !r.run && r.owner.issuer === mint.owner.issuer && r.owner.subject === mint.owner.subject;
}

/** The refusal of a credential over its person's limit, or its run's. */
export function tooManyDirect(mint: DirectRecord, max: number): HttpError {
  const who = mint.run ? `run ${mint.run.id}` : mint.owner.subject;
  return new HttpError(429, `${who} has ${max} direct credentials open already`, { hint: 'revoke some (hoop connect --direct revokes its own when it stops), or wait for them to expire' });
}

/** Whether `r` ended (or expired) more than a day before `now`: a file store forgets it. */
function forgotten(r: DirectRecord, now: number): boolean {
  return Date.parse(r.endedAt ?? r.expiresAt) < now - 86_400_000;
}

/** Credentials in `<dataDir>/direct-credentials.json`: one gateway process owns the file (the store's lock). */
export class FileDirectStore implements DirectStore {
  readonly #file: RecordFile<DirectRecord>;
  #records = new Map<string, DirectRecord>();

  readonly #clock: Clock;

  private constructor(dir: string, log: Logger, clock: Clock) {
    this.#file = new RecordFile(dir, 'direct-credentials.json', { schema: directRecordSchema, what: 'direct credential' }, log);
    this.#clock = clock;
  }

  /** Loads the credentials kept; one a day past its end is forgotten, an entry that is not a credential skipped (said). */
  static async open(dataDir: string, log: Logger, clock: Clock = realClock): Promise<FileDirectStore> {
    const store = new FileDirectStore(dataDir, log, clock);
    for (const r of await store.#file.read()) if (!forgotten(r, clock.now())) store.#records.set(r.id, r);
    return store;
  }

  /** Changes the credentials one change at a time; the file holds a change before it is kept (see FileRunStore). */
  #change(change: () => DirectRecord[]): Promise<DirectRecord[]> {
    return this.#file.serially(async () => {
      const next = change();
      if (next.length === 0) return next;
      const all = new Map(this.#records);
      for (const r of next) all.set(r.id, r);
      // What a day past its end is forgotten here too, not only at start: the file and the counts of a gateway up for months hold the day's.
      const now = this.#clock.now();
      for (const r of all.values()) if (forgotten(r, now)) all.delete(r.id);
      await this.#file.write([...all.values()]);
      this.#records = all;
      return next;
    });
  }

  async create(record: DirectRecord, maxOpen: number): Promise<void> {
    await this.#change(() => {
      const open = [...this.#records.values()].filter((r) => sameLimit(r, record) && directOpen(r, this.#clock.now())).length;
      if (open >= maxOpen) throw tooManyDirect(record, maxOpen);
      return [record];
    });
  }

  async get(id: string): Promise<DirectRecord | undefined> {
    return this.#records.get(id);
  }

  async extend(id: string, expiresAt: string, owner: RunOwner): Promise<DirectRecord | undefined> {
    const [done] = await this.#change(() => {
      const r = this.#records.get(id);
      return r && directOpen(r, this.#clock.now()) ? [{ ...r, expiresAt, owner }] : [];
    });
    return done;
  }

  async end(id: string, reason: DirectEnd): Promise<DirectRecord | undefined> {
    const [done] = await this.#change(() => {
      const r = this.#records.get(id);
      return r && r.endedAt === undefined ? [{ ...r, endedAt: new Date(this.#clock.now()).toISOString(), endReason: reason }] : [];
    });
    return done;
  }

  endRun(runId: string): Promise<DirectRecord[]> {
    return this.#change(() => {
      const at = new Date(this.#clock.now()).toISOString();
      return [...this.#records.values()].filter((r) => r.run?.id === runId && r.endedAt === undefined).map((r) => ({ ...r, endedAt: at, endReason: 'run-ended' as const }));
    });
  }

  close(): Promise<void> {
    return this.#file.close();
  }
}

/** Options of {@link watchDirectSession}. */
export interface DirectWatchOptions {
  /** The session; its `identity` is replaced when its person renews the credential. */
  session: TunnelSession;
  credentials: DirectCredentials;
  record: DirectRecord;
  /** Whether the renewed identity may still use the session's connection. */
  mayUse: (identity: Identity) => boolean;
  end: (reason: SessionEnd) => void;
  log: Logger;
  logFields: Record<string, unknown>;
}

/**
 * What a direct session lives on: its credential. It ends when the credential expires (unless
 * renewed first), is revoked or ends with its run; a renewal brings its person's groups as they
 * are now, and ends the session when they no longer grant the connection. Returns what stops
 * watching.
 */
export function watchDirectSession(o: DirectWatchOptions): () => void {
  const { session, log, logFields } = o;
  const clock = o.credentials.clock;
  let stopTimer: (() => void) | undefined;
  let stopped = false;
  const end = (reason: SessionEnd): void => {
    if (stopped) return;
    stop();
    o.end(reason);
  };
  const arm = (record: DirectRecord): void => {
    stopTimer?.();
    const delay = Date.parse(record.expiresAt) - clock.now();
    if (delay <= 0) {
      log.info('direct.expired', { ...logFields, credential: record.id, expiredAt: record.expiresAt });
      end(new SessionEnd('token-expired', `hoop: ${o.credentials.refusal(record) ?? `direct credential ${record.id} expired`}; the session is closed`, RENEW_HINT));
      return;
    }
    stopTimer = clock.timer(delay, () => arm(record));
  };
  const unwatch = o.credentials.watch(o.record.id, (record) => {
    if (!record || record.endedAt !== undefined) {
      log.info('direct.session-revoked', { ...logFields, credential: o.record.id });
      const why = record ? o.credentials.refusal(record) : undefined;
      end(new SessionEnd(record?.endReason === 'run-ended' ? 'run-ended' : 'access-revoked', `hoop: ${why ?? `direct credential ${o.record.id} is gone`}; the session is closed`, RENEW_HINT));
      return;
    }
    const identity = directIdentity(record);
    if (!o.mayUse(identity)) {
      log.warn('tunnel.access-revoked', { ...logFields, groups: identity.groups });
      end(
        new SessionEnd(
          'access-revoked',
          `hoop: your groups no longer grant access to "${session.connection.name}"; the session is closed`,
          'ask an administrator to grant you access in the policy repo',
        ),
      );
      return;
    }
    session.identity = identity;
    arm(record);
  });
  const stop = (): void => {
    stopped = true;
    stopTimer?.();
    unwatch();
  };
  arm(o.record);
  return stop;
}

const RENEW_HINT = 'keep hoop connect --direct running (it renews the credential), or ask for a new one: hoop connect --direct <connection>';
