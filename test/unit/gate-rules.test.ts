/**
 * The gate's rules (src/agent/gate-rules.ts) against references, over generated paths: a change
 * inside any git directory passes only as git's data, a control file passes nowhere unless the
 * policy names it, and a link passes only when its target resolves inside the tree (as
 * `path.posix.resolve` says, whatever `..`, `.`, `//` and absolute spellings it takes).
 */
import { posix } from 'node:path';
import { describe, expect, it } from 'vitest';
import { allowedControl, CONTROL_FILES, controlOf, linkLeavesTree } from '../../src/agent/gate-rules.js';
import { Random } from '../harness/random.js';

const r = new Random(71);
const pick = <T>(list: readonly T[]): T => r.pick(list);
const random = (): number => r.int(1_000_000) / 1_000_000;
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
];
const DATA = new Set(['objects', 'refs', 'logs', 'head', 'orig_head', 'fetch_head', 'index', 'packed-refs', 'commit_editmsg', 'description', 'shallow']);

/** The reference: inside the last `.git` on the way (or none), whether the path is a control. */
function gitReference(parts: string[], type: string): boolean {
  const at = parts.findIndex((p) => p.toLowerCase() === '.git');
  if (at < 0) return false;
  if (at === parts.length - 1) return type !== 'dir';
  const inside = parts.slice(at + 1).map((p) => p.toLowerCase());
  return !DATA.has(inside[0]!) || inside.join('/') === 'objects/info/alternates' || inside.join('/') === 'objects/info/http-alternates';
}

describe("the gate's rules", () => {
  it('inside a git directory, any spelling of .git: only its data passes (10,000 generated paths)', () => {
    for (let i = 0; i < 10_000; i++) {
      const parts = Array.from({ length: 1 + Math.floor(random() * 5) }, () => pick(SEGMENTS));
      const type = pick(['file', 'dir', 'link'] as const);
      const rel = parts.join('/');
      const git = gitReference(parts, type);
      const got = controlOf(rel, type, () => false);
      if (git) expect({ rel, type, refused: got !== undefined }).toEqual({ rel, type, refused: true });
      else if (!CONTROL_FILES.some((c) => rel.toLowerCase() === c.path || rel.toLowerCase().endsWith(`/${c.path}`))) expect({ rel, type, got }).toEqual({ rel, type, got: undefined });
    }
  });

  it('a directory git takes for a repository under another name is judged as one', () => {
    const bare = (dir: string): boolean => dir === 'vendor/bare';
    expect(controlOf('vendor/bare/config', 'file', bare)).toMatch(/configuration names programs/);
    expect(controlOf('vendor/bare/objects/ab/cdef', 'file', bare)).toBeUndefined();
    expect(controlOf('vendor/bare', 'dir', bare)).toBeUndefined();
    expect(controlOf('vendor/config', 'file', bare)).toBeUndefined();
  });

  it('control files anywhere, case-folded, unless the policy names them', () => {
    for (const c of CONTROL_FILES) {
      for (const rel of [c.path, `deep/er/${c.path}`, c.path.toUpperCase()]) expect({ rel, why: controlOf(rel, 'file', () => false) }).toEqual({ rel, why: c.why });
    }
    expect(controlOf('not.envrc', 'file', () => false)).toBeUndefined();
    expect(allowedControl('.vscode/settings.json', ['.vscode/settings.json'])).toBe(true);
    expect(allowedControl('sub/.envrc', ['*.envrc'])).toBe(true);
    expect(allowedControl('.envrc', ['.vscode/*'])).toBe(false);
  });

  it('a link passes only when its target resolves inside the tree (10,000 generated targets)', () => {
    const top = '/home/alice/proj';
    const steps = ['..', '.', '', 'a', 'b', 'proj', 'home', 'alice', 'etc'];
    for (let i = 0; i < 10_000; i++) {
      const rel = Array.from({ length: 1 + Math.floor(random() * 3) }, () => pick(['a', 'b', 'c'])).join('/');
      const absolute = random() < 0.3;
      const target = `${absolute ? '/' : ''}${Array.from({ length: 1 + Math.floor(random() * 6) }, () => pick(steps)).join('/')}`;
      const resolved = posix.resolve(top, posix.dirname(rel), target);
      const inside = resolved === top || resolved.startsWith(`${top}/`);
      expect({ rel, target, leaves: linkLeavesTree(top, rel, target) !== undefined }).toEqual({ rel, target, leaves: !inside || target === '' });
    }
  });
});
