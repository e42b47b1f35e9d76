import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { scratchDir } from './scratch.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Ran is how a `berth` command ended: its exit status and what it wrote. */
export interface Ran {
  status: number | null;
  stdout: string;
  stderr: string;
}

/**
 * runBerthCli runs the real CLI (via tsx, with a throwaway HOME) without blocking this
 * process (registries it talks to may run in it), and resolves when it ends; it is killed after
 * two minutes. `onErr` sees stderr as it comes, with a way to kill the command midway.
 */
export function runBerthCli(
  args: readonly string[],
  onErr?: (text: string, kill: () => void) => void,
): Promise<Ran> {
  return new Promise((resolve) => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', join(root, 'server', 'cli.ts'), ...args],
      { env: { ...process.env, HOME: scratchDir('berth-home-') } },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
    child.stderr.on('data', (c: Buffer) => {
      stderr += c.toString('utf8');
      onErr?.(stderr, () => child.kill('SIGKILL'));
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
  });
}
