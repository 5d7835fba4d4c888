/**
 * MCP connections against real MCP servers from npm, driven by the MCP SDK's client as an agent
 * drives them: `@modelcontextprotocol/server-filesystem` over stdio (a program the gateway runs,
 * admitted by `policy.allowedCommands`) and `@modelcontextprotocol/server-everything` over stdio
 * and Streamable HTTP, each behind the gateway, reached through `hoop mcp --connection`. Hidden
 * tools are absent from tools/list, a denied call never reaches the server (the file is not
 * written), a held call runs only once approved, results are masked by the detectors, the server
 * cannot ask the agent for sampling or elicitation, and every call is in the signed recording and
 * the index.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRepoStack, type HoopStack } from '../harness/stack.js';
import { recordingEvents } from '../harness/exported-events.js';
import { eventually } from '../harness/wait.js';

const require = createRequire(import.meta.url);
const FILESYSTEM = join(dirname(require.resolve('@modelcontextprotocol/server-filesystem/package.json')), 'dist', 'index.js');
const EVERYTHING = join(dirname(require.resolve('@modelcontextprotocol/server-everything/package.json')), 'dist', 'index.js');
const HOOP = resolve(import.meta.dirname, '../../bin/hoop.js');
const CARD = '4111 1111 1111 1111';

let stack: HoopStack;
let data: string;
let everythingHttp: ChildProcess;
let httpPort: number;

const bundle = (): string => `version: 1
connections:
  - name: files
    type: mcp
    command: [${process.execPath}, ${FILESYSTEM}, ${data}]
  - name: everything
    type: mcp
    command: [${process.execPath}, ${EVERYTHING}, stdio]
    env: { APP_MCP_TOKEN: "\${env:APP_MCP_TOKEN}" }
  - name: everything-http
    type: mcp
    url: http://127.0.0.1:${httpPort}/mcp
    headers: { X-Api-Key: "\${env:APP_MCP_TOKEN}" }
access:
  - { name: people, subjects: [alice, bob], connections: [files, everything, everything-http], mode: read-write }
statements:
  reviewers:
    - { groups: [dba], timeout: 30s }
masking:
  detectors:
    - { detector: payment-card, strategy: last4 }
mcp:
  rules:
    - { name: no-moves, match: { tools: [move_file] }, action: deny, message: files stay where they are }
    - { name: no-secret-dir, match: { tools: ["*"], arguments: { path: "${data}/secret/**" } }, action: deny, message: the secret directory is off limits }
    - { name: writes-reviewed, match: { tools: [write_file, edit_file, create_directory] }, action: review }
    - { name: no-env, match: { tools: [get-env], connections: [everything-http] }, action: deny }
`;

/** An agent's MCP client on connection `name`, through `hoop mcp --connection` (a real hoop process). */
async function agent(name: string, subject = 'alice'): Promise<{ client: Client; stderr: () => string; close: () => Promise<void> }> {
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: [HOOP, 'mcp', '--connection', name, '--gateway', stack.gateway.url, '--ca-file', stack.pki.caFile],
    env: { PATH: process.env.PATH ?? '', HOOP_TOKEN: await stack.token(subject), HOOP_CONFIG_DIR: join(stack.dir, `cli-${subject}`), XDG_RUNTIME_DIR: stack.runtime },
    stderr: 'pipe',
  });
  let err = '';
  transport.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  const client = new Client({ name: 'test-agent', version: '1.0.0' }, { capabilities: { sampling: {}, elicitation: {}, roots: { listChanged: true } } });
  // The client answers what the server asks (if the gateway let it through): a test fails if it ever does.
  const asked: string[] = [];
  client.setRequestHandler((await import('@modelcontextprotocol/sdk/types.js')).CreateMessageRequestSchema, () => {
    asked.push('sampling');
    return { role: 'assistant', content: { type: 'text', text: 'the agent answered' }, model: 'test' };
  });
  await client.connect(transport);
  return {
    client,
    stderr: () => err,
    close: async () => {
      expect(asked).toEqual([]);
      await client.close();
    },
  };
}

const hoop = async (argv: string[], subject = 'alice', groups: string[] = []) =>
  stack.run([...argv, '--gateway', stack.gateway.url, '--ca-file', stack.pki.caFile], { HOOP_TOKEN: await stack.token(subject, groups) });

