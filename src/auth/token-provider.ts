/**
 * Where `hoop connect` (and every command that talks to the gateway) gets its bearer token,
 * and how it stays fresh.
 *
 * Inside `hoop run` (`HOOP_RUN_TOKEN` set), the run's credential is the only source: no other
 * flag, variable or stored login is read, and nothing is renewed.
 *
 * Otherwise: `--token-file` / `HOOP_TOKEN` (static, never renewed) → workload sources named by the
 * environment (`HOOP_ID_TOKEN`, `HOOP_ID_TOKEN_FILE`, GitHub Actions, `HOOP_K8S_TOKEN_FILE`;
 * fetched again on renewal) → the current profile, or with a gateway named the profile used there
 * (the current one if it is there, else the one last made current there; refreshed with its
 * refresh token, rotated refresh tokens saved back) → a Kubernetes service account token found at a
 * default path. A stored profile goes before the default Kubernetes paths because nearly every
 * pod has a service account token mounted, and a person who logged in means to be themselves.
 *
 * While someone listens with {@link TokenProvider.onRenewed}, the provider renews ahead of
 * expiry: 60 s before, or at half-life for tokens shorter than two minutes. A renewal that fails
 * is reported once (until one succeeds again) and retried until the token expires, unless the
 * provider said the login is over (then the user must log in again).
 *
 * @see docs/internals.md (§3)
 * @see https://www.rfc-editor.org/rfc/rfc6749#section-6 (refreshing an access token)
 */
import { type Clock, realClock } from '../clock.js';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import * as client from 'openid-client';
import { ErrorCode, HoopError, describeError, isHoopError } from '../errors.js';
import { getAuthConfig } from '../api-client/identity.js';
import { withFileLock } from './lock.js';
import { discoverIssuer, jwtExpiry, jwtIssuedAt, presentedToken, providerError, resourceParameters, secretsFromTokenResponse, type TokenGrant } from './oidc.js';
import { configDir, gatewayOrigin } from './paths.js';
import { ProfileStore, secretsKeyOf, type Profile, type WorkloadSource } from './profiles.js';
import { storeOf, type KeyringFactory, type SecretStore } from './secret-store.js';
import { describeWorkload, detectWorkload, fetchWorkloadToken, KUBERNETES_TOKEN_FILES, type DetectedWorkload } from './workload.js';

export type { TokenGrant } from './oidc.js';

/**
 * A source of bearer tokens for one gateway.
 * @see docs/internals.md (§3)
 */
export interface TokenProvider {
  /** The gateway base URL to use. */
  readonly gateway: string;
  /** The CA for the gateway (`--ca-file` / `HOOP_CA_FILE` / stored in the profile). */
  readonly ca?: Buffer;
  readonly source: 'env' | 'file' | 'workload' | 'profile' | 'run';
  /** A valid token; refreshes when it is due. HoopError NOT_LOGGED_IN / TOKEN_REJECTED with hints. */
  current(): Promise<TokenGrant>;
  /** While listeners exist, renews ahead of expiry. */
  onRenewed(listener: (grant: TokenGrant) => void): () => void;
  onRenewFailed(listener: (err: HoopError) => void): () => void;
  /** Stops timers. */
  close(): void;
}

/**
 * What {@link resolveTokenProvider} returns: a {@link TokenProvider} that also says where its
 * tokens are kept.
 * @see docs/internals.md (§3)
 */
export interface ResolvedTokenProvider extends TokenProvider {
  /** The gateway origin. */
  readonly origin: string;
  /** The stored profile, when the token comes from one (or a workload login recorded one). */
  readonly profile?: Profile;
  /** Where the token comes from or is kept, for people. */
  readonly storeDescription: string;
}

/** Renew this long before expiry (less for short tokens: half their lifetime). @see https://www.rfc-editor.org/rfc/rfc6749#section-6 */
export const RENEW_LEAD_MS = 60_000;

/**
 * When a token that expires at `expiresAt` and was issued at `issuedAt` should be renewed.
 * @see https://www.rfc-editor.org/rfc/rfc6749#section-6
 */
export function renewalTime(expiresAt: Date, issuedAt: Date | undefined): Date {
  const lifetime = issuedAt ? expiresAt.getTime() - issuedAt.getTime() : Infinity;
  const lead = Math.min(RENEW_LEAD_MS, Math.max(0, lifetime / 2));
  return new Date(expiresAt.getTime() - lead);
}

