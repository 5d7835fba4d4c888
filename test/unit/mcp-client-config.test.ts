/** Where `hoop mcp config` puts hoop for each MCP client, and the entry each client reads. */
import { homedir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { clientFile, LAUNCHER, MCP_CLIENTS, serverEntry } from '../../src/client/mcp-client-config.js';

describe("each MCP client's file", () => {
  it("is the project's, or with --global the user's, where the client reads its servers", () => {
    const cwd = '/work/project';
    expect(clientFile('claude-code', cwd, false)).toEqual({ file: '/work/project/.mcp.json', key: 'mcpServers' });
    expect(clientFile('claude-code', cwd, true)).toEqual({ file: join(homedir(), '.claude.json'), key: 'mcpServers' });
    expect(clientFile('cursor', cwd, false)).toEqual({ file: '/work/project/.cursor/mcp.json', key: 'mcpServers' });
    expect(clientFile('vscode', cwd, false)).toEqual({ file: '/work/project/.vscode/mcp.json', key: 'servers' });
    expect(() => clientFile('vscode', cwd, true)).toThrow(/VS Code keeps user-level MCP servers in its settings/);
    expect(clientFile('gemini', cwd, false)).toEqual({ file: '/work/project/.gemini/settings.json', key: 'mcpServers' });
    expect(clientFile('gemini', cwd, true)).toEqual({ file: join(homedir(), '.gemini', 'settings.json'), key: 'mcpServers' });
    expect(clientFile('windsurf', cwd, false)).toEqual({ file: join(homedir(), '.codeium', 'windsurf', 'mcp_config.json'), key: 'mcpServers' });
  });

  it('starts this hoop over stdio, naming the transport where the client wants it, with the login variables set', () => {
    const env = { HOOP_CONFIG_DIR: '/x/cfg', HOOP_TOKEN: 'never-written', PATH: '/nowhere' };
    for (const client of MCP_CLIENTS) {
      const entry = serverEntry(client, ['--connection', 'files'], env);
      expect(entry, client).toMatchObject({ command: process.execPath, args: [LAUNCHER, 'mcp', '--connection', 'files'], env: { HOOP_CONFIG_DIR: '/x/cfg' } });
      expect(JSON.stringify(entry)).not.toContain('never-written');
      expect(entry.type, client).toBe(client === 'claude-code' || client === 'vscode' ? 'stdio' : undefined);
    }
  });
});
