// Compiles src/ to dist/ file by file with esbuild: each module as tsc would write it (the sources
// keep to isolatedModules and verbatimModuleSyntax, so no file needs another's types to compile);
// types are checked by `npm run typecheck` (npm test runs it), not here. Then bundles the vendor
// modules and writes the man page (scripts/bundle-vendor.mjs, scripts/build-man.mjs). A dist/ built
// from the same sources is kept as it is (a build beside running tests would take it from under them).
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const sources = (dir) =>
  readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? sources(join(dir, e.name)) : /\.tsx?$/.test(e.name) && !e.name.endsWith('.d.ts') ? [join(dir, e.name)] : []));

/** The commit of the checkout built, for `hoop --version` (none outside a git checkout). */
let commit = '';
try {
  commit = execFileSync('git', ['rev-parse', '--short=12', 'HEAD'], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
} catch {
  commit = '';
}
/** What dist/ is built from: every source and build script, the package's settings, and the commit. */
function digest() {
  const hash = createHash('sha256').update(commit);
  const settings = ['package.json', 'package-lock.json', 'tsconfig.build.json'].map((f) => join(root, f));
  const files = [...sources(join(root, 'src')), ...readdirSync(join(root, 'scripts')).map((f) => join(root, 'scripts', f)), ...settings];
  for (const f of files.sort()) if (existsSync(f)) hash.update(`${relative(root, f)}\0`).update(readFileSync(f)).update('\0');
  return hash.digest('hex');
}
const stamp = join(root, 'dist', '.built-from');
const built = digest();
if (existsSync(stamp) && readFileSync(stamp, 'utf8') === built && existsSync(join(root, 'man', 'hoop.1'))) process.exit(0);

rmSync(join(root, 'dist'), { recursive: true, force: true });
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
writeFileSync(stamp, built);
