/**
 * `hoop logout [profile]`: revoke the refresh token at the identity provider (when it can), forget
 * the tokens, the device key and the profile of the current identity (or of the one named, or of
 * every one with `--all`). Logging out twice is fine.
 */
import { Command } from 'commander';
import { logout, type LogoutResult } from '../auth/logout.js';
import { ErrorCode, HoopError } from '../errors.js';
import type { CliIo } from '../io.js';
import { refuseInsideRun } from '../client/client-config.js';

const REVOCATION: Record<LogoutResult['revocation'], string> = {
  revoked: 'the refresh token was revoked at the identity provider',
  unsupported: 'the identity provider offers no revocation; the tokens expire on their own',
  'no-refresh-token': 'there was no refresh token to revoke',
  failed: 'the identity provider could not be asked to revoke the refresh token',
};

/** The line said of one logout. */
function said(r: LogoutResult): string {
  if (!r.found) return `Not logged in to ${r.origin}.\n`;
  return `Logged out of ${r.origin} as ${r.subject}: tokens and device key forgotten; ${REVOCATION[r.revocation]}.\n`;
}

/** Builds the `logout` command. */
export function logoutCommand(io: CliIo): Command {
  return new Command('logout')
    .description('forget the tokens of the current identity (or the one named), revoking them where the identity provider allows')
    .argument('[profile]', 'the identity to log out of instead: its subject, email or profile key (hoop profiles ls lists them)')
    .option('--gateway <url>', 'gateway URL (default: $HOOP_GATEWAY, else the current profile)')
    .option('--all', 'log out of every identity at every gateway')
    .action(async (profile: string | undefined, opts: { gateway?: string; all?: boolean }) => {
      refuseInsideRun(io.env, 'log out');
      if (profile !== undefined && opts.all) throw new HoopError(ErrorCode.USAGE, 'a profile and --all do not go together', { hint: 'name one identity, or pass --all for every one' });
      const { results, current } = await logout({ profile, gateway: opts.gateway, all: opts.all }, { env: io.env, cwd: io.cwd });
      if (results.length === 0) io.stdout.write('Not logged in.\n');
      for (const r of results) {
        io.stdout.write(said(r));
        if (r.revocationError) io.stderr.write(`hoop: revocation failed: ${r.revocationError}\n`);
      }
      if (current) io.stdout.write(`Now current: ${current.profile.subject} at ${current.origin} (hoop profiles use switches).\n`);
    });
}
