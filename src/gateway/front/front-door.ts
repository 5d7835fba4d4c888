/**
 * The gateway's port, where everything arrives, told apart by its first bytes as Teleport's proxy
 * does it:
 * - a TLS ClientHello: the TLS handshake, then by ALPN: `postgresql` (PostgreSQL 17's direct TLS,
 *   `sslnegotiation=direct`, and any libpq 17 client) is a direct PostgreSQL client; anything else
 *   (`http/1.1`, none) is HTTPS: a first request whose target begins `/direct/` is a direct HTTP
 *   client of an HTTP connection, any other the API and hoop's tunnels;
 * - a PostgreSQL SSLRequest: `S`, then the TLS handshake, then a direct PostgreSQL client, whatever
 *   its ALPN (libpq before 17 offers none); a GSSENCRequest is declined (`N`) and the client may go
 *   on with an SSLRequest;
 * - a PostgreSQL CancelRequest in the clear (libpq before 17 sends its cancels so, whatever its
 *   sslmode): handed on by its key alone, as PostgreSQL takes it;
 * - anything else is answered in its own protocol where it can be (a StartupMessage in the clear:
 *   an ErrorResponse saying to use TLS; plain HTTP: a 400 saying to use https) and closed.
 *
 * The TLS socket is made here on the TCP socket's own handle (the bytes read to decide are given
 * back to it first), so TLS runs in OpenSSL on the socket, with no JavaScript stream in between.
 *
 * Before all of it, a connection from a listed load balancer (`proxyProtocol.from`) must begin with
 * a PROXY protocol v2 header (./balancers.ts): the client's address it says is the connection's
 * (./peer-address.ts), counted per address and recorded as its source; without one it is closed.
 *
 * @see https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-SSL
 * @see https://www.postgresql.org/docs/current/libpq-connect.html#LIBPQ-CONNECT-SSLNEGOTIATION
 * @see https://www.rfc-editor.org/rfc/rfc7301 (ALPN)
 * @see https://github.com/gravitational/teleport/blob/master/lib/multiplexer/multiplexer.go (routing by first bytes)
 */
import type * as http from 'node:http';
import * as net from 'node:net';
import type * as tls from 'node:tls';
import { describeError } from '../../errors.js';
import type { Logger } from '../../log.js';
import { survive } from './survive.js';
import { HTTP_DIRECT_PATH } from '../../http/gateway/direct-front.js';
import { EncryptionAnswer } from '../../postgres/wire/codes.js';
import { errorResponse } from '../../postgres/wire/messages.js';
import { TlsSessionChannel } from '../../session/tls-channel.js';
import { type Balancers, receiveProxyHeader } from './balancers.js';
import type { ConnectionGuard } from './connection-guard.js';
import { peerOf, tellPeer } from './peer-address.js';

/** The protocol codes of the packets a PostgreSQL client may send first. @see https://www.postgresql.org/docs/current/protocol-message-formats.html */
const SSL_REQUEST = 80877103;
const GSSENC_REQUEST = 80877104;
const CANCEL_REQUEST = 80877102;
/** The first byte of a TLS record carrying a handshake message (the ClientHello). @see https://www.rfc-editor.org/rfc/rfc8446#section-5.1 */
const TLS_HANDSHAKE = 0x16;
/** ALPN's name for PostgreSQL. @see https://www.iana.org/assignments/tls-extensiontype-values/tls-extensiontype-values.xhtml#alpn-protocol-ids */
export const ALPN_POSTGRESQL = 'postgresql';
/** Bytes read before deciding, at most: a CancelRequest is 16. */
const MAX_SNIFF = 16;

