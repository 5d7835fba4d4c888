/**
 * Framing of the "hoop-tunnel/1" byte stream that follows the HTTP `101 Switching Protocols`.
 *
 * Each frame is one byte of type, four bytes of big-endian payload length, then the payload.
 * DATA frames carry raw protocol bytes (a byte stream: frame boundaries mean nothing); CONTROL
 * frames carry one UTF-8 JSON object with a string `type`. An unknown type, a length above the
 * type's limit or a CONTROL payload that is not such an object is a protocol violation.
 *
 * @see docs/internals.md (§1.2)
 * @see https://github.com/brianc/node-postgres/blob/master/packages/pg-protocol/src/parser.ts (cursor over a growing buffer)
 */
import { isUtf8 } from 'node:buffer';
import { ErrorCode, HoopError } from '../errors.js';
import { FrameDecoder } from './chunk-queue.js';

/**
 * Frame types of hoop-tunnel/1.
 * @see docs/internals.md (§1.2)
 */
export const FrameType = {
  /** Raw protocol bytes, part of a byte stream. */
  DATA: 0x01,
  /** One JSON object with a string `type` (error, approval, close reason, ...). */
  CONTROL: 0x02,
} as const;

/** A frame type value. */
export type FrameType = (typeof FrameType)[keyof typeof FrameType];

/** Bytes in a frame header: type (1) + big-endian payload length (4). @see docs/internals.md (§1.2) */
export const FRAME_HEADER_LENGTH = 5;

/** Largest DATA payload (1 MiB); larger writes are split into several frames. @see docs/internals.md (§1.2) */
export const MAX_DATA_PAYLOAD = 1024 * 1024;

/** Largest CONTROL payload (64 KiB). @see docs/internals.md (§1.2) */
export const MAX_CONTROL_PAYLOAD = 64 * 1024;

/**
 * A CONTROL message: a JSON object whose `type` says what it is, e.g.
 * `{"type":"close","reason":"upstream-auth-failed","message":"..."}` or `{"type":"error",...}`.
 * @see docs/internals.md (§1.2)
 */
export type ControlMessage = { type: string; [key: string]: unknown };

/** A decoded DATA frame; `payload` may be a view into a received chunk. @see docs/internals.md (§1.2) */
export interface DataFrame {
  type: typeof FrameType.DATA;
  payload: Buffer;
}

/** A decoded CONTROL frame with its already-validated message. @see docs/internals.md (§1.2) */
export interface ControlFrame {
  type: typeof FrameType.CONTROL;
  payload: Buffer;
  control: ControlMessage;
}

/** A decoded frame. @see docs/internals.md (§1.2) */
export type Frame = DataFrame | ControlFrame;

function violation(message: string): HoopError {
  return new HoopError(ErrorCode.PROTOCOL_VIOLATION, `invalid hoop-tunnel/1 frame: ${message}`, {
    hint: 'the peer does not speak hoop-tunnel/1 correctly; check that client and gateway versions are compatible',
  });
}

function maxPayload(type: number): number {
  if (type === FrameType.DATA) return MAX_DATA_PAYLOAD;
  if (type === FrameType.CONTROL) return MAX_CONTROL_PAYLOAD;
  return -1;
}

function checkOutgoing(type: number, length: number): void {
  const max = maxPayload(type);
  if (max < 0) throw new HoopError(ErrorCode.INTERNAL, `cannot encode a frame of unknown type ${type}`);
  if (!Number.isInteger(length) || length < 0 || length > max) {
    throw new HoopError(ErrorCode.INTERNAL, `frame payload of ${length} bytes exceeds the ${max}-byte limit of type ${type}`);
  }
}

/**
 * The 5-byte header of a frame, for payloads written separately (cork/writev) to avoid a copy.
 * Throws HoopError(INTERNAL) for an unknown type or a length above the type's limit.
 * @see docs/internals.md (§1.2)
 */
export function encodeFrameHeader(type: FrameType, length: number): Buffer {
  checkOutgoing(type, length);
  const header = Buffer.allocUnsafe(FRAME_HEADER_LENGTH);
  header[0] = type;
  header.writeUInt32BE(length, 1);
  return header;
}

