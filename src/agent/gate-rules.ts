/**
 * What the gate (./gate.ts) lets through from a run's layer to its person's tree, as rules over a
 * change's absolute path, type and link target. The model is an allow-list of data: regular
 * files, directories, and symbolic links that stay in the tree, with permission bits only.
 * Everything else is refused by kind, never by spelling, wherever the place the run wrote sits:
 *
 * - anything that is not a file, a directory or a link (a FIFO, a socket, a device);
 * - a link whose target leaves the tree or passes through another link on its way (its target
 *   walked component by component, never normalised first), or leads to a control or into a git
 *   directory ({@link resolveLink});
 * - inside a git directory (a `.git` at any depth of the absolute path, the place itself or one
 *   above it included, or a directory git would take for a repository under another name: `HEAD`
 *   beside `objects` and `refs`, or a `commondir`), everything but the data git reads as data
 *   ({@link GIT_DATA}), and no link at all; a `.git` that is not a directory; a repository the
 *   command made, whole ({@link MADE_REPOSITORY}); removing git's data whole (its objects, refs or
 *   logs, its `HEAD` or index);
 * - the files other tools run, or read programs from, as the person without being asked
 *   ({@link CONTROLS}): `.hoop.yaml`, direnv's `.envrc`, MCP clients' and agents' configurations
 *   and hooks, editors' settings and tasks, git hook managers, other version control systems'
 *   and mise's configuration, package managers' configuration, Python's start-up files; and
 *   (./gate.ts) what the person's git configuration and hooks name in the tree (its hooks'
 *   directory, included files, programs, the scripts a hook calls). The policy lets one through
 *   by its path (`runs.applyControls`). What those name in turn is data: the rule is one hop deep.
 *
 * Names are compared case-folded (a file system may fold them).
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

/**
 * Files other tools act on as the person, without being asked (globs over the last four parts of
 * the absolute path, lower case: `*` stands for any characters, `/` included), and why each is
 * refused.
 */
export const CONTROLS: ReadonlyArray<{ glob: string; why: string }> = [
  { glob: '*/.hoop.yaml', why: 'it names the connections your next hoop run serves' },
  { glob: '*/.envrc', why: 'direnv runs it as you when you enter its directory' },
  { glob: '*/.mcp.json', why: 'an MCP client starts the programs it names, as you' },
  { glob: '*/.claude.json', why: 'Claude Code starts the MCP servers it names, and trusts the projects it lists, as you' },
  { glob: '*/.claude/settings.json', why: 'Claude Code runs its hooks, MCP servers and helpers as you' },
  { glob: '*/.claude/settings.local.json', why: 'Claude Code runs its hooks, MCP servers and helpers as you' },
  { glob: '*/.cursor/mcp.json', why: 'Cursor starts the MCP servers it names, as you' },
  { glob: '*/.gemini/settings.json', why: 'Gemini CLI starts the MCP servers and tools it names, as you' },
  { glob: '*/.codex/config.toml', why: 'Codex starts the MCP servers and tools it names, as you' },
  { glob: '*/.codeium/windsurf/mcp_config.json', why: 'Windsurf starts the MCP servers it names, as you' },
  { glob: '*/.continue/config.*', why: 'Continue starts the MCP servers and tools it names, as you' },
  { glob: '*/opencode.json', why: 'opencode starts the MCP servers and tools it names, as you' },
  { glob: '*/.aider.conf.yml', why: 'aider runs the lint and test commands it names, as you' },
  { glob: '*/.vscode/*.json', why: 'VS Code runs the programs its settings, tasks and launch configurations name, as you (some when the folder opens)' },
  { glob: '*.code-workspace', why: 'VS Code runs the tasks and programs a workspace file names, as you' },
  { glob: '*/.zed/*.json', why: 'Zed runs the tasks and programs its settings name, as you' },
  { glob: '*/.claude/hooks/*', why: 'Claude Code runs the hooks its settings name from here, as you' },
  { glob: '*/.husky/*', why: 'husky makes git run these as hooks, as you' },
  { glob: '*/.lefthook/*', why: 'lefthook makes git run these scripts as hooks, as you' },
  { glob: '*/.hg/hgrc', why: "Mercurial's configuration names hooks and extensions it runs as you" },
  { glob: '*/.jj/repo/config.toml', why: "Jujutsu's configuration names programs it runs as you" },
  { glob: '*/mise.toml', why: 'mise runs the hooks and tasks it names as you (some when you enter the directory)' },
  { glob: '*/.mise.toml', why: 'mise runs the hooks and tasks it names as you (some when you enter the directory)' },
  { glob: '*/mise.local.toml', why: 'mise runs the hooks and tasks it names as you (some when you enter the directory)' },
  { glob: '*/.mise.local.toml', why: 'mise runs the hooks and tasks it names as you (some when you enter the directory)' },
  { glob: '*/lefthook.yml', why: 'lefthook makes git run the commands it names, as you' },
  { glob: '*/lefthook.yaml', why: 'lefthook makes git run the commands it names, as you' },
  { glob: '*/.lefthook.yml', why: 'lefthook makes git run the commands it names, as you' },
  { glob: '*/lefthook-local.yml', why: 'lefthook makes git run the commands it names, as you' },
  { glob: '*/.pre-commit-config.yaml', why: 'pre-commit makes git run the hooks it names, as you' },
  { glob: '*/.npmrc', why: 'npm runs the programs and options it names (script-shell, node-options), as you' },
  { glob: '*/.yarnrc', why: 'yarn runs the programs it names, as you' },
  { glob: '*/.yarnrc.yml', why: 'yarn runs the program it names (yarnPath), as you' },
  { glob: '*/.pnpmfile.cjs', why: 'pnpm runs it as you on every install' },
  { glob: '*/bunfig.toml', why: 'bun runs the scripts it preloads, as you' },
  { glob: '*/.cargo/config', why: 'cargo runs the programs it names (runners, linkers), as you' },
  { glob: '*/.cargo/config.toml', why: 'cargo runs the programs it names (runners, linkers), as you' },
  { glob: '*.pth', why: 'Python runs the lines of a .pth file in its site-packages as you, at every start' },
  { glob: '*/sitecustomize.py', why: 'Python runs it as you at every start where it is on the path' },
  { glob: '*/usercustomize.py', why: 'Python runs it as you at every start where it is on the path' },
];