/** Options of {@link openFrontDoor}. */
export interface FrontDoorOptions {
  secureContext: tls.SecureContext;
  /** Where HTTPS goes: the API and the tunnel endpoint. */
  http: http.Server;
  /** A direct PostgreSQL client, its TLS handshake done. */
  postgres: (channel: TlsSessionChannel) => void;
  /** A direct HTTP client (its first request's target begins `/direct/`), its TLS handshake done, with the bytes read to tell. */
  httpDirect?: (channel: TlsSessionChannel, seen: Buffer) => void;
  /** A CancelRequest that came in the clear. */
  cancel: (key: { processId: number; secretKey: number }, remote: string) => void;
  guard: ConnectionGuard;
  /** The balancers whose PROXY protocol header is read, when `proxyProtocol` is configured. */
  balancers?: Balancers;
  log: Logger;
}

/** The server of the gateway's port (not yet listening). */
export function openFrontDoor(o: FrontDoorOptions): net.Server {
  const serve = (raw: net.Socket): void => {
    raw.on('error', (err) => o.log.debug('front.error', { error: describeError(err) }));
    if (!o.balancers?.has(peerOf(raw).address)) {
      if (o.guard.arrived(raw)) sniff(raw, o);
      return;
    }
    // The deadline covers the header's wait; the cap counts the client the header names.
    o.guard.started(raw);
    receiveProxyHeader(raw, o.log, () => {
      if (o.guard.arrived(raw)) sniff(raw.resume(), o);
    });
  };
  return net.createServer(
    { noDelay: true },
    survive(o.log, 'front', serve, (raw) => raw.destroy()),
  );
}

/** Reads the first bytes of `raw` until they say what it is; then hands it on. */
function sniff(raw: net.Socket, o: FrontDoorOptions): void {
  let seen: Buffer = Buffer.alloc(0);
  const onData = (chunk: Buffer): void => {
    seen = seen.length === 0 ? chunk : Buffer.concat([seen, chunk]);
    const next = decide(seen);
    if (next === 'more') {
      if (seen.length > MAX_SNIFF) raw.destroy();
      return;
    }
    raw.off('data', onData);
    raw.pause();
    switch (next.kind) {
      case 'tls':
        raw.unshift(seen);
        return startTls(raw, false, o);
      case 'ssl-request':
        // Bytes sent before the answer would be read as if they came over TLS (CVE-2021-23222).
        if (seen.length > 8) return void raw.destroy();
        raw.write(Buffer.from([EncryptionAnswer.ACCEPT]));
        return startTls(raw, true, o);
      case 'gssenc-request':
        if (seen.length > 8) return void raw.destroy();
        raw.write(Buffer.from([EncryptionAnswer.DECLINE]));
        return sniff(raw.resume(), o);
      case 'cancel':
        o.cancel({ processId: seen.readUInt32BE(8), secretKey: seen.readUInt32BE(12) }, peerOf(raw).address ?? '');
        return void raw.end();
      case 'plain-postgres':
        return void raw.end(
          errorResponse({
            severity: 'FATAL',
            code: '28000',
            message: 'hoop: the gateway takes PostgreSQL clients over TLS only',
            hint: 'connect with sslmode=verify-full (hoop connect --direct prints the whole connection string)',
          }),
        );
      case 'plain-http':
        return void raw.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Type: text/plain\r\n\r\nthe hoop gateway speaks https\n');
      default:
        raw.destroy();
    }
  };
  raw.on('data', onData);
}

type Verdict = 'more' | { kind: 'tls' | 'ssl-request' | 'gssenc-request' | 'cancel' | 'plain-postgres' | 'plain-http' | 'unknown' };

/** What the first bytes of a connection are, or `more` when they do not say yet. */
function decide(b: Buffer): Verdict {
  if (b[0] === TLS_HANDSHAKE) return { kind: 'tls' };
  if (/^[A-Z]{3,7} /.test(b.subarray(0, 8).toString('latin1'))) return { kind: 'plain-http' };
  if (b.length < 8) return 'more';
  const length = b.readUInt32BE(0);
  const code = b.readUInt32BE(4);
  if (length === 8 && code === SSL_REQUEST) return { kind: 'ssl-request' };
  if (length === 8 && code === GSSENC_REQUEST) return { kind: 'gssenc-request' };
  if (length === 16 && code === CANCEL_REQUEST) return b.length < 16 ? 'more' : { kind: 'cancel' };
  if (code >>> 16 === 3 && length >= 8 && length <= 10_000) return { kind: 'plain-postgres' };
  return { kind: 'unknown' };
}

