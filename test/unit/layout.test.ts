/**
 * The source tree's rules that a reviewer would otherwise have to remember: production code
 * (src/) never imports from test/ (what the demo needs lives in src/demo), the layers of
 * .dependency-cruiser.cjs hold, only bin/ calls process.exit, every error class is a HoopError, and the gateway reads a
 * connection's address in one place (src/gateway/front/peer-address.ts, which knows a balancer's PROXY header).
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

  it('keeps the layers of .dependency-cruiser.cjs: no cycle, no room importing one of its rank or above (as npm run lint checks)', async () => {
    const { cruise } = await import('dependency-cruiser');
    const { default: depcruiseOptions } = await import('dependency-cruiser/config-utl/extract-depcruise-options');
    const { default: tsConfigOf } = await import('dependency-cruiser/config-utl/extract-ts-config');
    const options = await depcruiseOptions(join(root, '.dependency-cruiser.cjs'));
    const cwd = process.cwd();
    process.chdir(root);
    try {
      const result = await cruise(['src'], { ...options, validate: true }, undefined, { tsConfig: tsConfigOf(join(root, 'tsconfig.json')) });
      const { summary } = result.output as { summary: { violations: Array<{ rule: { name: string }; from: string; to: string }>; totalCruised: number } };
      expect(summary.totalCruised).toBeGreaterThan(200);
      expect(summary.violations.map((v) => `${v.rule.name}: ${v.from} -> ${v.to}`)).toEqual([]);
    } finally {
      process.chdir(cwd);
    }
  });

  it('only bin/ calls process.exit', () => {
    expect(files.filter((f) => /process\.exit\(/.test(readFileSync(f, 'utf8'))).map((f) => relative(root, f))).toEqual([]);
  });

  it("reads a connection's address and port only in src/gateway/front/peer-address.ts (a socket's own would be a balancer's)", () => {
    // What admission takes is the address already read (`request.remoteAddress`, a string), not a socket's.
    const offenders = files
      .filter((f) => !f.endsWith(join('src', 'gateway', 'front', 'peer-address.ts')))
      .flatMap((f) =>
        readFileSync(f, 'utf8')
          .split('\n')
          .filter((line) => /\.remote(Address|Port|Family)\b/.test(line.replaceAll('request.remoteAddress', '')))
          .map((line) => `${relative(root, f)}: ${line.trim()}`),
      );
    expect(offenders).toEqual([]);
  });

  it("every error class is a HoopError (a lane's carries its protocol's code beside it): none extends Error but HoopError itself", () => {
    const offenders = files.flatMap((f) => [...readFileSync(f, 'utf8').matchAll(/class (\w+) extends (?:globalThis\.)?(?:Error|TypeError|RangeError)\b/g)].map((m) => `${relative(root, f)}: ${m[1]}`));
    expect(offenders).toEqual(['src/errors.ts: HoopError']);
  });
});