/** What the rules are told of a change besides its path: its type, and whether it removes or adds its entry. */
export interface Judged {
  type: 'file' | 'dir' | 'link' | 'other';
  removed?: boolean;
  added?: boolean;
}

/** Why a repository the command made (`git init`, `git clone`) is refused whole. */
export const MADE_REPOSITORY = 'it is a repository the command made, whose configuration and hooks git would take as yours (its work reaches you as commits in your repository, or as files)';

/**
 * Where a directory stands toward git: undefined outside every git directory, else the parts of
 * its path inside the outermost one, folded (at most four: all the rules look at).
 */
export type GitPlace = { inside: readonly string[] } | undefined;

/** The {@link GitPlace} of the entry `name` in a directory that stands at `parent` (and is a git directory itself: `parentIsGitDir`). */
export function gitPlaceOf(parent: GitPlace, name: string, parentIsGitDir: boolean): GitPlace {
  const n = name.toLowerCase();
  if (parent) return { inside: [...parent.inside, n].slice(0, 4) };
  if (n === '.git') return { inside: [] };
  return parentIsGitDir ? { inside: [n] } : undefined;
}

/**
 * Why a change at absolute path `abs`, in a directory standing at `parent` toward git (a git
 * directory itself: `parentIsGitDir`), touches a control; undefined for data. Constant work
 * besides the path's length: the gate asks it of each change once.
 */
export function controlIn(parent: GitPlace, abs: string, c: Judged, parentIsGitDir: boolean): string | undefined {
  const name = abs.slice(abs.lastIndexOf('/') + 1);
  const here = gitPlaceOf(parent, name, parentIsGitDir);
  if (here && here.inside.length === 0) {
    if (c.type !== 'dir') return 'a .git that is not a directory tells git where a repository’s controls are';
    if (c.added) return MADE_REPOSITORY;
  } else if (here) {
    const inside = here.inside;
    if (c.type === 'link') return 'a link in a git directory: git reads and writes through it';
    if (c.removed && inside.length === 1 && GIT_DATA.has(inside[0]!)) return `${inside[0]} is a repository's history or index, which the gate does not remove`;
    if (GIT_DATA.has(inside[0]!) && !GIT_ALTERNATES.has(inside.join('/'))) return undefined;
    return GIT_CONTROLS[inside[0]!] ?? `${inside[0]} in a git directory is one of the controls git acts on as you (what it reads, runs or does next)`;
  }
  // Its last four parts: no control's glob names more (what they name deeper is read by nobody).
  let from = abs.length;
  for (let n = 0; n < 4 && from > 0; n++) from = abs.lastIndexOf('/', from - 1);
  const tail = abs.slice(Math.max(from, 0)).toLowerCase();
  return CONTROLS.find((k) => globMatches(k.glob, tail))?.why;
}

/**
 * {@link controlIn} of absolute path `abs`, its directories' places worked out from the top;
 * `gitDir(dir)` says whether absolute directory `dir` is a git directory once the changes apply.
 */
export function controlOf(abs: string, c: Judged, gitDir: (dir: string) => boolean): string | undefined {
  const parts = abs.split('/').filter(Boolean);
  let place: GitPlace;
  let dir = '';
  for (const part of parts.slice(0, -1)) {
    place = gitPlaceOf(place, part, gitDir(dir || '/'));
    dir = `${dir}/${part}`;
  }
  return controlIn(place, abs, c, gitDir(dir || '/'));
}

/** Whether a change is let through as a control by one of the policy's globs (`runs.applyControls`), against its path in its place or its absolute path, case-folded. */
export function allowedControl(rel: string, abs: string, allow: readonly string[]): boolean {
  return allow.some((g) => globMatches(g.toLowerCase(), rel.toLowerCase()) || globMatches(g.toLowerCase(), abs.toLowerCase()));
}

/**
 * Where a link at `rel` (relative to the tree `top`, an absolute path) with `target` leads: its
 * target walked one component at a time from the link's directory (or, absolute, from `top`,
 * which it must begin with), `..` taking one step up and never above `top`, and no component
 * on the way (the last included) a link, as `isLink(rel)` says of the tree once the changes
 * apply. Resolves the absolute path it reaches, or why it is refused.
 */
export function resolveLink(top: string, rel: string, target: string, isLink: (rel: string) => boolean): { path: string } | { why: string } {
  if (target === '') return { why: 'it is an empty link' };
  let rest: string;
  const stack = posix.dirname(rel) === '.' ? [] : posix.dirname(rel).split('/');
  if (target.startsWith('/')) {
    if (!target.startsWith(`${top}/`)) return { why: `it leads out of the tree, to ${target}` };
    stack.length = 0;
    rest = target.slice(top.length + 1);
  } else rest = target;
  for (const part of rest.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') {
      if (stack.length === 0) return { why: `it leads out of the tree (${target})` };
      stack.pop();
      continue;
    }
    stack.push(part);
    if (isLink(stack.join('/'))) return { why: `it leads through another link (${stack.join('/')})` };
  }
  return { path: stack.length === 0 ? top : `${top}/${stack.join('/')}` };
}
