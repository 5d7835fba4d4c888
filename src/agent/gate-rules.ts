/**
 * What the gate (./gate.ts) lets through from a run's layer to its person's tree, as rules over a
 * change's path, type and size. The model is an allow-list of data: regular files, directories,
 * and symbolic links that stay in the tree, with permission bits only. Everything else is refused
 * by kind, never by spelling:
 *
 * - anything that is not a file, a directory or a link (a FIFO, a socket, a device);
 * - a link whose target leaves the tree (absolute, or with `..` above its top);
 * - inside a git directory (a `.git` at any depth, or a directory git would take for a repository
 *   under another name: `HEAD` beside `objects` and `refs`, or a `commondir`), everything but the
 *   data git reads as data ({@link GIT_DATA}): its configuration, hooks, `info/`, `modules/`,
 *   `worktrees/`, an operation in progress, an alternate object store, are its controls; and a
 *   `.git` that is not a directory (a file naming a git directory elsewhere, a link);
 * - the files other tools run or read programs from as the person, without being asked
 *   ({@link CONTROL_FILES}): `.hoop.yaml`, direnv's `.envrc`, MCP clients' server lists, editors'
 *   and agents' settings and tasks, npm's and yarn's configuration. The policy lets one through by
 *   its path (`runs.applyControls`).
 *
 * Names are compared case-folded (a file system may fold them), and a path is judged as a whole:
 * whatever lies inside a refused directory is refused with it.
 *
 * @see https://git-scm.com/docs/gitrepository-layout
 */
import { posix } from 'node:path';
import { globMatches } from '../glob.js';

/** A git directory's entries that git reads as data, by the first part of their path there. */
const GIT_DATA = new Set(['objects', 'refs', 'logs', 'head', 'orig_head', 'fetch_head', 'index', 'packed-refs', 'commit_editmsg', 'description', 'shallow']);

/** Data entries of `objects/` that name another place git reads objects from. */
const GIT_ALTERNATES = new Set(['objects/info/alternates', 'objects/info/http-alternates']);

/** Why the best known of a git directory's controls are. */
const GIT_CONTROLS: Record<string, string> = {
  config: "git's configuration names programs git runs as you (fsmonitor, hooks' place, editors, filters)",
  'config.worktree': "git's configuration names programs git runs as you (fsmonitor, hooks' place, editors, filters)",
  hooks: 'git runs its hooks as you',
  objects: 'an alternate object store makes git read objects from elsewhere',
};

/** Files other tools act on as the person (their path's last parts, lower case), and why each is refused. */
export const CONTROL_FILES: ReadonlyArray<{ path: string; why: string }> = [
  { path: '.hoop.yaml', why: 'it names the connections your next hoop run serves' },
  { path: '.envrc', why: 'direnv runs it as you when you enter its directory' },
  { path: '.mcp.json', why: 'an MCP client starts the programs it names, as you' },
  { path: '.cursor/mcp.json', why: 'Cursor starts the MCP servers it names, as you' },
  { path: '.vscode/mcp.json', why: 'VS Code starts the MCP servers it names, as you' },
  { path: '.gemini/settings.json', why: 'Gemini CLI starts the MCP servers and tools it names, as you' },
  { path: '.claude/settings.json', why: "Claude Code runs its hooks and MCP servers as you (an agent's own settings)" },
  { path: '.claude/settings.local.json', why: "Claude Code runs its hooks and MCP servers as you (an agent's own settings)" },
  { path: '.vscode/settings.json', why: 'VS Code runs the programs its settings name (terminals, tools), as you' },
  { path: '.vscode/tasks.json', why: 'VS Code runs its tasks as you, some when the folder opens' },
  { path: '.vscode/launch.json', why: 'VS Code runs what it launches as you' },
  { path: '.npmrc', why: 'npm runs the programs and options it names (script-shell, node-options), as you' },
  { path: '.yarnrc', why: 'yarn runs the programs it names, as you' },
  { path: '.yarnrc.yml', why: 'yarn runs the program it names (yarnPath), as you' },
];

/** Why a change at `rel` (relative to its place, `/`-separated) touches a control; undefined for data. `gitDir(dir)` says whether `dir` is a git directory after the change. */
export function controlOf(rel: string, type: 'file' | 'dir' | 'link' | 'other', gitDir: (dir: string) => boolean): string | undefined {
  const parts = rel.split('/');
  const folded = parts.map((p) => p.toLowerCase());
  for (let i = 0; i < parts.length; i++) {
    const dir = parts.slice(0, i).join('/');
    const isDotGit = folded[i] === '.git';
    if (isDotGit && i === parts.length - 1 && type !== 'dir') return `a .git that is not a directory tells git where a repository's controls are`;
    if (isDotGit || (i > 0 && gitDir(dir))) {
      const inside = (isDotGit ? folded.slice(i + 1) : folded.slice(i)).join('/');
      if (inside === '') continue; // the git directory itself
      const first = inside.split('/')[0]!;
      if (GIT_DATA.has(first) && !GIT_ALTERNATES.has(inside)) return undefined;
      return GIT_CONTROLS[first] ?? `${first} in a git directory is one of the controls git acts on as you (what it reads, runs or does next)`;
    }
  }
  const whole = folded.join('/');
  return CONTROL_FILES.find((c) => whole === c.path || whole.endsWith(`/${c.path}`))?.why;
}

/** Whether `rel` is let through as a control by one of the policy's globs (`runs.applyControls`), compared case-folded. */
export function allowedControl(rel: string, allow: readonly string[]): boolean {
  return allow.some((g) => globMatches(g.toLowerCase(), rel.toLowerCase()));
}

/** Why a link at `rel` with `target` leaves the tree rooted at `top` (an absolute path); undefined when it stays in it. */
export function linkLeavesTree(top: string, rel: string, target: string): string | undefined {
  if (target === '') return 'it is an empty link';
  const resolved = posix.isAbsolute(target) ? posix.normalize(target) : posix.join(top, posix.dirname(rel), target);
  return resolved === top || resolved.startsWith(`${top}/`) ? undefined : `it leads out of the tree, to ${resolved}`;
}
