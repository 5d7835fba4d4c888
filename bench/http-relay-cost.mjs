// `node bench/http-relay-cost.mjs`: bundles ./http-relay-cost.ts as the gateway's build bundles
// src/ (esbuild, no names kept on functions), then runs it; see that file.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { build } from 'esbuild';

const root = join(import.meta.dirname, '..');
// Under node_modules, where the bundle's packages are found from.
const dir = mkdtempSync(join(root, 'node_modules', '.hoop-relay-cost-'));
try {
  const out = join(dir, 'cost.mjs');
  await build({
    entryPoints: [join(import.meta.dirname, 'http-relay-cost.ts')],
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    outfile: out,
    packages: 'external',
    banner: { js: "import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);" },
  });
  const ran = spawnSync(process.execPath, [out], { stdio: 'inherit', env: process.env, cwd: root });
  process.exitCode = ran.status ?? 1;
} finally {
  rmSync(dir, { recursive: true, force: true });
}
