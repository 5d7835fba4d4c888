/**
 * `hoop mcp config --client claude-code|cursor|vscode [--write] [--global]`: the MCP client's
 * configuration for `hoop mcp`, as `tsh mcp db config` gives one: printed, or merged into the
 * client's file (other servers kept; ../client/mcp-client-config.ts).
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
import { resolve } from 'node:path';
import { Command, Option } from 'commander';
import { shellQuote } from '../text-format.js';
import { clientFile, MCP_CLIENTS, type McpClient, serverEntry, writeServerEntry } from '../client/mcp-client-config.js';
import { treePlaces } from '../agent/sandbox.js';
import { listConnections } from '../api-client/connections.js';
import { checkTreeTarget } from '../tree-file.js';
import { commandTokenProvider } from '../client/client-config.js';
import { describeError, ErrorCode, HoopError } from '../errors.js';
import type { CliIo } from '../io.js';

/** Builds `hoop mcp config`. */
export function mcpConfigCommand(io: CliIo): Command {
  return new Command('config')
    .description("print (or --write) an MCP client's configuration that starts this hoop's MCP server")
    .addOption(new Option('--client <client>', 'the MCP client').choices([...MCP_CLIENTS]).makeOptionMandatory())
    .option('--write', "merge it into the client's file (project: .mcp.json, .cursor/mcp.json, .vscode/mcp.json, .gemini/settings.json; Windsurf's is the user's), keeping its other servers")
    .option('--global', "with --write: the user's file (~/.claude.json, ~/.cursor/mcp.json, ~/.gemini/settings.json) instead of the project's")
    .option('--name <name>', 'the server name in the client', 'hoop')
    .option('--agent <name>', "the agent's name for the run hoop mcp begins (default: the MCP client's name)")
    .addOption(new Option('-c, --connect <name>', 'a connection of that run (repeat for several; default: every one you may use)').argParser((v: string, all: string[] = []) => [...all, v]))
    .action(async (opts: { client: McpClient; write?: boolean; global?: boolean; name: string; agent?: string; connect?: string[] }) => {
      if (opts.global && !opts.write) throw new HoopError(ErrorCode.USAGE, '--global goes with --write');
      const agent = opts.agent ? ['--agent', opts.agent] : [];
      const args = [...agent, ...(opts.connect ?? []).flatMap((c) => ['--connect', c])];
      const { file, key } = clientFile(opts.client, resolve(io.cwd), opts.global === true);
      // A file hoop will not write is refused before the gateway is asked.
      if (opts.write) await checkTreeTarget(file, treePlaces(io.env, io.cwd));
      // hoop's own tools, then each MCP connection of the gateway the caller may use, as a server of its own.
      const servers: Array<[name: string, args: string[]]> = [[opts.name, args], ...(await mcpConnectionNames(io)).map((c): [string, string[]] => [c, [...agent, '--connection', c]])];
      if (!opts.write) {
        io.stdout.write(`${JSON.stringify({ [key]: Object.fromEntries(servers.map(([name, a]) => [name, serverEntry(opts.client, a, io.env)])) }, null, 2)}\n`);
        io.stderr.write(`hoop: this goes in ${file} (--write puts it there)\n`);
        return;
      }
      for (const [name, a] of servers) {
        const entry = serverEntry(opts.client, a, io.env);
        const done = await writeServerEntry(io, file, key, name, entry);
        // The command as the file has it, word for word.
        io.stdout.write(`${file}: ${done} the MCP server "${name}" (${[entry.command, ...(entry.args as string[])].map((w) => shellQuote(String(w))).join(' ')})\n`);
      }
    });
}

/** The gateway's MCP connections the caller may use (none, said on stderr, when the gateway cannot be asked). */
async function mcpConnectionNames(io: CliIo): Promise<string[]> {
  try {
    const provider = await commandTokenProvider(io, {});
    try {
      const all = await listConnections({ gateway: provider.gateway, ca: provider.ca }, (await provider.current()).token);
      return all.filter((c) => c.type === 'mcp').map((c) => c.name);
    } finally {
      provider.close();
    }
  } catch (err) {
    io.stderr.write(`hoop: the gateway's MCP connections are left out: ${describeError(err)}\n`);
    return [];
  }
}
