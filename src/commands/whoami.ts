/**
 * `hoop whoami`: who the gateway takes you for (identity, kind, groups, expiry), which gateway,
 * where the token is kept and the device key's fingerprint.
 */
import { realClock } from '../clock.js';
import { Command } from 'commander';
import { configDir } from '../auth/paths.js';
import { secretsKeyOf } from '../auth/profiles.js';
import { FileSecretStore } from '../auth/secret-store.js';
import { getWhoAmI } from '../api-client/identity.js';
import { commandTokenProvider } from '../client/client-config.js';
import type { CliIo } from '../io.js';
import { printJson } from '../ui/output.js';

interface WhoamiOptions {
  gateway?: string;
  caFile?: string;
  tokenFile?: string;
  json?: boolean;
}

/** "in 9m 58s" / "5m 2s ago". */
export function relative(to: Date, now: Date): string {
  const s = Math.round((to.getTime() - now.getTime()) / 1000);
  const abs = Math.abs(s);
  const text = abs >= 3600 ? `${Math.floor(abs / 3600)}h ${Math.floor((abs % 3600) / 60)}m` : abs >= 60 ? `${Math.floor(abs / 60)}m ${abs % 60}s` : `${abs}s`;
  return s >= 0 ? `in ${text}` : `${text} ago`;
}

/** Builds the `whoami` command. */
export function whoamiCommand(io: CliIo): Command {
  return new Command('whoami')
    .description('show who the gateway takes you for, your groups, when your token expires and where it is kept')
    .option('--gateway <url>', 'gateway URL (default: $HOOP_GATEWAY, else the current profile)')
    .option('--ca-file <file>', "trust this CA for the gateway certificate (default: $HOOP_CA_FILE, else the profile's)")
    .option('--token-file <file>', 'ask about the token in this file instead (default: $HOOP_TOKEN, else the login)')
    .option('--json', 'print one JSON object')
    .action(async (opts: WhoamiOptions) => {
      const provider = await commandTokenProvider(io, opts);
      try {
        const grant = await provider.current();
        const who = await getWhoAmI({ gateway: provider.gateway, ca: provider.ca }, grant.token);
        const profile = provider.profile;
        const deviceStore = profile ? (profile.store === 'file' ? new FileSecretStore(configDir(io.env, io.cwd)).describe(secretsKeyOf(profile)) : provider.storeDescription) : undefined;
        const device = profile?.fingerprint ? { fingerprint: profile.fingerprint, ...(profile.deviceId ? { deviceId: profile.deviceId } : {}), registered: profile.deviceId !== undefined } : undefined;
        if (opts.json) {
          printJson(io, {
            subject: who.subject,
            ...(who.email ? { email: who.email } : {}),
            kind: who.kind,
            groups: who.groups,
            issuer: who.issuer,
            expiresAt: who.expiresAt,
            gateway: provider.origin,
            tokenSource: provider.source,
            tokenStore: provider.storeDescription,
            device: device ?? null,
            ...(who.run ? { run: who.run } : {}),
          });
          return;
        }
        const expires = new Date(who.expiresAt);
        io.stdout.write(
          [
            `${who.subject}${who.email ? ` <${who.email}>` : ''}`,
            ...(who.run
              ? [`  as:      agent ${who.run.agent} in run ${who.run.id} (via ${who.run.via}, ${who.run.isolated ? 'contained' : 'not contained'}; connections ${who.run.connections.join(', ')})`]
              : []),
            `  kind:    ${who.kind}`,
            `  groups:  ${who.groups.length ? who.groups.join(', ') : '(none)'}`,
            `  expires: ${who.expiresAt} (${relative(expires, new Date(realClock.now()))})`,
            `  gateway: ${provider.origin}`,
            `  issuer:  ${who.issuer}`,
            `  token:   ${provider.storeDescription}`,
            `  device:  ${device ? `${device.fingerprint}${device.registered ? ` (device ${device.deviceId})` : ' (not registered)'}; private key in ${deviceStore}` : '(none; `hoop login` makes one)'}`,
            '',
          ].join('\n'),
        );
      } finally {
        provider.close();
      }
    });
}
