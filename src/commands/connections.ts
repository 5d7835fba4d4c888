/**
 * `hoop connections` (alias `hoop ls`): the connections of the gateway you may use, as
 * `GET /v1/connections` answers for your token: name, type, database and, when the gateway's
 * policy repo decides access, your mode (read-only or read-write). Same gateway, profile and
 * token resolution as `hoop whoami`.
 */
import { Command } from 'commander';
import { listConnections } from '../api-client/connections.js';
import { commandTokenProvider } from '../client/client-config.js';
import type { CliIo } from '../io.js';
import { paintedTable, printJson } from '../ui/output.js';

interface ConnectionsOptions {
  gateway?: string;
  caFile?: string;
  tokenFile?: string;
  json?: boolean;
}

/** Builds the `connections` command (alias `ls`). */
export function connectionsCommand(io: CliIo): Command {
  return new Command('connections')
    .alias('ls')
    .description('list the connections of the gateway you may use (name, type, database, access mode)')
    .option('--gateway <url>', 'gateway URL (default: $HOOP_GATEWAY, else the current profile)')
    .option('--ca-file <file>', "trust this CA for the gateway certificate (default: $HOOP_CA_FILE, else the profile's)")
    .option('--token-file <file>', 'use the token in this file instead (default: $HOOP_TOKEN, else the login)')
    .option('--json', 'print one JSON object: { gateway, connections: [{ name, type, database | user and hostKeys | url, mode?, until?, clientRecords?, unavailable? }] }')
    .action(async (opts: ConnectionsOptions) => {
      const provider = await commandTokenProvider(io, opts);
      try {
        const grant = await provider.current();
        const connections = await listConnections({ gateway: provider.gateway, ca: provider.ca }, grant.token);
        if (opts.json) {
          printJson(io, { gateway: provider.origin, connections });
          return;
        }
        if (connections.length === 0) {
          io.stdout.write(`no connections of ${provider.origin} admit you; ask an administrator to grant you access\n`);
          return;
        }
        const withMode = connections.some((c) => c.mode !== undefined);
        const rows = [
          ['NAME', 'TYPE', 'TARGET', ...(withMode ? ['MODE'] : [])],
          ...connections.map((c) => [
            c.name,
            c.type,
            (c.type === 'ssh' ? c.user : c.type === 'http' ? c.url : c.database) ?? '-',
            ...(withMode ? [`${c.mode ?? '-'}${c.until ? ` (requested, until ${c.until.replace('T', ' ').replace(/\.\d+Z$/, 'Z')})` : ''}`] : []),
          ]),
        ];
        io.stdout.write(paintedTable(io, rows));
        for (const c of connections) if (c.unavailable) io.stdout.write(`${c.name} is unavailable on the gateway now: ${c.unavailable}\n`);
      } finally {
        provider.close();
      }
    });
}
