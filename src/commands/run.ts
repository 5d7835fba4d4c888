/**
 * `hoop run [--connect NAME]... -- <command> [args...]`: a command (an AI agent, a CI job, a
 * script) whose only way to the connections it names is through the gateway; what it does is
 * src/client/run-agent.ts.
 */
import { Command, Option } from 'commander';
import { runAgent, type RunOptions } from '../client/run-agent.js';
import { applyRunLayer, diffRunLayer, discardRunLayer, listRunLayers } from '../client/run-layers.js';
import type { CliIo, RunCli } from '../io.js';

/** Builds the `run` command: with `--`, a command to run; without, `ls`, `diff`, `apply` and `discard` of runs' kept changes too. */
export function runCommand(io: CliIo, _cli?: RunCli, argv: readonly string[] = []): Command {
  const run = runOnly(io);
  // `hoop run -- ls` runs ls: hoop run's own commands are words before any `--`.
  if (!argv.includes('--')) layerCommands(run, io);
  return run;
}

/** The commands of runs' kept changes (src/client/run-layers.ts). */
function layerCommands(run: Command, io: CliIo): void {
  run
    .command('ls')
    .description('list the runs whose changes are kept on this machine (not applied yet, or kept on purpose)')
    .option('--json', 'print them as JSON')
    .action((o: { json?: boolean }) => listRunLayers(io, o));
  run
    .command('diff')
    .description("show a kept run's changes as the gate would apply them (git diff style), the refused ones headed by why")
    .argument('<run-id>', 'the run (`hoop run ls` lists them)')
    .action((id: string) => diffRunLayer(io, id));
  run
    .command('apply')
    .description("apply a kept run's changes to your tree through the gate")
    .argument('<run-id>', 'the run (`hoop run ls` lists them)')
    .option('--review', 'show them first and apply only what you accept')
    .option('--force', 'apply them over what you changed in the same places since the run began')
    .option('-q, --quiet', 'say nothing when every change applies')
    .action((id: string, o: { review?: boolean; force?: boolean; quiet?: boolean }) => applyRunLayer(io, id, o));
  run
    .command('discard')
    .description("drop a kept run's changes")
    .argument('<run-id>', 'the run (`hoop run ls` lists them)')
    .action((id: string) => discardRunLayer(io, id));
}

/** The `run` command itself: a command to run. */
function runOnly(io: CliIo): Command {
  return new Command('run')
    .description(
      'run a command (an agent, a CI job) whose connections go through the gateway as a run of its own: local ports for them, their details in its environment, your hoop credentials out of its reach',
    )
    .usage('[options] -- <command> [args...]')
    .argument('<command...>', 'the command and its arguments (after --)')
    .addOption(new Option('-c, --connect <name>', 'serve this connection (repeat for several; default: connections: in .hoop.yaml)').argParser((v: string, all: string[] = []) => [...all, v]))
    .option('--runbooks-only', 'serve no connection: the command reaches only the runbooks its agent may run (hoop runbook run, hoop mcp)')
    .option('--agent <name>', "the agent's name, as the policy's agents: rules and the session index see it (default: the command's name)")
    .addOption(
      new Option('--isolation <how>', 'contain the command: auto (bubblewrap where it works, else none, said on stderr), bwrap (or fail), none').choices(['auto', 'bwrap', 'none']).default('auto'),
    )
    .addOption(new Option('--hide <path>', 'contained: keep this file or directory from the command too (repeat for more)').argParser((v: string, all: string[] = []) => [...all, v]))
    .addOption(new Option('--read-only <path>', 'contained: let the command read this file or directory but not change it (repeat for more)').argParser((v: string, all: string[] = []) => [...all, v]))
    .addOption(
      new Option('--share <path>', 'contained: let the command see this path in /tmp or the runtime directory, which are its own otherwise (repeat for more)').argParser(
        (v: string, all: string[] = []) => [...all, v],
      ),
    )
    .option('--ssh-agent', 'contained: let the command use your SSH agent ($SSH_AUTH_SOCK), with every key it holds')
    .addOption(
      new Option(
        '--apply <how>',
        "contained: how the command's changes reach your tree: gate (it writes a layer of its own, applied through the gate when it ends), never (kept for `hoop run apply`), live (it writes your tree itself)",
      ).choices(['gate', 'never', 'live']),
    )
    .option('--review', 'contained: when it ends, show its changes as a diff and apply only what you accept')
    .addOption(new Option('--prompt <text>', 'what the command was asked to do: recorded at the start of each of its sessions').conflicts('promptFile'))
    .option('--prompt-file <file>', 'the same, read from a file')
    .option('--socket <dir>', 'serve the connections on unix sockets in this directory instead of TCP')
    .option('--direct', "PostgreSQL connections: no local port; the command connects to the gateway's own port with a credential minted for the run (it ends with the run)")
    .addOption(new Option('-q, --quiet', "do not say the run's id as it begins (on stderr)").conflicts('json'))
    .option('--json', "say the run's id as it begins as one JSON line on stderr: { run, connections, isolation } (stdout is the command's)")
    .option('--gateway <url>', 'gateway URL (default: $HOOP_GATEWAY, else the current `hoop login` profile)')
    .option('--token-file <file>', 'read the bearer token from this file; it is not renewed (default: $HOOP_TOKEN, else the login)')
    .option('--ca-file <file>', "trust this CA for the gateway certificate (default: $HOOP_CA_FILE, else the profile's)")
    .option('--policy-dir <dir>', 'judge statements here first with the policy bundle in this checked-out config repo (the gateway still decides)')
    .option('--policy-repo <url>', 'the same with a config repo pulled as `hoop policy pull` does (default: $HOOP_POLICY_REPO)')
    .option('--policy-ref <ref>', 'branch, tag or commit of --policy-repo (default: $HOOP_POLICY_REF, else main)')
    .option('--policy-allowed-signers <file>', 'accept only policy commits signed by these SSH keys (default: $HOOP_POLICY_ALLOWED_SIGNERS)')
    .passThroughOptions()
    .action((argv: string[], opts: RunOptions) => runAgent(io, argv, opts));
}
