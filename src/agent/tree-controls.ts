/**
 * What a contained command could leave in the places it may write (its working directory, what the
 * person shares) that git or hoop would act on later, as the person, without their say:
 *
 * - a repository's **control entries** (`config`, `config.worktree`, `hooks`, `commondir`, `info`,
 *   `modules`, `worktrees`), of the repository a place is in and of every repository found in it,
 *   at any depth (`git status` in a subdirectory, or recursing into a submodule, reads them), and a
 *   `.git` file (it says where they are);
 * - what git's **configuration** runs or reads from there: included files, `core.hooksPath`, and
 *   the programs its commands name by path (`core.fsmonitor`, `core.sshCommand`, an alias's `!…`,
 *   filters, diff and merge drivers, credential helpers, editors, pagers), the person's global and
 *   system configuration included (a relative `core.hooksPath` is in every repository);
 * - a **`.git`** or a **`.hoop.yaml`** (the connections a later run serves) made anywhere in them,
 *   and a directory git takes for a repository under any name (its `HEAD` beside `objects` and
 *   `refs`: a bare repository, whose `config` may name a work tree);
 * - an **operation in progress** in a repository (a rebase, a merge, a cherry-pick, a bisect),
 *   whose next step runs what it holds or takes its parent and message, and anything in a git
 *   directory that is not a file, directory or link (a FIFO, on which every git command hangs).
 *
 * Before the run, {@link scanTree} finds them: what exists becomes read-only in the sandbox; the
 * control paths that are missing, and every `.git` and `.hoop.yaml` there is, are noted. After it
 * (and, when `hoop run` was killed, at the next hoop command: ./pending-sweeps.ts),
 * {@link sweepTree} moves what the command made to a name nobody knows before (never the run's
 * id): `<path>.hoop-quarantine-<random>`, where the person can look at it. Nothing of the command
 * runs then: its namespace, and every process in it, ended with it.
 *
 * @see https://git-scm.com/docs/gitrepository-layout
 * @see https://git-scm.com/docs/git-config#_configuration_file
 */
import { realClock } from '../clock.js';
import { randomBytes } from 'node:crypto';
import { chmodSync, closeSync, type Dirent, lstatSync, openSync, readdirSync, readFileSync, readSync, realpathSync, renameSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join, resolve, sep } from 'node:path';
import { within } from '../tree-file.js';

/** A git directory's entries that say what runs as whoever uses the repository. */
const REPOSITORY_CONTROLS = ['config', 'config.worktree', 'hooks', 'commondir', 'info', 'modules', 'worktrees'];

/** Names git or hoop act on wherever they are made. */
const ACTED_ON = new Set(['.git', '.hoop.yaml']);

/**
 * A git directory's operations in progress: their next step runs what they hold (a rebase's `exec`
 * lines on `git rebase --continue`) or shapes the person's next commit (a merge's parent and message).
 */
const OPERATIONS = [
  'rebase-merge',
  'rebase-apply',
  'sequencer',
  'MERGE_HEAD',
  'MERGE_MSG',
  'MERGE_MODE',
  'AUTO_MERGE',
  'SQUASH_MSG',
  'CHERRY_PICK_HEAD',
  'REVERT_HEAD',
  'BISECT_START',
  'BISECT_LOG',
  'BISECT_TERMS',
  'BISECT_NAMES',
  'BISECT_EXPECTED_REV',
  'BISECT_ANCESTORS_OK',
];

/** Configuration keys (`section.key`, `*` for a subsection) whose value names a file git reads or a program it runs. */
const RUNS_OR_READS = [
  'include.path',
  'includeif.*.path',
  'core.hookspath',
  'core.fsmonitor',
  'core.sshcommand',
  'core.editor',
  'core.pager',
  'core.askpass',
  'sequence.editor',
  'gpg.program',
  'gpg.*.program',
  'credential.helper',
  'credential.*.helper',
  'diff.*.command',
  'diff.*.textconv',
  'merge.*.driver',
  'filter.*.clean',
  'filter.*.smudge',
  'filter.*.process',
  'alias.*',
  'pager.*',
  'interactive.difffilter',
];

