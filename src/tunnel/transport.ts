/**
 * The CLI side of the hoop-tunnel/1 handshake: an HTTP/1.1 Upgrade to the gateway's tunnel
 * endpoint, authenticated with a bearer token, turned into a {@link TunnelChannel} on `101`.
 *
 * TLS is required, except to a gateway on this machine (`http://localhost`, `127.0.0.0/8`,
 * `[::1]`) in dev mode. Every failure becomes a HoopError with a hint; none carries the token.
 *
 * @see docs/internals.md (§1.2)
 * @see https://www.rfc-editor.org/rfc/rfc9110#name-upgrade (HTTP Upgrade)
 * @see https://www.rfc-editor.org/rfc/rfc6750#section-2.1 (Bearer token in the Authorization header)
 */
import { readErrorBody } from '../api/answers.js';
import { apiPath } from '../api/paths.js';
import { randomBytes } from 'node:crypto';
import * as http from 'node:http';
import * as https from 'node:https';
import { isLoopbackHost } from '../loopback.js';
import type { Duplex } from 'node:stream';
import { ErrorCode, HoopError, describeError, type HoopErrorOptions } from '../errors.js';
import { TunnelChannel } from './channel.js';
import { MUX_PROTOCOL, MuxConnection, MuxRefusal } from './mux.js';
import type { TunnelStream } from './stream.js';

/** The protocol token of the `Upgrade` header. @see docs/internals.md (§1.2) */
export const TUNNEL_PROTOCOL = 'hoop-tunnel/1';

/** Header names of the tunnel handshake (lower case, as node:http reports them). @see docs/internals.md (§1.2) */
export const TunnelHeader = {
  SESSION_ID: 'hoop-session-id',
  VIA: 'hoop-via',
  CLIENT_VERSION: 'hoop-client-version',
  GATEWAY_VERSION: 'hoop-gateway-version',
  POLICY_COMMIT: 'hoop-policy-commit',
  CLIENT_RECORD: 'hoop-client-record',
} as const;

/** Options of {@link openTunnel}. @see docs/internals.md (§1.2) */
export interface OpenTunnelOptions {
  /** The gateway's base URL, e.g. `https://gateway.example.com` (a path prefix is kept). */
  gateway: string | URL;
  /** The connection's name, as the policy declares it. */
  connection: string;
  /** The bearer token (OIDC access or ID token). Never appears in an error or log. */
  token: string;
  /** The session id chosen by the CLI. */
  sessionId: string;
  /**
   * Which hoop command opens the session (`Hoop-Via`): `connect` (the default) or `exec`. The
   * gateway takes it for a person's own session; a run's way in is its credential's, whatever this says.
   */
  via?: 'connect' | 'exec';
  /** The client does not wait for reviews: a statement held for one is decided later, and runs when sent again (`Hoop-Review: detach`). */
  detachReviews?: boolean;
  /** The policy commit the CLI evaluated with. */
  policyCommit?: string;
  /** SSH: the public key (`type base64`) the local client proves to the gateway (`Hoop-Ssh-Key`). */
  sshKey?: string;
  /** HTTP: the path the local port's URLs begin with, its per-run secret (`Hoop-Http-Prefix`): the gateway refuses a request without it. */
  httpPrefix?: string;
  /** This CLI's version. */
  clientVersion: string;
  /** CA certificates (PEM) to trust instead of the system's, from `--ca-file` / `HOOP_CA_FILE`. */
  ca?: Buffer;
  /** Deadline to reach the gateway (TCP and TLS), in milliseconds (default 10 000). */
  timeoutMs?: number;
  /** Deadline for the gateway's answer once reached, in milliseconds (default 60 000: a busy gateway, or its upstream, is slow, not gone). */
  answerTimeoutMs?: number;
  /** Aborts the handshake (not an opened tunnel); the promise rejects with `signal.reason`. */
  signal?: AbortSignal;
}

/** An opened tunnel and what the gateway said in its `101`. @see docs/internals.md (§1.2) */
/**
 * A new session id for `Hoop-Session-Id`: 16 URL-safe characters (96 random bits) that never
 * begin with `-` or `_`, so the id can be given to a command as an argument (`hoop sessions show
 * <id>`) without being read as an option.
 */
