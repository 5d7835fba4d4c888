/**
 * Whole requests read from a client's bytes, one at a time (HTTP/1.1 pipelining: what comes after
 * a request waits until the relay asks for the next): its head read strictly (../wire/head.ts), the
 * port's per-run path taken off its target, its target read once (../wire/target.ts), and its body
 * read whole (de-chunked, at most the policy's `http.maxRequestBytes`). What cannot be taken is refused
 * with the status a server answers it with, and the reader takes nothing more: the connection ends.
 * Refused too: upgrades (a WebSocket), `CONNECT`, `TRACE` (it would echo the gateway's credential
 * back), a method not in upper case (Node sends it upper-cased), and whatever asks a server to read
 * another method (`X-HTTP-Method-Override` and its kin, a `_method` parameter in the query or a
 * form body): what is judged is the method the upstream acts on. The fields judged and forwarded
 * are one list (`fields`): the head's less the connection's own (and those `Connection` names).
 *
 * @see https://www.rfc-editor.org/rfc/rfc9112#section-9.3.2 (pipelining)
 */
import { ChunkedReader, HOP_BY_HOP, readRequestHead, type RequestHead, values } from '../wire/head.js';
import { readTarget, type RequestTarget } from '../wire/target.js';
import type { HttpRequest } from './stages.js';

/** Fields of the caller's the upstream is never sent (the gateway writes them, or they are the connection's). */
const NOT_FORWARDED = new Set([...HOP_BY_HOP, 'host', 'content-length', 'expect', 'accept-encoding']);
/**
 * Fields that ask a server (or a proxy before it) to read another method or route than the request
 * line's: method overrides (Express's method-override, Symfony, Laravel, Rails), and the original
 * URL or path a front proxy would set (IIS URL Rewrite, Symfony's and Zend's `X-Original-URL`,
 * `X-Rewrite-URL`, Envoy's, Traefik's and Spring's forwarded path and prefix): what is judged is
 * the request line, so a request carrying one is refused.
 */
const ROUTE_OVERRIDES = new Set([
  'x-http-method-override',
  'x-http-method',
  'x-method-override',
  'x-original-method',
  'x-original-url',
  'x-rewrite-url',
  'x-original-uri',
  'x-forwarded-uri',
  'x-forwarded-path',
  'x-forwarded-prefix',
  'x-envoy-original-path',
]);

/**
 * Fields a proxy sets to say who and where the client is, which servers trust for their origin,
 * host and scheme: a caller's own are not forwarded (to the upstream the client is the gateway).
 */
const CLIENT_CLAIMS = new Set([
  'forwarded',
  'x-forwarded-for',
  'x-forwarded-host',
  'x-forwarded-proto',
  'x-forwarded-port',
  'x-forwarded-server',
  'x-real-ip',
  'x-client-ip',
  'true-client-ip',
  'x-cluster-client-ip',
]);

/** What {@link RequestReader.next} found. */
export type ReadResult =
  /** A whole request. */
  | { request: HttpRequest }
  /** Refused: answer `status` with `refused`, and end the connection. */
  | { refused: string; status: number }
  /** More bytes are needed; `continue`: the client waits for a `100 Continue` before it sends its body (said once), and `waiting` is its request without the body. */
  | { more: true; continue?: true; waiting?: HttpRequest };

interface Reading {
  head: RequestHead;
  target: RequestTarget;
  pieces: Buffer[];
  got: number;
  chunked?: ChunkedReader;
  continued: boolean;
}

/** See the module documentation. */
export class RequestReader {
  /** The port's per-run path (`/<prefix>/…`): a target without it is refused. */
  readonly #prefix: string | undefined;
  /** The largest body taken. */
  readonly #maxBody: number;
  #buf: Buffer = Buffer.alloc(0);
  #reading: Reading | undefined;
  #done = false;
  /** The prefix when it is a secret (a per-run path, a direct credential), taken out of the fields forwarded. */
  readonly #secret: string | undefined;

