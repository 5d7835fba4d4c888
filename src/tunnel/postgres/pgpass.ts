/**
 * A private password file for libpq clients (psql, pgbench, and every driver built on libpq),
 * holding the per-session password of `hoop connect`. It lives in a 0700 directory of the user
 * (`$XDG_RUNTIME_DIR/hoop`, else the temp dir), is 0600, and is removed when the tunnel stops.
 *
 * @see https://www.postgresql.org/docs/current/libpq-pgpass.html
 */
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Escapes `:` and `\` as the pgpass format requires. */
function field(s: string): string {
  return s.replace(/[\\:]/g, (c) => `\\${c}`);
}

/** The directory that holds hoop's runtime files for this user. */
export function runtimeDir(env: NodeJS.ProcessEnv): string {
  if (env.XDG_RUNTIME_DIR) return join(env.XDG_RUNTIME_DIR, 'hoop');
  const uid = typeof process.getuid === 'function' ? process.getuid() : 'user';
  return join(tmpdir(), `hoop-${uid}`);
}

/** Writes a pgpass file for one listener and returns its path. */
export async function writePgpass(options: { env: NodeJS.ProcessEnv; name: string; host: string; port: number; password: string }): Promise<string> {
  const dir = runtimeDir(options.env);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const file = join(dir, `${options.name}-${options.port}.pgpass`);
  await rm(file, { force: true });
  await writeFile(file, `${field(options.host)}:${options.port}:*:*:${field(options.password)}\n`, { mode: 0o600 });
  return file;
}

/** Removes a pgpass file written by {@link writePgpass}. */
export async function removePgpass(file: string): Promise<void> {
  await rm(file, { force: true });
}
