/**
 * The files `hoop connect` gives its local clients: a private password file for libpq clients
 * (psql, pgbench, and every driver built on libpq) holding the per-session password, and the
 * certificate of its local port (the `sslrootcert` of `sslmode=verify-full`). They live in a
 * 0700 directory of the user (`$XDG_RUNTIME_DIR/hoop`, else the temp dir), are 0600, carry a
 * random part in their names (two `hoop connect`s never share, overwrite or delete each other's),
 * are created exclusively, and are removed when the tunnel stops.
 *
 * @see https://www.postgresql.org/docs/current/libpq-pgpass.html
 */
import { randomBytes } from 'node:crypto';
import { rm, writeFile } from 'node:fs/promises';
import { ensurePrivateDir } from '../auth/private-file.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Escapes `:` and `\` as the pgpass format requires. */
function field(s: string): string {
  return s.replace(/[\\:]/g, (c) => `\\${c}`);
}

/** Where hoop keeps this user's runtime files: `$XDG_RUNTIME_DIR/hoop`, else `<tmp>/hoop-<uid>`. */
export function runtimeBase(env: NodeJS.ProcessEnv): string {
  if (env.XDG_RUNTIME_DIR) return join(env.XDG_RUNTIME_DIR, 'hoop');
  const uid = typeof process.getuid === 'function' ? process.getuid() : 'user';
  return join(tmpdir(), `hoop-${uid}`);
}

/**
 * The runtime directory ({@link runtimeBase}), made if missing and checked to be the user's own
 * (in a shared temp directory another user could have made it first).
 * @throws HoopError CONFIG_INVALID naming it when it is not
 */
export async function runtimeDir(env: NodeJS.ProcessEnv): Promise<string> {
  const dir = runtimeBase(env);
  await ensurePrivateDir(dir);
  return dir;
}

/** Writes a file of this run in `dir` (never an existing one) and returns its path. */
export async function writeRunFile(dir: string, stem: string, extension: string, text: string): Promise<string> {
  const file = join(dir, `${stem}-${randomBytes(6).toString('hex')}${extension}`);
  await writeFile(file, text, { mode: 0o600, flag: 'wx' });
  return file;
}

/**
 * Writes a pgpass file for listeners (a line each; `*` matches any host, for a unix socket) in
 * `dir` and returns its path.
 * @see https://www.postgresql.org/docs/current/libpq-pgpass.html
 */
export function writePgpass(options: { dir: string; name: string; entries: ReadonlyArray<{ host: string; port: number; password: string; socketPath?: string }> }): Promise<string> {
  const lines = options.entries.map((e) => `${e.socketPath ? '*' : field(e.host)}:${e.port}:*:*:${field(e.password)}\n`);
  return writeRunFile(options.dir, `${options.name}-${options.entries[0]?.port ?? 0}`, '.pgpass', lines.join(''));
}

/**
 * Writes the certificate of one listener's TLS (a PEM file, its clients' `sslrootcert`) in `dir`
 * and returns its path.
 * @see https://www.postgresql.org/docs/current/libpq-connect.html#LIBPQ-CONNECT-SSLROOTCERT
 */
export function writeRootCert(options: { dir: string; name: string; port: number; pem: string }): Promise<string> {
  return writeRunFile(options.dir, `${options.name}-${options.port}`, '.crt', options.pem);
}

/** Removes a file written by {@link writePgpass} or {@link writeRootCert}. */
export async function removeRunFile(file: string): Promise<void> {
  await rm(file, { force: true });
}
