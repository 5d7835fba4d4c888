// Bundles the vendor modules (dist/ui/ink-vendor.js: ink and React; dist/ssh/common/ssh2-vendor.js: ssh2)
// with esbuild, so the package installs none of them (npm run build runs it after tsc), then checks
// that nothing else in dist imports them directly.
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = join(root, 'dist');
const VENDORED = /from ["'](ink|react|react\/[^"']+|ssh2)["']/;

/** What CommonJS code inside an ES module bundle expects to find. */
const COMMONJS_GLOBALS = [
  "import { createRequire as __hoopRequire } from 'node:module';",
  "import { fileURLToPath as __hoopPath } from 'node:url';",
  'const require = __hoopRequire(import.meta.url);',
  'const __filename = __hoopPath(import.meta.url);',
  "const __dirname = __filename.slice(0, __filename.lastIndexOf('/'));",
].join(' ');

const common = { bundle: true, platform: 'node', format: 'esm', target: 'node20', banner: { js: COMMONJS_GLOBALS }, legalComments: 'none', logLevel: 'warning' };
await build({
  ...common,
  entryPoints: [join(root, 'src/ui/ink-vendor.ts')],
  outfile: join(dist, 'ui/ink-vendor.js'),
  // React's production build; ink starts React's devtools only with DEV=true, which hoop never sets.
  define: { 'process.env.NODE_ENV': '"production"' },
  alias: { 'react-devtools-core': join(root, 'scripts/devtools-absent.js') },
});
await build({
  ...common,
  entryPoints: [join(root, 'src/ssh/common/ssh2-vendor.ts')],
  outfile: join(dist, 'ssh/common/ssh2-vendor.js'),
  // Its optional native parts: absent, so ssh2 uses Node's crypto (as when their install scripts do not run).
  external: ['*.node', 'cpu-features'],
});

// tsc writes `from "react/jsx-runtime"` for the views' JSX: the ink bundle exports the same.
const files = (dir) => readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? files(join(dir, e.name)) : e.name.endsWith('.js') ? [join(dir, e.name)] : []));
for (const file of files(dist)) {
  if (file.endsWith('-vendor.js')) continue;
  const text = readFileSync(file, 'utf8');
  const pointed = text.replaceAll('from "react/jsx-runtime"', `from "${relative(dirname(file), join(dist, 'ui/ink-vendor.js')).replace(/^(?!\.)/, './')}"`);
  const direct = VENDORED.exec(pointed);
  if (direct) throw new Error(`${relative(root, file)} imports ${direct[1]} directly: import it from its vendor module`);
  if (pointed !== text) writeFileSync(file, pointed);
}
