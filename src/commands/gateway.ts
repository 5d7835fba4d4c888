/**
 * `hoop gateway --config FILE`: runs the gateway until SIGINT/SIGTERM.
 */
import { Command } from 'commander';
import { loadGatewayConfig } from '../gateway/config.js';
import { startGateway } from '../gateway/server.js';
import { whenAborted, type CliIo } from '../io.js';
import { createLogger, levelFromEnv } from '../log.js';

/** Builds the `gateway` command. */
export function gatewayCommand(io: CliIo): Command {
  return new Command('gateway')
    .description('run the hoop gateway: it verifies tokens, holds the upstream credentials, enforces policy and relays tunnels')
    .requiredOption('-c, --config <file>', 'gateway configuration file (YAML)', io.env.HOOP_GATEWAY_CONFIG)
    .option('--insecure-dev-http', 'serve plain HTTP (only allowed on a loopback address; for local development)')
    .action(async (opts: { config: string; insecureDevHttp?: boolean }) => {
      const config = await loadGatewayConfig(opts.config, io.env);
      const log = createLogger({ level: levelFromEnv(io.env, config.log.level), sink: io.stderr, fields: { component: 'gateway' } });
      const gateway = await startGateway({ config, log, insecureDevHttp: opts.insecureDevHttp === true, env: io.env });
      await whenAborted(io.signal);
      log.info('gateway.stopping', { activeSessions: gateway.activeSessions });
      await gateway.close();
    });
}
