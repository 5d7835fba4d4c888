/**
 * Direct credentials (`hoop connect --direct`, `hoop run --direct`): minted for a connection,
 * renewed, revoked.
 *
 * @see docs/internals.md (§1.3a)
 */
import type { DirectCredentialView } from '../api/answers.js';
import { apiPath } from '../api/paths.js';
import { gatewayBaseUrl } from '../tunnel/transport.js';
import { type GatewayEndpoint, protocolError, requestJson } from './request.js';

/**
 * `POST /v1/connections/{name}/direct`: a direct credential for `name` (a PostgreSQL user and
 * password to sign in with at the gateway's own address), for `seconds` (the gateway's default
 * when absent).
 */
export async function mintDirect(endpoint: GatewayEndpoint, token: string, name: string, ask: { seconds?: number } = {}): Promise<DirectCredentialView> {
  const { body } = await requestJson(endpoint, 'POST', apiPath.direct(name), { token, connection: name, body: ask });
  const b = body as Partial<DirectCredentialView>;
  if (typeof b.user !== 'string' || typeof b.password !== 'string' || typeof b.database !== 'string' || typeof b.expiresAt !== 'string' || typeof b.id !== 'string') {
    throw protocolError(gatewayBaseUrl(endpoint.gateway).origin, 'the direct credential');
  }
  return b as DirectCredentialView;
}

/** `POST /v1/direct/{id}/renew`: the credential lives `seconds` more from now; resolves its new end. */
export async function renewDirect(endpoint: GatewayEndpoint, token: string, id: string, ask: { seconds?: number } = {}): Promise<string> {
  const { body } = await requestJson(endpoint, 'POST', apiPath.directOne(id, true), { token, body: ask });
  const expiresAt = (body as { expiresAt?: unknown }).expiresAt;
  if (typeof expiresAt !== 'string') throw protocolError(gatewayBaseUrl(endpoint.gateway).origin, 'the renewed direct credential');
  return expiresAt;
}

/** `DELETE /v1/direct/{id}`: the credential is no longer accepted, and its sessions end. */
export async function revokeDirect(endpoint: GatewayEndpoint, token: string, id: string): Promise<void> {
  await requestJson(endpoint, 'DELETE', apiPath.directOne(id), { token });
}
