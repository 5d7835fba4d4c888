/**
 * SCRAM-SHA-256 as PostgreSQL uses it, both ends, with channel binding (SCRAM-SHA-256-PLUS,
 * `tls-server-end-point`) where the connection is TLS, and the legacy MD5 password hash.
 *
 * @see https://www.rfc-editor.org/rfc/rfc5802 (SCRAM)
 * @see https://www.rfc-editor.org/rfc/rfc7677 (SCRAM-SHA-256)
 * @see https://www.postgresql.org/docs/current/sasl-authentication.html
 */
import { createHash, createHmac, pbkdf2, pbkdf2Sync, randomBytes, timingSafeEqual } from 'node:crypto';
import { promisify } from 'node:util';
import { ErrorCode, HoopError, type HoopErrorOptions } from '../../errors.js';
import { PgProtocolError } from './protocol-error.js';

const pbkdf2Async = promisify(pbkdf2);

/** The SASL mechanisms, as PostgreSQL names them. */
export const SCRAM_SHA_256 = 'SCRAM-SHA-256';
export const SCRAM_SHA_256_PLUS = 'SCRAM-SHA-256-PLUS';

/**
 * SaltedPassword (PBKDF2 of the password with the server's salt and iteration count) of the
 * latest passwords this process signed in with, keyed by a hash of all three: a server keeps a
 * role's salt until its password changes, so the gateway's every new upstream connection (and
 * its catalog connection) would otherwise spend 4,096 or more HMAC rounds on the same answer.
 * PgBouncer keeps SCRAM keys across connections for the same reason. It holds nothing the
 * process does not hold already (the password).
 *
 * @see https://www.rfc-editor.org/rfc/rfc5802#section-3 (SaltedPassword := Hi(Normalize(password), salt, i))
 */
const saltedPasswords = new Map<string, Buffer>();
const SALTED_PASSWORDS_MAX = 64;

function saltedPasswordKey(password: string, salt: Buffer, iterations: number): string {
  return createHash('sha256').update(password, 'utf8').update('\0').update(salt).update(`\0${iterations}`).digest('base64');
}

function rememberSaltedPassword(key: string, salted: Buffer): Buffer {
  if (saltedPasswords.size >= SALTED_PASSWORDS_MAX) saltedPasswords.delete(saltedPasswords.keys().next().value!);
  saltedPasswords.set(key, salted);
  return salted;
}

/** Fewest PBKDF2 iterations a client accepts: fewer would let an impostor server harvest a cheaply crackable proof. */
export const SCRAM_MIN_ITERATIONS = 1000;
/** Most PBKDF2 iterations a client accepts: more would let a server make the client burn CPU. */
export const SCRAM_MAX_ITERATIONS = 1_000_000;

/**
 * Authentication failed: a wrong password (server side) or a server whose signature does not
 * prove it knows the password, or that reported `e=` (client side). `sqlstate` is `28P01`.
 *
 * @see https://www.rfc-editor.org/rfc/rfc5802#section-5
 */
export class ScramAuthError extends HoopError {
  /** The SQLSTATE to report: invalid_password. */
  readonly sqlstate = '28P01';

  constructor(message: string, options: HoopErrorOptions = {}) {
    super(ErrorCode.ACCESS_DENIED, message, options);
  }
}

function malformed(what: string): PgProtocolError {
  return new PgProtocolError(`malformed SCRAM message: ${what}`);
}

const sha256 = (b: Buffer): Buffer => createHash('sha256').update(b).digest();
const hmac = (key: Buffer, s: string): Buffer => createHmac('sha256', key).update(s, 'utf8').digest();

function xor(a: Buffer, b: Buffer): Buffer {
  const out = Buffer.allocUnsafe(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i]! ^ b[i]!;
  return out;
}

/** printable = %x21-2B / %x2D-7E (any printable ASCII except ","). */
const printable = /^[\x21-\x2b\x2d-\x7e]+$/;
const base64Re = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

function decodeBase64(s: string, what: string): Buffer {
  if (!base64Re.test(s)) throw malformed(`${what} is not valid base64`);
  return Buffer.from(s, 'base64');
}

