/**
 * `hoop connect <name>`: a local PostgreSQL port that forwards every client through its own
 * authenticated, audited tunnel to the gateway (with `--direct`, no local port: ./connect-direct.ts). Prints how to connect (a psql command, a URI, a
 * PGPASSFILE holding the per-session password, and the certificate of the port's TLS for
 * `sslmode=verify-full`) and runs until interrupted.
 *
 * With a policy bundle (`--policy-dir DIR`, or `--policy-repo` / `$HOOP_POLICY_REPO` pulled as
 * `hoop policy pull` does), statements are judged on this machine first, by the same gate the
 * gateway runs: a refused statement never leaves it. The gateway still decides: each tunnel's
 * policy commit is compared with the CLI's, and a session whose commit the CLI cannot match is
 * judged by the gateway only (see {@link EarlyChecks}).
 *
 * @see docs/architecture.md (§2)
 */
import { Command, Option } from 'commander';
import { commandTokenProvider, duration } from '../client/client-config.js';
import { serveDirect } from '../client/connect-direct.js';
import { ErrorCode, HoopError } from '../errors.js';
import { whenAborted, type CliIo } from '../io.js';
import { createLogger, levelFromEnv } from '../log.js';
import { writePgpass } from '../postgres/local/pgpass.js';
import { removeRunFile, runtimeDir } from '../runtime-files.js';
import { getConnection } from '../api-client/connections.js';
import type { ConnectionInfo } from '../api/answers.js';
import type { ResolvedTokenProvider } from '../auth/token-provider.js';
import type { Logger } from '../log.js';
import { openSshPort } from '../ssh/local/port.js';
import type { LocalPolicyOptions } from '../client/connect-policy.js';
import { localUri, openLocalPort } from '../client/local-port.js';
import { CommandRecords, sshRecordHook } from '../client/client-records.js';
import type { ConnectJson } from '../connect-json.js';
import { shellQuote } from '../text-format.js';

