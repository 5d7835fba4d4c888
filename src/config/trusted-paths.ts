/**
 * What the gateway trusts on disk, checked as sshd's StrictModes checks a user's files before it
 * starts: its data directory and what it keeps there (recordings, signing keys), its policy
 * checkout, its TLS files, and what an MCP server it runs may load. Each must be its user's (or
 * root's), not a symbolic link where it keeps state, and writable by no other user: no group or
 * world write bit (an ACL's named users and groups show in the group bits, its mask), nor may any
 * directory above it let another user replace it (a directory others may write without the sticky
 * bit). What it keeps is a file or a directory (no FIFO, which would stall the start); its
 * signing keys, its SSH host key and the TLS key are read by no other user (the TLS key: but its
 * group) and have one name (no hard link); a `${file:}` secret is read by no other user but its group. A path that fails stops the start, named with the fix;
 * the gateway makes its data directory before it checks, so none is made first by another user.
 *
 * @see https://man.openbsd.org/sshd_config#StrictModes
 */
import { constants, lstatSync, readdirSync, readFileSync, readlinkSync, realpathSync, type Stats, statSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, resolve, sep } from 'node:path';
import { isMainThread } from 'node:worker_threads';
import { ErrorCode, HoopError } from '../errors.js';
import { localRepoPath } from './repo-path.js';

/** What the data directory holds that the gateway reads back as its own (recordings it signs, the keys it signs with). */
const KEPT = ['recordings', 'keys', 'client-records', 'workers', 'journal'];
/** A private key the gateway keeps beside its state (the SSH host key, `ssh_host_ed25519_key`, in the data directory and each worker's). */
const KEY_FILE = /_key$/;
/** Entries of a tree looked at before the start goes on (a data directory of many sessions' recordings): past them, the rest is not walked. */
const WALKED = 200_000;
/** Entries of a tree of code looked at (an MCP program's working directory, a directory it is given): past them, it is refused. */
export const MAX_TREE = 10_000;

/** Paths the gateway keeps state in (no link, its own) and files it only reads (its user's or root's, no other writer). */
export interface TrustedPaths {
  /** Directories the gateway writes and reads back, and what is directly in them. */
  state: readonly string[];
  /** Directories it writes and reads back whose contents are another tool's (the policy checkout, git's). */
  checkouts: readonly string[];
  /** Files it reads (TLS certificate and key). */
  read: readonly string[];
  /** Of those, the private keys: read by no user but its own and its group. */
  secret?: readonly string[];
  /** Files it opened (`file` as written, `path` as its descriptor resolves, `st` the descriptor's status): what it reads is what is checked; a `secret` is read by no other user but its group. */
  opened?: ReadonlyArray<{ file: string; path: string; st: Stats; secret?: boolean }>;
  /** Files it appends to (the audit file): no link, its own, made where no other user could make it first. */
  appended?: readonly string[];
  /** Repositories it reads in place (a policy repo given as a path): every entry its user's or root's, written by its own group at most, a link leading inside it; each place outside it that git reads from checked alike. */
  sources?: readonly string[];
  /** Directories a program it runs may load code from (an MCP server's `cwd`, a directory it is given): as `sources`, a link's target too, at most {@link MAX_TREE} entries. */
  trees?: readonly string[];
}

/** The paths of a configuration the gateway trusts: the data directory and what it keeps there (each of `workers` workers' directories too), the policy checkout, the TLS files, the audit file. */
export function trustedPathsOf(
  c: { dataDir: string; policy?: { workDir: string; repo?: string } | undefined; tls?: { certFile?: string; keyFile?: string } | undefined; audit?: { file?: string } | undefined },
  workers = 0,
): TrustedPaths {
  return {
    state: [c.dataDir, ...KEPT.map((k) => join(c.dataDir, k)), ...Array.from({ length: workers }, (_, i) => join(c.dataDir, 'workers', String(i)))],
    checkouts: c.policy ? [c.policy.workDir] : [],
    read: [c.tls?.certFile, c.tls?.keyFile].filter((f): f is string => f !== undefined),
    secret: c.tls?.keyFile !== undefined ? [c.tls.keyFile] : [],
    // Another writer of the audit file would add events a SIEM believes, or read them.
    appended: c.audit?.file !== undefined ? [c.audit.file] : [],
    // Whoever may write a policy repo read in place decides the policy (git's own check compares owners only, isomorphic-git's none).
    sources: c.policy?.repo === undefined ? [] : policySource(c.policy.repo, c.policy.workDir),
  };
}

