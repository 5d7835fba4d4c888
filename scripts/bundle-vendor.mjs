// Bundles the vendor modules (dist/ui/ink-vendor.js: ink and React; dist/ssh/common/ssh2-vendor.js: ssh2)
// with esbuild, so the package installs none of them (scripts/build.mjs runs it once dist/ is compiled), and the libraries
// every command loads (dist/vendor/), then points dist's imports at them and checks that nothing else
// in dist imports the vendor modules directly.
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

// Libraries every command loads, as one module each (zod's ES build is ~100 files, jose's ~50, commander is CommonJS): a
// process that starts (each hoop command) reads and compiles them once, not file by file.
const LOADED_WHOLE = ['zod', 'jose', 'openid-client', 'commander'];
await build({
  ...common,
  entryPoints: Object.fromEntries(LOADED_WHOLE.map((name) => [name, name])),
  outdir: join(dist, 'vendor'),
  splitting: true,
  chunkNames: 'shared-[hash]',
});

// tsc writes `from "react/jsx-runtime"` for the views' JSX: the ink bundle exports the same.
const files = (dir) => readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? files(join(dir, e.name)) : e.name.endsWith('.js') ? [join(dir, e.name)] : []));
for (const file of files(dist)) {
  if (file.endsWith('-vendor.js') || file.startsWith(join(dist, 'vendor/'))) continue;
  const text = readFileSync(file, 'utf8');
  const to = (target) => `from "${relative(dirname(file), join(dist, target)).replace(/^(?!\.)/, './')}"`;
  let pointed = text.replaceAll('from "react/jsx-runtime"', to('ui/ink-vendor.js'));
  for (const name of LOADED_WHOLE) pointed = pointed.replaceAll(`from '${name}'`, to(`vendor/${name}.js`)).replaceAll(`from "${name}"`, to(`vendor/${name}.js`));
  const direct = VENDORED.exec(pointed);
  if (direct) throw new Error(`${relative(root, file)} imports ${direct[1]} directly: import it from its vendor module`);
  if (pointed !== text) writeFileSync(file, pointed);
}
