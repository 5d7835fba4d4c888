/**
 * The command registry: each entry names the command its module builds, and a run loads only the
 * command it names (all of them for help and for a name that is no command).
 */
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { formatError, main } from '../../src/cli.js';
import { ErrorCode, HoopError } from '../../src/errors.js';
import { commands, commandsFor } from '../../src/commands/index.js';
import { runCli } from '../harness/run-cli.js';

const io = { stdout: new PassThrough(), stderr: new PassThrough(), env: {}, cwd: process.cwd(), signal: new AbortController().signal };
const named = (argv: string[]): string[] => commandsFor(argv).map((c) => c.names[0]!);

describe('command registry', () => {
  it('names each command as its module builds it', async () => {
    for (const entry of commands) {
      const command = (await entry.load())(io, main, []);
      expect([command.name(), ...command.aliases()]).toEqual(entry.names);
    }
  });

  it('loads the command a run names, and every command for help or a mistyped name', () => {
    const all = commands.map((c) => c.names[0]);
    expect(named(['whoami', '--json'])).toEqual(['whoami']);
    expect(named(['ls'])).toEqual(['connections']);
    expect(named(['connect', 'prod-db', '--help'])).toEqual(['connect']);
    expect(named(['--version'])).toEqual([]);
    expect(named([])).toEqual(all);
    expect(named(['--help'])).toEqual(all);
    expect(named(['help', 'connect'])).toEqual(all);
    expect(named(['conect'])).toEqual(all);
    // Completion's script reads the whole tree; the names it asks for on each tab need no command but it.
    expect(named(['completion', 'bash'])).toEqual(all);
    expect(named(['completion', '--list', 'connections'])).toEqual(['completion']);
  });

  it('prints the version, help and suggestions as before', async () => {
    expect((await runCli(['--version'], {}, process.cwd())).stdout).toMatch(/^\d+\.\d+\.\d+/);
    const help = await runCli(['--help'], {}, process.cwd());
    for (const entry of commands) expect(help.stdout).toContain(entry.names[0]);
    const typo = await runCli(['conect'], {}, process.cwd());
    expect(typo.code).toBe(64);
    expect(typo.stderr).toContain('(Did you mean connect?)');
    const sub = await runCli(['help', 'whoami'], {}, process.cwd());
    expect(sub.stdout).toContain('--token-file');
  });
});

describe('an error as the terminal shows it', () => {
  it('says "hoop: " once, though the gateway\'s message carries it already', () => {
    const suspended = new HoopError(ErrorCode.USAGE, 'hoop: alice is suspended by alert alert-1 (bulk-reads)', { hint: 'ask an auditor to clear it' });
    expect(formatError(suspended)).toBe('hoop: alice is suspended by alert alert-1 (bulk-reads)\n  hint: ask an auditor to clear it\n');
    expect(formatError(new HoopError(ErrorCode.USAGE, 'which shell?'))).toBe('hoop: which shell?\n');
  });
});
