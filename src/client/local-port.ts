/**
 * One connection of the gateway served on a local PostgreSQL port for as long as a command runs:
 * `hoop connect` prints how to reach it, `hoop run` puts it in its command's environment. Each
 * client of the port gets its own authenticated session, a stream of the port's one hoop-mux/1
 * connection to the gateway. Local clients prove the per-run password (SCRAM), and on TCP the
 * port speaks TLS with a certificate minted for this run (the `sslrootcert` of `sslmode=verify-full`).
 *
 * @see docs/internals.md (§1)
 */
import type { Socket } from 'node:net';
import { randomBytes } from 'node:crypto';
import { createSecureContext } from 'node:tls';
import { cancelStatement, getConnection } from '../api-client/connections.js';
import type { ConnectionInfo } from '../api/answers.js';
import type { ResolvedTokenProvider } from '../auth/token-provider.js';
import { ErrorCode, HoopError } from '../errors.js';
import type { CliIo } from '../io.js';
import type { Logger } from '../log.js';
import { LocalPostgresListener, type ListenerEvent } from '../postgres/local/listener.js';
import { writeRootCert } from '../postgres/local/pgpass.js';
import { removeRunFile, runtimeDir } from '../runtime-files.js';
import { makeScramSecret } from '../postgres/wire/scram.js';
import { TunnelTokenRenewal } from '../auth/token-renewal.js';
import { type ClientRecordTerms, TunnelMux, type OpenedTunnel } from '../tunnel/transport.js';
import { VERSION } from '../version.js';
import { mintCertificate } from '../x509.js';
import { EarlyChecks, type LocalPolicyOptions } from './connect-policy.js';
import { type CommandRecords, recordStopped } from './client-records.js';
import type { Refusal } from '../postgres/pipeline/statement-gate.js';
import { reviewStatusLine } from '../ui/review-lines.js';

export interface LocalPortOptions {
  io: CliIo;
  /** Whose tunnels: the person's own (`hoop connect`), or a run's credential (`hoop run`). */
  provider: ResolvedTokenProvider;
  /** The connection, as `hoop connections` lists it. */
  name: string;
  /** What the gateway said of it, when the caller asked already. */
  info?: ConnectionInfo;
  /** Where the CLI's policy bundle comes from, if it judges statements first. */
  policy: LocalPolicyOptions;
  /** A TCP port on 127.0.0.1 (default: any free one). */
  port?: number;
  /** A directory to listen in on a unix socket instead of TCP. */
  socket?: string;
  /** The run the port serves (its credential is the provider's): named in this CLI's record of each session. */
  runId?: string;
  /** Where the port's certificate file goes (default: the runtime directory). */
  filesDir?: string;
  /** Said at the start of every session (a `context` control message): recorded by the gateway as the client's claim. */
  context?: Record<string, string>;
  log: Logger;
  /** Tells the user something (a line on stderr). */
  say: (line: string) => void;
  /** The command's own records: each session the port relays is recorded by the CLI too, when the gateway takes it. */
  records?: CommandRecords;
  /** Told each session this port records (the gateway's session id). */
  onSession?: (id: string) => void;
}

/** A local port serving one connection. */
export interface LocalPort {
  connection: string;
  /** 127.0.0.1, or the socket's directory. */
  host: string;
  port: number;
  /** Set when the port is a unix socket (no TLS: libpq does not use it there). */
  socketPath?: string;
  user: string;
  database: string;
  /** The per-run password local clients must give. */
  password: string;
  /** The certificate of the port's TLS, as a file (absent on a unix socket). */
  sslrootcert?: string;
  /** Serves a client that reached the port another way than its listener (a contained run's bridge). */
  accept(socket: Socket): void;
  /** Stops listening, ends the tunnels, removes the files it wrote. */
  close(): Promise<void>;
}

/** Where a PostgreSQL client signs in: a local port's, or the gateway's own with a direct credential (./connect-direct.ts). */
export type PgEndpoint = Pick<LocalPort, 'connection' | 'host' | 'port' | 'socketPath' | 'user' | 'database' | 'password' | 'sslrootcert'>;

/** The user name local clients give (the gateway connects as the connection's own user). */
const LOCAL_USER = 'hoop';

