/**
 * The built CLI as a separate process (`node bin/hoop.js …`), as a user or an agent runs it:
 * only the environment it is given (and PATH), its output collected as it comes.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { resolve } from 'node:path';
import type { TestPerson } from './people.js';

export const HOOP_BIN = resolve(import.meta.dirname, '../../bin/hoop.js');

/** What `hoop run` says on stderr as run `id` begins (unless --quiet). */
export const runSaid = (id: string): string => `hoop: run ${id}: \`hoop sessions ls --run ${id}\` lists its sessions\n`;

/** How a spawned hoop ended, and what it printed. */
export interface HoopProcessResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `node [nodeArgs] bin/hoop.js args`; `onStdout` sees the output so far as it grows; `input` goes to its stdin. */
export function spawnHoop(
  args: string[],
  o: {
    env?: NodeJS.ProcessEnv;
    cwd?: string;
    input?: string;
    nodeArgs?: string[];
    onStdout?: (text: string, child: ChildProcess) => void;
    onStderr?: (text: string, child: ChildProcess) => void;
    as?: TestPerson;
    wrap?: string[];
    /** A process group of its own (its id is its pid), as a shell's job is. */
    detached?: boolean;
  },
): Promise<HoopProcessResult> {
  // As another person: their ids and home (./people.ts). Wrapped: `wrap` runs node (a namespace of the test's own).
  const as = o.as?.other ? { uid: o.as.uid, gid: o.as.gid } : {};
  const [file, ...before] = [...(o.wrap ?? []), process.execPath];
  const child = spawn(file!, [...before, ...(o.nodeArgs ?? []), HOOP_BIN, ...args], {
    env: { PATH: process.env.PATH, ...(o.as?.other ? { HOME: o.as.home, USER: o.as.label.split(' ')[0] } : {}), ...o.env },
    ...(o.cwd ? { cwd: o.cwd } : {}),
    ...as,
    ...(o.detached ? { detached: true } : {}),
    stdio: [o.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
  });
  child.stdin?.on('error', () => undefined); // hoop may exit before reading it all
  if (o.input !== undefined) child.stdin!.end(o.input);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => {
    stdout += d.toString();
    o.onStdout?.(stdout, child);
  });
  child.stderr!.on('data', (d: Buffer) => {
    stderr += d.toString();
    o.onStderr?.(stderr, child);
  });
  return new Promise((r) => child.on('close', (code) => r({ code, stdout, stderr })));
}
