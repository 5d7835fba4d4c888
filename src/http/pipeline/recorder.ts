/**
 * The recorder, as a stage (./stages.ts): each request as the gateway read it (the caller's
 * credentials redacted, what the masking detectors find in its body as keyed hashes, its body cut
 * at {@link RECORDED_BODY_BYTES}), and each response as the client got it (its head, then its body's
 * bytes up to {@link RECORDED_BODY_BYTES}, then its end) (./records.ts).
 */
import { createHmac } from 'node:crypto';
import { redactedLine } from '../../policy/masking/json-values.js';
import type { MaskingRules } from '../../policy/masking/rules.js';
import { redactionMarker } from '../../policy/sql/redact.js';
import type { RecordingStream } from '../../recording/thread.js';
import { canonicalTarget } from '../wire/target.js';
import { withoutPath } from './request-reader.js';
import { bodyText, HTTP_BODY, HTTP_END, HTTP_REQUEST, HTTP_RESPONSE, recordJson } from './records.js';
import type { HttpRequest, HttpResponse, HttpStage } from './stages.js';
import { realClock } from '../../clock.js';

/** Most bytes of one body a recording keeps (a request's, a response's). */
export const RECORDED_BODY_BYTES = 256 * 1024;
/** Fields that carry a caller's credentials: recorded as a marker. */
const CREDENTIAL_FIELDS = new Set(['authorization', 'proxy-authorization', 'cookie', 'set-cookie']);

/** What the recorder redacts: the masking rules' detectors, the key of its markers, and the names the connection's credential goes under. */
export interface RecorderTerms {
  rules?: MaskingRules;
  key?: Buffer;
  /** The connection's credential's header (lower case) or query parameter: a caller's own value there is redacted too. */
  credential?: { header?: string; query?: string };
  /** The port's path (a direct credential's): taken out of the answers' fields as recorded (a Location the gateway wrote under it). */
  prefix?: string;
  /** `none`: no body is recorded, only heads and sizes. */
  bodies: 'masked' | 'none';
}

/** See the module documentation. */
export class HttpRecorder implements HttpStage {
  readonly #stream: RecordingStream;
  readonly #t: RecorderTerms;
  #sent = 0;

  constructor(stream: RecordingStream, terms: RecorderTerms) {
    this.#stream = stream;
    this.#t = terms;
  }

  request(req: HttpRequest): undefined {
    const { head, target, body } = req;
    const { key, credential } = this.#t;
    const secret = (name: string): boolean => CREDENTIAL_FIELDS.has(name) || name === credential?.header;
    const fields = head.fields.map(([n, v]): [string, string] => [n, secret(n) ? redactionMarker(v, key) : v]);
    const query = credential?.query?.toLowerCase();
    const shown =
      query && target.query.some(([n]) => n.toLowerCase() === query)
        ? canonicalTarget(
            target.segments,
            target.query.map(([n, v]): [string, string] => [n, n.toLowerCase() === query ? redactionMarker(v, key) : v]),
          )
        : target.canonical;
    const recorded = body && this.#t.bodies === 'masked' ? redactedLine(bodyText(body.subarray(0, RECORDED_BODY_BYTES)), this.#t.rules, key) : undefined;
    // A body cut at the cap is bound whole by its keyed hash: what was padded past the cap is not out of the record's reach.
    const whole = body && body.length > RECORDED_BODY_BYTES && key !== undefined ? { bodyHmac: createHmac('sha256', key).update(body).digest('hex') } : {};
    recordJson(this.#stream, HTTP_REQUEST, { method: head.method, target: shown, fields, ...(recorded !== undefined ? { body: recorded } : {}), bodyBytes: body?.length ?? 0, ...whole });
    return undefined;
  }

  sentHead(res: HttpResponse): void {
    this.#sent = 0;
    const { prefix } = this.#t;
    const fields = res.fields.map(([n, v]): [string, string] => [n, n.toLowerCase() === 'set-cookie' ? redactionMarker(v, this.#t.key) : prefix ? withoutPath(v, prefix) : v]);
    recordJson(this.#stream, HTTP_RESPONSE, { status: res.status, reason: res.reason, fields });
  }

  sentBody(chunk: Buffer): void {
    const room = this.#t.bodies === 'masked' ? RECORDED_BODY_BYTES - Math.min(this.#sent, RECORDED_BODY_BYTES) : 0;
    if (room > 0) this.#stream.record(HTTP_BODY, realClock.now(), chunk, 0, Math.min(room, chunk.length));
    this.#sent += chunk.length;
  }

  sentEnd(): void {
    const recorded = this.#t.bodies === 'masked' ? Math.min(this.#sent, RECORDED_BODY_BYTES) : 0;
    recordJson(this.#stream, HTTP_END, { bytes: this.#sent, ...(recorded < this.#sent ? { recorded } : {}) });
  }
}
