import { createServer, type Server } from 'node:http';
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { BerthConfig } from './config/types.js';
import { createApp } from './http/app.js';
import type { Services } from './http/context.js';
import { Registry } from './registry/repository.js';
import { Tokens } from './registry/token.js';
import { Uploads } from './registry/uploads.js';
import type { StorageDriver } from './storage/driver.js';
import { FilesystemDriver } from './storage/drivers/filesystem.js';
import { InMemoryDriver } from './storage/drivers/inmemory.js';
import { S3Driver } from './storage/drivers/s3.js';
import { createLogger, type Logger } from './util/log.js';

/** createDriver builds the configured storage driver. */
export function createDriver(config: BerthConfig): StorageDriver {
  switch (config.storage.driver) {
    case 'filesystem':
      return new FilesystemDriver(config.storage.filesystem.root);
    case 's3':
      return new S3Driver(config.storage.s3);
    case 'inmemory':
      return new InMemoryDriver();
  }
}

/** createServices wires the domain over a driver. */
export function createServices(config: BerthConfig, driver: StorageDriver, log: Logger): Services {
  let secret = config.http.secret;
  if (secret === undefined || secret === '') {
    secret = randomBytes(32).toString('hex');
    log.warn(
      {},
      'no http.secret configured: upload sessions will not survive a restart or move between replicas',
    );
  }
  const s3 = config.storage.driver === 's3' ? config.storage.s3 : undefined;
  return {
    config,
    driver,
    log,
    registry: new Registry(driver, {
      allowSparse: config.validation.allowSparse,
      redirectSeconds: s3?.redirect ? 1200 : undefined,
    }),
    uploads: new Uploads(driver, {
      ttlSeconds: config.uploads.ttlSeconds,
      log,
      abortStale:
        driver instanceof S3Driver ? (d) => driver.abortStaleMultipartUploads(d) : undefined,
    }),
    tokens: new Tokens(secret),
  };
}

export interface RunningServer {
  /** url is the base URL the server listens on, e.g. `http://127.0.0.1:5000`. */
  url: string;
  server: Server;
  services: Services;
  /** close stops accepting connections and waits for in-flight requests (bounded). */
  close(): Promise<void>;
}

/** startDebugServer serves /healthz and /readyz on their own listener (for probes). */
async function startDebugServer(addr: string, s: Services): Promise<Server> {
  const server = createServer((req, res) => {
    const reply = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (req.url === '/healthz') return reply(200, { status: 'ok' });
    if (req.url === '/readyz') {
      s.driver.ping().then(
        () => reply(200, { status: 'ready' }),
        (err: unknown) =>
          reply(503, { errors: [{ code: 'UNAVAILABLE', message: (err as Error).message }] }),
      );
      return;
    }
    reply(404, { errors: [{ code: 'NOT_FOUND', message: 'no route for this path' }] });
  });
  const { host, port } = splitAddr(addr);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return server;
}

function splitAddr(addr: string): { host: string; port: number } {
  const i = addr.lastIndexOf(':');
  return {
    host: addr.slice(0, i).replace(/^\[|\]$/g, '') || '0.0.0.0',
    port: Number(addr.slice(i + 1)),
  };
}

/**
 * startServer listens with the configured address and returns once it accepts
 * connections. Node's request timeouts are lifted so a multi-GB upload is never cut.
 */
export async function startServer(
  config: BerthConfig,
  opts: { log?: Logger; driver?: StorageDriver } = {},
): Promise<RunningServer> {
  const log = opts.log ?? createLogger(config.log.level);
  const driver = opts.driver ?? createDriver(config);
  const services = createServices(config, driver, log);
  const app = createApp(services);
  const callback = app.callback();
  const server = createServer((req, res) => void callback(req, res));
  server.requestTimeout = 0;
  server.timeout = 0;
  server.headersTimeout = 60_000;
  server.keepAliveTimeout = 65_000;
  const { host, port } = splitAddr(config.http.addr);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const a = server.address() as AddressInfo;
  const url = `http://${a.family === 'IPv6' ? `[${a.address}]` : a.address === '0.0.0.0' ? '127.0.0.1' : a.address}:${a.port}`;
  let purge: NodeJS.Timeout | undefined;
  if (config.uploads.purgeIntervalSeconds > 0) {
    purge = setInterval(() => {
      services.uploads
        .purgeExpired()
        .catch((err: unknown) => log.warn({ err }, 'upload purge failed'));
    }, config.uploads.purgeIntervalSeconds * 1000);
    purge.unref();
  }
  const debug =
    config.http.debugAddr === undefined
      ? undefined
      : await startDebugServer(config.http.debugAddr, services);
  log.info(
    { url, driver: driver.name, readOnly: config.readOnly, debugAddr: config.http.debugAddr },
    'registry listening',
  );
  return {
    url,
    server,
    services,
    close: async () => {
      if (purge) clearInterval(purge);
      debug?.close();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      // Keep-alive connections become idle as their last request finishes: close them then.
      const idle = setInterval(() => server.closeIdleConnections(), 100);
      server.closeIdleConnections();
      const timer = setTimeout(
        () => server.closeAllConnections(),
        config.http.shutdownTimeoutSeconds * 1000,
      );
      timer.unref();
      await closed;
      clearInterval(idle);
      clearTimeout(timer);
      await driver.close?.();
    },
  };
}
