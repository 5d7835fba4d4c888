/**
 * OpenSSH signatures (`ssh-keygen -Y sign` / `-Y verify`) with Ed25519 keys, so that anyone can
 * check a recording's manifest with stock OpenSSH and no hoop: the armored `SSH SIGNATURE` format of
 * PROTOCOL.sshsig, SHA-512 as the message hash, and a namespace that keeps a signature made for one
 * purpose from being accepted for another.
 *
 * @see https://github.com/openssh/openssh-portable/blob/master/PROTOCOL.sshsig
 * @see https://www.rfc-editor.org/rfc/rfc4251#section-5 (string, uint32)
 * @see https://www.rfc-editor.org/rfc/rfc8709 (ssh-ed25519 keys and signatures)
 */
import { createHash, createPrivateKey, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import { newKeyPair } from '../key-pair.js';

const MAGIC = Buffer.from('SSHSIG');
const VERSION = 1;
const HASH = 'sha512';
const KEY_TYPE = 'ssh-ed25519';
const BEGIN = '-----BEGIN SSH SIGNATURE-----';
const END = '-----END SSH SIGNATURE-----';

/** An SSH `string`: uint32 length, then the bytes. */
function sshString(value: Buffer | string): Buffer {
  const bytes = typeof value === 'string' ? Buffer.from(value) : value;
  const length = Buffer.alloc(4);
  length.writeUInt32BE(bytes.length);
  return Buffer.concat([length, bytes]);
}

/** Reads SSH `string`s and `uint32`s from a buffer, refusing to read past its end. */
class WireReader {
  #at = 0;
  constructor(private readonly buf: Buffer) {}

  bytes(n: number): Buffer {
    if (this.#at + n > this.buf.length) throw new Error('the signature is cut short');
    const out = this.buf.subarray(this.#at, this.#at + n);
    this.#at += n;
    return out;
  }

  uint32(): number {
    return this.bytes(4).readUInt32BE(0);
  }

  string(): Buffer {
    return this.bytes(this.uint32());
  }

  done(): boolean {
    return this.#at === this.buf.length;
  }
}

/** The public key's SSH wire form (`string "ssh-ed25519", string key`). */
export function sshPublicKeyBlob(key: KeyObject): Buffer {
  let blob = blobs.get(key);
  if (!blob) {
    const jwk = (key.type === 'private' ? createPublicKey(key) : key).export({ format: 'jwk' });
    if (jwk.crv !== 'Ed25519' || typeof jwk.x !== 'string') throw new Error('only Ed25519 keys can sign recordings');
    blob = Buffer.concat([sshString(KEY_TYPE), sshString(Buffer.from(jwk.x, 'base64url'))]);
    blobs.set(key, blob);
  }
  return blob;
}

/** Each key's public blob, made once (a recording's every signature names it). */
const blobs = new WeakMap<KeyObject, Buffer>();

/** The public key as one `authorized_keys` / `allowed_signers` word pair: `ssh-ed25519 AAAA…`. */
export function sshPublicKeyLine(key: KeyObject): string {
  return `${KEY_TYPE} ${sshPublicKeyBlob(key).toString('base64')}`;
}

/** `SHA256:…` as `ssh-keygen -l` prints it. */
export function sshFingerprint(key: KeyObject): string {
  return blobFingerprint(sshPublicKeyBlob(key));
}

/** The fingerprint of a key's wire form. */
function blobFingerprint(blob: Buffer): string {
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

/** The key of an `ssh-ed25519 AAAA…` line (a comment after it is ignored). */
export function parseSshPublicKey(line: string): KeyObject {
  const [type, base64] = line.trim().split(/\s+/);
  if (type !== KEY_TYPE || !base64) throw new Error(`not an ${KEY_TYPE} public key`);
  return keyFromBlob(Buffer.from(base64, 'base64'));
}

function keyFromBlob(blob: Buffer): KeyObject {
  return createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: ed25519Raw(blob).toString('base64url') }, format: 'jwk' });
}

/** The 32 bytes of an `ssh-ed25519` key's wire form (which has one encoding: its bytes are its identity). */
function ed25519Raw(blob: Buffer): Buffer {
  const r = new WireReader(blob);
  const type = r.string().toString();
  const raw = r.string();
  if (type !== KEY_TYPE || raw.length !== 32 || !r.done()) throw new Error(`the signing key is not an ${KEY_TYPE} key`);
  return raw;
}

/** What the key signs: the preamble, namespace, reserved, hash algorithm and the message's hash. */
function signedData(namespace: string, message: Buffer, hash: string = HASH): Buffer {
  return Buffer.concat([MAGIC, sshString(namespace), sshString(''), sshString(hash), sshString(createHash(hash).update(message).digest())]);
}

/** Signs `message` as `ssh-keygen -Y sign -n <namespace>` would; returns the armored signature. */
export function sshSign(privateKey: KeyObject, namespace: string, message: Buffer): string {
  const signature = sign(null, signedData(namespace, message), privateKey);
  const blob = Buffer.concat([
    MAGIC,
    Buffer.from([0, 0, 0, VERSION]),
    sshString(sshPublicKeyBlob(privateKey)),
    sshString(namespace),
    sshString(''),
    sshString(HASH),
    sshString(Buffer.concat([sshString(KEY_TYPE), sshString(signature)])),
  ]);
  const lines = blob.toString('base64').match(/.{1,70}/g) ?? [];
  return `${BEGIN}\n${lines.join('\n')}\n${END}\n`;
}

/** A verified signature: the key that made it. */
export interface SshSignatureCheck {
  /** The trusted key it names (as given: it may be a private key). */
  key: KeyObject;
  fingerprint: string;
}

/**
 * Checks an armored signature over `message` in `namespace`, and that one of `trusted` made it.
 * Throws an Error saying what is wrong (malformed, another namespace, an unknown key, a bad signature).
 */
export function sshVerify(armored: string, namespace: string, message: Buffer, trusted: readonly KeyObject[]): SshSignatureCheck {
  const text = armored.trim();
  if (!text.startsWith(BEGIN) || !text.endsWith(END)) throw new Error('not an SSH signature (no BEGIN/END SSH SIGNATURE lines)');
  const r = new WireReader(Buffer.from(text.slice(BEGIN.length, -END.length).replace(/\s+/g, ''), 'base64'));
  if (!r.bytes(6).equals(MAGIC)) throw new Error('not an SSH signature (no SSHSIG preamble)');
  const version = r.uint32();
  if (version !== VERSION) throw new Error(`SSH signature version ${version} is not supported`);
  const keyBlob = r.string();
  const signedNamespace = r.string().toString();
  r.string(); // reserved
  const hash = r.string().toString();
  const sigBlob = r.string();
  if (!r.done()) throw new Error('the SSH signature has trailing bytes');
  if (signedNamespace !== namespace) throw new Error(`the signature is for namespace "${signedNamespace}", not "${namespace}"`);
  if (hash !== 'sha512' && hash !== 'sha256') throw new Error(`hash algorithm ${hash} is not supported`);
  ed25519Raw(keyBlob);
  const fingerprint = blobFingerprint(keyBlob);
  // The trusted key it names, byte for byte, verifies it: no key is made from the signature's bytes.
  const key = trusted.find((t) => sshPublicKeyBlob(t).equals(keyBlob));
  if (!key) throw new Error(`signed by ${fingerprint}, which is not a trusted key`);
  const s = new WireReader(sigBlob);
  const type = s.string().toString();
  const signature = s.string();
  if (type !== KEY_TYPE || !s.done()) throw new Error(`signature type ${type} is not supported`);
  if (!verify(null, signedData(namespace, message, hash), key, signature)) throw new Error(`the signature by ${fingerprint} does not match the signed file`);
  return { key, fingerprint };
}

/** A new Ed25519 key pair (PKCS#8 PEM private key). */
export function generateSigningKey(): { privateKey: KeyObject; pem: string } {
  const { privateKey, privatePem } = newKeyPair('ed25519');
  return { privateKey, pem: privatePem };
}

/** A private key from PKCS#8 PEM. */
export function signingKeyFromPem(pem: string): KeyObject {
  const key = createPrivateKey(pem);
  if (key.asymmetricKeyType !== 'ed25519') throw new Error('the signing key must be an Ed25519 key');
  return key;
}
