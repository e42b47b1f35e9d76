import { afterEach, describe, expect, it, vi } from 'vitest';
import { Metrics } from '../../../server/metrics/metrics.js';
import { startServer } from '../../../server/server.js';
import { InMemoryDriver } from '../../../server/storage/drivers/inmemory.js';
import { silentLogger } from '../../../server/util/log.js';
import { freePort } from '../../support/process.js';
import { testConfig } from '../../support/server.js';

/** HeldDriver holds this process's first peers entry write until `release` is called. */
class HeldDriver extends InMemoryDriver {
  release!: () => void;
  private readonly held = new Promise<void>((resolve) => (this.release = resolve));
  override async put(key: string, data: Buffer | string): Promise<void> {
    if (key.startsWith('peers/')) await this.held;
    return super.put(key, data);
  }
}

/** DownDriver fails its pings, once `down`, with words only an operator should read. */
class DownDriver extends InMemoryDriver {
  down = false;
  override async ping(): Promise<void> {
    if (this.down) throw new Error('connect ECONNREFUSED 10.9.8.7:9000 (key AKIASECRET)');
  }
}

async function status(url: string): Promise<{ status: number; body: unknown }> {
  const r = await fetch(url);
  return { status: r.status, body: await r.json() };
}

describe('readiness', () => {
  it('GIVEN a starting server whose first peers round has not finished WHEN probed THEN /healthz is 200 and /readyz 503 on both listeners until the round is done', async () => {
    const driver = new HeldDriver();
    const [port, debugPort] = [await freePort(), await freePort()];
    const main = `http://127.0.0.1:${port}`;
    const debug = `http://127.0.0.1:${debugPort}`;
    const config = testConfig({
      http: { addr: `127.0.0.1:${port}`, debugAddr: `127.0.0.1:${debugPort}` },
    });
    const starting = startServer(config, { log: silentLogger, driver });

    // WHEN both listeners answer, before the join
    let answered = false;
    for (let i = 0; i < 200 && !answered; i++) {
      answered = await fetch(`${debug}/healthz`).then(
        (r) => r.ok,
        () => false,
      );
      if (!answered) await new Promise((r) => setTimeout(r, 25));
    }
    expect(answered).toBe(true);
    expect((await status(`${main}/healthz`)).status).toBe(200);
    for (const base of [main, debug]) {
      const r = await status(`${base}/readyz`);
      expect(r.status).toBe(503);
      expect(r.body).toMatchObject({
        errors: [
          {
            code: 'UNAVAILABLE',
            detail: { reason: 'starting: joining the peers on the storage' },
          },
        ],
      });
    }

    // WHEN the first round finishes
    driver.release();
    const running = await starting;
    try {
      // THEN both answer ready
      for (const base of [main, debug]) {
        expect(await status(`${base}/readyz`)).toEqual({
          status: 200,
          body: { status: 'ready' },
        });
      }
    } finally {
      await running.close();
    }
  });

  afterEach(() => {
    vi.restoreAllMocks();
  });

  it('GIVEN storage that stops answering WHEN /readyz is probed on both listeners THEN 503 UNAVAILABLE with a general reason, never the storage error itself', async () => {
    const driver = new DownDriver();
    const [port, debugPort] = [await freePort(), await freePort()];
    const config = testConfig({
      http: { addr: `127.0.0.1:${port}`, debugAddr: `127.0.0.1:${debugPort}` },
    });
    const running = await startServer(config, { log: silentLogger, driver });
    try {
      driver.down = true;
      for (const base of [`http://127.0.0.1:${port}`, `http://127.0.0.1:${debugPort}`]) {
        const r = await fetch(`${base}/readyz`);
        const text = await r.text();
        expect(r.status).toBe(503);
        expect(JSON.parse(text)).toMatchObject({
          errors: [{ code: 'UNAVAILABLE', detail: { reason: 'storage unreachable' } }],
        });
        expect(text).not.toMatch(/ECONNREFUSED|10\.9\.8\.7|AKIASECRET/);
      }
    } finally {
      await running.close();
    }
  });

  it('GIVEN a metrics exposition that fails WHEN the debug listener serves /metrics THEN 500 with the OCI error JSON of an unknown error, never the internal message', async () => {
    vi.spyOn(Metrics.prototype, 'exposition').mockRejectedValue(
      new Error('EACCES /var/lib/berth/secret-path'),
    );
    const [port, debugPort] = [await freePort(), await freePort()];
    const config = testConfig({
      http: { addr: `127.0.0.1:${port}`, debugAddr: `127.0.0.1:${debugPort}` },
    });
    const running = await startServer(config, { log: silentLogger, driver: new InMemoryDriver() });
    try {
      const r = await fetch(`http://127.0.0.1:${debugPort}${config.metrics.path}`);
      const text = await r.text();

      expect(r.status).toBe(500);
      expect(JSON.parse(text)).toEqual({ errors: [{ code: 'UNKNOWN', message: 'unknown error' }] });
      expect(text).not.toContain('secret-path');
    } finally {
      await running.close();
    }
  });
});
