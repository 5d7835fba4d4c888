// Compiles src/ to dist/ file by file with esbuild: each module as tsc would write it (the sources
// keep to isolatedModules and verbatimModuleSyntax, so no file needs another's types to compile);
// types are checked by `npm run typecheck` (npm test runs it), not here. Then bundles the vendor
// modules and writes the man page (scripts/bundle-vendor.mjs, scripts/build-man.mjs).
import { execFileSync } from 'node:child_process';
import { readdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const sources = (dir) =>
  readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? sources(join(dir, e.name)) : /\.tsx?$/.test(e.name) && !e.name.endsWith('.d.ts') ? [join(dir, e.name)] : []));

rmSync(join(root, 'dist'), { recursive: true, force: true });
/** The commit of the checkout built, for `hoop --version` (none outside a git checkout). */
let commit = '';
try {
  commit = execFileSync('git', ['rev-parse', '--short=12', 'HEAD'], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
} catch {
  commit = '';
}
await build({
  entryPoints: sources(join(root, 'src')),
  outdir: join(root, 'dist'),
  outbase: join(root, 'src'),
  format: 'esm',
  platform: 'node',
  target: 'node20',
  jsx: 'automatic',
  sourcemap: true,
  tsconfig: join(root, 'tsconfig.build.json'),
  logLevel: 'warning',
  define: { __HOOP_COMMIT__: JSON.stringify(commit) },
});
await import('./bundle-vendor.mjs');
await import('./build-man.mjs');
