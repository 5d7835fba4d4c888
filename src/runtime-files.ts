/**
 * The files a CLI command gives its local clients (a password file, a port's certificate, an ssh
 * config), in a 0700 directory of the user (`$XDG_RUNTIME_DIR/hoop`, else the temp dir): 0600,
 * with a random part in their names (two commands never share, overwrite or delete each other's),
 * created exclusively, and removed when the command stops.
 */
import { randomBytes } from 'node:crypto';
import { rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensurePrivateDir } from './private-file.js';

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

/** Removes a file written by {@link writeRunFile}. */
export async function removeRunFile(file: string): Promise<void> {
  await rm(file, { force: true });
}