/** Errors after which renewing again is pointless. */
const final = new WeakSet<Error>();
const finalError = (err: HoopError): HoopError => {
  final.add(err);
  return err;
};

/** Common state of the providers; subclasses say how to obtain a token. */
abstract class BaseTokenProvider implements ResolvedTokenProvider {
  abstract readonly source: TokenProvider['source'];
  abstract readonly storeDescription: string;
  readonly gateway: string;
  readonly origin: string;
  readonly ca?: Buffer;
  readonly profile?: Profile;
  readonly #clock: Clock;
  #grant: TokenGrant | undefined;
  #pending: Promise<TokenGrant> | undefined;
  readonly #renewed = new Set<(grant: TokenGrant) => void>();
  readonly #failed = new Set<(err: HoopError) => void>();
  #stop: (() => void) | undefined;
  /** The token renewal listeners last heard of. */
  #announced: string | undefined;
  #reported = false;
  #closed = false;

  constructor(options: { gateway: string; origin: string; ca?: Buffer | undefined; profile?: Profile | undefined; clock?: Clock | undefined }) {
    this.gateway = options.gateway;
    this.origin = options.origin;
    if (options.ca) this.ca = options.ca;
    if (options.profile) this.profile = options.profile;
    this.#clock = options.clock ?? realClock;
  }

  /** The time on this provider's clock. */
  protected now(): Date {
    return new Date(this.#clock.now());
  }

  /** Whether a fresher token can ever be obtained. */
  protected abstract readonly renewable: boolean;
  /** Gets a token (a fresher one than `previous` when it can). */
  protected abstract obtain(previous: TokenGrant | undefined): Promise<TokenGrant>;

  protected due(grant: TokenGrant): boolean {
    return grant.expiresAt !== undefined && this.#clock.now() >= renewalTime(grant.expiresAt, grant.issuedAt).getTime();
  }

  async current(): Promise<TokenGrant> {
    const held = this.#grant;
    if (held && (!this.renewable || !this.due(held))) return held;
    try {
      return await this.#obtain();
    } catch (err) {
      // A renewal that failed for now does not stop a token that is still good.
      if (held?.expiresAt && !final.has(err as Error) && this.#clock.now() < held.expiresAt.getTime() - 5_000) return held;
      throw err;
    }
  }

  #obtain(): Promise<TokenGrant> {
    this.#pending ??= this.obtain(this.#grant)
      .then((grant) => {
        const issuedAt = grant.issuedAt ?? jwtIssuedAt(grant.token) ?? this.now();
        this.#grant = { ...grant, issuedAt };
        return this.#grant;
      })
      .finally(() => {
        this.#pending = undefined;
      });
    return this.#pending;
  }

  onRenewed(listener: (grant: TokenGrant) => void): () => void {
    this.#renewed.add(listener);
    this.#schedule();
    return () => {
      this.#renewed.delete(listener);
      if (this.#renewed.size === 0) this.#cancel();
    };
  }

  onRenewFailed(listener: (err: HoopError) => void): () => void {
    this.#failed.add(listener);
    return () => this.#failed.delete(listener);
  }

  close(): void {
    this.#closed = true;
    this.#cancel();
    this.#renewed.clear();
    this.#failed.clear();
  }

  #cancel(): void {
    this.#stop?.();
    this.#stop = undefined;
  }

  #schedule(delayMs?: number): void {
    if (this.#closed || !this.renewable || this.#renewed.size === 0 || this.#stop) return;
    const grant = this.#grant;
    if (!grant) {
      this.current().then(
        () => this.#schedule(),
        () => undefined,
      );
      return;
    }
    if (!grant.expiresAt) return;
    this.#announced ??= grant.token;
    const delay = delayMs ?? Math.max(0, renewalTime(grant.expiresAt, grant.issuedAt).getTime() - this.#clock.now());
    this.#stop = this.#clock.timer(delay, () => {
      this.#stop = undefined;
      void this.#renew();
    });
  }

