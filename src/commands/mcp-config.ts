/**
 * `hoop mcp config --client claude-code|cursor|vscode [--write] [--global]`: the MCP client's
 * configuration for `hoop mcp`, as `tsh mcp db config` gives one: printed, or merged into the
 * client's file (other servers kept).
 *
 * The server is started by absolute path: this Node.js and this hoop's launcher, so a client
 * started from a desktop (without the shell's PATH) finds it. The variables that say where the
 * login lives (`HOOP_CONFIG_DIR`, `HOOP_GATEWAY`, `HOOP_CA_FILE`, `HOOP_TOKEN_STORE`,
 * `HOOP_PROFILE`) are passed on when set; a token never is.
 *
 * @see https://docs.anthropic.com/en/docs/claude-code/mcp (.mcp.json: mcpServers)
 * @see https://docs.cursor.com/context/model-context-protocol (.cursor/mcp.json: mcpServers)
 * @see https://code.visualstudio.com/docs/copilot/chat/mcp-servers (.vscode/mcp.json: servers)
 */
import { mkdir } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, Option } from 'commander';
import { writeFileAtomic } from '../durable-file.js';
import { ErrorCode, HoopError } from '../errors.js';
import { checkTreeTarget, readTreeFile } from '../tree-file.js';
import { treePlaces } from '../agent/sandbox.js';
import type { CliIo } from '../io.js';

/** The clients hoop writes a configuration for. */
export const MCP_CLIENTS = ['claude-code', 'cursor', 'vscode'] as const;
export type McpClient = (typeof MCP_CLIENTS)[number];

/** This hoop's launcher (`bin/hoop.js` of the installed package). */
const LAUNCHER = fileURLToPath(new URL('../../bin/hoop.js', import.meta.url));

/** The variables that locate the login, passed to the server when set. */
const LOGIN_VARIABLES = ['HOOP_CONFIG_DIR', 'HOOP_GATEWAY', 'HOOP_CA_FILE', 'HOOP_TOKEN_STORE', 'HOOP_PROFILE'] as const;

/** Where each client keeps its servers: the file (project or user), and the key of the servers' map. */
function clientFile(client: McpClient, cwd: string, global: boolean): { file: string; key: 'mcpServers' | 'servers' } {
  switch (client) {
    case 'claude-code':
      return { file: global ? join(homedir(), '.claude.json') : join(cwd, '.mcp.json'), key: 'mcpServers' };
    case 'cursor':
      return { file: join(global ? homedir() : cwd, '.cursor', 'mcp.json'), key: 'mcpServers' };
    case 'vscode':
      if (global)
        throw new HoopError(ErrorCode.USAGE, 'VS Code keeps user-level MCP servers in its settings, not in a file hoop edits', { hint: 'leave out --global: the workspace file is .vscode/mcp.json' });
      return { file: join(cwd, '.vscode', 'mcp.json'), key: 'servers' };
  }
}

/** The server's entry: how the client starts `hoop mcp` with `args`. */
export function serverEntry(client: McpClient, args: readonly string[], env: NodeJS.ProcessEnv): Record<string, unknown> {
  const passed = Object.fromEntries(LOGIN_VARIABLES.flatMap((k) => (env[k]?.trim() ? [[k, env[k]!.trim()]] : [])));
  return {
    ...(client === 'cursor' ? {} : { type: 'stdio' }),
    command: process.execPath,
    args: [LAUNCHER, 'mcp', ...args],
    ...(Object.keys(passed).length > 0 ? { env: passed } : {}),
  };
}

/** Builds `hoop mcp config`. */
export function mcpConfigCommand(io: CliIo): Command {
  return new Command('config')
    .description("print (or --write) an MCP client's configuration that starts this hoop's MCP server")
    .addOption(new Option('--client <client>', 'the MCP client').choices([...MCP_CLIENTS]).makeOptionMandatory())
    .option('--write', "merge it into the client's file (project: .mcp.json, .cursor/mcp.json, .vscode/mcp.json), keeping its other servers")
    .option('--global', "with --write: the user's file (~/.claude.json, ~/.cursor/mcp.json) instead of the project's")
    .option('--name <name>', 'the server name in the client', 'hoop')
    .option('--agent <name>', "the agent's name for the run hoop mcp begins (default: the MCP client's name)")
    .addOption(new Option('-c, --connect <name>', 'a connection of that run (repeat for several; default: every one you may use)').argParser((v: string, all: string[] = []) => [...all, v]))
    .action(async (opts: { client: McpClient; write?: boolean; global?: boolean; name: string; agent?: string; connect?: string[] }) => {
      if (opts.global && !opts.write) throw new HoopError(ErrorCode.USAGE, '--global goes with --write');
      const args = [...(opts.agent ? ['--agent', opts.agent] : []), ...(opts.connect ?? []).flatMap((c) => ['--connect', c])];
      const entry = serverEntry(opts.client, args, io.env);
      const { file, key } = clientFile(opts.client, resolve(io.cwd), opts.global === true);
      if (!opts.write) {
        io.stdout.write(`${JSON.stringify({ [key]: { [opts.name]: entry } }, null, 2)}\n`);
        io.stderr.write(`hoop: this goes in ${file} (--write puts it there)\n`);
        return;
      }
      // A project's file may be an agent's work: never a link, never one into hoop's own places.
      const places = treePlaces(io.env, io.cwd);
      await checkTreeTarget(file, places);
      let existing: Record<string, unknown> = {};
      try {
        existing = JSON.parse(await readTreeFile(file, places)) as Record<string, unknown>;
      } catch (err) {
        if (err instanceof HoopError) throw err;
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
          throw new HoopError(ErrorCode.CONFIG_INVALID, `${file} is not a JSON file hoop can add to: ${(err as Error).message}`, {
            hint: 'fix it, or print the configuration (leave out --write) and add it by hand',
          });
        }
      }
      if (typeof existing !== 'object' || existing === null || Array.isArray(existing)) throw new HoopError(ErrorCode.CONFIG_INVALID, `${file} does not hold a JSON object`);
      const servers = (existing[key] && typeof existing[key] === 'object' ? existing[key] : {}) as Record<string, unknown>;
      await mkdir(dirname(file), { recursive: true });
      await writeFileAtomic(file, `${JSON.stringify({ ...existing, [key]: { ...servers, [opts.name]: entry } }, null, 2)}\n`, dirname(file), false);
      io.stdout.write(`${file}: ${servers[opts.name] ? 'replaced' : 'added'} the MCP server "${opts.name}" (${process.execPath} ${LAUNCHER} mcp${args.length ? ` ${args.join(' ')}` : ''})\n`);
    });
}
