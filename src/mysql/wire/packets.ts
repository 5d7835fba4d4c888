/**
 * The MySQL client/server protocol's packets: a 3-byte little-endian payload length, a sequence
 * id, the payload. A payload of 2^24 − 1 bytes or more is split into packets of that size, the
 * last shorter (empty when the payload is an exact multiple). Readers here join them back.
 *
 * @see https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_basic_packets.html
 * @see https://mariadb.com/kb/en/0-packet/
 */
import { MySqlProtocolError } from './protocol-error.js';

/** The largest payload one packet carries; a packet of this size says more follow. */
export const MAX_PACKET_PAYLOAD = 0xffffff;

/** One logical packet: its first sequence id, the id its answer takes, and its whole payload. */
export interface MySqlPacket {
  seq: number;
  /** The sequence id after its last packet (mod 256): the id the answer to it starts with. */
  next: number;
  payload: Buffer;
  /** The packet's bytes as they came (header and payload), when one chunk held it whole: written on as they are when nothing changed it. */
  raw?: Buffer;
}

/** The packets that carry `payload`, from sequence id `seq` (each next packet one more, mod 256). */
export function packet(seq: number, payload: Buffer): Buffer {
  const parts: Buffer[] = [];
  let at = 0;
  for (;;) {
    const n = Math.min(MAX_PACKET_PAYLOAD, payload.length - at);
    const head = Buffer.allocUnsafe(4);
    head.writeUIntLE(n, 0, 3);
    head[3] = seq & 0xff;
    parts.push(head, payload.subarray(at, at + n));
    at += n;
    seq++;
    if (n < MAX_PACKET_PAYLOAD) break;
  }
  return parts.length === 2 ? Buffer.concat(parts, 4 + payload.length) : Buffer.concat(parts);
}

/**
 * Cuts a byte stream into packets. `maxPayload` bounds a joined payload: a peer that announces
 * more is a protocol error, so no buffer grows past it.
 */
export class PacketReader {
  #chunks: Buffer[] = [];
  #buffered = 0;
  #parts: Buffer[] = [];
  #partsBytes = 0;
  #firstSeq = -1;
  readonly #maxPayload: number;

  constructor(maxPayload = 64 * 1024 * 1024) {
    this.#maxPayload = maxPayload;
  }

  /** Bytes held that are not yet a whole packet. */
  get buffered(): number {
    return this.#buffered + this.#partsBytes;
  }

