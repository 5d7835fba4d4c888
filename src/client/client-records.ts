/**
 * A command's own records (src/recording/spool.ts): written to the spool as its sessions and run
 * happen, uploaded to the gateway as soon as each closes (./record-upload.ts), and waited
 * for, within a deadline, when the command ends; what is still not uploaded then stays in the
 * spool, and any later hoop command that talks to the same gateway uploads it, as it uploads
 * what a killed hoop left behind.
 *
 * @see docs/internals.md (§1.5, §5)
 */
import { realClock } from '../clock.js';
import { configDir, gatewayOrigin } from '../auth/paths.js';
import { recordingKey } from '../auth/recording-key.js';
import type { ResolvedTokenProvider } from '../auth/token-provider.js';
import { describeError } from '../errors.js';
import type { CliIo } from '../io.js';
import type { Logger } from '../log.js';
import { ClientRecorder, HOST, Spool, type RecordKind } from '../recording/spool.js';
import { uploadRecord, uploadSpool, type UploadReport, type UploadTarget } from './record-upload.js';
import { join } from 'node:path';
import { CLIENT_RECORD_ROW_CAP } from '../postgres/pipeline/recording/records.js';
import { PostgresRawTap, PostgresRecordingStage } from '../postgres/pipeline/recording/stage.js';
import { VERSION } from '../version.js';
import type { RecordingStream } from '../recording/thread.js';
import type { SshClientRecord } from '../ssh/local/terminator.js';
import { MysqlRecordTap } from '../mysql/pipeline/record-tap.js';
import type { AgreedCapabilities } from '../mysql/wire/handshake.js';
import type { MysqlClientRecord, MysqlRecordHook } from '../mysql/local/listener.js';
import type { ClientRecordTerms } from '../tunnel/transport.js';
import { DETECTOR_NAMES, type DetectorName } from '../policy/masking/detectors.js';

/** How long a command waits, when it ends, for its records to reach the gateway. */
export const UPLOAD_DEADLINE_MS = 15_000;
/** How long a command waits, when it ends, for its open records to close. */
const CLOSE_WAIT_MS = 5_000;
/** How long a command that ends still retries uploads (a gateway out of reach must not hold the user's shell). */
const EXIT_RETRY_MS = 3_000;
/**
 * How long a closed record waits for others to close before they go up together (a command that
 * ends sends at once): a client that opens a session after session pays a request, and the
 * gateway a token check and a sync, per few records, not per record.
 */
export const UPLOAD_GATHER_MS = 100;

/** The spool of the CLI configured by `env` (in its config directory, beside the profiles). */
export function spoolOf(io: CliIo): Spool {
  return new Spool(join(configDir(io.env, io.cwd), 'spool'));
}

/**
 * What earlier hoop commands on this machine left in its spool for this gateway (closed records,
 * or ones a killed hoop cut short), uploaded now, each tried once; resolves the records still here
 * (`kind/id`), which `sessions ls` marks as local. Commands that keep no records of their own call it.
 */
export async function uploadLeftovers(io: CliIo, provider: ResolvedTokenProvider): Promise<Set<string>> {
  const spool = spoolOf(io);
  const target = uploadTarget(provider);
  await uploadSpool(spool, target, { deadline: realClock.now() });
  return new Set((await spool.entries(target.origin)).map((e) => `${e.meta.kind}/${e.meta.id}`));
}

/** Says that this machine's record of session `id` stopped (the session goes on). */
export function recordStopped(say: (line: string) => void, id: string, err: unknown): void {
  say(`this machine's record of session ${id} stopped: ${describeError(err)} (the gateway's record is not affected)`);
}

/**
 * The `record` hook of an SSH port (src/ssh/local/port.ts) when `records` are kept: each session
 * the gateway records gets the CLI's record, which names the connection, the gateway, the person
 * and the run. A record that cannot be opened or written is said; the session goes on.
 */
export function sshRecordHook(
  records: CommandRecords | undefined,
  o: { connection: string; gateway: string; runId?: string; say: (line: string) => void },
): ((sessionId: string) => Promise<SshClientRecord | undefined>) | undefined {
  if (!records?.keeps) return undefined;
  const stopped = (id: string, err: unknown): void => recordStopped(o.say, id, err);
  return async (id) => {
    try {
      const start = { connection: o.connection, gateway: gatewayOrigin(o.gateway), ...(records.subject ? { subject: records.subject } : {}), ...(o.runId ? { runId: o.runId } : {}) };
      return await records.sshSession(id, start, (err) => stopped(id, err));
    } catch (err) {
      stopped(id, err);
      return undefined;
    }
  };
}