/** Splits `a=v,b=w` into attributes in order; every part must be `letter=value`. */
function attributes(msg: string, what: string): Array<[string, string]> {
  return msg.split(',').map((part) => {
    if (!/^[A-Za-z]=/.test(part)) throw malformed(`${what} has an invalid attribute`);
    return [part[0]!, part.slice(2)];
  });
}

function text(msg: Buffer, what: string): string {
  const s = msg.toString('utf8');
  if (!Buffer.from(s, 'utf8').equals(msg)) throw malformed(`${what} is not valid UTF-8`);
  return s;
}

function makeNonce(): string {
  return randomBytes(18).toString('base64');
}

/** saslname escaping: "=" → "=3D", "," → "=2C". */
function escapeSaslName(s: string): string {
  return s.replace(/=/g, '=3D').replace(/,/g, '=2C');
}

// RFC 3454 tables used by SASLprep (RFC 4013), as ranges.
const mappedToNothing = /[\u00ad\u034f\u1806\u180b-\u180d\u200b-\u200d\u2060\ufe00-\ufe0f\ufeff]/gu;
const nonAsciiSpace = /[\u00a0\u1680\u2000-\u200b\u202f\u205f\u3000]/gu;
const prohibited =
  /[\u0000-\u001f\u007f-\u009f\u0340\u0341\u06dd\u070f\u180e\u200c-\u200f\u2028-\u202e\u2060-\u2063\u206a-\u206f\u2ff0-\u2ffb\ud800-\udfff\ue000-\uf8ff\ufdd0-\ufdef\ufeff\ufff9-\uffff\u{1d173}-\u{1d17a}\u{e0001}\u{e0020}-\u{e007f}\u{f0000}-\u{10ffff}]|[\u{1fffe}\u{1ffff}\u{2fffe}\u{2ffff}\u{3fffe}\u{3ffff}\u{4fffe}\u{4ffff}\u{5fffe}\u{5ffff}\u{6fffe}\u{6ffff}\u{7fffe}\u{7ffff}\u{8fffe}\u{8ffff}\u{9fffe}\u{9ffff}\u{afffe}\u{affff}\u{bfffe}\u{bffff}\u{cfffe}\u{cffff}\u{dfffe}\u{dffff}\u{efffe}\u{effff}]|\p{Cn}/u;
const randAL = /[\p{Script=Hebrew}\p{Script=Arabic}\p{Script=Syriac}\p{Script=Thaana}\p{Script=Nko}]/u;
const lCat = /\p{L}/u;

/**
 * SASLprep (RFC 4013) as PostgreSQL applies it to SCRAM passwords: ASCII passwords are used as
 * they are; others are mapped and NFKC-normalized; a password that SASLprep prohibits is used
 * unchanged, as the server does. Unassigned code points and bidi categories are approximated
 * with the Unicode tables of the running JavaScript engine.
 *
 * @see https://www.rfc-editor.org/rfc/rfc4013
 * @see https://www.postgresql.org/docs/current/sasl-authentication.html#SASL-SCRAM-SHA-256
 */
export function saslPrep(password: string): string {
  if (/^[\x00-\x7f]*$/.test(password)) return password;
  const mapped = password.replace(mappedToNothing, '').replace(nonAsciiSpace, ' ').normalize('NFKC');
  if (prohibited.test(mapped)) return password;
  if (randAL.test(mapped)) {
    const chars = [...mapped];
    const isR = (c: string): boolean => randAL.test(c);
    if (chars.some((c) => lCat.test(c) && !isR(c))) return password;
    if (!isR(chars[0]!) || !isR(chars[chars.length - 1]!)) return password;
  }
  return mapped;
}

interface Keys {
  clientKey: Buffer;
  storedKey: Buffer;
  serverKey: Buffer;
}

function keysFrom(saltedPassword: Buffer): Keys {
  const clientKey = hmac(saltedPassword, 'Client Key');
  return { clientKey, storedKey: sha256(clientKey), serverKey: hmac(saltedPassword, 'Server Key') };
}

/**
 * The client end of SCRAM-SHA-256 without channel binding. Call `clientFirstMessage()`, then
 * `handleServerFirst()` (or its non-blocking twin) with the AuthenticationSASLContinue data, then
 * `verifyServerFinal()` with the AuthenticationSASLFinal data.
 *
 * @see https://www.rfc-editor.org/rfc/rfc5802#section-3
 * @see https://www.rfc-editor.org/rfc/rfc7677
 */
