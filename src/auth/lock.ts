/**
 * A lock file, so two `hoop` processes never refresh the same rotating refresh token at once (a
 * provider that detects refresh token reuse would revoke the whole grant).
 *
 * @see https://www.rfc-editor.org/rfc/rfc9700#section-4.14.2 (refresh token rotation and reuse detection)
 * @see https://pubs.opengroup.org/onlinepubs/9799919799/functions/open.html (O_CREAT | O_EXCL)
 */
import { realClock } from '../clock.js';
import { open, rm, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ErrorCode, HoopError } from '../errors.js';
import { ensurePrivateDir } from '../private-file.js';

/** Options of {@link withFileLock}. @see https://pubs.opengroup.org/onlinepubs/9799919799/functions/open.html */
export interface FileLockOptions {
  /** A lock older than this is taken over (its holder died). Default 30 s. */
  staleMs?: number;
  /** Give up waiting after this long. Default 20 s. */
  waitMs?: number;
}

/**
 * Runs `fn` while holding the lock file `file` (created exclusively, removed afterwards).
 * @see https://pubs.opengroup.org/onlinepubs/9799919799/functions/open.html
 */
export async function withFileLock<T>(file: string, fn: () => Promise<T>, options: FileLockOptions = {}): Promise<T> {
  const staleMs = options.staleMs ?? 30_000;
  const deadline = realClock.now() + (options.waitMs ?? 20_000);
  await ensurePrivateDir(dirname(file));
  for (;;) {
    try {
      const handle = await open(file, 'wx', 0o600);
      await handle.writeFile(String(process.pid));
      await handle.close();
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const info = await stat(file).catch(() => undefined);
      if (info && realClock.now() - info.mtimeMs > staleMs) {
        await rm(file, { force: true });
        continue;
      }
      if (realClock.now() > deadline) {
        throw new HoopError(ErrorCode.TIMEOUT, `another hoop process holds ${file}`, { hint: `if no other hoop is running, delete ${file}` });
      }
      await sleep(50 + Math.floor(Math.random() * 100));
    }
  }
  try {
    return await fn();
  } finally {
    await rm(file, { force: true });
  }
}
