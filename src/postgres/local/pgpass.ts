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
import { writeRunFile } from '../../runtime-files.js';

/** Escapes `:` and `\` as the pgpass format requires. */
function field(s: string): string {
  return s.replace(/[\\:]/g, (c) => `\\${c}`);
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