export class ScramClient {
  private readonly password: string;
  private readonly nonce: string;
  private readonly clientFirstBare: string;
  private readonly gs2Header: string;
  private readonly channelBinding: Buffer | undefined;
  private state: 'initial' | 'first-sent' | 'final-sent' | 'done' = 'initial';
  private expectedServerSignature: Buffer | undefined;

  /**
   * @param password the password (SASLprep is applied)
   * @param nonce the client nonce, for tests; random by default
   * @param username sent in `n=`; PostgreSQL ignores it and uses the startup user, so it is empty by default
   * @param channelBinding the server certificate's `tls-server-end-point` data, to bind (SCRAM-SHA-256-PLUS)
   */
  constructor(password: string, nonce: string = makeNonce(), username = '', channelBinding?: Buffer) {
    if (!printable.test(nonce)) throw new RangeError('a SCRAM nonce is printable ASCII without ","');
    this.password = saslPrep(password);
    this.nonce = nonce;
    this.clientFirstBare = `n=${escapeSaslName(username)},r=${nonce}`;
    this.channelBinding = channelBinding;
    this.gs2Header = channelBinding ? 'p=tls-server-end-point,,' : 'n,,';
  }

  /** The mechanism this client signs in with. */
  get mechanism(): string {
    return this.channelBinding ? SCRAM_SHA_256_PLUS : SCRAM_SHA_256;
  }

  /** client-first-message: the gs2 header (`n,,`, or `p=tls-server-end-point,,` binding) and client-first-message-bare. */
  clientFirstMessage(): Buffer {
    if (this.state !== 'initial') throw new PgProtocolError('SCRAM client-first-message was already sent');
    this.state = 'first-sent';
    return Buffer.from(`${this.gs2Header}${this.clientFirstBare}`, 'utf8');
  }

  /** Checks server-first-message and returns client-final-message (PBKDF2 on this thread). @throws PgProtocolError */
  handleServerFirst(msg: Buffer): Buffer {
    const p = this.parseServerFirst(msg);
    const key = saltedPasswordKey(this.password, p.salt, p.iterations);
    return this.finish(p, saltedPasswords.get(key) ?? rememberSaltedPassword(key, pbkdf2Sync(this.password, p.salt, p.iterations, 32, 'sha256')));
  }

  /** As {@link ScramClient.handleServerFirst}, running PBKDF2 on the thread pool so the event loop stays free. */
  async handleServerFirstAsync(msg: Buffer): Promise<Buffer> {
    const p = this.parseServerFirst(msg);
    const key = saltedPasswordKey(this.password, p.salt, p.iterations);
    return this.finish(p, saltedPasswords.get(key) ?? rememberSaltedPassword(key, await pbkdf2Async(this.password, p.salt, p.iterations, 32, 'sha256')));
  }

  /** Checks server-final-message: `v=` must carry the expected ServerSignature. @throws ScramAuthError, PgProtocolError */
  verifyServerFinal(msg: Buffer): void {
    if (this.state !== 'final-sent' || !this.expectedServerSignature) {
      throw new PgProtocolError('unexpected SCRAM server-final-message');
    }
    const attrs = attributes(text(msg, 'server-final-message'), 'server-final-message');
    const [key, value] = attrs[0]!;
    if (key === 'e') throw new ScramAuthError(`the server rejected SCRAM authentication: ${value}`);
    if (key !== 'v') throw malformed('server-final-message has no verifier');
    const signature = decodeBase64(value, 'server signature');
    if (signature.length !== this.expectedServerSignature.length || !timingSafeEqual(signature, this.expectedServerSignature)) {
      throw new ScramAuthError('the server signature is wrong: the server does not know the password');
    }
    this.state = 'done';
  }

