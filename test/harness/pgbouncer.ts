/**
 * A real pgbouncer (Debian's) on a free port of 127.0.0.1 in front of one PostgreSQL database,
 * in the pool mode a test or benchmark asks for; run as `postgres` when root (it refuses root).
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { untilListening } from './listen.js';
import { freePort } from './postgres.js';

/** Where pgbouncer forwards, whom it admits, and how it pools. */
export interface PgbouncerOptions {
  serverPort: number;
  database: string;
  user: string;
  password: string;
  mode: 'session' | 'transaction';
  poolSize?: number;
}

/** A running pgbouncer: its port, what it said, and how to stop it (its files go with it). */
export interface Pgbouncer {
  port: number;
  process: ChildProcess;
  log(): string;
  stop(): void;
}

/** The pgbouncer binary's path, or undefined where it is not installed. */
export function pgbouncerPath(): string | undefined {
  return ['/usr/sbin/pgbouncer', '/usr/bin/pgbouncer'].find((p) => existsSync(p));
}

/** Starts pgbouncer with `o`, resolved once it listens. */
export async function startPgbouncer(o: PgbouncerOptions): Promise<Pgbouncer> {
  const binary = pgbouncerPath();
  if (!binary) throw new Error('pgbouncer is not installed (apt-get install pgbouncer)');
  const dir = mkdtempSync(join(tmpdir(), 'hoop-pgbouncer-'));
  const port = await freePort();
  const quote = (s: string): string => `"${s.replace(/"/g, '""')}"`;
  const auth = join(dir, 'userlist.txt');
  writeFileSync(auth, `${quote(o.user)} ${quote(o.password)}\n`, { mode: 0o600 });
  const ini = join(dir, 'pgbouncer.ini');
  const lines = [
    '[databases]',
    `${o.database} = host=127.0.0.1 port=${o.serverPort} dbname=${o.database}`,
    '[pgbouncer]',
    'listen_addr = 127.0.0.1',
    `listen_port = ${port}`,
    'unix_socket_dir =',
    'auth_type = scram-sha-256',
    `auth_file = ${auth}`,
    `pool_mode = ${o.mode}`,
    'max_client_conn = 100',
    `default_pool_size = ${o.poolSize ?? 20}`,
    'ignore_startup_parameters = extra_float_digits',
    'log_connections = 0',
    'log_disconnections = 0',
    'stats_period = 3600',
    '',
  ];
  writeFileSync(ini, lines.join('\n'), { mode: 0o600 });
  const root = process.getuid?.() === 0;
  if (root) {
    const [uid, gid] = ['-u', '-g'].map((flag) => Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8' }).trim())) as [number, number];
    for (const f of [dir, auth, ini]) chownSync(f, uid, gid);
  }
  const [file, args] = root ? ['runuser', ['-u', 'postgres', '--', binary, ini]] : [binary, [ini]];
  let log = '';
  const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stderr!.on('data', (d: Buffer) => (log += d.toString()));
  child.stdout!.on('data', (d: Buffer) => (log += d.toString()));
  const stop = (): void => {
    child.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  };
  await untilListening(port, child, 'pgbouncer', () => log, 30_000).catch((e: Error) => {
    stop();
    throw e;
  });
  return { port, process: child, log: () => log, stop };
}
