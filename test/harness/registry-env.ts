/**
 * What reaches the package registry on this machine: its CA bundle, its proxies and npm's own
 * settings (`npm_config_*`), and the user's npm configuration file. A test that starts hoop with
 * an environment of its own (a HOME of its own, PATH) keeps them, as a person's own shell does,
 * so that what hoop fetches with npm (the demo's PostgreSQL) reaches the registry as `npm ci` did.
 */
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

const REGISTRY = /^(?:NODE_EXTRA_CA_CERTS|SSL_CERT_FILE|SSL_CERT_DIR|(?:HTTPS?|NO|ALL)_PROXY|npm_config_.+)$/i;

/** The registry's part of `env` (see the module documentation). */
export function registryEnv(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const kept: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(env)) if (REGISTRY.test(k) && v !== undefined) kept[k] = v;
  const userConfig = join(env.HOME ?? homedir(), '.npmrc');
  if (!Object.keys(kept).some((k) => k.toLowerCase() === 'npm_config_userconfig') && existsSync(userConfig)) kept.npm_config_userconfig = userConfig;
  return kept;
}