  private parseServerFirst(msg: Buffer): { raw: string; nonce: string; salt: Buffer; iterations: number } {
    if (this.state !== 'first-sent') throw new PgProtocolError('unexpected SCRAM server-first-message');
    const raw = text(msg, 'server-first-message');
    const attrs = attributes(raw, 'server-first-message');
    if (attrs[0]?.[0] === 'm') throw malformed('server-first-message has an unsupported mandatory extension');
    if (attrs[0]?.[0] === 'e') throw new ScramAuthError(`the server rejected SCRAM authentication: ${attrs[0][1]}`);
    if (attrs.length < 3 || attrs[0]![0] !== 'r' || attrs[1]![0] !== 's' || attrs[2]![0] !== 'i') {
      throw malformed('server-first-message must be r=...,s=...,i=...');
    }
    const nonce = attrs[0]![1];
    if (!printable.test(nonce) || !nonce.startsWith(this.nonce) || nonce.length === this.nonce.length) {
      throw malformed('the server nonce does not extend the client nonce');
    }
    const salt = decodeBase64(attrs[1]![1], 'salt');
    if (salt.length === 0) throw malformed('the salt is empty');
    const i = attrs[2]![1];
    if (!/^[1-9][0-9]{0,9}$/.test(i)) throw malformed('the iteration count is not a positive integer');
    const iterations = Number(i);
    if (iterations < SCRAM_MIN_ITERATIONS || iterations > SCRAM_MAX_ITERATIONS) {
      throw new PgProtocolError(`SCRAM iteration count ${iterations} is outside the accepted range ${SCRAM_MIN_ITERATIONS} to ${SCRAM_MAX_ITERATIONS}`);
    }
    this.state = 'final-sent';
    return { raw, nonce, salt, iterations };
  }

  private finish(p: { raw: string; nonce: string }, saltedPassword: Buffer): Buffer {
    const { clientKey, storedKey, serverKey } = keysFrom(saltedPassword);
    const binding = Buffer.concat([Buffer.from(this.gs2Header, 'latin1'), this.channelBinding ?? Buffer.alloc(0)]);
    const withoutProof = `c=${binding.toString('base64')},r=${p.nonce}`;
    const authMessage = `${this.clientFirstBare},${p.raw},${withoutProof}`;
    const proof = xor(clientKey, hmac(storedKey, authMessage));
    this.expectedServerSignature = hmac(serverKey, authMessage);
    return Buffer.from(`${withoutProof},p=${proof.toString('base64')}`, 'utf8');
  }
}

/**
 * What a SCRAM-SHA-256 server stores for a password (PostgreSQL's `SCRAM-SHA-256$<i>:<salt>$<StoredKey>:<ServerKey>`).
 *
 * @see https://www.rfc-editor.org/rfc/rfc5802#section-3
 */
export interface ScramSecret {
  salt: Buffer;
  iterations: number;
  storedKey: Buffer;
  serverKey: Buffer;
}

/** Derives the stored secret for `password` (SASLprep applied). @see https://www.rfc-editor.org/rfc/rfc5802#section-3 */
export function makeScramSecret(password: string, iterations = 4096, salt: Buffer = randomBytes(16)): ScramSecret {
  if (!Number.isInteger(iterations) || iterations < 1) throw new RangeError('iterations must be a positive integer');
  const { storedKey, serverKey } = keysFrom(pbkdf2Sync(saslPrep(password), salt, iterations, 32, 'sha256'));
  return { salt, iterations, storedKey, serverKey };
}

/** Whether `password` is the one `secret` was derived from (its StoredKey derived again off the main thread, and compared). */
export async function scramPasswordMatches(secret: ScramSecret, password: string): Promise<boolean> {
  const { storedKey } = keysFrom(await pbkdf2Async(saslPrep(password), secret.salt, secret.iterations, 32, 'sha256'));
  return timingSafeEqual(storedKey, secret.storedKey);
}

/**
 * The server end of SCRAM-SHA-256 and, given the TLS connection's `tls-server-end-point` data,
 * of SCRAM-SHA-256-PLUS (channel binding: the client proves it signed in over the TLS connection
 * that ends at this server's certificate, so a man in the middle with another certificate cannot
 * relay the exchange). Without channel binding it accepts gs2 flags `n` and `y` (the client
 * supports binding but thinks the server does not); with it, `y` is a downgrade and refused, and
 * the -PLUS mechanism must bind `p=tls-server-end-point`. Authorization identities are refused.
 *
 * @see https://www.rfc-editor.org/rfc/rfc5802#section-5
 * @see https://www.rfc-editor.org/rfc/rfc5802#section-6 (channel binding; the `y` flag)
 * @see https://www.rfc-editor.org/rfc/rfc7677
 * @see https://www.rfc-editor.org/rfc/rfc5929#section-4 (tls-server-end-point)
 */
