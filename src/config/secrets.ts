/**
 * Secret references, the only way a configuration names a password or key: `${env:NAME}` (an
 * environment variable of the gateway) or `${file:path}` (a file on the gateway's host, its content
 * without one trailing newline). They are checked when a file is loaded and resolved again each time
 * a secret is used, so rotation needs no restart; a value never appears in an error or a log.
 *
 * Patterns (`policy.allowedSecrets`) limit which references a policy bundle may use: `*` matches
 * any run of the characters of a variable name, or of one path segment (never `/`; `**` is
 * refused), and a `${file:}` reference is matched once normalised (`..` and `.` resolved, as the
 * gateway opens it), so `${file:/run/secrets/hoop/../../../etc/passwd}` is `/etc/passwd` and not
 * under `/run/secrets/hoop/*`. Symbolic links are not followed.
 *
 * @see https://12factor.net/config
 */
import { resolve } from 'node:path';
import * as z from 'zod';
import { ErrorCode, HoopError } from '../errors.js';
import { readTrustedFile } from './trusted-paths.js';
import { glob } from '../glob.js';

/**
 * Where a secret lives. Only the gateway resolves it, with {@link resolveSecret}.
 *
 * Written `${env:NAME}` or `${file:path}` in the file.
 */
export type SecretRef = { kind: 'env'; name: string } | { kind: 'file'; path: string };

const SECRET_REF = /^\$\{(env|file):([^}]*)\}$/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
/**
 * Parses a `${env:NAME}` or `${file:path}` reference; file paths are resolved against `baseDir`.
 * Returns undefined when `text` is not a well-formed reference.
 *
 * @see https://12factor.net/config (configuration from the environment)
 */
export function parseSecretRef(text: string, baseDir: string): SecretRef | undefined {
  const m = SECRET_REF.exec(text.trim());
  if (!m) return undefined;
  const [, kind, arg = ''] = m;
  if (kind === 'env') return ENV_NAME.test(arg) ? { kind: 'env', name: arg } : undefined;
  return arg.trim() === '' ? undefined : { kind: 'file', path: resolve(baseDir, arg.trim()) };
}

/**
 * Resolves a secret reference to its value: the environment variable, or the file's content
 * without one trailing newline. Errors name the variable or file, never the value.
 *
 * @see https://docs.docker.com/engine/swarm/secrets/ (secrets mounted as files)
 * @throws HoopError SECRET_UNRESOLVED
 */
export async function resolveSecret(ref: SecretRef, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  if (ref.kind === 'env') {
    const value = env[ref.name];
    if (value === undefined || value === '') {
      throw new HoopError(ErrorCode.SECRET_UNRESOLVED, `environment variable ${ref.name} is ${value === undefined ? 'not set' : 'empty'}`, {
        hint: `set ${ref.name} in the gateway's environment`,
      });
    }
    return value;
  }
  // A secret another user could replace is not the operator's, nor one another may read (sshd's StrictModes): the file read is the file checked.
  let text: string;
  try {
    text = (await readTrustedFile(ref.path, true)).toString('utf8');
  } catch (err) {
    if (err instanceof HoopError) throw err;
    throw new HoopError(ErrorCode.SECRET_UNRESOLVED, `cannot read secret file ${ref.path} (${(err as NodeJS.ErrnoException).code ?? 'error'})`, {
      hint: 'make the file exist and readable by the gateway',
      cause: err,
    });
  }
  const value = text.endsWith('\r\n') ? text.slice(0, -2) : text.endsWith('\n') ? text.slice(0, -1) : text;
  if (value === '') {
    throw new HoopError(ErrorCode.SECRET_UNRESOLVED, `secret file ${ref.path} is empty`, { hint: 'write the secret into the file' });
  }
  return value;
}

/**
 * Whether `ref` can be resolved in `env`: undefined when it can, else the problem, prefixed with
 * `what` (it names the variable or file, never a value).
 *
 * @see https://12factor.net/config (configuration from the environment)
 */
export async function unresolvedSecret(ref: SecretRef, env: NodeJS.ProcessEnv, what = 'secret reference'): Promise<string | undefined> {
  try {
    await resolveSecret(ref, env);
    return undefined;
  } catch (err) {
    return `${what} does not resolve: ${(err as Error).message}`;
  }
}

/**
 * A secret reference in its canonical form: `${env:NAME}`, or `${file:/path}` with the path normalised.
 *
 * @see https://nodejs.org/api/path.html#pathresolvepaths (normalisation)
 */
export function formatSecretRef(ref: SecretRef): string {
  return ref.kind === 'env' ? `\${env:${ref.name}}` : `\${file:${resolve('/', ref.path)}}`;
}

/**
 * One entry of the gateway's `policy.allowedSecrets`: the secret references a policy bundle may
 * use. In `${env:PROD_DB_*}` a `*` stands for any run (including none) of letters, digits and
 * `_`; in `${file:/run/secrets/hoop/*}` for any run of characters within one path segment (never
 * `/`). File references are compared once normalised (see {@link secretAllowed}).
 *
 * @see https://pubs.opengroup.org/onlinepubs/9799919799/basedefs/V1_chap08.html (environment variable names)
 * @see https://pubs.opengroup.org/onlinepubs/9799919799/basedefs/V1_chap04.html#tag_04_16 (pathname resolution)
 */
