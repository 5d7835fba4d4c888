/**
 * The password scrambles of MySQL's two password plugins, as a client computes them and as a
 * server that knows the password checks them.
 *
 * - `mysql_native_password`: SHA1(password) XOR SHA1(nonce + SHA1(SHA1(password))).
 * - `caching_sha2_password`: SHA256(password) XOR SHA256(SHA256(SHA256(password)) + nonce); a
 *   server without the password cached asks for it whole, which goes only over TLS (or RSA-sealed
 *   with the server's public key, which hoop does not do: it sends passwords over TLS alone).
 *
 * @see https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_connection_phase_authentication_methods_native_password_authentication.html
 * @see https://dev.mysql.com/doc/dev/mysql-server/latest/page_caching_sha2_authentication_exchanges.html
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

export const NATIVE_PASSWORD = 'mysql_native_password';
export const CACHING_SHA2_PASSWORD = 'caching_sha2_password';

/** caching_sha2_password's AuthMoreData answers after the scramble. */
export const CachingSha2 = { FAST_AUTH_OK: 3, FULL_AUTH_NEEDED: 4, REQUEST_PUBLIC_KEY: 2 } as const;

const hash = (algorithm: 'sha1' | 'sha256', ...parts: Buffer[]): Buffer => {
  const h = createHash(algorithm);
  for (const p of parts) h.update(p);
  return h.digest();
};

function xor(a: Buffer, b: Buffer): Buffer {
  const out = Buffer.allocUnsafe(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i]! ^ b[i % b.length]!;
  return out;
}

/** The scramble of `password` for `nonce` under `plugin`; empty for an empty password, as clients send it. */
export function scramble(plugin: string, password: string, nonce: Buffer): Buffer {
  if (password === '') return Buffer.alloc(0);
  const pw = Buffer.from(password, 'utf8');
  if (plugin === NATIVE_PASSWORD) {
    const h1 = hash('sha1', pw);
    return xor(h1, hash('sha1', nonce, hash('sha1', h1)));
  }
  if (plugin === CACHING_SHA2_PASSWORD) {
    const h1 = hash('sha256', pw);
    return xor(h1, hash('sha256', hash('sha256', h1), nonce));
  }
  throw new Error(`no scramble for the auth plugin ${plugin}`);
}

/** Whether `response` is `password` scrambled for `nonce` under `plugin` (in constant time). */
export function scrambleMatches(plugin: string, password: string, nonce: Buffer, response: Buffer): boolean {
  const expected = scramble(plugin, password, nonce);
  return expected.length === response.length && (expected.length === 0 || timingSafeEqual(expected, response));
}

/** What a server keeps of a `mysql_native_password` password: SHA1(SHA1(password)), which proves nothing by itself. */
export function nativeVerifier(password: string): Buffer {
  return hash('sha1', hash('sha1', Buffer.from(password, 'utf8')));
}

/** Whether `response` proves the password whose {@link nativeVerifier} is `verifier` for `nonce` (in constant time), as a MySQL server checks it. */
export function nativeProofMatches(verifier: Buffer, nonce: Buffer, response: Buffer): boolean {
  if (response.length !== 20 || verifier.length !== 20) return false;
  const candidate = hash('sha1', xor(response, hash('sha1', nonce, verifier)));
  return timingSafeEqual(candidate, verifier);
}

/** A greeting's nonce: 20 random printable bytes (clients read it as a C string). */
export function newNonce(): Buffer {
  const b = randomBytes(20);
  for (let i = 0; i < b.length; i++) b[i] = 0x21 + (b[i]! % 94);
  return b;
}