export class ScramServer {
  private readonly secret: ScramSecret;
  private readonly serverNonce: string;
  private readonly channelBinding: Buffer | undefined;
  private state: 'initial' | 'first-sent' | 'done' = 'initial';
  private gs2Header = '';
  private bound = false;
  private clientFirstBare = '';
  private serverFirst = '';
  private nonce = '';

  /**
   * @param secret the stored secret to check the client's proof against
   * @param nonce the server's part of the nonce, for tests; random by default
   * @param channelBinding the TLS connection's `tls-server-end-point` data ({@link tlsServerEndPoint}): -PLUS is offered
   */
  constructor(secret: ScramSecret, nonce: string = makeNonce(), channelBinding?: Buffer) {
    if (!printable.test(nonce)) throw new RangeError('a SCRAM nonce is printable ASCII without ","');
    this.secret = secret;
    this.serverNonce = nonce;
    this.channelBinding = channelBinding;
  }

  /** The mechanisms to offer in AuthenticationSASL, preferred first. */
  get mechanisms(): string[] {
    return this.channelBinding ? [SCRAM_SHA_256_PLUS, SCRAM_SHA_256] : [SCRAM_SHA_256];
  }

  /**
   * Checks the mechanism the client picked, then its client-first-message; returns
   * server-first-message. @throws PgProtocolError
   */
  start(mechanism: string, msg: Buffer): Buffer {
    if (!this.mechanisms.includes(mechanism)) throw new PgProtocolError(`unsupported SASL mechanism "${mechanism}"; offered: ${this.mechanisms.join(', ')}`);
    this.bound = mechanism === SCRAM_SHA_256_PLUS;
    return this.handleClientFirst(msg);
  }

  /** Checks client-first-message and returns server-first-message. @throws PgProtocolError */
  handleClientFirst(msg: Buffer): Buffer {
    if (this.state !== 'initial') throw new PgProtocolError('unexpected SCRAM client-first-message');
    const s = text(msg, 'client-first-message');
    const m = /^([^,]*),([^,]*),(.*)$/s.exec(s);
    if (!m) throw malformed('client-first-message has no gs2 header');
    const [, flag, authzid, bare] = m as unknown as [string, string, string, string];
    if (this.bound) {
      if (flag !== 'p=tls-server-end-point')
        throw malformed(flag.startsWith('p=') ? `channel binding type "${flag.slice(2)}" is not supported (tls-server-end-point is)` : 'SCRAM-SHA-256-PLUS needs p=tls-server-end-point');
    } else if (flag.startsWith('p=')) throw malformed('channel binding was requested with SCRAM-SHA-256: pick SCRAM-SHA-256-PLUS');
    else if (flag !== 'n' && flag !== 'y') throw malformed('invalid channel-binding flag');
    // The client could bind but thinks this server cannot: something between them removed -PLUS from the offer.
    else if (flag === 'y' && this.channelBinding) throw new ScramAuthError('the client saw no channel binding offered, but this server offered it (a downgrade)');
    if (authzid !== '') throw malformed('authorization identities are not supported');
    const attrs = attributes(bare, 'client-first-message');
    if (attrs[0]?.[0] === 'm') throw malformed('client-first-message has an unsupported mandatory extension');
    if (attrs.length < 2 || attrs[0]![0] !== 'n' || attrs[1]![0] !== 'r') throw malformed('client-first-message must be n=...,r=...');
    const clientNonce = attrs[1]![1];
    if (!printable.test(clientNonce)) throw malformed('invalid client nonce');
    this.gs2Header = `${flag},,`;
    this.clientFirstBare = bare;
    this.nonce = clientNonce + this.serverNonce;
    this.serverFirst = `r=${this.nonce},s=${this.secret.salt.toString('base64')},i=${this.secret.iterations}`;
    this.state = 'first-sent';
    return Buffer.from(this.serverFirst, 'utf8');
  }

