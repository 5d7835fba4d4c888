/**
 * The runbooks a token's identity may run (`GET /v1/runbooks[/{name}]`), and runs of them
 * (`POST /v1/runbooks/{name}/run`).
 *
 * @see docs/internals.md (§1)
 */
import * as z from 'zod';
import type { RunbookInfo, RunbookRunAnswer } from '../api/answers.js';
import { apiPath } from '../api/paths.js';
import { ErrorCode } from '../errors.js';
import { suggestingNearest } from '../suggest.js';
import { answerAs, type GatewayEndpoint, requestJson } from './request.js';

const paramInfo = z.object({
  name: z.string(),
  type: z.string(),
  required: z.boolean(),
  description: z.string().optional(),
  default: z.string().optional(),
  min: z.number().optional(),
  max: z.number().optional(),
  values: z.array(z.string()).optional(),
  pattern: z.string().optional(),
  maxLength: z.number().optional(),
});

/** A runbook as this client reads the gateway's answer (fields it does not know are dropped). */
const runbookInfo: z.ZodType<RunbookInfo> = z.object({
  name: z.string(),
  description: z.string(),
  connection: z.string(),
  parameters: z.array(paramInfo),
  steps: z.array(
    z.union([
      z.object({ sql: z.string(), params: z.array(z.string()) }),
      z.object({ ssh: z.array(z.string()) }),
      z.object({ http: z.object({ method: z.string(), path: z.string(), query: z.record(z.string(), z.string()).optional(), json: z.unknown().optional() }) }),
    ]),
  ),
  review: z.boolean(),
  maxAffectedRows: z.number().optional(),
  deadlineSeconds: z.number(),
  returns: z.array(z.string()).optional(),
  bypass: z.array(z.string()).optional(),
  digest: z.string(),
  commit: z.string().optional(),
});

/** `GET /v1/runbooks`: the runbooks the token's identity may run. */
export async function listRunbooks(endpoint: GatewayEndpoint, token: string): Promise<RunbookInfo[]> {
  const { body } = await requestJson(endpoint, 'GET', apiPath.runbooks, { token });
  return answerAs(endpoint, 'its runbooks', z.object({ runbooks: z.array(runbookInfo) }), body).runbooks;
}

/** `GET /v1/runbooks/{name}`: one the token's identity may run (RUNBOOK_UNKNOWN, with the nearest of theirs, for any other). */
export async function getRunbook(endpoint: GatewayEndpoint, token: string, name: string): Promise<RunbookInfo> {
  const { body } = await suggestingNearest(requestJson(endpoint, 'GET', apiPath.runbook(name), { token }), ErrorCode.RUNBOOK_UNKNOWN, name, async () =>
    (await listRunbooks(endpoint, token)).map((r) => r.name),
  );
  return answerAs(endpoint, 'the runbook', runbookInfo, body);
}

const stepResult = z.object({
  step: z.number(),
  tag: z.string(),
  columns: z.array(z.string()).optional(),
  rows: z.array(z.array(z.string().nullable())).optional(),
  truncated: z.literal(true).optional(),
  stdout: z.string().optional(),
  stderr: z.string().optional(),
});

const runAnswer: z.ZodType<RunbookRunAnswer> = z.object({
  runbook: z.string(),
  digest: z.string(),
  commit: z.string().optional(),
  session: z.string(),
  outcome: z.enum(['ran', 'failed', 'held']),
  steps: z.array(stepResult),
  failed: z
    .object({ step: z.number(), code: z.string().optional(), message: z.string(), detail: z.string().optional(), hint: z.string().optional(), refused: z.boolean().optional(), undone: z.boolean() })
    .optional(),
  held: z.object({ review: z.string(), step: z.number().optional() }).optional(),
});

/** What stays of a failed run's steps before the one that failed, in words. */
export function whatStays(f: NonNullable<RunbookRunAnswer['failed']>): string {
  return f.undone ? 'nothing was kept' : f.step > 1 ? `steps 1 to ${f.step - 1} ran, and what they did stays` : 'no step before it ran';
}

/**
 * `POST /v1/runbooks/{name}/run`: runs it with `params` (as typed on a command line: `text`, or as
 * JSON), as the token's identity come `via`; waits up to `deadlineSeconds` (and a margin) for it.
 */
export async function runRunbook(
  endpoint: GatewayEndpoint,
  token: string,
  name: string,
  o: { params: Record<string, unknown>; text: boolean; via: string; deadlineSeconds: number },
): Promise<RunbookRunAnswer> {
  const { body } = await requestJson({ ...endpoint, timeoutMs: (o.deadlineSeconds + 30) * 1000 }, 'POST', apiPath.runbookRun(name), {
    token,
    body: { params: o.params, ...(o.text ? { text: true } : {}) },
    headers: { 'Hoop-Via': o.via },
    maxBody: 64 * 1024 * 1024,
  });
  return answerAs(endpoint, 'the run', runAnswer, body);
}
