/**
 * Builds the `hoop` program and runs it. `main(argv, io)` never exits the process: it returns
 * the exit code, so tests can run every command in-process (`bin/hoop.js` alone calls exit).
 *
 * @see https://github.com/tj/commander.js#readme
 */
import { type Command, CommanderError } from 'commander';
import { commandsFor, programOf } from './commands/index.js';
import { CommandExit, ExitCode, HoopError, describeError, hoopSays, systemErrorOf } from './errors.js';
import type { CliIo } from './io.js';
import { sweepAbandonedRuns } from './agent/pending-sweeps.js';
import { tellLayersLeft } from './agent/layers.js';

/** Builds the commander program for one invocation: with the command `argv` runs (or all of them, for help). */
export async function buildProgram(io: CliIo, argv: readonly string[]): Promise<Command> {
  const program = (await programOf(io, main, commandsFor(argv), argv))
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride()
    .configureOutput({
      writeOut: (s) => io.stdout.write(s),
      writeErr: (s) => io.stderr.write(s),
    });
  // addCommand() does not pass on exitOverride and output settings (command() would): copy them, to subcommands too.
  const inherit = (c: Command): void => {
    for (const sub of c.commands) {
      sub.copyInheritedSettings(c);
      inherit(sub);
    }
  };
  inherit(program);
  return program;
}

/** Formats an error for the terminal: what went wrong, then what to do. */
export function formatError(err: unknown): string {
  if (err instanceof HoopError) return `${hoopSays(err.message)}${err.hint ? `\n  hint: ${err.hint}` : ''}\n`;
  return `hoop: unexpected error: ${describeError(err)}\n  hint: run again with HOOP_DEBUG=1 and report it\n`;
}

/** Runs the CLI with `argv` (without node and script) and returns the exit code. */
export async function main(argv: string[], io: CliIo): Promise<number> {
  // A contained run whose hoop was killed before it swept its working directory: swept now.
  try {
    sweepAbandonedRuns(io.env, (line) => void io.stderr.write(`${hoopSays(line)}\n`));
  } catch (err) {
    io.stderr.write(`hoop: could not sweep after a run whose hoop was stopped: ${describeError(err)}\n`);
  }
  // A run whose hoop was stopped before its command ended: its changes are kept, and that is said once.
  await tellLayersLeft(io.env, (line) => void io.stderr.write(`${hoopSays(line)}\n`)).catch((err: unknown) =>
    io.stderr.write(`hoop: could not look at the changes runs kept: ${describeError(err)}\n`),
  );
  try {
    // --no-color is every command's (before a run's `--`): taken here, so no command declares it.
    const end = argv.includes('--') ? argv.indexOf('--') : argv.length;
    if (argv.slice(0, end).includes('--no-color')) {
      argv = argv.filter((a, i) => i >= end || a !== '--no-color');
      io = { ...io, noColor: true };
    }
    const program = await buildProgram(io, argv);
    await program.parseAsync(argv, { from: 'user' });
    return ExitCode.OK;
  } catch (err) {
    if (err instanceof CommandExit) return err.exitCode;
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') return ExitCode.OK;
      return err.exitCode === 0 ? ExitCode.OK : ExitCode.USAGE;
    }
    // What the system says of the user's machine (a full disk, a taken port) is no bug of hoop's: said plainly, with its exit code.
    const e = err instanceof HoopError ? err : (systemErrorOf(err) ?? err);
    io.stderr.write(formatError(e));
    if (!(e instanceof HoopError) && io.env.HOOP_DEBUG && e instanceof Error) io.stderr.write(`${e.stack}\n`);
    return e instanceof HoopError ? e.exitCode : ExitCode.SOFTWARE;
  }
}
