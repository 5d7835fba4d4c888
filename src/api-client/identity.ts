/**
 * The gateway's identity API as the CLI uses it: `GET /v1/auth/config` (which OpenID provider,
 * client and scopes to log in with), `GET /v1/whoami` (what the gateway makes of a token) and
 * `POST /v1/devices` (register the device key).
 *
 * @see docs/internals.md (§3)
 */
import type { AuthConfig, RegisteredDevice, WhoAmI } from '../api/answers.js';
import { apiPath } from '../api/paths.js';
import { signDeviceProof } from '../device-proof.js';
import { gatewayBaseUrl } from '../tunnel/transport.js';
import { type GatewayEndpoint, isStringArray, protocolError, requestJson } from './request.js';

const isStringRecord = (v: unknown): v is Record<string, string> => typeof v === 'object' && v !== null && !Array.isArray(v) && Object.values(v).every((s) => typeof s === 'string');

/**
 * `GET /v1/auth/config`. Throws HoopError(USAGE) when the gateway has no login configured.
 * @see docs/internals.md (§3)
 */
export async function getAuthConfig(endpoint: GatewayEndpoint): Promise<AuthConfig> {
  const origin = gatewayBaseUrl(endpoint.gateway).origin;
  const { body } = await requestJson(endpoint, 'GET', apiPath.authConfig);
  const b = body as Partial<Record<keyof AuthConfig, unknown>>;
  if (typeof b.issuer !== 'string' || typeof b.clientId !== 'string' || !isStringArray(b.scopes)) throw protocolError(origin, 'its login configuration');
  const tokenType = b.tokenType === 'access' || b.tokenType === 'id' ? b.tokenType : 'any';
  return {
    issuer: b.issuer,
    clientId: b.clientId,
    ...(typeof b.clientSecret === 'string' && b.clientSecret !== '' ? { clientSecret: b.clientSecret } : {}),
    ...(typeof b.redirectPort === 'number' && Number.isInteger(b.redirectPort) && b.redirectPort > 0 && b.redirectPort < 65536 ? { redirectPort: b.redirectPort } : {}),
    ...(isStringRecord(b.authorizationParams) ? { authorizationParams: b.authorizationParams } : {}),
    scopes: b.scopes,
    tokenType,
    ...(typeof b.resource === 'string' && b.resource !== '' ? { resource: b.resource } : {}),
    ...(typeof b.workloadAudience === 'string' && b.workloadAudience !== '' ? { workloadAudience: b.workloadAudience } : {}),
  };
}

/**
 * `GET /v1/whoami` with `token`. Throws HoopError(TOKEN_REJECTED) with a helpful message on 401.
 * @see docs/internals.md (§3)
 */
export async function getWhoAmI(endpoint: GatewayEndpoint, token: string): Promise<WhoAmI> {
  const origin = gatewayBaseUrl(endpoint.gateway).origin;
  const { body } = await requestJson(endpoint, 'GET', apiPath.whoami, { token });
  const b = body as Partial<Record<keyof WhoAmI, unknown>>;
  if (typeof b.subject !== 'string' || typeof b.issuer !== 'string' || typeof b.expiresAt !== 'string') throw protocolError(origin, 'your identity');
  return {
    subject: b.subject,
    issuer: b.issuer,
    kind: b.kind === 'workload' ? 'workload' : 'user',
    groups: isStringArray(b.groups) ? b.groups : [],
    expiresAt: b.expiresAt,
    ...(typeof b.email === 'string' ? { email: b.email } : {}),
  };
}

/**
 * `POST /v1/devices`: registers the public half of the device key (idempotent), with a proof of
 * possession signed by its private half (src/device-proof.ts); the private key is never sent.
 * @see https://www.rfc-editor.org/rfc/rfc8410 (SPKI PEM of an Ed25519 key)
 */
export async function registerDevice(endpoint: GatewayEndpoint, token: string, device: { publicKey: string; privateKey: string; name: string; ephemeral?: boolean }): Promise<RegisteredDevice> {
  const origin = gatewayBaseUrl(endpoint.gateway).origin;
  const proof = signDeviceProof(device.privateKey, device.publicKey, token);
  const { body } = await requestJson(endpoint, 'POST', apiPath.devices, { token, body: { publicKey: device.publicKey, name: device.name, proof, ...(device.ephemeral ? { ephemeral: true } : {}) } });
  const b = body as Partial<Record<keyof RegisteredDevice, unknown>>;
  if (typeof b.deviceId !== 'string' || typeof b.fingerprint !== 'string') throw protocolError(origin, 'the registered device');
  return { deviceId: b.deviceId, fingerprint: b.fingerprint };
}
