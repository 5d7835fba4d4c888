/**
 * The HTTP lane's relay at the gateway: a client's requests, read whole one at a time
 * (./request-reader.ts), and the upstream's answers, each taken through the stages (./stages.ts) in
 * the order declared here ({@link REQUEST_ORDER}, {@link RESPONSE_ORDER}). The relay is the
 * session's one owner of its exchange: one request at a time is judged, held or forwarded, and its
 * answer streamed back before the next is read (pipelined requests wait their turn).
 *
 * A request: recorded as read, then judged; refused with 403 (the rule and why, as JSON), held
 * until a reviewer decides, or forwarded (../gateway/upstream.ts adds the credential). An answer:
 * its content coding undone where a stage after reads its body, the credential masked wherever it
 * echoes, its body masked by the policy, recorded as the client got it; streamed, with the client's
 * back-pressure, framed anew (chunked, or its length where no stage changes the body). What the
 * gateway cannot take or answer ends the connection, saying why in the status a server uses.
 *
 * @see https://www.rfc-editor.org/rfc/rfc9112
 */
import { reviewAskOf } from '../../session/review-ask.js';
import { createHash } from 'node:crypto';
import { STATUS_CODES } from 'node:http';
import type { Readable } from 'node:stream';
import { realClock } from '../../clock.js';
import type { RecordingEvent } from '../../recording/event-line.js';
import { describeError, hoopSays } from '../../errors.js';
import type { HttpVerdict } from '../../policy/http.js';
import { MaskingRules } from '../../policy/masking/rules.js';
import type { HttpConnection } from '../../config/connection.js';
import type { CloseReason, TunnelSession } from '../../session/engine.js';
import { type HttpCredential, CredentialEcho, injectCredential, secretsMasker } from './credential.js';
import { canonicalTarget } from '../wire/target.js';
import { redactionMarker } from '../../policy/sql/redact.js';
import { DecodingStage } from './content-decoding.js';
import { HttpRequestJudge } from './judge.js';
import { HttpMasking } from './masking.js';
import { HttpRecorder } from './recorder.js';
import { RequestReader } from './request-reader.js';
import type { RequestRates } from './request-rate.js';
import { HTTP_DEFAULTS } from '../../policy/schema.js';
import { HttpStatusError, STATUS_TEXT } from '../wire/status-error.js';
import { HOP_BY_HOP } from '../wire/head.js';
import type { BodyTransform, HttpRequest, HttpResponse, HttpStage } from './stages.js';

/** Bytes of pipelined requests that may wait behind the one in flight; past it the client is read no more until its turn. */
const MAX_WAITING_BYTES = 1024 * 1024;
/** The longest text of a held request a reviewer is shown; a longer one is refused, not held. */
const MAX_REVIEW_TEXT = 64 * 1024;
/** How long a request may take to come whole once its first byte came. */
export const REQUEST_READ_MS = 60_000;
/** Why a request held for review is not waited for once its client ended its side. */
const CLIENT_ENDED_IN_REVIEW = 'the client ended its side of the connection: nobody waits for the review (send the request again and wait for it)';
/** How long a connection may wait for its next request (nginx's keep-alive default), or a client take none of an answer: then the session ends, and its slot is free. */
export const IDLE_MS = 75_000;

/** The stages, by name. */
interface Stages {
  recorder?: HttpRecorder;
  judge?: HttpRequestJudge;
  decoding?: DecodingStage;
  credential?: CredentialEcho;
  masking?: HttpMasking;
}

/** The order a request goes through the stages: recorded as read, then judged. */
const REQUEST_ORDER: ReadonlyArray<keyof Stages> = ['recorder', 'judge'];
/** The order an answer goes through the stages: decoded, the credential masked, masked, then recorded as it goes. */
const RESPONSE_ORDER: ReadonlyArray<keyof Stages> = ['decoding', 'credential', 'masking', 'recorder'];

/** An upstream's answer, as the relay reads it. */
export interface UpstreamAnswer {
  status: number;
  reason: string;
  /** The fields, names as the upstream wrote them. */
  fields: Array<[string, string]>;
  /** The body, de-chunked (empty for HEAD, 204, 304). */
  body: Readable;
  /** Whether the whole body has come (what is not read of it yet is in `body`'s buffer). */
  complete(): boolean;
}

