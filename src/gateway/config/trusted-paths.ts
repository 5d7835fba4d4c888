/**
 * What the gateway trusts on disk, checked as sshd's StrictModes checks a user's files before it
 * starts: its data directory and what it keeps there (recordings, signing keys), its policy
 * checkout and its TLS files. Each must be its user's (or root's), not a symbolic link where it
 * keeps state, and writable by no other user, nor may any directory above it let another user
 * replace it (a directory others may write without the sticky bit). A path that fails stops the
 * start, named with the fix.
 *
 * @see https://man.openbsd.org/sshd_config#StrictModes
 */
import { lstatSync, realpathSync, type Stats, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { ErrorCode, HoopError } from '../../errors.js';

/** What the data directory holds that the gateway reads back as its own (recordings it signs, the keys it signs with). */
const KEPT = ['recordings', 'keys', 'client-records', 'workers', 'policy'];

/** Paths the gateway keeps state in (no link, its own) and files it only reads (its user's or root's, no other writer). */
export interface TrustedPaths {
  /** Directories the gateway writes and reads back. */
  state: readonly string[];
  /** Files it reads (TLS certificate and key). */
  read: readonly string[];
}

/** The paths of a configuration the gateway trusts: the data directory and what it keeps there, the policy checkout, the TLS files. */
export function trustedPathsOf(c: { dataDir: string; policy?: { workDir: string } | undefined; tls?: { certFile?: string; keyFile?: string } | undefined }): TrustedPaths {
  return {
    state: [c.dataDir, ...KEPT.map((k) => join(c.dataDir, k)), ...(c.policy ? [c.policy.workDir] : [])],
    read: [c.tls?.certFile, c.tls?.keyFile].filter((f): f is string => f !== undefined),
  };
}

/**
 * Refuses to go on when a path of `paths` is not the gateway's to trust (see the module
 * documentation); a state directory not made yet passes (the gateway makes it 0700).
 *
 * @throws HoopError CONFIG_INVALID naming the path, what is wrong, and the fix
 */
export function checkTrustedPaths(paths: TrustedPaths, uid = process.getuid?.()): void {
  if (uid === undefined) return; // no POSIX owners (Windows)
  const refuse = (path: string, why: string, fix: string): never => {
    throw new HoopError(ErrorCode.CONFIG_INVALID, `the gateway will not trust ${path}: ${why}`, { hint: fix });
  };
  const owned = (path: string, st: Stats, what: string): void => {
    if (st.uid !== uid && st.uid !== 0)
      refuse(path, `${what} belongs to another user (uid ${st.uid}), who could replace what the gateway reads there`, `chown ${uid} ${path} (or give the gateway a path of its own)`);
    if ((st.mode & 0o022) !== 0 && !(st.isDirectory() && (st.mode & 0o1000) !== 0 && st.uid === 0 && what !== 'it'))
      refuse(path, `other users may write ${what === 'it' ? 'to it' : `to ${what}`} (mode ${(st.mode & 0o7777).toString(8)})`, `chmod go-w ${path}`);
  };
  /** Each directory above `path` up to the root: its user's or root's, and no other writer but under root's sticky bit (/tmp). */
  const above = (path: string): void => {
    for (let d = dirname(path); ; d = dirname(d)) {
      const st = statSync(d);
      owned(d, st, `a directory above ${path}`);
      if (d === dirname(d)) return;
    }
  };
  for (const dir of paths.state) {
    let st: Stats;
    try {
      st = lstatSync(dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw err;
    }
    if (st.isSymbolicLink())
      refuse(
        dir,
        'it is a symbolic link (another user who can change it points the gateway at their files)',
        `make ${dir} a directory of the gateway's own (or point the configuration at the link's target)`,
      );
    if (!st.isDirectory()) refuse(dir, 'it is not a directory', `remove ${dir}, or point the configuration elsewhere`);
    owned(dir, st, 'it');
    if (st.uid !== uid) refuse(dir, `it belongs to another user (uid ${st.uid})`, `chown ${uid} ${dir}`);
    above(realpathSync(dir));
  }
  for (const file of paths.read) {
    const st = statSync(file);
    owned(file, st, 'it');
    above(realpathSync(file));
  }
}
