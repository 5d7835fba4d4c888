/**
 * What a test process leaves running (a PostgreSQL cluster, a MariaDB server) is cleaned up even when the process dies
 * outright: one detached shell per process reads a pipe from it and, at the pipe's end (the process gone, however it
 * went), runs the cleanup lines still listed in a file of its own. No polling, and no shell per server.
 */
import { spawn } from 'node:child_process';
import { renameSync, writeFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A word as the shell reads it back. */
export const shellWord = (s: string): string => `'${s.replaceAll("'", "'\\''")}'`;

const lines = new Map<number, string>();
let next = 0;
let list: string | undefined;

/** Writes the list whole (a rename: the watchdog never reads half of it). */
function save(file: string): void {
  writeFileSync(`${file}.new`, [...lines.values()].map((l) => `${l}\n`).join(''));
  renameSync(`${file}.new`, file);
}

/** The list's file, the watchdog started on first use. */
function listFile(): string {
  if (list) return list;
  const file = join(tmpdir(), `hoop-watchdog-${process.pid}.sh`);
  save(file);
  const child = spawn('sh', ['-c', 'read _; sh "$1" >/dev/null 2>&1; rm -f "$1"', 'hoop-watchdog', file], { detached: true, stdio: ['pipe', 'ignore', 'ignore'], cwd: tmpdir() });
  child.on('error', () => {});
  child.unref();
  (child.stdin as Socket).unref();
  list = file;
  return file;
}

/** Runs the shell line `line` if this process dies before the returned function is called. */
export function onDeath(line: string): () => void {
  const file = listFile();
  const id = next++;
  lines.set(id, line);
  save(file);
  return () => {
    if (lines.delete(id)) save(file);
  };
}
