/**
 * `hoop mcp`: a Model Context Protocol server on stdio for agents, through the gateway; what it
 * serves is src/client/mcp-server.ts. `hoop mcp config` writes an MCP client's configuration.
 */
import { Command, Option } from 'commander';
import { relayMcp } from '../client/mcp-relay.js';
import type { McpOptions } from '../client/mcp-server.js';
import type { CliIo } from '../io.js';
import { mcpConfigCommand } from './mcp-config.js';

/** Builds the `mcp` command. */
export function mcpCommand(io: CliIo): Command {
  return (
    new Command('mcp')
      .addCommand(mcpConfigCommand(io))
      .description('serve the Model Context Protocol on stdio: agents list connections, describe schemas and run SQL through the gateway')
      .option('--gateway <url>', 'gateway URL (default: $HOOP_GATEWAY, else the current `hoop login` profile)')
      .option('--token-file <file>', 'read the bearer token from this file (default: $HOOP_TOKEN, else the login)')
      .option('--ca-file <file>', "trust this CA for the gateway certificate (default: $HOOP_CA_FILE, else the profile's)")
      .option('--agent <name>', "the agent's name for the run hoop mcp begins (default: the MCP client's name)")
      .addOption(new Option('-c, --connect <name>', 'a connection of that run (repeat for several; default: every one you may use)').argParser((v: string, all: string[] = []) => [...all, v]))
      .option('--connection <name>', "serve this MCP connection of the gateway (its server's tools, under the policy) in place of hoop's own tools")
      // The MCP SDK (and the zod and JSON Schema code it brings) is loaded only to serve: help and completion build this command without it.
      .action(async (opts: McpOptions & { connection?: string }) =>
        opts.connection !== undefined ? relayMcp(io, { ...opts, connection: opts.connection }) : (await import('../client/mcp-server.js')).serveMcp(io, opts),
      )
  );
}
