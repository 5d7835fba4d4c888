/**
 * A request's target as the gateway reads it: its path, and the parts of it a route names, decoded
 * once here. Node's parser takes targets the URL standard refuses (`http://[`); those, and a name
 * that is not percent-encoded UTF-8, are the client's mistake (400), never an exception.
 */
import type * as http from 'node:http';
import { HttpError } from './http-error.js';

/** The URL of `req`'s target, or an HttpError (400) when it cannot be read as one. */
export function requestUrl(req: Pick<http.IncomingMessage, 'url'>): URL {
  try {
    return new URL(req.url ?? '/', 'http://gateway');
  } catch {
    throw new HttpError(400, `the request target ${JSON.stringify((req.url ?? '').slice(0, 80))} is not a URL path`, { hint: 'send a path such as /v1/connections' });
  }
}

/** `part` of a path, percent-decoded; an HttpError (400) when it is not percent-encoded UTF-8. */
export function pathPart(part: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    throw new HttpError(400, `${JSON.stringify(part.slice(0, 80))} in the path is not percent-encoded UTF-8`, { hint: 'encode names with encodeURIComponent' });
  }
}