export function newSessionId(): string {
  for (;;) {
    const id = randomBytes(12).toString('base64url');
    if (/^[A-Za-z0-9]/.test(id)) return id;
  }
}

export interface OpenedTunnel<C extends TunnelStream = TunnelStream> {
  channel: C;
  /** The session id the gateway confirmed (the CLI's own if the gateway did not echo one). */
  sessionId: string;
  gatewayVersion?: string;
  /** The gateway's policy commit, so the CLI can tell whether its own bundle is current. */
  policyCommit?: string;
  /** The gateway records the session and takes the CLI's own record of it, on these terms. */
  clientRecord?: ClientRecordTerms;
}

/**
 * What the CLI's record of a session keeps (`Hoop-Client-Record: rows=N[;detectors=a,b]`): at most
 * N rows per result (0: the policy keeps no rows), and what the session's detectors find in what the
 * client sends written down redacted, as the gateway writes it.
 */
export interface ClientRecordTerms {
  rows: number;
  detectors: readonly string[];
}

/**
 * The gateway refused the tunnel with an HTTP error. `status` is the HTTP status; `reason` and
 * `gatewayCode` are the body's `error.reason` and `error.code`, when it sent them.
 * @see https://www.rfc-editor.org/rfc/rfc9110#name-status-codes
 */
export class TunnelRefusedError extends HoopError {
  readonly status: number;
  readonly reason: string | undefined;
  readonly gatewayCode: string | undefined;

  constructor(code: ErrorCode, message: string, status: number, details: { reason?: string; gatewayCode?: string; hint?: string }) {
    super(code, message, details.hint === undefined ? {} : { hint: details.hint });
    this.status = status;
    this.reason = details.reason;
    this.gatewayCode = details.gatewayCode;
  }
}

const DEFAULT_TIMEOUT_MS = 10_000;
const ANSWER_TIMEOUT_MS = 60_000;
const MAX_ERROR_BODY = 64 * 1024;
const BEARER_TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/;

/**
 * The gateway's base URL, normalised (no credentials, query or fragment; a trailing `/` so
 * relative API paths keep any path prefix). Throws HoopError(USAGE) for a URL that is not
 * `https:` (or `http:` to a loopback host).
 * @see docs/internals.md (§1.2)
 */
export function gatewayBaseUrl(gateway: string | URL): URL {
  let base: URL;
  try {
    base = new URL(String(gateway));
  } catch {
    throw new HoopError(ErrorCode.USAGE, 'the gateway URL is not a valid URL', { hint: 'give it as https://host[:port]' });
  }
  base.username = '';
  base.password = '';
  base.search = '';
  base.hash = '';
  if (base.protocol === 'http:') {
    if (!isLoopbackHost(base.hostname)) {
      throw new HoopError(ErrorCode.USAGE, `TLS is required: refusing to send a token over plain http to ${base.host}`, {
        hint: 'use an https:// gateway URL; plain http is allowed only to a gateway on this machine (localhost, 127.0.0.1, [::1])',
      });
    }
  } else if (base.protocol !== 'https:') {
    throw new HoopError(ErrorCode.USAGE, `the gateway URL must use https:, not ${base.protocol}`, { hint: 'give it as https://host[:port]' });
  }
  if (!base.pathname.endsWith('/')) base.pathname += '/';
  return base;
}

/**
 * The tunnel endpoint `<gateway>/v1/connections/{name}/tunnel` for a gateway base URL. Throws
 * HoopError(USAGE) for a URL {@link gatewayBaseUrl} refuses or a bad connection name.
 * @see docs/internals.md (§1.2)
 */
export function tunnelUrl(gateway: string | URL, connection: string): URL {
  const base = gatewayBaseUrl(gateway);
  if (connection === '' || connection === '.' || connection === '..') {
    throw new HoopError(ErrorCode.USAGE, `invalid connection name "${connection}"`, { hint: 'give the name of a connection declared in the policy' });
  }
  return new URL(apiPath.tunnel(connection), base);
}

