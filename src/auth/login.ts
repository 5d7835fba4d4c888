/**
 * `hoop login`: learn from the gateway how to log in (`GET /v1/auth/config`), get a token (the
 * browser, the device flow, or a workload token), check it with the gateway (`GET /v1/whoami`),
 * register the device key (`POST /v1/devices`), and keep it all in a profile for that gateway.
 *
 * Without a terminal (no TTY on stdin, or `CI` set) no interactive flow starts: it would wait
 * for a person who is not there. Workload sources work everywhere.
 *
 * @see docs/architecture.md (§3)
 * @see https://www.rfc-editor.org/rfc/rfc8252 (native apps)
 * @see https://www.rfc-editor.org/rfc/rfc8628 (device authorization grant)
 */
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { ErrorCode, HoopError, describeError, isHoopError } from '../errors.js';
import { gatewayBaseUrl } from '../tunnel/transport.js';
import { loginWithBrowser } from './browser-login.js';
import { createDeviceKey, defaultDeviceName, deviceFingerprint, isValidDeviceKey } from './device-key.js';
import { loginWithDevice, plainDeviceView, type DeviceLoginView } from './device-login.js';
import { getAuthConfig, getWhoAmI, registerDevice, type AuthConfig, type GatewayEndpoint, type RegisteredDevice, type WhoAmI } from './gateway-client.js';
import { discoverIssuer, presentedToken, secretsFromTokenResponse } from './oidc.js';
import { configDir } from './paths.js';
import { ProfileStore, type Profile, type WorkloadSource } from './profiles.js';
import { storeOf, writeSecrets, type KeyringFactory, type Secrets } from './secret-store.js';
import { describeWorkload, detectWorkload, fetchWorkloadToken } from './workload.js';

/** Default wait for the browser or the device approval. @see https://www.rfc-editor.org/rfc/rfc8252 */
export const DEFAULT_LOGIN_TIMEOUT_SECONDS = 300;

/** What the user asked for. @see docs/architecture.md (§3) */
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

/** The world `login` runs in. @see docs/architecture.md (§7) */
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