  /** `secret`: whether the prefix is one (not the API's own base path, which a routed client names). */
  constructor(prefix: string | undefined, maxBody: number, secret = false) {
    this.#prefix = prefix;
    this.#maxBody = maxBody;
    this.#secret = secret ? prefix : undefined;
  }

  /** Bytes that came and wait to be read. */
  get waiting(): number {
    return this.#buf.length;
  }

  /** Whether a request has begun to come (some of its bytes are here). */
  get begun(): boolean {
    return this.#reading !== undefined || this.#buf.length > 0;
  }

  push(chunk: Buffer): void {
    if (this.#done) return;
    this.#buf = this.#buf.length === 0 ? chunk : Buffer.concat([this.#buf, chunk]);
  }

  /** The next request, as far as the bytes here go. */
  next(): ReadResult {
    if (this.#done) return { more: true };
    const r = this.#reading ?? this.#head();
    if (!r || 'refused' in r) return r ? this.#refuse(r) : { more: true };
    this.#reading = r;
    const body = this.#body(r);
    if (body === 'more') {
      if (r.head.expectContinue && !r.continued && r.head.version === '1.1') {
        r.continued = true;
        return { more: true, continue: true, waiting: { head: r.head, method: r.head.method, target: r.target, fields: forwarded(r.head), body: undefined } };
      }
      return { more: true };
    }
    if (typeof body === 'object' && 'refused' in body) return this.#refuse(body);
    this.#reading = undefined;
    if (body && namesMethod(body)) return this.#refuse({ refused: 'the body names a _method, which servers read as another method: send that method itself', status: 400 });
    if (body && readsAsRequest(body))
      return this.#refuse({ refused: 'the body begins as an HTTP request does: a server that does not read a body there would take it for a request of its own', status: 400 });
    return { request: { head: r.head, method: r.head.method, target: r.target, fields: forwarded(r.head), body } };
  }

  #refuse(r: { refused: string; status: number }): ReadResult {
    this.#done = true;
    this.#buf = Buffer.alloc(0);
    return r;
  }

  /** The head at the start of what came, its target read; undefined while it has not all come. */
  #head(): Reading | { refused: string; status: number } | undefined {
    const head = readRequestHead(this.#buf);
    if (!head) return undefined;
    if ('refused' in head) return head;
    this.#buf = this.#buf.subarray(head.bytes);
    if (head.upgrade) return { refused: `an upgrade to ${head.upgrade} is not relayed on HTTP connections`, status: 501 };
    if (head.method !== head.method.toUpperCase())
      return { refused: `the method ${head.method} is not in upper case (methods are case-sensitive; it would be sent as ${head.method.toUpperCase()})`, status: 400 };
    // A name with `_` is read as with `-` (CGI, Rack and WSGI name both HTTP_X_ORIGINAL_URL).
    const override = head.fields.find(([n]) => ROUTE_OVERRIDES.has(n.replace(/_/g, '-')));
    if (override) return { refused: `${override[0]} asks the upstream to read another method or route than the one judged: send that method and path themselves`, status: 400 };
    if (head.method === 'CONNECT' || head.method === 'TRACE')
      return { refused: head.method === 'TRACE' ? 'TRACE is not relayed: it would echo what the gateway adds' : 'CONNECT is not relayed: name the path on the connection', status: 405 };
    const path = this.#withoutPrefix(head.target);
    if (path === undefined) return { refused: "the target does not begin with this port's path: use the URL hoop connect printed", status: 404 };
    const target = readTarget(path);
    if ('refused' in target) return { refused: target.refused, status: 400 };
    if (target.query.some(([n]) => n.toLowerCase() === '_method')) return { refused: 'a _method parameter asks the upstream to read another method: send that method itself', status: 400 };
    if (head.framing.kind === 'length' && head.framing.length > this.#maxBody) return this.#tooLarge();
    // The port's path (a direct credential's) is taken out of every field once, as the head is read: whatever reads it (the judge, the forwarding, the recording) never sees it.
    const secret = this.#secret;
    const read = secret ? { ...head, fields: head.fields.map(([n, v]): [string, string] => [n, withoutPath(v, secret)]) } : head;
    return { head: read, target, pieces: [], got: 0, continued: false, ...(head.framing.kind === 'chunked' ? { chunked: new ChunkedReader() } : {}) };
  }

  #tooLarge(): { refused: string; status: number } {
    return { refused: `the body is larger than ${this.#maxBody} bytes (the policy's http.maxRequestBytes)`, status: 413 };
  }

  /** `target` without the port's prefix (`/p/x` → `/x`, `/p` → `/`); undefined when it does not begin with it. */
  #withoutPrefix(target: string): string | undefined {
    const p = this.#prefix;
    if (p === undefined) return target;
    const start = `/${p}`;
    if (!target.startsWith(start)) return undefined;
    const rest = target.slice(start.length);
    if (rest === '') return '/';
    if (rest[0] === '/') return rest;
    return rest[0] === '?' ? `/${rest}` : undefined;
  }