/**
 * Opens a tunnel to `connection` through the gateway: sends the Upgrade request and resolves
 * with the channel once the gateway answers `101 Switching Protocols` with `hoop-tunnel/1`.
 * Rejects with a HoopError: GATEWAY_UNREACHABLE (network, TLS, timeout), TOKEN_REJECTED (401),
 * ACCESS_DENIED (403), CONNECTION_UNKNOWN (404), UPSTREAM_UNAVAILABLE (502/503), GATEWAY_PROTOCOL
 * (anything else); HTTP refusals are {@link TunnelRefusedError}s carrying the body's `reason`.
 * @see docs/internals.md (§1.2)
 * @see https://www.rfc-editor.org/rfc/rfc9110#name-upgrade
 */
export async function openTunnel(options: OpenTunnelOptions): Promise<OpenedTunnel<TunnelChannel>> {
  const url = tunnelUrl(options.gateway, options.connection);
  const { socket, head, headers } = await upgrade(url, TUNNEL_PROTOCOL, sessionHeaders(options), options);
  return openedTunnel(new TunnelChannel(socket, head, { peer: 'gateway' }), headers, options.sessionId);
}

/** The hoop headers of a session's tunnel request (hoop-tunnel/1 Upgrade, or a hoop-mux/1 OPEN). */
function sessionHeaders(options: OpenTunnelOptions): Record<string, string> {
  if (!BEARER_TOKEN.test(options.token)) {
    throw new HoopError(ErrorCode.NOT_LOGGED_IN, 'the stored token is not a valid bearer token', { hint: 'run `hoop login` again' });
  }
  const headers: Record<string, string> = {
    Authorization: `Bearer ${options.token}`,
    'Hoop-Session-Id': options.sessionId,
    'Hoop-Client-Version': options.clientVersion,
  };
  if (options.via !== undefined) headers['Hoop-Via'] = options.via;
  if (options.detachReviews) headers['Hoop-Review'] = 'detach';
  if (options.policyCommit !== undefined) headers['Hoop-Policy-Commit'] = options.policyCommit;
  if (options.sshKey !== undefined) headers['Hoop-Ssh-Key'] = options.sshKey;
  if (options.httpPrefix !== undefined) headers['Hoop-Http-Prefix'] = options.httpPrefix;
  for (const [name, value] of Object.entries(headers)) {
    try {
      http.validateHeaderValue(name, value);
    } catch {
      throw new HoopError(ErrorCode.USAGE, `the ${name} header would contain characters HTTP does not allow`);
    }
  }
  return headers;
}

/** What the gateway said when it accepted a session (the `101`'s headers, or a hoop-mux/1 ACCEPT's). */
function openedTunnel<C extends TunnelStream>(channel: C, headers: Record<string, string | string[] | undefined>, sessionId: string): OpenedTunnel<C> {
  const value = (name: string): string | undefined => {
    const v = headers[name];
    return Array.isArray(v) ? v[0] : v;
  };
  const opened: OpenedTunnel<C> = { channel, sessionId: value(TunnelHeader.SESSION_ID) ?? sessionId };
  const gatewayVersion = value(TunnelHeader.GATEWAY_VERSION);
  const policyCommit = value(TunnelHeader.POLICY_COMMIT);
  if (gatewayVersion !== undefined) opened.gatewayVersion = gatewayVersion;
  if (policyCommit !== undefined) opened.policyCommit = policyCommit;
  const clientRecord = /^rows=(\d{1,6})(?:;detectors=([a-z-]{1,32}(?:,[a-z-]{1,32}){0,15}))?$/.exec(value(TunnelHeader.CLIENT_RECORD) ?? '');
  if (clientRecord) opened.clientRecord = { rows: Number(clientRecord[1]), detectors: clientRecord[2]?.split(',') ?? [] };
  return opened;
}

/**
 * An HTTP/1.1 Upgrade to `protocol` at `url`: resolves with the socket once the gateway answers
 * `101` with that protocol, or rejects with the HoopError of its refusal (see {@link openTunnel}).
 * @see https://www.rfc-editor.org/rfc/rfc9110#name-upgrade
 */
