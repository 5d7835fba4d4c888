/**
 * `hoop login`: learn from the gateway how to log in (`GET /v1/auth/config`), get a token (the
 * browser, the device flow, or a workload token), check it with the gateway (`GET /v1/whoami`),
 * register the device key (`POST /v1/devices`), and keep it all in the profile of that identity at
 * that gateway (another identity's profile there is left as it is).
 *
 * Without a terminal (no TTY on stdin, or `CI` set) no interactive flow starts: it would wait
 * for a person who is not there. Workload sources work everywhere.
 *
 * @see docs/internals.md (§3)
 * @see https://www.rfc-editor.org/rfc/rfc8252 (native apps)
 * @see https://www.rfc-editor.org/rfc/rfc8628 (device authorization grant)
 */
import { realClock } from '../clock.js';
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import type * as client from 'openid-client';
import { ErrorCode, HoopError, describeError, isHoopError } from '../errors.js';
import { gatewayBaseUrl } from '../tunnel/transport.js';
import { loginWithBrowser } from './browser-login.js';
import { createDeviceKey, defaultDeviceName, deviceFingerprint, isValidDeviceKey, type DeviceKeyPair } from './device-key.js';
import { loginWithDevice, plainDeviceView, type DeviceLoginView } from './device-login.js';
import { getAuthConfig, getWhoAmI, registerDevice } from '../api-client/identity.js';
import type { AuthConfig, RegisteredDevice, WhoAmI } from '../api/answers.js';
import type { GatewayEndpoint } from '../api-client/request.js';
import { discoverIssuer, presentedToken, secretsFromTokenResponse } from './oidc.js';
import { configDir } from './paths.js';
import { originOf, ProfileStore, profileKey, secretsKeyOf, type Profile, type WorkloadSource } from './profiles.js';
import { storeOf, writeSecrets, type KeyringFactory, type Secrets, type SecretStoreOptions, type WrittenSecrets } from './secret-store.js';
import { describeWorkload, detectWorkload, fetchWorkloadToken, type DetectedWorkload } from './workload.js';

/** Default wait for the browser or the device approval. @see https://www.rfc-editor.org/rfc/rfc8252 */
export const DEFAULT_LOGIN_TIMEOUT_SECONDS = 300;

/** What the user asked for. @see docs/internals.md (§3) */
export interface LoginOptions {
  gateway?: string | undefined;
  caFile?: string | undefined;
  /** Print the URL only; do not start a browser. */
  noBrowser?: boolean | undefined;
  /** Use the device authorization grant. */
  device?: boolean | undefined;
  idTokenFile?: string | undefined;
  /** Audience for a GitHub Actions token (default: the gateway's `workloadAudience`). */
  audience?: string | undefined;
  timeoutSeconds?: number | undefined;
  /** Sign in anew at the identity provider even where it has a session (a decision wants a recent sign-in). */
  reauth?: boolean | undefined;
}

/** The world `login` runs in. @see docs/architecture.md (conventions) */
export interface LoginContext {
  env: NodeJS.ProcessEnv;
  cwd: string;
  signal?: AbortSignal | undefined;
  /** A person is at a terminal (stdin is a TTY and `CI` is not set). */
  interactive: boolean;
  /** Writes text for the user (stderr); no trailing newline needed. */
  say: (text: string) => void;
  /** The device flow's live view, when a person watches a terminal (the CLI passes its ink view); else plain lines through `say`. */
  liveView?: (() => Promise<DeviceLoginView>) | undefined;
  keyring?: KeyringFactory | undefined;
  /** Starts a browser; default: the platform opener. */
  openUrl?: ((url: string) => Promise<boolean>) | undefined;
  now?: (() => Date) | undefined;
  fetch?: typeof fetch | undefined;
  exists?: ((path: string) => boolean) | undefined;
}

/** What `login` did. @see docs/internals.md (§3) */
export interface LoginResult {
  origin: string;
  /** The profile's key (its gateway's origin and its subject). */
  key: string;
  profile: Profile;
  /** The subjects of the other identities kept for this gateway. */
  others: string[];
  whoami: WhoAmI;
  /** Where the tokens (and the device private key) are kept. */
  storeDescription: string;
  fingerprint: string;
  device?: RegisteredDevice;
  /** Why the device key could not be registered (login still succeeded). */
  deviceError?: HoopError;
  /** Said on stderr this time: tokens are in a file because no keychain answered. */
  fileStoreNotice?: string;
}

/**
 * True when a person can answer a browser or device prompt: stdin is a terminal and `CI` is
 * not set (to anything but `0`/`false`).
 * @see https://nodejs.org/api/tty.html#readstreamistty
 */