/** What {@link scanTree} found before a run, for the sandbox and for {@link sweepTree}. */
export interface TreeControls {
  /** The writable places, as real paths. */
  places: string[];
  /** What exists of it inside the places: read-only in the sandbox. */
  readOnly: string[];
  /** The git directories inside the places: mount points of their own, so none is renamed away and made anew. */
  gitDirs: string[];
  /** Control paths inside the places that were missing: made during the run, they are moved aside. */
  missing: string[];
  /** The `.git` and `.hoop.yaml` entries there were, as `<path> dev:ino` (one moved or linked elsewhere is not known there). */
  known: string[];
  /** When the scan ended (ms, rounded up): an entry born after it is the run's, whatever its inode (the command starts later). */
  scannedAt: number;
  /** Where sweeps of these controls moved what they moved (not swept again). */
  quarantined?: string[];
}

/** `path`'s real path; for a missing one, its nearest existing parent's real path with the rest. */
function realish(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    const parent = dirname(path);
    return parent === path ? path : join(realish(parent), path.slice(parent.length + (parent.endsWith(sep) ? 0 : 1)));
  }
}

/** `dev:ino` of `path` (not followed), and when it was born (0: the file system does not say). */
function identity(path: string): { key: string; born: number } | undefined {
  try {
    const s = lstatSync(path);
    return { key: `${s.dev}:${s.ino}`, born: s.birthtimeMs };
  } catch {
    return undefined;
  }
}

/** Whether directory entries `names` make a git directory as git discovers one: `HEAD` beside `objects` and `refs` (or a `commondir`). */
function looksLikeGitDir(entries: readonly Dirent[]): boolean {
  const has = (name: string): boolean => entries.some((e) => e.name === name);
  return has('HEAD') && ((has('objects') && has('refs')) || has('commondir'));
}

/** The directory entries of `d`; one the command made unreadable is made readable again (it is the person's), and one that stays so is said. */
function listed(d: string, unreadable?: (path: string, why: string) => void): Dirent[] {
  try {
    return readdirSync(d, { withFileTypes: true });
  } catch (err) {
    if (!unreadable) return [];
    try {
      chmodSync(d, statSync(d).mode | 0o700);
      return readdirSync(d, { withFileTypes: true });
    } catch {
      unreadable(d, `it could not be read (${(err as NodeJS.ErrnoException).code ?? 'error'}), so what is in it was not checked`);
      return [];
    }
  }
}

/**
 * Every `.git` and `.hoop.yaml` under `dir`, and the `HEAD` of every directory git would take for
 * a repository under another name (not inside a `.git` directory, not through a link);
 * `unreadable` (after a run) hears of a directory that could not be read.
 */
function actedOnUnder(dir: string, unreadable?: (path: string, why: string) => void, skip: ReadonlySet<string> = new Set()): string[] {
  const found: string[] = [];
  const walk = (d: string): void => {
    const entries = listed(d, unreadable).filter((e) => !skip.has(join(d, e.name)));
    if (looksLikeGitDir(entries)) found.push(join(d, 'HEAD'));
    for (const e of entries) {
      const path = join(d, e.name);
      if (ACTED_ON.has(e.name)) found.push(path);
      else if (e.isDirectory()) walk(path);
    }
  };
  walk(dir);
  return found;
}

/** The git directory a `.git` entry stands for: itself, or the one a `.git` file names. */
function gitDirFrom(dotGit: string): string | undefined {
  try {
    if (statSync(dotGit).isDirectory()) return dotGit;
    const named = /^gitdir:\s*(.+)$/m.exec(readFileSync(dotGit, 'utf8'))?.[1]?.trim();
    return named ? resolve(dirname(dotGit), named) : undefined;
  } catch {
    return undefined;
  }
}

