/**
 * Runs a program to its end from a small process of its own: a test worker holds hundreds of MB
 * (the sources, servers in-process), and each fork copies its page tables and faults its pages
 * afresh (about 12 ms of CPU at 300 MB against 1.5 ms from a small process).
 */
import { type ChildProcess, fork } from 'node:child_process';

/** What a program run to its end left: its exit code (null when a signal or the timeout ended it), and its output. */
export interface Launched {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** The error of a program that could not start (ENOENT) or was killed at its timeout. */
  error?: { code?: string; message: string; killed?: boolean };
}

/** A program to run: as child_process.execFile takes it, with its stdin as text. */
export interface Launch {
  file: string;
  args: readonly string[];
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  input?: string;
  timeoutMs?: number;
}

/** The launcher's own code: execFile for each request, its answer sent back by id. */
const LAUNCHER = `
const { execFile } = require('node:child_process');
process.on('disconnect', () => process.exit(0));
process.on('message', ({ id, file, args, env, cwd, input, timeoutMs }) => {
  const child = execFile(file, args, { env, cwd, timeout: timeoutMs ?? 0, maxBuffer: 256 * 1024 * 1024, encoding: 'utf8' }, (err, stdout, stderr) => {
    const code = err ? (typeof err.code === 'number' ? err.code : null) : 0;
    const error = err && typeof err.code !== 'number' ? { code: err.code, message: err.message, killed: err.killed } : undefined;
    process.send({ id, code, signal: err?.signal ?? null, stdout, stderr, error });
  });
  child.stdin.on('error', () => undefined);
  child.stdin.end(input ?? '');
});
`;

let launcher: ChildProcess | undefined;
let next = 0;
const waiting = new Map<number, (l: Launched) => void>();

/** The worker's launcher, started on first use (while it is small, the fork is cheap; once). */
function started(): ChildProcess {
  if (launcher?.connected) return launcher;
  const child = fork('-e', [LAUNCHER], { execPath: process.execPath, execArgv: [], stdio: ['ignore', 'inherit', 'inherit', 'ipc'], serialization: 'advanced' });
  // The launcher keeps neither the worker alive nor its own requests waiting once it is gone.
  child.unref();
  child.channel?.unref();
  child.on('message', ({ id, ...done }: Launched & { id: number }) => {
    waiting.get(id)?.(done);
    waiting.delete(id);
    if (waiting.size === 0) child.channel?.unref();
  });
  child.on('exit', () => {
    for (const [id, resolve] of waiting) resolve({ code: null, signal: null, stdout: '', stderr: '', error: { message: `the launcher ended before request ${id} was answered` } });
    waiting.clear();
    if (launcher === child) launcher = undefined;
  });
  launcher = child;
  return child;
}

/** Runs `l.file` with `l.args` to its end, from the launcher. */
export function launch(l: Launch): Promise<Launched> {
  const child = started();
  const id = next++;
  return new Promise((resolve) => {
    waiting.set(id, resolve);
    child.channel?.ref();
    child.send({ id, file: l.file, args: l.args, env: l.env ?? process.env, cwd: l.cwd, input: l.input, timeoutMs: l.timeoutMs });
  });
}
