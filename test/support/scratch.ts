import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

// Every temporary folder a test, a test helper or a benchmark makes comes from scratchDir, so
// that none outlives its run: test/support/scratch-setup.ts (a `setupFiles` entry of every
// vitest config) removes a test file's folders after its last afterAll, failed tests or not,
// and process exit removes whatever is left (a bench run, a worker that ends early).

// One list and one exit listener per process, however many times test files load this module.
const key = Symbol.for('berth.scratchDirs');
const shared = globalThis as { [key]?: Set<string> };
const made = shared[key] ?? new Set<string>();
if (shared[key] === undefined) {
  shared[key] = made;
  process.once('exit', removeScratchDirs);
}

/** scratchDir makes a fresh folder `$TMPDIR/<prefix>XXXXXX`, removed when its test file ends. */
export function scratchDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  made.add(dir);
  return dir;
}

/**
 * removeScratchDirs removes every folder scratchDir made so far. A folder it cannot remove
 * is reported, not thrown: cleanup must not turn a passing test file into a failing one.
 */
export function removeScratchDirs(): void {
  for (const dir of made) {
    try {
      rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
    } catch (err) {
      process.stderr.write(`scratchDir: cannot remove ${dir}: ${String(err)}\n`);
    }
    made.delete(dir);
  }
}
