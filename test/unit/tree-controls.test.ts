/**
 * What a contained command could leave that git or hoop would act on as its person
 * (src/agent/tree-controls.ts), on real files: found before the run (every repository at any depth,
 * what git's configuration runs or reads from the tree, `.hoop.yaml`), and what the run made of it
 * moved aside after, to a name nobody could know before, its content kept.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, linkSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { notePendingSweep, sweepAbandonedRuns, tellSwept } from '../../src/agent/pending-sweeps.js';
import { scanTree, sweepTree } from '../../src/agent/tree-controls.js';
import { pace } from '../harness/wait.js';

const base = mkdtempSync(join(tmpdir(), 'hoop-tree-'));
afterAll(() => rmSync(base, { recursive: true, force: true }));

/** Writes `files` (path → content) under `dir`, making directories. */
function lay(dir: string, files: Record<string, string>): void {
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(join(dir, path, '..'), { recursive: true });
    writeFileSync(join(dir, path), text);
  }
}

describe('before the run', () => {
  it("finds every repository's controls, what git's configuration runs or includes from the tree, and .hoop.yaml files", () => {
    const work = join(base, 'scan');
    const home = join(base, 'scan-home');
    lay(work, {
      '.git/config':
        '[core]\n\thooksPath = .husky\n\tfsmonitor = "./scripts/watch.sh --fast"\n[include]\n\tpath = ../shared.gitconfig\n[alias]\n\tlint = !sh tools/lint.sh\n\tst = status\n[diff "x"]\n\ttextconv = bin/conv\n',
      '.git/hooks/pre-commit': '#!/bin/sh\n',
      '.husky/pre-commit': '#!/bin/sh\n',
      'scripts/watch.sh': '#!/bin/sh\n',
      'tools/lint.sh': '#!/bin/sh\n',
      'shared.gitconfig': '[core]\n\tsshCommand = ssh -i keys/deploy\n',
      'vendor/lib/.git/config': '[core]\n',
      'modules/sub/.git': 'gitdir: ../../.git/modules/sub\n',
      '.git/modules/sub/config': '[core]\n',
      'app/.hoop.yaml': 'connections: [app]\n',
      'keys/deploy': 'not a key',
      'mirror.git/HEAD': 'ref: refs/heads/main\n',
      'mirror.git/objects/.keep': '',
      'mirror.git/refs/.keep': '',
      'mirror.git/config': '[core]\n\tbare = true\n',
    });
    // The person's global configuration names hooks relative to each repository.
    lay(home, { '.gitconfig': '[core]\n\thooksPath = .githooks\n' });
    const c = scanTree([work], { HOME: home });
    expect(c.readOnly).toEqual(
      expect.arrayContaining([
        join(work, '.git/config'),
        join(work, '.git/hooks'),
        join(work, '.husky'),
        join(work, 'scripts/watch.sh'),
        join(work, 'tools/lint.sh'),
        join(work, 'shared.gitconfig'),
        join(work, 'keys/deploy'), // named by the included file's sshCommand
        join(work, 'vendor/lib/.git/config'),
        join(work, 'modules/sub/.git'), // a .git file says where its controls are
        join(work, '.git/modules/sub/config'),
        join(work, 'app/.hoop.yaml'),
        join(work, 'mirror.git/config'), // a bare repository, under its own name
      ]),
    );
    expect(c.readOnly).not.toContain(join(work, 'bin/conv')); // missing: watched instead
    expect(c.missing).toEqual(expect.arrayContaining([join(work, '.githooks'), join(work, 'bin/conv'), join(work, '.git/commondir'), join(work, 'vendor/lib/.git/hooks'), join(work, '.hoop.yaml')]));
    expect(c.gitDirs).toEqual(expect.arrayContaining([join(work, '.git'), join(work, 'vendor/lib/.git'), join(work, '.git/modules/sub'), join(work, 'mirror.git')]));
    // An operation begun during the run would be moved aside.
    expect(c.missing).toEqual(expect.arrayContaining([join(work, '.git/rebase-merge'), join(work, '.git/sequencer')]));
    // A plain alias runs nothing: nothing of it is noted.
    expect([...c.readOnly, ...c.missing].some((p) => p.endsWith('status'))).toBe(false);
  });
});