function upgrade(
  url: URL,
  protocol: string,
  extraHeaders: Record<string, string>,
  options: { connection: string; clientVersion: string; ca?: Buffer; timeoutMs?: number; answerTimeoutMs?: number; signal?: AbortSignal },
): Promise<{ socket: Duplex; head: Buffer; headers: http.IncomingHttpHeaders }> {
  const origin = url.origin;
  options.signal?.throwIfAborted();
  const headers: Record<string, string> = { Connection: 'Upgrade', Upgrade: protocol, 'User-Agent': `hoop/${options.clientVersion}`, ...extraHeaders };
  const requestOptions: https.RequestOptions = { method: 'GET', agent: false, headers };
  if (options.ca) requestOptions.ca = options.ca;
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const signal = options.signal;

  return new Promise((resolve, reject) => {
    let settled = false;
    const request = url.protocol === 'https:' ? https.request(url, requestOptions) : http.request(url, requestOptions);
    const settle = (): boolean => {
      if (settled) return false;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      return true;
    };
    const fail = (err: unknown): void => {
      if (!settle()) return;
      request.destroy();
      reject(err);
    };
    const onAbort = (): void => fail(signal?.reason);
    let timer = setTimeout(() => {
      fail(
        new HoopError(ErrorCode.GATEWAY_UNREACHABLE, `the gateway at ${origin} did not answer within ${timeoutMs / 1000} s`, {
          hint: `is the gateway running at ${origin}, and reachable from here?`,
        }),
      );
    }, timeoutMs);
    signal?.addEventListener('abort', onAbort, { once: true });
    // Reached (TCP, and TLS for https): the gateway is there; its answer may wait on its upstream.
    request.on('socket', (socket) => {
      socket.once(url.protocol === 'https:' ? 'secureConnect' : 'connect', () => {
        if (settled) return;
        clearTimeout(timer);
        const answerMs = options.answerTimeoutMs ?? ANSWER_TIMEOUT_MS;
        timer = setTimeout(() => {
          fail(
            new HoopError(ErrorCode.GATEWAY_UNREACHABLE, `the gateway at ${origin} was reached but did not answer within ${answerMs / 1000} s`, {
              hint: `is the gateway at ${origin} overloaded, or its upstream slow?`,
            }),
          );
        }, answerMs);
      });
    });

    request.on('error', (err) => fail(requestError(err, origin)));
    request.on('upgrade', (res: http.IncomingMessage, socket: Duplex, head: Buffer) => {
      if (settled) {
        socket.destroy();
        return;
      }
      const upgraded = String(res.headers.upgrade ?? '')
        .trim()
        .toLowerCase();
      if (res.statusCode !== 101 || upgraded !== protocol) {
        socket.destroy();
        fail(
          new HoopError(ErrorCode.GATEWAY_PROTOCOL, `the gateway at ${origin} switched to "${upgraded}" instead of ${protocol}`, {
            hint: 'check that the URL points at a hoop gateway compatible with this client',
          }),
        );
        return;
      }
      settle();
      resolve({ socket, head, headers: res.headers });
    });
    request.on('response', (res: http.IncomingMessage) => {
      const status = res.statusCode ?? 0;
      const chunks: Buffer[] = [];
      let size = 0;
      const done = (): void => fail(statusError(status, Buffer.concat(chunks), options.connection, origin));
      res.on('data', (chunk: Buffer) => {
        if (size >= MAX_ERROR_BODY) return;
        chunks.push(chunk);
        size += chunk.length;
      });
      res.on('end', done);
      res.on('close', done);
      res.on('error', done);
    });
    request.end();
  });
}

/** Options of {@link TunnelMux}: where the gateway is and how to reach it. */
export interface TunnelMuxOptions {
  gateway: string | URL;
  clientVersion: string;
  ca?: Buffer;
}

/**
 * The sessions of one command carried over one hoop-mux/1 connection to the gateway: the first
 * session opens it (an Upgrade authenticated with that session's token), later ones open streams
 * on it, and a lost connection is opened again by the next session. Each session is still
 * authenticated on its own: its OPEN carries its token and headers, and the gateway admits it
 * as it would a hoop-tunnel/1 tunnel. A gateway without hoop-mux/1 (404) gets hoop-tunnel/1 tunnels.
 * @see docs/internals.md (§1.2)
 */
export class TunnelMux {
  readonly #options: TunnelMuxOptions;
  #mux: Promise<MuxConnection> | undefined;
  #unsupported = false;
  #closed = false;

  constructor(options: TunnelMuxOptions) {
    this.#options = options;
  }

