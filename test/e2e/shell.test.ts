/**
 * hoop in a user's shell: the completion scripts sourced in real bash, zsh and fish (commands,
 * options, choices, and connection names and review ids asked of a real gateway), the manual
 * read with `man -l`, and an example at the end of every command's --help that names only what
 * that command takes.
 */
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runProcess } from '../harness/clients.js';
import { startStack, type HoopStack } from '../harness/stack.js';
import { programOf } from '../../src/commands/index.js';
import { commandPath, EXAMPLES } from '../../src/commands/examples.js';
import type { Command } from 'commander';

const ROOT = resolve(import.meta.dirname, '../..');
const HOOP = join(ROOT, 'bin/hoop.js');

let stack: HoopStack;
let dir: string;
/** A PATH whose `hoop` is this checkout's, and the gateway the stack runs, as a signed-in user has it. */
let env: NodeJS.ProcessEnv;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'hoop-shell-'));
  stack = await startStack();
  await writeFile(join(dir, 'hoop'), `#!/bin/sh\nexec ${process.execPath} ${HOOP} "$@"\n`);
  await chmod(join(dir, 'hoop'), 0o755);
  env = {
    PATH: `${dir}:${process.env.PATH}`,
    HOME: dir,
    HOOP_GATEWAY: stack.gateway.url,
    HOOP_CA_FILE: stack.pki.caFile,
    HOOP_TOKEN: await stack.token('alice'),
    HOOP_CONFIG_DIR: join(dir, 'config'),
  };
  for (const shell of ['bash', 'zsh', 'fish']) {
    const script = await runProcess(process.execPath, [HOOP, 'completion', shell], { env });
    expect(script.code, script.stderr).toBe(0);
    await writeFile(join(dir, `hoop.${shell}`), script.stdout);
  }
});

