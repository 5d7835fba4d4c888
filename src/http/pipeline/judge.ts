/**
 * The judge, as a stage (./stages.ts): each request judged by the session's `http` policy
 * (src/policy/http.ts) as it will be forwarded: its method, its target as read once
 * (../wire/target.ts), its query, its fields, and its body as JSON where it reads as JSON
 * (./request-body.ts), and a form body's parameters beside the query's. Refused requests are told
 * to the session's report.
 */
import type { HttpAsk, HttpVerdict } from '../../policy/http.js';
import type { SessionHttp, SessionReport } from '../../session/engine.js';
import { values } from '../wire/head.js';
import { judgedBody } from './request-body.js';
import type { HttpRequest, HttpStage, RequestDecision } from './stages.js';

/** See the module documentation. */
export class HttpRequestJudge implements HttpStage {
  readonly #http: SessionHttp;
  readonly #report: SessionReport | undefined;

  constructor(http: SessionHttp, report: SessionReport | undefined) {
    this.#http = http;
    this.#report = report;
  }

  /** The policy's verdict on `req`, told to no one. */
  verdict(req: HttpRequest): HttpVerdict {
    const headers = new Map<string, string[]>();
    for (const [n, v] of req.fields) headers.set(n, [...(headers.get(n) ?? []), v]);
    const body = judgedBody(req.fields, req.body);
    const form = formOf(req);
    const ask: HttpAsk = { method: req.method, segments: req.target.segments, query: req.target.query, headers, ...(body !== undefined ? { body } : {}), ...(form !== undefined ? { form } : {}) };
    return this.#http.decide(ask);
  }

  request(req: HttpRequest): RequestDecision | undefined {
    const verdict = this.verdict(req);
    if (verdict.action === 'allow') return undefined;
    if (verdict.action === 'review') return { do: 'review', verdict };
    this.#report?.refused({ action: 'deny', rule: verdict.rule ?? 'http.default', reason: verdict.reason, message: verdict.message ?? '' });
    return { do: 'refuse', verdict };
  }
}

/**
 * A form body's parameters, as servers merge them with the query's: read as urlencoded where the
 * body says so, or says no type, or more than one (servers split a list and take a form);
 * `unread` for multipart or a coded body.
 */
function formOf(req: HttpRequest): HttpAsk['form'] {
  if (!req.body || req.body.length === 0) return undefined;
  const types = values(req.fields, 'content-type').flatMap((v) => v.split(',').map((t) => t.split(';')[0]!.trim().toLowerCase()));
  if (types.some((t) => t.startsWith('multipart/'))) return 'unread';
  if (types.length === 1 && types[0] !== 'application/x-www-form-urlencoded') return undefined;
  if (values(req.fields, 'content-encoding').some((c) => c.trim().toLowerCase() !== 'identity')) return 'unread';
  return [...new URLSearchParams(req.body.toString('utf8'))];
}
