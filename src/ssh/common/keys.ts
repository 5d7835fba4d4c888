/**
 * Ed25519 key pairs in OpenSSH's formats, for the gateway's host key and `hoop connect`'s per-run
 * client key, and the check that a client signing in proves the key it must.
 *
 * @see https://github.com/openssh/openssh-portable/blob/master/PROTOCOL.key
 */
import { timingSafeEqual } from 'node:crypto';
import ssh2 from './ssh2-vendor.js';
import type { ParsedKey, PublicKeyAuthContext } from 'ssh2';

/**
 * A new Ed25519 key pair: `private` in OpenSSH's format, `public` as `ssh-ed25519 AAAA… comment`.
 * ssh2's generator writes, about once in 200 keys, a private key that neither it nor OpenSSH can
 * read again; such a key is made again.
 */
export function newEd25519Key(comment: string): { private: string; public: string } {
  for (let attempt = 0; attempt < 20; attempt++) {
    const key = ssh2.utils.generateKeyPairSync('ed25519', { comment });
    if (!(ssh2.utils.parseKey(key.private) instanceof Error)) return key;
  }
  throw new Error('could not make an Ed25519 key that reads back');
}

/**
 * Whether a client's publickey sign-in proves `expected` (RFC 4252 section 7): the same key, and,
 * once the client signs, a signature that verifies. Without a signature the client only asks
 * whether this key would do, and is told yes for the expected key alone.
 */
export function provesKey(ctx: PublicKeyAuthContext, expected: ParsedKey): boolean {
  const blob = expected.getPublicSSH();
  const same = ctx.key.algo === expected.type && ctx.key.data.length === blob.length && timingSafeEqual(ctx.key.data, blob);
  if (!same) return false;
  return !ctx.signature || expected.verify(ctx.blob!, ctx.signature, ctx.hashAlgo) === true;
}

/** The public key of `text` (`type base64 [comment]`, or an OpenSSH private key), or undefined when it is not one ssh2 reads. */
export function parsedKey(text: string): ParsedKey | undefined {
  const key = ssh2.utils.parseKey(text);
  return key instanceof Error ? undefined : key;
}