export interface SecretPattern {
  /** As written (trimmed). */
  text: string;
  kind: SecretRef['kind'];
  /** Whether a variable name, or a normalised absolute path, matches (the whole of it). */
  matches: (value: string) => boolean;
}

const ENV_PATTERN = /^[A-Za-z0-9_*]+$/;

/**
 * Parses an entry of `policy.allowedSecrets` (see {@link SecretPattern}): `${env:...}` with a
 * variable name that may hold `*` (not `*` alone: that would admit the whole environment), or
 * `${file:/...}` with an absolute, normalised path (no empty, `.` or `..` segments, no trailing
 * `/`) that may hold `*` but not `**`.
 *
 * @see https://pubs.opengroup.org/onlinepubs/9799919799/basedefs/V1_chap08.html (environment variable names)
 * @returns the pattern, or what is wrong with the entry
 */
export function parseSecretPattern(text: string): SecretPattern | { problem: string } {
  const trimmed = text.trim();
  const m = SECRET_REF.exec(trimmed);
  if (!m) return { problem: 'must be a secret reference or a glob of them, like "${env:PROD_DB_*}" or "${file:/run/secrets/hoop/*}"' };
  const kind = m[1] as SecretRef['kind'];
  const arg = kind === 'file' ? m[2]!.trim() : m[2]!;
  if (kind === 'env') {
    if (!ENV_PATTERN.test(arg) || !ENV_NAME.test(arg.replaceAll('*', 'A'))) {
      return { problem: '${env:...} takes a variable name of letters, digits and _ (not starting with a digit), with * for any run of them' };
    }
    if (!/[^*]/.test(arg)) return { problem: "would admit every variable of the gateway's environment; name them, e.g. ${env:PROD_DB_*}" };
    return { text: trimmed, kind, matches: glob(arg, { starTakes: (c) => /[A-Za-z0-9_]/.test(c) }) };
  }
  if (!arg.startsWith('/')) return { problem: '${file:...} takes an absolute path on the gateway host, e.g. ${file:/run/secrets/hoop/*}' };
  if (/[\x00-\x1f\x7f]/.test(arg)) return { problem: 'the path must not contain control characters' };
  if (
    arg
      .slice(1)
      .split('/')
      .some((seg) => seg === '' || seg === '.' || seg === '..')
  ) {
    return { problem: 'the path must be normalised: no empty, "." or ".." segments and no trailing /' };
  }
  if (arg.includes('**')) return { problem: '** is not supported: * matches within one path segment (list each directory)' };
  return { text: trimmed, kind, matches: glob(arg, { starTakes: (c) => c !== '/' }) };
}

/**
 * Parses every entry of an allow-list of secret references (see {@link parseSecretPattern}).
 *
 * @see https://pubs.opengroup.org/onlinepubs/9799919799/basedefs/V1_chap04.html#tag_04_16 (pathname resolution)
 * @throws HoopError USAGE naming each malformed entry.
 */
export function parseSecretPatterns(list: readonly string[]): SecretPattern[] {
  const parsed = list.map((text) => ({ text, result: parseSecretPattern(text) }));
  const bad = parsed.filter((p) => 'problem' in p.result);
  if (bad.length > 0) {
    throw new HoopError(ErrorCode.USAGE, `allowed secrets: ${bad.map((p) => `${JSON.stringify(p.text)} ${(p.result as { problem: string }).problem}`).join('; ')}`);
  }
  return parsed.map((p) => p.result as SecretPattern);
}

/**
 * True when a pattern admits `ref`. A file path is normalised first (`.` and `..` resolved, as
 * opening it would), so a reference can never climb out of an allowed directory by its spelling.
 *
 * @see https://pubs.opengroup.org/onlinepubs/9799919799/basedefs/V1_chap04.html#tag_04_16 (pathname resolution)
 */
export function secretAllowed(ref: SecretRef, patterns: readonly SecretPattern[]): boolean {
  const value = ref.kind === 'env' ? ref.name : resolve('/', ref.path);
  return patterns.some((p) => p.kind === ref.kind && p.matches(value));
}

export const secretSchema = z.string({ error: 'must be a secret reference like ${env:NAME} or ${file:path}' }).check((ctx) => {
  if (!SECRET_REF.test(ctx.value.trim())) {
    ctx.issues.push({ code: 'custom', input: ctx.value, message: 'must be a secret reference like ${env:NAME} or ${file:path}, not a literal password' });
  } else if (parseSecretRef(ctx.value, '/') === undefined) {
    ctx.issues.push({ code: 'custom', input: ctx.value, message: 'malformed secret reference: ${env:NAME} needs a variable name of letters, digits and _, ${file:path} a path' });
  }
});
