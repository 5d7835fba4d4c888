/**
 * `hoop logout`: revoke the refresh token where the identity provider offers revocation, then
 * forget the tokens, the device key and the profile. Doing it twice is not an error.
 *
 * @see https://www.rfc-editor.org/rfc/rfc7009 (token revocation)
 */
import * as client from 'openid-client';
import { describeError } from '../errors.js';
import { discoverIssuer } from './oidc.js';
import { configDir, gatewayOrigin } from './paths.js';
import { ProfileStore, type Profile } from './profiles.js';
import { FileSecretStore, storeOf, type KeyringFactory } from './secret-store.js';

/** What happened to one gateway's login. @see https://www.rfc-editor.org/rfc/rfc7009#section-2.2 */
export interface LogoutResult {
  origin: string;
  /** Whether a profile existed. */
  found: boolean;
  revocation: 'revoked' | 'unsupported' | 'no-refresh-token' | 'failed';
  /** Why revocation failed (the tokens are forgotten anyway). */
  revocationError?: string;
}

/** The world `logout` runs in. @see docs/architecture.md (§7) */
export interface LogoutContext {
  env: NodeJS.ProcessEnv;
  cwd: string;
  keyring?: KeyringFactory | undefined;
}

async function revoke(profile: Profile, refreshToken: string | undefined): Promise<Pick<LogoutResult, 'revocation' | 'revocationError'>> {
  if (!refreshToken || !profile.issuer || !profile.clientId) return { revocation: 'no-refresh-token' };
  try {
    const config = await discoverIssuer(profile.issuer, profile.clientId, { timeoutSeconds: 10, ...(profile.clientSecret !== undefined ? { clientSecret: profile.clientSecret } : {}) });
    if (!config.serverMetadata().revocation_endpoint) return { revocation: 'unsupported' };
    await client.tokenRevocation(config, refreshToken, { token_type_hint: 'refresh_token' });
    return { revocation: 'revoked' };
  } catch (err) {
    return { revocation: 'failed', revocationError: describeError(err) };
  }
}

/**
 * Logs out of the gateway `gateway` (default: the current one), or of every gateway with `all`.
 * @see https://www.rfc-editor.org/rfc/rfc7009
 */
export async function logout(options: { gateway?: string | undefined; all?: boolean | undefined }, ctx: LogoutContext): Promise<LogoutResult[]> {
  const dir = configDir(ctx.env, ctx.cwd);
  const profiles = new ProfileStore(dir);
  const file = await profiles.read();
  let origins: string[];
  if (options.all) origins = Object.keys(file.profiles);
  else {
    const named = options.gateway?.trim() || ctx.env.HOOP_GATEWAY?.trim();
    const origin = named ? gatewayOrigin(named) : file.current;
    origins = origin === undefined ? [] : [origin];
  }
  const results: LogoutResult[] = [];
  for (const origin of origins) {
    const profile = file.profiles[origin];
    const fileStore = new FileSecretStore(dir);
    if (!profile) {
      await fileStore.delete(origin);
      results.push({ origin, found: false, revocation: 'no-refresh-token' });
      continue;
    }
    const store = await storeOf(profile.store, { env: ctx.env, configDir: dir, keyring: ctx.keyring }).catch(() => undefined);
    const secrets = await store?.read(origin).catch(() => undefined);
    const outcome = await revoke(profile, secrets?.refreshToken);
    await store?.delete(origin);
    await fileStore.delete(origin);
    await profiles.remove(origin);
    results.push({ origin, found: true, ...outcome });
  }
  return results;
}
