/** PEM files a configuration names: certificates and private keys, read and checked at load. */
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { readTrustedFile } from './trusted-paths.js';
import { unreadable } from './yaml.js';

/** What {@link readPem} expects the file to hold. */
export type PemKind = 'certificate' | 'key';

/**
 * Reads a PEM file and checks it holds a certificate or an unencrypted private key. It is read as
 * trusted ({@link readTrustedFile}: a CA another user could replace makes them the database's
 * server), unless `read` says how a file checked otherwise is read (one inside a checked checkout).
 *
 * @see https://www.rfc-editor.org/rfc/rfc7468
 */
export async function readPem(abs: string, kind: PemKind, read: (file: string) => Promise<Buffer> = readTrustedFile): Promise<{ data?: Buffer; problem?: string }> {
  let data: Buffer;
  try {
    data = await read(abs);
  } catch (err) {
    return { problem: unreadable(abs, err) };
  }
  try {
    if (kind === 'certificate') new X509Certificate(data);
    else createPrivateKey(data);
  } catch {
    return { problem: `${abs} does not hold a PEM ${kind === 'certificate' ? 'certificate' : 'private key (unencrypted)'}` };
  }
  return { data };
}
