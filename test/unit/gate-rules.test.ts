/**
 * The gate's rules (src/agent/gate-rules.ts) against references, over generated paths: a change
 * inside any git directory passes only as git's data (no link there at all), a control passes
 * nowhere unless the policy names it, and a link passes only when the walk of its target stays in
 * the tree at every step and meets no other link (as `path.posix.resolve` of each prefix says).
 */
import { posix } from 'node:path';
import { describe, expect, it } from 'vitest';
import { allowedControl, CONTROLS, controlOf, MADE_REPOSITORY, resolveLink } from '../../src/agent/gate-rules.js';
import { Random } from '../harness/random.js';

const r = new Random(71);
const pick = <T>(list: readonly T[]): T => r.pick(list);
const random = (): number => r.int(1_000_000) / 1_000_000;
const TOP = '/home/alice/proj';
const SEGMENTS = [
  'src',
  'a',
  '.git',
  '.GIT',
  '.Git',
  'hooks',
  'config',
  'objects',
  'refs',
  'info',
  'HEAD',
  'index',
  'logs',
  'x.txt',
  '.hoop.yaml',
  '.envrc',
  '.vscode',
  'tasks.json',
  'modules',
  'alternates',
  'x.pth',
  '.husky',
];
const DATA = new Set(['objects', 'refs', 'logs', 'head', 'orig_head', 'fetch_head', 'index', 'packed-refs', 'commit_editmsg', 'description', 'shallow']);
const noGitDir = (): boolean => false;

/** The reference for git: inside the first `.git` on the way, whether the path is refused (undefined: git's rules do not decide). */
function gitReference(parts: string[], type: string, removed: boolean): boolean | undefined {
  const at = parts.findIndex((p) => p.toLowerCase() === '.git');
  if (at < 0) return undefined;
  if (at === parts.length - 1) return type !== 'dir' ? true : undefined; // the git directory itself: judged as any other path
  const inside = parts.slice(at + 1).map((p) => p.toLowerCase());
  if (type === 'link') return true;
  if (removed && inside.length === 1 && DATA.has(inside[0]!)) return true;
  return !DATA.has(inside[0]!) || inside.join('/') === 'objects/info/alternates' || inside.join('/') === 'objects/info/http-alternates';
}

/** The reference for controls: a glob as a regular expression (`*` any characters), over the folded path's last four parts. */
const controlReference = (abs: string): boolean =>
  CONTROLS.some((k) =>
    new RegExp(
      `^${k.glob
        .split('*')
        .map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
        .join('.*')}$`,
    ).test(`/${abs.split('/').slice(-4).join('/')}`.toLowerCase()),
  );