/** The upstream, as the relay uses it (../gateway/upstream.ts). */
export interface HttpUpstreamSide {
  /** Sends `req` (with the credential added) and resolves the answer's head; rejects with a status and why when there is none. */
  send(req: HttpRequest): Promise<UpstreamAnswer>;
  /** The base URL requests go under, and the credential's names (what a Location and the recording read). */
  readonly base: string;
  /** The session ended: the upstream's connections close. */
  close?(): void;
}

/** What the relay needs of its session relay (../gateway/session-relay.ts). */
export interface RelayOwner {
  end(why: CloseReason, what?: string): void;
  ending(): boolean;
}

/** See the module documentation. */
export class HttpRelay {
  readonly #session: TunnelSession<HttpConnection>;
  readonly #owner: RelayOwner;
  readonly #reader: RequestReader;
  readonly #requestStages: HttpStage[];
  /** The judge among them, which a head waiting for `100 Continue` meets alone. */
  readonly #judge: HttpRequestJudge | undefined;
  readonly #responseStages: HttpStage[];
  #upstream: HttpUpstreamSide | undefined;
  /** A request is being judged, held, forwarded or answered: the next waits. */
  #busy = false;
  /** The answer's head went to the client (a failure after it can only cut the connection). */
  #headSent = false;
  #paused = false;
  /** The client sent its last byte (a half-close, or its going). */
  #clientEnded = false;
  #stopReadTimer: (() => void) | undefined;

  /** The connection's credential, which each request forwarded carries. */
  readonly #credential: HttpCredential | undefined;
  /** A text with the credential masked in it (undefined: it held none), for what hoop itself says: its reasons may quote what the upstream sent. */
  readonly #maskSecrets: ((text: string) => string | undefined) | undefined;

  constructor(session: TunnelSession<HttpConnection>, owner: RelayOwner, credential: HttpCredential | undefined, rates: RequestRates) {
    this.#session = session;
    this.#credential = credential;
    const maskSecrets = credential ? secretsMasker(credential) : undefined;
    this.#maskSecrets = maskSecrets;
    // Why a session ended is recorded and logged: a reason that quotes the upstream could quote the credential.
    this.#owner = maskSecrets ? { end: (why, what) => owner.end(why, what === undefined ? undefined : (maskSecrets(what) ?? what)), ending: () => owner.ending() } : owner;
    this.#rates = rates;
    const prefix = session.lane?.prefix;
    // A prefix is a secret (a port's per-run path, a direct credential) unless it is the API's own base path (a routed client's).
    const secret = prefix !== undefined && prefix !== new URL(session.connection.url).pathname.replace(/^\/+|\/+$/g, '') ? prefix : undefined;
    this.#reader = new RequestReader(prefix, session.lane?.http?.limits.maxRequestBytes ?? HTTP_DEFAULTS.maxRequestBytes, secret !== undefined);
    const m = session.masking;
    const rules = m ? MaskingRules.of(m.policy, m.key) : undefined;
    const http = session.lane?.http;
    const recording = session.recording;
    const masking = rules ? new HttpMasking(rules, http?.unmasked ?? [], (by) => by === 'name' && session.report?.masked('body', 'name'), this.#maskSecrets, session.id) : undefined;
    const stages: Stages = {
      ...(recording
        ? {
            recorder: new HttpRecorder(recording.stream, {
              ...(rules ? { rules } : {}),
              ...(recording.redactionKey ? { key: recording.redactionKey } : {}),
              credential: credential?.kind === 'header' ? { header: credential.name.toLowerCase() } : credential?.kind === 'query' ? { query: credential.name } : {},
              bodies: recording.results,
              ...(secret ? { prefix: secret } : {}),
            }),
          }
        : {}),
      ...(http ? { judge: new HttpRequestJudge(http, session.report) } : {}),
      ...(credential || masking ? { decoding: new DecodingStage() } : {}),
      ...(credential ? { credential: new CredentialEcho(credential, masking !== undefined) } : {}),
      ...(masking ? { masking } : {}),
    };
    const inOrder = (order: ReadonlyArray<keyof Stages>): HttpStage[] => order.flatMap((n) => stages[n] ?? []);
    this.#requestStages = inOrder(REQUEST_ORDER);
    this.#judge = stages.judge;
    this.#responseStages = inOrder(RESPONSE_ORDER);
    this.#readsBodies = stages.decoding !== undefined;
  }

  /** Some stage reads answers' bodies (the credential's echo, masking). */
  readonly #readsBodies: boolean;

  /** The upstream is ready: requests that came meanwhile are taken. */
  opened(upstream: HttpUpstreamSide): void {
    this.#upstream = upstream;
    this.#next();
  }

  #stopIdle: (() => void) | undefined;

  /** Waits {@link IDLE_MS} for the next request (armed while nothing of one came and none is in flight). */
  #idle(waiting: boolean): void {
    this.#stopIdle?.();
    this.#stopIdle = waiting ? realClock.timer(IDLE_MS, () => this.#owner.end('read-timeout', `no request came within ${IDLE_MS / 1000} s`)) : undefined;
  }

