/**
 * A small MCP tool call (`echo` of `@modelcontextprotocol/server-everything`), one at a time, by the
 * MCP SDK's client as an agent makes it: to the server over stdio directly, and through hoop
 * (`hoop mcp --connection`, a gateway with a policy repo whose mcp rules judge every call, masking
 * detectors on every result, and the session recorded). BENCH_MCP_CALLS calls each (default
 * 2000, after 200 to warm up); p50 and p99 of each, and what hoop adds. BENCH_MCP=0 skips it.
 *
 * Layer: uses ./processes.ts, ./measure.ts (the percentiles) and ./hoop-paths.ts (the gateway);
 * ./pg-path.ts runs it.
 *
 * @see https://modelcontextprotocol.io/specification/2025-06-18/server/tools
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { benchPolicyRepo, startBenchGateway } from './hoop-paths.js';
import { tempDir } from './processes.js';

/** Calls measured per path, after the warm-up. */
const CALLS = Number(process.env.BENCH_MCP_CALLS ?? 2000);
const WARMUP = 200;

/** One path's latencies, in milliseconds. */
export interface McpRow {
  label: string;
  p50: number;
  p99: number;
}

const require = createRequire(import.meta.url);
const EVERYTHING = join(dirname(require.resolve('@modelcontextprotocol/server-everything/package.json')), 'dist', 'index.js');

/** The bench's policy: mcp rules that judge every call (none matches echo), a deny, a review, and masking detectors. */
function mcpPolicy(): string {
  return `version: 1
connections:
  - name: everything
    type: mcp
    command: [${process.execPath}, ${EVERYTHING}, stdio]
access:
  - { name: bench, subjects: ["*"], connections: [everything], mode: read-write, maxSessions: 100 }
masking:
  detectors:
    - { detector: payment-card, strategy: last4 }
    - { detector: secret-token, strategy: redact }
mcp:
  rules:
    - { name: no-env, match: { tools: [get-env] }, action: deny }
    - { name: no-etc, match: { tools: ["*"], arguments: { path: "/etc/**" } }, action: deny }
    - { name: sampling-reviewed, match: { tools: ["trigger-*"] }, action: review }
`;
}

/** Latencies of `CALLS` echo calls over `transport`, after the warm-up. */
async function measure(transport: StdioClientTransport): Promise<number[]> {
  const client = new Client({ name: 'hoop-bench', version: '1' });
  await client.connect(transport);
  try {
    for (let i = 0; i < WARMUP; i++) await client.callTool({ name: 'echo', arguments: { message: `warm ${i}` } });
    const times: number[] = [];
    for (let i = 0; i < CALLS; i++) {
      const t = process.hrtime.bigint();
      await client.callTool({ name: 'echo', arguments: { message: `call ${i}` } });
      times.push(Number(process.hrtime.bigint() - t) / 1e6);
    }
    return times;
  } finally {
    await client.close();
  }
}

const percentile = (sorted: number[], p: number): number => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
const row = (label: string, times: number[]): McpRow => {
  const sorted = [...times].sort((a, b) => a - b);
  return { label, p50: percentile(sorted, 50), p99: percentile(sorted, 99) };
};

/** Measures the direct and the hoop path. */
export async function measureMcp(log: (s: string) => void): Promise<McpRow[]> {
  const direct = row('stdio direct', await measure(new StdioClientTransport({ command: process.execPath, args: [EVERYTHING, 'stdio'], stderr: 'ignore' })));
  log(`[mcp] direct: p50 ${direct.p50.toFixed(3)} ms, p99 ${direct.p99.toFixed(3)} ms`);
  const { dir } = tempDir('hoop-bench-mcp-');
  const repo = benchPolicyRepo(dir, mcpPolicy());
  const gw = await startBenchGateway([
    'recording: { enabled: true }',
    'policy:',
    `  repo: ${JSON.stringify(repo)}`,
    '  ref: main',
    '  allowedCommands:',
    `    - ${JSON.stringify(`${process.execPath} ${EVERYTHING} stdio`)}`,
    '  pullIntervalSeconds: 3600',
  ]);
  try {
    const transport = new StdioClientTransport({
      command: process.execPath,
      args: [gw.hoopBin, 'mcp', '--connection', 'everything'],
      env: { PATH: process.env.PATH ?? '', HOME: dir, HOOP_CONFIG_DIR: join(dir, 'cli'), HOOP_TOKEN: gw.token, HOOP_GATEWAY: gw.url, HOOP_CA_FILE: gw.caFile },
      stderr: 'ignore',
    });
    const hoop = row('hoop mcp --connection, policy + masking + recording', await measure(transport));
    log(`[mcp] hoop: p50 ${hoop.p50.toFixed(3)} ms, p99 ${hoop.p99.toFixed(3)} ms`);
    return [direct, hoop];
  } finally {
    await gw.stop();
  }
}

/** The MCP table, in markdown: each path's p50 and p99, and what hoop adds to the direct path's. */
export function formatMcp(rows: McpRow[]): string[] {
  const [direct] = rows;
  return [
    `| MCP tool call (echo), ${CALLS} calls | p50 | p99 | added p50 | added p99 |`,
    '|---|---:|---:|---:|---:|',
    ...rows.map(
      (r) =>
        `| ${r.label} | ${r.p50.toFixed(3)} ms | ${r.p99.toFixed(3)} ms | ${r === direct ? '' : `${(r.p50 - direct!.p50).toFixed(3)} ms`} | ${r === direct ? '' : `${(r.p99 - direct!.p99).toFixed(3)} ms`} |`,
    ),
    '',
  ];
}
