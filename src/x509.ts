/**
 * Minting X.509 certificates without openssl: an ECDSA P-256 key pair from node:crypto and a
 * certificate DER-encoded here, signed with ECDSA-SHA256. Enough for what hoop mints itself: the
 * per-session certificate of `hoop connect`'s local port (self-signed, its own root), and a CA and
 * the certificates it issues.
 *
 * @see https://www.rfc-editor.org/rfc/rfc5280 (certificate and extension syntax)
 * @see https://www.itu.int/rec/T-REC-X.690 (DER)
 */
import { realClock } from './clock.js';
import { X509Certificate, createPrivateKey, createPublicKey, randomBytes, sign, type KeyObject } from 'node:crypto';
import { isIP } from 'node:net';
import { newKeyPair } from './key-pair.js';

/** A certificate and its private key, PEM-encoded. */
export interface MintedCertificate {
  cert: string;
  key: string;
  /** The private key, for signing what this certificate issues. */
  privateKey: KeyObject;
  /** The parsed certificate (subject, fingerprint, validity). */
  x509: X509Certificate;
}

/** What to put into a certificate. */
export interface CertificateRequest {
  /** The subject's common name. */
  commonName: string;
  /** DNS names and IP addresses the certificate is for (subjectAltName). */
  altNames?: string[];
  /** A CA certificate (may issue others); a self-signed one is always its own root. */
  ca?: boolean;
  /** How long it is valid from now; default one day. */
  validDays?: number;
  /** The issuer; absent: self-signed. */
  issuer?: MintedCertificate;
}

function length(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

/** One DER element: tag, length, contents. */
function tlv(tag: number, ...contents: Buffer[]): Buffer {
  const body = Buffer.concat(contents);
  return Buffer.concat([Buffer.from([tag]), length(body.length), body]);
}

const seq = (...c: Buffer[]): Buffer => tlv(0x30, ...c);
const set = (...c: Buffer[]): Buffer => tlv(0x31, ...c);
const octets = (b: Buffer): Buffer => tlv(0x04, b);
const bits = (b: Buffer): Buffer => tlv(0x03, Buffer.from([0]), b);
const utf8 = (s: string): Buffer => tlv(0x0c, Buffer.from(s, 'utf8'));
const bool = (v: boolean): Buffer => tlv(0x01, Buffer.from([v ? 0xff : 0]));

function oid(dotted: string): Buffer {
  const parts = dotted.split('.').map(Number);
  const out = [40 * parts[0]! + parts[1]!];
  for (const p of parts.slice(2)) {
    const chunk: number[] = [p & 0x7f];
    for (let v = Math.floor(p / 128); v > 0; v = Math.floor(v / 128)) chunk.unshift(0x80 | (v & 0x7f));
    out.push(...chunk);
  }
  return tlv(0x06, Buffer.from(out));
}

function integer(b: Buffer): Buffer {
  let i = 0;
  while (i < b.length - 1 && b[i] === 0 && (b[i + 1]! & 0x80) === 0) i++;
  const v = b.subarray(i);
  return tlv(0x02, (v[0]! & 0x80) !== 0 ? Buffer.concat([Buffer.from([0]), v]) : v);
}

/** UTCTime through 2049, GeneralizedTime after (RFC 5280 4.1.2.5). */
function time(d: Date): Buffer {
  const iso = d.toISOString().replace(/[-:T]/g, '').slice(0, 14);
  return d.getUTCFullYear() < 2050 ? tlv(0x17, Buffer.from(`${iso.slice(2)}Z`)) : tlv(0x18, Buffer.from(`${iso}Z`));
}

const name = (cn: string): Buffer => seq(set(seq(oid('2.5.4.3'), utf8(cn))));
const ECDSA_SHA256 = seq(oid('1.2.840.10045.4.3.2'));

function ipBytes(ip: string): Buffer {
  if (isIP(ip) === 4) return Buffer.from(ip.split('.').map(Number));
  const [head = '', tail = ''] = ip.split('::');
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = ip.includes('::') ? [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t] : h;
  return Buffer.concat(groups.map((g) => Buffer.from([parseInt(g, 16) >> 8, parseInt(g, 16) & 0xff])));
}

function extension(id: string, critical: boolean, value: Buffer): Buffer {
  return seq(oid(id), ...(critical ? [bool(true)] : []), octets(value));
}

/**
 * Mints an ECDSA P-256 certificate (and key) for `request`: self-signed, or signed by
 * `request.issuer`.
 *
 * @see https://www.rfc-editor.org/rfc/rfc5280#section-4.1
 */
export function mintCertificate(request: CertificateRequest): MintedCertificate {
  const { privateKey, publicKey } = newKeyPair('ec');
  const now = realClock.now();
  const spki = publicKey.export({ type: 'spki', format: 'der' });
  const issuerName = request.issuer ? request.issuer.x509.subject.replace(/^CN=/, '') : request.commonName;
  const sans = (request.altNames ?? []).map((n) => (isIP(n) ? tlv(0x87, ipBytes(n)) : tlv(0x82, Buffer.from(n, 'ascii'))));
  const extensions = [
    extension('2.5.29.19', true, seq(...(request.ca ? [bool(true)] : []))), // basicConstraints
    extension('2.5.29.15', true, bits(Buffer.from([request.ca ? 0x86 : 0x80]))), // keyUsage: digitalSignature (+ keyCertSign, cRLSign)
    ...(sans.length > 0 ? [extension('2.5.29.17', false, seq(...sans))] : []), // subjectAltName
    ...(request.ca ? [] : [extension('2.5.29.37', false, seq(oid('1.3.6.1.5.5.7.3.1')))]), // extKeyUsage: serverAuth
  ];
  const tbs = seq(
    tlv(0xa0, integer(Buffer.from([2]))), // v3
    integer(Buffer.concat([Buffer.from([0x01]), randomBytes(15)])),
    ECDSA_SHA256,
    name(issuerName),
    seq(time(new Date(now - 60_000)), time(new Date(now + (request.validDays ?? 1) * 86_400_000))),
    name(request.commonName),
    spki,
    tlv(0xa3, seq(...extensions)),
  );
  const signer = request.issuer?.privateKey ?? privateKey;
  const der = seq(tbs, ECDSA_SHA256, bits(sign('sha256', tbs, signer)));
  const x509 = new X509Certificate(der);
  const issuerKey = request.issuer ? createPublicKey(request.issuer.x509.publicKey.export({ type: 'spki', format: 'pem' })) : publicKey;
  if (!x509.verify(issuerKey)) throw new Error('the minted certificate does not verify');
  return {
    cert: `-----BEGIN CERTIFICATE-----\n${der.toString('base64').replace(/.{64}/g, '$&\n').replace(/\n?$/, '\n')}-----END CERTIFICATE-----\n`,
    key: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
    privateKey,
    x509,
  };
}

/** A certificate and key minted earlier (PEM), to issue more from or to check. */
export function certificateFromPem(cert: string, key: string): MintedCertificate {
  return { cert, key, privateKey: createPrivateKey(key), x509: new X509Certificate(cert) };
}
