/** A process that swaps two paths, to race what resolves a path against its change. */
import { type ChildProcess, spawn } from 'node:child_process';

/** Swaps `argv[1]` and `argv[2]` with renameat2(RENAME_EXCHANGE), sleeping `argv[3]` seconds between swaps (none: at once). */
const SWAPPER = `import ctypes, sys, time
libc = ctypes.CDLL(None, use_errno=True)
a, b, pause = sys.argv[1].encode(), sys.argv[2].encode(), float(sys.argv[3])
while True:
    libc.renameat2(-100, a, -100, b, 2)
    if pause: time.sleep(pause)
`;

/**
 * Starts swapping `a` and `b` until killed: as fast as it can (for races within one process's
 * system calls), or every `pauseMs` (each state still half the time, at a small part of a core).
 */
export function swapper(a: string, b: string, o: { pauseMs?: number; uid?: number; gid?: number } = {}): ChildProcess {
  const as = o.uid !== undefined && o.gid !== undefined ? { uid: o.uid, gid: o.gid } : {};
  return spawn('python3', ['-c', SWAPPER, a, b, String((o.pauseMs ?? 0) / 1000)], { stdio: 'ignore', ...as });
}
