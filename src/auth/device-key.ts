/**
 * The device key: an Ed25519 key pair made at the first login to a gateway and kept across
 * logins. Its public half is registered with the gateway; the CLI signs its recordings with the
 * private half, which stays in the secret store.
 *
 * @see https://www.rfc-editor.org/rfc/rfc8032 (Ed25519)
 * @see https://www.rfc-editor.org/rfc/rfc8410 (Ed25519 in SPKI / PKCS#8)
 */
import { createHash, createPrivateKey, createPublicKey } from 'node:crypto';
import { hostname, userInfo } from 'node:os';
import { ErrorCode, HoopError } from '../errors.js';
import { newKeyPair } from '../key-pair.js';

/**
 * An Ed25519 key pair as PEM: PKCS#8 private key, SPKI public key.
 * @see https://www.rfc-editor.org/rfc/rfc8410
 */
export interface DeviceKeyPair {
  privateKey: string;
  publicKey: string;
}

/**
 * Makes a new Ed25519 device key pair.
 * @see https://www.rfc-editor.org/rfc/rfc8032
 */
export function createDeviceKey(): DeviceKeyPair {
  const { privatePem, publicPem } = newKeyPair('ed25519');
  return { privateKey: privatePem, publicKey: publicPem };
}

/**
 * True when `pair` is a usable Ed25519 pair whose halves belong together.
 * @see https://www.rfc-editor.org/rfc/rfc8410
 */
export function isValidDeviceKey(pair: DeviceKeyPair | undefined): pair is DeviceKeyPair {
  if (!pair) return false;
  try {
    const priv = createPrivateKey(pair.privateKey);
    if (priv.asymmetricKeyType !== 'ed25519') return false;
    const derived = createPublicKey(priv).export({ format: 'pem', type: 'spki' }).toString();
    return derived.trim() === pair.publicKey.trim();
  } catch {
    return false;
  }
}

/**
 * The raw 32-byte Ed25519 public key of an SPKI PEM.
 * @see https://www.rfc-editor.org/rfc/rfc8032#section-5.1.5
 */
export function rawPublicKey(publicKeyPem: string): Buffer {
  const key = createPublicKey(publicKeyPem);
  if (key.asymmetricKeyType !== 'ed25519') throw new HoopError(ErrorCode.INTERNAL, 'the device key is not an Ed25519 key');
  const jwk = key.export({ format: 'jwk' });
  return Buffer.from(String(jwk.x), 'base64url');
}

/**
 * `SHA256:` and the unpadded base64 SHA-256 of the raw public key, as OpenSSH prints
 * fingerprints (and as the gateway reports them).
 * @see https://man.openbsd.org/ssh-keygen#l
 */
export function deviceFingerprint(publicKeyPem: string): string {
  return `SHA256:${createHash('sha256').update(rawPublicKey(publicKeyPem)).digest('base64').replace(/=+$/, '')}`;
}

/**
 * The name this device is registered under: `user@host`.
 * @see https://man7.org/linux/man-pages/man2/gethostname.2.html
 */
export function defaultDeviceName(): string {
  let user = 'user';
  try {
    user = userInfo().username;
  } catch {
    // No passwd entry (some containers): keep the placeholder.
  }
  return `${user}@${hostname()}`;
}