/** The hook a local MySQL port calls for each session the gateway takes the CLI's record of (undefined when the command keeps none). */
export function mysqlRecordHook(records: CommandRecords | undefined, o: { connection: string; gateway: string; runId?: string; say: (line: string) => void }): MysqlRecordHook | undefined {
  if (!records?.keeps) return undefined;
  return async (id, terms, capabilities) => {
    try {
      const start = { connection: o.connection, gateway: gatewayOrigin(o.gateway), ...(records.subject ? { subject: records.subject } : {}), ...(o.runId ? { runId: o.runId } : {}) };
      return await records.mysqlSession(id, terms, capabilities, start, (err) => recordStopped(o.say, id, err));
    } catch (err) {
      recordStopped(o.say, id, err);
      return undefined;
    }
  };
}

/** How a record on `terms` writes down what the client sends: what the detectors the gateway named find, redacted (with no key of the gateway's: unhashed). */
function redactionOf(terms: ClientRecordTerms): { detectors: readonly DetectorName[] } {
  return { detectors: DETECTOR_NAMES.filter((d) => terms.detectors.includes(d)) };
}

/** Where `provider`'s records go: its gateway, with its (renewed) token. */
function uploadTarget(provider: ResolvedTokenProvider): UploadTarget {
  return { endpoint: { gateway: provider.gateway, ca: provider.ca }, token: async () => (await provider.current()).token, origin: gatewayOrigin(provider.gateway) };
}

/** The CLI's record of one session as its relay feeds it: the recording stage, and how it ends. */
export interface SessionRecord {
  /** The record taken from the messages the relay reads, when it has checks of its own... */
  stage: PostgresRecordingStage;
  /** ... or else the bytes of both directions as they pass, read on the recording thread. */
  readonly raw: PostgresRawTap;
  /** What the client says it runs things for (the MCP intent), as the gateway records it too. */
  context(fields: Record<string, string>): void;
  /** Writes the end event (`reason`, and what else is known), closes, signs and uploads the record. Once. */
  close(end: { reason: string } & Record<string, unknown>): void;
}

/** See the module documentation. */
export class CommandRecords {
  /**
   * Whether this command keeps records of its own: yes, unless `HOOP_CLIENT_RECORD=off`, or it
   * holds only a run's credential (inside hoop run: no key of the person's signs for an agent).
   * The gateway's records stand either way.
   */
  readonly keeps: boolean;
  readonly recorder: ClientRecorder;
  readonly spool: Spool;
  /** The person whose key signs the records (their login's subject), when known. */
  readonly subject: string | undefined;
  readonly #target: UploadTarget;
  readonly #log: Logger;
  /** Uploads under way. */
  readonly #uploads = new Set<Promise<UploadReport>>();
  /** Records this command wrote, by `kind/id`, until uploaded. */
  readonly #mine = new Set<string>();
  /** Records of others this command tried to upload and could not. */
  readonly #tried = new Set<string>();
  /** Records of this command not closed yet: settled when closed (or failed), and what settles it. */
  readonly #open = new Map<string, { settled: Promise<void>; settle: () => void }>();
  /** Records closed and not yet being uploaded, by `kind/id`, and the upload of those closed before, while under way. */
  readonly #closed = new Set<string>();
  #closedUpload: Promise<unknown> | undefined;
  /** Set while closed records wait {@link UPLOAD_GATHER_MS} for others. */
  #gathering: NodeJS.Timeout | undefined;
  /** Aborted when the command is about to end: retries stop, what is left stays in the spool. */
  readonly #stop = new AbortController();