/** The directory a policy repo is read from in place (the one its backend reads: ./repo-path.ts), if it is one. @throws HoopError CONFIG_INVALID when a `file:` URL names none */
function policySource(repo: string, workDir: string): string[] {
  const local = localRepoPath(repo, workDir);
  if (local === undefined && /^file:/i.test(repo))
    throw new HoopError(ErrorCode.CONFIG_INVALID, `policy.repo ${repo} names no local directory the gateway can check`, { hint: 'give the policy repo as an absolute path (or file:///path)' });
  return local === undefined ? [] : [local];
}

/**
 * Refuses to go on when a path of `paths` is not the gateway's to trust (see the module
 * documentation). Each state directory and everything directly in it (the journal, the reviews
 * file, a key) is its own, no link, no other writer; one not made yet is judged by the directory it
 * will be made in. Every directory above a path, as written and as its links resolve, lets no other
 * user replace it.
 *
 * @throws HoopError CONFIG_INVALID naming the path, what is wrong, and the fix
 */
export function checkTrustedPaths(paths: TrustedPaths, uid = process.getuid?.()): void {
  if (uid === undefined) return; // no POSIX owners (Windows)
  try {
    checkPaths(paths, uid);
  } catch (err) {
    throw asConfigError(err);
  }
}

/** A file system error met while checking (a path that does not exist, a file where a directory must be) as the configuration mistake it is. */
function asConfigError(err: unknown): unknown {
  const e = err as NodeJS.ErrnoException;
  if (err instanceof HoopError || typeof e?.code !== 'string' || typeof e.path !== 'string') return err;
  const what = { ENOENT: 'it does not exist', ENOTDIR: 'a file stands where a directory must be', EACCES: 'the gateway may not read it', ELOOP: 'its links loop' }[e.code] ?? e.message;
  return new HoopError(ErrorCode.CONFIG_INVALID, `the gateway cannot check ${e.path}: ${what}`, {
    hint: 'fix the path in the gateway configuration (a policy repo read in place is a git repository directory)',
  });
}