/** The id of the one pending review whose text contains `text`, once it exists. */
async function pendingReview(text: string): Promise<string> {
  return eventually(
    async () => {
      const ls = await hoop(['review', 'ls', '--json'], 'bob', ['dba']);
      const found = (JSON.parse(ls.stdout) as { reviews: Array<{ id: string; sql: string }> }).reviews.find((r) => r.sql.includes(text));
      expect(found, `a pending review of ${text}`).toBeDefined();
      return found!.id;
    },
    { timeout: 60_000, interval: 100 },
  );
}

const text = (r: unknown): string => ((r as { content?: Array<{ type: string; text?: string }> }).content ?? []).map((c) => c.text ?? '').join('\n');

beforeAll(async () => {
  data = await mkdtemp(join(tmpdir(), 'hoop-mcp-data-'));
  await mkdir(join(data, 'secret'));
  await writeFile(join(data, 'readme.txt'), 'hello from the data directory\n');
  await writeFile(join(data, 'secret', 'key.txt'), 'the secret\n');
  await writeFile(join(data, 'cards.txt'), `customer card ${CARD}\n`);
  // server-everything over Streamable HTTP on a port of its own.
  httpPort = 20000 + Math.floor(Math.random() * 20000);
  everythingHttp = spawn(process.execPath, [EVERYTHING, 'streamableHttp'], { env: { ...process.env, PORT: String(httpPort) }, stdio: ['ignore', 'ignore', 'pipe'] });
  await new Promise<void>((resolveUp, reject) => {
    let err = '';
    everythingHttp.stderr!.on('data', (d: Buffer) => {
      err += d.toString();
      if (err.includes('listening on port')) resolveUp();
    });
    everythingHttp.once('exit', (code) => reject(new Error(`server-everything exited ${code}: ${err}`)));
  });
  stack = await startRepoStack('mcp', () => bundle(), ['${env:APP_*}'], {
    allowedCommands: [`${process.execPath} ${FILESYSTEM} ${data}`, `${process.execPath} ${EVERYTHING} stdio`],
    env: { APP_MCP_TOKEN: 'mcp-secret-token-1' },
  });
});

afterAll(async () => {
  await stack?.close();
  everythingHttp?.kill();
  await rm(data, { recursive: true, force: true });
});

