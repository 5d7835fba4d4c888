/**
 * What `hoop mcp config --client claude-code|cursor|vscode [--write] [--global]` writes: the MCP
 * client's configuration for `hoop mcp`, as `tsh mcp db config` gives one: the server's entry, and
 * where the client keeps it, merged into the client's file (other servers kept).
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
import { dirname, join } from 'node:path';
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { treePlaces } from '../agent/sandbox.js';
import { writeFileAtomic } from '../durable-file.js';
import { ErrorCode, HoopError } from '../errors.js';
import type { CliIo } from '../io.js';
import { checkTreeTarget, readTreeFile } from '../tree-file.js';
import { resolveCommand } from '../agent/spawn-agent.js';

/** The clients hoop writes a configuration for. */
export const MCP_CLIENTS = ['claude-code', 'cursor', 'vscode', 'gemini', 'windsurf'] as const;
export type McpClient = (typeof MCP_CLIENTS)[number];

/** This hoop's launcher (`bin/hoop.js` of the installed package). */
export const LAUNCHER = fileURLToPath(new URL('../../bin/hoop.js', import.meta.url));

/** The variables that locate the login, passed to the server when set. */
const LOGIN_VARIABLES = ['HOOP_CONFIG_DIR', 'HOOP_GATEWAY', 'HOOP_CA_FILE', 'HOOP_TOKEN_STORE', 'HOOP_PROFILE'] as const;

/** Where each client keeps its servers: the file (project or user), and the key of the servers' map. */
export function clientFile(client: McpClient, cwd: string, global: boolean): { file: string; key: 'mcpServers' | 'servers' } {
  switch (client) {
    case 'claude-code':
      return { file: global ? join(homedir(), '.claude.json') : join(cwd, '.mcp.json'), key: 'mcpServers' };
    case 'cursor':
      return { file: join(global ? homedir() : cwd, '.cursor', 'mcp.json'), key: 'mcpServers' };
    case 'vscode':
      if (global)
        throw new HoopError(ErrorCode.USAGE, 'VS Code keeps user-level MCP servers in its settings, not in a file hoop edits', { hint: 'leave out --global: the workspace file is .vscode/mcp.json' });
      return { file: join(cwd, '.vscode', 'mcp.json'), key: 'servers' };
    case 'gemini':
      return { file: join(global ? homedir() : cwd, '.gemini', 'settings.json'), key: 'mcpServers' };
    case 'windsurf':
      // Windsurf has no project file: its one file is the user's.
      return { file: join(homedir(), '.codeium', 'windsurf', 'mcp_config.json'), key: 'mcpServers' };
  }
}

/**
 * How a client starts this hoop: the `hoop` on `env`'s PATH when it is this one (the link npm
 * keeps, which outlives an upgrade of Node), else this Node with this script.
 */
function launcher(env: NodeJS.ProcessEnv): { command: string; args: string[] } {
  try {
    const found = resolveCommand('hoop', env.PATH, '/');
    if (realpathSync(found) === realpathSync(LAUNCHER)) return { command: found, args: [] };
  } catch {
    // no hoop on the PATH: this one, as it runs now
  }
  return { command: process.execPath, args: [LAUNCHER] };
}

/** The server's entry: how the client starts `hoop mcp` with `args`. */
export function serverEntry(client: McpClient, args: readonly string[], env: NodeJS.ProcessEnv): Record<string, unknown> {
  const passed = Object.fromEntries(LOGIN_VARIABLES.flatMap((k) => (env[k]?.trim() ? [[k, env[k]!.trim()]] : [])));
  const start = launcher(env);
  return {
    // Claude Code and VS Code name the transport; the others take a command for stdio.
    ...(client === 'claude-code' || client === 'vscode' ? { type: 'stdio' } : {}),
    command: start.command,
    args: [...start.args, 'mcp', ...args],
    ...(Object.keys(passed).length > 0 ? { env: passed } : {}),
  };
}

/**
 * Puts `entry` in the client's `file` as the server `name` of its `key` map, keeping the file's
 * other servers and settings; resolves whether it replaced a server of that name.
 */
export async function writeServerEntry(io: CliIo, file: string, key: string, name: string, entry: Record<string, unknown>): Promise<'added' | 'replaced'> {
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
  await writeFileAtomic(file, `${JSON.stringify({ ...existing, [key]: { ...servers, [name]: entry } }, null, 2)}\n`, dirname(file), false);
  return servers[name] ? 'replaced' : 'added';
}
