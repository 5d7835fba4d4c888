/**
 * What containing an agent costs (src/agent/): a run's whole life, `hoop run --quiet --connect
 * bench -- true`, as it begins and ends against a gateway of its own (BENCH_AGENT_RUNS runs each,
 * default 10, median and p90) not contained, contained writing the tree itself (`--apply live`),
 * and contained through the gate (its layer mounted, read and removed); then the gate itself,
 * in this process: 1,000 changed files of 10 KiB (of 2,000 in a directory) read from a layer,
 * judged and applied to a tree of their own (BENCH_GATE_FILES, median of three).
 * BENCH_AGENT_BASELINE=<another checkout>/bin/hoop.js adds a row of that hoop's contained run, in
 * the same run (what a change to containment costs); BENCH_AGENT=0 skips it all.
 *
 * Layer: uses ./processes.ts and ./hoop-paths.ts (the gateway); ./pg-path.ts runs it.
 */
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { layerChanges } from '../src/agent/gate.js';
import { applyChanges } from '../src/agent/gate-apply.js';
import { makeLayer } from '../src/agent/layers.js';
import { startBenchGateway } from './hoop-paths.js';
import { tempDir } from './processes.js';

const run = promisify(execFile);
const RUNS = Number(process.env.BENCH_AGENT_RUNS ?? 10);
const GATE_FILES = Number(process.env.BENCH_GATE_FILES ?? 1000);
const BASELINE = process.env.BENCH_AGENT_BASELINE;

/** One row: its label and what it measured. */
export interface AgentRow {
  label: string;
  median: number;
  p90: number;
}

const quantile = (xs: number[], q: number): number => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))]!;

/** Wall time of `RUNS` whole runs of `hoop run <how> -- true`, in ms (spawned asynchronously: the identity provider answers from this process). */
async function timeRuns(bin: string, how: string[], env: NodeJS.ProcessEnv, cwd: string): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < RUNS + 1; i++) {
    const t = process.hrtime.bigint();
    await run(process.execPath, [bin, 'run', '--quiet', ...how, '--connect', 'bench', '--', 'true'], { env, cwd }).catch((err: { stderr?: string }) => {
      throw new Error(`hoop run ${how.join(' ')} failed: ${err.stderr?.trim() ?? String(err)}`);
    });
    if (i > 0) times.push(Number(process.hrtime.bigint() - t) / 1e6); // the first warms the caches
  }
  return times;
}

/** The gate's time, in ms, for `GATE_FILES` changed files of 10 KiB of twice as many in a directory, and the disk's floor for writing them. */
async function timeGate(): Promise<{ gate: number; floor: number }> {
  const { dir } = tempDir('hoop-bench-gate-');
  const tree = join(dir, 'tree');
  mkdirSync(join(tree, 'src'), { recursive: true });
  const body = Buffer.alloc(10 * 1024, 'a');
  for (let i = 0; i < 2 * GATE_FILES; i++) writeFileSync(join(tree, 'src', `f${i}.txt`), body);
  const env = { XDG_STATE_HOME: join(dir, 'state') };
  const id = execFileSync('stat', ['-c', '%d %i', tree], { encoding: 'utf8' }).trim().split(' ').map(Number);
  const layer = await makeLayer(env, {
    run: `run-bench${Date.now()}`,
    startedAt: Date.now(),
    places: [{ path: tree, dir: true, dev: id[0]!, ino: id[1]! }],
    agent: 'bench',
    command: 'true',
    cwd: tree,
    pid: process.pid,
    pidStart: '',
    kept: false,
    protectedPaths: [],
    allowControls: [],
    review: false,
  });
  // What a command's writes leave in the upper layer: the directory, and each file it changed.
  mkdirSync(join(layer.upper(0), 'src'));
  const changed = Buffer.alloc(10 * 1024, 'b');
  for (let i = 0; i < GATE_FILES; i++) writeFileSync(join(layer.upper(0), 'src', `f${i}.txt`), changed);
  const t = process.hrtime.bigint();
  const changes = await layerChanges(layer, process.env);
  const applied = applyChanges(layer, changes);
  const gate = Number(process.hrtime.bigint() - t) / 1e6;
  if (applied.changed !== GATE_FILES) throw new Error(`the gate applied ${applied.changed} of ${GATE_FILES} changes`);
  layer.remove();
  // The floor on this disk: the same files written beside their place and renamed over it, nothing read or judged.
  const f = process.hrtime.bigint();
  for (let i = 0; i < GATE_FILES; i++) {
    const file = join(tree, 'src', `f${i}.txt`);
    writeFileSync(`${file}.tmp`, body);
    renameSync(`${file}.tmp`, file);
  }
  return { gate, floor: Number(process.hrtime.bigint() - f) / 1e6 };
}

