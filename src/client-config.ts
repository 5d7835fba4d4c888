/**
 * Where a CLI command finds its gateway, token and trusted CA: a {@link TokenProvider} from the
 * command's `--gateway`, `--token-file` and `--ca-file` flags and the environment (`--token-file`
 * / `HOOP_TOKEN`, a workload token, or the profile `hoop login` saved, refreshed as needed).
 *
 * @see /work/shared/ARCHITECTURE.md ("Identity")
 */
import { resolveTokenProvider, type ResolvedTokenProvider } from './auth/token-provider.js';
import { isInteractive } from './auth/login.js';
import type { Command } from 'commander';
import type { CliIo } from './io.js';

export type { TokenProvider } from './auth/token-provider.js';

/** The flags every command that talks to the gateway takes. */
export interface GatewayFlags {
  gateway?: string | undefined;
  tokenFile?: string | undefined;
  caFile?: string | undefined;
}

/** The token provider for a command (see {@link resolveTokenProvider} for the order of sources). */
export function commandTokenProvider(io: CliIo, flags: GatewayFlags): Promise<ResolvedTokenProvider> {
  return resolveTokenProvider({
    env: io.env,
    cwd: io.cwd,
    gateway: flags.gateway,
    tokenFile: flags.tokenFile,
    caFile: flags.caFile,
    isTTY: isInteractive(io.stdin as { isTTY?: boolean } | undefined, io.env),
  });
}

/** Adds the options every command that calls the gateway's API takes: `--gateway`, `--ca-file`, `--token-file`. */
export function gatewayOptions(c: Command): Command {
  return c
    .option('--gateway <url>', 'gateway URL (default: $HOOP_GATEWAY, else the current profile)')
    .option('--ca-file <file>', "trust this CA for the gateway certificate (default: $HOOP_CA_FILE, else the profile's)")
    .option('--token-file <file>', 'use the token in this file instead (default: $HOOP_TOKEN, else the login)');
}

/**
 * Calls `use` with the gateway's endpoint and a token getter (a fresh token on each call: a long
 * wait outlives the first), then closes the provider.
 */
export async function withGateway<T>(io: CliIo, flags: GatewayFlags, use: (endpoint: { gateway: string; ca?: Buffer }, token: () => Promise<string>) => Promise<T>): Promise<T> {
  const provider = await commandTokenProvider(io, flags);
  try {
    return await use({ gateway: provider.gateway, ...(provider.ca ? { ca: provider.ca } : {}) }, async () => (await provider.current()).token);
  } finally {
    provider.close();
  }
}
