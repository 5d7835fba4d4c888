/**
 * What the gateway says of its policy (`GET /v1/policy`), for `hoop policy status` and `test`.
 */
import type { PolicyStatus } from '../api/answers.js';
import { apiPath } from '../api/paths.js';
import { gatewayBaseUrl } from '../tunnel/transport.js';
import { type GatewayEndpoint, protocolError, requestJson } from './request.js';

/**
 * `GET /v1/policy`: the commit the gateway runs, how it validates a commit, and what it refused.
 * @throws HoopError GATEWAY_PROTOCOL for an answer of another shape
 */
export async function getPolicyStatus(endpoint: GatewayEndpoint, token: string): Promise<PolicyStatus> {
  const origin = gatewayBaseUrl(endpoint.gateway).origin;
  const { body } = await requestJson(endpoint, 'GET', apiPath.policy, { token });
  const b = (typeof body === 'object' && body !== null ? body : {}) as Partial<Record<keyof PolicyStatus, unknown>>;
  const strings = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === 'string');
  if (
    typeof b.commit !== 'string' ||
    typeof b.ref !== 'string' ||
    typeof b.repo !== 'string' ||
    !strings(b.allowedSecrets) ||
    typeof b.signedCommitsOnly !== 'boolean' ||
    !Array.isArray(b.unavailable)
  ) {
    throw protocolError(origin, 'its policy (an older gateway?)');
  }
  return b as PolicyStatus;
}
