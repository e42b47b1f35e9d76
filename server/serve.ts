/**
 * `berth server`: runs the registry, in one process or as a cluster of workers. Imported only
 * by that command, so the other commands (node-config on every node above all) do not load it.
 */
import cluster from 'node:cluster';
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname } from 'node:path';
import { sharedSigningKeyFile } from './auth/keys.js';
import { loadConfig } from './config/load.js';
import { startServer } from './server.js';
import { configFlag } from './config/flag.js';
import { createLogger } from './util/log.js';

export async function serveCommand(args: string[]): Promise<void> {
  const config = await loadConfig({ file: configFlag(args) });
  const log = createLogger(config.log.level, { pid: process.pid });
  const workers = config.http.workers === 0 ? availableParallelism() : config.http.workers;
  if (workers > 1 && cluster.isPrimary) {
    // One secret for all workers, so any worker continues any upload.
    process.env.BERTH_HTTP_SECRET ??= config.http.secret ?? randomBytes(32).toString('hex');
    // One token-signing key for all workers, so a token from one is valid at all.
    const signingKey = sharedSigningKeyFile(config);
    if (signingKey) {
      process.env.BERTH_AUTH_TOKEN_SIGNING_KEY_FILE = signingKey;
      // The key is kept for workers forked again later, and goes with the primary.
      process.once('exit', () => rmSync(dirname(signingKey), { recursive: true, force: true }));
    }
    for (let i = 0; i < workers; i++) cluster.fork();
    cluster.on('exit', (w, code, signal) => {
      if (!shuttingDown) {
        log.warn({ worker: w.process.pid, code, signal }, 'worker exited, restarting');
        cluster.fork();
      }
    });
    let shuttingDown = false;
    const stop = () => {
      shuttingDown = true;
      for (const w of Object.values(cluster.workers ?? {})) w?.process.kill('SIGTERM');
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
    return;
  }
  const running = await startServer(config, { log });
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down');
    running.close().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}
