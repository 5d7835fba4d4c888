/**
 * The alerts the gateway raised under the policy's `alerts:` rules: listed, and one cleared.
 *
 * @see docs/internals.md (§4.7)
 */
import { type RaisedAlert, raisedAlertSchema } from '../api/answers.js';
import type { AlertClearBody } from '../api/bodies.js';
import { apiPath } from '../api/paths.js';
import * as z from 'zod';
import { answerAs, type GatewayEndpoint, requestJson } from './request.js';

/** `GET /v1/alerts[?state=]`: the alerts the caller may see, newest first. */
export async function listAlerts(endpoint: GatewayEndpoint, token: string, state?: 'open' | 'cleared'): Promise<RaisedAlert[]> {
  const { body } = await requestJson(endpoint, 'GET', apiPath.alerts(state), { token });
  return answerAs(endpoint, 'its alerts', z.object({ alerts: z.array(raisedAlertSchema) }), body).alerts;
}

/** `POST /v1/alerts/{id}/clear`: clears an alert (its suspension ends); resolves it as it then stands. */
export async function clearAlert(endpoint: GatewayEndpoint, token: string, id: string, reason: string): Promise<RaisedAlert> {
  const { body } = await requestJson(endpoint, 'POST', apiPath.alertClear(id), { token, body: { reason } satisfies AlertClearBody });
  return answerAs(endpoint, `alert ${id}`, raisedAlertSchema, body);
}
