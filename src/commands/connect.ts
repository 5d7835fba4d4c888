/**
 * `hoop connect <name>`: a local PostgreSQL port that forwards every client through its own
 * authenticated, audited tunnel to the gateway. Prints how to connect (a psql command, a URI, a
 * PGPASSFILE holding the per-session password, and the certificate of the port's TLS for
 * `sslmode=verify-full`) and runs until interrupted.
 *
 * With a policy bundle (`--policy-dir DIR`, or `--policy-repo` / `$HOOP_POLICY_REPO` pulled as
 * `hoop policy pull` does), statements are judged on this machine first, by the same gate the
 * gateway runs: a refused statement never leaves it. The gateway still decides: each tunnel's
 * policy commit is compared with the CLI's, and a session whose commit the CLI cannot match is
 * judged by the gateway only (see {@link EarlyChecks}).
 *
 * @see /work/shared/ARCHITECTURE.md ("Who decides what")
 */
import { randomBytes } from 'node:crypto';
import { Command, Option } from 'commander';
import { getConnection } from '../auth/gateway-client.js';
import { commandTokenProvider } from '../client-config.js';
import { ErrorCode, HoopError } from '../errors.js';
import { whenAborted, type CliIo } from '../io.js';
import { createLogger, levelFromEnv } from '../log.js';
import { LocalPostgresListener, type ListenerEvent } from '../postgres/local-listener.js';
import { createSecureContext } from 'node:tls';
import { removeRunFile, writePgpass, writeRootCert } from '../postgres/pgpass.js';
import { mintCertificate } from '../x509.js';
import { makeScramSecret } from '../postgres/scram.js';
import { TunnelTokenRenewal } from '../tunnel/token-renewal.js';
import { openTunnel, type OpenedTunnel } from '../tunnel/transport.js';
import { EarlyChecks, type LocalPolicyOptions } from './connect-policy.js';
import { VERSION } from '../version.js';

interface ConnectOptions extends LocalPolicyOptions {
  port?: number;
  socket?: string;
  gateway?: string;
  tokenFile?: string;
  caFile?: string;
  json?: boolean;
}

function parsePort(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new HoopError(ErrorCode.USAGE, `--port must be a number from 0 to 65535, not "${value}"`);
  return n;
}

