/**
 * Where a CLI command finds its gateway, token and trusted CA: a {@link TokenProvider} from the
 * command's `--gateway`, `--token-file` and `--ca-file` flags and the environment (`--token-file`
 * / `HOOP_TOKEN`, a workload token, or the profile `hoop login` saved, refreshed as needed).
 *
 * @see /work/shared/ARCHITECTURE.md ("Identity")
 */
import { resolveTokenProvider, type ResolvedTokenProvider } from './auth/token-provider.js';
import { isInteractive } from './auth/login.js';
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
