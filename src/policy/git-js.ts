/**
 * The config repo without the `git` program: a pure-JavaScript reader of a local repository
 * (isomorphic-git), used by {@link ../policy/repo.ts PolicyRepo} when `git` is not on PATH and the
 * repo is a path or a `file://` URL with no allowed signers; and the functions `hoop demo` uses
 * to create and update such a repo.
 *
 * The reader works on the source repository in place (no mirror, nothing written to it): each pull
 * finds the repository again (`<path>/.git`, `<path>`, `<path>.git/.git`, `<path>.git`, as git's
 * local transport does), resolves the ref among `refs/heads/*` and `refs/tags/*` only (what the
 * CLI backend's mirror holds), peels annotated tags, and writes the commit's tree into a fresh
 * directory. What it cannot read faithfully it refuses with a message naming git: a `.git` file
 * (linked worktree or submodule), `commondir`, alternates, a repository format version above 1,
 * or extensions other than ones that do not change how objects and refs are read.
 *
 * Checkouts are written like `git worktree add` would (directories, regular files, symlinks,
 * submodules as empty directories) with these differences: files are 0644 whatever their mode,
 * `.gitattributes` filters and line-ending conversion are not applied, a tree with two entries of
 * one name is refused (git fsck: `duplicateEntries`), and at most {@link MAX_CHECKOUT_ENTRIES}
 * entries and {@link MAX_CHECKOUT_BYTES} bytes are written. Entry names are checked by
 * isomorphic-git's tree parser (no `/`, `\`, `.`, `..`, `.git` or its NTFS/HFS aliases).
 *
 * @see https://isomorphic-git.org/docs/en/alphabetic
 * @see https://git-scm.com/docs/gitrepository-layout
 * @see https://git-scm.com/docs/repository-version (core.repositoryformatversion, extensions.*)
 * @see https://git-scm.com/docs/gitrevisions (how a ref name is looked up)
 * @see https://git-scm.com/docs/git-fsck#_fsck_messages (duplicateEntries)
 * @see https://git-scm.com/docs/git-init (the core.* settings probed at init)
 */
import { realClock } from '../clock.js';
import * as fs from 'node:fs';
import { chmod, lstat, mkdir, readFile, readdir, rm, stat, symlink, unlink, writeFile } from 'node:fs/promises';
import { dirname, isAbsolute, join, posix } from 'node:path';
import { ErrorCode, HoopError } from '../errors.js';

type IsoGit = typeof import('isomorphic-git');

let loading: Promise<IsoGit> | undefined;

/** isomorphic-git, imported on first use (the import costs ~100 ms; gateways with git never pay it). */
function isoGit(): Promise<IsoGit> {
  loading ??= import('isomorphic-git');
  return loading;
}

/**
 * How {@link ../policy/repo.ts PolicyRepo} reads its config repo: the `git` CLI with a bare
 * mirror, or isomorphic-git reading a local repository in place.
 */
export interface PolicyGit {
  readonly kind: 'cli' | 'js';
  /** Prepares the work directory (cli: the bare mirror). */
  init(): Promise<void>;
  /** Brings the refs up to date (cli: fetch into the mirror; js: find and check the source repo). */
  update(): Promise<void>;
  /** The commit `ref` points to; undefined when there is no such ref or it is not a commit. */
  resolveCommit(ref: string): Promise<string | undefined>;
  /** True when the commit `sha` can be read (for the fallback to the last accepted commit). */
  hasCommit(sha: string): Promise<boolean>;
  /** True when commit `ancestor` is `descendant` or in its history; false when it is not, or either cannot be read. */
  isAncestor(ancestor: string, descendant: string): Promise<boolean>;
  /** Writes the files of commit `sha` into `dest` (which must not exist; its parent must). */
  checkout(sha: string, dest: string): Promise<void>;
  /** Removes a checkout made by {@link PolicyGit.checkout}. */
  release(dest: string): Promise<void>;
  /**
   * Checks the commit's SSH signature against the allowed signers file; returns the problem, or
   * undefined when it verifies. Only the CLI backend has it.
   */
  verifySshSignature?(sha: string, allowedSignersFile: string): Promise<string | undefined>;
}

/** Most tree entries (files, directories, symlinks, submodules) one checkout writes. */
export const MAX_CHECKOUT_ENTRIES = 10_000;
/** Most bytes of file contents (and symlink targets) one checkout writes: 64 MiB. */
export const MAX_CHECKOUT_BYTES = 64 * 1024 * 1024;
/** Annotated tags pointing at tags are followed this deep. */
const MAX_TAG_DEPTH = 16;

