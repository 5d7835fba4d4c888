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
import { createSecureContext } from 'node:tls';
import type { ConnectionInfo } from '../api/answers.js';
import type { ResolvedTokenProvider } from '../auth/token-provider.js';
import { TunnelTokenRenewal } from '../auth/token-renewal.js';
import type { ConnectMysqlJson } from '../connect-json.js';
import { whenAborted, type CliIo } from '../io.js';
import type { Logger } from '../log.js';
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
export function mysqlOptionFile(o: { host: string; port: number; password: string; database: string; sslCa: string }): string {
  const quote = (v: string): string => `"${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
  return [
    "# hoop connect: this run's local port; removed when it stops",
    '[client]',
    `user=${LOCAL_USER}`,
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
  const { gateway, ca } = provider;
  const password = randomBytes(24).toString('base64url');
  const renewal = new TunnelTokenRenewal(provider, log, say);
  const tunnels = new TunnelMux({ gateway, clientVersion: VERSION, ...(ca ? { ca } : {}) });
  const certificate = mintCertificate({ commonName: `hoop connect ${name}`, altNames: ['127.0.0.1', 'localhost'], ca: true, validDays: 30 });
  const onEvent = (e: MysqlListenerEvent): void => {
    if (e.kind === 'tunnel-failed') say(`${e.error.message}${e.error.hint ? ` (${e.error.hint})` : ''}`);
    else if (e.kind === 'auth-failed') say('a local client gave the wrong password and was refused');
    else if (e.kind === 'protocol-error') say(`a local client broke the protocol and was disconnected: ${e.message}`);
    else log.info('client.connected', { session: e.session, user: e.user, database: e.database });
  };
  const listener = new LocalMysqlListener({
    password,
    tls: createSecureContext({ cert: certificate.cert, key: certificate.key, minVersion: 'TLSv1.2' }),
    ...(opts.port !== undefined ? { port: opts.port } : {}),
    log,
    onEvent,
    openTunnel: async (sessionId) => {
      const { token } = await provider.current();
      const opened = await tunnels.open({ connection: name, token, sessionId, via: 'connect' });
      renewal.track(opened.channel, token);
      return opened;
    },
  });
  const files: string[] = [];
  try {
    const { host, port } = await listener.listen();
    const dir = await runtimeDir(io.env);
    const sslCa = await writeRootCert({ dir, name, port, pem: certificate.cert });
    files.push(sslCa);
    const database = info.database ?? '';
    const optionFile = await writeRunFile(dir, `${name}-${port}`, '.my.cnf', mysqlOptionFile({ host, port, password, database, sslCa }));
    files.push(optionFile);
    const uri = `mysql://${LOCAL_USER}@${host}:${port}/${encodeURIComponent(database)}`;
    if (opts.json) {
      const details: ConnectMysqlJson = { connection: name, host, port, user: LOCAL_USER, database, password, optionFile, sslCa, uri };
      io.stdout.write(`${JSON.stringify(details)}\n`);
    } else {
      io.stdout.write(
        [
          `Connected to "${name}" through ${gateway}.`,
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
    renewal.close();
    await listener.close();
    tunnels.close();
    for (const f of files) await removeRunFile(f);
  }
}
