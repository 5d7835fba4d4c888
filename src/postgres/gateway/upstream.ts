/**
 * The gateway's connection to the real PostgreSQL server: TCP, TLS negotiated the way libpq's
 * `sslmode` does it, StartupMessage, authentication with credentials only the gateway holds
 * (SCRAM-SHA-256, MD5, cleartext over TLS), then the server's parameters and cancel key, up to
 * the first ReadyForQuery. The socket is then handed, paused, to the relay.
 *
 * @see https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-START-UP
 * @see https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-SSL
 * @see https://www.postgresql.org/docs/current/libpq-ssl.html#LIBPQ-SSL-PROTECTION
 */
import * as net from 'node:net';
import * as tls from 'node:tls';
import { ErrorCode, HoopError, describeError, type HoopErrorOptions } from '../../errors.js';
import { cancelRequest, passwordMessage, saslInitialResponse, saslResponse, sslRequest, startupMessage, SqlState } from '../wire/messages.js';
import { PgProtocolError } from '../wire/protocol-error.js';
import { MessageReader, parseAuthentication, parseBackendKeyData, parseErrorFields, parseParameterStatus, type PgMessage } from '../wire/reader.js';
import { ScramAuthError, ScramClient, SCRAM_SHA_256, md5Password } from '../wire/scram.js';
import { Backend, EncryptionAnswer } from '../wire/codes.js';

/**
 * How the gateway reaches one upstream server.
 *
 * @see https://www.postgresql.org/docs/current/libpq-ssl.html#LIBPQ-SSL-SSLMODE-STATEMENTS
 */
export interface UpstreamPostgresOptions {
  host: string;
  port: number;
  user: string;
  database: string;
  password: string;
  /**
   * TLS as libpq's sslmode: `disable` sends no SSLRequest; `prefer` falls back to plain text when
   * the server declines; `require` insists on TLS and checks the chain only when `ca` is given;
   * `verify-full` checks the chain against `ca` (or the system roots) and the host name
   * (`serverName ?? host`).
   */
  tls: { mode: 'disable' | 'prefer' | 'require' | 'verify-full'; ca?: Buffer; serverName?: string };
  /** Startup parameters forwarded from the client (already filtered). */
  params: Array<[string, string]>;
  /** Deadline for connect, TLS and authentication together, in ms; default 10 000. */
  timeoutMs?: number;
  /**
   * Send a cleartext password to a server whose identity TLS did not verify (refused by default:
   * a cleartext password goes only over TLS whose certificate chain was checked, `verify-full`
   * or `require` with a `ca`, so that a server that is not the database cannot collect it).
   */
  allowCleartextWithoutTls?: boolean;
  /** Aborts the attempt. */
  signal?: AbortSignal;
}

/**
 * An authenticated upstream connection, ready for the relay.
 *
 * @see https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-START-UP
 */
export interface UpstreamPostgres {
  /**
   * Paused, with no listeners of ours except one that ignores 'error' (so an error before the
   * relay attaches its own cannot crash the process): the relay must listen for 'error' and 'close'.
   */
  socket: net.Socket | tls.TLSSocket;
  /** ParameterStatus values the server sent during startup, in order. */
  serverParams: Array<[string, string]>;
  /** The server's cancel key (zeros when the server sent none). */
  backendKey: { processId: number; secretKey: number };
  /** Whether the connection is encrypted. */
  tls: boolean;
  /** Bytes read after the first ReadyForQuery (normally empty): the relay sends them on first. */
  leftover: Buffer;
}

/**
 * A failure to reach or authenticate to the upstream server: code `HOOP_UPSTREAM_AUTH_FAILED`
 * when the server rejected the credentials, else `HOOP_UPSTREAM_UNAVAILABLE`. `sqlstate` is the
 * server's when it sent an ErrorResponse.
 *
 * @see https://www.postgresql.org/docs/current/errcodes-appendix.html
 */
export class UpstreamPostgresError extends HoopError {
  /** The SQLSTATE of the server's ErrorResponse, if there was one. */
  readonly sqlstate: string | undefined;