/** What `login` did. @see docs/architecture.md (§3) */
export interface LoginResult {
  origin: string;
  profile: Profile;
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
 * @see docs/architecture.md (§3)
 */
export async function login(options: LoginOptions, ctx: LoginContext): Promise<LoginResult> {
  const { env, cwd } = ctx;
  const now = ctx.now ?? (() => new Date());
  const dir = configDir(env, cwd);
  const profiles = new ProfileStore(dir);
  const named = options.gateway?.trim() || env.HOOP_GATEWAY?.trim() || (await profiles.current())?.profile.gateway;
  if (!named) throw new HoopError(ErrorCode.USAGE, 'no gateway given', { hint: 'pass --gateway https://gateway.example.com or set HOOP_GATEWAY' });
  const base = gatewayBaseUrl(named);
  const gateway = base.href.replace(/\/$/, '');
  const origin = base.origin;
  const existing = await profiles.get(origin);
  const caSetting = options.caFile ?? env.HOOP_CA_FILE ?? existing?.caFile;
  const caFile = caSetting ? resolve(cwd, caSetting) : undefined;
  let ca: Buffer | undefined;
  if (caFile) {
    try {
      ca = await readFile(caFile);
    } catch (err) {
      throw new HoopError(ErrorCode.USAGE, `cannot read the CA file ${caFile}: ${describeError(err)}`, { hint: 'check --ca-file / HOOP_CA_FILE' });
    }
  }
  const endpoint: GatewayEndpoint = { gateway, ca };

  const detected = detectWorkload({ env, cwd, idTokenFile: options.idTokenFile, ...(ctx.exists ? { exists: ctx.exists } : {}) });
  let token: string;
  let tokenSecrets: Secrets = {};
  let authConfig: AuthConfig | undefined;
  let workload: WorkloadSource | undefined;
  if (detected) {
    authConfig = await getAuthConfig(endpoint).catch((err: unknown) => {
      if (isHoopError(err, ErrorCode.USAGE)) return undefined;
      throw err;
    });
    if (detected.kind === 'github') {
      const audience = options.audience?.trim() || env.HOOP_AUDIENCE?.trim() || authConfig?.workloadAudience;
      if (!audience) {
        throw new HoopError(ErrorCode.USAGE, `${origin} does not say which audience a GitHub Actions token must carry`, {
          hint: "pass --audience (the audience of the gateway's workload issuer)",
        });
      }
      workload = { kind: 'github', audience };
    } else workload = detected;
    ctx.say(`Logging in to ${origin} with ${describeWorkload(workload)}...`);
    token = await fetchWorkloadToken(workload, { env, ...(ctx.fetch ? { fetch: ctx.fetch } : {}) });
  } else {
    if (!ctx.interactive) {
      throw new HoopError(ErrorCode.NOT_LOGGED_IN, 'not at a terminal: hoop login will not wait for a browser or a device approval', {
        hint: 'in CI, log in with a workload token: --id-token-file PATH or HOOP_ID_TOKEN (GitHub Actions and Kubernetes tokens are found by themselves)',
      });
    }
    authConfig = await getAuthConfig(endpoint);
    const config = await discoverIssuer(authConfig.issuer, authConfig.clientId, authConfig.clientSecret !== undefined ? { clientSecret: authConfig.clientSecret } : {});
    const timeoutMs = (options.timeoutSeconds ?? DEFAULT_LOGIN_TIMEOUT_SECONDS) * 1000;
    const common = { scopes: authConfig.scopes, resource: authConfig.resource, timeoutMs, ...(ctx.signal ? { signal: ctx.signal } : {}) };
    let response;
    if (options.device) {
      let view: DeviceLoginView;
      if (ctx.liveView) view = await ctx.liveView();
      else view = plainDeviceView(ctx.say);
      response = await loginWithDevice(config, { ...common, view, now });
    } else {
      response = await loginWithBrowser(config, {
        ...common,
        say: ctx.say,
        openUrl: options.noBrowser ? undefined : ctx.openUrl,
        reauth: options.reauth,
        redirectPort: authConfig.redirectPort,
        authorizationParams: authConfig.authorizationParams,
      });
    }
    tokenSecrets = secretsFromTokenResponse(response, now());
    const grant = presentedToken(tokenSecrets, authConfig.tokenType);
    if (!grant) {
      throw new HoopError(ErrorCode.GATEWAY_PROTOCOL, `the identity provider did not issue the ${authConfig.tokenType === 'id' ? 'ID' : 'access'} token ${origin} wants`, {
        hint: 'ask the gateway administrator to check the `login` scopes and tokenType',
      });
    }
    token = grant.token;
  }

  const whoami = await getWhoAmI(endpoint, token);

  const previous = existing
    ? await storeOf(existing.store, { env, configDir: dir, keyring: ctx.keyring })
        .then((s) => s.read(origin))
        .catch(() => undefined)
    : undefined;
  const deviceKey = isValidDeviceKey(previous?.deviceKey) ? previous.deviceKey : createDeviceKey();
  const fingerprint = deviceFingerprint(deviceKey.publicKey);
  let device: RegisteredDevice | undefined;
  let deviceError: HoopError | undefined;
  try {
    device = await registerDevice(endpoint, token, { publicKey: deviceKey.publicKey, privateKey: deviceKey.privateKey, name: defaultDeviceName() });
  } catch (err) {
    deviceError = isHoopError(err) ? err : new HoopError(ErrorCode.INTERNAL, describeError(err), { cause: err });
  }

  const written = await writeSecrets(origin, { ...tokenSecrets, deviceKey }, { env, configDir: dir, keyring: ctx.keyring });
  if (existing && existing.store !== written.store.kind) {
    await storeOf(existing.store, { env, configDir: dir, keyring: ctx.keyring })
      .then((s) => s.delete(origin))
      .catch(() => undefined);
  }
  const profile: Profile = {
    gateway,
    issuer: whoami.issuer,
    ...(authConfig && !workload ? { clientId: authConfig.clientId, ...(authConfig.clientSecret !== undefined ? { clientSecret: authConfig.clientSecret } : {}), scopes: authConfig.scopes } : {}),
    ...(authConfig?.resource && !workload ? { resource: authConfig.resource } : {}),
    tokenType: authConfig?.tokenType ?? 'any',
    subject: whoami.subject,
    ...(whoami.email ? { email: whoami.email } : {}),
    kind: whoami.kind,
    store: written.store.kind,
    ...(workload ? { workload } : {}),
    ...(caFile ? { caFile } : {}),
    ...(device ? { deviceId: device.deviceId } : {}),
    fingerprint: device?.fingerprint ?? fingerprint,
    loggedInAt: now().toISOString(),
  };
  const storeDescription = written.store.describe(origin);
  let fileStoreNotice: string | undefined;
  await profiles.update((file) => {
    file.profiles[origin] = profile;
    file.current = origin;
    if (written.fallbackReason !== undefined && file.fileStoreNoticeAt === undefined) {
      fileStoreNotice = `tokens are kept in ${storeDescription}, because ${written.fallbackReason === 'HOOP_TOKEN_STORE=file' ? 'HOOP_TOKEN_STORE=file' : `no OS keychain answered (${written.fallbackReason})`}; hoop says this once`;
      file.fileStoreNoticeAt = now().toISOString();
    }
  });
  if (fileStoreNotice) ctx.say(`hoop: ${fileStoreNotice}`);
  return {
    origin,
    profile,
    whoami,
    storeDescription,
    fingerprint: profile.fingerprint!,
    ...(device ? { device } : {}),
    ...(deviceError ? { deviceError } : {}),
    ...(fileStoreNotice ? { fileStoreNotice } : {}),
  };
}
