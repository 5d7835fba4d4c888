/**
 * `hoop profiles`: the identities logged in on this machine, at every gateway (`ls`, also what
 * `hoop profiles` alone does), and which one commands use (`use`). `hoop login` as another
 * identity adds one and makes it current; `hoop logout` forgets the current one.
 */
import { realClock } from '../clock.js';
import { Command } from 'commander';
import { profileStatuses, useProfile, type ProfileStatus } from '../auth/profile-status.js';
import { refuseInsideRun } from '../client/client-config.js';
import type { CliIo } from '../io.js';
import { paintedTable, printJson } from '../ui/output.js';
import { relative } from './whoami.js';

/** The EXPIRES cell of a profile. */
function expires(p: ProfileStatus, now: Date): string {
  if (p.tokens === 'workload') return 'fetched on use';
  if (p.tokens === 'none') return 'no tokens: log in again';
  if (p.expiresAt === undefined) return p.renewable ? 'renewed on use' : '-';
  const at = new Date(p.expiresAt);
  if (at > now) return relative(at, now);
  return `${relative(at, now)}, ${p.renewable ? 'renewed on use' : 'log in again'}`;
}

/** The table `hoop profiles ls` prints. */
function table(io: CliIo, rows: ProfileStatus[]): string {
  const now = new Date(realClock.now());
  return paintedTable(io, [['', 'GATEWAY', 'SUBJECT', 'EMAIL', 'KIND', 'EXPIRES'], ...rows.map((p) => [p.current ? '*' : '', p.gateway, p.subject, p.email ?? '-', p.kind, expires(p, now)])]);
}

/** Builds `hoop profiles ls`. */
function lsCommand(io: CliIo): Command {
  return new Command('ls')
    .description('list the identities logged in, the current one marked *: gateway, subject, email, kind, when the token expires')
    .option('--json', 'print one JSON object: { current, profiles: [{ name, current, gateway, subject, email?, kind, store, tokens, expiresAt?, renewable, loggedInAt }] }')
    .action(async (opts: { json?: boolean }) => {
      const rows = await profileStatuses({ env: io.env, cwd: io.cwd });
      if (opts.json) {
        printJson(io, { current: rows.find((p) => p.current)?.name ?? null, profiles: rows });
        return;
      }
      if (rows.length === 0) {
        io.stdout.write('Not logged in. `hoop login --gateway URL` logs in.\n');
        return;
      }
      io.stdout.write(table(io, rows));
    });
}

/** Builds `hoop profiles use`. */
function selectCommand(io: CliIo): Command {
  return new Command('use')
    .description('make an identity the current one: the one every command uses (hoop login as another identity adds one)')
    .argument('<profile>', "the identity's subject, email or profile key")
    .option('--gateway <url>', 'the identity at this gateway, where it is logged in at several')
    .action(async (name: string, opts: { gateway?: string }) => {
      refuseInsideRun(io.env, 'switch identities');
      const { profile, origin } = await useProfile(name, opts.gateway, { env: io.env, cwd: io.cwd });
      io.stdout.write(`Now current: ${profile.subject}${profile.email ? ` <${profile.email}>` : ''} at ${origin}.\n`);
    });
}

/** Builds the `profiles` command. */
export function profilesCommand(io: CliIo): Command {
  const cmd = new Command('profiles').description('list the identities logged in (one per identity per gateway) and switch between them');
  cmd.addCommand(lsCommand(io), { isDefault: true });
  cmd.addCommand(selectCommand(io));
  return cmd;
}