/** The `.git` entry of the repository `dir` is in, if any. */
function dotGitAbove(dir: string): string | undefined {
  for (let d = dir; ; d = dirname(d)) {
    if (identity(join(d, '.git'))) return join(d, '.git');
    if (dirname(d) === d) return undefined;
  }
}

/** A repository's control entries: its git directory's and, for a worktree, its common directory's. */
function controlsOf(gitDir: string): string[] {
  const dirs = [gitDir];
  try {
    dirs.push(resolve(gitDir, readFileSync(join(gitDir, 'commondir'), 'utf8').trim()));
  } catch {
    /* not a worktree */
  }
  return [...dirs.flatMap((d) => REPOSITORY_CONTROLS.map((c) => join(d, c))), ...OPERATIONS.map((o) => join(gitDir, o))];
}

/** Whether `name` (`section.sub.key`, lower case but the subsection) is one of {@link RUNS_OR_READS}. */
function runsOrReads(section: string, sub: string | undefined, key: string): boolean {
  return RUNS_OR_READS.some((k) => {
    const [s, a, b] = k.split('.');
    if (s !== section) return false;
    return b === undefined ? sub === undefined && (a === '*' || a === key) : sub !== undefined && b === key;
  });
}

/** A value of a key of {@link RUNS_OR_READS}: a file included (relative to `from`), a path (relative to the repository's top), or a command. */
interface ConfigValue {
  value: string;
  from: string;
  kind: 'include' | 'path' | 'command';
  /** `core.hookspath` for the place of the hooks. */
  hooks?: true;
}

/**
 * The values of the keys of {@link RUNS_OR_READS} in the git configuration file `file` and the
 * files it includes (to a depth of 10), each with the file it was read from.
 */
