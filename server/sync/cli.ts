import { ConfigError, loadConfig } from '../config/load.js';
import { createDriver, createServices } from '../server.js';
import { createLogger } from '../util/log.js';

/** EXIT_FAILED is the exit code of a run that ended with errors (its summary lists them). */
export const EXIT_FAILED = 1;
/** EXIT_BUSY is the exit code when another replica holds the job's lease. */
export const EXIT_BUSY = 3;

/**
 * syncCommand is `berth sync run <job> [--config <file>]`: one pass of a `mirrors.sync` job
 * with the server's configuration and storage, under the job's lease like a scheduled run.
 * Prints the run record (with its summary) as JSON on stdout; logs go to stderr. Resolves
 * with the exit code: 0 success, 1 the run failed, 3 another replica holds the lease.
 */
export async function syncCommand(args: string[], configFile: string | undefined): Promise<number> {
  const [sub, job] = args.filter((a, i) => !a.startsWith('--') && args[i - 1] !== '--config');
  if (sub !== 'run' || job === undefined)
    throw new ConfigError('usage: berth sync run <job> [--config <file>]');
  const config = await loadConfig({ file: configFile });
  const log = createLogger(config.log.level, { pid: process.pid, command: 'sync' }, (l) =>
    process.stderr.write(l),
  );
  const driver = createDriver(config);
  const services = createServices(config, driver, log);
  const sync = services.sync;
  if (!sync?.names.includes(job)) {
    const known = sync?.names.join(', ') ?? '';
    throw new ConfigError(
      `mirrors.sync: no job is named ${JSON.stringify(job)}${known ? ` (known: ${known})` : ''}`,
    );
  }
  const stop = () => void sync.stop();
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  // The timers of the storage membership do not keep a process alive: a tag write waiting to
  // join (another process is on the storage) would let it exit 0 with the run unfinished.
  const alive = setInterval(() => undefined, 60_000);
  // sync writes tags: it joins the storage's processes like a server does.
  await services.peers.start();
  try {
    const record = await sync.run(job, 'cli');
    await new Promise<void>((resolve) =>
      process.stdout.write(JSON.stringify(record, null, 2) + '\n', () => resolve()),
    );
    if (record.state === 'busy') return EXIT_BUSY;
    return record.state === 'success' ? 0 : EXIT_FAILED;
  } finally {
    clearInterval(alive);
    process.off('SIGTERM', stop);
    process.off('SIGINT', stop);
    await services.peers.stop();
    await driver.close?.();
  }
}
