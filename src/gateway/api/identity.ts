/**
 * The caller's identity and devices: `GET /v1/auth/config` (no token: what `hoop login` needs),
 * `GET /v1/whoami`, and `GET|POST /v1/devices` (a device key registered once its proof of
 * possession checks, src/device-proof.ts).
 *
 * @see https://openid.net/specs/openid-connect-discovery-1_0.html
 */
import { realClock } from '../../clock.js';
import type * as http from 'node:http';
import { deviceProofProblem } from '../../device-proof.js';
import type { Identity } from '../../identity.js';
import { HttpError } from '../http/http-error.js';
import type { GatewayParts } from '../parts/parts.js';
import { EPHEMERAL_DEVICE_MS, parseDeviceName, parseDevicePublicKey, type Device } from '../store/store.js';
import { TokenVerifier } from '../identity/verify-token.js';
import { type Answer, checkBody, readJsonBody } from '../http/respond.js';
import type { AuthConfig, DeviceView, RegisteredDevice, WhoAmI } from '../../api/answers.js';
import { deviceRegistrationBody } from '../../api/bodies.js';

/** `{ issuer, clientId, scopes, resource?, tokenType, workloadAudience? }`; 404 when the gateway has no `login` configured. */
export function authConfig({ config }: GatewayParts): AuthConfig {
  const login = config.login;
  if (!login) {
    throw new HttpError(404, 'this gateway has no login configured', {
      hint: 'use a token from a workload identity (hoop login --id-token-file, HOOP_ID_TOKEN) or ask the gateway operator to configure login',
    });
  }
  const issuer = config.issuers.find((i) => i.issuer === login.issuer);
  const workload = config.issuers.find((i) => i.kind === 'workload');
  return {
    issuer: login.issuer,
    clientId: login.clientId,
    ...(login.clientSecret !== undefined ? { clientSecret: login.clientSecret } : {}),
    ...(login.redirectPort !== undefined ? { redirectPort: login.redirectPort } : {}),
    ...(login.authorizationParams !== undefined ? { authorizationParams: login.authorizationParams } : {}),
    scopes: login.scopes,
    ...(login.resource !== undefined ? { resource: login.resource } : {}),
    tokenType: issuer?.tokenType ?? 'any',
    ...(workload ? { workloadAudience: workload.audience[0] } : {}),
  };
}

/** `{ subject, issuer, kind, email?, groups, expiresAt, run? }` */
export function whoami(identity: Identity): WhoAmI {
  return {
    subject: identity.subject,
    issuer: identity.issuer,
    kind: identity.kind,
    ...(identity.email !== undefined ? { email: identity.email } : {}),
    groups: identity.groups,
    expiresAt: identity.expiresAt.toISOString(),
    ...(identity.run ? { run: identity.run } : {}),
  };
}

function describeDevice(d: Device): DeviceView {
  return { deviceId: d.deviceId, name: d.name, fingerprint: d.fingerprint, publicKey: d.publicKey, createdAt: d.createdAt };
}

/** `GET /v1/devices`: the caller's own; `POST` `{ publicKey, name, proof, ephemeral? }`: 201 `{ deviceId, fingerprint }` (200 when it was registered already). */
export async function devicesApi({ store, log }: GatewayParts, req: http.IncomingMessage, identity: Identity): Promise<Answer> {
  const owner = { issuer: identity.issuer, subject: identity.subject };
  if (req.method !== 'POST') return { status: 200, body: { devices: (await store.listDevices(owner)).map(describeDevice) } };
  const fields = checkBody(deviceRegistrationBody, await readJsonBody(req));
  const key = parseDevicePublicKey(fields.publicKey);
  const name = parseDeviceName(fields.name);
  const problem = deviceProofProblem(fields.proof, key.publicKey, TokenVerifier.bearerFromHeader(req.headers.authorization) ?? '');
  if (problem) throw new HttpError(400, `the device key's proof of possession was refused: ${problem}`);
  // An ephemeral key (a CLI with a token from the environment) signs that CLI's records for a while, then goes.
  const expiresAt = fields.ephemeral === true ? new Date(realClock.now() + EPHEMERAL_DEVICE_MS).toISOString() : undefined;
  const { device, created } = await store.registerDevice(owner, { ...key, name, ...(expiresAt ? { expiresAt } : {}) });
  if (created) log.info('device.registered', { subject: identity.subject, issuer: identity.issuer, deviceId: device.deviceId, fingerprint: device.fingerprint });
  const registered: RegisteredDevice = { deviceId: device.deviceId, fingerprint: device.fingerprint };
  return { status: created ? 201 : 200, body: registered };
}