  /** The body of `r` once all of it came (undefined: none), `more` until then, or why it is refused. */
  #body(r: Reading): Buffer | undefined | 'more' | { refused: string; status: number } {
    const framing = r.head.framing;
    if (framing.kind === 'none') return undefined;
    if (framing.kind === 'length') {
      const n = Math.min(framing.length - r.got, this.#buf.length);
      if (n > 0) {
        r.pieces.push(this.#buf.subarray(0, n));
        r.got += n;
        this.#buf = this.#buf.subarray(n);
      }
      return r.got < framing.length ? 'more' : Buffer.concat(r.pieces);
    }
    if (framing.kind !== 'chunked' || !r.chunked) return { refused: 'a request whose body runs until the connection closes', status: 400 };
    let read: ReturnType<ChunkedReader['push']>;
    try {
      read = r.chunked.push(this.#buf);
    } catch (err) {
      return { refused: `the chunked body is malformed: ${(err as Error).message}`, status: 400 };
    }
    this.#buf = read.rest ?? Buffer.alloc(0);
    for (const d of read.data) {
      r.pieces.push(d);
      r.got += d.length;
    }
    if (r.got > this.#maxBody) return this.#tooLarge();
    if (!read.ended) return 'more';
    return r.got === 0 ? undefined : Buffer.concat(r.pieces);
  }
}

/** The fields of `head` as forwarded: less those of the connection (and those it names), of framing, those the gateway writes, and the caller's claims of who and where the client is. */
function forwarded(head: RequestHead): Array<[string, string]> {
  const named = new Set(values(head.fields, 'connection').flatMap((v) => v.split(',').map((t) => t.trim().toLowerCase())));
  return head.fields.filter(([n]) => !NOT_FORWARDED.has(n) && !CLIENT_CLAIMS.has(n.replace(/_/g, '-')) && !named.has(n));
}

/**
 * Whether `body` begins (after blank lines, which servers skip between requests) with an HTTP/1
 * request line: a server that does not read a body on that route (the "CL.0" desync) would take
 * it for the next request on the connection, unjudged, and finish it with the bytes of the
 * request sent after it, the credential's field among them.
 *
 * @see https://portswigger.net/research/browser-powered-desync-attacks (CL.0)
 */
function readsAsRequest(body: Buffer): boolean {
  return /^[\r\n]*[!#$%&'*+.^_`|~0-9A-Za-z-]+[ \t]+\S+[ \t]+HTTP\/\d/.test(body.toString('latin1', 0, Math.min(body.length, 16 * 1024)));
}

/** `value` with every `/<prefix>` in it taken out. */
export function withoutPath(value: string, prefix: string): string {
  return value.includes(prefix) ? value.split(`/${prefix}`).join('') : value;
}

/**
 * Whether `body` may name a `_method` a server reads as the request's method: anywhere in it, as
 * written or percent-encoded (servers read it from urlencoded and multipart forms, from bodies of no
 * type or a list of types, and from JSON): refused wherever it stands, whatever the body's type.
 */
function namesMethod(body: Buffer): boolean {
  return /_method|%5fmethod/i.test(body.toString('latin1'));
}
