/**
 * A runbook's HTTP steps (./runbook-run.ts runs the run): the gateway is the client of the session's
 * HTTP engine over the in-memory channel, one kept-alive connection, and sends each step's request
 * with its values in place: a path segment or a query value is one parameter's value, encoded (a
 * value can never add a segment or a parameter); in the JSON body, a string that is exactly
 * `{name}` is the value (an integer as a JSON number). The engine adds the credential, judges,
 * masks and records each request as any client's. The steps run in turn; the first answered with
 * an error status (or refused by the policy: `Hoop-Refused`) stops the rest; what ran stays.
 */
import * as http from 'node:http';
import type { Duplex } from 'node:stream';
import type { RunbookStepResult, StepOutcome } from '../../api/answers.js';
import { RunbookParamError, type ParamValue } from '../../policy/runbook-params.js';
import type { CommandWord, RunbookStep } from '../../policy/schema.js';

/** What a step keeps of an answer's body: its first bytes. */
const BODY_KEPT = 64 * 1024;

type HttpStep = RunbookStep & { kind: 'http' };

/** A word's text: a literal, or its parameter's value (a missing optional one: empty). */
function textOf(w: CommandWord, value: (name: string) => ParamValue | undefined): string {
  return typeof w === 'string' ? w : (value(w.param)?.text ?? '');
}

/** `json` with each string exactly `{name}` the value of that parameter (an integer a number, a missing optional one null). */
function filled(json: unknown, value: (name: string) => ParamValue | undefined): unknown {
  if (typeof json === 'string') {
    const m = /^\{([^{}]*)\}$/.exec(json);
    if (!m) return json;
    const v = value(m[1]!);
    return v === undefined ? null : v.type === 'integer' && Number.isSafeInteger(Number(v.text)) ? Number(v.text) : v.text;
  }
  if (Array.isArray(json)) return json.map((x) => filled(x, value));
  if (json !== null && typeof json === 'object') return Object.fromEntries(Object.entries(json).map(([k, x]) => [k, filled(x, value)]));
  return json;
}

/** The request target of `step`: each segment a literal or a value encoded whole; a value that is only dots is refused (it would name another route). */
export function requestTarget(step: HttpStep, value: (name: string) => ParamValue | undefined): string {
  const segments = step.path.map((w) => {
    const text = textOf(w, value);
    if (typeof w !== 'string' && /^\.*$/.test(text)) throw new RunbookParamError(w.param, 'is empty or only dots, which would name another path');
    return typeof w === 'string' ? w : encodeURIComponent(text);
  });
  const query = new URLSearchParams(step.query.map(([k, w]): [string, string] => [k, textOf(w, value)])).toString();
  return `/${segments.join('/')}${query ? `?${query}` : ''}`;
}

/** A client of the session's engine on `client`: one connection, kept alive across the steps. */
export function httpSession(client: Duplex): { agent: http.Agent; close: () => void } {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  // Every request of the run goes over the one channel the session serves.
  (agent as unknown as { createConnection: () => Duplex }).createConnection = () => client;
  return { agent, close: () => agent.destroy() };
}

/** Sends step `step` (1-based) of `s` with its values on `agent`. */
export function runHttpStep(agent: http.Agent, step: number, s: HttpStep, value: (name: string) => ParamValue | undefined): Promise<StepOutcome> {
  const path = requestTarget(s, value);
  const body = s.json === undefined ? undefined : Buffer.from(JSON.stringify(filled(s.json, value)));
  return new Promise((resolve, reject) => {
    const req = http.request({
      agent,
      method: s.method,
      path,
      host: 'runbook.invalid',
      headers: { accept: 'application/json', ...(body ? { 'content-type': 'application/json', 'content-length': String(body.length) } : {}) },
    });
    req.on('error', reject);
    req.on('response', (res) => {
      let kept = Buffer.alloc(0);
      res.on('data', (b: Buffer) => {
        if (kept.length < BODY_KEPT) kept = Buffer.concat([kept, b]).subarray(0, BODY_KEPT);
      });
      res.on('error', reject);
      res.on('end', () => {
        const status = res.statusCode ?? 0;
        const text = kept.toString('utf8');
        const result: RunbookStepResult = { step, tag: `HTTP ${status}`, ...(text ? { stdout: text } : {}) };
        if (status < 400) return resolve({ result });
        const refused = res.headers['hoop-refused'] !== undefined;
        let said = text.trim().slice(0, 500);
        try {
          said = String((JSON.parse(text) as { error?: unknown }).error ?? said);
        } catch {
          /* not JSON: its text */
        }
        resolve({ result, failed: { message: `${s.method} ${path} was answered ${status}${said ? `: ${said}` : ''}`, ...(refused ? { refused: true } : {}) } });
      });
    });
    req.end(body);
  });
}
