/**
 * The command registry: every command is one file under `src/commands/`, registered here once.
 * A command's module (and what it imports: the gateway, ink, the MCP SDK, ...) is loaded only
 * when that command runs, so `hoop --version` or `hoop whoami` start without the rest.
 */
import { Command } from 'commander';
import type { CliIo, RunCli } from '../io.js';
import { VERSION_LINE } from '../version.js';
import { commandPath, withExamples } from './examples.js';

/** A top-level command: its name (and aliases), and how to load its factory. */
export interface CommandEntry {
  names: readonly string[];
  /** The factory gets the CLI's own entry too, for a command that runs others in-process, and the words it runs with. */
  load: () => Promise<(io: CliIo, cli: RunCli, argv: readonly string[]) => Command>;
  /** A command that reads the whole tree (completion): with these words, every command is loaded beside it. */
  readsTree?: (argv: readonly string[]) => boolean;
}

/** The top-level commands, in help order. */
export const commands: readonly CommandEntry[] = [
  { names: ['demo'], load: async () => (await import('./demo.js')).demoCommand },
  { names: ['login'], load: async () => (await import('./login.js')).loginCommand },
  { names: ['whoami'], load: async () => (await import('./whoami.js')).whoamiCommand },
  { names: ['logout'], load: async () => (await import('./logout.js')).logoutCommand },
  { names: ['profiles'], load: async () => (await import('./profiles.js')).profilesCommand },
  { names: ['connections', 'ls'], load: async () => (await import('./connections.js')).connectionsCommand },
  { names: ['connect'], load: async () => (await import('./connect.js')).connectCommand },
  { names: ['run'], load: async () => (await import('./run.js')).runCommand },
  { names: ['exec'], load: async () => (await import('./exec.js')).execCommand },
  { names: ['mcp'], load: async () => (await import('./mcp.js')).mcpCommand },
  { names: ['sessions'], load: async () => (await import('./sessions.js')).sessionsCommand },
  { names: ['review'], load: async () => (await import('./review.js')).reviewCommand },
  { names: ['request'], load: async () => (await import('./request.js')).requestCommand },
  { names: ['alerts'], load: async () => (await import('./alerts.js')).alertsCommand },
  { names: ['runbook'], load: async () => (await import('./runbook.js')).runbookCommand },
  { names: ['policy'], load: async () => (await import('./policy.js')).policyCommand },
  { names: ['gateway'], load: async () => (await import('./gateway.js')).gatewayCommand },
  // Its script needs every command; asking the gateway for names (--list, on each tab) needs none.
  { names: ['completion'], load: async () => (await import('./completion.js')).completionCommand, readsTree: (argv) => !argv.includes('--list') },
];

/**
 * The commands `argv` may run: the one its first word names (with every other when it reads the
 * whole tree), or every command when it names none (`hoop`, `hoop --help`, `hoop help connect`, a
 * mistyped name: help and suggestions need them all). The program's own options (`--version`,
 * `--help`) take no value, so the first word that is not an option is the command.
 */
export function commandsFor(argv: readonly string[]): readonly CommandEntry[] {
  const first = argv.find((a) => !a.startsWith('-'));
  if (first === undefined && (argv.includes('--version') || argv.includes('-V'))) return [];
  const named = first === undefined ? undefined : commands.find((c) => c.names.includes(first));
  return named && !named.readsTree?.(argv) ? [named] : commands;
}

/** The `hoop` program with the commands of `entries` (each with its examples), before any output or exit settings. */
export async function programOf(io: CliIo, cli: RunCli, entries: readonly CommandEntry[] = commands, argv: readonly string[] = []): Promise<Command> {
  const program = new Command('hoop')
    .description('Access controls, policy and recording for agents, CI jobs and people who reach production data')
    .version(VERSION_LINE, '-V, --version')
    // Taken by the CLI's entry wherever it is given (src/cli.ts): said here for --help.
    .option('--no-color', 'print no colour, with any command (as NO_COLOR=1 does; a pipe gets none either)')
    // `hoop run [options] -- <command>`: options after the command are the command's.
    .enablePositionalOptions();
  const factories = await Promise.all(entries.map((c) => c.load()));
  for (const make of factories) program.addCommand(make(io, cli, argv));
  withJq(program, io);
  return withExamples(program);
}

/** Commands whose --json is a stream of lines or one event, not a document a path selects from. */
const JSON_LINES = new Set(['exec', 'connect', 'demo', 'review watch', 'run']);

/** `--jq PATH` beside every document `--json` prints: it implies --json, and printJson prints what the path selects. */
function withJq(program: Command, io: CliIo): void {
  const add = (cmd: Command): void => {
    if (cmd.options.some((o) => o.long === '--json') && !JSON_LINES.has(commandPath(cmd))) {
      cmd.option('--jq <path>', 'print what this path selects from the JSON, one per line, strings bare: .sessions[].id, .connections[0].name (implies --json)');
    }
    for (const sub of cmd.commands) add(sub);
  };
  add(program);
  program.hook('preAction', (_program, action) => {
    const jq = action.opts().jq as string | undefined;
    if (jq === undefined) return;
    action.setOptionValue('json', true);
    io.jq = jq;
  });
}
