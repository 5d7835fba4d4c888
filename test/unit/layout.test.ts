/**
 * The source tree's rules that a reviewer would otherwise have to remember: production code
 * (src/) never imports from test/ (what the demo needs lives in src/demo), and only bin/ calls
 * process.exit.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = resolve(import.meta.dirname, '../..');

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? sources(join(dir, e.name)) : /\.tsx?$/.test(e.name) ? [join(dir, e.name)] : []));
}

describe('source layout', () => {
  const files = sources(join(root, 'src'));

  it('finds the sources', () => {
    expect(files.length).toBeGreaterThan(50);
  });

  it('production code never imports from test/', () => {
    const offenders: string[] = [];
    for (const file of files) {
      for (const m of readFileSync(file, 'utf8').matchAll(/(?:from|import)\s*\(?\s*['"](\.[^'"]+)['"]/g)) {
        const target = relative(root, resolve(dirname(file), m[1]!));
        if (!target.startsWith('src/')) offenders.push(`${relative(root, file)} imports ${m[1]}`);
      }
    }
    expect(offenders).toEqual([]);
  });

  it("the libraries both ends use (config, policy, postgres, tunnel, auth) never import the gateway's own code", () => {
    const shared = ['src/config/', 'src/policy/', 'src/postgres/', 'src/tunnel/', 'src/auth/'];
    const offenders: string[] = [];
    for (const file of files.filter((f) => shared.some((d) => relative(root, f).startsWith(d)))) {
      for (const m of readFileSync(file, 'utf8').matchAll(/(?:from|import)\s*\(?\s*['"](\.[^'"]+)['"]/g)) {
        const target = relative(root, resolve(dirname(file), m[1]!));
        if (target.startsWith('src/gateway/')) offenders.push(`${relative(root, file)} imports ${m[1]}`);
      }
    }
    expect(offenders).toEqual([]);
  });

  it('only bin/ calls process.exit', () => {
    expect(files.filter((f) => /process\.exit\(/.test(readFileSync(f, 'utf8'))).map((f) => relative(root, f))).toEqual([]);
  });
});