/** The checks each kind of path is made of, for the gateway's user `uid`. */
function checksFor(uid: number) {
  const refuse = (path: string, why: string, fix: string): never => {
    throw new HoopError(ErrorCode.CONFIG_INVALID, `the gateway will not trust ${path}: ${why}`, { hint: fix });
  };
  const ownedBy = (path: string, st: Stats, what: string): void => {
    if (st.uid !== uid && st.uid !== 0)
      refuse(path, `${what} belongs to another user (uid ${st.uid}), who could replace what the gateway reads there`, `chown ${uid} ${path} (or give the gateway a path of its own)`);
  };
  const owned = (path: string, st: Stats, what: string): void => {
    ownedBy(path, st, what);
    if ((st.mode & 0o022) !== 0 && !(st.isDirectory() && (st.mode & 0o1000) !== 0 && st.uid === 0 && what !== 'it'))
      refuse(path, `other users may write ${what === 'it' ? 'to it' : `to ${what}`} (mode ${(st.mode & 0o7777).toString(8)})`, `chmod go-w ${path}`);
  };
  const noLink = (path: string, st: Stats): void => {
    if (st.isSymbolicLink())
      refuse(path, 'it is a symbolic link (another user who can change it points the gateway at their files)', `make ${path} the gateway's own (or point the configuration at the link's target)`);
  };
  /** Each directory above `path` up to the root, as written (a link among them its user's or root's) and as its links resolve: its user's or root's, no other writer but under root's sticky bit (/tmp). */
  const above = (path: string): void => {
    const written = dirname(resolve(path));
    for (let chain of new Set([written, realpathSync(written)])) {
      for (; ; chain = dirname(chain)) {
        const st = lstatSync(chain);
        if (st.isSymbolicLink()) ownedBy(chain, st, `a link above ${path}`);
        else owned(chain, st, `a directory above ${path}`);
        if (chain === dirname(chain)) break;
      }
    }
  };
  /** Its user's or root's, written by no other: a group write bit may be an ACL's mask, granting a user outside the group. */
  const noOtherWriter = (at: string, st: Stats): void => {
    ownedBy(at, st, 'it');
    if ((st.mode & 0o022) !== 0)
      refuse(at, `other users may write to it (mode ${(st.mode & 0o7777).toString(8)}; a group write bit is also what an ACL granting another user shows)`, `chmod go-w ${at} (and setfacl -b ${at})`);
  };
  /** A private key: read by no other user (`group`: but its group, as a TLS key's ssl-cert), and of one name only. */
  const privateKey = (at: string, st: Stats, group: boolean): void => {
    if ((st.mode & (group ? 0o007 : 0o077)) !== 0)
      refuse(
        at,
        `other users may read or write this private key (mode ${(st.mode & 0o7777).toString(8)}${group ? '' : '; group bits are also what an ACL shows'})`,
        group ? `chmod o-rwx ${at}` : `chmod 600 ${at} (and setfacl -b ${at})`,
      );
    if (st.nlink > 1) refuse(at, `it has ${st.nlink} names (a hard link elsewhere reaches the same key)`, `copy the key to a file of its own: cp ${at} ${at}.new && mv ${at}.new ${at}`);
  };
  /** What a state directory keeps: a file or a directory; a key (in `keys/`, or a host key: `…_key`) a private key. */
  const kept = (at: string, st: Stats, keys: boolean): void => {
    if (!st.isFile() && !st.isDirectory()) refuse(at, 'it is neither a file nor a directory (a FIFO or a device would stall or feed the gateway)', `remove ${at}`);
    if (st.isFile() && (keys || KEY_FILE.test(basename(at)))) privateKey(at, st, false);
  };
  return { uid, refuse, ownedBy, owned, noLink, above, noOtherWriter, privateKey, kept };
}

type Checks = ReturnType<typeof checksFor>;

/** Each kind of path of `paths`, checked for the gateway's user `uid` (see {@link checkTrustedPaths}). */
function checkPaths(paths: TrustedPaths, uid: number): void {
  const c = checksFor(uid);
  for (const dir of [...paths.state, ...paths.checkouts]) stateDirectory(c, dir, paths.state.includes(dir));
  const checkedSources = new Set<string>();
  for (const repo of paths.sources ?? []) source(c, repo, checkedSources);
  for (const tree of paths.trees ?? []) codeTree(c, tree);
  files(c, paths);
}

