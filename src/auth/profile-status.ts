/**
 * The identities logged in, as `hoop profiles` shows them (each with when its token expires and
 * whether it is renewed without a new login), and switching the current one.
 *
 * @see docs/connect.md#identity
 */
import { presentedToken } from './oidc.js';
import { configDir, gatewayOrigin } from './paths.js';
import { findProfile, originOf, ProfileStore, secretsKeyOf, type KeyedProfile, type Profile, type StoreKind } from './profiles.js';
import { storeOf, type KeyringFactory } from './secret-store.js';

/** One profile as `hoop profiles ls` lists it. @see docs/reference.md#output */
export interface ProfileStatus {
  /** The profile key: `<gateway origin>#<subject>`. */
  name: string;
  current: boolean;
  gateway: string;
  subject: string;
  email?: string;
  kind: Profile['kind'];
  store: StoreKind;
  /** `held`: tokens are kept; `none`: none are (log in again); `workload`: fetched from its source on each use. */
  tokens: 'held' | 'none' | 'workload';
  /** When the token held expires, ISO 8601. */
  expiresAt?: string;
  /** A refresh token is held: an expired token is renewed on use. */
  renewable: boolean;
  loggedInAt: string;
}

/** The world these run in. @see docs/architecture.md (conventions) */
export interface ProfileContext {
  env: NodeJS.ProcessEnv;
  cwd: string;
  keyring?: KeyringFactory | undefined;
}

/** What `profile`'s stored tokens say: whether there are any, when the one presented expires, whether it renews. */
async function tokenStatus(profile: Profile, ctx: ProfileContext): Promise<Pick<ProfileStatus, 'tokens' | 'expiresAt' | 'renewable'>> {
  if (profile.workload) return { tokens: 'workload', renewable: true };
  const store = await storeOf(profile.store, { env: ctx.env, configDir: configDir(ctx.env, ctx.cwd), keyring: ctx.keyring }).catch(() => undefined);
  const secrets = await store?.read(secretsKeyOf(profile)).catch(() => undefined);
  const grant = secrets ? presentedToken(secrets, profile.tokenType) : undefined;
  if (!secrets || (!grant && !secrets.refreshToken)) return { tokens: 'none', renewable: false };
  return { tokens: 'held', ...(grant?.expiresAt ? { expiresAt: grant.expiresAt.toISOString() } : {}), renewable: secrets.refreshToken !== undefined };
}

/** Every profile, by gateway then subject, with its token's status. */
export async function profileStatuses(ctx: ProfileContext): Promise<ProfileStatus[]> {
  const file = await new ProfileStore(configDir(ctx.env, ctx.cwd)).read();
  const rows = await Promise.all(
    Object.entries(file.profiles).map(async ([name, p]) => ({
      name,
      current: name === file.current,
      gateway: originOf(p),
      subject: p.subject,
      ...(p.email ? { email: p.email } : {}),
      kind: p.kind,
      store: p.store,
      ...(await tokenStatus(p, ctx)),
      loggedInAt: p.loggedInAt,
    })),
  );
  return rows.sort((a, b) => a.gateway.localeCompare(b.gateway) || a.subject.localeCompare(b.subject));
}

/**
 * Makes the profile `name` (a subject, an email or a profile key; at `gateway` when given) current.
 * @throws HoopError (usage) when no profile or several have that name
 */
export async function useProfile(name: string, gateway: string | undefined, ctx: ProfileContext): Promise<KeyedProfile> {
  const profiles = new ProfileStore(configDir(ctx.env, ctx.cwd));
  const found = findProfile(await profiles.read(), name, gateway === undefined ? undefined : gatewayOrigin(gateway));
  await profiles.use(found.key);
  return found;
}