export function isInteractive(stdin: { isTTY?: boolean } | undefined, env: NodeJS.ProcessEnv): boolean {
  const ci = env.CI?.trim().toLowerCase();
  return stdin?.isTTY === true && (!ci || ci === '0' || ci === 'false');
}

/**
 * Logs in to a gateway and saves its profile. See the module comment.
 * @see docs/internals.md (§3)
 */
export async function login(options: LoginOptions, ctx: LoginContext): Promise<LoginResult> {
  const now = ctx.now ?? (() => new Date(realClock.now()));
  const dir = configDir(ctx.env, ctx.cwd);
  const profiles = new ProfileStore(dir);
  const { gateway, origin, existing } = await gatewayToLogInTo(options, ctx.env, profiles);
  const caFile = caFileFor(options, ctx, existing);
  const endpoint: GatewayEndpoint = { gateway, ca: caFile ? await readCaFile(caFile) : undefined };
  const signedIn = await signIn(endpoint, origin, options, ctx, now);
  const whoami = await getWhoAmI(endpoint, signedIn.token);
  const stores: SecretStoreOptions = { env: ctx.env, configDir: dir, keyring: ctx.keyring };
  const kept = await keepLogin({ profiles, stores, endpoint, gateway, origin, whoami, signedIn, caFile, now });
  if (kept.fileStoreNotice) ctx.say(`hoop: ${kept.fileStoreNotice}`);
  return { origin, whoami, ...kept };
}

/** What {@link keepLogin} is given: the signed-in identity and where to keep it. */
interface Keeping {
  profiles: ProfileStore;
  stores: SecretStoreOptions;
  endpoint: GatewayEndpoint;
  gateway: string;
  origin: string;
  whoami: WhoAmI;
  signedIn: SignedIn;
  caFile: string | undefined;
  now: () => Date;
}

/** Registers the device key, keeps the secrets and saves the identity's profile as the current one, replacing only this identity's. */
async function keepLogin(k: Keeping): Promise<Omit<LoginResult, 'origin' | 'whoami'>> {
  const key = profileKey(k.origin, k.whoami.subject);
  const same = await k.profiles.get(key);
  const device = await registerDeviceKey(k.endpoint, k.signedIn.token, same, k.stores);
  const written = await writeSecrets(key, { ...k.signedIn.secrets, deviceKey: device.deviceKey }, k.stores);
  if (same && (same.store !== written.store.kind || secretsKeyOf(same) !== key)) await forgetSecrets(same, k.stores);
  const profile = profileOf({ gateway: k.gateway, whoami: k.whoami, signedIn: k.signedIn, store: written.store.kind, caFile: k.caFile, key: device, now: k.now });
  const storeDescription = written.store.describe(key);
  const fileStoreNotice = await saveProfile(k.profiles, key, profile, written, storeDescription, k.now);
  const others = Object.entries((await k.profiles.read()).profiles).filter(([other, p]) => other !== key && originOf(p) === k.origin);
  return {
    key,
    profile,
    others: others.map(([, p]) => p.subject),
    storeDescription,
    fingerprint: profile.fingerprint!,
    ...(device.device ? { device: device.device } : {}),
    ...(device.deviceError ? { deviceError: device.deviceError } : {}),
    ...(fileStoreNotice ? { fileStoreNotice } : {}),
  };
}

/** The gateway to log in to (`--gateway`, else `HOOP_GATEWAY`, else the current profile's), its origin, and the profile used there. */
async function gatewayToLogInTo(options: LoginOptions, env: NodeJS.ProcessEnv, profiles: ProfileStore): Promise<{ gateway: string; origin: string; existing: Profile | undefined }> {
  const named = options.gateway?.trim() || env.HOOP_GATEWAY?.trim() || (await profiles.current())?.profile.gateway;
  if (!named) throw new HoopError(ErrorCode.USAGE, 'no gateway given', { hint: 'pass --gateway https://gateway.example.com or set HOOP_GATEWAY' });
  const base = gatewayBaseUrl(named);
  return { gateway: base.href.replace(/\/$/, ''), origin: base.origin, existing: (await profiles.atGateway(base.origin))?.profile };
}

/** The CA file to trust for the gateway (`--ca-file`, else `HOOP_CA_FILE`, else the profile's), as an absolute path. */
function caFileFor(options: LoginOptions, ctx: LoginContext, existing: Profile | undefined): string | undefined {
  const caSetting = options.caFile ?? ctx.env.HOOP_CA_FILE ?? existing?.caFile;
  return caSetting ? resolve(ctx.cwd, caSetting) : undefined;
}

