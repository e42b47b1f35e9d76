import { loadConfig } from '../config/load.js';
import { createDriver, createServices } from '../server.js';
import { createLogger } from '../util/log.js';
import { createGarbageCollector } from './index.js';

/** EXIT_BUSY is the exit code when another replica holds the gc lease. */
export const EXIT_BUSY = 3;

/**
 * gcCommand is `berth gc [--dry-run] [--config <file>]`: one collection with the server's
 * configuration (policies, grace window). Prints the report as JSON on stdout; logs go to
 * stderr. Resolves with the exit code: 0 done, 3 another replica holds the lease.
 */
export async function gcCommand(args: string[], configFile: string | undefined): Promise<number> {
  const dryRun = args.includes('--dry-run');
  const config = await loadConfig({ file: configFile });
  const log = createLogger(config.log.level, { pid: process.pid, command: 'gc' }, (l) =>
    process.stderr.write(l),
  );
  const driver = createDriver(config);
  const services = createServices(config, driver, log);
  const gc = createGarbageCollector(config, services);
  const stop = () => gc.abort();
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  // gc moves tags (retention): it joins the storage's processes like a server does.
  await services.peers.start();
  try {
    const report = await gc.run({ dryRun });
    if (!report) {
      process.stderr.write('berth: gc: another replica holds the gc lease; nothing done\n');
      return EXIT_BUSY;
    }
    // The caller exits right after: wait until the (possibly large) report is flushed.
    await new Promise<void>((resolve) =>
      process.stdout.write(JSON.stringify(report, null, 2) + '\n', () => resolve()),
    );
    return 0;
  } finally {
    process.off('SIGTERM', stop);
    process.off('SIGINT', stop);
    await services.peers.stop();
    await driver.close?.();
  }
}