describe('an MCP server behind the gateway (server-filesystem over stdio)', () => {
  it('lists only the tools a call could run, and serves allowed calls', async () => {
    const a = await agent('files');
    try {
      const tools = (await a.client.listTools()).tools.map((t) => t.name);
      expect(tools).toContain('read_text_file');
      expect(tools).toContain('write_file');
      expect(tools).not.toContain('move_file');
      const read = await a.client.callTool({ name: 'read_text_file', arguments: { path: join(data, 'readme.txt') } });
      expect(text(read)).toBe('hello from the data directory\n');
    } finally {
      await a.close();
    }
  });

  it('refuses a denied call before the server sees it, with the rule', async () => {
    const a = await agent('files');
    try {
      await expect(a.client.callTool({ name: 'read_text_file', arguments: { path: join(data, 'secret', 'key.txt') } })).rejects.toThrow(/the secret directory is off limits.*no-secret-dir/);
      // `..` does not get around it.
      await expect(a.client.callTool({ name: 'read_text_file', arguments: { path: join(data, 'public', '..', 'secret', 'key.txt') } })).rejects.toThrow(/no-secret-dir/);
      // Nor the reference server's tools that name their paths otherwise, or list the directory itself.
      for (const [name, args] of [
        ['read_multiple_files', { paths: [join(data, 'readme.txt'), join(data, 'secret', 'key.txt')] }],
        ['list_directory', { path: join(data, 'secret') }],
        ['directory_tree', { path: join(data, 'secret') }],
        ['search_files', { path: join(data, 'secret'), pattern: 'key' }],
      ] as const)
        await expect(a.client.callTool({ name, arguments: args }), name).rejects.toThrow(/no-secret-dir/);
      // A tool hidden from the list is refused when called by name.
      await expect(a.client.callTool({ name: 'move_file', arguments: { source: join(data, 'readme.txt'), destination: join(data, 'moved.txt') } })).rejects.toThrow(/files stay where they are/);
      expect(existsSync(join(data, 'readme.txt'))).toBe(true);
      expect(existsSync(join(data, 'moved.txt'))).toBe(false);
    } finally {
      await a.close();
    }
  });

  it('masks card numbers in results by the detectors', async () => {
    const a = await agent('files');
    try {
      const read = await a.client.callTool({ name: 'read_text_file', arguments: { path: join(data, 'cards.txt') } });
      expect(text(read)).not.toContain(CARD);
      expect(text(read)).toMatch(/customer card \*{4} \*{4} \*{4} 1111/);
    } finally {
      await a.close();
    }
  });

  it('holds a write until a reviewer approves it; a denied one never writes', async () => {
    const a = await agent('files');
    try {
      const approved = join(data, 'approved.txt');
      const call = a.client.callTool({ name: 'write_file', arguments: { path: approved, content: 'written after approval' } }, undefined, { timeout: 60_000 });
      const id = await pendingReview('approved.txt');
      expect(existsSync(approved)).toBe(false);
      const ok = await hoop(['review', 'approve', id], 'bob', ['dba']);
      expect(ok.code, ok.stderr).toBe(0);
      await call;
      expect(await readFile(approved, 'utf8')).toBe('written after approval');

      const refused = join(data, 'refused.txt');
      // Settled into a value at once: the denial can arrive before the deny command returns.
      const denied = a.client.callTool({ name: 'write_file', arguments: { path: refused, content: 'never' } }, undefined, { timeout: 60_000 }).then(
        () => new Error('the denied call ran'),
        (e: unknown) => e as Error,
      );
      const id2 = await pendingReview('refused.txt');
      const no = await hoop(['review', 'deny', id2, '--reason', 'not today'], 'bob', ['dba']);
      expect(no.code, no.stderr).toBe(0);
      expect((await denied).message).toMatch(/denied by .*not today/);
      expect(existsSync(refused)).toBe(false);
    } finally {
      await a.close();
    }
  });

  it('writes down a card an agent sends (a write_file content) as a keyed hash, in the review and the recording; approved, the file holds it as sent', async () => {
    const listWrites = async () =>
      (JSON.parse((await hoop(['sessions', 'ls', '--tool', 'write_file', '--since', '10m', '--json'])).stdout) as { sessions: Array<{ id: string; reason: string }> }).sessions;
    // The test before this one wrote a file too: its session is not this one.
    const before = new Set((await listWrites()).map((s) => s.id));
    const a = await agent('files');
    try {
      const target = join(data, 'card-note.txt');
      const call = a.client.callTool({ name: 'write_file', arguments: { path: target, content: `card ${CARD} on file` } }, undefined, { timeout: 60_000 });
      const id = await pendingReview('card-note.txt');
      const shown = await hoop(['review', 'show', id], 'bob', ['dba']);
      expect(shown.stdout).not.toContain(CARD);
      expect(shown.stdout).toMatch(/\[redacted:[0-9a-f]{8}\]/);
      expect((await hoop(['review', 'approve', id], 'bob', ['dba'])).code).toBe(0);
      await call;
      expect(await readFile(target, 'utf8')).toBe(`card ${CARD} on file`);
    } finally {
      await a.close();
    }
    const session = await eventually(
      async () => {
        const ended = (await listWrites()).filter((s) => s.reason !== 'running' && !before.has(s.id));
        expect(ended.length).toBeGreaterThan(0);
        return ended[0]!.id;
      },
      { timeout: 60_000, interval: 200 },
    );
    const events = JSON.stringify(await recordingEvents(stack, session));
    expect(events).toContain('card-note.txt');
    expect(events).toMatch(/\[redacted:[0-9a-f]{8}\]/);
    // Sent by the agent: redacted; read back in a result: masked by the detectors as every result is.
    expect(events).not.toContain(CARD);
  });

  it('indexes a session that called more tools than its line keeps as one that may have called any (1,000 made-up calls hid the real one)', async () => {
    const a = await agent('files');
    // 50 at a time: the gateway holds at most 64 of an agent's requests in flight.
    for (let i = 0; i < 1_000; i += 50) await Promise.all(Array.from({ length: 50 }, (_, k) => a.client.callTool({ name: `made-up-${i + k}`, arguments: {} }).catch(() => undefined)));
    await a.client.callTool({ name: 'read_text_file', arguments: { path: join(data, 'readme.txt') } });
    await a.close();
    const found = await eventually(
      async () => {
        const r = await hoop(['sessions', 'ls', '--tool', 'read_text_file', '--since', '10m', '--json']);
        const cut = (JSON.parse(r.stdout) as { sessions: Array<{ reason: string; tools?: string[]; toolsComplete?: boolean }> }).sessions.filter(
          (s) => s.reason !== 'running' && s.toolsComplete === false,
        );
        expect(cut).toHaveLength(1);
        return cut[0]!;
      },
      { timeout: 60_000, interval: 200 },
    );
    expect(found.tools).toHaveLength(1_000);
    expect(found.tools).not.toContain('read_text_file');
  });

  it('records every call and answer, signed, and indexes the tools called', async () => {
    const a = await agent('files');
    await a.client.callTool({ name: 'read_text_file', arguments: { path: join(data, 'readme.txt') } });
    await a.client.callTool({ name: 'get_file_info', arguments: { path: join(data, 'readme.txt') } });
    await expect(a.client.callTool({ name: 'move_file', arguments: { source: 'a', destination: 'b' } })).rejects.toThrow();
    await a.close();
    // The one session that called get_file_info: this one, once it has ended.
    const ls = await eventually(
      async () => {
        const r = await hoop(['sessions', 'ls', '--tool', 'get_file_*', '--since', '10m', '--json']);
        // (A session whose tools were cut is found by any --tool too: not this one.)
        const sessions = (JSON.parse(r.stdout) as { sessions: Array<{ id: string; reason: string; tools?: string[]; refused: number }> }).sessions.filter(
          (s) => s.reason !== 'running' && s.tools?.includes('get_file_info'),
        );
        expect(sessions.length).toBeGreaterThan(0);
        return sessions;
      },
      { timeout: 60_000, interval: 200 },
    );
    const session = ls[0]!;
    expect(session.tools).toEqual(['get_file_info', 'move_file', 'read_text_file']);
    expect(session.refused).toBe(1);
    const events = await recordingEvents(stack, session.id);
    const mcp = events.filter((e) => e.t === 'mcp') as Array<{ d: string; m: Record<string, unknown> }>;
    expect(mcp.some((e) => e.d === 'c' && e.m.method === 'initialize')).toBe(true);
    expect(mcp.some((e) => e.d === 'c' && e.m.method === 'tools/call' && (e.m.params as { name: string }).name === 'read_text_file')).toBe(true);
    expect(mcp.some((e) => e.d === 's' && JSON.stringify(e.m).includes('hello from the data directory'))).toBe(true);
    expect(mcp.some((e) => e.d === 's' && (e.m.error as { code?: number } | undefined)?.code === -32001)).toBe(true);
    const verify = await hoop(['sessions', 'verify', session.id]);
    expect(verify.code, verify.stdout + verify.stderr).toBe(0);
    const replay = await hoop(['sessions', 'replay', session.id, '--no-tty']);
    expect(replay.stdout).toContain('files> tools/call read_text_file');
    expect(replay.stdout).toContain('hello from the data directory');
    expect(replay.stdout).toMatch(/files> tools\/call move_file[\s\S]*refused/);
  });
});

