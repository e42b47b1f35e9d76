import { describe, expect, it } from 'vitest';
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
});
