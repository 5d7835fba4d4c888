import { readdirSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { defineConfig } from 'vitest/config';

/** Unit test files that replace a module (vi.mock): they need a module graph of their own. */
const mocking = readdirSync('test/unit')
  .filter((f) => f.endsWith('.test.ts') && /\bvi\.(?:do)?[mM]ock\(/.test(readFileSync(`test/unit/${f}`, 'utf8')))
  .map((f) => `test/unit/${f}`);

export default defineConfig({
  test: {
    // Speed and memory figures are the benchmark's (vitest.bench.config.ts, npm run bench:tests), not functional tests.
    exclude: ['**/node_modules/**', 'test/perf/**'],
    // Limits for what hangs, not speeds: CI machines have run this suite three times slower than others of their kind.
    testTimeout: 300_000,
    hookTimeout: 300_000,
    // A poll waits for what a busy machine makes late (a worker thread's flush, a child's exit): twenty seconds, not one.
    expect: { poll: { timeout: 20_000 } },
    pool: 'forks',
    // Most files wait on real servers (PostgreSQL, sshd, an OpenID provider) more than they compute: two per core, at
    // least four. Six on two cores made the load average 17 on a slow machine, and files met their deadlines.
    maxWorkers: Math.max(4, 2 * availableParallelism()),
    projects: [
      {
        extends: true,
        // Unit tests start no servers and leave no state behind: a worker runs many files on one module graph
        // (a process and an import of the sources per file cost more than most of these files' tests).
        test: { name: 'unit', include: ['test/unit/**/*.test.ts'], exclude: [...mocking, 'test/perf/**', '**/node_modules/**'], isolate: false },
      },
      {
        extends: true,
        // Each file starts its own PostgreSQL and gateway (~0.25 s) and stops them; what no test changes (the CA, the
        // OpenID provider: test/harness/worker-shared.ts) is the worker's. A worker runs its files one after another on
        // one module graph (importing the sources again for each file cost ~2 s of CPU per file).
        test: { name: 'integration', include: ['test/integration/**/*.test.ts', 'test/e2e/**/*.test.ts'], isolate: false },
      },
      {
        extends: true,
        // A unit test that replaces a module (vi.mock) gets a module graph of its own.
        test: { name: 'mocking', include: [...mocking] },
      },
    ],
  },
});
