/**
 * A real HAProxy (Debian's) in TCP mode on a free port of 127.0.0.1, in front of the backend
 * servers a test gives: TLS passes through to them. Started with its configuration in `dir`, and
 * resolved once it listens.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { untilListening } from './listen.js';
import { freePort } from './postgres.js';

/** A running HAProxy: its port, its process (killed by the test), and what it said on stderr. */
export interface Haproxy {
  port: number;
  process: ChildProcess;
  log(): string;
}

/** Starts HAProxy with `backend` (the lines under `backend servers`, indented) behind its frontend. */
export async function startHaproxy(dir: string, backend: string, maxconn = 1000): Promise<Haproxy> {
  const port = await freePort();
  const cfg = join(dir, 'haproxy.cfg');
  await writeFile(
    cfg,
    `global
  maxconn ${maxconn}
defaults
  mode tcp
  timeout connect 2s
  timeout client 1h
  timeout server 1h
frontend hoop
  bind 127.0.0.1:${port}
  default_backend servers
backend servers
${backend}`,
  );
  let log = '';
  const child = spawn('haproxy', ['-f', cfg, '-db'], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stderr!.on('data', (d: Buffer) => (log += d.toString()));
  await untilListening(port, child, 'haproxy', () => log);
  return { port, process: child, log: () => log };
}
