/**
 * The audit stream for SIEMs: every session start and end and every refused statement as one JSON
 * line with stable fields (`v: 1`, `event`, `time`, then the event's own; documented in
 * docs/audit.md), to a file (appended) and/or an HTTP endpoint (POSTed in batches as
 * `application/x-ndjson`). Events wait in a bounded queue and go out in the background, so the data
 * path never waits on a SIEM: delivery is retried with backoff until it succeeds (at least once;
 * a batch may arrive twice after a timeout), and when the queue is full the oldest events are
 * dropped and counted in the next `audit.dropped` event.
 *
 * When replicas share a PostgreSQL store, the `url` destination is fed from the store instead
 * ({@link AuditLedger}, ./audit-postgres.ts): each replica appends its events there in batches, and
 * one replica at a time delivers them from a cursor kept in the store, so a replica that dies
 * takes with it at most the events of its last `flushMs`, the SIEM receives one stream in the
 * order the events were stored, and a delivery cut short is taken up by another replica. Each
 * event then names its `replica`. The `file` destination stays the replica's own.
 *
 * @see https://datatracker.ietf.org/doc/html/rfc7464 (JSON text sequences; NDJSON is the plain-newline variant)
 */
import { realClock } from '../../clock.js';
import { constants } from 'node:fs';
import { appendFile } from 'node:fs/promises';
import * as http from 'node:http';
import * as https from 'node:https';
import { describeError } from '../../errors.js';
import type { Logger } from '../../log.js';

/** Open to append, made if missing, and never through a symbolic link. */
const APPEND_NO_LINK = constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW;

/** `audit:` in the gateway file. */
export interface AuditConfig {
  /** Append events to this file. */
  file?: string;
  /** POST batches of events here. */
  url?: string;
  /** Extra request headers (e.g. an Authorization from a secret reference, resolved). */
  headers?: Record<string, string>;
  /** A CA to trust for `url`. */
  ca?: Buffer;
  /** Events per batch (default 500). */
  batchSize: number;
  /** A batch goes out at least this often while events wait (default 1 s). */
  flushMs: number;
  /** Events held at most; beyond, the oldest are dropped and counted (default 100 000). */
  maxQueue: number;
  /**
   * Which statements are audited (`statement.refused`, `statement.completed`): `none`; `refused`
   * (default); `writes`: refused ones and those that changed rows or whose verb writes; `all`.
   */
  statements?: StatementVolume;
}

/** The volume of statement events on the audit stream (see {@link AuditConfig.statements}). */
export const STATEMENT_VOLUMES = ['none', 'refused', 'writes', 'all'] as const;
export type StatementVolume = (typeof STATEMENT_VOLUMES)[number];

/** Verbs of a `statement.completed` that count as writes for `statements: writes`, whatever rows they changed. */
const WRITE_VERBS = new Set(['INSERT', 'UPDATE', 'DELETE', 'MERGE', 'COPY', 'TRUNCATE', 'CREATE', 'ALTER', 'DROP', 'GRANT', 'REVOKE']);

/** Whether `event` goes to the audit stream under `volume` (events other than statements always do). */
export function audited(volume: StatementVolume, event: string, fields: Record<string, unknown>): boolean {
  if (event === 'statement.refused') return volume !== 'none';
  if (event !== 'statement.completed') return true;
  if (volume === 'all') return true;
  if (volume !== 'writes') return false;
  return (typeof fields.changed === 'number' && fields.changed > 0) || WRITE_VERBS.has(String(fields.verb));
}

/** One audit event as written: the stable envelope and the event's fields. */
export type AuditEvent = { v: 1; event: string; time: string } & Record<string, unknown>;

/**
 * Where the `url` destination's events wait when replicas share a store: appended by every
 * replica, delivered by one at a time.
 */
export interface AuditLedger {
  /** Appends `lines` in their order, after every line appended before by any replica. Rejects when the store cannot take them. */
  append(lines: string[]): Promise<void>;
  /**
   * Sends the next lines not yet delivered (at most `max`) as one body with `send`, and moves the
   * cursor past them once it resolves; does nothing while another replica delivers. Resolves how
   * many lines went.
   */
  deliver(max: number, send: (body: string) => Promise<void>): Promise<number>;
}

/** One delivery at a time, and the wait after each failure in a row: 0.5 s doubling to 60 s. */
class Backoff {
  #failures = 0;
  #retryAt = 0;
  #busy: Promise<void> | undefined;