/** A directory the gateway keeps state in (`state`) or a checkout: its own, no link, no other writer, at any depth; one not made yet judged by where it will be made. */
function stateDirectory(c: Checks, dir: string, state: boolean): void {
  const { refuse, ownedBy, owned, noLink, above, noOtherWriter, kept, uid } = c;
  const st = lstatOrMissing(dir);
  if (st === undefined) {
    // Not made yet: the directory it will be made in decides who could make it first (in a sticky /tmp, anyone).
    let parent = dirname(resolve(dir));
    while (lstatOrMissing(parent) === undefined) parent = dirname(parent);
    const where = statSync(parent);
    ownedBy(parent, where, `the directory ${dir} will be made in (${parent})`);
    if ((where.mode & 0o022) !== 0)
      refuse(
        dir,
        `it does not exist yet, and other users may write to the directory it would be made in (${parent}, mode ${(where.mode & 0o7777).toString(8)}): one of them could make it first`,
        `mkdir -m 700 ${dir} as the gateway's user (or point the configuration at a directory of the gateway's own)`,
      );
    // The directories above it, as written and as its links resolve (it may be a link itself).
    above(join(parent, 'made-here'));
    return;
  }
  noLink(dir, st);
  if (!st.isDirectory()) refuse(dir, 'it is not a directory', `remove ${dir}, or point the configuration elsewhere`);
  owned(dir, st, 'it');
  if (st.uid !== uid) refuse(dir, `it belongs to another user (uid ${st.uid})`, `chown ${uid} ${dir}`);
  above(dir);
  // What the gateway keeps here at any depth (the journal, the reviews file, a key, a recording's files), and what git
  // reads of a checkout (its configuration names programs git runs): its own, written by its own group at most.
  const keys = state && basename(dir) === 'keys';
  walk(dir, state, (at, est) => {
    noLink(at, est);
    noOtherWriter(at, est);
    if (state) kept(at, est, keys);
  });
}

/** A repository read in place, and each directory outside it that git reads refs or objects from (a `.git` file's `gitdir:`, `commondir`, alternates), checked alike. */
function source(c: Checks, repo: string, checked: Set<string>): void {
  const { refuse, ownedBy, owned, above, noOtherWriter } = c;
  const real = realpathSync.native(repo);
  if (checked.has(real)) return;
  checked.add(real);
  owned(repo, statSync(repo), 'it');
  above(repo);
  above(real);
  walk(real, false, (at, est) => {
    if (!est.isSymbolicLink()) return noOtherWriter(at, est);
    // git follows a link (its own .git, objects/, refs/…): what it leads to must be in the repo, which is checked here.
    ownedBy(at, est, 'it');
    const to = outside(linkTarget(at), real);
    if (to !== undefined) refuse(at, `it is a symbolic link to ${to}, outside the repository ${real}, and git reads through it`, `replace ${at} with what it points to, inside the repository`);
  });
  for (const { file, to } of gitPointers(real)) {
    if (outside(to, real) === undefined) continue;
    if (lstatOrMissing(to) === undefined) refuse(file, `it names ${to}, which does not exist (whoever makes it there decides what git reads)`, `remove ${file}, or make ${to} first`);
    try {
      source(c, to, checked);
    } catch (err) {
      if (!(err instanceof HoopError)) throw err;
      throw new HoopError(err.code, `${err.message} (git reads refs or objects there: ${file} names it)`, err.hint === undefined ? {} : { hint: err.hint });
    }
  }
}

/** A directory a program the gateway runs may load code from: as a source, what each link leads to too, at most {@link MAX_TREE} entries. */
function codeTree(c: Checks, tree: string): void {
  const { refuse, ownedBy, owned, above, noOtherWriter } = c;
  owned(tree, statSync(tree), 'it');
  above(tree);
  above(realpathSync(tree));
  // What a link points at is what runs: its owner and mode count too (a link to nothing could be made to point at anything).
  const entry = (at: string, est: Stats): void => {
    if (!est.isSymbolicLink()) return noOtherWriter(at, est);
    ownedBy(at, est, 'it');
    const target = realpathOrMissing(at) ?? refuse(at, 'it is a link to nothing', `remove ${at}`);
    noOtherWriter(target, statSync(target));
  };
  if (!walk(realpathSync(tree), false, entry, MAX_TREE)) refuse(tree, `it holds over ${MAX_TREE} entries, too many to check`, `give the MCP server a smaller directory of the gateway's own`);
}

