/**
 * Alerts (../alerts/alerts.ts): `GET /v1/alerts[?state=open|cleared]` lists those the caller may see (an
 * auditor, or a member of an alert's clearers: all of them; anyone else: those about them), newest
 * first; `POST /v1/alerts/{id}/clear` `{ reason }` clears one: a person's decision (never a run's
 * credential), of a member of its clearers who is not the one it is about, after a recent sign-in
 * when the policy asks for one.
 */
import type * as http from 'node:http';
import type { RaisedAlert } from '../../api/answers.js';
import { alertClearBody } from '../../api/bodies.js';
import type { Identity } from '../../identity.js';
import type { Callers } from '../sessions/callers.js';
import { HttpError } from '../http/http-error.js';
import { checkBody } from '../http/respond.js';
import type { GatewayParts } from '../parts/parts.js';
import { requireRecentSignIn } from './access.js';
import { requestUrl } from '../http/request-target.js';

const STATES: ReadonlyArray<RaisedAlert['state']> = ['open', 'cleared'];

export function alertsApi(parts: GatewayParts, callers: Callers) {
  const { alerts } = parts;
  return {
    /** `GET /v1/alerts` */
    list(req: http.IncomingMessage, identity: Identity): { alerts: RaisedAlert[] } {
      const state = requestUrl(req).searchParams.get('state');
      if (state !== null && !STATES.includes(state as RaisedAlert['state'])) throw new HttpError(400, `state must be one of ${STATES.join(', ')}`);
      return { alerts: alerts.list(identity, callers.isAuditor(identity), (state ?? undefined) as RaisedAlert['state'] | undefined) };
    },

    /** `POST /v1/alerts/{id}/clear` */
    clear(identity: Identity, id: string, body: unknown): Promise<RaisedAlert> {
      requireRecentSignIn(parts, identity, 'clear an alert');
      const { reason } = checkBody(alertClearBody, body, { reason: `hoop alerts clear ${id} --reason "…"` });
      return alerts.clear(id, identity, reason);
    },
  };
}
