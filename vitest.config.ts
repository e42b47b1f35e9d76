import { defineConfig } from 'vitest/config';

// Two tiers: `unit` is in-process and takes seconds; `integration` starts real parts
// (MinIO, server processes, the OCI conformance suite, skopeo) and may take minutes.
// Both remove each test file's scratchDir folders when it ends (test/support/scratch.ts).
const setupFiles = ['test/support/scratch-setup.ts'];

export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/**/*.test.ts'],
          exclude: ['test/**/*.int.test.ts', 'node_modules/**'],
          testTimeout: 20_000,
          setupFiles,
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/**/*.int.test.ts'],
          testTimeout: 600_000,
          hookTimeout: 120_000,
          fileParallelism: false,
          setupFiles,
        },
      },
    ],
  },
});
