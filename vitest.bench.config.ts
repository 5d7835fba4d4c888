import { defineConfig } from 'vitest/config';

/**
 * The benchmark's tests (`npm run bench:tests`): assertions on speed, throughput and memory per
 * session, which say how fast hoop is rather than what it does. They run one file at a time, on a
 * machine doing nothing else, and are not part of `vitest run` (see vitest.config.ts).
 */
export default defineConfig({
  test: {
    include: ['test/perf/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
    maxWorkers: 1,
    fileParallelism: false,
  },
});