/** Opens a local port for connection `o.name`; see the module documentation. */
export async function openLocalPort(o: LocalPortOptions): Promise<LocalPort> {
  const { provider, name, log, say } = o;
  const records = o.records?.keeps ? o.records : undefined;
  const { gateway, ca } = provider;
  const info = o.info ?? (await getConnection({ gateway, ca }, (await provider.current()).token, name));
  if (info.type !== 'postgres') throw new HoopError(ErrorCode.USAGE, `"${name}" is a ${info.type} connection; a local port serves postgres connections`);

  // Early checks: the same gate as the gateway's, on the CLI's copy of the policy.
  const early = await EarlyChecks.start({ io: o.io, options: o.policy, log, endpoint: { gateway, ca }, token: async () => (await provider.current()).token, connection: name, say });
  const password = randomBytes(24).toString('base64url');
  const renewal = new TunnelTokenRenewal(provider, log, say);
  // The port's sessions share one connection to the gateway (each still authenticated on its own).
  const tunnels = new TunnelMux({ gateway, clientVersion: VERSION, ...(ca ? { ca } : {}) });
  const onEvent = (e: ListenerEvent): void => {
    if (e.kind === 'tunnel-failed') say(`${e.error.message}${e.error.hint ? ` (${e.error.hint})` : ''}`);
    else if (e.kind === 'auth-failed') say('a local client gave the wrong password and was refused');
    else if (e.kind === 'protocol-error') say(`a local client broke the protocol and was disconnected: ${e.message}`);
    else if (e.kind === 'client-closed' && e.message) say(`session ${e.session} closed: ${e.message}`);
    else if (e.kind === 'review') say(`session ${e.session}: ${reviewStatusLine(e.review)}`);
    else if (e.kind === 'client-connected') log.info('client.connected', { session: e.session, user: e.user, database: e.database });
  };
  const recordFailed = (session: string, err: unknown): void => recordStopped(say, session, err);
  // A certificate for this run's local port, its own root: clients that insist on TLS verify it.
  const certificate = mintCertificate({ commonName: `hoop connect ${name}`, altNames: ['127.0.0.1', 'localhost'], ca: true, validDays: 30 });
  const listener = new LocalPostgresListener({
    secret: makeScramSecret(password),
    tls: createSecureContext({ cert: certificate.cert, key: certificate.key, minVersion: 'TLSv1.2' }),
    ...(o.port !== undefined ? { port: o.port } : {}),
    ...(o.socket ? { socketDir: o.socket, socketPort: o.port || 5432 } : {}),
    log,
    onEvent,
    openTunnel: async (sessionId) => {
      const { token } = await provider.current();
      const opened = await tunnels.open({ connection: name, token, sessionId, via: 'connect' });
      renewal.track(opened.channel, token);
      if (o.context) opened.channel.sendControl({ type: 'context', fields: o.context });
      await early?.admit(opened);
      return opened;
    },
    cancel: async (key) => cancelStatement({ gateway, ...(ca ? { ca } : {}) }, (await provider.current()).token, name, key),
    ...(early ? { statementGate: (session: string, tunnel: OpenedTunnel, onRefusal: (r: Refusal) => void) => early.gate(session, tunnel, onRefusal) } : {}),
    ...(records
      ? {
          record: async (session: { id: string; user: string; database: string; terms: ClientRecordTerms }) => {
            try {
              const record = await records.session(
                session.id,
                session.terms,
                {
                  connection: name,
                  gateway: provider.origin,
                  ...(records.subject ? { subject: records.subject } : {}),
                  localUser: session.user,
                  database: session.database,
                  ...(o.runId ? { runId: o.runId } : {}),
                },
                (err) => recordFailed(session.id, err),
              );
              o.onSession?.(session.id);
              return record;
            } catch (err) {
              recordFailed(session.id, err);
              return undefined;
            }
          },
        }
      : {}),
  });
  let sslrootcert: string | undefined;
  const close = async (): Promise<void> => {
    renewal.close();
    await listener.close();
    tunnels.close();
    if (sslrootcert) await removeRunFile(sslrootcert);
  };
  try {
    const address = await listener.listen();
    // TLS on TCP (libpq does not use it over a unix socket): clients verify the per-run certificate.
    if (!address.socketPath) sslrootcert = await writeRootCert({ dir: o.filesDir ?? (await runtimeDir(o.io.env)), name, port: address.port, pem: certificate.cert });
    return {
      connection: name,
      host: address.host,
      port: address.port,
      ...(address.socketPath ? { socketPath: address.socketPath } : {}),
      user: LOCAL_USER,
      database: info.database ?? '',
      password,
      ...(sslrootcert ? { sslrootcert } : {}),
      accept: (socket) => listener.accept(socket),
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}

/**
 * A libpq connection URI for `port` (RFC 3986; libpq's `host` parameter for a socket directory).
 * With `password`, it is in the URI, for drivers that read no PGPASSFILE.
 *
 * @see https://www.postgresql.org/docs/current/libpq-connect.html#LIBPQ-CONNSTRING-URIS
 */
export function localUri(port: PgEndpoint, password?: string): string {
  const user = password === undefined ? port.user : `${port.user}:${encodeURIComponent(password)}`;
  const database = encodeURIComponent(port.database);
  return port.socketPath
    ? `postgresql://${user}@/${database}?host=${encodeURIComponent(port.host)}&port=${port.port}`
    : `postgresql://${user}@${port.host.includes(':') ? `[${port.host}]` : port.host}:${port.port}/${database}?sslmode=verify-full&sslrootcert=${encodeURIComponent(port.sslrootcert!)}`;
}
