/** PEM files a configuration names: certificates and private keys, read and checked at load. */
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { unreadable } from './yaml.js';

/** What {@link readPem} expects the file to hold. */
export type PemKind = 'certificate' | 'key';

/**
 * Reads a PEM file and checks it holds a certificate or an unencrypted private key.
 *
 * @see https://www.rfc-editor.org/rfc/rfc7468
 */
export async function readPem(abs: string, kind: PemKind, read: (file: string) => Promise<Buffer> = readFile): Promise<{ data?: Buffer; problem?: string }> {
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