/** Files the gateway reads (its own or root's, no other writer; a private key or a secret read by no other user) and appends to (no link, made where no other user could make it first). */
function files(c: Checks, paths: TrustedPaths): void {
  const { refuse, ownedBy, owned, noLink, above, privateKey, uid } = c;
  for (const file of paths.read) {
    const st = statSync(file);
    owned(file, st, 'it');
    if (paths.secret?.includes(file)) privateKey(file, st, true);
    above(file);
    above(realpathSync(file));
  }
  for (const { file, path, st, secret } of paths.opened ?? []) {
    owned(path, st, 'it');
    if (secret && !st.isDirectory() && (st.mode & 0o007) !== 0)
      refuse(
        file,
        `other users may read this secret (mode ${(st.mode & 0o7777).toString(8)})`,
        `chmod o-rwx ${path} (in Kubernetes, the secret volume's defaultMode: 0440 with the pod's fsGroup; in Docker, the secret's mode: 0400)`,
      );
    above(file);
    above(path);
  }
  for (const file of paths.appended ?? []) {
    const st = lstatOrMissing(file);
    const dir = dirname(resolve(file));
    if (st === undefined) {
      if (lstatOrMissing(dir) === undefined) refuse(file, `the directory it would be made in (${dir}) does not exist`, `mkdir -m 700 ${dir} as the gateway's user`);
      const where = statSync(dir);
      ownedBy(dir, where, `the directory ${file} will be made in`);
      // Not even under a sticky bit: another user could make the file there first, and read what is appended.
      if ((where.mode & 0o022) !== 0)
        refuse(file, `other users may write to the directory it will be made in (${dir}, mode ${(where.mode & 0o7777).toString(8)})`, `point audit.file at a directory of the gateway's own`);
    } else {
      noLink(file, st);
      owned(file, st, 'it');
      if (st.uid !== uid) refuse(file, `it belongs to another user (uid ${st.uid})`, `chown ${uid} ${file}`);
    }
    above(join(dir, 'made-here'));
  }
}

/**
 * Calls `check` on each entry under `dir` (its own status), depth first, up to `max` of them: a
 * state directory's whole tree but the other state directories within (each walked on its own); a
 * checkout's whole tree, git's objects too (git does not hash a loose object again as it reads it).
 * Whether the whole tree was walked.
 */
function walk(dir: string, state: boolean, check: (at: string, st: Stats) => void, max = WALKED): boolean {
  const pending = [dir];
  let seen = 0;
  while (pending.length > 0) {
    const at = pending.pop()!;
    for (const entry of readdirSync(at)) {
      if (++seen > max) return false;
      const path = join(at, entry);
      const st = lstatSync(path);
      check(path, st);
      if (st.isDirectory() && !(state && at === dir && KEPT.includes(entry))) pending.push(path);
    }
  }
  return true;
}

/** Where `path`'s links lead, or undefined when to nothing. */
function realpathOrMissing(path: string): string | undefined {
  try {
    return realpathSync(path);
  } catch {
    return undefined;
  }
}

/** The path's own status (a link's, not its target's), or undefined when nothing is there. */
function lstatOrMissing(path: string): Stats | undefined {
  try {
    return lstatSync(path);
  } catch (err) {
    if (['ENOENT', 'ENOTDIR'].includes((err as NodeJS.ErrnoException).code ?? '')) return undefined;
    throw err;
  }
}

/** True when `path` is `dir` or under it. */
function within(dir: string, path: string): boolean {
  return path === dir || path.startsWith(`${dir}${sep}`);
}

/** `path` (absolute, as written) when it is outside `dir` as written or as it resolves now, else undefined. */
function outside(path: string, dir: string): string | undefined {
  const named = resolve(path);
  if (!within(dir, named)) return named;
  const real = resolvesTo(path);
  return within(dir, real) ? undefined : real;
}

/** Where `path` (absolute, as written: a `..` after a link leads up from the link's target) resolves now; a part not made yet (or a loop) is kept as written. */
function resolvesTo(path: string): string {
  const rest: string[] = [];
  for (let at = path; ; at = dirname(at)) {
    try {
      return join(realpathSync.native(at), ...rest);
    } catch {
      if (at === dirname(at)) return resolve(path);
      rest.unshift(basename(at));
    }
  }
}

