/**
 * `hoop gateway`'s process: the gateway of a configuration on one core, or, with a shared store
 * and `workers` above 1, forked on several (./workers.ts), each worker a whole gateway of its own,
 * as a replica. It runs until `signal`, then closes.
 */
import { whenAborted } from '../io.js';
import { createLogger, levelFromEnv, type LogSink } from '../log.js';
import type { GatewayConfig } from './config/config.js';
import { startGateway } from './server.js';
import { runWorkers, workerConfig, workerCount, workerIndex } from './workers.js';

/** What the gateway's process runs with besides its configuration. */
export interface ServeOptions {
  env: NodeJS.ProcessEnv;
  /** Where the log goes. */
  stderr: LogSink;
  signal: AbortSignal;
  /** Plain HTTP, on a loopback address only (local development). */
  insecureDevHttp: boolean;
}

/** Runs the gateway of `config` (see the module documentation) until `o.signal`. */
export async function serveGateway(config: GatewayConfig, o: ServeOptions): Promise<void> {
  // A worker of a gateway on several cores (./workers.ts) runs a whole gateway of its own, as a replica.
  const worker = workerIndex(o.env);
  const log = createLogger({ level: levelFromEnv(o.env, config.log.level), sink: o.stderr, fields: { component: 'gateway', ...(worker !== undefined ? { worker } : {}) } });
  const count = worker === undefined ? workerCount(config) : 1;
  if (count > 1) return runWorkers(config, count, log, o.signal);
  const gateway = await startGateway({ config: worker !== undefined ? workerConfig(config, worker) : config, log, insecureDevHttp: o.insecureDevHttp, env: o.env });
  await whenAborted(o.signal);
  log.info('gateway.stopping', { activeSessions: gateway.activeSessions });
  await gateway.close();
}