/** The CA file's bytes. @throws HoopError (usage) when it cannot be read */
async function readCaFile(caFile: string): Promise<Buffer> {
  try {
    return await readFile(caFile);
  } catch (err) {
    throw new HoopError(ErrorCode.USAGE, `cannot read the CA file ${caFile}: ${describeError(err)}`, { hint: 'check --ca-file / HOOP_CA_FILE' });
  }
}

/** A token for the gateway and what came with it: the secrets to keep, the gateway's login settings, the workload source it came from. */
interface SignedIn {
  token: string;
  secrets: Secrets;
  authConfig?: AuthConfig | undefined;
  workload?: WorkloadSource | undefined;
}

/** Signs in with a workload token when one is found, else (at a terminal only) with the browser or the device flow. */
async function signIn(endpoint: GatewayEndpoint, origin: string, options: LoginOptions, ctx: LoginContext, now: () => Date): Promise<SignedIn> {
  const detected = detectWorkload({ env: ctx.env, cwd: ctx.cwd, idTokenFile: options.idTokenFile, ...(ctx.exists ? { exists: ctx.exists } : {}) });
  if (detected) return signInAsWorkload(detected, endpoint, origin, options, ctx);
  // Away from a terminal it waits for a person only when told to (--no-browser, --device): a CI job would wait for nobody.
  if (!ctx.interactive && !options.noBrowser && !options.device) {
    throw new HoopError(ErrorCode.NOT_LOGGED_IN, 'not at a terminal: hoop login will not wait for a browser or a device approval', {
      hint: 'in CI, log in with a workload token: --id-token-file PATH or HOOP_ID_TOKEN (GitHub Actions and Kubernetes tokens are found by themselves); to sign in as a person anyway, pass --no-browser or --device',
    });
  }
  return signInAsPerson(endpoint, origin, options, ctx, now);
}

/** Signs in with the workload's token (a GitHub Actions token for the audience asked for, or else the gateway's `workloadAudience`). */
async function signInAsWorkload(detected: DetectedWorkload, endpoint: GatewayEndpoint, origin: string, options: LoginOptions, ctx: LoginContext): Promise<SignedIn> {
  const authConfig = await getAuthConfig(endpoint).catch((err: unknown) => {
    if (isHoopError(err, ErrorCode.USAGE)) return undefined;
    throw err;
  });
  let workload: WorkloadSource;
  if (detected.kind === 'github') {
    const audience = options.audience?.trim() || ctx.env.HOOP_AUDIENCE?.trim() || authConfig?.workloadAudience;
    if (!audience) {
      throw new HoopError(ErrorCode.USAGE, `${origin} does not say which audience a GitHub Actions token must carry`, {
        hint: "pass --audience (the audience of the gateway's workload issuer)",
      });
    }
    workload = { kind: 'github', audience };
  } else workload = detected;
  ctx.say(`Logging in to ${origin} with ${describeWorkload(workload)}...`);
  const token = await fetchWorkloadToken(workload, { env: ctx.env, ...(ctx.fetch ? { fetch: ctx.fetch } : {}) });
  return { token, secrets: {}, authConfig, workload };
}

/** Signs a person in at the gateway's identity provider and takes the token the gateway wants from what it issued. */
async function signInAsPerson(endpoint: GatewayEndpoint, origin: string, options: LoginOptions, ctx: LoginContext, now: () => Date): Promise<SignedIn> {
  const authConfig = await getAuthConfig(endpoint);
  const response = await tokenFromProvider(authConfig, options, ctx, now);
  const secrets = secretsFromTokenResponse(response, now());
  const grant = presentedToken(secrets, authConfig.tokenType);
  if (!grant) {
    throw new HoopError(ErrorCode.GATEWAY_PROTOCOL, `the identity provider did not issue the ${authConfig.tokenType === 'id' ? 'ID' : 'access'} token ${origin} wants`, {
      hint: 'ask the gateway administrator to check the `login` scopes and tokenType',
    });
  }
  return { token: grant.token, secrets, authConfig };
}

