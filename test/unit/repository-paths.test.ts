/**
 * Nothing hoop ships points outside its repository: no comment, doc or example names a design
 * file or a checkout path that a reader of the repository (or of the npm package) does not have.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = resolve(import.meta.dirname, '../..');
const SHIPPED = ['src', 'bin', 'bench', 'docs', 'examples', 'README.md', '.ci'];

/** Every text file under `path`. */
function files(path: string): string[] {
  if (statSync(path).isFile()) return [path];
  return readdirSync(path).flatMap((name) => (name === 'node_modules' ? [] : files(join(path, name))));
}

describe('what hoop ships', () => {
  it('names no path outside the repository (a design file elsewhere, a checkout directory)', () => {
    const outside = /\/work\/|\.\.\/\.\.\/shared\/|\.\.\/shared\/|ARCHITECTURE\.md/;
    const found: string[] = [];
    for (const file of SHIPPED.flatMap((p) => files(join(root, p)))) {
      readFileSync(file, 'utf8')
        .split('\n')
        .forEach((line, i) => {
          if (outside.test(line)) found.push(`${relative(root, file)}:${i + 1}: ${line.trim()}`);
        });
    }
    expect(found).toEqual([]);
  });
});