  constructor(code: ErrorCode, message: string, options: HoopErrorOptions & { sqlstate?: string } = {}) {
    const { sqlstate, ...rest } = options;
    super(code, message, rest);
    this.sqlstate = sqlstate;
  }
}

const DEFAULT_TIMEOUT_MS = 10_000;
const KEEPALIVE_DELAY_MS = 30_000;
const authNames: Record<number, string> = { 2: 'Kerberos V5', 6: 'SCM credentials', 7: 'GSSAPI', 9: 'SSPI' };

type Phase = 'connect' | 'tls' | 'startup' | 'cancel';

const unavailable = (message: string, options: HoopErrorOptions & { sqlstate?: string } = {}): UpstreamPostgresError => new UpstreamPostgresError(ErrorCode.UPSTREAM_UNAVAILABLE, message, options);

/**
 * One upstream socket under one deadline: collects received bytes, wakes the async handshake when
 * something happens, and turns every failure into one {@link UpstreamPostgresError}.
 */
class Link {
  socket: net.Socket | tls.TLSSocket;
  encrypted = false;
  readonly reader = new MessageReader({ side: 'backend' });
  /** Raw bytes before typed messages start (the one-byte SSLRequest answer). */
  raw: Buffer[] = [];
  rawLength = 0;
  typed = false;
  phase: Phase = 'connect';
  closed = false;
  private failure: Error | undefined;
  private wake: (() => void) | undefined;
  private readonly timer: NodeJS.Timeout;
  /** `upstream host:port`, for messages. */
  readonly where: string;
  private readonly signal: AbortSignal | undefined;

  private readonly onData = (chunk: Buffer): void => {
    if (this.typed) this.reader.push(chunk);
    else {
      this.raw.push(chunk);
      this.rawLength += chunk.length;
    }
    this.notify();
  };
  private readonly onError = (err: Error): void => this.fail(this.describe(err));
  private readonly onClose = (): void => {
    this.closed = true;
    if (this.phase === 'cancel') this.notify();
    else this.fail(unavailable(`${this.where} closed the connection during ${this.phaseName()}`, { hint: hintUnavailable(this.where) }));
  };
  private readonly onAbort = (): void => {
    this.fail(unavailable(`the connection attempt to ${this.where} was aborted`, { cause: this.signal?.reason }));
  };

  constructor(o: { host: string; port: number; timeoutMs?: number; signal?: AbortSignal }) {
    this.where = `upstream ${o.host.includes(':') ? `[${o.host}]` : o.host}:${o.port}`;
    this.signal = o.signal;
    const ms = o.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.timer = setTimeout(() => {
      this.fail(unavailable(`${this.where} did not complete ${this.phaseName()} within ${ms} ms`, { hint: hintUnavailable(this.where) }));
    }, ms);
    this.socket = net.connect({ host: o.host, port: o.port });
    this.socket.setNoDelay(true);
    this.socket.setKeepAlive(true, KEEPALIVE_DELAY_MS);
    this.listen(this.socket);
    this.socket.once('connect', () => this.notify());
    if (o.signal?.aborted) this.onAbort();
    else o.signal?.addEventListener('abort', this.onAbort, { once: true });
  }

  private phaseName(): string {
    return { connect: 'the TCP connection', tls: 'the TLS handshake', startup: 'the startup and authentication', cancel: 'the cancel request' }[this.phase];
  }

  private describe(err: Error): UpstreamPostgresError {
    if (this.phase === 'tls') {
      return unavailable(`TLS handshake with ${this.where} failed: ${describeError(err)}`, {
        cause: err,
        hint: "Check the connection's tls settings (CA certificate, server name) against the database server's certificate.",
      });
    }
    const verb = this.phase === 'connect' ? 'could not connect to' : 'lost the connection to';
    return unavailable(`${verb} ${this.where}: ${describeError(err)}`, { cause: err, hint: hintUnavailable(this.where) });
  }

  private listen(s: net.Socket): void {
    s.on('data', this.onData);
    s.on('error', this.onError);
    s.on('close', this.onClose);
  }