  /** Bytes from the client. */
  fromClient(chunk: Buffer): void {
    if (this.#owner.ending()) return;
    this.#idle(false);
    this.#reader.push(chunk);
    if (!this.#stopReadTimer) this.#stopReadTimer = realClock.timer(REQUEST_READ_MS, () => this.#timedOut());
    if (this.#busy) {
      if (this.#reader.waiting > MAX_WAITING_BYTES) this.#pause(true);
      return;
    }
    this.#next();
  }

  /**
   * The client sent its last byte: what it sent whole is answered, then the session ends. A request
   * held for review is not waited for (a client's end is its going as often as a half-close, and a
   * detached review outlives the session for the same request sent again).
   */
  clientEnded(): void {
    this.#clientEnded = true;
    if (this.#withdraw) return this.#owner.end('client-disconnected', CLIENT_ENDED_IN_REVIEW);
    this.#next();
  }

  /** Takes the next request, if it came whole; ends the session where none will (the client ended). */
  #next(): void {
    if (this.#busy || !this.#upstream || this.#owner.ending()) return;
    const read = this.#reader.next();
    if ('more' in read && this.#clientEnded) return this.#owner.end('client-disconnected');
    if ('more' in read) {
      if (read.continue) {
        // What a rule refuses on the head alone is refused before the body comes (a body only adds to what refusing rules meet; the default's refusal
        // may yet become an allow rule's match, so it waits for the body); the connection then ends.
        const waiting = read.waiting;
        const early = waiting && this.#judge?.verdict(waiting);
        if (waiting && early?.action === 'deny' && early.rule !== undefined) {
          // Through the stages as any request (recorded, the refusal told), though its body never came.
          for (const stage of this.#requestStages) stage.request?.(waiting);
          this.#stopReading();
          return this.#refuse(waiting, early, true);
        }
        this.#write(Buffer.from('HTTP/1.1 100 Continue\r\n\r\n'));
      }
      if (!this.#reader.begun) {
        this.#stopReading();
        this.#idle(true);
      }
      return this.#pause(false);
    }
    this.#stopReading();
    if ('refused' in read) return this.#answer(undefined, new HttpStatusError(read.status, read.refused), true);
    this.#busy = true;
    this.#headSent = false;
    this.#take(read.request);
  }

  #stopReading(): void {
    this.#stopReadTimer?.();
    this.#stopReadTimer = undefined;
  }

  /** A request did not come whole in time. */
  #timedOut(): void {
    this.#stopReadTimer = undefined;
    if (this.#busy || this.#owner.ending()) return;
    this.#answer(undefined, new HttpStatusError(408, `the request did not come whole within ${REQUEST_READ_MS / 1000} s`), true);
  }

  /** Requests per identity, counted across the engine's sessions. */
  readonly #rates: RequestRates;

  /** A request, whole: counted against its identity's rate, through the stages, then forwarded, refused or held. */
  #take(req: HttpRequest): void {
    this.#session.report?.request(req.method, `/${req.target.segments.join('/')}`);
    const perMinute = this.#session.lane?.http?.limits.requestsPerMinute;
    const { identity, connection } = this.#session;
    const wait = perMinute === undefined ? undefined : this.#rates.take(`${connection.name}\n${identity.issuer}\n${identity.subject}`, perMinute);
    if (wait !== undefined)
      return this.#answer(req, new HttpStatusError(429, `more than ${perMinute} requests a minute (the policy's http.requestsPerMinute); try again in ${wait} s`), false, {
        'retry-after': String(wait),
      });
    try {
      for (const stage of this.#requestStages) {
        const d = stage.request?.(req);
        if (!d) continue;
        if (d.do === 'refuse') return this.#refuse(req, d.verdict);
        return this.#hold(req, d.verdict);
      }
      this.#forward(req);
    } catch (err) {
      this.#session.log.warn('http.request-failed', { session: this.#session.id, error: describeError(err) });
      this.#answer(req, new HttpStatusError(500, 'the gateway could not handle this request'), true);
    }
  }

  /** Answers a refused request with 403: the rule and why; `close`: the connection ends after (its body was never read). */
  #refuse(req: HttpRequest, verdict: HttpVerdict, close = false): void {
    const rule = verdict.rule ?? 'http.default';
    this.#session.log.info('http.refused', { session: this.#session.id, rule, reason: verdict.reason });
    this.#record({ t: 'decision', at: realClock.now(), action: verdict.action, rule, reason: verdict.reason });
    this.#answer(req, new HttpStatusError(403, `${verdict.message ?? 'the policy does not allow this request'} (${verdict.reason})`), close, { rule });
  }

  /** Holds a request a `review` rule matched until a reviewer decides: nothing reaches the upstream meanwhile, and the client waits. */
  #hold(req: HttpRequest, verdict: HttpVerdict): void {
    const { reviews, channel, recording } = this.#session;
    const refuse = (why: string): void => this.#refuse(req, { ...verdict, action: 'deny', reason: `${verdict.reason}; ${why}` });
    if (!reviews || !verdict.review) return refuse('it asks for a review, and nobody may review it here');
    if (this.#clientEnded) return refuse(`it asks for a review, and ${CLIENT_ENDED_IN_REVIEW}`);
    const shown = shownRequest(req, this.#credential, recording?.redactionKey);
    if (shown === undefined) return refuse(`it asks for a review, and its body is not text, or over ${MAX_REVIEW_TEXT} characters, to show`);
    this.#record({ t: 'decision', at: realClock.now(), action: 'review', rule: verdict.rule ?? 'http.default', reason: verdict.reason });
    const held = reviews.request(reviewAskOf(shown.text, shown.digest, { ...verdict, review: verdict.review }));
    const said = { id: held.id, ...(verdict.rule !== undefined ? { rule: verdict.rule } : {}), groups: verdict.review.groups, approvals: verdict.review.approvals };
    if (!held.reused) channel.sendControl({ type: 'review', state: 'pending', ...said, timeoutMs: verdict.review.timeoutMs });
    this.#withdraw = () => held.withdraw('session-ended');
    void held.decided.then((o) => {
      this.#withdraw = undefined;
      if (this.#owner.ending()) return;
      channel.sendControl({
        type: 'review',
        state: o.state,
        ...said,
        ...(o.state === 'denied' ? { by: o.by, ...(o.reason ? { reason: o.reason } : {}) } : o.state === 'approved' ? { by: o.by } : {}),
      });
      if (o.state === 'approved') return this.#forward(req);
      const why = o.state === 'denied' ? `denied by ${o.by}${o.reason ? ` (${o.reason})` : ''}` : o.state === 'expired' ? 'no reviewer decided in time' : 'withdrawn';
      this.#session.report?.refused({ action: 'review', rule: verdict.rule ?? 'http.default', reason: `the review ${held.id} ended: ${why}`, message: verdict.message ?? '' });
      this.#answer(req, new HttpStatusError(403, `the review ${held.id} ended: ${why}; the request did not run`), false, { review: held.id });
    });
  }

  /** Withdraws the review the request in flight waits for (the session ends). */
  #withdraw: (() => void) | undefined;

  /** The session ends: a review waited for is withdrawn; a request waiting for its answer is told why. */
  abort(message: string): void {
    this.#idle(false);
    this.#stopReading();
    this.#upstream?.close?.();
    this.#withdraw?.();
    if (this.#busy && !this.#headSent) this.#answer(undefined, new HttpStatusError(503, message), true);
  }

  /** Records event `e` of the session, its reason and message with the credential masked (they may quote what the upstream sent). */
  #record(e: RecordingEvent & { reason?: string; message?: string }): void {
    const mask = (text: string): string => this.#maskSecrets?.(text) ?? text;
    this.#session.recording?.stream.event({ ...e, ...(e.reason !== undefined ? { reason: mask(e.reason) } : {}), ...(e.message !== undefined ? { message: mask(e.message) } : {}) });
  }

  /** Forwards a request and relays its answer. */
  #forward(req: HttpRequest): void {
    this.#session.report?.ran();
    // Where a stage reads answers' bodies, it reads them whole: a part of one (a Range) could split what it looks for.
    const sent = this.#readsBodies ? { ...req, fields: req.fields.filter(([n]) => n !== 'range' && n !== 'if-range') } : req;
    this.#upstream!.send(sent)
      .then(
        (res) => this.#relayAnswer(req, res),
        (err: unknown) => {
          if (this.#owner.ending()) return;
          const a = err instanceof HttpStatusError ? err : new HttpStatusError(502, `the upstream could not be reached: ${describeError(err)}`);
          this.#record({ t: 'http-upstream-failed', at: realClock.now(), status: a.status, message: a.message });
          this.#answer(req, a, false);
        },
      )
      .catch((err: unknown) => this.#owner.end('internal-error', `the answer could not be relayed: ${describeError(err)}`));
  }

  /** The upstream's answer to `req`, through the stages, streamed to the client. */
  async #relayAnswer(req: HttpRequest, up: UpstreamAnswer): Promise<void> {
    const hasBody = req.method !== 'HEAD' && !(up.status < 200 || up.status === 204 || up.status === 304);
    // The reason phrase is the gateway's own (the upstream's could say anything, its credential too).
    // A 204 has no body and no length (a client that read the upstream's would wait for bytes that never come, or read the next answer as this one's).
    const kept = (n: string): boolean => !HOP_BY_HOP.has(n) && !(up.status === 204 && n === 'content-length');
    const res: HttpResponse = { status: up.status, reason: STATUS_CODES[up.status] ?? '', fields: up.fields.filter(([n]) => kept(n.toLowerCase())), hasBody };
    this.#rewriteLocation(res);
    const transforms: BodyTransform[] = [];
    const refuse = (reason: string): void => {
      up.body.destroy();
      this.#record({ t: 'http-answer-refused', at: realClock.now(), status: up.status, reason });
      this.#answer(req, new HttpStatusError(502, reason), false);
    };
    for (const stage of this.#responseStages) {
      const d = stage.response?.(res);
      if (!d) continue;
      if ('refuse' in d) return refuse(d.refuse);
      // A body no stage can read passes only when it is empty (a redirect's): its first byte refuses it.
      if ('emptyOnly' in d) {
        for await (const chunk of up.body) if ((chunk as Buffer).length > 0) return refuse(d.emptyOnly);
        continue;
      }
      transforms.push(d.transform);
    }
    const length = res.fields.find(([n]) => n.toLowerCase() === 'content-length');
    // The body's framing to the client: its own length where nothing changed it, else chunks (or, to an HTTP/1.0 client, the connection's end).
    const chunked = hasBody && !length && req.head.version === '1.1';
    const closes = req.head.close || (hasBody && !length && !chunked);
    if (!hasBody || length || !chunked) dropChunked(res);
    const fields: Array<[string, string]> = [
      ...res.fields,
      ...(chunked ? [['transfer-encoding', 'chunked'] as [string, string]] : []),
      ...(closes ? [['connection', 'close'] as [string, string]] : []),
    ];
    this.#sendHead({ ...res, fields });
    try {
      if (hasBody) await this.#stream(up, transforms, chunked);
      else up.body.resume();
    } catch (err) {
      // Past the head, the status cannot change: the answer is cut, and the client sees it did not end.
      up.body.destroy();
      this.#record({ t: 'http-answer-cut', at: realClock.now(), reason: describeError(err) });
      return this.#owner.end('protocol-violation', `the upstream's answer could not be relayed: ${describeError(err)}`);
    }
    for (const stage of this.#responseStages) stage.sentEnd?.();
    this.#done(closes);
  }

  /** A Location the upstream gives under its own base URL, as the client reaches it (through this port). */
  #rewriteLocation(res: HttpResponse): void {
    const base = this.#upstream!.base;
    res.fields = res.fields.map(([n, v]) => {
      if (n.toLowerCase() !== 'location' || !(v === base || v.startsWith(`${base}/`) || v.startsWith(`${base}?`))) return [n, v];
      const rest = v.slice(base.length) || '/';
      return [n, `${this.#prefixPath}${rest.startsWith('/') ? rest : `/${rest}`}`];
    });
  }

  /** The path this port's URLs begin with (its per-run prefix), '' for none. */
  get #prefixPath(): string {
    return this.#session.lane?.prefix ? `/${this.#session.lane.prefix}` : '';
  }

  /** The body through the transforms, each chunk written as it is made (the last ones with the end, in one write), waiting while the client is behind. */
  async #stream(up: UpstreamAnswer, transforms: readonly BodyTransform[], chunked: boolean): Promise<void> {
    /** `bytes` as the client gets them (framed as a chunk where the body is chunked), or nothing for none. */
    const framed = (bytes: Buffer): Buffer[] => {
      if (bytes.length === 0) return [];
      for (const stage of this.#responseStages) stage.sentBody?.(bytes);
      return chunked ? [Buffer.from(`${bytes.length.toString(16)}\r\n`), bytes, CRLF] : [bytes];
    };
    const out = (bytes: Buffer): Promise<void> | undefined => (bytes.length === 0 ? undefined : this.#write(Buffer.concat(framed(bytes))));
    const through = async (bytes: Buffer, from: number): Promise<Buffer> => {
      let b = bytes;
      for (let i = from; i < transforms.length; i++) b = await inTime(transforms[i]!.push(b));
      return b;
    };
    // What comes once the whole body has, what the transforms hold to their end, and the last chunk go as one write (up to ONE_WRITE_BYTES: past it, what is held goes now).
    let last: Buffer[] = [];
    let held = 0;
    for await (const chunk of up.body) {
      if (this.#owner.ending()) throw new Error('the session ended');
      const bytes = await through(chunk as Buffer, 0);
      if (!up.complete()) {
        await out(bytes);
        continue;
      }
      last.push(...framed(bytes));
      held += bytes.length;
      if (held < ONE_WRITE_BYTES) continue;
      await this.#write(Buffer.concat(last));
      last = [];
      held = 0;
    }
    for (let i = 0; i < transforms.length; i++) last.push(...framed(await through(await inTime(transforms[i]!.end()), i + 1)));
    if (chunked) last.push(LAST_CHUNK);
    if (last.length > 0) await this.#write(Buffer.concat(last));
  }

  /** Answers `req` (undefined: one the reader refused) itself, as JSON; `close` ends the connection after. */
  #answer(req: HttpRequest | undefined, a: HttpStatusError, close: boolean, extra: Record<string, string> = {}): void {
    if (this.#owner.ending() && !close) return;
    // What hoop says goes to the client and the recording: a reason that quotes the upstream (a field's value) could quote the credential.
    const message = this.#maskSecrets?.(a.message) ?? a.message;
    if (this.#headSent) return this.#owner.end('protocol-violation', a.message);
    const body = Buffer.from(`${JSON.stringify({ error: hoopSays(message), ...extra })}\n`);
    const closes = close || !req || req.head.close;
    this.#busy = true;
    // What hoop itself answered is said in a field of its own too (`Hoop-Refused: <rule>`, `Hoop-Review: <id>`), for scripts.
    const said = Object.entries(extra).map(([k, v]): [string, string] => [k === 'rule' ? 'hoop-refused' : k === 'retry-after' ? k : `hoop-${k}`, v]);
    this.#sendHead({
      status: a.status,
      reason: STATUS_TEXT[a.status] ?? 'Error',
      fields: [['content-type', 'application/json'], ['content-length', String(body.length)], ['cache-control', 'no-store'], ...said, ...(closes ? [['connection', 'close'] as [string, string]] : [])],
      hasBody: true,
    });
    if (req?.method !== 'HEAD') {
      for (const stage of this.#responseStages) stage.sentBody?.(body);
      void this.#write(body);
    }
    for (const stage of this.#responseStages) stage.sentEnd?.();
    this.#done(closes, a.status >= 500 ? 'upstream-unavailable' : 'protocol-violation');
  }

  #sendHead(res: HttpResponse): void {
    for (const stage of this.#responseStages) stage.sentHead?.(res);
    this.#headSent = true;
    const lines = [`HTTP/1.1 ${res.status} ${res.reason || (STATUS_TEXT[res.status] ?? '')}`, ...res.fields.map(([n, v]) => `${n}: ${v}`), '', ''];
    // The head goes with the body's first bytes (one write, one frame of the tunnel), or alone at the answer's end.
    this.#head = Buffer.from(lines.join('\r\n'), 'latin1');
  }

  /** An answer's head not written yet. */
  #head: Buffer | undefined;

  /** The exchange is over: the connection ends, or the next request is read. */
  #done(close: boolean, why: CloseReason = 'client-terminated'): void {
    if (this.#head) void this.#write(Buffer.alloc(0));
    this.#busy = false;
    this.#headSent = false;
    if (close) return this.#owner.end(why);
    this.#pause(false);
    this.#next();
  }

  /** Writes to the client; a Promise while it is behind (a client that takes nothing for {@link IDLE_MS} ends the session). */
  #write(bytes: Buffer): Promise<void> | undefined {
    const { channel } = this.#session;
    if (this.#head) {
      bytes = Buffer.concat([this.#head, bytes]);
      this.#head = undefined;
    }
    if (channel.destroyed || channel.writableEnded) return undefined;
    if (channel.write(bytes)) return undefined;
    return new Promise((resolve) => {
      const done = (): void => {
        stop();
        channel.off('drain', done);
        channel.off('close', done);
        resolve();
      };
      const stop = realClock.timer(IDLE_MS, () => {
        this.#owner.end('read-timeout', `the client took none of the answer within ${IDLE_MS / 1000} s`);
        done();
      });
      channel.on('drain', done);
      channel.on('close', done);
    });
  }

  #pause(pause: boolean): void {
    if (pause === this.#paused) return;
    this.#paused = pause;
    if (pause) this.#session.channel.pause();
    else this.#session.channel.resume();
  }
}

const CRLF = Buffer.from('\r\n');
/** Most bytes of an answer's end held to go in one write. */
const ONE_WRITE_BYTES = 256 * 1024;
/** A chunked body's end (no trailers). */
const LAST_CHUNK = Buffer.from('0\r\n\r\n');

/** How long a stage may work on one chunk of a body (a decoder, a masker) before the answer is cut. */
export const STAGE_DEADLINE_MS = 30_000;

/** `made`, or an error once it took longer than {@link STAGE_DEADLINE_MS}: no stage holds a session forever. */
function inTime(made: Buffer | Promise<Buffer>): Buffer | Promise<Buffer> {
  if (!(made instanceof Promise)) return made;
  return new Promise((resolve, reject) => {
    const stop = realClock.timer(STAGE_DEADLINE_MS, () => reject(new Error(`a stage did not finish a chunk within ${STAGE_DEADLINE_MS / 1000} s`)));
    made.then(
      (b) => {
        stop();
        resolve(b);
      },
      (err: unknown) => {
        stop();
        reject(err);
      },
    );
  });
}

/** Drops a Transfer-Encoding the upstream's fields kept (the relay frames the body itself). */
function dropChunked(res: HttpResponse): void {
  res.fields = res.fields.filter(([n]) => n.toLowerCase() !== 'transfer-encoding');
}

/**
 * A held request as a reviewer is shown it, whole, and the digest its approval is bound to: its
 * method and target, every field as forwarded (the caller's own credentials dropped, as the
 * forwarding drops them), its body as text. A secret forwarded is shown as what it is: the
 * connection's credential by name, a cookie as its keyed hash; the digest binds each field's very
 * value, so a request that differs in any byte forwarded is another review. Undefined when the
 * body is not text or the whole is too long to show.
 */
function shownRequest(req: HttpRequest, credential: HttpCredential | undefined, key: Buffer | undefined): { text: string; digest: string } | undefined {
  let body = '';
  try {
    body = req.body ? new TextDecoder('utf-8', { fatal: true }).decode(req.body) : '';
  } catch {
    return undefined;
  }
  const sent = credential ? injectCredential(credential, req.fields, req.target) : { fields: req.fields, target: req.target };
  const secretField = credential?.kind === 'header' ? credential.name.toLowerCase() : credential && credential.kind !== 'query' ? 'authorization' : undefined;
  const secretQuery = credential?.kind === 'query' ? credential.name : undefined;
  const target = secretQuery ? canonicalTarget(sent.target.segments, sent.target.query.slice(0, -1)) : sent.target.canonical;
  const lines = (cookie: (v: string) => string): string =>
    [
      `${req.method} ${target}`,
      ...sent.fields.map(([n, v]) => `${n}: ${n === secretField ? "[the connection's credential]" : n === 'cookie' ? cookie(v) : v}`),
      ...(secretQuery ? [`(and the connection's credential as the query parameter ${secretQuery})`] : []),
      '',
      body,
    ].join('\n');
  const text = lines((v) => redactionMarker(v, key));
  return text.length > MAX_REVIEW_TEXT
    ? undefined
    : {
        text,
        digest: createHash('sha256')
          .update(lines((v) => v))
          .digest('hex'),
      };
}
