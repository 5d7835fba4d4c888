/**
 * `hoop connect` of a MySQL or MariaDB connection: a local port on 127.0.0.1 (TLS offered with a
 * certificate minted for this run) that forwards every client through its own authenticated,
 * audited tunnel to the gateway, and an option file holding the per-run password, the port and
 * the certificate, for `mysql --defaults-extra-file=FILE` and any client that reads option files.
 *
 * @see https://dev.mysql.com/doc/refman/8.0/en/option-files.html
 * @see https://mariadb.com/kb/en/configuring-mariadb-with-option-files/
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { createSecureContext } from 'node:tls';
import type { ConnectionInfo } from '../api/answers.js';
import type { ResolvedTokenProvider } from '../auth/token-provider.js';
import { TunnelTokenRenewal } from '../auth/token-renewal.js';
import { CommandRecords, mysqlRecordHook } from './client-records.js';
import type { ConnectMysqlJson } from '../connect-json.js';
import { whenAborted, type CliIo } from '../io.js';
import type { Logger } from '../log.js';
import { reviewStatusLine } from '../ui/review-lines.js';
import { LocalMysqlListener, type MysqlListenerEvent } from '../mysql/local/listener.js';
import { writeRootCert } from '../postgres/local/pgpass.js';
import { removeRunFile, runtimeDir, writeRunFile } from '../runtime-files.js';
import { shellQuote } from '../text-format.js';
import { TunnelMux } from '../tunnel/transport.js';
import { VERSION } from '../version.js';
import { mintCertificate } from '../x509.js';

/** The user name local clients give (the gateway signs in as the connection's own user). */
const LOCAL_USER = 'hoop';

/**
 * The option file's text: `[client]` for what every client reads, `[client-mariadb]` for what
 * only MariaDB's read (MySQL's client refuses options it does not know; given `ssl-ca` alone it
 * verifies the certificate against it).
 */
export function mysqlOptionFile(o: { host: string; port: number; password: string; database: string; sslCa: string; user?: string; about?: string }): string {
  const quote = (v: string): string => `"${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
  return [
    `# hoop connect: ${o.about ?? "this run's local port"}; removed when it stops`,
    '[client]',
    `user=${o.user ?? LOCAL_USER}`,
    `password=${quote(o.password)}`,
    `host=${o.host}`,
    `port=${o.port}`,
    `ssl-ca=${quote(o.sslCa)}`,
    '[client-mariadb]',
    'ssl-verify-server-cert',
    '[mysql]',
    `database=${quote(o.database)}`,
    '',
  ].join('\n');
}

/** What opens a local MySQL port: whose tunnels, for which connection, where its files go. */
export interface MysqlPortOptions {
  /** Whose tunnels: the person's own (`hoop connect`), or a run's credential (`hoop run`). */
  provider: ResolvedTokenProvider;
  name: string;
  info: ConnectionInfo;
  /** A TCP port on 127.0.0.1 (default: any free one). */
  port?: number;
  /** Where the certificate and option file go (default: the runtime directory). */
  filesDir?: string;
  env: NodeJS.ProcessEnv;
  /** Said at the start of every session (a `context` control message): recorded by the gateway as the client's claim. */
  context?: Record<string, string>;
  log: Logger;
  say: (line: string) => void;
  /** Told each session the port relays (the gateway's session id). */
  onSession?: (id: string) => void;
  /** The command's own records: each session is recorded by the CLI too, when the gateway takes it. */
  records?: CommandRecords;
  /** The run the port serves: named in this CLI's record of each session. */
  runId?: string;
}

/** A local port serving one MySQL connection, and the files a client signs in with (what `hoop connect --json` prints). */
export interface MysqlPort extends ConnectMysqlJson {
  /** Serves a client that reached the port another way than its listener (a contained run's bridge). */
  accept(socket: Socket): void;
  /** Stops listening, ends the tunnels, removes the files it wrote. */
  close(): Promise<void>;
}

/** Where a MySQL client signs in: a local port's address, user, database, password and option file. */
export type MysqlEndpoint = Pick<MysqlPort, 'connection' | 'host' | 'port' | 'user' | 'database' | 'password' | 'optionFile'>;

/** `mysql://USER[:PASSWORD]@HOST:PORT/DB`: the URL drivers (mysql2, Prisma, SQLAlchemy's) take; with `password`, it is in it. */
export function mysqlUri(p: Pick<MysqlEndpoint, 'host' | 'port' | 'user' | 'database'>, password?: string): string {
  const user = password === undefined ? p.user : `${p.user}:${encodeURIComponent(password)}`;
  return `mysql://${user}@${p.host}:${p.port}/${encodeURIComponent(p.database)}`;
}

