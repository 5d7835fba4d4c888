/**
 * The one contract of the HTTP lane's relay: every concern on the relay's one read of each
 * direction is an {@link HttpStage}, and the relay (./relay.ts) runs the stages it has in the
 * order it declares there. A stage has only the hooks of the directions it cares about:
 *
 * - the recorder (./recorder.ts): each request as read, each response as the client got it;
 * - the judge (./judge.ts): a request forwarded, refused or held for a review;
 * - content decoding (./content-decoding.ts): a coded body decoded before what reads it;
 * - the credential (./credential.ts): the gateway's credential masked wherever a response echoes it;
 * - masking (./masking.ts): a response's JSON, NDJSON or event-stream body masked by the policy.
 *
 * @see https://www.rfc-editor.org/rfc/rfc9110
 */
import type { HttpVerdict } from '../../policy/http.js';
import type { RequestHead } from '../wire/head.js';
import type { RequestTarget } from '../wire/target.js';

/** A request the relay has read whole: its head, its target as judged and forwarded, its body. */
export interface HttpRequest {
  head: RequestHead;
  /** The upper-case method, as judged and sent. */
  method: string;
  target: RequestTarget;
  /** The fields as judged and forwarded (lower-case names): the head's, less those of the connection and of framing. */
  fields: Array<[string, string]>;
  /** The body's bytes (de-chunked); undefined when it has none. */
  body: Buffer | undefined;
}

/** What a stage decided for a request. */
export type RequestDecision =
  /** Refused by the policy. */
  | { do: 'refuse'; verdict: HttpVerdict }
  /** Held until a reviewer decides. */
  | { do: 'review'; verdict: HttpVerdict };

/** A response's head as it goes to the client: its status and fields (names as the upstream wrote them). */
export interface HttpResponse {
  status: number;
  reason: string;
  fields: Array<[string, string]>;
  /** Whether it has a body (not an answer to HEAD, nor a 1xx, 204 or 304). */
  hasBody: boolean;
}

/** What a stage does to a body as it streams: each chunk's bytes as they go on, then what it held at the end. */
export interface BodyTransform {
  push(chunk: Buffer): Buffer | Promise<Buffer>;
  end(): Buffer | Promise<Buffer>;
}

/** What a stage makes of a response's head: its body transformed, the response refused (502) with why, or refused so only if its body is not empty. */
export type ResponseDecision = { transform: BodyTransform } | { refuse: string } | { emptyOnly: string };

/** One concern on the relay's path, with the hooks of the directions it cares about, called in the relay's declared order. */
export interface HttpStage {
  /** A request read whole: a decision, or undefined to leave it to the stages after. */
  request?(req: HttpRequest): RequestDecision | undefined;
  /** A response's head from the upstream (its fields may be changed in place: a stage drops what its transform makes untrue); undefined to pass its body as it is. */
  response?(res: HttpResponse): ResponseDecision | undefined;
  /** A response's head as the client gets it. */
  sentHead?(res: HttpResponse): void;
  /** Bytes of a response's body as the client gets them. */
  sentBody?(chunk: Buffer): void;
  /** A response's end. */
  sentEnd?(): void;
}