  /** Opens a session as {@link openTunnel} does (same errors), on the shared connection. */
  async open(options: Omit<OpenTunnelOptions, 'gateway' | 'clientVersion' | 'ca'>): Promise<OpenedTunnel> {
    const full: OpenTunnelOptions = { ...this.#options, ...options };
    if (this.#unsupported) return openTunnel(full);
    const url = tunnelUrl(full.gateway, full.connection);
    const headers = sessionHeaders(full);
    let mux: MuxConnection;
    try {
      mux = await this.#connection(full);
    } catch (err) {
      if (err instanceof TunnelRefusedError && err.status === 404) {
        this.#unsupported = true;
        return openTunnel(full);
      }
      throw err;
    }
    const lowered: Record<string, string> = {};
    for (const [name, value] of Object.entries(headers)) lowered[name.toLowerCase()] = value;
    const timeoutMs = full.answerTimeoutMs ?? ANSWER_TIMEOUT_MS;
    const opening = mux.open({ connection: full.connection, headers: lowered });
    let timer: NodeJS.Timeout | undefined;
    let onAbort: (() => void) | undefined;
    try {
      const { stream, headers: accepted } = await Promise.race([
        opening,
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () =>
              reject(new HoopError(ErrorCode.GATEWAY_UNREACHABLE, `the gateway at ${url.origin} did not answer within ${timeoutMs / 1000} s`, { hint: `is the gateway at ${url.origin} overloaded?` })),
            timeoutMs,
          );
          onAbort = () => reject(full.signal!.reason);
          full.signal?.addEventListener('abort', onAbort, { once: true });
        }),
      ]);
      return openedTunnel(stream, accepted, full.sessionId);
    } catch (err) {
      // A session given up on (timeout, abort) is reset if the gateway accepts it later.
      void opening.then(
        ({ stream }) => stream.destroy(),
        () => undefined,
      );
      if (err instanceof MuxRefusal) throw statusError(err.status, Buffer.from(JSON.stringify(err.body ?? {})), full.connection, url.origin);
      if (err instanceof HoopError || full.signal?.aborted) throw err;
      throw requestError(err as Error, url.origin);
    } finally {
      clearTimeout(timer);
      if (onAbort) full.signal?.removeEventListener('abort', onAbort);
    }
  }

  /** Closes the shared connection (its sessions end). */
  close(): void {
    this.#closed = true;
    void this.#mux?.then(
      (mux) => mux.close(),
      () => undefined,
    );
    this.#mux = undefined;
  }

  #connection(options: OpenTunnelOptions): Promise<MuxConnection> {
    if (this.#closed) return Promise.reject(new HoopError(ErrorCode.INTERNAL, 'the tunnels to the gateway are closed'));
    if (!this.#mux) {
      const url = new URL(apiPath.mux, gatewayBaseUrl(options.gateway));
      const auth = { Authorization: `Bearer ${options.token}`, 'Hoop-Client-Version': options.clientVersion };
      const opening = upgrade(url, MUX_PROTOCOL, auth, { ...options, signal: undefined }).then(({ socket, head }) => {
        const mux = new MuxConnection(socket, head, { peer: 'gateway' });
        mux.once('close', () => {
          if (this.#mux === opening) this.#mux = undefined;
        });
        return mux;
      });
      opening.catch(() => {
        if (this.#mux === opening) this.#mux = undefined;
      });
      this.#mux = opening;
    }
    return this.#mux;
  }
}

/**
 * The HoopError for a gateway's HTTP refusal (`status` and its JSON error body) of a request about
 * `connection`: 401 TOKEN_REJECTED, 403 ACCESS_DENIED, 404 CONNECTION_UNKNOWN, 502/503
 * UPSTREAM_UNAVAILABLE, anything else GATEWAY_PROTOCOL.
 * @see https://www.rfc-editor.org/rfc/rfc9110#name-status-codes
 */
export function statusError(status: number, body: Buffer, connection: string, origin: string): HoopError {
  const parsed = readErrorBody(body.subarray(0, MAX_ERROR_BODY));
  let code: ErrorCode;
  let message: string;
  let hint: string;
  switch (status) {
    case 401:
      code = ErrorCode.TOKEN_REJECTED;
      message = 'the gateway rejected the token';
      hint = 'run `hoop login` to get a new token';
      break;
    case 403:
      code = ErrorCode.ACCESS_DENIED;
      message = `you may not use the connection "${connection}"`;
      hint = 'ask an administrator to grant you access to it in the policy';
      break;
    case 404:
      code = ErrorCode.CONNECTION_UNKNOWN;
      message = `the gateway knows no connection named "${connection}"`;
      hint = 'check the name; `hoop connections` lists the ones you may use';
      break;
    case 502:
    case 503:
      code = ErrorCode.UPSTREAM_UNAVAILABLE;
      message = `the gateway could not reach the server behind "${connection}"`;
      hint = 'try again later; if it persists, ask an administrator to check the connection';
      break;
    case 429:
      code = ErrorCode.TOO_MANY_SESSIONS;
      message = `the gateway refused another session on "${connection}": too many open`;
      hint = 'close sessions you no longer use';
      break;
    case 200:
      code = ErrorCode.GATEWAY_PROTOCOL;
      message = `the gateway at ${origin} answered 200 without switching to ${TUNNEL_PROTOCOL}`;
      hint = 'check that the URL points at a hoop gateway and that no proxy drops the Upgrade header';
      break;
    default:
      code = ErrorCode.GATEWAY_PROTOCOL;
      message = `unexpected answer from the gateway at ${origin}: HTTP ${status}`;
      hint = 'check that the URL points at a hoop gateway compatible with this client';
  }
  const details: { reason?: string; gatewayCode?: string; hint?: string } = { hint: parsed.hint ?? hint };
  if (parsed.reason !== undefined) details.reason = parsed.reason;
  if (parsed.code !== undefined) details.gatewayCode = parsed.code;
  return new TunnelRefusedError(code, parsed.message ?? message, status, details);
}

const UNTRUSTED =
  /^(UNABLE_TO_GET_ISSUER_CERT|UNABLE_TO_GET_ISSUER_CERT_LOCALLY|UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED_CERT_IN_CHAIN|DEPTH_ZERO_SELF_SIGNED_CERT|CERT_UNTRUSTED|CERT_REJECTED|INVALID_CA|CERT_SIGNATURE_FAILURE)$/;
const CERT_INVALID = /^(CERT_HAS_EXPIRED|CERT_NOT_YET_VALID|CERT_REVOKED|INVALID_PURPOSE|ERR_TLS_CERT_ALTNAME_INVALID|HOSTNAME_MISMATCH)$/;

/**
 * The HoopError for a request to the gateway that got no HTTP answer (network, TLS, HTTP parse).
 * @see https://nodejs.org/api/errors.html#common-system-errors
 */
export function requestError(err: Error, origin: string): HoopError {
  const code = (err as NodeJS.ErrnoException).code ?? '';
  const unreachable = (message: string, hint: string, extra: HoopErrorOptions = {}): HoopError => new HoopError(ErrorCode.GATEWAY_UNREACHABLE, message, { hint, cause: err, ...extra });
  if (UNTRUSTED.test(code)) {
    return unreachable(
      `cannot verify the TLS certificate of the gateway at ${origin}: ${describeError(err)}`,
      'if the gateway uses a private CA, pass its certificate with --ca-file <path> or HOOP_CA_FILE',
    );
  }
  if (CERT_INVALID.test(code)) {
    return unreachable(
      `the TLS certificate of the gateway at ${origin} is not valid: ${describeError(err)}`,
      "check the gateway certificate (host names, dates, server auth usage) and this machine's clock; pass its CA with --ca-file <path> or HOOP_CA_FILE if it is private",
    );
  }
  if (code.startsWith('ERR_SSL_') || code === 'EPROTO' || code.startsWith('ERR_TLS_')) {
    return unreachable(`the TLS handshake with the gateway at ${origin} failed: ${describeError(err)}`, `check that ${origin} serves HTTPS`);
  }
  if (code.startsWith('HPE_')) {
    return new HoopError(ErrorCode.GATEWAY_PROTOCOL, `the gateway at ${origin} answered something that is not HTTP/1.1: ${describeError(err)}`, {
      hint: 'check that the URL points at a hoop gateway',
      cause: err,
    });
  }
  return unreachable(`cannot reach the gateway at ${origin}: ${describeError(err)}`, `is the gateway running at ${origin}?`);
}
