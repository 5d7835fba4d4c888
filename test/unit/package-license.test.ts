/** The package says its license in a file, as package.json names it, and the packed tarball carries it. */
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

describe('the license', () => {
  it('is the MIT license package.json names, in the packed tarball', () => {
    expect(JSON.parse(readFileSync('package.json', 'utf8')).license).toBe('MIT');
    expect(readFileSync('LICENSE', 'utf8')).toMatch(/^MIT License\n/);
    const packed = JSON.parse(execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { encoding: 'utf8' })) as Array<{ files: Array<{ path: string }> }>;
    expect(packed[0]!.files.map((f) => f.path)).toContain('LICENSE');
  });
});

describe('publishing', () => {
  it('npm publish --dry-run finds nothing to warn of but the missing login', () => {
    const r = spawnSync('npm', ['publish', '--dry-run', '--ignore-scripts'], { encoding: 'utf8' });
    const warnings = r.stderr.split('\n').filter((l) => /warn/i.test(l) && !/requires you to be logged in/.test(l));
    expect(warnings).toEqual([]);
    expect(r.stderr).toContain('package size');
  });
});
