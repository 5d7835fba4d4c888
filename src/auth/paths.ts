/**
 * Where the CLI keeps its state: profiles and (when no keychain answers) token files.
 *
 * `HOOP_CONFIG_DIR` wins (tests use it); else `$XDG_CONFIG_HOME/hoop`; else `~/.config/hoop`.
 *
 * @see https://specifications.freedesktop.org/basedir-spec/latest/ (XDG Base Directory)
 */
import { homedir } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import { gatewayBaseUrl } from '../tunnel/transport.js';

/**
 * The CLI's configuration directory for `env`.
 * @see https://specifications.freedesktop.org/basedir-spec/latest/#variables
 */
export function configDir(env: NodeJS.ProcessEnv, cwd = process.cwd()): string {
  const explicit = env.HOOP_CONFIG_DIR?.trim();
  if (explicit) return resolve(cwd, explicit);
  const xdg = env.XDG_CONFIG_HOME?.trim();
  // The spec says relative XDG paths are invalid and must be ignored.
  if (xdg && isAbsolute(xdg)) return join(xdg, 'hoop');
  return join(env.HOME?.trim() || homedir(), '.config', 'hoop');
}

/**
 * The CLI's state directory for `env` (data that outlives a run but is not configuration, such as
 * `hoop demo`'s cluster): `$XDG_STATE_HOME/hoop`, else `~/.local/state/hoop`.
 * @see https://specifications.freedesktop.org/basedir-spec/latest/#variables
 */
export function stateDir(env: NodeJS.ProcessEnv): string {
  const xdg = env.XDG_STATE_HOME?.trim();
  if (xdg && isAbsolute(xdg)) return join(xdg, 'hoop');
  return join(env.HOME?.trim() || homedir(), '.local', 'state', 'hoop');
}

/**
 * The key of a gateway's profile and secrets: the origin of its normalised base URL
 * (`https://host[:port]`). Throws HoopError(USAGE) for a URL the CLI would not talk to.
 * @see https://url.spec.whatwg.org/#origin
 */
export function gatewayOrigin(gateway: string | URL): string {
  return gatewayBaseUrl(gateway).origin;
}
