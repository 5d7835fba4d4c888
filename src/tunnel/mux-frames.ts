/**
 * Framing of "hoop-mux/1", the byte stream after the HTTP `101` of a multiplexed tunnel: many
 * sessions of one client over one connection, each a stream with its own id and flow control.
 *
 * Each frame is one byte of type, four bytes of big-endian stream id, four bytes of big-endian
 * payload length, then the payload. DATA payloads are a byte stream (frame boundaries mean
 * nothing); OPEN, ACCEPT, REFUSE, CONTROL and RESET carry one UTF-8 JSON object; END is empty;
 * WINDOW carries a four-byte big-endian credit. An unknown type, a length above the type's
 * limit or a payload of the wrong shape is a protocol violation, and ends the whole connection.
 *
 * @see docs/internals.md (§1.2)
 * @see https://www.rfc-editor.org/rfc/rfc4254#section-5 (SSH channels: open, data, window adjust, EOF, close)
 * @see https://www.rfc-editor.org/rfc/rfc9113#section-6.9 (HTTP/2 flow control)
 */
import { isUtf8 } from 'node:buffer';
import { ErrorCode, HoopError } from '../errors.js';
import { FrameDecoder } from './chunk-queue.js';

/** Frame types of hoop-mux/1. @see docs/internals.md (§1.2) */
export const MuxFrameType = {
  /** Client → gateway: open a session on a new stream; JSON `{connection, headers, window?}` (the v1 Upgrade's headers, lower case; the client's window). */
  OPEN: 0x01,
  /** Gateway → client: the session is accepted; JSON of the headers a v1 `101` carries. */
  ACCEPT: 0x02,
  /** Gateway → client: the session is refused; JSON `{status, body}` as a v1 HTTP refusal. The stream is closed. */
  REFUSE: 0x03,
  /** A stream's protocol bytes. */
  DATA: 0x04,
  /** A stream's CONTROL message (as hoop-tunnel/1's). */
  CONTROL: 0x05,
  /** The sender writes no more on the stream (half-close). */
  END: 0x06,
  /** The sender drops the stream at once; JSON `{message}`. */
  RESET: 0x07,
  /** The sender consumed this many more DATA bytes of the stream: the peer may send them. */
  WINDOW: 0x08,
} as const;

/** A hoop-mux/1 frame type value. */
export type MuxFrameType = (typeof MuxFrameType)[keyof typeof MuxFrameType];

/** Bytes in a hoop-mux/1 frame header: type (1) + stream id (4) + payload length (4). */
export const MUX_HEADER_LENGTH = 9;

/** Largest DATA payload of one frame (64 KiB): frames of several streams interleave at this grain. */
export const MAX_MUX_DATA = 64 * 1024;

/** Largest JSON payload (64 KiB). */
export const MAX_MUX_JSON = 64 * 1024;

/** A decoded hoop-mux/1 frame. DATA payloads may be handed out in pieces as they arrive. */
export interface MuxFrame {
  type: MuxFrameType;
  stream: number;
  /** DATA: a piece of the payload (a view of a received chunk); JSON types: the whole payload. */
  payload: Buffer;
  /** JSON types: the parsed object; WINDOW: `{ credit }`. */
  value?: Record<string, unknown>;
}

const hex = (type: number): string => `0x${type.toString(16).padStart(2, '0')}`;

/** HoopError(PROTOCOL_VIOLATION) for a frame that breaks hoop-mux/1. */
export function muxViolation(message: string): HoopError {
  return new HoopError(ErrorCode.PROTOCOL_VIOLATION, `invalid hoop-mux/1 frame: ${message}`, {
    hint: 'the peer does not speak hoop-mux/1 correctly; check that client and gateway versions are compatible',
  });
}

function maxPayload(type: number): number {
  switch (type) {
    case MuxFrameType.DATA:
      return MAX_MUX_DATA;
    case MuxFrameType.END:
      return 0;
    case MuxFrameType.WINDOW:
      return 4;
    case MuxFrameType.OPEN:
    case MuxFrameType.ACCEPT:
    case MuxFrameType.REFUSE:
    case MuxFrameType.CONTROL:
    case MuxFrameType.RESET:
      return MAX_MUX_JSON;
    default:
      return -1;
  }
}