/** Measures the rows (see the module documentation). */
export async function measureAgentRuns(log: (s: string) => void): Promise<AgentRow[]> {
  // A connection the runs name and never open: what is measured is the run's own life.
  const gw = await startBenchGateway(
    [
      'recording: { enabled: true }',
      'connections:',
      '  - { name: bench, type: postgres, host: 127.0.0.1, port: 9, database: bench, user: bench, password: "${env:BENCH_NO_PASSWORD}", tls: { mode: disable }, allow: { subjects: ["*"], maxSessions: 5000 } }',
    ],
    { BENCH_NO_PASSWORD: 'unused' },
  );
  const rows: AgentRow[] = [];
  try {
    const { dir } = tempDir('hoop-bench-run-');
    const work = join(dir, 'work');
    mkdirSync(work);
    const env = { PATH: process.env.PATH, HOME: dir, HOOP_CONFIG_DIR: join(dir, 'cli'), HOOP_TOKEN: gw.token, HOOP_GATEWAY: gw.url, HOOP_CA_FILE: gw.caFile, XDG_RUNTIME_DIR: join(dir, 'xdg') };
    mkdirSync(env.XDG_RUNTIME_DIR, { mode: 0o700 });
    const ways: Array<[string, string, string[]]> = [
      ['hoop run, not contained', gw.hoopBin, ['--isolation', 'none']],
      ['hoop run, contained, --apply live', gw.hoopBin, ['--isolation', 'bwrap', '--apply', 'live']],
      ['hoop run, contained through the gate', gw.hoopBin, ['--isolation', 'bwrap']],
      // Another checkout's hoop (its bin/hoop.js), contained as it contains: what a change to containment costs, in the same run.
      ...(BASELINE ? [[`hoop run, contained, as ${BASELINE} does`, BASELINE, ['--isolation', 'bwrap']] as [string, string, string[]]] : []),
    ];
    for (const [label, bin, how] of ways) {
      const times = await timeRuns(bin, how, env, work);
      rows.push({ label: `${label} (whole run of \`true\`)`, median: quantile(times, 0.5), p90: quantile(times, 0.9) });
      log(`[agent] ${label}: median ${quantile(times, 0.5).toFixed(1)} ms`);
    }
  } finally {
    await gw.stop();
  }
  const times: Array<{ gate: number; floor: number }> = [];
  for (let i = 0; i < 3; i++) times.push(await timeGate());
  const gate = times.map((t) => t.gate);
  const floor = times.map((t) => t.floor);
  rows.push({ label: `the gate: ${GATE_FILES} changed files of 10 KiB read, judged, applied`, median: quantile(gate, 0.5), p90: Math.max(...gate) });
  rows.push({ label: `floor: the same files written and renamed in place`, median: quantile(floor, 0.5), p90: Math.max(...floor) });
  log(`[agent] gate: ${gate.map((t) => t.toFixed(0)).join(' / ')} ms (floor ${floor.map((t) => t.toFixed(0)).join(' / ')} ms)`);
  return rows;
}

/** The rows, in markdown. */
export function formatAgentRuns(rows: AgentRow[]): string[] {
  return ['| agent runs | median | p90 (gate: slowest of 3) |', '|---|---:|---:|', ...rows.map((r) => `| ${r.label} | ${r.median.toFixed(1)} ms | ${r.p90.toFixed(1)} ms |`), ''];
}