describe('after the run', () => {
  it('moves aside every .git and .hoop.yaml the run made, at any depth, and the missing controls it made; to names nobody knew', () => {
    const work = join(base, 'sweep');
    lay(work, { '.git/config': '[core]\n', 'src/keep.txt': 'x', 'old/.git': 'gitdir: /elsewhere\n', '.hoop.yaml': 'connections: [a]\n' });
    const c = scanTree([work], { HOME: join(base, 'none') });
    // The run: a repository deep in the tree whose config runs a program on `git status`; a
    // submodule-style .git file; a .hoop.yaml in a subdirectory; a commondir that points elsewhere.
    lay(work, {
      'src/deep/er/.git/config': '[core]\n\tfsmonitor = touch /tmp/pwned\n',
      'node_modules/x/.git': 'gitdir: /tmp/evil\n',
      'src/.hoop.yaml': 'connections: [prod]\n',
      '.git/commondir': '/elsewhere\n',
      '.git/MERGE_HEAD': '0123456789012345678901234567890123456789\n',
      'src/work.txt': 'its work',
    });
    // A FIFO where git reads (every git command would hang on it).
    execFileSync('mkfifo', [join(work, '.git/packed-refs')]);
    const swept = sweepTree(c);
    expect(swept.map((s) => s.path).sort()).toEqual(
      [
        join(work, '.git/commondir'),
        join(work, '.git/MERGE_HEAD'),
        join(work, '.git/packed-refs'),
        join(work, 'node_modules/x/.git'),
        join(work, 'src/.hoop.yaml'),
        join(work, 'src/deep/er/.git'),
      ].sort(),
    );
    for (const s of swept) {
      expect(s.error).toBeUndefined();
      expect(s.to).toMatch(new RegExp(`^${s.path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\.hoop-quarantine-[0-9a-f]{16}$`));
      expect(existsSync(s.path)).toBe(false);
    }
    expect(readFileSync(join(swept.find((s) => s.path.endsWith('er/.git'))!.to!, 'config'), 'utf8')).toContain('fsmonitor');
    // What was there before, and the run's own work, stay.
    for (const p of ['.git/config', 'old/.git', '.hoop.yaml', 'src/keep.txt', 'src/work.txt']) expect(existsSync(join(work, p)), p).toBe(true);
    // A second sweep finds nothing more.
    expect(sweepTree(c)).toEqual([]);
  });

  it('moves a .git made anew where a known one was (its inode reused, by when it was born), and a known one linked or moved elsewhere', async () => {
    const work = join(base, 'reuse');
    lay(work, { 'a/.git': 'gitdir: /one\n', 'keep.txt': 'x' });
    const c = scanTree([work], { HOME: join(base, 'none') });
    await pace(10); // the command starts after the scan
    rmSync(join(work, 'a/.git'));
    lay(work, { 'a/.git': 'gitdir: /evil\n' });
    expect(sweepTree(c).map((s) => s.path)).toEqual([join(work, 'a/.git')]);
    // A hard link of a known .git keeps its inode and birth under a new name: a new .git all the same.
    lay(work, { 'c/.git': 'gitdir: /two\n' });
    const c2 = scanTree([work], { HOME: join(base, 'none') });
    mkdirSync(join(work, 'b'));
    linkSync(join(work, 'c/.git'), join(work, 'b/.git'));
    expect(sweepTree(c2).map((s) => s.path)).toEqual([join(work, 'b/.git')]);
    expect(existsSync(join(work, 'a/.git'))).toBe(false);
  });

  it('leaves what was born after the time given (the person made it after a killed run)', async () => {
    const work = join(base, 'later');
    mkdirSync(work);
    const c = scanTree([work], { HOME: join(base, 'none') });
    await pace(10); // the command starts after the scan
    lay(work, { 'by-agent/.git/config': '[core]\n' });
    // Date.now() drops the fraction of a millisecond that a birth time keeps: the next millisecond is after what was laid.
    const until = Date.now() + 1;
    await pace(20);
    lay(work, { 'by-person/.git/config': '[core]\n' });
    expect(sweepTree(c, { until }).map((s) => s.path)).toEqual([join(work, 'by-agent/.git')]);
    expect(readdirSync(join(work, 'by-person'))).toEqual(['.git']);
  });
});

