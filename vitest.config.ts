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
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // A poll waits for what a busy machine makes late (a worker thread's flush, a child's exit): ten seconds, not one.
    expect: { poll: { timeout: 10_000 } },
    pool: 'forks',
    // Most files wait on real servers (PostgreSQL, sshd, an OpenID provider) more than they compute: three per core,
    // at least four (on two cores four kept the cores 80% busy, six 89%: the suite took 534 s rather than 590 s).
    maxWorkers: Math.max(4, 3 * availableParallelism()),
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
