/**
 * Ed25519 key pairs in OpenSSH's formats, for the gateway's host key and `hoop connect`'s per-run
 * client key.
 *
 * @see https://github.com/openssh/openssh-portable/blob/master/PROTOCOL.key
 */
import ssh2 from 'ssh2';

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
