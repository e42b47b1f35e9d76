import { loadConfig } from '../config/load.js';
import { createDriver, createServices } from '../server.js';
import { createLogger } from '../util/log.js';
import { reindex } from './reindex.js';

/**
 * searchCommand is `berth search reindex [--config <file>]`: rebuilds every repository's
 * search document from storage (for repositories pushed before the index existed) and prints
 * what it looked at as JSON. Resolves with the exit code: 0 done, 2 a usage error.
 */
export async function searchCommand(
  args: string[],
  configFile: string | undefined,
): Promise<number> {
  if (args[0] !== 'reindex') {
    process.stderr.write('usage: berth search reindex [--config <file>]\n');
    return 2;
  }
  const config = await loadConfig({ file: configFile });
  const log = createLogger(config.log.level, { pid: process.pid, command: 'search' }, (l) =>
    process.stderr.write(l),
  );
  const driver = createDriver(config);
  const services = createServices(config, driver, log);
  try {
    const report = await reindex(services.driver, services.registry, services.search);
    log.info({ ...report }, 'search index rebuilt');
    await new Promise<void>((resolve) =>
      process.stdout.write(JSON.stringify(report) + '\n', () => resolve()),
    );
    return 0;
  } finally {
    await driver.close?.();
  }
}