afterAll(async () => {
  await stack?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** What bash's completion offers for the words typed so far (the last one being typed). */
async function bash(...words: string[]): Promise<string[]> {
  const r = await runProcess('bash', ['-c', `source ${dir}/hoop.bash; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _hoop_complete; printf '%s\\n' "\${COMPREPLY[@]}"`, '_', 'hoop', ...words], { env });
  expect(r.stderr).toBe('');
  return r.stdout.split('\n').filter(Boolean);
}

/** What zsh's `_hoop` hands compadd (or `<files>` when it hands over to _files). */
async function zsh(...words: string[]): Promise<string[]> {
  const r = await runProcess(
    'zsh',
    ['-fc', `compdef() { :; }; compadd() { print -l -- "\${found[@]}"; }; _files() { print '<files>'; }; source ${dir}/hoop.zsh; words=(hoop "$@"); CURRENT=$#words; _hoop`, '_', ...words],
    { env },
  );
  expect(r.stderr).toBe('');
  return r.stdout.split('\n').filter(Boolean);
}

/** What fish offers for the command line typed so far. */
async function fish(line: string): Promise<string[]> {
  const r = await runProcess('fish', ['--no-config', '-c', `source ${dir}/hoop.fish; complete -C ${JSON.stringify(line)}`], { env });
  expect(r.stderr).toBe('');
  return r.stdout
    .split('\n')
    .filter(Boolean)
    .map((l) => l.split('\t')[0]!);
}

describe('hoop completion', () => {
  it('bash: commands, subcommands, options, choices, and files after `--`', async () => {
    expect(await bash('se')).toEqual(['sessions']);
    expect(await bash('sessions', '')).toEqual(['ls', 'show', 'verify', 'replay', 'export']);
    expect(await bash('sessions', 'ls', '--si')).toEqual(['--since']);
    // An option's value is not taken for a command: `--gateway x` is skipped.
    expect(await bash('--version', 'review', '--gateway', 'x', 'ls', '--state', 'p')).toEqual(['pending']);
    expect(await bash('ls', '--j')).toEqual(['--json', '--jq']);
    expect(await bash('completion', '')).toEqual(['bash', 'zsh', 'fish']);
    expect(await bash('run', '--', 'ps')).toEqual([]);
  });

  it("bash, zsh and fish: connection names and review ids are the gateway's, for this user", async () => {
    const names = ['app', 'app-cleartext', 'app-md5', 'down', 'wrong-password'];
    expect((await bash('connect', '')).sort()).toEqual(expect.arrayContaining(names));
    expect(await bash('connect', 'app-m')).toEqual(['app-md5']);
    expect(await bash('connect', '')).not.toContain('carol-only');
    expect(await bash('mcp', '--connection', 'wr')).toEqual(['wrong-password']);
    expect((await zsh('exec', '')).sort()).toEqual(expect.arrayContaining(names));
    expect(await fish('hoop request app-c')).toEqual(['app-cleartext']);
    // No reviews wait: nothing is offered, and no error reaches the terminal.
    expect(await bash('review', 'approve', '')).toEqual([]);
  });

  it('asks a gateway that does not answer for at most 2 s, and says nothing', async () => {
    // A gateway that takes the connection and never answers (no TLS handshake, no reply).
    const silent = createServer(() => undefined);
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    try {
      const started = Date.now();
      const r = await runProcess(process.execPath, [HOOP, 'completion', '--list', 'connections'], { env: { ...env, HOOP_GATEWAY: `https://127.0.0.1:${(silent.address() as AddressInfo).port}` } });
      const took = Date.now() - started;
      expect(r.code).toBe(0);
      expect(r.stdout + r.stderr).toBe('');
      expect(took).toBeGreaterThanOrEqual(2_000);
      expect(took).toBeLessThan(8_000); // the request itself would wait 10 s
    } finally {
      silent.close();
    }
  });

  it('zsh and fish: the same tree', async () => {
    expect(await zsh('sessions', '')).toEqual(['ls', 'show', 'verify', 'replay', 'export']);
    expect(await zsh('review', 'ls', '--state', '')).toEqual(['pending', 'approved', 'denied', 'expired', 'withdrawn', 'all']);
    expect(await zsh('login', '--ca-file', '')).toEqual(['<files>']);
    expect(await fish('hoop se')).toEqual(['sessions']);
    expect(await fish('hoop review ls --state ')).toEqual(['all', 'approved', 'denied', 'expired', 'pending', 'withdrawn']);
    expect(await fish('hoop sessions ls --js')).toEqual(['--json']);
  });

  it('without a shell is a usage error', async () => {
    const r = await runProcess(process.execPath, [HOOP, 'completion'], { env });
    expect(r.code).toBe(64);
    expect(r.stderr).toContain('hoop completion bash');
  });
});

/** Every command under `cmd`, the program first. */
function everyCommand(cmd: Command): Command[] {
  return [cmd, ...cmd.commands.filter((c) => c.name() !== 'help').flatMap(everyCommand)];
}

/** The `hoop …` command lines of an example line (several when joined by && or a pipe). */
function hoopLines(line: string): string[][] {
  const words = line.match(/"[^"]*"|'[^']*'|\S+/g) ?? [];
  const lines: string[][] = [];
  let current: string[] | undefined;
  for (const w of words) {
    if (['&&', '|', '>', ';'].includes(w) || w.startsWith('>')) current = undefined;
    else if (/^(?:<\()?hoop$/.test(w)) lines.push((current = []));
    else current?.push(w.replace(/\)$/, ''));
  }
  return lines;
}

describe('help and the manual', () => {
  it("every command's --help ends with examples that name that command and only options it takes", async () => {
    const program = await programOf({ stdout: process.stdout, stderr: process.stderr, env: {}, cwd: ROOT, signal: new AbortController().signal }, async () => 0);
    const commands = everyCommand(program);
    expect(commands.length).toBeGreaterThan(35);
    for (const cmd of commands) {
      const path = commandPath(cmd);
      expect(EXAMPLES[path], `examples of "hoop ${path}"`).toBeDefined();
      for (const [, line] of EXAMPLES[path]!) {
        const named = hoopLines(line);
        expect(named.length, line).toBeGreaterThan(0);
        for (const words of named) {
          // The words name a command; its options are those it takes.
          let target = program;
          for (const w of words) {
            const sub = target.commands.find((c) => c.name() === w || c.aliases().includes(w));
            if (!sub) break;
            target = sub;
          }
          const known = new Set(target.options.flatMap((o) => [o.long, o.short]).concat(['--help', '-h']));
          for (const w of words.filter((x) => /^--?[a-z]/.test(x))) expect(known.has(w.split('=')[0]!), `${w} in "${line}" (hoop ${commandPath(target)})`).toBe(true);
        }
      }
    }
    // And --help shows them, as the built CLI prints it.
    for (const path of ['', 'sessions ls', 'review approve', 'gateway init']) {
      const r = await runProcess(process.execPath, [HOOP, ...path.split(' ').filter(Boolean), '--help'], { env });
      expect(r.stdout).toContain(`Examples:\n  # ${EXAMPLES[path]![0]![0]}\n  $ ${EXAMPLES[path]![0]![1]}`);
    }
  });

  it('man -l reads the manual the package ships: every command, its options and examples', async () => {
    const r = await runProcess('man', ['-l', join(ROOT, 'man/hoop.1')], { env: { ...env, MANWIDTH: '100', MAN_KEEP_FORMATTING: '', PAGER: 'cat' } });
    expect(r.code, r.stderr).toBe(0);
    const text = r.stdout.replace(/.\x08/g, '');
    expect(text).toMatch(/^HOOP\(1\)/);
    expect(text).toContain('hoop sessions ls [options]');
    expect(text).toContain('--since <time>');
    expect(text).toContain('$ hoop sessions ls --since 1h');
    expect(text).toContain('hoop completion [options] [shell]');
    expect(r.stderr).not.toMatch(/warning/i);
  });
});

/** `hoop args` on a pseudo-terminal (util-linux script), as a person at a terminal runs it. */
function onTerminal(args: string[], extraEnv: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; stdout: string }> {
  const line = [process.execPath, HOOP, ...args].map((a) => `'${a.replaceAll("'", `'\\''`)}'`).join(' ');
  return runProcess('script', ['-qec', line, '/dev/null'], { env: { ...env, TERM: 'xterm-256color', ...extraEnv } }).then((r) => ({ code: r.code, stdout: r.stdout }));
}

const ESC = '\u001b[';

describe('one output contract', () => {
  const check = ['policy', 'check', '--dir', join(ROOT, 'examples/policy-repo'), '--connection', 'prod-db', 'truncate orders'];

  it('colours decisions on a terminal; not with NO_COLOR, --no-color, or into a pipe', async () => {
    const coloured = await onTerminal(check);
    expect(coloured.code).toBe(1);
    expect(coloured.stdout).toContain(`decision  ${ESC}31mdeny${ESC}39m`);
    expect((await onTerminal(check, { NO_COLOR: '1' })).stdout).not.toContain(ESC);
    expect((await onTerminal([...check.slice(0, 2), '--no-color', ...check.slice(2)])).stdout).not.toContain(ESC);
    const piped = await runProcess(process.execPath, [HOOP, ...check], { env });
    expect(piped.stdout).toMatch(/^decision {2}deny$/m);
    expect(piped.stdout).not.toContain(ESC);
    const tests = await onTerminal(['policy', 'test', '--dir', join(ROOT, 'examples/policy-repo'), '--offline']);
    expect(tests.stdout).toContain(`${ESC}32m✓${ESC}39m`);
  });

  it('every command that prints data prints JSON with --json: one line into a pipe, indented on a terminal', async () => {
    const repo = join(ROOT, 'examples/policy-repo');
    const exec = await runProcess(process.execPath, [HOOP, 'exec', 'app', '-c', 'select 1 as one', '--json'], { env });
    expect(
      exec.stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l)),
    ).toEqual([{ one: 1 }]);
    const commands = [
      ['whoami'],
      ['connections'],
      ['sessions', 'ls'],
      ['sessions', 'show', 'last'],
      ['sessions', 'verify', 'last'],
      ['review', 'ls', '--state', 'all'],
      ['alerts', 'ls'],
      ['policy', 'show', '--dir', repo],
      ['policy', 'check', '--dir', repo, '--connection', 'prod-db', 'select 1'],
      ['policy', 'test', '--dir', repo, '--offline'],
    ];
    for (const args of commands) {
      const r = await runProcess(process.execPath, [HOOP, ...args, '--json'], { env });
      expect(r.code, `hoop ${args.join(' ')} --json: ${r.stderr}`).toBe(0);
      expect(r.stdout.endsWith('\n') && r.stdout.indexOf('\n') === r.stdout.length - 1, `hoop ${args.join(' ')} --json prints one line`).toBe(true);
      expect(() => JSON.parse(r.stdout), `hoop ${args.join(' ')} --json`).not.toThrow();
    }
    // --jq: what a path selects, strings bare (as gh --jq), for the documents --json prints.
    const ids = await runProcess(process.execPath, [HOOP, 'sessions', 'ls', '--jq', '.sessions[].id'], { env });
    const listed = (JSON.parse((await runProcess(process.execPath, [HOOP, 'sessions', 'ls', '--json'], { env })).stdout) as { sessions: Array<{ id: string }> }).sessions.map((x) => x.id);
    expect(ids.stdout.trim().split('\n')).toEqual(listed);
    expect((await runProcess(process.execPath, [HOOP, 'whoami', '--jq', '.subject'], { env })).stdout).toBe('alice\n');
    const bad = await runProcess(process.execPath, [HOOP, 'whoami', '--jq', '.subject | length'], { env });
    expect(bad.code).toBe(64);
    expect(bad.stderr).toContain('is not a path hoop reads');
    const pretty = await onTerminal(['sessions', 'ls', '--json']);
    expect(JSON.parse(pretty.stdout.replaceAll('\r\n', '\n'))).toHaveProperty('sessions');
    expect(pretty.stdout).toContain('\n  "sessions": [');
  });
});
