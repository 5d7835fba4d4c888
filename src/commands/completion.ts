/**
 * `hoop completion bash|zsh|fish`: prints the shell's completion script for every command, option
 * and choice. Where a command takes a connection, session, review or alert, the script asks
 * `hoop completion --list KIND` when tab is pressed: the names the gateway has for the caller, or
 * nothing within 2 s (never an error on the terminal); where it takes a profile, the subjects
 * logged in on this machine.
 */
import { Argument, Command, Option } from 'commander';
import { listAlerts } from '../api-client/alerts.js';
import { listConnections } from '../api-client/connections.js';
import { listReviews } from '../api-client/reviews.js';
import { listSessions } from '../api-client/sessions.js';
import { configDir } from '../auth/paths.js';
import { ProfileStore } from '../auth/profiles.js';
import { withGateway } from '../client/client-config.js';
import { ErrorCode, HoopError } from '../errors.js';
import type { CliIo } from '../io.js';
import { bashScript, completionTree, fishScript, LISTED_KINDS, zshScript } from '../ui/completion-script.js';

const SCRIPTS = { bash: bashScript, zsh: zshScript, fish: fishScript };

/** How long a tab waits for the gateway's names. */
const LIST_DEADLINE_MS = 2_000;

/** The names of `kind` the gateway has for the caller, newest first (the identities logged in here, for `profiles`). */
async function names(io: CliIo, kind: (typeof LISTED_KINDS)[number]): Promise<string[]> {
  if (kind === 'profiles') return [...new Set(Object.values((await new ProfileStore(configDir(io.env, io.cwd)).read()).profiles).map((p) => p.subject))];
  return withGateway(io, {}, async (endpoint, token) => {
    if (kind === 'connections') return (await listConnections(endpoint, await token())).map((c) => c.name);
    if (kind === 'sessions') return ['last', ...(await listSessions(endpoint, await token())).sessions.slice(0, 50).map((s) => s.id)];
    if (kind === 'reviews') return (await listReviews(endpoint, await token(), 'pending')).map((r) => r.id);
    return (await listAlerts(endpoint, await token(), 'open')).map((a) => a.id);
  });
}

/** Builds the `completion` command. */
export function completionCommand(io: CliIo): Command {
  return new Command('completion')
    .description('print the completion script of a shell: source <(hoop completion bash), or hoop completion fish | source')
    .addArgument(new Argument('[shell]', 'the shell').choices(Object.keys(SCRIPTS)))
    .addOption(new Option('--list <kind>', 'print what the gateway has of this kind for you, one per line (the scripts ask it)').choices(LISTED_KINDS).hideHelp())
    .action(async (shell: keyof typeof SCRIPTS | undefined, opts: { list?: (typeof LISTED_KINDS)[number] }, cmd: Command) => {
      if (opts.list) {
        let timer: NodeJS.Timeout | undefined;
        const deadline = new Promise<string[]>((resolve) => {
          timer = setTimeout(() => resolve([]), LIST_DEADLINE_MS);
        });
        const found = await Promise.race([names(io, opts.list).catch(() => []), deadline]);
        clearTimeout(timer);
        if (found.length > 0) io.stdout.write(`${found.join('\n')}\n`);
        return;
      }
      if (!shell) throw new HoopError(ErrorCode.USAGE, 'which shell?', { hint: 'hoop completion bash, hoop completion zsh or hoop completion fish' });
      // The program that runs this command: every command is loaded beside it (commandsFor).
      io.stdout.write(SCRIPTS[shell](completionTree(cmd.parent!)));
    });
}
