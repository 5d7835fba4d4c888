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

/** Each line of a source file under `dir` (but `except`, relative to the root) that `pattern` finds, as `file:line: text`. */
function linesMatching(dir: string, except: string, pattern: RegExp): string[] {
  return sources(join(root, dir))
    .filter((file) => relative(root, file) !== except)
    .flatMap((file) =>
      readFileSync(file, 'utf8')
        .split('\n')
        .flatMap((line, i) => (pattern.test(line) ? [`${relative(root, file)}:${i + 1}: ${line.trim()}`] : [])),
    );
}

describe('the clock', () => {
  it('is the only module of src/ that reads the time of day (Date.now, new Date())', () => {
    expect(linesMatching('src', 'src/clock.ts', /\bDate\.now\b|new Date\(\s*\)/)).toEqual([]);
  });

  it("is waited on in tests only through the harness's named waits (eventually, poll, quietFor, pace), never a bare timer", () => {
    expect(linesMatching('test', 'test/harness/wait.ts', /new Promise\S*\s*\(?\(?\w*\)?\s*=>\s*setTimeout\(\w+,|Date\.now\(\)\s*[<>]=?\s*deadline/)).toEqual([]);
  });
});
