/**
 * The gateway side of the hoop-tunnel/1 handshake, for a node:http(s) server's `'upgrade'`
 * event: recognise the request, answer `101 Switching Protocols` and wrap the socket in a
 * {@link TunnelChannel}, or refuse it with an HTTP error and a JSON body.
 *
 * @see docs/internals.md (§1.2)
 * @see https://www.rfc-editor.org/rfc/rfc9110#name-upgrade
 * @see https://nodejs.org/api/http.html#event-upgrade
 */
import { API_ROUTES } from '../api/paths.js';
import { STATUS_CODES, type IncomingMessage, validateHeaderName, validateHeaderValue } from 'node:http';
import type { Duplex } from 'node:stream';
import { ErrorCode, HoopError } from '../errors.js';
import { TunnelChannel } from './channel.js';
import { MUX_PROTOCOL, MuxConnection, type MuxStream, type MuxOpenRequest } from './mux.js';
import type { TunnelStream } from './stream.js';
import { TUNNEL_PROTOCOL, TunnelHeader } from './transport.js';

/** The JSON body of a refused tunnel. @see docs/internals.md (§1.2) */
export interface TunnelErrorBody {
  error: { code: string; message: string; hint?: string; reason?: string };
}

/** What a tunnel request says about itself (headers of the Upgrade request). @see docs/internals.md (§1.2) */
export interface TunnelRequest {
  /** The connection name from the path, percent-decoded. */
  connection: string;
  /** The bearer token, or undefined when there is no `Authorization: Bearer` header. */
  token: string | undefined;
  sessionId: string | undefined;
  via: string | undefined;
  clientVersion: string | undefined;
  policyCommit: string | undefined;
}

/** A session a client asks for, whichever way it came: the connection, the request's headers (lower case) and where it came from. */
export interface TunnelSessionRequest {
  name: string;
  headers: Record<string, string | string[] | undefined>;
  remoteAddress: string;
}

/** How the gateway answers a {@link TunnelSessionRequest}: refuse it (an HTTP status and JSON body), or accept it and get its stream. */
export interface TunnelAnswer {
  refuse(status: number, body: TunnelErrorBody, headers?: Record<string, string>): void;
  accept(headers: Record<string, string>): TunnelStream;
}

function tokens(value: string | string[] | undefined): string[] {
  if (value === undefined) return [];
  return (Array.isArray(value) ? value.join(',') : value).split(',').map((t) => t.trim().toLowerCase());
}

/**
 * True when `req` asks to upgrade to hoop-tunnel/1: a GET with `Connection: upgrade` and
 * `Upgrade: hoop-tunnel/1` among their tokens. The path is not checked (see {@link parseTunnelRequest}).
 * @see https://www.rfc-editor.org/rfc/rfc9110#name-upgrade
 */
export function isTunnelUpgrade(req: IncomingMessage): boolean {
  return req.method === 'GET' && tokens(req.headers.connection).includes('upgrade') && tokens(req.headers.upgrade).includes(TUNNEL_PROTOCOL);
}

/** True when `req` asks to upgrade to hoop-mux/1 (a GET with `Connection: upgrade`, `Upgrade: hoop-mux/1`). */
export function isMuxUpgrade(req: IncomingMessage): boolean {
  return req.method === 'GET' && tokens(req.headers.connection).includes('upgrade') && tokens(req.headers.upgrade).includes(MUX_PROTOCOL);
}

