/**
 * A response's media type as the stages that read its body tell it: its `Content-Type` without
 * parameters, in lower case, and whether its body is JSON (one value, or one per line).
 *
 * @see https://www.rfc-editor.org/rfc/rfc9110#section-8.3
 */
import type { HttpResponse } from './stages.js';

/** Media types whose bodies are one JSON value. */
const JSON_ONE = /^application\/(json|[a-z0-9.+-]+\+json)$/;
/** Media types whose bodies are JSON values one per line (NDJSON, JSON lines). */
const JSON_LINES = /^application\/(x-ndjson|ndjson|jsonl|x-jsonlines)$/;

/** The media types `res` says (each `Content-Type`, without its parameters, in lower case). */
export function mediaTypes(res: HttpResponse): string[] {
  return res.fields.filter(([n]) => n.toLowerCase() === 'content-type').map(([, v]) => v.split(';')[0]!.trim().toLowerCase());
}

/** How a body of media type `type` holds JSON: one value, one per line, or not at all. */
export function jsonShape(type: string): 'one' | 'lines' | undefined {
  return JSON_ONE.test(type) ? 'one' : JSON_LINES.test(type) ? 'lines' : undefined;
}