const HEX_OID = /^[0-9a-f]{40}$/;
const SHORT_OID = /^[0-9a-f]{4,39}$/;
/**
 * Extensions that do not change how objects or refs are read (noop; preciousObjects only forbids
 * pruning; worktreeConfig only adds per-worktree config files). Any other (objectFormat,
 * refStorage, partialClone, compatObjectFormat, ...) needs git.
 */
const HARMLESS_EXTENSIONS = new Set(['noop', 'preciousobjects', 'worktreeconfig']);

const NEEDS_GIT = 'reading it needs the git program';

/** The problem with reading `gitdir` without git, if any. */
async function repoFormatProblem(gitdir: string): Promise<string | undefined> {
  if (await exists(join(gitdir, 'commondir'))) return `${gitdir} is a linked worktree's git directory; ${NEEDS_GIT}`;
  for (const f of ['objects/info/alternates', 'objects/info/http-alternates']) {
    if (await exists(join(gitdir, f))) return `${gitdir} borrows objects from another repository (${f}); ${NEEDS_GIT}`;
  }
  let text: string;
  try {
    text = await readFile(join(gitdir, 'config'), 'utf8');
  } catch {
    return undefined; // git too reads a missing config as empty
  }
  let section = '';
  let version = 0;
  const extensions: string[] = [];
  for (const raw of text.split(/\r?\n/)) {
    let line = raw.trim();
    const header = /^\[\s*([A-Za-z0-9.-]+)(?:\s+"(?:[^"\\]|\\.)*")?\s*\]\s*(.*)$/.exec(line);
    if (header) {
      section = header[1]!.toLowerCase();
      line = header[2]!.trim();
    }
    const kv = /^([A-Za-z][A-Za-z0-9-]*)\s*(?:=\s*(.*))?$/.exec(line);
    if (!kv || line.startsWith('#') || line.startsWith(';')) continue;
    const key = kv[1]!.toLowerCase();
    if (section === 'core' && key === 'repositoryformatversion') {
      version = Number.parseInt((kv[2] ?? '').replace(/\s*[#;].*$/, '').replace(/"/g, ''), 10);
    } else if (section === 'extensions' && !HARMLESS_EXTENSIONS.has(key)) {
      extensions.push(`extensions.${kv[1]}`);
    }
  }
  if (!(version === 0 || version === 1)) return `${gitdir} has core.repositoryformatversion ${Number.isNaN(version) ? '(unreadable)' : version}; ${NEEDS_GIT}`;
  if (extensions.length > 0) return `${gitdir} uses ${extensions.join(', ')}; ${NEEDS_GIT}`;
  return undefined;
}

async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch {
    return false;
  }
}

/** True when `dir` looks like a git directory (git's is_git_directory: HEAD, objects/, refs/). */
async function isGitDir(dir: string): Promise<boolean> {
  try {
    const [head, objects, refs] = await Promise.all([stat(join(dir, 'HEAD')), stat(join(dir, 'objects')), stat(join(dir, 'refs'))]);
    return head.isFile() && objects.isDirectory() && refs.isDirectory();
  } catch {
    return false;
  }
}

/**
 * The git directory of the local repository at `path` (a work tree or a bare repository), tried
 * as git's local transport does (`enter_repo`: `/.git`, ``, `.git/.git`, `.git`).
 *
 * @throws Error when there is none, or it cannot be read without git.
 */
export async function findGitDir(path: string): Promise<string> {
  for (const suffix of ['/.git', '', '.git/.git', '.git']) {
    const candidate = `${path}${suffix}`;
    let st: fs.Stats;
    try {
      st = await stat(candidate);
    } catch {
      continue;
    }
    if (st.isFile() && suffix === '/.git') {
      throw new Error(`${candidate} is a file (a linked worktree or a submodule); ${NEEDS_GIT}`);
    }
    if (!st.isDirectory() || !(await isGitDir(candidate))) continue;
    const problem = await repoFormatProblem(candidate);
    if (problem) throw new Error(problem);
    return candidate;
  }
  throw new Error(`${path} does not appear to be a git repository`);
}

/** The error isomorphic-git throws for a missing object or ref. */
function isNotFound(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  return code === 'NotFoundError' || code === 'ENOENT';
}

/**
 * Reads a local repository with isomorphic-git (see the module comment). `source` is the
 * repository's absolute path, as given (work tree or bare).
 */
export class JsPolicyGit implements PolicyGit {
  readonly kind = 'js' as const;
  #gitdir: string | undefined;
  /** isomorphic-git's cache of pack indexes; fresh on every pull, so new packs are seen. */
  #cache: object = {};

  constructor(private readonly source: string) {}

  async init(): Promise<void> {}

  async update(): Promise<void> {
    this.#cache = {};
    this.#gitdir = undefined;
    this.#gitdir = await findGitDir(this.source);
    await isoGit();
  }

  #dir(): string {
    if (this.#gitdir === undefined) throw new Error(`${this.source} has not been read`);
    return this.#gitdir;
  }

  /**
   * Resolves `ref` like `git rev-parse --verify <ref>^{commit}` in the CLI backend's mirror
   * (which holds only `refs/heads/*` and `refs/tags/*`): a full id; else the first of `<ref>`,
   * `refs/<ref>`, `refs/tags/<ref>`, `refs/heads/<ref>` that exists under those two namespaces;
   * else an abbreviated id. Annotated tags are followed to the commit.
   */
  async resolveCommit(ref: string): Promise<string | undefined> {
    const git = await isoGit();
    const gitdir = this.#dir();
    let oid: string | undefined;
    if (HEX_OID.test(ref)) oid = ref;
    else {
      for (const name of [ref, `refs/${ref}`, `refs/tags/${ref}`, `refs/heads/${ref}`]) {
        const ns = /^(refs\/(?:heads|tags))\/(.+)$/.exec(name);
        if (!ns) continue;
        const names = await git.listRefs({ fs, gitdir, filepath: ns[1]! });
        if (!names.includes(ns[2]!)) continue;
        oid = await git.resolveRef({ fs, gitdir, ref: name });
        break;
      }
      if (oid === undefined && SHORT_OID.test(ref)) {
        try {
          oid = await git.expandOid({ fs, gitdir, oid: ref, cache: this.#cache });
        } catch (err) {
          const code = (err as { code?: unknown }).code;
          if (code === 'NotFoundError' || code === 'AmbiguousError') return undefined;
          throw err;
        }
      }
    }
    if (oid === undefined) return undefined;
    return this.#peel(oid);
  }

  /** `oid` followed through annotated tags to a commit; undefined when missing or not a commit. */
  async #peel(oid: string): Promise<string | undefined> {
    const git = await isoGit();
    for (let depth = 0; depth <= MAX_TAG_DEPTH; depth++) {
      let obj: Awaited<ReturnType<IsoGit['readObject']>>;
      try {
        obj = await git.readObject({ fs, gitdir: this.#dir(), oid, format: 'parsed', cache: this.#cache });
      } catch (err) {
        if (isNotFound(err)) return undefined;
        throw err;
      }
      if (obj.type === 'commit') return obj.oid;
      if (obj.type !== 'tag' || obj.format !== 'parsed') return undefined;
      oid = obj.object.object;
    }
    return undefined;
  }

  async hasCommit(sha: string): Promise<boolean> {
    if (!HEX_OID.test(sha) || this.#gitdir === undefined) return false;
    try {
      const git = await isoGit();
      const obj = await git.readObject({ fs, gitdir: this.#gitdir, oid: sha, format: 'content', cache: this.#cache });
      return obj.type === 'commit';
    } catch {
      return false;
    }
  }

  async isAncestor(ancestor: string, descendant: string): Promise<boolean> {
    if (ancestor === descendant) return true;
    const git = await isoGit();
    return git.isDescendent({ fs, gitdir: this.#dir(), oid: descendant, ancestor, depth: -1, cache: this.#cache }).catch(() => false);
  }

  async checkout(sha: string, dest: string): Promise<void> {
    const git = await isoGit();
    const gitdir = this.#dir();
    const { commit } = await git.readCommit({ fs, gitdir, oid: sha, cache: this.#cache });
    await mkdir(dest);
    const budget = { entries: MAX_CHECKOUT_ENTRIES, bytes: MAX_CHECKOUT_BYTES };
    const links: { path: string; target: string }[] = [];
    await writeTree(git, gitdir, this.#cache, commit.tree, dest, '', budget, links);
    // Symlinks last, so that no file above is ever written through one.
    for (const { path, target } of links) {
      try {
        await symlink(target, join(dest, path));
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        // As git does with core.symlinks=false (Windows without the privilege): a file holding the target.
        if (code === 'EPERM' || code === 'ENOSYS' || code === 'EOPNOTSUPP') await writeFile(join(dest, path), target, { flag: 'wx', mode: 0o644 });
        else throw err;
      }
    }
  }

  async release(dest: string): Promise<void> {
    await rm(dest, { recursive: true, force: true });
  }
}

const tooMany = (): Error => new Error(`the commit has more than ${MAX_CHECKOUT_ENTRIES} files and directories (the most read without git)`);

/** Writes tree `oid` into `abs` (which exists), `rel` being its path in the commit ('' at the top). */
async function writeTree(
  git: IsoGit,
  gitdir: string,
  cache: object,
  oid: string,
  abs: string,
  rel: string,
  budget: { entries: number; bytes: number },
  links: { path: string; target: string }[],
): Promise<void> {
  const { tree } = await git.readTree({ fs, gitdir, oid, cache });
  if (tree.length > budget.entries) throw tooMany();
  const seen = new Set<string>();
  for (const entry of tree) {
    const path = rel === '' ? entry.path : `${rel}/${entry.path}`;
    if (seen.has(entry.path)) throw new Error(`the tree of ${rel === '' ? 'the top directory' : `${rel}/`} has two entries named ${JSON.stringify(entry.path)}`);
    seen.add(entry.path);
    if (--budget.entries < 0) throw tooMany();
    const target = join(abs, entry.path);
    switch (entry.mode) {
      case '040000':
        await mkdir(target);
        await writeTree(git, gitdir, cache, entry.oid, target, path, budget, links);
        break;
      case '160000':
        await mkdir(target); // a submodule: an empty directory, as git leaves it until `submodule update`
        break;
      case '100644':
      case '100755':
      case '120000': {
        const { blob } = await git.readBlob({ fs, gitdir, oid: entry.oid, cache });
        budget.bytes -= blob.byteLength;
        if (budget.bytes < 0) throw new Error(`the commit's files add up to more than ${MAX_CHECKOUT_BYTES / 1024 / 1024} MiB (the most read without git; ${path} is past it)`);
        if (entry.mode === '120000') links.push({ path, target: Buffer.from(blob).toString('utf8') });
        else await writeFile(target, blob, { flag: 'wx', mode: 0o644 });
        break;
      }
      default:
        throw new Error(`${path} has the unknown mode ${entry.mode}`);
    }
  }
}

/** Who wrote a commit made by {@link createPolicyRepo} or {@link commitPolicyFiles}. */
export interface PolicyAuthor {
  name: string;
  email: string;
}

/** Checks a path of `files`: relative, `/`-separated, no `.`/`..`/empty/`.git` component. */
function checkedPath(path: string): string {
  const parts = path.split('/');
  if (isAbsolute(path) || path.includes('\\') || path.includes('\0') || parts.some((p) => p === '' || p === '.' || p === '..' || p.toLowerCase() === '.git')) {
    throw new HoopError(ErrorCode.USAGE, `${JSON.stringify(path)} is not a file path inside a repo (give a relative path with "/" between directories)`);
  }
  return posix.normalize(path);
}

/**
 * Sets what `git init` would have detected about the file system (isomorphic-git writes
 * filemode=false, symlinks=false, ignorecase=true whatever the platform): executable bits kept,
 * symlinks possible, names case-sensitive, each probed as git's init-db does.
 */
async function probeCoreConfig(git: IsoGit, dir: string): Promise<void> {
  const gitdir = join(dir, '.git');
  const config = join(gitdir, 'config');
  let filemode = false;
  try {
    const before = (await stat(config)).mode;
    await chmod(config, before ^ 0o100);
    filemode = ((await stat(config)).mode & 0o100) !== (before & 0o100);
    await chmod(config, before);
  } catch {
    filemode = false;
  }
  let symlinks = false;
  const probe = join(gitdir, `tXXXXXX-${process.pid}`);
  try {
    await symlink('testing', probe);
    symlinks = true;
  } catch {
    symlinks = false;
  } finally {
    await unlink(probe).catch(() => undefined);
  }
  const ignorecase = await exists(join(gitdir, 'CoNfIg'));
  await git.setConfig({ fs, dir, path: 'core.filemode', value: filemode });
  await git.setConfig({ fs, dir, path: 'core.symlinks', value: symlinks });
  await git.setConfig({ fs, dir, path: 'core.ignorecase', value: ignorecase });
}

async function writeFiles(dir: string, files: Record<string, string | null>): Promise<{ added: string[]; removed: string[] }> {
  const added: string[] = [];
  const removed: string[] = [];
  for (const [given, text] of Object.entries(files)) {
    const path = checkedPath(given);
    const abs = join(dir, ...path.split('/'));
    if (text === null) {
      await rm(abs, { force: true });
      removed.push(path);
    } else {
      await mkdir(dirname(abs), { recursive: true });
      await writeFile(abs, text);
      added.push(path);
    }
  }
  return { added, removed };
}

function signature(author: PolicyAuthor): { name: string; email: string; timestamp: number; timezoneOffset: number } {
  return { name: author.name, email: author.email, timestamp: Math.floor(realClock.now() / 1000), timezoneOffset: new Date(realClock.now()).getTimezoneOffset() };
}

/**
 * Creates a git repository at `dir` (missing or empty) on branch `main` holding `files` (paths
 * relative to the repo, `/`-separated, to their text) in one commit by `author` (also the
 * committer), without the git program; returns the commit id. The result is an ordinary
 * repository: the git CLI reads it, and {@link ../policy/repo.ts PolicyRepo} loads it with either
 * backend.
 *
 * @throws HoopError USAGE when `dir` is not empty or a path is not a relative file path.
 */
export async function createPolicyRepo(dir: string, files: Record<string, string>, author: PolicyAuthor, message: string): Promise<string> {
  for (const path of Object.keys(files)) checkedPath(path);
  await mkdir(dir, { recursive: true });
  if ((await readdir(dir)).length > 0) throw new HoopError(ErrorCode.USAGE, `${dir} is not empty; give a new or empty directory for the policy repo`);
  const git = await isoGit();
  await git.init({ fs, dir, defaultBranch: 'main' });
  await probeCoreConfig(git, dir);
  await writeFiles(dir, files);
  await git.add({ fs, dir, filepath: '.' });
  const who = signature(author);
  return git.commit({ fs, dir, message, author: who, committer: who });
}

/**
 * Commits `files` to the repository at `dir` (made by {@link createPolicyRepo}, or any
 * non-bare repository with a branch checked out): each path is written with its text, or
 * deleted when its text is `null`, then staged, and one commit by `author` is made on the current
 * branch. Other changes in the work tree are not staged. Returns the commit id.
 *
 * @throws HoopError USAGE when a path is not a relative file path.
 */
export async function commitPolicyFiles(dir: string, files: Record<string, string | null>, author: PolicyAuthor, message: string): Promise<string> {
  for (const path of Object.keys(files)) checkedPath(path);
  const git = await isoGit();
  const { added, removed } = await writeFiles(dir, files);
  if (added.length > 0) await git.add({ fs, dir, filepath: added });
  for (const filepath of removed) await git.remove({ fs, dir, filepath });
  const who = signature(author);
  return git.commit({ fs, dir, message, author: who, committer: who });
}

/**
 * The commit a working tree at `dir` is on, and how many of its policy files (`hoop.yaml`,
 * `policy/`) differ from that commit or are new, read with isomorphic-git: the git program would
 * obey the repository's own configuration (`core.fsmonitor`, filters), which a checkout of a
 * change nobody has read yet may set. The repository is the nearest `.git` at or above `dir`;
 * undefined when there is none.
 *
 * @see https://isomorphic-git.org/docs/en/statusMatrix
 */
export async function workTreeState(dir: string): Promise<{ head?: string; changed: number } | undefined> {
  const git = await isoGit();
  let root: string;
  try {
    root = await git.findRoot({ fs, filepath: dir });
  } catch {
    return undefined;
  }
  const head = await git.resolveRef({ fs, dir: root, ref: 'HEAD' }).catch(() => undefined);
  const rel = posix.normalize(dir.slice(root.length).split(/[\\/]/).filter(Boolean).join('/'));
  const under = (path: string): string => (rel === '.' || rel === '' ? path : `${rel}/${path}`);
  const rows = await git.statusMatrix({ fs, dir: root, filepaths: [under('hoop.yaml'), under('policy')] }).catch(() => []);
  // [path, HEAD, workdir, stage]: 1 1 1 is unchanged; a file only ignored is 0 0 0.
  const changed = rows.filter(([, h, w, s]) => !(h === 1 && w === 1 && s === 1) && !(h === 0 && w === 0 && s === 0)).length;
  return { ...(head ? { head } : {}), changed };
}
