/**
 * A request's body as the judge reads it (src/policy/http.ts `HttpAsk.body`): JSON it reads, or
 * `unread` when it cannot say what the upstream will read, which only refusing rules meet. Unread:
 * a body not declared JSON (`application/json`, `*+json`), one with a content coding, one larger
 * than {@link MAX_JUDGED_BODY_BYTES}, one that is not JSON, and one with a key twice in an object
 * (`{"role":"clerk","role":"admin"}`: servers keep the first or the last).
 */
import { keyWrittenTwice, parseJson } from '../../json-number.js';
import { values } from '../wire/head.js';

/** Largest request body the judge reads. */
export const MAX_JUDGED_BODY_BYTES = 1024 * 1024;

/** `body` (undefined or empty: none) of a request with `fields` (lower-case names), as the judge reads it. */
export function judgedBody(fields: ReadonlyArray<readonly [string, string]>, body: Buffer | undefined): { json: unknown } | 'unread' | undefined {
  if (!body || body.length === 0) return undefined;
  const type = values(fields, 'content-type');
  const media = type.length === 1 ? type[0]!.split(';')[0]!.trim().toLowerCase() : '';
  if (!(media === 'application/json' || /^application\/[a-z0-9.+-]+\+json$/.test(media))) return 'unread';
  if (values(fields, 'content-encoding').some((c) => c.trim().toLowerCase() !== 'identity')) return 'unread';
  if (body.length > MAX_JUDGED_BODY_BYTES) return 'unread';
  try {
    const text = body.toString('utf8');
    const json = parseJson(text);
    return keyWrittenTwice(text) === undefined ? { json } : 'unread';
  } catch {
    return 'unread';
  }
}
