/**
 * The CPU and system calls a path's relay processes spend per transaction, read from /proc before
 * and after a run: the same meter for every lane (pgbench's runs and mariadb-slap's).
 *
 * Layer: imports nothing of the benchmark's; the lanes' measurements (./measure.ts, ./mysql-measure.ts) use it.
 *
 * @see https://man7.org/linux/man-pages/man5/proc_pid_stat.5.html
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

const CLOCK_TICKS = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

/** Fields of /proc/<pid>/stat from field 3 on (after the command name). */
function statFields(pid: number): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined; // it ended
  }
}

/**
 * CPU seconds (user + system, all threads) used by process `pid` and the descendants it has now
 * (sshd serves each connection in a child of the listener): fields 14 and 15 (utime, stime), in
 * clock ticks. Compare two readings taken while the same processes live.
 */
function cpuSeconds(pid: number): number {
  const parent = new Map<number, number>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const f = statFields(Number(entry));
    if (f) parent.set(Number(entry), Number(f[1]));
  }
  const inTree = (p: number): boolean => {
    for (let at: number | undefined = p; at !== undefined && at > 1; at = parent.get(at)) if (at === pid) return true;
    return false;
  };
  let ticks = 0;
  for (const p of parent.keys()) {
    if (!inTree(p)) continue;
    const f = statFields(p);
    if (f) ticks += Number(f[11]) + Number(f[12]);
  }
  return ticks / CLOCK_TICKS;
}

/** Read and write system calls of process `pid` (all threads): syscr and syscw of /proc/<pid>/io. */
function syscalls(pid: number): { r: number; w: number } {
  try {
    const io = readFileSync(`/proc/${pid}/io`, 'utf8');
    return { r: Number(/syscr: (\d+)/.exec(io)?.[1] ?? 0), w: Number(/syscw: (\d+)/.exec(io)?.[1] ?? 0) };
  } catch {
    return { r: 0, w: 0 };
  }
}

/** The processes (each with its children) that relay a path's traffic, whose CPU per transaction is reported. */
export interface RelayPids {
  /** The server side: the gateway, sshd, the node relay's server. */
  server: number;
  /** The client side: `hoop connect`, ssh, the node relay's client; none when clients reach the server side themselves. */
  client?: number;
}

/** One side of a relay: the server side (gateway, sshd) or the client side (`hoop connect`, ssh). */
export type RelaySide = 'server' | 'client';

/** What one side of the relay spent per unit (transaction, query or session) of a run. */
export interface SideUsage {
  side: RelaySide;
  /** CPU (user + system, all threads and children), in µs per unit. */
  cpuUs: number;
  /** Read and write system calls of the side's main process, per unit. */
  reads: number;
  writes: number;
}

/** The relay's processes by side: the server side, then the client side where it has one. */
function relaySides(relay: RelayPids | undefined): Array<[RelaySide, number]> {
  if (!relay) return [];
  return relay.client === undefined
    ? [['server', relay.server]]
    : [
        ['server', relay.server],
        ['client', relay.client],
      ];
}

/** Reads the relay's counters now; `perUnit(n)` gives what each side spent since, per each of `n` units (nothing when `n` is 0 or there is no relay). */
export function startRelayMeter(relay: RelayPids | undefined): { perUnit: (units: number) => SideUsage[] } {
  const sides = relaySides(relay);
  const before = sides.map(([, pid]) => ({ cpu: cpuSeconds(pid), io: syscalls(pid) }));
  return {
    perUnit: (units) => {
      if (units <= 0) return [];
      return sides.map(([side, pid], i) => {
        const io = syscalls(pid);
        return { side, cpuUs: ((cpuSeconds(pid) - before[i]!.cpu) * 1e6) / units, reads: (io.r - before[i]!.io.r) / units, writes: (io.w - before[i]!.io.w) / units };
      });
    },
  };
}

/** `usage` as `server side 12.3 µs, client side 4.5 µs` (in ms for the per-session figures). */
export function formatCpu(usage: SideUsage[], o: { unit?: 'µs' | 'ms'; digits?: number } = {}): string {
  const unit = o.unit ?? 'µs';
  const factor = unit === 'ms' ? 1e-3 : 1;
  return usage.map((u) => `${u.side} side ${(u.cpuUs * factor).toFixed(o.digits ?? 1)} ${unit}`).join(', ');
}

/** `usage`'s system calls as `server side 2.00 reads 2.00 writes; ...`. */
export function formatSyscalls(usage: SideUsage[]): string {
  return usage.map((u) => `${u.side} side ${u.reads.toFixed(2)} reads ${u.writes.toFixed(2)} writes`).join('; ');
}

/** The server and client sides' CPU per transaction of `usage`, as a path's figures name them. */
export function cpuFigures(usage: SideUsage[]): { serverCpuUsPerTxn?: number; clientCpuUsPerTxn?: number } {
  const server = usage.find((u) => u.side === 'server');
  const client = usage.find((u) => u.side === 'client');
  return { ...(server ? { serverCpuUsPerTxn: server.cpuUs } : {}), ...(client ? { clientCpuUsPerTxn: client.cpuUs } : {}) };
}
