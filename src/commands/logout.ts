/**
 * `hoop logout`: revoke the refresh token at the identity provider (when it can), forget the
 * tokens, the device key and the profile. Logging out twice is fine.
 */
import { Command } from 'commander';
import { logout } from '../auth/logout.js';
import type { CliIo } from '../io.js';
import { refuseInsideRun } from '../client/client-config.js';

/** Builds the `logout` command. */
export function logoutCommand(io: CliIo): Command {
  return new Command('logout')
    .description('forget the tokens of a gateway (revoking them where the identity provider allows)')
    .option('--gateway <url>', 'gateway URL (default: $HOOP_GATEWAY, else the current profile)')
    .option('--all', 'log out of every gateway')
    .action(async (opts: { gateway?: string; all?: boolean }) => {
      refuseInsideRun(io.env, 'log out');
      const results = await logout({ gateway: opts.gateway, all: opts.all }, { env: io.env, cwd: io.cwd });
      if (results.length === 0) {
        io.stdout.write('Not logged in.\n');
        return;
      }
      for (const r of results) {
        if (!r.found) {
          io.stdout.write(`Not logged in to ${r.origin}.\n`);
          continue;
        }
        const revocation = {
          revoked: 'the refresh token was revoked at the identity provider',
          unsupported: 'the identity provider offers no revocation; the tokens expire on their own',
          'no-refresh-token': 'there was no refresh token to revoke',
          failed: 'the identity provider could not be asked to revoke the refresh token',
        }[r.revocation];
        io.stdout.write(`Logged out of ${r.origin}: tokens and device key forgotten; ${revocation}.\n`);
        if (r.revocationError) io.stderr.write(`hoop: revocation failed: ${r.revocationError}\n`);
      }
    });
}