  constructor(io: CliIo, provider: ResolvedTokenProvider, log: Logger) {
    this.spool = spoolOf(io);
    this.keeps = io.env.HOOP_CLIENT_RECORD?.trim().toLowerCase() !== 'off' && provider.source !== 'run';
    this.#log = log;
    this.subject = provider.profile?.subject;
    this.#target = uploadTarget(provider);
    this.recorder = new ClientRecorder({ spool: this.spool, gateway: this.#target.origin, key: () => recordingKey(provider, io.env, io.cwd) });
  }

  /**
   * Opens the record of session `id` (the gateway's id) with its start event (`start` adds to what
   * every record says), keeping as many rows per result as the gateway allows (`terms.rows`, at most
   * {@link CLIENT_RECORD_ROW_CAP}). `onFailure` hears when it cannot be written to the end (the
   * session goes on; what it holds is uploaded by a later command, as truncated).
   */
  async session(id: string, terms: ClientRecordTerms, start: Record<string, unknown>, onFailure: (err: Error) => void): Promise<SessionRecord> {
    // Kept as the messages came, read by the PostgreSQL decoder when the record is read.
    const opened = await this.#session(id, 'postgres', start, onFailure);
    const { stream } = opened;
    const cap = Math.min(terms.rows, CLIENT_RECORD_ROW_CAP);
    const redact = redactionOf(terms);
    const stage = new PostgresRecordingStage({ stream, results: cap > 0 ? 'masked' : 'none', rowCap: cap, redact });
    let raw: PostgresRawTap | undefined;
    return {
      stage,
      get raw() {
        return (raw ??= new PostgresRawTap({ stream, rowCap: cap, redact }));
      },
      context: (fields) => stream.event({ ...fields, t: 'context', at: realClock.now() }),
      close: (end) =>
        opened.close(end, () => {
          stage.end();
          raw?.end();
        }),
    };
  }

  /** Opens the record of SSH session `id` (the gateway's id), as {@link session} does for PostgreSQL; the port's terminator writes its events. */
  async sshSession(id: string, start: Record<string, unknown>, onFailure: (err: Error) => void): Promise<SshClientRecord> {
    const opened = await this.#session(id, 'ssh', start, onFailure);
    return { stream: opened.stream, close: (end) => opened.close(end) };
  }

  /** Opens the record of MySQL session `id` (the gateway's id), as {@link session} does for PostgreSQL: its tap reads the bytes both ways. */
  async mysqlSession(id: string, terms: ClientRecordTerms, capabilities: AgreedCapabilities, start: Record<string, unknown>, onFailure: (err: Error) => void): Promise<MysqlClientRecord> {
    const opened = await this.#session(id, 'mysql', start, onFailure);
    const tap = new MysqlRecordTap(opened.stream, Math.min(terms.rows, CLIENT_RECORD_ROW_CAP), capabilities, onFailure, redactionOf(terms));
    return { tap, close: (end) => opened.close(end) };
  }

  /** A session's record opened in the spool with its start event; `close` (once) ends it, signs it and uploads it. */
  async #session(
    id: string,
    protocol: string,
    start: Record<string, unknown>,
    onFailure: (err: Error) => void,
  ): Promise<{ stream: RecordingStream; close(end: { reason: string } & Record<string, unknown>, before?: () => void): void }> {
    const stream = await this.recorder.session(id, protocol);
    this.opened('sessions', id);
    stream.event({ t: 'start', at: realClock.now(), side: 'client', session: id, ...start, cliVersion: VERSION, host: HOST, pid: process.pid });
    const failed = (err: Error): void => {
      this.failed('sessions', id);
      onFailure(err);
    };
    stream.onFailure = failed;
    let closed = false;
    return {
      stream,
      close: (end, before) => {
        if (closed) return;
        closed = true;
        before?.();
        stream.event({ t: 'end', at: realClock.now(), ...end });
        stream.close().then(
          () => this.closed('sessions', id),
          (err: unknown) => failed(err instanceof Error ? err : new Error(String(err))),
        );
      },
    };
  }

  /** Uploads, in the background, what earlier hoop commands left in the spool (closed, or cut short by a kill). */
  resume(): void {
    this.#upload({ statuses: ['closed', 'abandoned'], once: true });
  }

  /** A record of this command is being written (so {@link finish} waits for it). */
  opened(kind: RecordKind, id: string): void {
    const key = `${kind}/${id}`;
    this.#mine.add(key);
    let settle = (): void => undefined;
    const settled = new Promise<void>((resolve) => (settle = resolve));
    this.#open.set(key, { settled, settle });
  }

  /**
   * Uploads what a record of this command holds so far (a signed checkpoint), now: the gateway then
   * holds it as this key's, so nothing started after (the command `hoop run` runs, with the same
   * token) can claim that id with another record.
   */
  async claim(kind: RecordKind, id: string): Promise<void> {
    const [entry] = await this.spool.only([`${kind}/${id}`], this.#target.origin);
    if (entry) await uploadRecord(entry, this.#target);
  }

  /**
   * A record of this command is closed and signed: uploaded in the background, with every other
   * that closed within {@link UPLOAD_GATHER_MS} or while the upload before was under way (one
   * request for them all: a client that opens a session per statement does not pay a request per
   * session).
   */
  closed(kind: RecordKind, id: string): void {
    this.#settle(`${kind}/${id}`);
    this.#closed.add(`${kind}/${id}`);
    this.#gathering ??= setTimeout(() => this.#uploadClosed(), UPLOAD_GATHER_MS).unref();
  }

  /** Starts the upload of the closed records waiting, unless one is under way (which starts it when it ends). */
  #uploadClosed(): void {
    clearTimeout(this.#gathering);
    this.#gathering = undefined;
    if (this.#closedUpload || this.#closed.size === 0) return;
    const only = new Set(this.#closed);
    this.#closed.clear();
    this.#closedUpload = this.#upload({ only }).finally(() => {
      this.#closedUpload = undefined;
      this.#uploadClosed();
    });
  }

  /** A record of this command could not be written to the end (what it holds is uploaded by a later command, as truncated). */
  failed(kind: RecordKind, id: string): void {
    this.#settle(`${kind}/${id}`);
  }

  #settle(key: string): void {
    this.#open.get(key)?.settle();
    this.#open.delete(key);
  }

  /** Uploads in the background: retried until {@link UPLOAD_DEADLINE_MS}, or tried `once`. */
  #upload(o: { statuses?: Array<'closed' | 'abandoned'>; only?: Set<string>; once?: boolean }): Promise<UploadReport> {
    const { once, ...which } = o;
    const task = uploadSpool(this.spool, this.#target, { deadline: once ? realClock.now() : realClock.now() + UPLOAD_DEADLINE_MS, signal: this.#stop.signal, ...which }).then(
      (report) => {
        for (const e of report.uploaded) {
          this.#mine.delete(`${e.meta.kind}/${e.meta.id}`);
          this.#tried.delete(`${e.meta.kind}/${e.meta.id}`);
          this.#log.info('record.uploaded', { kind: e.meta.kind, id: e.meta.id, status: e.status });
        }
        for (const { entry, error } of report.left) {
          this.#tried.add(`${entry.meta.kind}/${entry.meta.id}`);
          this.#log.info('record.upload-deferred', { kind: entry.meta.kind, id: entry.meta.id, error });
        }
        for (const { entry, error, dir } of report.setAside) this.#log.error('record.refused', { kind: entry.meta.kind, id: entry.meta.id, error, keptIn: dir });
        return report;
      },
      (err: unknown) => {
        this.#log.warn('record.upload-failed', { error: describeError(err) });
        return { uploaded: [], left: [], setAside: [] };
      },
    );
    this.#uploads.add(task);
    void task.finally(() => this.#uploads.delete(task));
    return task;
  }

  /**
   * Waits for this command's records to close and for the uploads under way (retries stop after
   * {@link EXIT_RETRY_MS}), then tries once more for its records still in the spool; says what
   * stays there, and stops the recording thread.
   */
  async finish(say: (line: string) => void): Promise<void> {
    // Records close as their sessions' last bytes are written: a moment after the ports closed.
    await Promise.race([Promise.all([...this.#open.values()].map((o) => o.settled)), new Promise((resolve) => setTimeout(resolve, CLOSE_WAIT_MS).unref())]);
    this.#uploadClosed();
    const stop = setTimeout(() => this.#stop.abort(), EXIT_RETRY_MS).unref();
    while (this.#uploads.size > 0) await Promise.all([...this.#uploads]);
    if (this.#mine.size > 0 && !this.#stop.signal.aborted) {
      this.#upload({ only: new Set(this.#mine) });
      while (this.#uploads.size > 0) await Promise.all([...this.#uploads]);
    }
    clearTimeout(stop);
    await this.recorder.stop();
    // What the gateway does not hold yet stays in the spool for the next command: on the disk.
    await this.spool.persist().catch((err: unknown) => say(`this machine's records of sessions not uploaded could not be written to ${this.spool.root}: ${describeError(err)}`));
    // Its own records, and those left by others that it tried and could not upload (another hoop still at work on its own is not its business).
    const left = (await this.spool.entries(this.#target.origin)).filter(
      (e) => this.#mine.has(`${e.meta.kind}/${e.meta.id}`) || (e.status !== 'live' && this.#tried.has(`${e.meta.kind}/${e.meta.id}`)),
    );
    if (left.length > 0) say(`${left.length} of this machine's records of sessions are not uploaded yet (in ${this.spool.root}); the next hoop command that reaches the gateway uploads them`);
  }
}