describe("the gate's rules", () => {
  it('inside a git directory, any spelling of .git: only its data passes, no link, its history never removed (10,000 generated paths)', () => {
    // Mismatches are collected and said at once: an expect per case cost more than the rules.
    const wrong: string[] = [];
    for (let i = 0; i < 10_000; i++) {
      const parts = Array.from({ length: 1 + Math.floor(random() * 5) }, () => pick(SEGMENTS));
      const type = pick(['file', 'dir', 'link'] as const);
      const removed = random() < 0.3;
      const abs = `${TOP}/${parts.join('/')}`;
      const git = gitReference(parts, type, removed);
      const got = controlOf(abs, { type, removed }, noGitDir);
      const want = git ?? controlReference(abs);
      if ((got !== undefined) !== want) wrong.push(`${abs} (${type}${removed ? ', removed' : ''}): ${want ? 'refused' : 'passes'} by the reference`);
    }
    expect(wrong).toEqual([]);
  });

  it('a directory git takes for a repository under another name is judged as one', () => {
    const bare = (dir: string): boolean => dir === `${TOP}/vendor/bare`;
    expect(controlOf(`${TOP}/vendor/bare/config`, { type: 'file' }, bare)).toMatch(/configuration names programs/);
    expect(controlOf(`${TOP}/vendor/bare/objects/ab/cdef`, { type: 'file' }, bare)).toBeUndefined();
    expect(controlOf(`${TOP}/vendor/bare/objects/ab/cdef`, { type: 'link' }, bare)).toMatch(/link in a git directory/);
    expect(controlOf(`${TOP}/vendor/bare/HEAD`, { type: 'file', removed: true }, bare)).toMatch(/history or index/);
    expect(controlOf(`${TOP}/vendor/bare`, { type: 'dir' }, bare)).toBeUndefined();
    // One the command made is refused whole, under any name git takes.
    expect(controlOf(`${TOP}/lib/.GIT`, { type: 'dir', added: true }, bare)).toBe(MADE_REPOSITORY);
    expect(controlOf(`${TOP}/lib/.git`, { type: 'dir' }, bare)).toBeUndefined();
    expect(controlOf(`${TOP}/vendor/config`, { type: 'file' }, bare)).toBeUndefined();
  });

  it('controls anywhere, case-folded, unless the policy names them', () => {
    for (const k of CONTROLS) {
      // The first star: where the tree is; any other: a name.
      const sample = (top: string): string => k.glob.replace('*', top).replaceAll('*', 'x');
      for (const abs of [sample('/home/a'), sample('/x/deep/er').toUpperCase()]) {
        expect({ abs, why: controlOf(abs, { type: 'file' }, noGitDir) }).toEqual({ abs, why: k.why });
      }
    }
    expect(controlOf(`${TOP}/not.envrc`, { type: 'file' }, noGitDir)).toBeUndefined();
    expect(controlOf(`${TOP}/.claude/notes.md`, { type: 'file' }, noGitDir)).toBeUndefined();
    expect(allowedControl('.vscode/settings.json', `${TOP}/.vscode/settings.json`, ['.vscode/settings.json'])).toBe(true);
    expect(allowedControl('sub/.envrc', `${TOP}/sub/.envrc`, ['*.envrc'])).toBe(true);
    expect(allowedControl('.envrc', `${TOP}/.envrc`, ['.vscode/*'])).toBe(false);
    expect(allowedControl('.claude.json', '/home/alice/.claude.json', ['/home/alice/.claude.json'])).toBe(true);
  });

  it('a link passes only when each step of its target stays in the tree and is no link (10,000 generated targets)', () => {
    const steps = ['..', '.', '', 'a', 'b', 'l', 'proj', 'home', 'alice', 'etc'];
    const links = new Set(['l', 'a/l', 'b/l', 'a/b/l']);
    const inside = (p: string): boolean => p === TOP || p.startsWith(`${TOP}/`);
    const wrong: string[] = [];
    for (let i = 0; i < 10_000; i++) {
      const rel = Array.from({ length: 1 + Math.floor(random() * 3) }, () => pick(['a', 'b', 'c'])).join('/');
      const absolute = random() < 0.3;
      const parts = Array.from({ length: 1 + Math.floor(random() * 6) }, () => pick(steps));
      if (parts[0] === '' && parts.length > 1) parts[0] = '.'; // a relative target, not a leading `/`
      const target = absolute ? `${random() < 0.7 ? TOP : '/home/alice'}/${parts.join('/')}` : parts.join('/');
      // The reference: every prefix of the walk, resolved by path.posix, inside the tree and not a link.
      const from = absolute ? (target.startsWith(`${TOP}/`) ? TOP : undefined) : posix.resolve(TOP, posix.dirname(rel));
      const rest = absolute && from ? target.slice(TOP.length + 1).split('/') : parts;
      let ok = from !== undefined && target !== '';
      for (let k = 1; ok && k <= rest.length; k++) {
        const p = posix.resolve(from!, ...rest.slice(0, k));
        const last = rest[k - 1];
        ok = inside(p) && (last === '..' || last === '.' || last === '' || !links.has(posix.relative(TOP, p)));
      }
      const got = resolveLink(TOP, rel, target, (x) => links.has(x));
      if ('path' in got !== ok || ('path' in got && got.path !== posix.resolve(from!, ...rest))) wrong.push(`${rel} -> ${target}: ${ok ? 'passes' : 'refused'} by the reference`);
    }
    expect(wrong).toEqual([]);
  });
});