  /** Runs `deliver` unless it runs already (then resolves with that run); `force` skips the wait. */
  run(deliver: () => Promise<void>, force: boolean): Promise<void> {
    if (force) this.#retryAt = 0;
    this.#busy ??= deliver().finally(() => {
      this.#busy = undefined;
    });
    return this.#busy;
  }

  get ready(): boolean {
    return realClock.now() >= this.#retryAt;
  }

  /** Counts a failure; resolves the wait before the next try. */
  failed(): number {
    this.#failures++;
    const wait = Math.min(60_000, 500 * 2 ** Math.min(this.#failures, 7));
    this.#retryAt = realClock.now() + wait;
    return wait;
  }

  succeeded(): void {
    this.#failures = 0;
  }
}

const body = (lines: string[]): string => `${lines.join('\n')}\n`;

/** One destination with its own queue, so a failing endpoint never makes a file receive a batch twice. */
class Sink {
  #queue: string[] = [];
  #dropped = 0;
  readonly #backoff = new Backoff();

  constructor(
    readonly name: string,
    private readonly send: (lines: string[]) => Promise<void>,
    private readonly o: AuditConfig,
    private readonly log: Logger,
  ) {}

  push(line: string): void {
    this.#queue.push(line);
    if (this.#queue.length > this.o.maxQueue) {
      const over = this.#queue.length - this.o.maxQueue;
      this.#queue.splice(0, over);
      this.#dropped += over;
    }
    if (this.#queue.length >= this.o.batchSize) void this.flush();
  }

  flush(force = false): Promise<void> {
    return this.#backoff.run(() => this.#deliver(), force);
  }

  async #deliver(): Promise<void> {
    while (this.#queue.length > 0 || this.#dropped > 0) {
      if (!this.#backoff.ready) return;
      if (this.#dropped > 0) {
        this.#queue.unshift(JSON.stringify({ v: 1, event: 'audit.dropped', time: new Date(realClock.now()).toISOString(), count: this.#dropped }));
        this.#dropped = 0;
      }
      const batch = this.#queue.slice(0, this.o.batchSize);
      try {
        await this.send(batch);
      } catch (err) {
        const wait = this.#backoff.failed();
        this.log.warn('audit.delivery-failed', { sink: this.name, error: describeError(err), queued: this.#queue.length, retryInMs: wait });
        return;
      }
      this.#backoff.succeeded();
      this.#queue.splice(0, batch.length);
    }
  }
}

/** Delivers what the replicas appended to a {@link AuditLedger}, batch by batch, with backoff. */
class LedgerDelivery {
  readonly #backoff = new Backoff();

  constructor(
    private readonly ledger: AuditLedger,
    private readonly send: (body: string) => Promise<void>,
    private readonly o: AuditConfig,
    private readonly log: Logger,
  ) {}

  run(force = false): Promise<void> {
    return this.#backoff.run(() => this.#deliver(), force);
  }

  async #deliver(): Promise<void> {
    while (this.#backoff.ready) {
      let sent: number;
      try {
        sent = await this.ledger.deliver(this.o.batchSize, this.send);
      } catch (err) {
        const wait = this.#backoff.failed();
        this.log.warn('audit.delivery-failed', { sink: 'url', error: describeError(err), retryInMs: wait });
        return;
      }
      this.#backoff.succeeded();
      if (sent < this.o.batchSize) return;
    }
  }
}

/** Options of an {@link AuditStream} on a store shared by replicas. */
export interface SharedAudit {
  ledger: AuditLedger;
  /** This replica's id, named in each event. */
  replica: string;
}

/** See the module documentation. */
export class AuditStream {
  readonly #o: AuditConfig;
  readonly #sinks: Sink[] = [];
  readonly #delivery: LedgerDelivery | undefined;
  readonly #replica: string | undefined;
  #timer: NodeJS.Timeout;

  constructor(o: AuditConfig, log: Logger, shared?: SharedAudit) {
    this.#o = o;
    this.#replica = shared?.replica;
    // Appended to as it was checked at start: never through a link put in its place since.
    if (o.file) this.#sinks.push(new Sink('file', (lines) => appendFile(o.file!, body(lines), { mode: 0o600, flag: APPEND_NO_LINK }), o, log));
    if (o.url && shared) {
      this.#sinks.push(new Sink('store', (lines) => shared.ledger.append(lines), o, log));
      this.#delivery = new LedgerDelivery(shared.ledger, (b) => this.#post(b), o, log);
    } else if (o.url) this.#sinks.push(new Sink('url', (lines) => this.#post(body(lines)), o, log));
    this.#timer = setInterval(() => void this.flush(), o.flushMs);
    this.#timer.unref();
  }

  /** Queues an event for every destination; never waits. */
  emit(event: string, fields: Record<string, unknown>): void {
    const time = new Date(realClock.now()).toISOString();
    const e: AuditEvent = { v: 1, event, time, ...(this.#replica !== undefined ? { replica: this.#replica } : {}), ...fields };
    // The event's own fields never stand in for the line's version, name, time or replica.
    Object.assign(e, { v: 1, event, time }, this.#replica !== undefined ? { replica: this.#replica } : {});
    const line = JSON.stringify(e);
    for (const sink of this.#sinks) sink.push(line);
  }

  /** Delivers what waits to each destination (one batch at a time; a failing one waits for its backoff). */
  async flush(force = false): Promise<void> {
    await Promise.all(this.#sinks.map((s) => s.flush(force)));
    await this.#delivery?.run(force);
  }

  #post(body: string): Promise<void> {
    const url = new URL(this.#o.url!);
    return new Promise((resolve, reject) => {
      const req = (url.protocol === 'https:' ? https : http).request(
        url,
        {
          method: 'POST',
          timeout: 10_000,
          headers: { 'Content-Type': 'application/x-ndjson', 'Content-Length': Buffer.byteLength(body), ...this.#o.headers },
          ...(this.#o.ca ? { ca: this.#o.ca } : {}),
        },
        (res) => {
          res.resume();
          res.on('end', () => ((res.statusCode ?? 0) >= 200 && (res.statusCode ?? 0) < 300 ? resolve() : reject(new Error(`${url.origin} answered HTTP ${res.statusCode}`))));
        },
      );
      req.on('timeout', () => req.destroy(new Error(`${url.origin} did not answer within 10 s`)));
      req.on('error', reject);
      req.end(body);
    });
  }

  /** Stops the timer and tries a last delivery (for at most `ms`). */
  async close(ms = 5000): Promise<void> {
    clearInterval(this.#timer);
    await Promise.race([this.flush(true), new Promise((r) => setTimeout(r, ms).unref())]);
  }
}