  /** Checks client-final-message and its proof, and returns server-final-message. @throws ScramAuthError (wrong password), PgProtocolError */
  handleClientFinal(msg: Buffer): Buffer {
    if (this.state !== 'first-sent') throw new PgProtocolError('unexpected SCRAM client-final-message');
    this.state = 'done';
    const s = text(msg, 'client-final-message');
    const at = s.lastIndexOf(',p=');
    if (at < 0) throw malformed('client-final-message has no proof');
    const withoutProof = s.slice(0, at);
    const attrs = attributes(withoutProof, 'client-final-message');
    if (attrs.length < 2 || attrs[0]![0] !== 'c' || attrs[1]![0] !== 'r') throw malformed('client-final-message must be c=...,r=...,p=...');
    const binding = decodeBase64(attrs[0]![1], 'channel binding');
    const expected = Buffer.concat([Buffer.from(this.gs2Header, 'latin1'), this.bound ? this.channelBinding! : Buffer.alloc(0)]);
    if (binding.length !== expected.length || !timingSafeEqual(binding, expected)) {
      throw this.bound ? new ScramAuthError('the channel binding does not match this TLS connection') : malformed('channel binding does not match the gs2 header');
    }
    if (attrs[1]![1] !== this.nonce) throw malformed('the nonce does not match');
    const proof = decodeBase64(s.slice(at + 3), 'proof');
    if (proof.length !== 32) throw malformed('the proof has the wrong length');
    const authMessage = `${this.clientFirstBare},${this.serverFirst},${withoutProof}`;
    const clientKey = xor(proof, hmac(this.secret.storedKey, authMessage));
    if (!timingSafeEqual(sha256(clientKey), this.secret.storedKey)) {
      throw new ScramAuthError('password authentication failed');
    }
    return Buffer.from(`v=${hmac(this.secret.serverKey, authMessage).toString('base64')}`, 'utf8');
  }
}

/** Signature algorithms (their OIDs, DER-encoded content) and the hash tls-server-end-point uses with each: MD5 and SHA-1 are replaced by SHA-256. */
const END_POINT_HASHES: ReadonlyMap<string, string> = new Map([
  ['2a864886f70d010104', 'sha256'], // md5WithRSAEncryption
  ['2a864886f70d010105', 'sha256'], // sha1WithRSAEncryption
  ['2a864886f70d01010b', 'sha256'], // sha256WithRSAEncryption
  ['2a864886f70d01010c', 'sha384'], // sha384WithRSAEncryption
  ['2a864886f70d01010d', 'sha512'], // sha512WithRSAEncryption
  ['2a8648ce3d040301', 'sha256'], // ecdsa-with-SHA1
  ['2a8648ce3d040302', 'sha256'], // ecdsa-with-SHA256
  ['2a8648ce3d040303', 'sha384'], // ecdsa-with-SHA384
  ['2a8648ce3d040304', 'sha512'], // ecdsa-with-SHA512
]);

/** One DER TLV at `at`: where its content starts and ends. */
function derAt(der: Buffer, at: number): { start: number; end: number } {
  let len = der[at + 1]!;
  let start = at + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 4) throw new RangeError('unsupported DER length');
    len = der.readUIntBE(start, n);
    start += n;
  }
  if (start + len > der.length) throw new RangeError('truncated DER');
  return { start, end: start + len };
}

/**
 * The `tls-server-end-point` channel binding data of a server certificate (DER): its hash with the
 * hash function of its signature algorithm (SHA-256 for MD5 and SHA-1), as libpq computes it;
 * undefined for an algorithm without one (Ed25519, RSASSA-PSS), with which -PLUS is not offered.
 *
 * @see https://www.rfc-editor.org/rfc/rfc5929#section-4.1
 */
export function tlsServerEndPoint(certDer: Buffer): Buffer | undefined {
  try {
    // Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm AlgorithmIdentifier, signature }
    const cert = derAt(certDer, 0);
    const tbs = derAt(certDer, cert.start);
    const algorithm = derAt(certDer, tbs.end);
    if (certDer[algorithm.start] !== 0x06) return undefined;
    const oid = derAt(certDer, algorithm.start);
    const hash = END_POINT_HASHES.get(certDer.subarray(oid.start, oid.end).toString('hex'));
    return hash ? createHash(hash).update(certDer).digest() : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The response to AuthenticationMD5Password: `'md5' + md5hex(md5hex(password + user) + salt)`.
 *
 * @see https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-START-UP
 */
export function md5Password(user: string, password: string, salt: Buffer): string {
  const inner = createHash('md5')
    .update(password + user, 'utf8')
    .digest('hex');
  return `md5${createHash('md5').update(inner, 'latin1').update(salt).digest('hex')}`;
}