/** The identity provider's token response, by the device flow (`--device`) or the browser. */
async function tokenFromProvider(authConfig: AuthConfig, options: LoginOptions, ctx: LoginContext, now: () => Date): Promise<client.TokenEndpointResponse> {
  const config = await discoverIssuer(authConfig.issuer, authConfig.clientId, authConfig.clientSecret !== undefined ? { clientSecret: authConfig.clientSecret } : {});
  const timeoutMs = (options.timeoutSeconds ?? DEFAULT_LOGIN_TIMEOUT_SECONDS) * 1000;
  const common = { scopes: authConfig.scopes, resource: authConfig.resource, timeoutMs, ...(ctx.signal ? { signal: ctx.signal } : {}) };
  if (options.device) {
    const view = ctx.liveView ? await ctx.liveView() : plainDeviceView(ctx.say);
    return loginWithDevice(config, { ...common, view, now });
  }
  return loginWithBrowser(config, {
    ...common,
    say: ctx.say,
    openUrl: options.noBrowser ? undefined : ctx.openUrl,
    reauth: options.reauth,
    redirectPort: authConfig.redirectPort,
    authorizationParams: authConfig.authorizationParams,
  });
}

/** The device key, its fingerprint, and the gateway's registration of it (or why that failed: login still succeeds). */
interface DeviceKeyRegistration {
  deviceKey: DeviceKeyPair;
  fingerprint: string;
  device?: RegisteredDevice;
  deviceError?: HoopError;
}

/** Registers the device key kept for this identity (a new one when none valid is kept) with the gateway. */
async function registerDeviceKey(endpoint: GatewayEndpoint, token: string, same: Profile | undefined, stores: SecretStoreOptions): Promise<DeviceKeyRegistration> {
  const previous = same
    ? await storeOf(same.store, stores)
        .then((s) => s.read(secretsKeyOf(same)))
        .catch(() => undefined)
    : undefined;
  const deviceKey = isValidDeviceKey(previous?.deviceKey) ? previous.deviceKey : createDeviceKey();
  const fingerprint = deviceFingerprint(deviceKey.publicKey);
  try {
    const device = await registerDevice(endpoint, token, { publicKey: deviceKey.publicKey, privateKey: deviceKey.privateKey, name: defaultDeviceName() });
    return { deviceKey, fingerprint, device };
  } catch (err) {
    return { deviceKey, fingerprint, deviceError: isHoopError(err) ? err : new HoopError(ErrorCode.INTERNAL, describeError(err), { cause: err }) };
  }
}

/** Forgets the secrets `profile` kept where this login no longer keeps them (another store, or an older hoop's key). */
async function forgetSecrets(profile: Profile, stores: SecretStoreOptions): Promise<void> {
  await storeOf(profile.store, stores)
    .then((s) => s.delete(secretsKeyOf(profile)))
    .catch(() => undefined);
}

/** The profile for the gateway: who signed in and how, where the tokens are, and the device. */
function profileOf(p: { gateway: string; whoami: WhoAmI; signedIn: SignedIn; store: Profile['store']; caFile: string | undefined; key: DeviceKeyRegistration; now: () => Date }): Profile {
  const { authConfig, workload } = p.signedIn;
  const { whoami, key } = p;
  return {
    gateway: p.gateway,
    issuer: whoami.issuer,
    ...(authConfig && !workload ? { clientId: authConfig.clientId, ...(authConfig.clientSecret !== undefined ? { clientSecret: authConfig.clientSecret } : {}), scopes: authConfig.scopes } : {}),
    ...(authConfig?.resource && !workload ? { resource: authConfig.resource } : {}),
    tokenType: authConfig?.tokenType ?? 'any',
    subject: whoami.subject,
    ...(whoami.email ? { email: whoami.email } : {}),
    kind: whoami.kind,
    store: p.store,
    ...(workload ? { workload } : {}),
    ...(p.caFile ? { caFile: p.caFile } : {}),
    ...(key.device ? { deviceId: key.device.deviceId } : {}),
    fingerprint: key.device?.fingerprint ?? key.fingerprint,
    loggedInAt: p.now().toISOString(),
  };
}

/** Saves `profile` under `key` as the current one; resolves the notice that tokens are kept in a file, the first time they are. */
async function saveProfile(profiles: ProfileStore, key: string, profile: Profile, written: WrittenSecrets, storeDescription: string, now: () => Date): Promise<string | undefined> {
  let fileStoreNotice: string | undefined;
  await profiles.update((file) => {
    file.profiles[key] = { ...profile, selectedAt: now().toISOString() };
    file.current = key;
    if (written.fallbackReason !== undefined && file.fileStoreNoticeAt === undefined) {
      fileStoreNotice = `tokens are kept in ${storeDescription}, because ${written.fallbackReason === 'HOOP_TOKEN_STORE=file' ? 'HOOP_TOKEN_STORE=file' : `no OS keychain answered (${written.fallbackReason})`}; hoop says this once`;
      file.fileStoreNoticeAt = now().toISOString();
    }
  });
  return fileStoreNotice;
}