describe('a name or id typed wrong', () => {
  /** `id` with its last character changed. */
  const typo = (id: string): string => `${id.slice(0, -1)}${id.endsWith('a') ? 'b' : 'a'}`;

  it("a session, review or alert id gets the nearest of the caller's own", async () => {
    const session = (JSON.parse((await hoop(['sessions', 'ls', '--json'])).stdout) as { sessions: Array<{ id: string }> }).sessions[0]!.id;
    const shown = await hoop(['sessions', 'show', typo(session)]);
    expect(shown.code).not.toBe(0);
    expect(shown.stderr).toContain(`did you mean "${session}"?`);
    // bob decided the reviews of the tests above: his own to see.
    const review = (JSON.parse((await hoop(['review', 'ls', '--state', 'all', '--json'], 'bob', ['dba'])).stdout) as { reviews: Array<{ id: string }> }).reviews[0]!.id;
    const read = await hoop(['review', 'show', typo(review)], 'bob', ['dba']);
    expect(read.stderr).toContain(`did you mean "${review}"?`);
    // carol may see none of them: told of none.
    expect((await hoop(['review', 'show', typo(review)], 'carol')).stderr).not.toContain('did you mean');
  });

  it("gets the nearest of the caller's own connections, and only of those", async () => {
    const typo = await hoop(['connect', 'file', '--json']);
    expect(typo.code).not.toBe(0);
    expect(typo.stderr).toContain('did you mean "files"?');
    // carol may use none of them: she is told of none.
    const outsider = await hoop(['connect', 'file', '--json'], 'carol');
    expect(outsider.stderr).not.toContain('did you mean');
  });
});

