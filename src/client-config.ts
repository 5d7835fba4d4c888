/**
 * Where the CLI finds its gateway, token and trusted CA. The token comes from a
 * {@link TokenProvider}: `--token-file` / `HOOP_TOKEN`, a workload token, or the profile
 * `hoop login` saved (refreshed as needed). Long-running commands use the provider itself so
 * they can renew; one-shot commands can take a single token with {@link loadClientCredentials}.
 *
 * @see /work/shared/ARCHITECTURE.md ("Identity")
 */
import { ErrorCode, HoopError } from './errors.js';
import { resolveTokenProvider, type ResolveTokenProviderOptions, type TokenProvider } from './auth/token-provider.js';

export type { TokenProvider } from './auth/token-provider.js';

/** The gateway, token and CA the CLI uses to reach the gateway. */
export interface ClientCredentials {
  gateway: string;
  token: string;
  ca?: Buffer;
}

/** The gateway URL from `HOOP_GATEWAY`, or a usage error saying how to set it. */
export function gatewayFromEnv(env: NodeJS.ProcessEnv): string {
  const url = env.HOOP_GATEWAY?.trim();
  if (!url) {
    throw new HoopError(ErrorCode.USAGE, 'no gateway given', { hint: 'pass --gateway https://gateway.example.com or set HOOP_GATEWAY' });
  }
  return url;
}

/** The token provider for a command (see {@link resolveTokenProvider} for the order of sources). */
export function clientTokenProvider(options: ResolveTokenProviderOptions): Promise<TokenProvider> {
  return resolveTokenProvider(options);
}

/** One valid token (and the gateway and CA) for a short command that does not need renewal. */
export async function loadClientCredentials(options: ResolveTokenProviderOptions): Promise<ClientCredentials> {
  const provider = await resolveTokenProvider(options);
  try {
    const { token } = await provider.current();
    return { gateway: provider.gateway, token, ...(provider.ca ? { ca: provider.ca } : {}) };
  } finally {
    provider.close();
  }
}
