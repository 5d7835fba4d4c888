/**
 * The gateway on every core: `hoop gateway` with `workers` above 1 forks that many worker
 * processes (node:cluster), which share its listening port (the primary accepts and hands each
 * connection to the next worker) and each run a whole gateway. They share their state as replicas
 * on several machines do, through the PostgreSQL store: reviews, runs, direct credentials, the
 * session index, alerts, the audit stream's delivery and CancelRequests are correct across
 * workers because they are across replicas (./replicas/replica.ts). Each worker is a replica with a data
 * directory of its own, `<dataDir>/workers/<n>` (its recording spool, its policy checkout, its
 * replica id, so that a restarted worker takes over what it left), with the gateway's one SSH host
 * key copied in. The primary restarts a worker that dies (its sessions end, as a dead replica's
 * do) and stops them all on SIGINT or SIGTERM.
 *
 * With the file store there is one process: its data directory is one process's (`workers: auto`
 * is then 1, and more is refused by the configuration).
 *
 * @see https://nodejs.org/api/cluster.html
 */
import { realClock } from '../clock.js';
import cluster, { type Worker } from 'node:cluster';
import { chmod, copyFile, mkdir } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { describeError } from '../errors.js';
import type { Logger } from '../log.js';
import { gatewaySshHostKey, SSH_HOST_KEY_FILE } from '../ssh/gateway/host-key.js';
import type { GatewayConfig } from './config/config.js';
import { checkTrustedPaths, keepOthersFromWriting, trustedPathsOf } from '../config/trusted-paths.js';

/** The environment variable that tells a worker which one it is. */
const WORKER_INDEX = 'HOOP_GATEWAY_WORKER';
/** A worker that dies is started again after this long, doubling while it keeps dying soon after, up to {@link MAX_RESTART_MS}. */
const RESTART_MS = 500;
const MAX_RESTART_MS = 30_000;
/** A worker that ran this long before it died restarts at once again. */
const HEALTHY_MS = 60_000;

/** How many processes serve the port: `auto` is one per core with a shared store, one with the file store. */
export function workerCount(config: Pick<GatewayConfig, 'workers' | 'store'>, cores = availableParallelism()): number {
  if (config.workers !== 'auto') return config.workers;
  return config.store.kind === 'postgres' ? cores : 1;
}

/** The index of this process as a worker of a gateway primary, if it is one. */
export function workerIndex(env: NodeJS.ProcessEnv): number | undefined {
  if (!cluster.isWorker) return undefined;
  const n = Number(env[WORKER_INDEX]);
  return Number.isInteger(n) && n >= 0 ? n : undefined;
}

/** Worker `index`'s configuration: a replica with a data directory of its own (and its policy checkout in it, unless one was configured). */
export function workerConfig(config: GatewayConfig, index: number): GatewayConfig {
  const dataDir = join(config.dataDir, 'workers', String(index));
  const policy = config.policy && { ...config.policy, workDir: config.policy.workDir === join(config.dataDir, 'policy') ? join(dataDir, 'policy') : `${config.policy.workDir}-${index}` };
  const audit = config.audit && { ...config.audit, ...(config.audit.file !== undefined ? { file: `${config.audit.file}.${index}` } : {}) };
  return { ...config, dataDir, ...(policy ? { policy } : {}), ...(audit ? { audit } : {}) };
}

/**
 * The primary: makes the gateway's SSH host key once and gives each worker a copy, forks `count`
 * workers (this same command, which then runs a gateway each: see {@link workerIndex}), restarts
 * one that dies, and on `signal` stops them all and resolves once they are gone.
 */
export async function runWorkers(config: GatewayConfig, count: number, log: Logger, signal: AbortSignal): Promise<void> {
  // Checked before the primary writes there: the key's copies go into the workers' directories.
  keepOthersFromWriting();
  await mkdir(config.dataDir, { recursive: true, mode: 0o700 });
  checkTrustedPaths(trustedPathsOf(config, count));
  await gatewaySshHostKey(config.dataDir);
  for (let i = 0; i < count; i++) {
    const dir = join(config.dataDir, 'workers', String(i));
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await copyFile(join(config.dataDir, SSH_HOST_KEY_FILE), join(dir, SSH_HOST_KEY_FILE))
      .then(() => chmod(join(dir, SSH_HOST_KEY_FILE), 0o600))
      .catch((err: unknown) => log.warn('gateway.worker-key', { error: describeError(err) }));
  }
  log.info('gateway.workers', { workers: count });
  let stopping = false;
  const live = new Map<number, { worker: Worker; started: number }>();
  const delays = new Map<number, number>();
  const start = (index: number): void => {
    if (stopping) return;
    const worker = cluster.fork({ [WORKER_INDEX]: String(index) });
    live.set(index, { worker, started: realClock.now() });
    worker.on('exit', (code, sig) => {
      const ran = realClock.now() - (live.get(index)?.started ?? realClock.now());
      live.delete(index);
      if (stopping) return;
      const delay = ran > HEALTHY_MS ? RESTART_MS : Math.min(MAX_RESTART_MS, (delays.get(index) ?? RESTART_MS / 2) * 2);
      delays.set(index, delay);
      log.error('gateway.worker-died', { worker: index, code, signal: sig, restartInMs: delay });
      setTimeout(() => start(index), delay).unref();
    });
  };
  for (let i = 0; i < count; i++) start(i);
  await new Promise<void>((resolve) => {
    const stop = (): void => {
      stopping = true;
      if (live.size === 0) return resolve();
      for (const { worker } of live.values()) {
        worker.once('exit', () => {
          if (live.size === 0) resolve();
        });
        worker.process.kill('SIGTERM');
      }
    };
    if (signal.aborted) stop();
    else signal.addEventListener('abort', stop, { once: true });
  });
}