describe('a note of a pending sweep', () => {
  it("is read with its schema: one in another shape (written by something else of the person's) moves nothing, and is said", () => {
    const work = join(base, 'forged');
    const env = { HOME: join(base, 'none'), XDG_STATE_HOME: join(base, 'state-forged') };
    mkdirSync(work);
    lay(work, { 'mine/.git/config': '[core]\n' });
    const dir = join(env.XDG_STATE_HOME, 'hoop', 'pending-sweeps');
    mkdirSync(dir, { recursive: true });
    const forged = { run: 'run-forged', pid: 999_999_999, started: '', controls: { places: [work], readOnly: [], gitDirs: [], missing: [], known: [], scannedAt: 0, sweepEverything: true } };
    writeFileSync(join(dir, 'run-forged.json'), JSON.stringify(forged));
    const said: string[] = [];
    sweepAbandonedRuns(env, (l) => said.push(l));
    expect(existsSync(join(work, 'mine/.git'))).toBe(true);
    expect(said).toEqual([expect.stringContaining("is not a note of hoop run's")]);
  });
});

describe('a sweep that cannot move', () => {
  // Only root may make a directory immutable: the one thing a person's own sweep cannot undo.
  it.runIf(process.getuid?.() === 0)('says so, names the path, and is tried again by the next hoop command', () => {
    const work = join(base, 'stuck');
    const env = { HOME: join(base, 'none'), XDG_STATE_HOME: join(base, 'state') };
    mkdirSync(work);
    const c = scanTree([work], env);
    const pending = notePendingSweep(env, 'run-stuck', c);
    lay(work, { 'in/.git/config': '[core]\n\tfsmonitor = touch /tmp/pwned\n' });
    const lock = (flag: '+i' | '-i'): void => void execFileSync('chattr', [flag, join(work, 'in')]);
    lock('+i');
    try {
      const swept = sweepTree(c);
      expect(swept).toEqual([{ path: join(work, 'in/.git'), error: expect.stringMatching(/EPERM|operation not permitted/i) }]);
      const said: string[] = [];
      tellSwept(swept, (l) => said.push(l), 'this run');
      expect(said).toEqual([
        expect.stringMatching(/^this run: the command made \S+\/in\/\.git, which git or hoop would act on as you, and it could not be moved aside \(.+\): remove it before you use git or hoop there$/),
      ]);
      // Its hoop run is gone (the note says another process): the next command tries, fails, and keeps the note.
      const file = join(env.XDG_STATE_HOME, 'hoop', 'pending-sweeps', 'run-stuck.json');
      writeFileSync(file, JSON.stringify({ ...JSON.parse(readFileSync(file, 'utf8')), pid: 999_999_999 }));
      sweepAbandonedRuns(env, () => undefined);
      expect(existsSync(file)).toBe(true);
      lock('-i');
      const later: string[] = [];
      sweepAbandonedRuns(env, (l) => later.push(l));
      expect(later).toEqual([expect.stringMatching(/^run run-stuck, whose hoop run was stopped before it ended: the command made \S+\/in\/\.git, .* moved to /)]);
      expect(existsSync(file)).toBe(false);
    } finally {
      lock('-i');
      pending.done();
    }
  });
});
