/**
 * Proof of possession for device registration (`POST /v1/devices`): the CLI signs, with the
 * device's Ed25519 private key, a statement binding the public key to the bearer token of the
 * request and the time; the gateway registers the key only if the signature verifies under that
 * key, for that token, within {@link DEVICE_PROOF_SKEW_MS}. So nobody can register a public key
 * whose private half they do not hold (e.g. someone else's, to have recordings attributed).
 *
 * The signed bytes (UTF-8, lines joined by `\n`): `hoop-device-proof/1`, the lowercase hex
 * SHA-256 of the bearer token, the SPKI public key as base64 DER, and `signedAt` (ISO 8601).
 *
 * @see https://www.rfc-editor.org/rfc/rfc8032 (Ed25519)
 * @see https://www.rfc-editor.org/rfc/rfc8410 (Ed25519 in SPKI / PKCS#8)
 */
import { realClock } from './clock.js';
import { createHash, createPrivateKey, createPublicKey, sign, verify } from 'node:crypto';

/** How far `signedAt` may be from the gateway's clock. */
export const DEVICE_PROOF_SKEW_MS = 5 * 60_000;

/** The `proof` member of a registration request. */
export interface DeviceProof {
  signedAt: string;
  /** Base64 Ed25519 signature over {@link deviceProofMessage}. */
  signature: string;
}

/** The bytes a device key signs for its registration. */
export function deviceProofMessage(token: string, publicKeyPem: string, signedAt: string): Buffer {
  const spki = createPublicKey(publicKeyPem).export({ format: 'der', type: 'spki' }).toString('base64');
  const tokenHash = createHash('sha256').update(token).digest('hex');
  return Buffer.from(['hoop-device-proof/1', tokenHash, spki, signedAt].join('\n'), 'utf8');
}

/** Signs a registration proof with the device's private key (PKCS#8 PEM). */
export function signDeviceProof(privateKeyPem: string, publicKeyPem: string, token: string, now = new Date(realClock.now())): DeviceProof {
  const signedAt = now.toISOString();
  const signature = sign(null, deviceProofMessage(token, publicKeyPem, signedAt), createPrivateKey(privateKeyPem)).toString('base64');
  return { signedAt, signature };
}

/**
 * Why `proof` does not prove possession of `publicKeyPem` for `token`, or undefined when it does.
 * @see https://www.rfc-editor.org/rfc/rfc8032#section-5.1.7
 */
export function deviceProofProblem(proof: unknown, publicKeyPem: string, token: string, now = realClock.now()): string | undefined {
  if (proof === null || typeof proof !== 'object' || Array.isArray(proof)) {
    return 'the request must carry proof { signedAt, signature } signed by the device key (update hoop and log in again)';
  }
  const { signedAt, signature } = proof as Record<string, unknown>;
  if (typeof signedAt !== 'string' || typeof signature !== 'string' || signature.length > 200) return 'proof.signedAt and proof.signature must be strings';
  const at = Date.parse(signedAt);
  if (!Number.isFinite(at) || new Date(at).toISOString() !== signedAt) return 'proof.signedAt must be an ISO 8601 UTC time';
  if (Math.abs(now - at) > DEVICE_PROOF_SKEW_MS) return 'proof.signedAt is more than 5 minutes from the gateway clock (check the clock, then log in again)';
  const ok = verify(null, deviceProofMessage(token, publicKeyPem, signedAt), createPublicKey(publicKeyPem), Buffer.from(signature, 'base64'));
  return ok ? undefined : 'the proof signature does not verify under this public key for this token';
}
