/**
 * The key a CLI signs its own records with: the device key `hoop login` made and registered, when
 * the token comes from that login; otherwise (a token from the environment, a workload token with
 * no login) an ephemeral key made for this process and registered with the gateway as ephemeral
 * (`POST /v1/devices` with `ephemeral: true`: accepted for 7 days, long enough to upload what it
 * signed). The private half of an ephemeral key never leaves the process.
 *
 * @see docs/internals.md (§3, §1.5, §5)
 */
import { createPrivateKey, type KeyObject } from 'node:crypto';
import { registerDevice } from '../api-client/identity.js';
import { createDeviceKey, defaultDeviceName, isValidDeviceKey } from './device-key.js';
import { configDir } from './paths.js';
import { secretsKeyOf } from './profiles.js';
import { storeOf } from './secret-store.js';
import type { ResolvedTokenProvider } from './token-provider.js';

/** Resolves the signing key for `provider`'s records; see the module documentation. */
export async function recordingKey(provider: ResolvedTokenProvider, env: NodeJS.ProcessEnv, cwd: string): Promise<KeyObject> {
  const profile = provider.profile;
  if ((provider.source === 'profile' || (provider.source === 'workload' && profile?.workload)) && profile?.deviceId) {
    const store = await storeOf(profile.store, { env, configDir: configDir(env, cwd) });
    const pair = (await store.read(secretsKeyOf(profile)))?.deviceKey;
    if (isValidDeviceKey(pair)) return createPrivateKey(pair.privateKey);
  }
  const pair = createDeviceKey();
  await registerDevice({ gateway: provider.gateway, ca: provider.ca }, (await provider.current()).token, { ...pair, name: `${defaultDeviceName()} pid ${process.pid}`, ephemeral: true });
  return createPrivateKey(pair.privateKey);
}