/** Where a link leads, as written (a relative target from the link's directory). */
function linkTarget(link: string): string {
  const target = readlinkSync(link);
  return isAbsolute(target) ? target : `${dirname(link)}/${target}`;
}

/**
 * Where git, reading the repository at `dir`, reads refs or objects besides `dir` (each with the file that says so): a
 * `.git` file's `gitdir:`, a `commondir`, and each line of `objects/info/alternates` (an alternate's own `info/alternates` too).
 *
 * @see https://git-scm.com/docs/gitrepository-layout
 */
function gitPointers(dir: string): { file: string; to: string }[] {
  const pointers = (file: string, base: string, paths: (text: string) => string[]): { file: string; to: string }[] =>
    lstatOrMissing(file)?.isFile() ? paths(readFileSync(file, 'utf8')).map((p) => ({ file, to: isAbsolute(p) ? p : `${base}/${p}` })) : [];
  const gitdir = (text: string): string[] => [/^gitdir: *(.*?)\s*$/m.exec(text)?.[1] ?? ''].filter((p) => p !== '');
  const firstLine = (text: string): string[] => [text.split('\n')[0]!.trim()].filter((p) => p !== '');
  const lines = (text: string): string[] => text.split('\n').flatMap((l) => (l.trim() === '' || l.startsWith('#') ? [] : [l.startsWith('"') ? unquoted(l) : l.trim()]));
  return [
    ...pointers(join(dir, '.git'), dir, gitdir),
    ...[dir, join(dir, '.git')].flatMap((g) => [
      ...pointers(join(g, 'commondir'), g, firstLine),
      ...pointers(join(g, 'objects', 'info', 'alternates'), join(g, 'objects'), lines),
      ...pointers(join(g, 'info', 'alternates'), g, lines),
    ]),
  ];
}

/** A line git wrote C-quoted (`"…"`), unquoted as far as JSON's escapes go (else as it is). */
function unquoted(line: string): string {
  try {
    return JSON.parse(line.trim()) as string;
  } catch {
    return line.trim();
  }
}

/**
 * Makes what the gateway creates from now on writable by no other user, whatever umask it was
 * started with (a user-private-group umask, 002, would give its group write, which its next start
 * refuses), as sshd does; a worker thread, which cannot change it, keeps its process's.
 */
export function keepOthersFromWriting(): void {
  if (!isMainThread) return;
  process.umask(process.umask() | 0o022);
}

/** Refuses a file the process reads its configuration or a secret from when another user could replace it (see {@link checkTrustedPaths}). */
export function checkTrustedFile(file: string): void {
  checkTrustedPaths({ state: [], checkouts: [], read: [file] });
}

/**
 * Reads `file` (its configuration, a PEM file, a `secret` no other user may read but its group) as {@link checkTrustedFile}
 * trusts it, checking the file it opened, by its descriptor, and the directories above it as written and as opened: what
 * is read is what was checked (another user swapping the file between a check by name and the read won a race).
 * @throws HoopError CONFIG_INVALID when another user could replace it; the open's error (ENOENT…) when it cannot be read
 */
export async function readTrustedFile(file: string, secret = false): Promise<Buffer> {
  // Not blocked by a FIFO another user put there (an open for reading waits for its writer): it is refused below.
  const handle = await open(file, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    const st = await handle.stat();
    if (!st.isFile() && !st.isDirectory())
      throw new HoopError(ErrorCode.CONFIG_INVALID, `the gateway will not trust ${file}: it is neither a file nor a directory (a FIFO or a device would stall or feed the gateway)`, {
        hint: `make ${file} a file of the gateway's own`,
      });
    let path: string;
    try {
      path = readlinkSync(`/proc/self/fd/${handle.fd}`);
    } catch {
      path = realpathSync(file); // no /proc: the name as it resolves now
    }
    checkTrustedPaths({ state: [], checkouts: [], read: [], opened: [{ file, path, st, secret }] });
    return await handle.readFile();
  } finally {
    await handle.close();
  }
}