describe('an agent inside hoop run', () => {
  it("finds the run's MCP connections in $HOOP_MCP_CONFIG and calls them as the run, contained", async () => {
    const script = join(stack.dir, 'mcp-agent.mjs');
    const sdk = (p: string) => JSON.stringify(require.resolve(`@modelcontextprotocol/sdk/${p}`));
    await writeFile(
      script,
      `import { readFileSync } from 'node:fs';
import { Client } from ${sdk('client/index.js')};
import { StdioClientTransport } from ${sdk('client/stdio.js')};
const { mcpServers } = JSON.parse(readFileSync(process.env.HOOP_MCP_CONFIG, 'utf8'));
const s = mcpServers.files;
const client = new Client({ name: 'run-agent', version: '1' });
await client.connect(new StdioClientTransport({ command: s.command, args: s.args, env: process.env }));
const r = await client.callTool({ name: 'read_text_file', arguments: { path: ${JSON.stringify(join(data, 'readme.txt'))} } });
console.log('AGENT SAW:', r.content[0].text.trim());
await client.close();
`,
    );
    const r = await stack.run(['run', '--isolation', 'bwrap', '--connect', 'files', '--gateway', stack.gateway.url, '--ca-file', stack.pki.caFile, '--', process.execPath, script], {
      HOOP_TOKEN: await stack.token('alice'),
    });
    expect(r.stdout + r.stderr).toContain('AGENT SAW: hello from the data directory');
    expect(r.code, r.stderr).toBe(0);
    // The run said its id as it began; the gateway's index knows the run's MCP session by it.
    const runId = /^hoop: run (run-[\w-]+):/.exec(r.stderr)?.[1];
    expect(runId, r.stderr).toBeDefined();
    await eventually(async () => {
      const listed = JSON.parse((await hoop(['sessions', 'ls', '--connection', 'files', '--run', runId!, '--json'])).stdout) as { sessions: Array<{ via?: string }> };
      expect(listed.sessions.map((s) => s.via)).toContain('run');
    });
  });
});

describe('server-everything over stdio and Streamable HTTP', () => {
  it('gives a program only the environment the connection names: never the gateway secrets', async () => {
    const a = await agent('everything');
    try {
      const env = JSON.parse(text(await a.client.callTool({ name: 'get-env', arguments: {} }))) as Record<string, string>;
      expect(env.APP_MCP_TOKEN).toBe('mcp-secret-token-1');
      expect(env.APP_PASSWORD).toBeUndefined();
      expect(Object.keys(env).filter((k) => !['PATH', 'HOME', 'LANG', 'LC_ALL', 'LC_CTYPE', 'TZ', 'APP_MCP_TOKEN'].includes(k))).toEqual([]);
    } finally {
      await a.close();
    }
  });

  it('refuses the server asking the agent for sampling, unless the policy allows it', async () => {
    const a = await agent('everything');
    try {
      const r = await a.client
        .callTool({ name: 'trigger-sampling-request', arguments: { prompt: 'hi', maxTokens: 10 } })
        .catch((err: Error) => ({ isError: true, content: [{ type: 'text', text: err.message }] }));
      // The server was not told the agent samples (the policy keeps it from asking), and the agent was never asked (close() checks).
      expect(JSON.stringify(r)).toMatch(/sampling/i);
      expect((r as { isError?: boolean }).isError).toBe(true);
    } finally {
      await a.close();
    }
  });

  it('serves a Streamable HTTP server with the policy in force', async () => {
    const a = await agent('everything-http');
    try {
      const tools = (await a.client.listTools()).tools.map((t) => t.name);
      expect(tools).toContain('echo');
      expect(tools).not.toContain('get-env');
      expect(text(await a.client.callTool({ name: 'echo', arguments: { message: `card ${CARD}` } }))).not.toContain(CARD);
      expect(text(await a.client.callTool({ name: 'get-sum', arguments: { a: 2, b: 3 } }))).toContain('5');
      await expect(a.client.callTool({ name: 'get-env', arguments: {} })).rejects.toThrow(/no-env/);
    } finally {
      await a.close();
    }
  });
});
