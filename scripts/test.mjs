// `npm test` once built: the type check and the style lint run beside the suite (the suite alone leaves
// part of each core idle), their output said after the suite's; npm test fails when any of the
// three does. Arguments go to vitest (`npm test -- test/unit/glob.test.ts`).
import { spawn } from 'node:child_process';

/** Runs `npm run <script>`, its output kept to be said at the end. */
function quietly(script) {
  return new Promise((resolve) => {
    const child = spawn('npm', ['run', '--silent', script], { stdio: ['ignore', 'pipe', 'pipe'] });
    let said = '';
    child.stdout.on('data', (b) => (said += b));
    child.stderr.on('data', (b) => (said += b));
    child.on('close', (code, signal) => resolve({ script, code: code ?? (signal ? 1 : 0), said }));
  });
}

// The layers (`npm run lint:layers`) are the suite's own to check (test/unit/layout.test.ts): not cruised twice.
const checks = [quietly('typecheck'), quietly('lint:style')];
const suite = await new Promise((resolve) => {
  const child = spawn('npx', ['vitest', 'run', ...process.argv.slice(2)], { stdio: 'inherit' });
  child.on('close', (code, signal) => resolve(code ?? (signal ? 1 : 0)));
});
let failed = suite !== 0;
for (const { script, code, said } of await Promise.all(checks)) {
  process.stdout.write(`\n==== npm run ${script}: ${code === 0 ? 'passed' : `failed (exit ${code})`} ====\n${said}`);
  if (code !== 0) failed = true;
}
process.exit(failed ? 1 : 0);
