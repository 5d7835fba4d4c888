/**
 * `hoop connect <name>`'s runtime: it asks the gateway for the connection, then serves it as its
 * kind wants. A PostgreSQL connection gets a local port that forwards every client through its own
 * authenticated, audited tunnel to the gateway (with `--direct`, no local port: ./connect-direct.ts;
 * an SSH connection: ./connect-ssh.ts; a MySQL one: ./connect-mysql.ts). It prints how to connect (a psql command, a URI, a
 * PGPASSFILE holding the per-session password, and the certificate of the port's TLS for
 * `sslmode=verify-full`) and runs until interrupted.
 *
 * With a policy bundle (`--policy-dir DIR`, or `--policy-repo` / `$HOOP_POLICY_REPO` pulled as
 * `hoop policy pull` does), statements are judged on this machine first, by the same gate the
 * gateway runs: a refused statement never leaves it. The gateway still decides: each tunnel's
 * policy commit is compared with the CLI's, and a session whose commit the CLI cannot match is
 * judged by the gateway only (./connect-policy.ts).
 *
 * @see docs/internals.md (§2)
 */
import { getConnection } from '../api-client/connections.js';
import type { ConnectionInfo } from '../api/answers.js';
import type { ResolvedTokenProvider } from '../auth/token-provider.js';
import type { ConnectJson } from '../connect-json.js';
import { ErrorCode, HoopError, hoopSays } from '../errors.js';
import { whenAborted, type CliIo } from '../io.js';
import { createLogger, levelFromEnv, type Logger } from '../log.js';
import { writePgpass } from '../postgres/local/pgpass.js';
import { removeRunFile, runtimeDir } from '../runtime-files.js';
import { shellQuote } from '../text-format.js';
import { CommandRecords } from './client-records.js';
import { commandTokenProvider } from './client-config.js';
import { serveDirect } from './connect-direct.js';
import type { LocalPolicyOptions } from './connect-policy.js';
import { serveMysql } from './connect-mysql.js';
import { serveSsh } from './connect-ssh.js';
import { serveHttp } from './connect-http.js';
import { localUri, openLocalPort } from './local-port.js';

/** `hoop connect`'s options. */
export interface ConnectOptions extends LocalPolicyOptions {
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

/** `hoop connect <name>`: see the module documentation. */
export async function connect(io: CliIo, name: string, opts: ConnectOptions): Promise<void> {
  const log = createLogger({ level: levelFromEnv(io.env, 'warn'), sink: io.stderr, fields: { component: 'connect' } });
  const say = (line: string): void => void io.stderr.write(`${hoopSays(line)}\n`);
  const provider = await commandTokenProvider(io, opts);
  try {
    const info = await getConnection({ gateway: provider.gateway, ca: provider.ca }, (await provider.current()).token, name);
    if (info.type === 'mcp')
      throw new HoopError(ErrorCode.USAGE, `"${name}" is an MCP connection: its server is served to an agent on stdio`, {
        hint: `make \`hoop mcp --connection ${name}\` the MCP server command of the agent (hoop mcp config writes it)`,
      });
    if (opts.direct) {
      if (info.type === 'ssh') throw new HoopError(ErrorCode.USAGE, `"${name}" is an ssh connection: --direct is for PostgreSQL, MySQL and HTTP connections`, { hint: `hoop connect ${name}` });
      return await serveDirect(io, opts, provider, name, say);
    }
    if (opts.ttl !== undefined || opts.once) throw new HoopError(ErrorCode.USAGE, '--ttl and --once go with --direct');
    if (info.type === 'http') return await serveHttp(io, opts, provider, name, log, say);
    if (info.type === 'ssh') return await serveSsh(io, opts, provider, name, info, log, say);
    if (info.type === 'mysql') return await serveMysql(io, opts, provider, name, info, log, say);
    await servePostgres(io, opts, provider, name, info, log, say);
  } finally {
    provider.close();
  }
}

/** `hoop connect` of a PostgreSQL connection: the local port, its PGPASSFILE, how to connect; until interrupted. */
async function servePostgres(io: CliIo, opts: ConnectOptions, provider: ResolvedTokenProvider, name: string, info: ConnectionInfo, log: Logger, say: (line: string) => void): Promise<void> {
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
  }
}
