/**
 * New asymmetric key pairs, made so that no KeyObject hoop holds shares its key with the job that
 * generated it. Node 20 can deadlock a process for good when such a KeyObject is exported (to JWK
 * at least) while the garbage collector destroys the finished generation job: the export holds the
 * key's mutex while it allocates, the collection runs the job's destructor, which takes the same
 * mutex (seen as a gateway and a test process frozen in `ExportJWKRsaKey` → `~KeyGenJob`). So the
 * job hands out its keys encoded (PKCS#8, SPKI), and the KeyObjects are parsed from those.
 *
 * @see https://nodejs.org/api/crypto.html#cryptogeneratekeypairsynctype-options
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';

export interface NewKeyPair {
  privateKey: KeyObject;
  publicKey: KeyObject;
  /** PKCS#8 PEM. */
  privatePem: string;
  /** SPKI PEM. */
  publicPem: string;
}

/** A new key pair of `type`: RSA (2048 bits unless said), EC P-256, or Ed25519. */
export function newKeyPair(type: 'rsa' | 'ec' | 'ed25519', o: { modulusLength?: number } = {}): NewKeyPair {
  const publicKeyEncoding = { type: 'spki', format: 'pem' } as const;
  const privateKeyEncoding = { type: 'pkcs8', format: 'pem' } as const;
  const { privateKey: privatePem, publicKey: publicPem } =
    type === 'rsa'
      ? generateKeyPairSync('rsa', { modulusLength: o.modulusLength ?? 2048, publicKeyEncoding, privateKeyEncoding })
      : type === 'ec'
        ? generateKeyPairSync('ec', { namedCurve: 'P-256', publicKeyEncoding, privateKeyEncoding })
        : generateKeyPairSync('ed25519', { publicKeyEncoding, privateKeyEncoding });
  return { privateKey: createPrivateKey(privatePem), publicKey: createPublicKey(publicPem), privatePem, publicPem };
}
