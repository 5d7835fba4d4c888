/**
 * What an HTTP session's recording keeps, and how readers turn it into events
 * (docs/recording-format.md, "HTTP sessions"): each request as the gateway read it
 * ({@link HTTP_REQUEST}: its method, target as forwarded, fields with the caller's credentials
 * redacted, and its body, capped), each response head as the client got it ({@link HTTP_RESPONSE}),
 * the response body's bytes as the client got them, masked ({@link HTTP_BODY}, capped per response),
 * and each response's end ({@link HTTP_END}: its bytes, and whether the record of them was cut). A
 * reader writes each as an `http` event: `{ d: "c", request }`, `{ d: "s", response }`,
 * `{ d: "s", body }` (text, or `base64:` for bytes that are not UTF-8), `{ d: "s", end }`.
 */
import { realClock } from '../../clock.js';
import { parseJson } from '../../json-number.js';
import type { EventSink } from '../../recording/event-line.js';
import type { RecordEncoder, RecordingStream } from '../../recording/thread.js';

/** Record kind: a request, as JSON ({@link RecordedRequest}). */
export const HTTP_REQUEST = 2;
/** Record kind: a response's head as the client got it, as JSON ({@link RecordedResponse}). */
export const HTTP_RESPONSE = 3;
/** Record kind: bytes of a response's body as the client got them. */
export const HTTP_BODY = 4;
/** Record kind: a response's end, as JSON ({@link RecordedEnd}). */
export const HTTP_END = 5;

/** A request as recorded. */
export interface RecordedRequest {
  method: string;
  target: string;
  fields: Array<[string, string]>;
  /** The body as text (UTF-8), or `base64:…`; cut at the cap. */
  body?: string;
  bodyBytes: number;
  /** A body cut at the cap: HMAC-SHA256 of all of it, under the recording's redaction key (hex). */
  bodyHmac?: string;
}

/** A response head as recorded. */
export interface RecordedResponse {
  status: number;
  reason: string;
  fields: Array<[string, string]>;
}

/** A response's end as recorded. */
export interface RecordedEnd {
  bytes: number;
  /** Bytes of the body the record holds, when fewer than were sent. */
  recorded?: number;
}

/** Records `value` (one of the JSON kinds). */
export function recordJson(stream: RecordingStream, kind: typeof HTTP_REQUEST | typeof HTTP_RESPONSE | typeof HTTP_END, value: RecordedRequest | RecordedResponse | RecordedEnd): void {
  const bytes = Buffer.from(JSON.stringify(value), 'utf8');
  stream.record(kind, realClock.now(), bytes, 0, bytes.length);
}

/** A body's bytes as recorded text: UTF-8 as it reads, else `base64:…`. */
export function bodyText(bytes: Buffer): string {
  const text = bytes.toString('utf8');
  return Buffer.byteLength(text, 'utf8') === bytes.length && !text.includes('\uFFFD') ? text : `base64:${bytes.toString('base64')}`;
}

/** The reader's side: turns the records into `http` events. */
class HttpRecordReader implements RecordEncoder {
  constructor(private readonly sink: EventSink) {}

  record(kind: number, at: number, bytes: Buffer, start: number, end: number): void {
    if (kind === HTTP_BODY)
      return void this.sink
        .begin('http', at)
        .key('d')
        .string('s')
        .key('body')
        .string(bodyText(bytes.subarray(start, end)))
        .end();
    const key = kind === HTTP_REQUEST ? 'request' : kind === HTTP_RESPONSE ? 'response' : kind === HTTP_END ? 'end' : undefined;
    if (!key) return;
    let value: unknown;
    try {
      value = parseJson(bytes.toString('utf8', start, end));
    } catch {
      value = undefined;
    }
    const line = this.sink
      .begin('http', at)
      .key('d')
      .string(kind === HTTP_REQUEST ? 'c' : 's')
      .key(key);
    if (value === undefined) line.text(bytes, start, end).end();
    else line.json(value).end();
  }

  flush(): void {}
}

/** The decoder of HTTP sessions' records (see RecordEncoderModule in src/recording/thread.ts). */
export function createRecordEncoder(sink: EventSink): RecordEncoder {
  return new HttpRecordReader(sink);
}