/**
 * One buffer holding header and a copy of `payload`: one socket write per frame. Prefer
 * {@link encodeFrameHeader} plus the payload itself for large payloads.
 * Throws HoopError(INTERNAL) for an unknown type or a length above the type's limit.
 * @see docs/internals.md (§1.2)
 */
export function encodeFrame(type: FrameType, payload: Uint8Array): Buffer {
  checkOutgoing(type, payload.length);
  const frame = Buffer.allocUnsafe(FRAME_HEADER_LENGTH + payload.length);
  frame[0] = type;
  frame.writeUInt32BE(payload.length, 1);
  frame.set(payload, FRAME_HEADER_LENGTH);
  return frame;
}

/**
 * A whole CONTROL frame for `message`. Throws HoopError(INTERNAL) when `message` has no string
 * `type` or its JSON exceeds {@link MAX_CONTROL_PAYLOAD}.
 * @see docs/internals.md (§1.2)
 */
export function encodeControl(message: ControlMessage): Buffer {
  if (typeof message?.type !== 'string') throw new HoopError(ErrorCode.INTERNAL, 'a control message needs a string "type"');
  return encodeFrame(FrameType.CONTROL, Buffer.from(JSON.stringify(message), 'utf8'));
}

/**
 * Validates and parses a CONTROL payload: UTF-8, JSON, an object with a string `type`.
 * Throws HoopError(PROTOCOL_VIOLATION) otherwise.
 * @see https://www.rfc-editor.org/rfc/rfc8259 (JSON)
 */
export function decodeControl(payload: Buffer): ControlMessage {
  if (!isUtf8(payload)) throw violation('control payload is not valid UTF-8');
  let value: unknown;
  try {
    value = JSON.parse(payload.toString('utf8'));
  } catch {
    throw violation('control payload is not valid JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value) || typeof (value as { type?: unknown }).type !== 'string') {
    throw violation('control payload must be a JSON object with a string "type"');
  }
  return value as ControlMessage;
}

const EMPTY = Buffer.alloc(0);

const hex = (type: number): string => `0x${type.toString(16).padStart(2, '0')}`;

/**
 * Incremental frame decoder: feed received chunks with {@link FrameReader.push}, take frames
 * with {@link FrameReader.next} until it returns null. Keeps a queue of chunks and a cursor.
 * DATA is a byte stream whose frame boundaries mean nothing, so a DATA payload is handed out
 * piece by piece as its bytes arrive, each piece a view of a received chunk (never a copy); a
 * CONTROL payload is returned whole, copied once if it spans chunks. A header is validated as
 * soon as its 5 bytes are in, so an oversize length fails before its payload is buffered. After a violation every call throws it again.
 * @see https://github.com/brianc/node-postgres/blob/master/packages/pg-protocol/src/parser.ts
 */
export class FrameReader extends FrameDecoder {
  #type = 0;

  /** The next complete frame, or null when more bytes are needed. Throws HoopError(PROTOCOL_VIOLATION). */
  next(): Frame | null {
    this.check();
    const queue = this.queue;
    if (this.remaining < 0) {
      if (queue.available < FRAME_HEADER_LENGTH) return null;
      const header = queue.take(FRAME_HEADER_LENGTH);
      const type = header[0]!;
      const length = header.readUInt32BE(1);
      const max = maxPayload(type);
      if (max < 0) throw this.fail(violation(`unknown frame type ${hex(type)}`));
      if (length > max) throw this.fail(violation(`frame of type ${hex(type)} announces ${length} bytes, more than the ${max}-byte limit`));
      this.#type = type;
      this.remaining = length;
    }
    if (this.#type === FrameType.DATA) {
      // DATA is a byte stream: hand out what has arrived without waiting for (or copying into) the whole frame.
      if (this.remaining === 0) {
        this.remaining = -1;
        return { type: FrameType.DATA, payload: EMPTY };
      }
      const payload = this.piece();
      return payload && { type: FrameType.DATA, payload };
    }
    if (queue.available < this.remaining) return null;
    const payload = queue.take(this.remaining);
    this.remaining = -1;
    let control: ControlMessage;
    try {
      control = decodeControl(payload);
    } catch (err) {
      throw this.fail(err as HoopError);
    }
    return { type: FrameType.CONTROL, payload, control };
  }
}
