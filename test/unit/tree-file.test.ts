/**
 * Files a person names in a working tree, taken as what an agent may have left there
 * (src/tree-file.ts), on real files and links: read when they are regular files of the tree;
 * refused, naming why, when they are links, lead out of the tree, or into hoop's own places.
 */
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { checkTreeDir, checkTreeTarget, readNamedFile, readTreeFile } from '../../src/tree-file.js';

const base = mkdtempSync(join(tmpdir(), 'hoop-tree-file-'));
afterAll(() => rmSync(base, { recursive: true, force: true }));
const tree = join(base, 'work');
const login = join(base, 'login');
const elsewhere = join(base, 'elsewhere');
for (const d of [tree, login, elsewhere, join(tree, 'sub')]) mkdirSync(d, { recursive: true });
writeFileSync(join(login, 'tokens.json'), '{"accessToken":"secret"}');
writeFileSync(join(elsewhere, 'notes.md'), 'notes');
writeFileSync(join(tree, 'prompt.md'), 'fix the bug');
writeFileSync(join(tree, 'huge.md'), '');
writeFileSync(join(tree, 'sub', 'q.sql'), 'select 1');
const places = { tree, private: [login] };

describe('a file of the tree', () => {
  it('is read when it is a regular file, through a link that stays in the tree too', async () => {
    expect(await readTreeFile('prompt.md', places)).toBe('fix the bug');
    symlinkSync('sub', join(tree, 'inner'));
    expect(await readTreeFile('inner/q.sql', places)).toBe('select 1');
  });

  it('is refused when it is a link, whatever it points at', async () => {
    symlinkSync(join(login, 'tokens.json'), join(tree, 'planted.md'));
    symlinkSync('prompt.md', join(tree, 'alias.md'));
    await expect(readNamedFile('planted.md', places)).rejects.toThrow(/^hoop will not use planted\.md: it is a symbolic link$/);
    await expect(readNamedFile('alias.md', places)).rejects.toThrow(/it is a symbolic link/);
  });

  it('is refused when a directory on its way leads out of the tree, or into hoop’s own places from anywhere', async () => {
    symlinkSync(elsewhere, join(tree, 'out'));
    await expect(readTreeFile('out/notes.md', places)).rejects.toThrow(/a symbolic link on its way leads out of .*work, to .*elsewhere\/notes\.md/);
    symlinkSync(login, join(elsewhere, 'into-login'));
    // Named outside the tree, links are the person's own; hoop's places are refused all the same.
    expect(await readTreeFile(join(elsewhere, 'notes.md'), places)).toBe('notes');
    await expect(readTreeFile(join(elsewhere, 'into-login', 'tokens.json'), places)).rejects.toThrow(/it is in hoop's own .*login, which holds your login and tokens/);
    await expect(readTreeFile(join(login, 'tokens.json'), places)).rejects.toThrow(/hoop's own/);
  });

  it('is refused when it is not a regular file (a fifo would block) or larger than hoop reads (a sparse one would fill memory), and a missing one is said as missing', async () => {
    execFileSync('mkfifo', [join(tree, 'pipe')]);
    await expect(readNamedFile('pipe', places)).rejects.toThrow(/it is not a regular file/);
    // Named outside the tree, a pipe is the person's own (a shell's `-f <(cat a.sql b.sql)`).
    const outside = join(elsewhere, 'pipe');
    execFileSync('mkfifo', [outside]);
    const reading = readNamedFile(outside, places);
    // Its writer comes later, and writes in two steps.
    const exited = once(spawn('sh', ['-c', `sleep 0.2; exec > '${outside}'; printf 'select '; sleep 0.2; printf 1`]), 'exit');
    expect(await reading).toBe('select 1');
    await exited;
    truncateSync(join(tree, 'huge.md'), 1024 ** 4); // a sparse terabyte
    await expect(readNamedFile('huge.md', places)).rejects.toThrow(/it is larger than 64 MiB/);
    await expect(readNamedFile('nope.md', places)).rejects.toThrow(/^cannot read nope\.md: ENOENT/);
  });
});

describe('a directory of the tree, and a file hoop writes there', () => {
  it('is refused when it is a link or leads into hoop’s own places', async () => {
    expect(await checkTreeDir('sub', places)).toBe(join(tree, 'sub'));
    symlinkSync(login, join(tree, 'policy'));
    await expect(checkTreeDir('policy', places)).rejects.toThrow(/it is a symbolic link/);
    await expect(checkTreeDir(login, places)).rejects.toThrow(/hoop's own/);
  });

  it('is refused as a place to write when the file or its directory is a link', async () => {
    await checkTreeTarget('new.json', places);
    symlinkSync(join(login, 'tokens.json'), join(tree, '.mcp.json'));
    await expect(checkTreeTarget('.mcp.json', places)).rejects.toThrow(/it is a symbolic link/);
    symlinkSync(elsewhere, join(tree, '.cursor'));
    await expect(checkTreeTarget('.cursor/mcp.json', places)).rejects.toThrow(/leads out of/);
    expect(readFileSync(join(login, 'tokens.json'), 'utf8')).toBe('{"accessToken":"secret"}');
  });
});
