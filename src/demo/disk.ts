/**
 * The demo's disk: its gateway records every session and refuses new ones below its recording
 * floor, so a demo on a disk under that floor would say "running" and then refuse everything.
 * It is said before anything starts: refused under the floor, a warning under twice the floor.
 */
import { statfs } from 'node:fs/promises';
import { ErrorCode, ExitCode, HoopError } from '../errors.js';

/** The demo gateway's `recording.minFreeBytes` (its sessions are small; the default is 1 GiB). */
export const DEMO_RECORDING_FLOOR = 256 * 1024 ** 2;

const mib = (n: number): number => Math.floor(n / 1024 ** 2);

/** What the demo says of `free` bytes on its disk: a warning, or undefined when there is room. @throws HoopError (exit 74) under the floor */
export function diskVerdict(dir: string, free: number, floor = DEMO_RECORDING_FLOOR): string | undefined {
  if (free < floor)
    throw new HoopError(
      ErrorCode.USAGE,
      `the disk of ${dir} has ${mib(free)} MiB free: the demo's gateway refuses every session under ${mib(floor)} MiB (its recording floor: nothing runs that it could not record)`,
      {
        hint: 'free some space on that disk, or start the demo on another one with --dir',
        exitCode: ExitCode.IOERR,
      },
    );
  if (free < 2 * floor) return `the disk of ${dir} has ${mib(free)} MiB free: the gateway refuses new sessions once it is under ${mib(floor)} MiB`;
  return undefined;
}

/** Bytes an unprivileged process may still write on the file system of `dir`. */
export async function freeBytes(dir: string): Promise<number> {
  const fs = await statfs(dir);
  return fs.bavail * fs.bsize;
}
