/**
 * The time of day is read in one place (src/clock.ts): every other module asks a Clock, so a test
 * that holds the gateway's clock holds every deadline it decides by.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = resolve(import.meta.dirname, '../..');

/** Every source file under `dir`. */
function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? sources(join(dir, e.name)) : /\.tsx?$/.test(e.name) ? [join(dir, e.name)] : []));
}

describe('the clock', () => {
  it('is the only module of src/ that reads the time of day (Date.now, new Date())', () => {
    const found: string[] = [];
    for (const file of sources(join(root, 'src'))) {
      if (relative(root, file) === 'src/clock.ts') continue;
      readFileSync(file, 'utf8')
        .split('\n')
        .forEach((line, i) => {
          if (/\bDate\.now\b|new Date\(\s*\)/.test(line)) found.push(`${relative(root, file)}:${i + 1}: ${line.trim()}`);
        });
    }
    expect(found).toEqual([]);
  });

  it("is waited on in tests only through the harness's named waits (eventually, poll, quietFor, pace), never a bare timer", () => {
    const found: string[] = [];
    for (const file of sources(join(root, 'test'))) {
      if (relative(root, file) === 'test/harness/wait.ts') continue;
      readFileSync(file, 'utf8')
        .split('\n')
        .forEach((line, i) => {
          if (/new Promise\S*\s*\(?\(?\w*\)?\s*=>\s*setTimeout\(\w+,|Date\.now\(\)\s*[<>]=?\s*deadline/.test(line)) found.push(`${relative(root, file)}:${i + 1}: ${line.trim()}`);
        });
    }
    expect(found).toEqual([]);
  });
});
