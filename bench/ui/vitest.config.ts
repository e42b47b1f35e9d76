import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

// The web UI's render benchmark (issue 21): `npm run bench:ui`. Not part of `npm test`:
// performance is measured in benchmarks, and filling 10,000 repositories takes minutes.
export default defineConfig({
  test: {
    include: ['bench/ui/*.int.test.ts'],
    testTimeout: 3_600_000,
    hookTimeout: 3_600_000,
    // Removes the run's scratchDir folders (test/support/scratch.ts) when it ends.
    setupFiles: [fileURLToPath(new URL('../../test/support/scratch-setup.ts', import.meta.url))],
  },
});
