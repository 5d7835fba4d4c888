/**
 * `hoop connect <name>`: a local PostgreSQL or SSH port that tunnels to a connection of the
 * gateway, or with `--direct` a credential for the gateway's own port; what it does is
 * src/client/connect.ts.
 *
 * @see docs/internals.md (§2)
 */
import { Command, Option } from 'commander';
import { duration } from '../client/client-config.js';
import { type ConnectOptions, connect } from '../client/connect.js';
import { ErrorCode, HoopError } from '../errors.js';
import type { CliIo } from '../io.js';

function parsePort(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new HoopError(ErrorCode.USAGE, `--port must be a number from 0 to 65535, not "${value}"`);
  return n;
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
    .option('--direct', "no local port: the client connects to the gateway's own port with a credential the gateway mints for this connection (PostgreSQL; MySQL at the gateway's MySQL port)")
    .option('--ttl <time>', 'with --direct: how long the credential lives, renewed while this runs (default 15min, at most 12h)', duration)
    .option('--once', 'with --direct: print the connection details and exit; the credential is not renewed and ends after --ttl')
    .option('--policy-dir <dir>', 'judge statements here first with the policy bundle in this checked-out config repo (the gateway still decides)')
    .option('--policy-repo <url>', 'the same with a config repo pulled as `hoop policy pull` does (default: $HOOP_POLICY_REPO)')
    .option('--policy-ref <ref>', 'branch, tag or commit of --policy-repo (default: $HOOP_POLICY_REF, else main)')
    .option('--policy-allowed-signers <file>', 'accept only policy commits signed by these SSH keys (default: $HOOP_POLICY_ALLOWED_SIGNERS)')
    .action((name: string, opts: ConnectOptions) => connect(io, name, opts));
}
