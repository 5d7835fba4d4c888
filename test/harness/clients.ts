/**
 * Real PostgreSQL clients for tests: psql and pgbench run as child processes, with the password
 * from the PGPASSFILE that `hoop connect` wrote.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import pg from 'pg';
import { pgBinDir } from './postgres.js';
import type { ConnectInfo } from './stack.js';

/** Result of a finished child process. */
export interface Finished {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `file args` and resolves when it exits (never rejects on a non-zero exit). */
export function runProcess(file: string, args: string[], options: { env?: NodeJS.ProcessEnv; input?: string; timeoutMs?: number; cwd?: string } = {}): Promise<Finished> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      file,
      args,
      { env: { ...process.env, ...options.env }, maxBuffer: 256 * 1024 * 1024, timeout: options.timeoutMs ?? 60_000, ...(options.cwd ? { cwd: options.cwd } : {}) },
      (err, stdout, stderr) => {
        const code = err && typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : err ? null : 0;
        if (err && code === null && !(err as { killed?: boolean }).killed && (err as NodeJS.ErrnoException).code === 'ENOENT') reject(err);
        else resolve({ code, stdout, stderr });
      },
    );
    // A program that exits before reading all of it closes its stdin: that is its business, not an error here.
    child.stdin?.on('error', () => undefined);
    if (options.input !== undefined) child.stdin!.end(options.input);
  });
}

/** Environment for libpq clients to reach a `hoop connect` listener. */
export function libpqEnv(info: ConnectInfo): NodeJS.ProcessEnv {
  return { PGPASSFILE: info.pgpassFile, PGHOST: info.host, PGPORT: String(info.port), PGUSER: info.user, PGDATABASE: info.database, PGSSLMODE: 'disable', PGCONNECT_TIMEOUT: '10' };
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
