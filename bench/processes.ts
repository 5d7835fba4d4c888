/**
 * The benchmark's processes, temporary directories and cleanup: everything started here is
 * registered, and stopped or removed on exit, on error and on Ctrl-C (see {@link trapExitSignals}
 * and {@link cleanupAll}).
 *
 * Layer: imports nothing of the benchmark's; every other module of bench/ may use it.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

/** The repository's root (bench/'s parent). */
export const repoRoot = resolve(import.meta.dirname, '..');

/* ------------------------------------------------------------------ cleanup */

const cleanups: Array<{ name: string; fn: () => Promise<void> | void }> = [];
const children = new Set<ChildProcess>();
let cleaning: Promise<void> | undefined;
let interrupted = false;

/** Registers `fn` to run at cleanup; the function returned runs it now instead (once). */
export function onCleanup(name: string, fn: () => Promise<void> | void): () => Promise<void> {
  const entry = { name, fn };
  cleanups.push(entry);
  return async () => {
    const i = cleanups.indexOf(entry);
    if (i >= 0) {
      cleanups.splice(i, 1);
      await entry.fn();
    }
  };
}

/** Runs every registered cleanup, last registered first; a failing one is reported, not thrown. */
export function cleanupAll(): Promise<void> {
  cleaning ??= (async () => {
    while (cleanups.length > 0) {
      const { name, fn } = cleanups.pop()!;
      try {
        await fn();
      } catch (err) {
        process.stderr.write(`bench: cleanup of ${name} failed: ${(err as Error).message}\n`);
      }
    }
  })();
  return cleaning;
}

/** Whether Ctrl-C (or SIGTERM, SIGHUP) was received: the benchmark stops at the next step. */
export function isInterrupted(): boolean {
  return interrupted;
}

/**
 * On SIGINT, SIGTERM or SIGHUP: the children are asked to stop, everything registered is cleaned
 * up, and the process exits 130 (a second signal exits at once). On exit, any child left is killed.
 */
export function trapExitSignals(): void {
  process.on('exit', () => {
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(signal, () => {
      if (interrupted) process.exit(130);
      interrupted = true;
      process.stderr.write(`\nbench: ${signal}, cleaning up...\n`);
      for (const child of children) child.kill('SIGTERM');
      void cleanupAll().finally(() => process.exit(130));
    });
  }
}

/* ------------------------------------------------------------------ processes */

/** A long-running helper process started by {@link startProcess}. */
export interface Spawned {
  child: ChildProcess;
  /** The last 64 KiB of its stdout and stderr. */
  stdout: () => string;
  stderr: () => string;
  exited: Promise<number | null>;
  /** SIGTERM, then SIGKILL after 3 s; resolves once it has exited. */
  stop: () => Promise<void>;
}

/** Starts a long-running helper process, tracked for cleanup. */
export function startProcess(file: string, args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string; name: string }): Spawned {
  const child = spawn(file, args, { env: opts.env ?? process.env, cwd: opts.cwd ?? repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (s: string) => (out = (out + s).slice(-65536)));
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (err = (err + s).slice(-65536)));
  const exited = new Promise<number | null>((res) => {
    child.once('error', (e) => {
      err += `\n${e.message}`;
      res(-1);
    });
    child.once('exit', (code, signal) => res(code ?? (signal ? 128 : null)));
  });
  void exited.then(() => children.delete(child));
  const stop = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
    await exited;
    clearTimeout(timer);
  };
  onCleanup(opts.name, stop);
  return { child, stdout: () => out, stderr: () => err, exited, stop };
}

/** Runs a command to completion; rejects with its stderr tail on a non-zero exit. */
export function runToEnd(file: string, args: string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<{ stdout: string; stderr: string; ms: number }> {
  return new Promise((res, rej) => {
    const t0 = process.hrtime.bigint();
    const child = spawn(file, args, { env: opts.env ?? process.env, cwd: tmpdir(), stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(child);
    let out = '';
    let err = '';
    child.stdout!.setEncoding('utf8').on('data', (s: string) => (out = (out + s).slice(-1 << 20)));
    child.stderr!.setEncoding('utf8').on('data', (s: string) => (err = (err + s).slice(-65536)));
    const timer = opts.timeoutMs ? setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs) : undefined;
    child.once('error', (e) => {
      children.delete(child);
      rej(e);
    });
    child.once('close', (code, signal) => {
      children.delete(child);
      if (timer) clearTimeout(timer);
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      if (code === 0) res({ stdout: out, stderr: err, ms });
      else rej(new Error(`${file.split('/').pop()} ${signal ? `killed by ${signal}` : `exited ${code}`}: ${lastLines(err || out, 3)}`));
    });
  });
}

/** Runs a command to completion, counting the bytes of its stdout (which is not kept). */
export function countStdoutBytes(file: string, args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  return new Promise((res, rej) => {
    const child = spawn(file, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(child);
    let bytes = 0;
    let err = '';
    child.stdout.on('data', (b: Buffer) => (bytes += b.length));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (err += s));
    child.once('error', rej);
    child.once('close', (code) => {
      children.delete(child);
      if (code === 0) res(bytes);
      else rej(new Error(`${file.split('/').pop()} exited ${code}: ${lastLines(err, 3)}`));
    });
  });
}

/** The last `n` lines of `s`, joined with ` | `. */
export function lastLines(s: string, n: number): string {
  return s.trim().split('\n').slice(-n).join(' | ');
}

/* ------------------------------------------------------------------ waiting */

/** Resolves once something accepts TCP connections on 127.0.0.1:port; rejects when `alive` says the process ended. */
export async function waitForPort(port: number, timeoutMs: number, alive: () => boolean = () => true): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((res) => {
      const s = netConnect({ host: '127.0.0.1', port });
      s.once('connect', () => {
        s.destroy();
        res(true);
      });
      s.once('error', () => res(false));
    });
    if (ok) return;
    if (!alive()) throw new Error('process exited before listening');
    if (Date.now() > deadline) throw new Error(`nothing listening on 127.0.0.1:${port} after ${timeoutMs} ms`);
    await sleep(50);
  }
}

/** Polls `probe` every 50 ms until it returns a value (or throws); rejects after `timeoutMs`. */
export async function waitFor<T>(timeoutMs: number, probe: () => T | undefined): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms`);
    await sleep(50);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/* ------------------------------------------------------------------ programs */

/** The path of `cmd` on PATH (or in `extra` directories), or undefined. */
export function which(cmd: string, extra: string[] = []): string | undefined {
  for (const dir of [...(process.env.PATH ?? '').split(':'), ...extra]) {
    if (dir && existsSync(join(dir, cmd))) return join(dir, cmd);
  }
  return undefined;
}

/** The first line `file args` prints (its version), `missing` when there is no such program. */
export function versionOf(file: string | undefined, args: string[]): string {
  if (!file) return 'missing';
  const r = spawnSync(file, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  return `${r.stdout ?? ''}\n${r.stderr ?? ''}`.trim().split('\n')[0] || '?';
}

/* ------------------------------------------------------------------ files */

/** A temporary directory, removed at cleanup (or by `remove`). */
export function tempDir(prefix: string): { dir: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const remove = (): void => rmSync(dir, { recursive: true, force: true });
  onCleanup(`temp dir ${dir}`, remove);
  return { dir, remove };
}
