/**
 * `hoop login`: log in to a gateway. The gateway says which identity provider to use; the
 * browser flow (or `--device`) gets the tokens, or in CI a workload token is used as is.
 */
import { Command, Option } from 'commander';
import { openBrowser } from '../auth/browser.js';
import { DEFAULT_LOGIN_TIMEOUT_SECONDS, isInteractive, login } from '../auth/login.js';
import { describeWorkload } from '../auth/workload.js';
import { ErrorCode, HoopError } from '../errors.js';
import type { CliIo } from '../io.js';
import { refuseInsideRun } from '../client/client-config.js';

interface LoginCommandOptions {
  gateway?: string;
  caFile?: string;
  browser: boolean;
  device?: boolean;
  idTokenFile?: string;
  audience?: string;
  timeout?: number;
  reauth?: boolean;
}

function parseSeconds(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 3600) throw new HoopError(ErrorCode.USAGE, `--timeout must be a whole number of seconds from 1 to 3600, not "${value}"`);
  return n;
}

/** Builds the `login` command. */
export function loginCommand(io: CliIo): Command {
  return new Command('login')
    .description('log in to a gateway: in the browser, with a code (--device), or with a workload token in CI')
    .option('--gateway <url>', 'gateway URL (default: $HOOP_GATEWAY, else the current profile)')
    .option('--ca-file <file>', 'trust this CA for the gateway certificate (default: $HOOP_CA_FILE; remembered)')
    .option('--no-browser', 'print the login URL but do not start a browser')
    .option('--device', 'log in by entering a code on another device (device authorization grant)')
    .option('--id-token-file <path>', 'log in as a workload with the OIDC ID token in this file (default: $HOOP_ID_TOKEN, GitHub Actions, Kubernetes)')
    .option('--audience <aud>', "audience to request a GitHub Actions ID token for (default: the gateway's)")
    .addOption(new Option('--timeout <seconds>', `how long to wait for the browser or the approval (default ${DEFAULT_LOGIN_TIMEOUT_SECONDS})`).argParser(parseSeconds))
    .option('--reauth', 'have the identity provider ask for your credentials again, even if you are signed in there (for decisions that need a recent sign-in)')
    .addHelpText(
      'after',
      `
The gateway says which identity provider, client and scopes to use (GET /v1/auth/config).

In the browser: hoop prints the login URL (and opens it unless --no-browser) and waits on
http://127.0.0.1:<random port>/callback. A response whose "state" does not match is refused
with a 400 page and ignored: hoop keeps waiting for the right one until --timeout.
With --device: open the URL shown on any device and enter the code.

Without a terminal (stdin not a TTY, or CI set) hoop never waits for a browser or a code: use a
workload token instead (--id-token-file, HOOP_ID_TOKEN, HOOP_ID_TOKEN_FILE; GitHub Actions with
"permissions: id-token: write" and Kubernetes service account tokens are found by themselves).

Tokens and the device key go to the OS keychain, or where none answers (or HOOP_TOKEN_STORE=file)
to a 0600 file under $HOOP_CONFIG_DIR, $XDG_CONFIG_HOME/hoop or ~/.config/hoop.

Each identity at each gateway has a profile of its own: logging in as another one adds it and
makes it current, and the others keep their tokens (hoop profiles lists them, hoop profiles use
switches). Logging in again as the same identity replaces its profile only.`,
    )
    .action(async (opts: LoginCommandOptions) => {
      refuseInsideRun(io.env, 'log in');
      if (opts.device && opts.idTokenFile) throw new HoopError(ErrorCode.USAGE, '--device and --id-token-file do not go together', { hint: 'pick one way to log in' });
      const say = (text: string): void => void io.stderr.write(`${text}\n`);
      // The live view needs a terminal with a known size (a pseudo-terminal of 0x0 gets plain lines).
      const terminal = io.stderr as { isTTY?: boolean; columns?: number; rows?: number };
      const stderrIsTTY = terminal.isTTY === true && (terminal.columns ?? 0) > 0 && (terminal.rows ?? 0) > 0;
      const result = await login(
        {
          gateway: opts.gateway,
          caFile: opts.caFile,
          noBrowser: !opts.browser,
          device: opts.device,
          idTokenFile: opts.idTokenFile,
          audience: opts.audience,
          timeoutSeconds: opts.timeout,
          reauth: opts.reauth,
        },
        {
          env: io.env,
          cwd: io.cwd,
          signal: io.signal,
          interactive: isInteractive(io.stdin as { isTTY?: boolean } | undefined, io.env),
          say,
          liveView: stderrIsTTY ? async () => (await import('../ui/DeviceLogin.js')).inkDeviceView(io.stderr) : undefined,
          openUrl: (url) => openBrowser(url, { env: io.env }),
        },
      );
      const { whoami } = result;
      if (result.deviceError) {
        say(`hoop: could not register the device key with ${result.origin}: ${result.deviceError.message}${result.deviceError.hint ? ` (${result.deviceError.hint})` : ''}`);
      }
      io.stdout.write(
        [
          `Logged in to ${result.origin} as ${whoami.subject}${whoami.email ? ` <${whoami.email}>` : ''} (${whoami.kind}).`,
          `  groups:  ${whoami.groups.length ? whoami.groups.join(', ') : '(none)'}`,
          `  expires: ${whoami.expiresAt}`,
          result.profile.workload
            ? `  tokens:  ${describeWorkload(result.profile.workload)}, read again each time (not stored); device key in ${result.storeDescription}`
            : `  tokens:  ${result.storeDescription}`,
          `  device:  ${result.fingerprint}${result.device ? '' : ' (not registered)'}`,
          ...(result.others.length ? [`  kept:    ${result.others.join(', ')} at this gateway too (hoop profiles use switches)`] : []),
          '',
        ].join('\n'),
      );
    });
}
