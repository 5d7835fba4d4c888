/**
 * `hoop gateway --config FILE`: runs the gateway until SIGINT/SIGTERM (../gateway/serve.ts; on
 * every core with a shared store: ../gateway/workers.ts).
 * `hoop gateway init --url URL --issuer URL …`: writes a first gateway's configuration (./gateway-init.ts).
 * `hoop gateway migrate --config FILE`: brings a shared store (`store: { kind: postgres }`) up to
 * this version's schema; the gateway does the same at start, so this is for doing it ahead.
 * `hoop gateway status --config FILE`: whether the store answers, the replicas it has seen, pending
 * reviews and running sessions (exit 69 when the store cannot be reached). Both through
 * ../gateway/store-admin.ts.
 */
import { resolve } from 'node:path';
import { Command } from 'commander';
import { serveDevIdp } from '../demo/dev-idp.js';
import { ErrorCode, HoopError, hoopSays } from '../errors.js';
import { loadGatewayConfig } from '../gateway/config/config.js';
import { serveGateway } from '../gateway/serve.js';
import { migrateStore, readStoreStatus } from '../gateway/store-admin.js';
import { MIGRATIONS } from '../gateway/migrations.js';
import { terminalSafe } from '../ui/terminal-safe.js';
import type { CliIo } from '../io.js';
import { gatewayInitCommand } from './gateway-init.js';
import { printJson } from '../ui/output.js';

/** The configuration file named, or a usage error saying how to name it (here, not as a required option, so that `migrate` takes it too). */
function configFile(file: string | undefined): string {
  if (!file) throw new HoopError(ErrorCode.USAGE, 'the gateway needs its configuration file', { hint: 'pass --config gateway.yaml, or set HOOP_GATEWAY_CONFIG' });
  return file;
}

/** Builds the `gateway` command. */
export function gatewayCommand(io: CliIo): Command {
  const gateway = new Command('gateway')
    .description('run the hoop gateway: it verifies tokens, holds the upstream credentials, enforces policy and relays tunnels')
    .option('-c, --config <file>', 'gateway configuration file (YAML; default $HOOP_GATEWAY_CONFIG)', io.env.HOOP_GATEWAY_CONFIG)
    .option('--insecure-dev-http', 'serve plain HTTP (only allowed on a loopback address; for local development)')
    .action(async (opts: { config?: string; insecureDevHttp?: boolean }) => {
      const config = await loadGatewayConfig(configFile(opts.config), io.env);
      await serveGateway(config, { env: io.env, stderr: io.stderr, signal: io.signal, insecureDevHttp: opts.insecureDevHttp === true });
    });
  gateway.addCommand(gatewayInitCommand(io));
  gateway.addCommand(
    new Command('dev-idp')
      .description('run a development identity provider on 127.0.0.1 for the users of a file (hoop gateway init --idp dev writes one): a real gateway tried on one machine; not for production')
      .requiredOption('--users <file>', 'the users file (dev-users.yaml, as init wrote it)')
      .option('--port <port>', 'its port on 127.0.0.1 (the issuer init wrote names it)', '9000')
      .option('--audience <aud>', "the audience of its access tokens (the gateway's issuers: entry)", 'hoop')
      .action(async (opts: { users: string; port: string; audience: string }) => {
        const port = Number(opts.port);
        if (!Number.isInteger(port) || port < 1 || port > 65535) throw new HoopError(ErrorCode.USAGE, `--port must be a port number, not ${JSON.stringify(opts.port)}`);
        await serveDevIdp({ usersFile: resolve(io.cwd, opts.users), port, audience: opts.audience, say: (line) => void io.stderr.write(`${hoopSays(line)}\n`), signal: io.signal });
      }),
  );
  gateway.addCommand(
    new Command('migrate')
      .description("bring the shared store (store: postgres) up to this version's schema; safe while other replicas run or start")
      .option('-c, --config <file>', 'gateway configuration file (YAML; default $HOOP_GATEWAY_CONFIG)', io.env.HOOP_GATEWAY_CONFIG)
      .option('--json', 'print it as one JSON object: { store, applied, version }')
      .action(async (opts: { config?: string; json?: boolean }) => {
        const config = await loadGatewayConfig(configFile(opts.config), io.env);
        if (config.store.kind !== 'postgres') {
          throw new HoopError(ErrorCode.USAGE, `${config.file} keeps the gateway's state in files (dataDir), which need no migration`, {
            hint: 'for several replicas, set store: { kind: postgres, url: ${env:HOOP_STORE_URL} }',
          });
        }
        const { where, version, applied } = await migrateStore(config.store, io.env);
        if (opts.json) printJson(io, { store: where, applied, version });
        else io.stdout.write(`store ${where}: ${applied.length > 0 ? `applied ${applied.join(', ')}; ` : 'nothing to apply; '}schema at version ${version}\n`);
      }),
  );
  gateway.addCommand(
    new Command('status')
      .description('say whether the store answers, which replicas it has seen, and what waits (pending reviews, running sessions)')
      .option('-c, --config <file>', 'gateway configuration file (YAML; default $HOOP_GATEWAY_CONFIG)', io.env.HOOP_GATEWAY_CONFIG)
      .option('--json', 'print it as JSON')
      .action(async (opts: { config?: string; json?: boolean }) => {
        const config = await loadGatewayConfig(configFile(opts.config), io.env);
        if (config.store.kind !== 'postgres') {
          const text = `store      files in ${config.dataDir}: one gateway process (replicas need store: { kind: postgres })\n`;
          if (opts.json) printJson(io, { store: { kind: 'file', dataDir: config.dataDir } });
          else io.stdout.write(text);
          return;
        }
        const { where, status } = await readStoreStatus(config.store, io.env);
        if (opts.json) {
          printJson(io, { store: { kind: 'postgres', at: where, reachable: true, schema: status.schema }, ...status });
          return;
        }
        const known = MIGRATIONS.at(-1)!.version;
        const count = (state: string): number => status.replicas.filter((r) => r.state === state).length;
        const lines = [
          `store      ${where}: reachable, schema at version ${status.schema}${status.schema < known ? ` (this hoop knows ${known}: run hoop gateway migrate)` : ''}`,
          `replicas   ${count('live')} live${count('silent') ? `, ${count('silent')} not answering` : ''}${count('stopped') ? `, ${count('stopped')} stopped` : ''}`,
          ...status.replicas.map((r) => `  ${r.id}  ${r.state.padEnd(7)}  ${r.url}  hoop ${r.version}  seen ${r.seenAt}`),
          `sessions   ${status.runningSessions} running`,
          `reviews    ${status.pendingReviews} pending`,
          ...(status.auditBacklog > 0 ? [`audit      ${status.auditBacklog} events wait for delivery to the audit url`] : []),
        ];
        io.stdout.write(`${lines.map(terminalSafe).join('\n')}\n`);
      }),
  );
  return gateway;
}
