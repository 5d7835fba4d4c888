/**
 * The gateway API's requests and answers: JSON bodies read within a limit, errors as
 * `{ error: { code, message, hint?, reason? } }` with the HTTP status their code maps to, files
 * streamed as they are read.
 *
 * @see https://www.rfc-editor.org/rfc/rfc9110#name-status-codes
 * @see https://www.rfc-editor.org/rfc/rfc6750#section-3 (WWW-Authenticate for bearer tokens)
 * @see https://www.rfc-editor.org/rfc/rfc8259 (JSON)
 */
import { createReadStream } from 'node:fs';
import type * as http from 'node:http';
import type * as z from 'zod';
import { type ErrorBody, statusOfCode } from '../../api/answers.js';
import { BodyProblem, parseBody } from '../../api/bodies.js';
import { ErrorCode, HoopError, describeError } from '../../errors.js';
import { keyWrittenTwice } from '../../json-number.js';
import { HttpError } from './http-error.js';
import { TokenRejectedError } from '../identity/verify-token.js';

/** What an endpoint answers: a JSON body, or a file (a path streamed, or bytes). */
export interface Answer {
  status: number;
  body: unknown;
  headers?: Record<string, string>;
  file?: string | Buffer;
}

/** Largest JSON request body accepted (a device registration, a review decision, a run's ask). */
export const MAX_BODY_BYTES = 16 * 1024;

/** The HTTP status an error is answered with: its own ({@link HttpError}), else its code's (../../api/answers.ts). */
export function errorStatus(err: HoopError): number {
  if (err instanceof HttpError) return err.status;
  return statusOfCode(err.code);
}

/** The JSON body of an error answer; a refused token says why (`reason`). */
export function errorBody(err: HoopError): ErrorBody {
  const body = err.toJSON();
  return err instanceof TokenRejectedError ? { error: { ...body.error, reason: err.reason } } : body;
}

/** The headers an error answer carries: its own, or a bearer challenge for a refused token. */
export function errorHeaders(err: HoopError): Record<string, string> {
  if (err instanceof HttpError) return err.headers;
  return err instanceof TokenRejectedError ? { 'WWW-Authenticate': `Bearer error="invalid_token", error_description="${err.reason}"` } : {};
}

/** Any failure as the HoopError it is answered with (an unexpected one is internal). */
export function asHoopError(err: unknown): HoopError {
  return err instanceof HoopError ? err : new HoopError(ErrorCode.INTERNAL, describeError(err));
}

export function sendJson(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text), 'Cache-Control': 'no-store', ...headers });
  res.end(text);
}

/** Sends an endpoint's answer: its JSON, or its file as it is read (a file gone meanwhile is a 404). */
export function sendAnswer(res: http.ServerResponse, { status, body, headers, file }: Answer): void {
  if (!file) return sendJson(res, status, body, headers);
  if (Buffer.isBuffer(file)) {
    res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': file.length, 'Cache-Control': 'no-store' });
    res.end(file);
    return;
  }
  const stream = createReadStream(file);
  stream.once('open', () => {
    res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Cache-Control': 'no-store' });
    stream.pipe(res);
  });
  stream.once('error', (err) => {
    if (res.headersSent) res.destroy();
    else sendJson(res, 404, { error: { code: ErrorCode.SESSION_UNKNOWN, message: `no such file in this recording: ${describeError(err)}` } });
  });
}

/** Sends an error answer (unless an answer began already). */
export function sendError(res: http.ServerResponse, err: HoopError): void {
  if (!res.headersSent) sendJson(res, errorStatus(err), errorBody(err), errorHeaders(err));
}

/**
 * Reads a JSON request body of at most `limit` bytes.
 *
 * @throws HttpError 413 (too large), 415 (not JSON), 400 (malformed, or a key written twice in one object)
 */
export async function readJsonBody(req: http.IncomingMessage, limit = MAX_BODY_BYTES): Promise<unknown> {
  const type = req.headers['content-type'];
  if (type !== undefined && !/^application\/(?:[\w.+-]+\+)?json\s*(?:;|$)/i.test(type)) {
    throw new HttpError(415, 'the request body must be JSON', { hint: 'send Content-Type: application/json' });
  }
  const text = (await readBody(req, limit, 'send only the fields the endpoint takes')).toString('utf8');
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new HttpError(400, 'the request body is not valid JSON');
  }
  // Readers keep the first or the last of a key written twice: the gateway reads neither.
  const twice = keyWrittenTwice(text);
  if (twice !== undefined) throw new HttpError(400, `the request body names ${JSON.stringify(twice)} twice in one object`, { hint: 'send each field once' });
  return value;
}

/**
 * A request body checked against its schema (../../api/bodies.ts, shared with the CLI): the value,
 * or a 400 saying the first problem, with the hint given for its field.
 */
export function checkBody<S extends z.ZodType>(schema: S, body: unknown, hints: Record<string, string> = {}): z.output<S> {
  try {
    return parseBody(schema, body);
  } catch (err) {
    if (!(err instanceof BodyProblem)) throw err;
    throw new HttpError(400, err.message, { hint: err.field === undefined ? undefined : hints[err.field] });
  }
}

/** A JSON request body that may be absent (no length, no chunks): null then; at most `limit` bytes. */
export async function readOptionalJsonBody(req: http.IncomingMessage, limit = MAX_BODY_BYTES): Promise<unknown> {
  return (req.headers['content-length'] ?? '0') === '0' && req.headers['transfer-encoding'] === undefined ? null : readJsonBody(req, limit);
}

/**
 * Reads a request body of at most `limit` bytes.
 *
 * @throws HttpError 413 (too large; the connection is closed after the answer)
 */
export function readBody(req: http.IncomingMessage, limit: number, hint: string): Promise<Buffer> {
  const tooLarge = (): HttpError => new HttpError(413, `the request body is larger than ${limit} bytes`, { hint, headers: { Connection: 'close' } });
  if (Number(req.headers['content-length'] ?? 0) > limit) return Promise.reject(tooLarge());
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const cleanup = (): void => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
    };
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > limit) {
        cleanup();
        req.pause();
        reject(tooLarge());
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = (): void => {
      cleanup();
      resolve(Buffer.concat(chunks));
    };
    const onError = (err: Error): void => {
      cleanup();
      reject(err);
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
  });
}

/** Throws 405 unless `method` is one of `methods`. */
export function allowOnly(method: string, methods: readonly string[]): void {
  if (!methods.includes(method)) throw new HttpError(405, `${method} is not supported here`, { headers: { Allow: methods.join(', ') } });
}
