/**
 * The audit stream for SIEMs: every session start and end and every refused statement as one JSON
 * line with stable fields (`v: 1`, `event`, `time`, then the event's own; documented in
 * docs/audit.md), to a file (appended) and/or an HTTP endpoint (POSTed in batches as
 * `application/x-ndjson`). Events wait in a bounded queue and go out in the background, so the data
 * path never waits on a SIEM: delivery is retried with backoff until it succeeds (at least once;
 * a batch may arrive twice after a timeout), and when the queue is full the oldest events are
 * dropped and counted in the next `audit.dropped` event.
 *
 * @see https://datatracker.ietf.org/doc/html/rfc7464 (JSON text sequences; NDJSON is the plain-newline variant)
 */
import { appendFile } from 'node:fs/promises';
import * as http from 'node:http';
import * as https from 'node:https';
import { describeError } from '../errors.js';
import type { Logger } from '../log.js';

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
}

/** One audit event as written: the stable envelope and the event's fields. */
export type AuditEvent = { v: 1; event: string; time: string } & Record<string, unknown>;

/** One destination with its own queue, so a failing endpoint never makes a file receive a batch twice. */
class Sink {
  #queue: string[] = [];
  #dropped = 0;
  #busy: Promise<void> | undefined;
  #failures = 0;
  #retryAt = 0;

  constructor(
    readonly name: string,
    private readonly send: (body: string) => Promise<void>,
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
    if (force) this.#retryAt = 0;
    this.#busy ??= this.#deliver().finally(() => {
      this.#busy = undefined;
    });
    return this.#busy;
  }

  async #deliver(): Promise<void> {
    while (this.#queue.length > 0 || this.#dropped > 0) {
      if (Date.now() < this.#retryAt) return;
      if (this.#dropped > 0) {
        this.#queue.unshift(JSON.stringify({ v: 1, event: 'audit.dropped', time: new Date().toISOString(), count: this.#dropped }));
        this.#dropped = 0;
      }
      const batch = this.#queue.slice(0, this.o.batchSize);
      try {
        await this.send(`${batch.join('\n')}\n`);
      } catch (err) {
        this.#failures++;
        const wait = Math.min(60_000, 500 * 2 ** Math.min(this.#failures, 7));
        this.#retryAt = Date.now() + wait;
        this.log.warn('audit.delivery-failed', { sink: this.name, error: describeError(err), queued: this.#queue.length, retryInMs: wait });
        return;
      }
      this.#failures = 0;
      this.#queue.splice(0, batch.length);
    }
  }
}

/** See the module documentation. */
export class AuditStream {
  readonly #o: AuditConfig;
  readonly #sinks: Sink[] = [];
  #timer: NodeJS.Timeout;

  constructor(o: AuditConfig, log: Logger) {
    this.#o = o;
    if (o.file) this.#sinks.push(new Sink('file', (body) => appendFile(o.file!, body, { mode: 0o600 }), o, log));
    if (o.url) this.#sinks.push(new Sink('url', (body) => this.#post(body), o, log));
    this.#timer = setInterval(() => void this.flush(), o.flushMs);
    this.#timer.unref();
  }

  /** Queues an event for every destination; never waits. */
  emit(event: string, fields: Record<string, unknown>): void {
    const line = JSON.stringify({ v: 1, event, time: new Date().toISOString(), ...fields } satisfies AuditEvent);
    for (const sink of this.#sinks) sink.push(line);
  }

  /** Delivers what waits to each destination (one batch at a time; a failing one waits for its backoff). */
  async flush(force = false): Promise<void> {
    await Promise.all(this.#sinks.map((s) => s.flush(force)));
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