  private unlisten(s: net.Socket): void {
    s.off('data', this.onData);
    s.off('error', this.onError);
    s.off('close', this.onClose);
  }

  private notify(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  /** Records the first failure, tears the connection down and wakes the handshake. */
  fail(err: Error): void {
    if (this.failure) return;
    this.failure = err;
    this.cleanup();
    this.socket.destroy();
    this.notify();
  }

  /** Throws the failure, if any. */
  check(): void {
    if (this.failure) throw this.failure;
  }

  /** Waits until `ready()` holds. */
  async until(ready: () => boolean): Promise<void> {
    for (;;) {
      this.check();
      if (ready()) return;
      await new Promise<void>((resolve) => {
        this.wake = resolve;
      });
    }
  }

  write(b: Buffer): void {
    this.check();
    this.socket.write(b);
  }

  /** Wraps the TCP socket in TLS and waits for the handshake. */
  async startTls(options: tls.ConnectionOptions): Promise<void> {
    this.phase = 'tls';
    const tcp = this.socket as net.Socket;
    this.unlisten(tcp);
    tcp.on('error', ignore);
    let secure = false;
    const t = tls.connect({ ...options, socket: tcp });
    this.socket = t;
    this.listen(t);
    t.once('secureConnect', () => {
      secure = true;
      this.notify();
    });
    await this.until(() => secure);
    this.encrypted = true;
  }

  private cleanup(): void {
    clearTimeout(this.timer);
    this.signal?.removeEventListener('abort', this.onAbort);
  }

  /** Hands the socket over: our listeners off, paused, the deadline cleared. */
  release(): net.Socket | tls.TLSSocket {
    this.check();
    this.socket.pause();
    this.cleanup();
    this.unlisten(this.socket);
    this.socket.on('error', ignore);
    return this.socket;
  }

  /** Switches from raw bytes to typed messages. */
  startMessages(): void {
    this.typed = true;
    for (const b of this.raw) this.reader.push(b);
    this.raw = [];
    this.rawLength = 0;
  }

  /** The next backend message. @throws PgProtocolError, UpstreamPostgresError */
  async message(): Promise<PgMessage> {
    const box: { m: PgMessage | null } = { m: null };
    await this.until(() => (box.m = this.reader.next()) !== null);
    return box.m!;
  }
}

function ignore(): void {}

/** Whether TLS in this mode checks the server's certificate chain (`verify-full`, or `require` with a CA). */
function verifiesServer(tls: UpstreamPostgresOptions['tls']): boolean {
  return tls.mode === 'verify-full' || (tls.mode === 'require' && tls.ca !== undefined);
}

function hintUnavailable(where: string): string {
  return `Check that the database at ${where.replace(/^upstream /, '')} is running and reachable from the gateway.`;
}

function isIp(host: string): boolean {
  return net.isIP(host) !== 0;
}

/** TCP connect, then the SSLRequest exchange and TLS handshake the mode asks for. */
async function open(o: Pick<UpstreamPostgresOptions, 'host' | 'port' | 'tls' | 'timeoutMs' | 'signal'>): Promise<Link> {
  const link = new Link(o);
  try {
    await link.until(() => !(link.socket as net.Socket).connecting);
    const { mode } = o.tls;
    if (mode !== 'disable') {
      link.phase = 'tls';
      link.write(sslRequest());
      await link.until(() => link.rawLength >= 1);
      const answer = Buffer.concat(link.raw);
      if (answer.length > 1) {
        // CVE-2021-23222: bytes after the answer were not protected by TLS; a man in the middle may have injected them.
        throw unavailable(`${link.where} sent unencrypted data after its answer to SSLRequest`, {
          hint: 'Something between the gateway and the database may be tampering with the connection.',
        });
      }
      link.raw = [];
      link.rawLength = 0;
      if (answer[0] === EncryptionAnswer.ACCEPT) {
        const serverName = o.tls.serverName ?? o.host;
        const verifyChain = mode === 'verify-full' || o.tls.ca !== undefined;
        await link.startTls({
          ...(isIp(serverName) ? {} : { servername: serverName }),
          ...(o.tls.ca ? { ca: o.tls.ca } : {}),
          rejectUnauthorized: verifyChain,
          checkServerIdentity: (_host, cert) => (mode === 'verify-full' ? tls.checkServerIdentity(serverName, cert) : undefined),
          ALPNProtocols: ['postgresql'],
          minVersion: 'TLSv1.2',
        });
      } else if (answer[0] === EncryptionAnswer.DECLINE) {
        if (mode !== 'prefer') {
          throw unavailable(`${link.where} does not support TLS, but the connection's tls mode is ${mode}`, {
            hint: "Turn on ssl in the database server, or set the connection's tls mode to prefer or disable.",
          });
        }
      } else if (answer[0] === Backend.ERROR) {
        throw unavailable(`${link.where} answered SSLRequest with an error`, { hint: hintUnavailable(link.where) });
      } else {
        throw unavailable(`${link.where} sent an invalid answer to SSLRequest`, { hint: 'Check that the upstream port is a PostgreSQL server.' });
      }
    }
    link.startMessages();
    return link;
  } catch (err) {
    link.fail(err as Error);
    throw err;
  }
}

/**
 * Opens an authenticated connection to the upstream PostgreSQL server and reads its startup
 * answer up to the first ReadyForQuery.
 *
 * @throws UpstreamPostgresError `HOOP_UPSTREAM_AUTH_FAILED` when the server rejects the
 *   credentials (28P01, 28000), else `HOOP_UPSTREAM_UNAVAILABLE` (refused, timeout, TLS, protocol,
 *   any other ErrorResponse). Never includes the password.
 * @see https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-START-UP
 */
export async function connectUpstreamPostgres(o: UpstreamPostgresOptions): Promise<UpstreamPostgres> {
  const link = await open(o);
  try {
    link.phase = 'startup';
    const params: Array<[string, string]> = [['user', o.user], ['database', o.database], ...o.params.filter(([k]) => !['user', 'database'].includes(k))];
    link.write(startupMessage(params));
    const serverParams: Array<[string, string]> = [];
    let backendKey = { processId: 0, secretKey: 0 };
    let scram: ScramClient | undefined;
    let scramStep: 'none' | 'initial' | 'continue' | 'final' = 'none';
    let authenticated = false;

    for (;;) {
      const msg = await link.message();
      const type = msg.type;
      if (type === Backend.AUTHENTICATION) {
        if (authenticated) throw new PgProtocolError('authentication request after AuthenticationOk');
        const auth = parseAuthentication(msg.body);
        switch (auth.code) {
          case 0:
            if (scramStep !== 'none' && scramStep !== 'final') {
              throw unavailable(`${link.where} said AuthenticationOk before finishing SCRAM authentication`, {
                hint: 'Something between the gateway and the database may be impersonating the server.',
              });
            }
            authenticated = true;
            break;
          case 3:
            if (!o.allowCleartextWithoutTls && !(link.encrypted && verifiesServer(o.tls))) {
              const over = link.encrypted ? 'TLS that did not verify its certificate' : 'an unencrypted connection';
              throw unavailable(`${link.where} asks for a cleartext password over ${over}; hoop refuses to send it`, {
                hint: 'Use tls mode verify-full (or require with a ca) for this connection, switch the server to scram-sha-256, or set allowCleartextWithoutTls.',
              });
            }
            link.write(passwordMessage(o.password));
            break;
          case 5:
            link.write(passwordMessage(md5Password(o.user, o.password, auth.salt!)));
            break;
          case 10: {
            if (scramStep !== 'none') throw new PgProtocolError('a second AuthenticationSASL');
            const offered = auth.mechanisms ?? [];
            if (!offered.includes(SCRAM_SHA_256)) {
              throw unavailable(`${link.where} offers no SASL mechanism hoop supports (offered: ${offered.join(', ') || 'none'})`, {
                hint: `Configure the server to offer ${SCRAM_SHA_256} for this user.`,
              });
            }
            scram = new ScramClient(o.password);
            link.write(saslInitialResponse(SCRAM_SHA_256, scram.clientFirstMessage()));
            scramStep = 'initial';
            break;
          }
          case 11:
            if (!scram || scramStep !== 'initial') throw new PgProtocolError('unexpected AuthenticationSASLContinue');
            scramStep = 'continue';
            link.write(saslResponse(await scram.handleServerFirstAsync(auth.data!)));
            break;
          case 12:
            if (!scram || scramStep !== 'continue') throw new PgProtocolError('unexpected AuthenticationSASLFinal');
            scram.verifyServerFinal(auth.data!);
            scramStep = 'final';
            break;
          default:
            throw unavailable(`${link.where} asks for ${authNames[auth.code] ?? `authentication method ${auth.code}`}, which hoop does not support`, {
              hint: 'Configure the server to use scram-sha-256 (or md5, or password over TLS) for this user.',
            });
        }
      } else if (type === Backend.ERROR) {
        const e = parseErrorFields(msg.body);
        const authFailure = e.code === SqlState.INVALID_PASSWORD || e.code === SqlState.INVALID_AUTHORIZATION;
        throw new UpstreamPostgresError(authFailure ? ErrorCode.UPSTREAM_AUTH_FAILED : ErrorCode.UPSTREAM_UNAVAILABLE, `${link.where} said "${e.message}" (SQLSTATE ${e.code})`, {
          sqlstate: e.code,
          hint: authFailure ? `Check the user and password the gateway has for this connection (user "${o.user}").` : hintUnavailable(link.where),
        });
      } else if (type === Backend.NOTICE || type === Backend.NEGOTIATE_PROTOCOL_VERSION) {
        // NoticeResponse, or NegotiateProtocolVersion (nothing to negotiate: 3.0 without options).
      } else if (!authenticated) {
        throw new PgProtocolError(`unexpected message '${type}' during authentication`);
      } else if (type === Backend.PARAMETER_STATUS) {
        serverParams.push(parseParameterStatus(msg.body));
      } else if (type === Backend.BACKEND_KEY_DATA) {
        backendKey = parseBackendKeyData(msg.body);
      } else if (type === Backend.READY_FOR_QUERY) {
        const leftover = link.reader.takeBuffered();
        const encrypted = link.encrypted;
        const socket = link.release();
        return { socket, serverParams, backendKey, tls: encrypted, leftover };
      } else {
        throw new PgProtocolError(`unexpected message '${type}' during startup`);
      }
    }
  } catch (err) {
    const e = toUpstreamError(err, link.where);
    link.fail(e);
    throw e;
  }
}

function toUpstreamError(err: unknown, where: string): Error {
  if (err instanceof UpstreamPostgresError) return err;
  if (err instanceof ScramAuthError) {
    return unavailable(`${where} could not prove it knows the password: ${err.message}`, {
      cause: err,
      hint: 'Something between the gateway and the database may be impersonating the server.',
    });
  }
  if (err instanceof PgProtocolError) {
    return unavailable(`${where} broke the protocol: ${err.message}`, { cause: err, hint: 'Check that the upstream port is a PostgreSQL server.' });
  }
  if (err instanceof HoopError) return err;
  return unavailable(`${where}: ${describeError(err)}`, { cause: err });
}

/**
 * Asks the upstream server to cancel the query running on the backend `key` names: a new
 * connection (with the same TLS negotiation), a CancelRequest, then waits for the server to close
 * it. The server never answers; whether anything was cancelled shows on the original connection.
 *
 * @throws UpstreamPostgresError `HOOP_UPSTREAM_UNAVAILABLE` when the server cannot be reached.
 * @see https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-CANCELING-REQUESTS
 */
export async function cancelUpstreamPostgres(o: Pick<UpstreamPostgresOptions, 'host' | 'port' | 'tls' | 'timeoutMs'>, key: { processId: number; secretKey: number }): Promise<void> {
  const link = await open(o);
  try {
    link.phase = 'cancel';
    link.write(cancelRequest(key.processId, key.secretKey));
    await link.until(() => link.closed);
    link.release();
  } catch (err) {
    const e = toUpstreamError(err, link.where);
    link.fail(e);
    throw e;
  }
}
