import { afterAll } from 'vitest';
import { removeScratchDirs } from './scratch.js';

// A `setupFiles` entry: registered first, this afterAll runs after the test file's own
// (vitest runs after-hooks in reverse), once its servers are stopped.
afterAll(() => removeScratchDirs());
