/**
 * Whether process `pid` exists: signal 0 checks without sending anything, and EPERM means it
 * exists but belongs to another user.
 * @see https://man7.org/linux/man-pages/man2/kill.2.html
 */
export function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