interface ConnectOptions extends LocalPolicyOptions {
  direct?: boolean;
  ttl?: number;
  once?: boolean;
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

/** The one line `hoop connect --json` prints for an SSH connection. */
export interface ConnectSshJson {
  connection: string;
  host: string;
  port: number;
  /** `ssh -F <sshConfig> <connection>`. */
  sshConfig: string;
  /** The user's ssh_config that includes every running connection's, at a path that stays put: `Include` it from ~/.ssh/config once. */
  sshInclude?: string;
  knownHosts: string;
  identityFile: string;
  command: string;
}

/** `hoop connect` of an SSH connection: the local port, the generated ssh_config, and how to use it. */
async function serveSsh(io: CliIo, opts: ConnectOptions, provider: ResolvedTokenProvider, name: string, info: ConnectionInfo, log: Logger, say: (line: string) => void): Promise<void> {
  if (opts.socket) throw new HoopError(ErrorCode.USAGE, `"${name}" is an ssh connection: it is served on a TCP port of 127.0.0.1, not a unix socket (drop --socket)`);
  const records = new CommandRecords(io, provider, log);
  records.resume();
  const record = info.clientRecords ? sshRecordHook(records, { connection: name, gateway: provider.gateway, say }) : undefined;
  const port = await openSshPort({
    env: io.env,
    provider,
    name,
    hostKeys: info.hostKeys ?? [],
    ...(info.user ? { user: info.user } : {}),
    ...(opts.port !== undefined ? { port: opts.port } : {}),
    log,
    say,
    ...(record ? { record } : {}),
  }).catch(async (err: unknown) => {
    await records.finish(say);
    throw err;
  });
  try {
    const ssh = `ssh -F ${shellQuote(port.configFile)}`;
    if (opts.json) {
      const details: ConnectSshJson = {
        connection: name,
        host: port.host,
        port: port.port,
        sshConfig: port.configFile,
        ...(port.includeFile ? { sshInclude: port.includeFile } : {}),
        knownHosts: port.knownHostsFile,
        identityFile: port.keyFile,
        command: `${ssh} ${name}`,
      };
      io.stdout.write(`${JSON.stringify(details)}\n`);
    } else {
      io.stdout.write(
        [
          `Connected to "${name}" (ssh) through ${provider.gateway}.`,
          `Listening on ${port.host}:${port.port}; the ssh config is ${port.configFile}.`,
          '',
          'Connect with:',
          `  ${ssh} ${name}`,
          `  scp -F ${shellQuote(port.configFile)} FILE ${name}:PATH      sftp -F ${shellQuote(port.configFile)} ${name}`,
          `  rsync -e ${shellQuote(ssh)} DIR ${name}:PATH      GIT_SSH_COMMAND=${shellQuote(ssh)} git clone ${name}:REPO`,
          '',
          port.includeFile
            ? `or put this line at the top of ~/.ssh/config once (it includes every hoop connect you run), then use plain \`ssh ${name}\`:`
            : `or put this line at the top of ~/.ssh/config, then use plain \`ssh ${name}\`:`,
          `  Include ${port.includeFile ?? port.configFile}`,
          'Press Ctrl-C to stop.',
          '',
        ].join('\n'),
      );
    }
    await whenAborted(io.signal);
  } finally {
    await port.close();
    await records.finish(say);
  }
}

/** Builds the `connect` command. */
export function connectCommand(io: CliIo): Command {
  return new Command('connect')
    .description('open a local PostgreSQL or SSH port that tunnels to a connection of the gateway')
    .argument('<name>', 'connection name, as `hoop connections` lists it')
    .addOption(new Option('-p, --port <port>', 'local TCP port on 127.0.0.1 (default: any free port)').argParser(parsePort))
    .option('--socket <dir>', 'listen on a unix socket in this directory instead of TCP')
    .option('--gateway <url>', 'gateway URL (default: $HOOP_GATEWAY, else the current `hoop login` profile)')
    .option('--token-file <file>', 'read the bearer token from this file; it is not renewed (default: $HOOP_TOKEN, else the login)')
    .option('--ca-file <file>', "trust this CA for the gateway certificate (default: $HOOP_CA_FILE, else the profile's)")
    .option('--json', 'print the connection details as one JSON line (including the local password) and nothing else on stdout')
    .option('--direct', "no local port: the client connects to the gateway's own port with a credential the gateway mints for this connection (PostgreSQL)")
    .option('--ttl <time>', 'with --direct: how long the credential lives, renewed while this runs (default 15min, at most 12h)', duration)
    .option('--once', 'with --direct: print the connection details and exit; the credential is not renewed and ends after --ttl')
    .option('--policy-dir <dir>', 'judge statements here first with the policy bundle in this checked-out config repo (the gateway still decides)')
    .option('--policy-repo <url>', 'the same with a config repo pulled as `hoop policy pull` does (default: $HOOP_POLICY_REPO)')
    .option('--policy-ref <ref>', 'branch, tag or commit of --policy-repo (default: $HOOP_POLICY_REF, else main)')
    .option('--policy-allowed-signers <file>', 'accept only policy commits signed by these SSH keys (default: $HOOP_POLICY_ALLOWED_SIGNERS)')
    .action(async (name: string, opts: ConnectOptions) => {
      const log = createLogger({ level: levelFromEnv(io.env, 'warn'), sink: io.stderr, fields: { component: 'connect' } });
      const say = (line: string): void => void io.stderr.write(`hoop: ${line}\n`);
      const provider = await commandTokenProvider(io, opts);
      const info = await getConnection({ gateway: provider.gateway, ca: provider.ca }, (await provider.current()).token, name).catch((err: unknown) => {
        provider.close();
        throw err;
      });
      if (opts.direct) {
        if (info.type !== 'postgres') {
          provider.close();
          throw new HoopError(ErrorCode.USAGE, `"${name}" is an ssh connection: --direct is for PostgreSQL connections`, { hint: `hoop connect ${name}` });
        }
        try {
          await serveDirect(io, opts, provider, name, say);
        } finally {
          provider.close();
        }
        return;
      }
      if (opts.ttl !== undefined || opts.once) {
        provider.close();
        throw new HoopError(ErrorCode.USAGE, '--ttl and --once go with --direct');
      }
      if (info.type === 'ssh') {
        try {
          await serveSsh(io, opts, provider, name, info, log, say);
        } finally {
          provider.close();
        }
        return;
      }
      const records = new CommandRecords(io, provider, log);
      records.resume();
      try {
        const local = await openLocalPort({
          io,
          provider,
          name,
          info,
          policy: opts,
          ...(opts.port !== undefined ? { port: opts.port } : {}),
          ...(opts.socket ? { socket: opts.socket } : {}),
          log,
          say,
          records,
        });
        let pgpassFile: string | undefined;
        try {
          pgpassFile = await writePgpass({ dir: await runtimeDir(io.env), name, entries: [local] });
          const { host, port, user, database, password, sslrootcert } = local;
          const uri = localUri(local);
          if (opts.json) {
            const tls = sslrootcert ? { sslmode: 'verify-full', sslrootcert } : {};
            const details: ConnectJson = { connection: name, host, port, user, database, password, pgpassFile, ...tls, uri };
            io.stdout.write(`${JSON.stringify(details)}\n`);
          } else {
            const conninfo = `host=${host} port=${port} user=${user} dbname=${database}${sslrootcert ? ` sslmode=verify-full sslrootcert=${sslrootcert}` : ''}`;
            io.stdout.write(
              [
                `Connected to "${name}" through ${provider.gateway}.`,
                `Listening on ${local.socketPath ?? `${host}:${port}`}; the password is in ${pgpassFile}.`,
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
          await local.close();
          if (pgpassFile) await removeRunFile(pgpassFile);
        }
      } finally {
        await records.finish(say);
        provider.close();
      }
    });
}