/**
 * The TLS handshake on `raw`'s own handle; then PostgreSQL (after an SSLRequest, or with ALPN
 * `postgresql`) or HTTPS. Its deadline is the guard's.
 */
function startTls(raw: net.Socket, sslRequest: boolean, o: FrontDoorOptions): void {
  const socket = new TlsSessionChannel(raw, {
    isServer: true,
    secureContext: o.secureContext,
    // PostgreSQL where the client offers it; else HTTP/1.1 where offered; a client offering neither (h2 alone) is refused.
    ALPNCallback: ({ protocols }) => (protocols.includes(ALPN_POSTGRESQL) ? ALPN_POSTGRESQL : protocols.includes('http/1.1') ? 'http/1.1' : undefined),
  });
  o.guard.alias(socket, raw);
  tellPeer(socket, peerOf(raw));
  socket.on('error', (err) => {
    o.log.debug('front.tls-error', { error: describeError(err) });
    socket.destroy();
  });
  socket.once('secure', () => {
    if (sslRequest || socket.alpnProtocol === ALPN_POSTGRESQL) o.postgres(socket);
    else sniffHttps(socket, o);
  });
}

/** Bytes of an HTTPS connection read, at most, to tell a direct HTTP client from the API's. */
const MAX_HTTPS_SNIFF = 64;

/** Reads an HTTPS connection's first bytes until they tell a direct HTTP client from the API's and hoop's tunnels; the bytes read are the API's again. */
function sniffHttps(socket: TlsSessionChannel, o: FrontDoorOptions): void {
  const direct = o.httpDirect;
  if (!direct) return void o.http.emit('connection', socket);
  let seen: Buffer = Buffer.alloc(0);
  const onData = (chunk: Buffer): void => {
    seen = seen.length === 0 ? chunk : Buffer.concat([seen, chunk]);
    const next = httpsKind(seen);
    if (next === 'more') return;
    socket.off('data', onData);
    socket.pause();
    // A direct client's side may end after its requests (a half-close): it is still answered. Set now, before its end is read.
    if (next === 'direct') {
      socket.allowHalfOpen = true;
      return direct(socket, seen);
    }
    socket.unshift(seen);
    o.http.emit('connection', socket);
    socket.resume();
  };
  socket.on('data', onData);
}

/** The longest method a direct HTTP client's first request may name. */
const MAX_METHOD = 20;

/** Whether an HTTPS connection's first bytes are a direct HTTP client's request line, the API's, or do not say yet (never past {@link MAX_HTTPS_SNIFF} bytes). */
export function httpsKind(b: Buffer): 'direct' | 'api' | 'more' {
  const text = b.toString('latin1', 0, Math.min(b.length, MAX_HTTPS_SNIFF));
  const space = text.indexOf(' ');
  const method = space < 0 ? text : text.slice(0, space);
  if (!/^[A-Z]*$/.test(method) || method.length > MAX_METHOD) return 'api';
  const target = space < 0 ? '' : text.slice(space + 1);
  if (target.length >= HTTP_DIRECT_PATH.length) return space > 0 && target.startsWith(HTTP_DIRECT_PATH) ? 'direct' : 'api';
  // Undecided within the first bytes: the API's (its server refuses what is not HTTP).
  if (b.length >= MAX_HTTPS_SNIFF || (space >= 0 && !HTTP_DIRECT_PATH.startsWith(target))) return 'api';
  return 'more';
}