/** A directory holding `my.cnf` (a copy of `optionFile`), for `MYSQL_HOME`: MariaDB's clients read it with no option given. */
export async function writeMysqlHome(dir: string, optionFile: string): Promise<string> {
  const home = join(dir, 'mysql-home');
  await mkdir(home, { mode: 0o700 });
  await writeFile(join(home, 'my.cnf'), await readFile(optionFile), { mode: 0o600, flag: 'wx' });
  return home;
}

/** Opens a local port for MySQL connection `o.name`; see the module documentation. */
export async function openMysqlPort(o: MysqlPortOptions): Promise<MysqlPort> {
  const { provider, name, log, say } = o;
  const { gateway, ca } = provider;
  const password = randomBytes(24).toString('base64url');
  const renewal = new TunnelTokenRenewal(provider, log, say);
  const tunnels = new TunnelMux({ gateway, clientVersion: VERSION, ...(ca ? { ca } : {}) });
  const certificate = mintCertificate({ commonName: `hoop connect ${name}`, altNames: ['127.0.0.1', 'localhost'], ca: true, validDays: 30 });
  const onEvent = (e: MysqlListenerEvent): void => {
    if (e.kind === 'tunnel-failed') say(`${e.error.message}${e.error.hint ? ` (${e.error.hint})` : ''}`);
    else if (e.kind === 'auth-failed') say('a local client gave the wrong password and was refused');
    else if (e.kind === 'protocol-error') say(`a local client broke the protocol and was disconnected: ${e.message}`);
    else if (e.kind === 'review') say(`session ${e.session}: ${reviewStatusLine(e.review)}`);
    else if (e.kind === 'client-closed') say(`session ${e.session} closed: ${e.message}`);
    else {
      log.info('client.connected', { session: e.session, user: e.user, database: e.database });
      o.onSession?.(e.session);
    }
  };
  const record = mysqlRecordHook(o.records, { connection: name, gateway: provider.origin, say, ...(o.runId ? { runId: o.runId } : {}) });
  const listener = new LocalMysqlListener({
    password,
    ...(record ? { record } : {}),
    tls: createSecureContext({ cert: certificate.cert, key: certificate.key, minVersion: 'TLSv1.2' }),
    ...(o.port !== undefined ? { port: o.port } : {}),
    log,
    onEvent,
    openTunnel: async (sessionId) => {
      const { token } = await provider.current();
      const opened = await tunnels.open({ connection: name, token, sessionId, via: 'connect' });
      renewal.track(opened.channel, token);
      if (o.context) opened.channel.sendControl({ type: 'context', fields: o.context });
      return opened;
    },
  });
  const files: string[] = [];
  const close = async (): Promise<void> => {
    renewal.close();
    await listener.close();
    tunnels.close();
    for (const f of files) await removeRunFile(f);
  };
  try {
    const { host, port } = await listener.listen();
    const dir = o.filesDir ?? (await runtimeDir(o.env));
    const sslCa = await writeRootCert({ dir, name, port, pem: certificate.cert });
    files.push(sslCa);
    const database = o.info.database ?? '';
    const optionFile = await writeRunFile(dir, `${name}-${port}`, '.my.cnf', mysqlOptionFile({ host, port, password, database, sslCa }));
    files.push(optionFile);
    const uri = mysqlUri({ host, port, user: LOCAL_USER, database });
    return { connection: name, host, port, user: LOCAL_USER, database, password, sslCa, optionFile, uri, accept: (socket) => listener.accept(socket), close };
  } catch (err) {
    await close();
    throw err;
  }
}

/** `hoop connect` of a MySQL connection: the local port, its option file, how to connect; until interrupted. */
export async function serveMysql(
  io: CliIo,
  opts: { port?: number; json?: boolean },
  provider: ResolvedTokenProvider,
  name: string,
  info: ConnectionInfo,
  log: Logger,
  say: (line: string) => void,
): Promise<void> {
  const records = new CommandRecords(io, provider, log);
  records.resume();
  const local = await openMysqlPort({ provider, name, info, env: io.env, log, say, records, ...(opts.port !== undefined ? { port: opts.port } : {}) }).catch(async (err: unknown) => {
    await records.finish(say);
    throw err;
  });
  try {
    const { host, port, optionFile, sslCa, uri } = local;
    if (opts.json) {
      const { accept: _accept, close: _close, ...details } = local;
      io.stdout.write(`${JSON.stringify(details satisfies ConnectMysqlJson)}\n`);
    } else {
      io.stdout.write(
        [
          `Connected to "${name}" through ${provider.gateway}.`,
          `Listening on ${host}:${port}; the password is in ${optionFile}.`,
          '',
          'Connect with:',
          `  mysql --defaults-extra-file=${shellQuote(optionFile)}`,
          '',
          `or use ${uri} with the password from that file (TLS: the certificate ${sslCa}).`,
          'Press Ctrl-C to stop.',
          '',
        ].join('\n'),
      );
    }
    await whenAborted(io.signal);
  } finally {
    await local.close();
    await records.finish(say);
  }
}
