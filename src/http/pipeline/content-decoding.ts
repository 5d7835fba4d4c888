/**
 * A response body's content coding undone as it streams, so that what masking reads is what the
 * client's decoder would read, within bounds a gzip bomb cannot pass: at most {@link MAX_DECODED_BYTES}
 * decoded in all, and at most {@link MAX_RATIO} times the bytes that came once past the first
 * megabyte. Past either, or on bytes that are not the coding they say, it throws: the caller cannot
 * pass what it could not read. Codings taken: `gzip` (and `x-gzip`), `deflate` (zlib, as RFC 9110
 * says, or raw, as some servers send), `br`, and none (`identity`); a list of them, or another, is
 * not taken.
 *
 * @see https://www.rfc-editor.org/rfc/rfc9110#section-8.4.1 (content codings)
 */
import type { HttpResponse, HttpStage, ResponseDecision } from './stages.js';
import { constants, createBrotliDecompress, createGunzip, createInflate, createInflateRaw, type Gunzip } from 'node:zlib';

/** Most bytes a body decodes to. */
export const MAX_DECODED_BYTES = 64 * 1024 * 1024;
/** Most decoded bytes per byte that came, once past {@link RATIO_FREE_BYTES} decoded. */
export const MAX_RATIO = 100;
const RATIO_FREE_BYTES = 1024 * 1024;

/** The codings taken, by their name in `Content-Encoding`. */
const CODINGS = new Set(['gzip', 'x-gzip', 'deflate', 'br', 'identity']);

/** Whether a body coded as `contentEncoding` (the field's value, or undefined) can be read. */
export function decodable(contentEncoding: string | undefined): boolean {
  return contentEncoding === undefined || CODINGS.has(contentEncoding.trim().toLowerCase());
}

/**
 * Undoes `contentEncoding` on a body's chunks: `push` each as it comes and `end` at the body's end;
 * each answers the decoded bytes that came of it.
 */
export class ContentDecoder {
  readonly #coding: string;
  #stream: Gunzip | undefined;
  #in = 0;
  #out = 0;
  /** The first bytes of a deflate body: zlib-wrapped or raw is told by its header. */
  #deflateHead: Buffer | undefined;
  /** The coded body's own end came. */
  #ended = false;

  /** @throws Error when `contentEncoding` is not one {@link decodable} takes */
  constructor(contentEncoding: string | undefined) {
    const coding = (contentEncoding ?? 'identity').trim().toLowerCase();
    if (!CODINGS.has(coding)) throw new Error(`a body coded ${JSON.stringify(contentEncoding)}, which the gateway cannot read`);
    this.#coding = coding;
    if (coding === 'gzip' || coding === 'x-gzip') this.#stream = createGunzip();
    else if (coding === 'br') this.#stream = createBrotliDecompress() as unknown as Gunzip;
  }

  async push(chunk: Buffer): Promise<Buffer> {
    if (this.#coding === 'identity') return chunk;
    this.#in += chunk.length;
    if (this.#coding === 'deflate' && !this.#stream) {
      // RFC 9110's deflate is zlib-wrapped: its first byte says method 8 and its first two a multiple of 31; else raw.
      const head = (this.#deflateHead = this.#deflateHead ? Buffer.concat([this.#deflateHead, chunk]) : chunk);
      if (head.length < 2) return Buffer.alloc(0);
      this.#deflateHead = undefined;
      this.#stream = ((head[0]! & 0x0f) === 8 && head.readUInt16BE(0) % 31 === 0 ? createInflate() : createInflateRaw()) as Gunzip;
      return this.#run(head, false);
    }
    return this.#run(chunk, false);
  }

  async end(): Promise<Buffer> {
    if (this.#coding === 'identity') return Buffer.alloc(0);
    if (this.#deflateHead) return this.push(Buffer.alloc(0)).then(() => this.#run(Buffer.alloc(0), true));
    return this.#run(Buffer.alloc(0), true);
  }

  /** `input` through the decoder (flushed, and ended when `last`), bounded; bytes after the coded body's own end are refused. */
  #run(input: Buffer, last: boolean): Promise<Buffer> {
    const stream = this.#stream!;
    if (this.#ended) return input.length === 0 ? Promise.resolve(Buffer.alloc(0)) : Promise.reject(this.#trailing());
    return new Promise((resolve, reject) => {
      const out: Buffer[] = [];
      let settled = false;
      const settle = (err?: Error): void => {
        if (settled) return;
        settled = true;
        stream.off('data', onData);
        stream.off('error', onError);
        stream.off('end', onEnd);
        if (err) reject(err);
        else resolve(Buffer.concat(out));
      };
      const onData = (d: Buffer): void => {
        this.#out += d.length;
        if (this.#out > MAX_DECODED_BYTES || (this.#out > RATIO_FREE_BYTES && this.#out > this.#in * MAX_RATIO)) {
          stream.destroy();
          settle(new Error(`the body decodes to more than ${this.#out > MAX_DECODED_BYTES ? `${MAX_DECODED_BYTES / 1024 / 1024} MiB` : `${MAX_RATIO} times its size`} (a compression bomb?)`));
          return;
        }
        out.push(d);
      };
      const onError = (err: Error): void => settle(new Error(`the body is not the ${this.#coding} it says it is: ${err.message}`));
      // The coded body may end before the bytes given do (it ends where its own format says): what came after it is refused.
      const onEnd = (): void => {
        this.#ended = true;
        settle((stream as unknown as { bytesWritten: number }).bytesWritten < this.#in ? this.#trailing() : undefined);
      };
      stream.on('data', onData);
      stream.on('error', onError);
      stream.on('end', onEnd);
      if (last) return void stream.end(input);
      stream.write(input);
      // A flush answers once everything written so far is decoded.
      stream.flush(this.#coding === 'br' ? constants.BROTLI_OPERATION_FLUSH : constants.Z_SYNC_FLUSH, () => settle());
    });
  }

  /** The error of bytes after the coded body's end. */
  #trailing(): Error {
    return new Error(`the body holds bytes after the end of its ${this.#coding} data`);
  }
}

/** A response's content coding undone, as a stage (./stages.ts), for the stages after it that read its body; a part of a body (206) refused. */
export class DecodingStage implements HttpStage {
  response(res: HttpResponse): ResponseDecision | undefined {
    // A part of a body (its Range is never forwarded here) is not read as a whole: refused.
    if (res.status === 206) return { refuse: 'the upstream sent part of an answer (206), which cannot be read whole' };
    const codings = res.fields.filter(([n]) => n.toLowerCase() === 'content-encoding').map(([, v]) => v);
    if (!res.hasBody || codings.length === 0) return undefined;
    const coding = codings.join(', ');
    if (codings.length > 1 || !decodable(coding)) return { refuse: `the upstream sent a body coded ${JSON.stringify(coding)}, which the gateway cannot read to mask` };
    dropFields(res, 'content-encoding', 'content-length');
    return { transform: new ContentDecoder(coding) };
  }
}

/** Removes the fields named (lower case) from `res`. */
export function dropFields(res: HttpResponse, ...names: string[]): void {
  res.fields = res.fields.filter(([n]) => !names.includes(n.toLowerCase()));
}
