/**
 * An agent's run at the gateway: begun with a person's credential, then kept alive, ended and
 * told of refused egress with the run's control credential.
 *
 * @see docs/internals.md (§3.6)
 */
import { type RunStarted, type RunView, runViewSchema } from '../api/answers.js';
import type { RunAskBody, RunEgressBody, RunHeartbeatBody } from '../api/bodies.js';
import { apiPath } from '../api/paths.js';
import { answerAs, type GatewayEndpoint, requestJson } from './request.js';

/** `POST /v1/runs`: begins an agent's run for the caller (a person's credential). */
export async function startRun(endpoint: GatewayEndpoint, token: string, ask: RunAskBody & { agent: string; via: 'run' | 'mcp' }): Promise<RunStarted> {
  const { body } = await requestJson(endpoint, 'POST', apiPath.runs, { token, body: ask });
  return body as RunStarted;
}

/**
 * `POST /v1/runs/{id}/heartbeat|end` with the run's control credential (a heartbeat with the
 * person's current token, so the run lives no longer than their sign-in); resolves the run as it
 * then stands.
 */
export async function controlRun(endpoint: GatewayEndpoint, controlToken: string, id: string, action: 'heartbeat' | 'end', personToken?: string): Promise<RunView> {
  const { body } = await requestJson(endpoint, 'POST', apiPath.runControl(id, action), {
    token: controlToken,
    ...(personToken !== undefined ? { body: { personToken } satisfies RunHeartbeatBody } : {}),
  });
  return answerAs(endpoint, `run ${id}`, runViewSchema, body);
}

/** `POST /v1/runs/{id}/egress` with the run's control credential: connections its command asked for and was refused. */
export async function reportEgress(endpoint: GatewayEndpoint, controlToken: string, id: string, refused: RunEgressBody['refused']): Promise<void> {
  await requestJson(endpoint, 'POST', apiPath.runControl(id, 'egress'), { token: controlToken, body: { refused } satisfies RunEgressBody });
}