/** A frame's header alone, for a payload written after it without a copy. Throws HoopError(INTERNAL) beyond the type's limit. */
export function muxHeader(type: MuxFrameType, stream: number, length: number): Buffer {
  const max = maxPayload(type);
  if (max < 0 || length > max) throw new HoopError(ErrorCode.INTERNAL, `a hoop-mux/1 frame of type ${hex(type)} cannot carry ${length} bytes`);
  const header = Buffer.allocUnsafe(MUX_HEADER_LENGTH);
  header[0] = type;
  header.writeUInt32BE(stream, 1);
  header.writeUInt32BE(length, 5);
  return header;
}

/** A whole frame carrying `value` as JSON. Throws HoopError(INTERNAL) when it exceeds 64 KiB. */
export function muxJsonFrame(type: MuxFrameType, stream: number, value: object): Buffer {
  const json = Buffer.from(JSON.stringify(value), 'utf8');
  return Buffer.concat([muxHeader(type, stream, json.length), json]);
}

/** A WINDOW frame granting `credit` bytes on `stream`. */
export function muxWindowFrame(stream: number, credit: number): Buffer {
  const frame = muxHeader(MuxFrameType.WINDOW, stream, 4);
  return Buffer.concat([frame, Buffer.from([credit >>> 24, (credit >>> 16) & 0xff, (credit >>> 8) & 0xff, credit & 0xff])]);
}

function decodeJson(type: number, payload: Buffer): Record<string, unknown> {
  if (!isUtf8(payload)) throw muxViolation(`payload of type ${hex(type)} is not valid UTF-8`);
  let value: unknown;
  try {
    value = JSON.parse(payload.toString('utf8'));
  } catch {
    throw muxViolation(`payload of type ${hex(type)} is not valid JSON`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw muxViolation(`payload of type ${hex(type)} must be a JSON object`);
  return value as Record<string, unknown>;
}

/**
 * Incremental hoop-mux/1 decoder: {@link MuxReader.push} received chunks, take frames with
 * {@link MuxReader.next} until it returns null. A header is validated as soon as its 9 bytes are
 * in, so an oversize length fails before its payload is buffered; DATA is handed out piece by
 * piece (views, never copies). After a violation every call throws it again.
 */
export class MuxReader extends FrameDecoder {
  #type = 0;
  #stream = 0;

  /** The next frame (or DATA piece), or null when more bytes are needed. Throws HoopError(PROTOCOL_VIOLATION). */
  next(): MuxFrame | null {
    this.check();
    const queue = this.queue;
    if (this.remaining < 0) {
      if (queue.available < MUX_HEADER_LENGTH) return null;
      const header = queue.take(MUX_HEADER_LENGTH);
      const type = header[0]!;
      const length = header.readUInt32BE(5);
      const max = maxPayload(type);
      if (max < 0) throw this.fail(muxViolation(`unknown frame type ${hex(type)}`));
      if (length > max) throw this.fail(muxViolation(`frame of type ${hex(type)} announces ${length} bytes, more than the ${max}-byte limit`));
      if (type === MuxFrameType.WINDOW && length !== 4) throw this.fail(muxViolation('a WINDOW frame carries exactly 4 bytes'));
      if (type === MuxFrameType.DATA && length === 0) throw this.fail(muxViolation('an empty DATA frame'));
      this.#type = type;
      this.#stream = header.readUInt32BE(1);
      this.remaining = length;
    }
    const type = this.#type as MuxFrameType;
    const stream = this.#stream;
    if (type === MuxFrameType.DATA) {
      const payload = this.piece();
      return payload && { type, stream, payload };
    }
    if (queue.available < this.remaining) return null;
    const payload = queue.take(this.remaining);
    this.remaining = -1;
    if (type === MuxFrameType.END) return { type, stream, payload };
    if (type === MuxFrameType.WINDOW) {
      const credit = payload.readUInt32BE(0);
      if (credit === 0) throw this.fail(muxViolation('a WINDOW frame grants nothing'));
      return { type, stream, payload, value: { credit } };
    }
    try {
      return { type, stream, payload, value: decodeJson(type, payload) };
    } catch (err) {
      throw this.fail(err as HoopError);
    }
  }
}
