import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Ports this test process already handed out: a port closed again is free to the kernel. */
const handedOut = new Set<number>();

/**
 * freePort asks the kernel for an unused loopback port, never one it already returned in this
 * process: a test that takes two ports before binding either could otherwise get the same one
 * twice (the kernel may pick a port again as soon as it is closed).
 */
export async function freePort(): Promise<number> {
  for (;;) {
    const port = await kernelPort();
    if (handedOut.has(port)) continue;
    handedOut.add(port);
    return port;
  }
}

function kernelPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

export interface BerthProcess {
  url: string;
  port: number;
  child: ChildProcess;
  /** output is everything the process wrote so far (JSON log lines). */
  output(): string;
  /** kill sends a signal and waits for the exit. */
  kill(signal?: NodeJS.Signals): Promise<void>;
}

/**
 * spawnBerth runs the real `berth server` as its own process (via tsx, so no build
 * step) with `env` (BERTH_* config overrides) and resolves once `opts.ready` (default /readyz) answers.
 */
export async function spawnBerth(
  env: Record<string, string>,
  opts: { port?: number; ready?: string } = {},
): Promise<BerthProcess> {
  const port = opts.port ?? (await freePort());
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', join(root, 'server', 'cli.ts'), 'server'],
    {
      cwd: root,
      env: {
        PATH: process.env.PATH,
        HOME: process.env.HOME,
        BERTH_HTTP_ADDR: `127.0.0.1:${port}`,
        BERTH_LOG_LEVEL: 'warn',
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null)
      throw new Error(`berth server exited with ${child.exitCode}:\n${out}`);
    const ok = await fetch(`${url}${opts.ready ?? '/readyz'}`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) break;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`berth server did not become ready:\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url,
    port,
    child,
    output: () => out,
    kill: async (signal = 'SIGTERM') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      await exited;
    },
  };
}
