/**
 * `hoop logout`: revoke the refresh token where the identity provider offers revocation, then
 * forget the tokens, the device key and the profile: of the current identity, of the one a name
 * or a gateway picks, or of every one. Doing it twice is not an error.
 *
 * @see https://www.rfc-editor.org/rfc/rfc7009 (token revocation)
 */
import * as client from 'openid-client';
import { describeError } from '../errors.js';
import { discoverIssuer } from './oidc.js';
import { configDir, gatewayOrigin } from './paths.js';
import { findProfile, originOf, profileAt, ProfileStore, secretsKeyOf, type KeyedProfile, type Profile, type ProfilesFile } from './profiles.js';
import { FileSecretStore, storeOf, type KeyringFactory } from './secret-store.js';

/** What happened to one identity's login at one gateway. @see https://www.rfc-editor.org/rfc/rfc7009#section-2.2 */
export interface LogoutResult {
  origin: string;
  /** The identity logged out (absent when no profile was found). */
  subject?: string;
  /** Whether a profile existed. */
  found: boolean;
  revocation: 'revoked' | 'unsupported' | 'no-refresh-token' | 'failed';
  /** Why revocation failed (the tokens are forgotten anyway). */
  revocationError?: string;
}

/** What {@link logout} did, and the profile that became current when the current one was logged out. */
export interface LoggedOut {
  results: LogoutResult[];
  current?: KeyedProfile;
}

/** What to log out of: the current identity unless a profile name, a gateway or all is given. */
export interface LogoutOptions {
  /** A subject, email or profile key (with `gateway`: at that gateway). */
  profile?: string | undefined;
  gateway?: string | undefined;
  all?: boolean | undefined;
}

/** The world `logout` runs in. @see docs/architecture.md (conventions) */
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

/** The keys of the profiles to log out of; a gateway named with no profile there is given as its origin alone. @throws HoopError (usage) for a name that picks none or several */
function keysToLogOut(file: ProfilesFile, options: LogoutOptions, env: NodeJS.ProcessEnv): { keys: string[]; unknownOrigin?: string } {
  if (options.all) return { keys: Object.keys(file.profiles) };
  const named = options.gateway?.trim() || env.HOOP_GATEWAY?.trim();
  const origin = named ? gatewayOrigin(named) : undefined;
  if (options.profile !== undefined) return { keys: [findProfile(file, options.profile, origin).key] };
  if (origin === undefined) return { keys: file.current === undefined ? [] : [file.current] };
  const at = profileAt(file, origin);
  return at === undefined ? { keys: [], unknownOrigin: origin } : { keys: [at.key] };
}

/** Revokes and forgets the login of `profile` (of key `key`). */
async function forget(profiles: ProfileStore, key: string, profile: Profile, ctx: LogoutContext): Promise<LogoutResult> {
  const dir = configDir(ctx.env, ctx.cwd);
  const secretsKey = secretsKeyOf(profile);
  const store = await storeOf(profile.store, { env: ctx.env, configDir: dir, keyring: ctx.keyring }).catch(() => undefined);
  const secrets = await store?.read(secretsKey).catch(() => undefined);
  const outcome = await revoke(profile, secrets?.refreshToken);
  await store?.delete(secretsKey);
  await new FileSecretStore(dir).delete(secretsKey);
  await profiles.remove(key);
  return { origin: originOf(profile), subject: profile.subject, found: true, ...outcome };
}

/**
 * Logs out of the current identity, of the one `options` names, or of every one with `all`.
 * @see https://www.rfc-editor.org/rfc/rfc7009
 */
export async function logout(options: LogoutOptions, ctx: LogoutContext): Promise<LoggedOut> {
  const dir = configDir(ctx.env, ctx.cwd);
  const profiles = new ProfileStore(dir);
  const file = await profiles.read();
  const { keys, unknownOrigin } = keysToLogOut(file, options, ctx.env);
  if (unknownOrigin !== undefined) {
    // An older hoop's tokens of that gateway, if any are left.
    await new FileSecretStore(dir).delete(unknownOrigin);
    return { results: [{ origin: unknownOrigin, found: false, revocation: 'no-refresh-token' }] };
  }
  const results: LogoutResult[] = [];
  for (const key of keys) results.push(await forget(profiles, key, file.profiles[key]!, ctx));
  const current = await profiles.current();
  return { results, ...(current && current.key !== file.current ? { current } : {}) };
}