/** Single-quotes `s` for a POSIX shell when it holds anything but safe characters. */
export function shellQuote(s: string): string {
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/** The one line `hoop connect --json` prints. */
export interface ConnectJson {
  connection: string;
  host: string;
  port: number;
  user: string;
  database: string;
  /** The local port's password for this run (also in `pgpassFile`). */
  password: string;
  pgpassFile: string;
  /** `verify-full` and the certificate of the local port's TLS (absent on a unix socket). */
  sslmode?: string;
  sslrootcert?: string;
  uri: string;
}

/** Builds the `connect` command. */
export function connectCommand(io: CliIo): Command {
  return new Command('connect')
    .description('open a local PostgreSQL port that tunnels to a connection of the gateway')
    .argument('<name>', 'connection name, as `hoop connections` lists it')
    .addOption(new Option('-p, --port <port>', 'local TCP port on 127.0.0.1 (default: any free port)').argParser(parsePort))
    .option('--socket <dir>', 'listen on a unix socket in this directory instead of TCP')
    .option('--gateway <url>', 'gateway URL (default: $HOOP_GATEWAY, else the current `hoop login` profile)')
    .option('--token-file <file>', 'read the bearer token from this file; it is not renewed (default: $HOOP_TOKEN, else the login)')
    .option('--ca-file <file>', 'trust this CA for the gateway certificate (default: $HOOP_CA_FILE, else the profile\'s)')
    .option('--json', 'print the connection details as one JSON line (including the local password) and nothing else on stdout')
    .option('--policy-dir <dir>', 'judge statements here first with the policy bundle in this checked-out config repo (the gateway still decides)')
    .option('--policy-repo <url>', 'the same with a config repo pulled as `hoop policy pull` does (default: $HOOP_POLICY_REPO)')
    .option('--policy-ref <ref>', 'branch, tag or commit of --policy-repo (default: $HOOP_POLICY_REF, else main)')
    .option('--policy-allowed-signers <file>', 'accept only policy commits signed by these SSH keys (default: $HOOP_POLICY_ALLOWED_SIGNERS)')
    .action(async (name: string, opts: ConnectOptions) => {
      const log = createLogger({ level: levelFromEnv(io.env, 'warn'), sink: io.stderr, fields: { component: 'connect' } });
      const provider = await commandTokenProvider(io, opts);
      const gateway = provider.gateway;
      const ca = provider.ca;
      let info;
      try {
        info = await getConnection({ gateway, ca }, (await provider.current()).token, name);
      } catch (err) {
        provider.close();
        throw err;
      }
      if (info.type !== 'postgres') {
        provider.close();
        throw new HoopError(ErrorCode.USAGE, `"${name}" is a ${info.type} connection; hoop connect serves postgres connections`);
      }

      const password = randomBytes(24).toString('base64url');
      const say = (line: string): void => void io.stderr.write(`hoop: ${line}\n`);

      // Early checks: the same gate as the gateway's, on the CLI's copy of the policy.
      let early: EarlyChecks | undefined;
      try {
        early = await EarlyChecks.start({ io, options: opts, log, endpoint: { gateway, ca }, token: async () => (await provider.current()).token, connection: name, say });
      } catch (err) {
        provider.close();
        throw err;
      }

      const renewal = new TunnelTokenRenewal(provider, log, say);
      const onEvent = (e: ListenerEvent): void => {
        if (e.kind === 'tunnel-failed') say(`${e.error.message}${e.error.hint ? ` (${e.error.hint})` : ''}`);
        else if (e.kind === 'auth-failed') say('a local client gave the wrong password and was refused');
        else if (e.kind === 'protocol-error') say(`a local client broke the protocol and was disconnected: ${e.message}`);
        else if (e.kind === 'client-closed' && e.message) say(`session ${e.session} closed: ${e.message}`);
        else if (e.kind === 'client-connected') log.info('client.connected', { session: e.session, user: e.user, database: e.database });
      };
      // A certificate for this run's local port, its own root: clients that insist on TLS verify it.
      const certificate = mintCertificate({ commonName: `hoop connect ${name}`, altNames: ['127.0.0.1', 'localhost'], ca: true, validDays: 30 });
      const listener = new LocalPostgresListener({
        secret: makeScramSecret(password),
        tls: createSecureContext({ cert: certificate.cert, key: certificate.key, minVersion: 'TLSv1.2' }),
        ...(opts.port !== undefined ? { port: opts.port } : {}),
        ...(opts.socket ? { socketDir: opts.socket, socketPort: opts.port || 5432 } : {}),
        log,
        onEvent,
        openTunnel: async (sessionId) => {
          const { token } = await provider.current();
          const opened = await openTunnel({ gateway, connection: name, token, sessionId, clientVersion: VERSION, ...(ca ? { ca } : {}) });
          renewal.track(opened.channel, token);
          await early?.admit(opened);
          return opened;
        },
        ...(early ? { statementGate: (session: string, tunnel: OpenedTunnel) => early.gate(session, tunnel) } : {}),
      });
      const stopProvider = (): void => {
        renewal.close();
        provider.close();
      };
      let address;
      try {
        address = await listener.listen();
      } catch (err) {
        stopProvider();
        throw err;
      }
      const files: string[] = [];
      try {
        const pgpassFile = await writePgpass({ env: io.env, name, host: address.socketPath ? '*' : address.host, port: address.port, password });
        files.push(pgpassFile);
        // TLS on TCP (libpq does not use it over a unix socket): clients verify the per-session certificate.
        const sslrootcert = address.socketPath ? undefined : await writeRootCert({ env: io.env, name, port: address.port, pem: certificate.cert });
        if (sslrootcert) files.push(sslrootcert);
        const user = 'hoop';
        const host = address.host;
        const uri = address.socketPath
          ? `postgresql://${user}@/${encodeURIComponent(info.database)}?host=${encodeURIComponent(host)}&port=${address.port}`
          : `postgresql://${user}@${host}:${address.port}/${encodeURIComponent(info.database)}?sslmode=verify-full&sslrootcert=${encodeURIComponent(sslrootcert!)}`;
        if (opts.json) {
          const tls = sslrootcert ? { sslmode: 'verify-full', sslrootcert } : {};
          const details: ConnectJson = { connection: name, host, port: address.port, user, database: info.database, password, pgpassFile, ...tls, uri };
          io.stdout.write(`${JSON.stringify(details)}\n`);
        } else {
          const conninfo = `host=${host} port=${address.port} user=${user} dbname=${info.database}${sslrootcert ? ` sslmode=verify-full sslrootcert=${sslrootcert}` : ''}`;
          io.stdout.write(
            [
              `Connected to "${name}" through ${gateway}.`,
              `Listening on ${address.socketPath ?? `${host}:${address.port}`}; the password is in ${pgpassFile}.`,
              '',
              'Connect with:',
              `  PGPASSFILE=${shellQuote(pgpassFile)} psql ${shellQuote(conninfo)}`,
              '',
              `or export PGPASSFILE=${shellQuote(pgpassFile)} and use ${uri}`,
              'Press Ctrl-C to stop.',
              '',
            ].join('\n'),
          );
        }
        await whenAborted(io.signal);
      } finally {
        stopProvider();
        await listener.close();
        for (const file of files) await removeRunFile(file);
      }
    });
}
