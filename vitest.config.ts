import { availableParallelism } from 'node:os';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Speed and memory figures are the benchmark's (vitest.bench.config.ts, npm run bench:tests), not functional tests.
    exclude: ['**/node_modules/**', 'test/perf/**'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // Most files wait on real servers (PostgreSQL, sshd, an OpenID provider) more than they compute:
    // two per core, at least four (on two cores the suite then takes 4/5 of the time of two at once).
    maxWorkers: Math.max(4, 2 * availableParallelism()),
    globalSetup: [],
  },
});
