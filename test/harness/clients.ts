/**
 * Real PostgreSQL clients for tests: psql and pgbench run as child processes, with the password
 * from the PGPASSFILE that `hoop connect` wrote.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import pg from 'pg';
import { launch } from './launcher.js';
import { pgBinDir } from './postgres.js';
import type { ConnectInfo } from './stack.js';

/** Result of a finished child process. */
export interface Finished {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `file args` and resolves when it exits (never rejects on a non-zero exit). */
export async function runProcess(file: string, args: string[], options: { env?: NodeJS.ProcessEnv; input?: string; timeoutMs?: number; cwd?: string } = {}): Promise<Finished> {
  const done = await launch({
    file,
    args,
    env: { ...process.env, ...options.env },
    timeoutMs: options.timeoutMs ?? 60_000,
    ...(options.cwd ? { cwd: options.cwd } : {}),
    ...(options.input !== undefined ? { input: options.input } : {}),
  });
  if (done.error?.code === 'ENOENT') throw Object.assign(new Error(`${file}: ${done.error.message}`), { code: 'ENOENT' });
  return { code: done.code, stdout: done.stdout, stderr: done.stderr };
}

/** Environment for libpq clients to reach a `hoop connect` listener. */
export function libpqEnv(info: ConnectInfo): NodeJS.ProcessEnv {
  return { PGPASSFILE: info.pgpassFile, PGHOST: info.host, PGPORT: String(info.port), PGUSER: info.user, PGDATABASE: info.database, PGSSLMODE: 'disable', PGCONNECT_TIMEOUT: '30' };
}

/** Runs psql against the listener (`-X -v ON_ERROR_STOP=1`, plus `args`). */
export function psql(info: ConnectInfo, args: string[], options: { input?: string; env?: NodeJS.ProcessEnv } = {}): Promise<Finished> {
  return runProcess('psql', ['-X', '-v', 'ON_ERROR_STOP=1', ...args], { env: { ...libpqEnv(info), ...options.env }, ...(options.input !== undefined ? { input: options.input } : {}) });
}

/** Starts psql without waiting (for signals, e.g. SIGINT to cancel). */
export function spawnPsql(info: ConnectInfo, args: string[]): ChildProcess {
  return spawn('psql', ['-X', ...args], { env: { ...process.env, ...libpqEnv(info) }, stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Runs pgbench from the server binaries' directory. */
export function pgbench(info: ConnectInfo, args: string[]): Promise<Finished> {
  return runProcess(join(pgBinDir(), 'pgbench'), args, { env: libpqEnv(info), timeoutMs: 120_000 });
}

/** A connected `pg` client for the listener. */
export async function pgClient(info: ConnectInfo, password = info.password): Promise<pg.Client> {
  const client = new pg.Client({ host: info.host, port: info.port, user: info.user, database: info.database, password, ssl: false });
  await client.connect();
  return client;
}
