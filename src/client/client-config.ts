/**
 * Where a CLI command finds its gateway, token and trusted CA: a {@link TokenProvider} from the
 * command's `--gateway`, `--token-file` and `--ca-file` flags and the environment (`--token-file`
 * / `HOOP_TOKEN`, a workload token, or the profile `hoop login` saved, refreshed as needed).
 *
 * Inside `hoop run` (`HOOP_RUN_TOKEN` set) the run's credential is the only one.
 */
import { resolveTokenProvider, type ResolvedTokenProvider } from '../auth/token-provider.js';
import { isInteractive, login } from '../auth/login.js';
import { openBrowser } from '../auth/browser.js';
import { InvalidArgumentError, type Command } from 'commander';
import { parseTimeSetting } from '../policy/limits.js';
import type { CliIo } from '../io.js';
import { ErrorCode, HoopError, isHoopError } from '../errors.js';
import { parseShortDuration } from '../time-bound.js';

export type { TokenProvider } from '../auth/token-provider.js';

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

/** An option's time: `1h`, `30m`, `2d` (as `--since` takes them), `30min`, `90s` (PostgreSQL's, as the policy writes them) or a number of seconds; whole seconds. */
export function duration(value: string): number {
  const ms = /^\d+$/.test(value) ? Number(value) * 1000 : (parseShortDuration(value) ?? parseTimeSetting(value));
  if (ms === undefined || !Number.isFinite(ms) || ms < 1000) throw new InvalidArgumentError('must be a time such as 1h, 30m or 90s');
  return Math.round(ms / 1000);
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

/**
 * Refuses what only a person does from their own login (`hoop login`, `hoop logout`) inside a run:
 * there hoop acts with the run's credential only. @throws HoopError RUN_FORBIDDEN
 */
export function refuseInsideRun(env: NodeJS.ProcessEnv, what: string): void {
  if (!env.HOOP_RUN_TOKEN?.trim()) return;
  throw new HoopError(ErrorCode.RUN_FORBIDDEN, `inside hoop run, hoop acts with the run's credential only: it does not ${what}`, {
    hint: `${what} outside the run, as yourself`,
  });
}

/**
 * {@link withGateway} for a person's decision (a review's, asking for access): when the gateway
 * wants a more recent sign-in (the policy's `reviews.requireSignInWithin`) and a person is at the
 * terminal, signs them in anew at the identity provider (it asks for their credentials) and asks
 * once more. Without a terminal the gateway's refusal stands, saying what to run.
 */
export async function withGatewayAsPerson<T>(io: CliIo, flags: GatewayFlags, use: (endpoint: { gateway: string; ca?: Buffer }, token: () => Promise<string>) => Promise<T>): Promise<T> {
  try {
    return await withGateway(io, flags, use);
  } catch (err) {
    if (!isHoopError(err, ErrorCode.SIGN_IN_REQUIRED) || !isInteractive(io.stdin as { isTTY?: boolean } | undefined, io.env)) throw err;
    const say = (text: string): void => void io.stderr.write(`${text}\n`);
    say(`hoop: ${err.message}; signing you in again`);
    await login(
      { gateway: flags.gateway, caFile: flags.caFile, reauth: true },
      { env: io.env, cwd: io.cwd, signal: io.signal, interactive: true, say, openUrl: (url) => openBrowser(url, { env: io.env }) },
    );
    return withGateway(io, flags, use);
  }
}