  /** Takes every byte held that is not yet a whole packet, as it came (the reader is then empty). */
  rest(): Buffer {
    const parts = this.#parts.map((part, i) => packet(this.#firstSeq + i, part).subarray(0, 4 + MAX_PACKET_PAYLOAD));
    const out = Buffer.concat([...parts, ...this.#chunks]);
    this.#chunks = [];
    this.#buffered = 0;
    this.#parts = [];
    this.#partsBytes = 0;
    this.#firstSeq = -1;
    return out;
  }

  /** Adds `chunk` and returns the packets it completes. */
  push(chunk: Buffer): MySqlPacket[] {
    if (chunk.length > 0) {
      this.#chunks.push(chunk);
      this.#buffered += chunk.length;
    }
    const out: MySqlPacket[] = [];
    for (;;) {
      if (this.#buffered < 4) return out;
      const head = this.#peek(4);
      const n = head.readUIntLE(0, 3);
      if (this.#partsBytes + n > this.#maxPayload) throw new MySqlProtocolError(`a packet of more than ${this.#maxPayload} bytes`);
      if (this.#buffered < 4 + n) return out;
      if (n < MAX_PACKET_PAYLOAD && this.#parts.length === 0 && this.#chunks[0]!.length >= 4 + n) {
        const raw = this.#take(4 + n);
        out.push({ seq: raw[3]!, next: (raw[3]! + 1) & 0xff, payload: raw.subarray(4), raw });
        continue;
      }
      this.#take(4);
      const body = this.#take(n);
      if (this.#firstSeq < 0) this.#firstSeq = head[3]!;
      if (n === MAX_PACKET_PAYLOAD) {
        this.#parts.push(body);
        this.#partsBytes += n;
        continue;
      }
      const payload = this.#parts.length === 0 ? body : Buffer.concat([...this.#parts, body]);
      out.push({ seq: this.#firstSeq, next: (head[3]! + 1) & 0xff, payload });
      this.#parts = [];
      this.#partsBytes = 0;
      this.#firstSeq = -1;
    }
  }

  /** The first `n` buffered bytes, without taking them. */
  #peek(n: number): Buffer {
    const first = this.#chunks[0]!;
    if (first.length >= n) return first.subarray(0, n);
    return Buffer.concat(this.#chunks).subarray(0, n);
  }

  /** Takes the first `n` buffered bytes: a view when one chunk holds them, else one copy. */
  #take(n: number): Buffer {
    this.#buffered -= n;
    const first = this.#chunks[0];
    if (n === 0) return Buffer.alloc(0);
    if (first && first.length >= n) {
      if (first.length === n) this.#chunks.shift();
      else this.#chunks[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    const out = Buffer.allocUnsafe(n);
    let at = 0;
    while (at < n) {
      const c = this.#chunks[0]!;
      const k = Math.min(c.length, n - at);
      c.copy(out, at, 0, k);
      at += k;
      if (k === c.length) this.#chunks.shift();
      else this.#chunks[0] = c.subarray(k);
    }
    return out;
  }
}

/** Reads a payload's fields in order; every read past the end is a protocol error. */
export class Cursor {
  at = 0;
  readonly buf: Buffer;

  constructor(buf: Buffer, at = 0) {
    this.buf = buf;
    this.at = at;
  }

  /** Bytes left. */
  get left(): number {
    return this.buf.length - this.at;
  }

  #need(n: number): void {
    if (this.at + n > this.buf.length) throw new MySqlProtocolError(`a packet ended ${this.at + n - this.buf.length} bytes early`);
  }

  u8(): number {
    this.#need(1);
    return this.buf[this.at++]!;
  }

  u16(): number {
    this.#need(2);
    const v = this.buf.readUInt16LE(this.at);
    this.at += 2;
    return v;
  }

  u24(): number {
    this.#need(3);
    const v = this.buf.readUIntLE(this.at, 3);
    this.at += 3;
    return v;
  }

  u32(): number {
    this.#need(4);
    const v = this.buf.readUInt32LE(this.at);
    this.at += 4;
    return v;
  }

  /** A length-encoded integer; null for the NULL marker 0xfb (a row's NULL value). */
  lenencOrNull(): number | null {
    const first = this.u8();
    if (first < 0xfb) return first;
    if (first === 0xfb) return null;
    if (first === 0xfc) return this.u16();
    if (first === 0xfd) return this.u24();
    if (first === 0xfe) {
      this.#need(8);
      const v = this.buf.readBigUInt64LE(this.at);
      this.at += 8;
      if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new MySqlProtocolError('a length-encoded integer past 2^53');
      return Number(v);
    }
    throw new MySqlProtocolError('a length-encoded integer starting with 0xff');
  }

  /** A length-encoded integer of up to 64 bits, as an OK packet's row count and insert id are (a negative id is one past 2^63). */
  lenencBigInt(): bigint {
    const first = this.u8();
    if (first === 0xfe) {
      this.#need(8);
      const v = this.buf.readBigUInt64LE(this.at);
      this.at += 8;
      return v;
    }
    this.at--;
    return BigInt(this.lenenc());
  }

  /** A length-encoded integer that may not be NULL. */
  lenenc(): number {
    const v = this.lenencOrNull();
    if (v === null) throw new MySqlProtocolError('a NULL where a length was due');
    return v;
  }

  bytes(n: number): Buffer {
    this.#need(n);
    const v = this.buf.subarray(this.at, this.at + n);
    this.at += n;
    return v;
  }

  /** A length-encoded string's bytes; null for NULL. */
  lenencBytesOrNull(): Buffer | null {
    const n = this.lenencOrNull();
    return n === null ? null : this.bytes(n);
  }

  lenencString(): string {
    return this.bytes(this.lenenc()).toString('utf8');
  }

  /** A NUL-terminated string; the rest of the payload when no NUL is left (as servers of old send). */
  nulString(): string {
    const end = this.buf.indexOf(0, this.at);
    const stop = end < 0 ? this.buf.length : end;
    const v = this.buf.toString('utf8', this.at, stop);
    this.at = end < 0 ? stop : stop + 1;
    return v;
  }

  /** The rest of the payload. */
  rest(): Buffer {
    const v = this.buf.subarray(this.at);
    this.at = this.buf.length;
    return v;
  }
}

/** `n` as a length-encoded integer. */
export function lenenc(value: number | bigint): Buffer {
  if (typeof value === 'bigint' && value > BigInt(Number.MAX_SAFE_INTEGER)) {
    const b = Buffer.allocUnsafe(9);
    b[0] = 0xfe;
    b.writeBigUInt64LE(value, 1);
    return b;
  }
  const n = Number(value);
  if (n < 0xfb) return Buffer.from([n]);
  if (n <= 0xffff) {
    const b = Buffer.allocUnsafe(3);
    b[0] = 0xfc;
    b.writeUInt16LE(n, 1);
    return b;
  }
  if (n <= 0xffffff) {
    const b = Buffer.allocUnsafe(4);
    b[0] = 0xfd;
    b.writeUIntLE(n, 1, 3);
    return b;
  }
  const b = Buffer.allocUnsafe(9);
  b[0] = 0xfe;
  b.writeBigUInt64LE(BigInt(n), 1);
  return b;
}

/** `v` as a length-encoded string (NULL as 0xfb). */
export function lenencBytes(v: Buffer | string | null): Buffer {
  if (v === null) return Buffer.from([0xfb]);
  const b = typeof v === 'string' ? Buffer.from(v, 'utf8') : v;
  return Buffer.concat([lenenc(b.length), b]);
}

/** `s` followed by NUL. */
export function nulString(s: string): Buffer {
  return Buffer.concat([Buffer.from(s, 'utf8'), Buffer.from([0])]);
}