  async #renew(): Promise<void> {
    const before = this.#grant;
    try {
      // A command may have renewed it meanwhile (current() for a new tunnel): pass that one on.
      const grant = before && !this.due(before) && before.token !== this.#announced ? before : await this.#obtain();
      if (this.#closed) return;
      if (grant.token === this.#announced) {
        throw new HoopError(ErrorCode.NOT_LOGGED_IN, `no fresher token is available from ${this.storeDescription}`, { hint: this.loginHint() });
      }
      this.#announced = grant.token;
      this.#reported = false;
      for (const listener of [...this.#renewed]) listener(grant);
      this.#schedule();
    } catch (err) {
      if (this.#closed) return;
      const error = isHoopError(err) ? err : new HoopError(ErrorCode.INTERNAL, describeError(err), { cause: err });
      if (!this.#reported) {
        this.#reported = true;
        for (const listener of [...this.#failed]) listener(error);
      }
      const expiresAt = before?.expiresAt;
      const left = expiresAt ? expiresAt.getTime() - this.#clock.now() : 0;
      if (final.has(error) || left <= 0) return;
      this.#schedule(Math.min(15_000, Math.max(1_000, left / 4)));
    }
  }

  /** What to run to log in again. */
  loginHint(): string {
    return `run \`hoop login --gateway ${this.origin}\`, then connect again`;
  }
}

/** A token given as is (`HOOP_TOKEN`, `--token-file`, a run's credential): never renewed. */
class StaticTokenProvider extends BaseTokenProvider {
  readonly source: 'env' | 'file' | 'run';
  readonly storeDescription: string;
  protected readonly renewable = false;
  readonly #token: string;

  constructor(token: string, source: 'env' | 'file' | 'run', where: string, options: ConstructorParameters<typeof BaseTokenProvider>[0]) {
    super(options);
    this.#token = token;
    this.source = source;
    this.storeDescription = where;
  }

  protected async obtain(): Promise<TokenGrant> {
    const expiresAt = jwtExpiry(this.#token);
    return { token: this.#token, ...(expiresAt ? { expiresAt } : {}) };
  }
}

/** A workload's token, fetched again from its source whenever it is due. */
class WorkloadTokenProvider extends BaseTokenProvider {
  readonly source = 'workload' as const;
  readonly storeDescription: string;
  protected readonly renewable: boolean;
  readonly #workload: WorkloadSource;
  readonly #env: NodeJS.ProcessEnv;
  readonly #fetch: typeof fetch | undefined;

  constructor(workload: WorkloadSource, env: NodeJS.ProcessEnv, fetchFn: typeof fetch | undefined, options: ConstructorParameters<typeof BaseTokenProvider>[0]) {
    super(options);
    this.#workload = workload;
    this.#env = env;
    this.#fetch = fetchFn;
    this.renewable = workload.kind !== 'env';
    this.storeDescription = `${describeWorkload(workload)} (workload token, not stored)`;
  }

  protected async obtain(): Promise<TokenGrant> {
    const token = await fetchWorkloadToken(this.#workload, { env: this.#env, ...(this.#fetch ? { fetch: this.#fetch } : {}) });
    const expiresAt = jwtExpiry(token);
    return { token, ...(expiresAt ? { expiresAt } : {}) };
  }

  override loginHint(): string {
    return `check that ${describeWorkload(this.#workload)} provides a fresh token the gateway trusts`;
  }
}

/** A stored login: tokens in the secret store, refreshed with the refresh token. */
class ProfileTokenProvider extends BaseTokenProvider {
  readonly source = 'profile' as const;
  readonly storeDescription: string;
  protected readonly renewable = true;
  readonly #store: SecretStore;
  readonly #lockFile: string;
  readonly #profile: Profile;
  /** Where its secrets are in the store. */
  readonly #key: string;
  #config: Promise<client.Configuration> | undefined;

  constructor(profile: Profile, store: SecretStore, dir: string, options: ConstructorParameters<typeof BaseTokenProvider>[0]) {
    super({ ...options, profile });
    this.#profile = profile;
    this.#store = store;
    this.#key = secretsKeyOf(profile);
    this.storeDescription = store.describe(this.#key);
    this.#lockFile = join(dir, 'locks', `${createHash('sha256').update(this.#key).digest('base64url').slice(0, 32)}.lock`);
  }

  /** The gateway and the identity, for messages. */
  get #who(): string {
    return `${this.origin} as ${this.#profile.subject}`;
  }

  #notLoggedIn(message: string): HoopError {
    return finalError(new HoopError(ErrorCode.NOT_LOGGED_IN, message, { hint: this.loginHint() }));
  }

  protected async obtain(previous: TokenGrant | undefined): Promise<TokenGrant> {
    return withFileLock(this.#lockFile, async () => {
      const secrets = await this.#store.read(this.#key);
      if (!secrets) throw this.#notLoggedIn(`no tokens for ${this.#who} in ${this.storeDescription}`);
      const stored = presentedToken(secrets, this.#profile.tokenType);
      // Another hoop process may have renewed it already.
      if (stored && stored.token !== previous?.token && !this.due(stored)) return stored;
      if (!secrets.refreshToken) throw this.#notLoggedIn(`your login to ${this.#who} has expired and cannot be renewed (the identity provider gave no refresh token)`);
      const { issuer, clientId } = this.#profile;
      if (!issuer || !clientId) throw this.#notLoggedIn(`the profile of ${this.#who} does not say which identity provider to renew the login with`);
      this.#config ??= discoverIssuer(issuer, clientId, this.#profile.clientSecret !== undefined ? { clientSecret: this.#profile.clientSecret } : {}).catch((err: unknown) => {
        this.#config = undefined;
        throw err;
      });
      const config = await this.#config;
      let response: client.TokenEndpointResponse;
      try {
        response = await client.refreshTokenGrant(config, secrets.refreshToken, resourceParameters(this.#profile.resource));
      } catch (err) {
        const e = providerError(err, new URL(issuer).origin, 'renew your login');
        if (e.code === ErrorCode.NOT_LOGGED_IN) throw this.#notLoggedIn(`your login to ${this.#who} has expired and cannot be renewed: ${e.message}`);
        throw e;
      }
      const next = secretsFromTokenResponse(response, this.now(), secrets);
      await this.#store.write(this.#key, next);
      const grant = presentedToken(next, this.#profile.tokenType);
      if (!grant) {
        throw new HoopError(ErrorCode.GATEWAY_PROTOCOL, `the identity provider renewed the login without the ${this.#profile.tokenType === 'id' ? 'ID' : 'access'} token the gateway wants`, {
          hint: this.loginHint(),
        });
      }
      return grant;
    });
  }
}

/**
 * Options of {@link resolveTokenProvider}.
 * @see docs/internals.md (§3)
 */
export interface ResolveTokenProviderOptions {
  env: NodeJS.ProcessEnv;
  cwd: string;
  /** `--gateway`. */
  gateway?: string | undefined;
  /** `--token-file`. */
  tokenFile?: string | undefined;
  /** `--ca-file`. */
  caFile?: string | undefined;
  /** Whether a person is at a terminal (providers never prompt either way). */
  isTTY?: boolean | undefined;
  /** The keychain (default `@napi-rs/keyring`). */
  keyring?: KeyringFactory | undefined;
  /** The clock renewals run on (the real one unless a test holds it). */
  clock?: Clock | undefined;
  /** For the GitHub Actions token request. */
  fetch?: typeof fetch | undefined;
  /** Whether a file exists (for the default Kubernetes paths). */
  exists?: ((path: string) => boolean) | undefined;
}

async function readNamed(file: string, what: string, flag: string): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch (err) {
    throw new HoopError(ErrorCode.USAGE, `cannot read the ${what} file ${file}: ${describeError(err)}`, { hint: `check ${flag}` });
  }
}

/**
 * The token provider for this invocation (see the module comment for the order).
 * @see docs/internals.md (§3)
 */
export async function resolveTokenProvider(options: ResolveTokenProviderOptions): Promise<ResolvedTokenProvider> {
  const { env, cwd } = options;
  const inRun = env.HOOP_RUN_TOKEN?.trim();
  if (inRun) {
    if (options.tokenFile !== undefined) {
      throw new HoopError(ErrorCode.USAGE, "inside hoop run, hoop acts with the run's credential only: --token-file is refused", {
        hint: 'leave out --token-file; the run names its gateway and credential',
      });
    }
    const gateway = env.HOOP_GATEWAY?.trim();
    if (!gateway) throw new HoopError(ErrorCode.USAGE, 'HOOP_RUN_TOKEN is set without HOOP_GATEWAY', { hint: 'hoop run sets both; start the command with hoop run' });
    const ca = env.HOOP_CA_FILE ? await readNamed(resolve(cwd, env.HOOP_CA_FILE), 'CA', 'HOOP_CA_FILE') : undefined;
    return runTokenProvider(gateway, ca, inRun, options.clock);
  }
  const dir = configDir(env, cwd);
  const profiles = new ProfileStore(dir);
  const explicitGateway = options.gateway?.trim() || env.HOOP_GATEWAY?.trim() || undefined;

  let staticToken: { token: string; source: 'env' | 'file'; where: string } | undefined;
  if (options.tokenFile) {
    const file = resolve(cwd, options.tokenFile);
    const token = (await readNamed(file, 'token', '--token-file')).toString('utf8').trim();
    if (!token) throw new HoopError(ErrorCode.NOT_LOGGED_IN, `the token file ${file} is empty`, { hint: 'write an OIDC token the gateway trusts into it, or run `hoop login`' });
    staticToken = { token, source: 'file', where: `the token file ${file}` };
  } else if (env.HOOP_TOKEN?.trim()) {
    staticToken = { token: env.HOOP_TOKEN.trim(), source: 'env', where: '$HOOP_TOKEN' };
  }
  const detected = staticToken ? undefined : detectWorkload({ env, cwd, exists: () => false });

  // A token from the environment with a gateway named: no stored profile is read at all.
  let stored: { origin: string; profile: Profile } | undefined;
  if (!explicitGateway) stored = await profiles.current();
  else if (!staticToken && !detected) stored = await profiles.atGateway(gatewayOrigin(explicitGateway));
  const gateway = explicitGateway ?? stored?.profile.gateway;
  if (!gateway && !staticToken && !detected) {
    throw new HoopError(ErrorCode.NOT_LOGGED_IN, 'not logged in to any gateway', {
      hint: 'run `hoop login --gateway https://gateway.example.com` (or pass --gateway / set HOOP_GATEWAY with HOOP_TOKEN)',
    });
  }
  if (!gateway) {
    throw new HoopError(ErrorCode.USAGE, 'no gateway given', {
      hint: 'pass --gateway https://gateway.example.com or set HOOP_GATEWAY (`hoop login --gateway URL` remembers it)',
    });
  }
  const origin = gatewayOrigin(gateway);
  const caFile = options.caFile ?? env.HOOP_CA_FILE ?? stored?.profile.caFile;
  const ca = caFile ? await readNamed(resolve(cwd, caFile), 'CA', '--ca-file / HOOP_CA_FILE') : undefined;
  const base = { gateway, origin, ca, clock: options.clock, profile: stored?.profile };

  if (staticToken) return new StaticTokenProvider(staticToken.token, staticToken.source, staticToken.where, base);

  const workloadProvider = async (found: DetectedWorkload): Promise<ResolvedTokenProvider> => {
    let source: WorkloadSource;
    if (found.kind === 'github') {
      const recorded = stored?.profile.workload?.kind === 'github' ? stored.profile.workload.audience : undefined;
      const audience = env.HOOP_AUDIENCE?.trim() || recorded || (await workloadAudience(gateway, ca));
      source = { kind: 'github', audience };
    } else source = found;
    return new WorkloadTokenProvider(source, env, options.fetch, base);
  };
  if (detected) return workloadProvider(detected);

  if (stored) {
    const { profile } = stored;
    if (profile.workload) return new WorkloadTokenProvider(profile.workload, env, options.fetch, base);
    const store = await storeOf(profile.store, { env, configDir: dir, keyring: options.keyring });
    return new ProfileTokenProvider(profile, store, dir, base);
  }

  const exists = options.exists;
  const k8s = detectWorkload({ env, cwd, ...(exists ? { exists } : {}) });
  if (k8s?.kind === 'kubernetes' && (KUBERNETES_TOKEN_FILES as readonly string[]).includes(k8s.path)) return workloadProvider(k8s);

  throw new HoopError(ErrorCode.NOT_LOGGED_IN, `not logged in to ${origin}`, {
    hint: `run \`hoop login --gateway ${origin}\`; in CI use --id-token-file, HOOP_ID_TOKEN or HOOP_TOKEN`,
  });
}

async function workloadAudience(gateway: string, ca: Buffer | undefined): Promise<string> {
  try {
    const config = await getAuthConfig({ gateway, ca });
    if (config.workloadAudience) return config.workloadAudience;
  } catch (err) {
    if (!isHoopError(err, ErrorCode.USAGE)) throw err;
  }
  throw new HoopError(ErrorCode.USAGE, 'the gateway does not say which audience a GitHub Actions token must carry', {
    hint: "set HOOP_AUDIENCE to the audience of the gateway's workload issuer",
  });
}

/**
 * The provider of a run's credential (`hoop run`'s ports, and hoop inside its command): the token
 * as the gateway issued it, never renewed, never stored.
 */
export function runTokenProvider(gateway: string, ca: Buffer | undefined, token: string, clock?: Clock): ResolvedTokenProvider {
  return new StaticTokenProvider(token, 'run', "the run's credential (HOOP_RUN_TOKEN)", { gateway, origin: gatewayOrigin(gateway), ca, clock });
}
