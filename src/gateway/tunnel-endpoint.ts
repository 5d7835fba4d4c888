/**
 * The tunnel endpoint: `GET /v1/connections/{name}/tunnel` with `Upgrade: hoop-tunnel/1` (one
 * session; with a policy repo the 101 carries `Hoop-Policy-Commit: <sha>`), and the hoop-mux/1
 * Upgrade (many sessions on one connection, each admitted on its own, with its own token and
 * headers). Sessions are handed to the admission (./sessions/admission.ts).
 *
 * @see https://www.rfc-editor.org/rfc/rfc9110#name-upgrade (HTTP/1.1 Upgrade)
 */
import type * as http from 'node:http';
import type { Duplex } from 'node:stream';
import { ErrorCode } from '../errors.js';
import { acceptMux, acceptTunnel, isMuxUpgrade, isTunnelUpgrade, rejectUpgrade } from '../tunnel/accept.js';
import type { MuxConnection } from '../tunnel/mux.js';
import { refuseTunnel, SHUTTING_DOWN, type SessionAdmission } from './sessions/admission.js';
import type { Callers } from './sessions/callers.js';
import type { ConnectionGuard } from './front/connection-guard.js';
import type { GatewayParts } from './parts/parts.js';
import { peerOf, peerText } from './front/peer-address.js';
import { API_ROUTES } from '../api/paths.js';
import { pathPart, requestUrl } from './http/request-target.js';

/** The server's `upgrade` handler, and what closes the hoop-mux/1 connections at shutdown. */
export function tunnelEndpoint(
  parts: GatewayParts,
  callers: Callers,
  admission: SessionAdmission,
  guard: ConnectionGuard,
): { onUpgrade: (req: http.IncomingMessage, socket: Duplex, head: Buffer) => void; closeMuxes: () => void } {
  /** The hoop-mux/1 connections open now: closed at shutdown, once their sessions have ended. */
  const muxes = new Set<MuxConnection>();

  /** A hoop-mux/1 connection: its Upgrade must carry a valid token (who may hold a connection open). */
  const acceptMuxConnection = async (req: http.IncomingMessage, socket: Duplex, head: Buffer, remoteAddress: string): Promise<void> => {
    if (admission.closing) return rejectUpgrade(socket, 503, SHUTTING_DOWN);
    try {
      await callers.authenticate(req.headers.authorization, { remote: peerOf(req.socket).address ?? '?', at: 'tunnel' });
      guard.trust(req.socket);
    } catch (err) {
      return refuseTunnel(parts, err, { remote: remoteAddress }, (status, body, headers) => rejectUpgrade(socket, status, body, headers));
    }
    if (admission.closing) return rejectUpgrade(socket, 503, SHUTTING_DOWN);
    const mux = acceptMux(socket, head, (stream, request) => {
      if (admission.closing) return stream.refuse(503, SHUTTING_DOWN);
      admission.admit({ name: request.connection, headers: request.headers, remoteAddress }, { refuse: (status, body) => stream.refuse(status, body), accept: (headers) => stream.accept(headers) });
    });
    muxes.add(mux);
    mux.once('close', () => muxes.delete(mux));
  };

  const onUpgrade = (req: http.IncomingMessage, socket: Duplex, head: Buffer): void => {
    socket.on('error', () => undefined);
    let path: string;
    try {
      path = requestUrl(req).pathname;
    } catch {
      return rejectUpgrade(socket, 400, { error: { code: ErrorCode.USAGE, message: 'the request target is not a URL path' } });
    }
    const remoteAddress = peerText(req.socket);
    if (API_ROUTES.mux.test(path) && isMuxUpgrade(req)) {
      void acceptMuxConnection(req, socket, head, remoteAddress);
      return;
    }
    const match = API_ROUTES.tunnel.exec(path);
    let name: string | undefined;
    try {
      name = match ? pathPart(match[1]!) : undefined;
    } catch {
      name = undefined;
    }
    if (name === undefined || !isTunnelUpgrade(req)) return rejectUpgrade(socket, 404, { error: { code: ErrorCode.USAGE, message: `no tunnel endpoint at ${path}` } });
    if (admission.closing) return rejectUpgrade(socket, 503, SHUTTING_DOWN);
    admission.admit(
      { name, headers: req.headers, remoteAddress },
      {
        refuse: (status, body, headers) => rejectUpgrade(socket, status, body, headers),
        accept: (headers) => {
          guard.trust(req.socket);
          return acceptTunnel(req, socket, head, headers);
        },
      },
    );
  };

  return {
    onUpgrade,
    closeMuxes: () => {
      for (const mux of muxes) mux.close();
    },
  };
}