function header(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/**
 * The connection name and handshake headers of a tunnel request, or null when its path is not
 * `/v1/connections/{name}/tunnel` (`prefix` is a path prefix the gateway is mounted under).
 * The token is taken from `Authorization: Bearer <token>` (scheme case-insensitive).
 * @see https://www.rfc-editor.org/rfc/rfc6750#section-2.1
 */
export function parseTunnelRequest(req: IncomingMessage, prefix = ''): TunnelRequest | null {
  const target = req.url ?? '';
  const query = target.indexOf('?');
  let path = query < 0 ? target : target.slice(0, query);
  if (prefix) {
    const base = prefix.endsWith('/') ? prefix.slice(0, -1) : prefix;
    if (!path.startsWith(`${base}/`)) return null;
    path = path.slice(base.length);
  }
  const match = API_ROUTES.tunnel.exec(path);
  if (!match) return null;
  let connection: string;
  try {
    connection = decodeURIComponent(match[1]!);
  } catch {
    return null;
  }
  const authorization = header(req, 'authorization');
  const bearer = authorization === undefined ? null : /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i.exec(authorization);
  return {
    connection,
    token: bearer ? bearer[1] : undefined,
    sessionId: header(req, TunnelHeader.SESSION_ID),
    via: header(req, TunnelHeader.VIA),
    clientVersion: header(req, TunnelHeader.CLIENT_VERSION),
    policyCommit: header(req, TunnelHeader.POLICY_COMMIT),
  };
}

function headerLines(headers: Record<string, string>): string {
  let out = '';
  for (const [name, value] of Object.entries(headers)) {
    try {
      validateHeaderName(name);
      validateHeaderValue(name, value);
    } catch (err) {
      throw new HoopError(ErrorCode.INTERNAL, `invalid response header ${JSON.stringify(name)}`, { cause: err });
    }
    out += `${name}: ${value}\r\n`;
  }
  return out;
}

/**
 * Answers `101 Switching Protocols` (`Upgrade: hoop-tunnel/1` plus `headers`, e.g.
 * `Hoop-Session-Id`, `Hoop-Gateway-Version`, `Hoop-Policy-Commit`) on the socket of an
 * `'upgrade'` event and returns the channel over it; `head` holds bytes already read past the
 * request head. Throws HoopError(INTERNAL) for a header with characters HTTP does not allow.
 * @see https://www.rfc-editor.org/rfc/rfc9110#name-101-switching-protocols
 */
export function acceptTunnel(_req: IncomingMessage, socket: Duplex, head: Buffer, headers: Record<string, string>): TunnelChannel {
  const response = `HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: ${TUNNEL_PROTOCOL}\r\n${headerLines(headers)}\r\n`;
  socket.write(response, 'latin1');
  const channel = new TunnelChannel(socket, head, { peer: 'client' });
  // A client that left while it was being admitted: its channel is closed from the start.
  if (socket.destroyed) channel.destroy();
  return channel;
}

/**
 * Answers `101 Switching Protocols` with `Upgrade: hoop-mux/1` and returns the connection over
 * the socket; `onOpen` is given each session a client opens on it, to accept or refuse.
 * @see https://www.rfc-editor.org/rfc/rfc9110#name-101-switching-protocols
 */
export function acceptMux(socket: Duplex, head: Buffer, onOpen: (stream: MuxStream, request: MuxOpenRequest) => void): MuxConnection {
  socket.write(`HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: ${MUX_PROTOCOL}\r\n\r\n`, 'latin1');
  return new MuxConnection(socket, head, { peer: 'client', onOpen });
}

/**
 * Refuses an upgrade: writes an HTTP/1.1 error response with a JSON body on the raw socket of
 * an `'upgrade'` event, then ends it (and destroys it if the client has not closed within 5 s).
 * A 401 gets `WWW-Authenticate: Bearer realm="hoop"` unless `headers` has one.
 * @see https://www.rfc-editor.org/rfc/rfc9110#name-status-codes
 * @see https://www.rfc-editor.org/rfc/rfc6750#section-3
 */
export function rejectUpgrade(socket: Duplex, status: number, body: TunnelErrorBody, headers: Record<string, string> = {}): void {
  const payload = Buffer.from(JSON.stringify(body), 'utf8');
  const extra: Record<string, string> = { ...headers };
  if (status === 401 && !Object.keys(extra).some((k) => k.toLowerCase() === 'www-authenticate')) {
    extra['WWW-Authenticate'] = 'Bearer realm="hoop"';
  }
  let head: string;
  try {
    head =
      `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}\r\n` +
      'Content-Type: application/json; charset=utf-8\r\n' +
      `Content-Length: ${payload.length}\r\n` +
      'Cache-Control: no-store\r\n' +
      'Connection: close\r\n' +
      `${headerLines(extra)}\r\n`;
  } catch (err) {
    socket.destroy();
    throw err;
  }
  if (socket.destroyed || !socket.writable) return;
  socket.on('error', () => socket.destroy());
  socket.write(Buffer.concat([Buffer.from(head, 'latin1'), payload]));
  socket.end();
  socket.resume();
  const linger = setTimeout(() => socket.destroy(), 5_000);
  linger.unref();
  socket.once('close', () => clearTimeout(linger));
}