function configValues(file: string, depth = 0): ConfigValue[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  const out: ConfigValue[] = [];
  let section = '';
  let sub: string | undefined;
  for (const raw of text.replace(/\\\r?\n/g, '').split(/\r?\n/)) {
    const line = raw.trim();
    const head = /^\[\s*([A-Za-z0-9.-]+)(?:\s+"((?:[^"\\]|\\.)*)")?\s*\]/.exec(line);
    if (head) {
      const [name, ...rest] = head[1]!.split('.');
      section = name!.toLowerCase();
      sub = head[2] ?? (rest.length > 0 ? rest.join('.') : undefined);
      continue;
    }
    const kv = /^([A-Za-z][A-Za-z0-9-]*)\s*(?:=\s*(.*))?$/.exec(line);
    if (!kv) continue;
    const key = kv[1]!.toLowerCase();
    if (!runsOrReads(section, sub, key)) continue;
    const value = (kv[2] ?? '')
      .replace(/\s[;#].*$/, '')
      .replace(/^"(.*)"$/, '$1')
      .trim();
    const kind = key === 'path' ? 'include' : key === 'hookspath' || (key === 'fsmonitor' && !/^(true|false|yes|no|on|off|1|0)$/i.test(value)) ? 'path' : 'command';
    // An alias that is not a shell command (`!…`) runs git itself.
    if (section === 'alias' && !value.startsWith('!')) continue;
    out.push({ value, from: file, kind, ...(section === 'core' && key === 'hookspath' ? { hooks: true as const } : {}) });
    if (kind === 'include' && depth < 10) out.push(...configValues(expandHome(value, dirname(file)), depth + 1));
  }
  return out;
}

/** `path` with `~/` for the home, relative to `base`. */
function expandHome(path: string, base: string): string {
  if (path.startsWith('~/')) return join(homedir(), path.slice(2));
  return resolve(base, path);
}

/**
 * The paths a configuration value names that a place could hold: an included file (relative to
 * the file that includes it), a path (`core.hooksPath`, `core.fsmonitor`'s program), or in a
 * command each word with a `/`; relative to the repository's top, where git runs its commands and
 * hooks.
 */
function namedPaths(v: ConfigValue, top: string): string[] {
  if (v.kind === 'include') return [expandHome(v.value, dirname(v.from))];
  if (v.kind === 'path') return [expandHome(v.value.split(/\s+/)[0]!, top)];
  return v.value
    .replace(/^!/, '')
    .split(/[\s;&|()'"=]+/)
    .filter((w) => w.includes('/') && !/^[a-z]+:\/\//i.test(w))
    .map((w) => (w.startsWith('~/') ? join(homedir(), w.slice(2)) : isAbsolute(w) ? w : resolve(top, w)));
}

/** Most bytes of a hook read for the paths it names. */
const HOOK_BYTES = 64 * 1024;

/** The paths the hooks in `dir` name (each word with a `/`, as a command's), from the work tree's top `top`, where git runs them. */
function hookNames(dir: string, top: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir).filter((n) => !n.endsWith('.sample'));
  } catch {
    return [];
  }
  return names.flatMap((n) => {
    try {
      const fd = openSync(join(dir, n), 'r');
      try {
        const buf = Buffer.alloc(HOOK_BYTES);
        const text = buf.subarray(0, readSync(fd, buf, 0, HOOK_BYTES, 0)).toString('utf8');
        return namedPaths({ value: text, from: join(dir, n), kind: 'command' }, top);
      } finally {
        closeSync(fd);
      }
    } catch {
      return [];
    }
  });
}

/** The person's global and system git configuration files, as git finds them. */
function globalConfigs(env: NodeJS.ProcessEnv): string[] {
  const home = env.HOME ?? homedir();
  return [env.GIT_CONFIG_SYSTEM ?? '/etc/gitconfig', env.GIT_CONFIG_GLOBAL ?? join(home, '.gitconfig'), join(env.XDG_CONFIG_HOME ?? join(home, '.config'), 'git', 'config')];
}

/**
 * What git's configuration for the repository whose `.git` entry is `dotGit` names as files it
 * reads or programs it runs (included files, `core.hooksPath`, `core.fsmonitor`'s program, the
 * paths in commands), the person's global and system configuration's included: where a change
 * would run as the person (the gate refuses it, ./gate.ts). A repository not on disk yet (one the
 * command made) has the global and system configuration's alone.
 */
export function gitConfigNames(dotGit: string, env: NodeJS.ProcessEnv): string[] {
  const gitDir = gitDirFrom(dotGit);
  const top = dirname(dotGit);
  const own = gitDir ? [join(gitDir, 'config'), join(gitDir, 'config.worktree')] : [];
  const values = [...globalConfigs(env), ...own].flatMap((f) => configValues(f));
  const named = values.flatMap((v) => namedPaths(v, top));
  // What the person's own hooks run from the tree (a script their pre-commit calls) runs as unasked as they do.
  const hooksPath = values.findLast((v) => v.hooks);
  const hooks = hooksPath ? expandHome(hooksPath.value, top) : gitDir ? join(gitDir, 'hooks') : undefined;
  return [...named, ...(hooks ? hookNames(hooks, top) : [])];
}

/** Scans the writable `places` before a run (see the module documentation). */
export function scanTree(placesGiven: readonly string[], env: NodeJS.ProcessEnv): TreeControls {
  const places = placesGiven.map(realish);
  const inPlace = (p: string): boolean => places.some((place) => within(realish(p), place));
  const readOnly = new Set<string>();
  const missing = new Set<string>();
  const note = (p: string): void => {
    if (!inPlace(p)) return;
    if (identity(p)) readOnly.add(realish(p));
    else missing.add(realish(p));
  };
  const global = globalConfigs(env).flatMap((f) => configValues(f));
  const known: string[] = [];
  const gitDirs = new Set<string>();
  // The repositories: each place's own, and every one found in a place (bare ones by their directory); the .hoop.yaml files.
  const dotGits = new Set<string>();
  const bare = new Set<string>();
  for (const place of places) {
    const above = dotGitAbove(place);
    if (above) dotGits.add(above);
    else missing.add(join(place, '.git'));
    note(join(place, '.hoop.yaml'));
    for (const path of actedOnUnder(place)) {
      const id = identity(path);
      if (id) known.push(`${path} ${id.key}`);
      if (path.endsWith(`${sep}.git`)) dotGits.add(path);
      else if (path.endsWith(`${sep}HEAD`)) bare.add(dirname(path));
      else note(path);
    }
  }
  for (const dotGit of dotGits) {
    const gitDir = gitDirFrom(dotGit);
    if (!gitDir) continue;
    if (inPlace(gitDir)) gitDirs.add(realish(gitDir));
    // A .git file says where the repository's controls are: it may not be changed.
    if (!statSync(dotGit).isDirectory()) note(dotGit);
    for (const c of controlsOf(gitDir)) note(c);
    const top = dirname(dotGit);
    const own = [join(gitDir, 'config'), join(gitDir, 'config.worktree')].flatMap((f) => configValues(f));
    for (const v of [...global, ...own]) for (const p of namedPaths(v, top)) note(p);
  }
  for (const gitDir of bare) {
    gitDirs.add(realish(gitDir));
    for (const c of controlsOf(gitDir)) note(c);
  }
  return { places, readOnly: [...readOnly], gitDirs: [...gitDirs], missing: [...missing], known, scannedAt: realClock.now() + 1 };
}

/** A path moved aside by {@link sweepTree}, or one it could not move. */
export interface Swept {
  path: string;
  to?: string;
  error?: string;
  /** A directory that could not be read: what is in it was not checked. */
  unread?: true;
}

/**
 * Moves aside what was made during the run that git or hoop would act on (see the module
 * documentation): every `.git` and `.hoop.yaml` in the places that was not there (or was born
 * after the scan began), and the missing control paths that now exist. `until` (ms): entries born
 * after it are the person's (a run killed, swept later), left where they are.
 */
export function sweepTree(c: TreeControls, o: { until?: number } = {}): Swept[] {
  const known = new Set(c.known);
  const made = (path: string): boolean => {
    const id = identity(path);
    if (!id) return false;
    if (o.until !== undefined && id.born > o.until) return false;
    return !known.has(`${path} ${id.key}`) || id.born > c.scannedAt;
  };
  const unread: Swept[] = [];
  // What an earlier sweep of these controls moved aside is not looked at again.
  const skip = new Set(c.quarantined ?? []);
  const found = c.places.flatMap((place) => actedOnUnder(place, (path, error) => unread.push({ path, error, unread: true }), skip));
  const odd = c.gitDirs.flatMap((d) => notPlainUnder(d, skip));
  const paths = [...found, ...c.missing, ...odd].filter((p, i, all) => all.indexOf(p) === i && made(p));
  // Inner ones first: moving a directory would move what is in it out of reach.
  const moved = paths.sort((a, b) => b.length - a.length).map(moveAside);
  c.quarantined = [...skip, ...moved.flatMap((m) => (m.to ? [m.to] : []))];
  return [...moved, ...unread];
}

/** What under git directory `dir` is neither a file, a directory nor a link (git makes none such; a FIFO hangs it). */
function notPlainUnder(dir: string, skip: ReadonlySet<string>): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const e of listed(d)) {
      const path = join(d, e.name);
      if (skip.has(path)) continue;
      if (e.isDirectory()) walk(path);
      else if (!e.isFile() && !e.isSymbolicLink()) out.push(path);
    }
  };
  walk(dir);
  return out;
}

/** Moves `path` to `<path>.hoop-quarantine-<random>`; a parent the command made unwritable is made writable again (it is the person's). */
function moveAside(path: string): Swept {
  const to = `${path}.hoop-quarantine-${randomBytes(8).toString('hex')}`;
  try {
    renameSync(path, to);
    return { path, to };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EACCES' || code === 'EPERM') {
      try {
        const parent = dirname(path);
        chmodSync(parent, statSync(parent).mode | 0o700);
        renameSync(path, to);
        return { path, to };
      } catch (again) {
        return { path, error: (again as Error).message };
      }
    }
    return { path, error: (err as Error).message };
  }
}
