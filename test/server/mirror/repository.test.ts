import { readdirSync, statSync } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { RegistryClient } from '../../../server/client/registry.js';
import { FilesystemDriver } from '../../../server/storage/drivers/filesystem.js';
import { Paths } from '../../../server/storage/paths.js';
import { ManualClock } from '../../support/clock.js';
import { Client, image } from '../../support/image.js';
import { startTestRegistry, type TestRegistry } from '../../support/server.js';
import { scratchDir } from '../../support/scratch.js';

const running: { close(): Promise<void> }[] = [];

/** ReadCounting is filesystem storage counting the reads of upload segments reaching it. */
class ReadCounting extends FilesystemDriver {
  segmentReads = 0;
  override async read(key: string, offset?: number, length?: number) {
    if (Paths.isSegment(key)) this.segmentReads++;
    return super.read(key, offset, length);
  }
  override async openSource(key: string, offset: number, length: number) {
    if (Paths.isSegment(key)) this.segmentReads++;
    return super.openSource(key, offset, length);
  }
}
afterEach(async () => {
  for (const r of running.splice(0)) await r.close();
});

async function pair(clock: ManualClock): Promise<{ upstream: TestRegistry; mirror: TestRegistry }> {
  const upstream = await startTestRegistry();
  const mirror = await startTestRegistry({
    clock,
    config: {
      mirrors: {
        upstreams: [
          { name: 'up', url: upstream.url.replace(/\/$/, ''), prefix: 'up', tagTtlSeconds: 60 },
        ],
      },
    },
  });
  running.push(mirror, upstream);
  return { upstream, mirror };
}

const digestOf = async (r: TestRegistry, path: string) =>
  (await r.fetch(path, { method: 'HEAD' })).headers.get('docker-content-digest');

describe('mirrored repository tags', () => {
  it('GIVEN a tag pulled through WHEN the upstream moves it THEN the cached tag is served until its TTL has passed, then the new one', async () => {
    const clock = new ManualClock();
    const { upstream, mirror } = await pair(clock);
    const push = new Client((p, init) => upstream.fetch(p, init));
    const a = image().layer(100).build();
    const b = image().layer(100).build();
    expect((await push.push('app', 'v1', a)).status).toBe(201);
    expect(await digestOf(mirror, '/v2/up/app/manifests/v1')).toBe(a.digest);

    expect((await push.push('app', 'v1', b)).status).toBe(201);
    clock.advance(59_000);
    const within = await digestOf(mirror, '/v2/up/app/manifests/v1');
    clock.advance(2_000);
    const after = await digestOf(mirror, '/v2/up/app/manifests/v1');

    expect(within).toBe(a.digest);
    expect(after).toBe(b.digest);
  });

  it('GIVEN a repository outside every mapping WHEN it is pulled THEN nothing is asked upstream (404)', async () => {
    const { mirror } = await pair(new ManualClock());
    expect((await mirror.fetch('/v2/other/app/manifests/v1')).status).toBe(404);
  });
});

describe('mirrored blobs and the blob cache', () => {
  it('GIVEN a mirror with a blob cache on a relaying storage WHEN a blob is pulled through once THEN the cache holds it, and the next pull reads no byte of it from storage', async () => {
    const upstream = await startTestRegistry();
    running.push(upstream);
    const blobDir = scratchDir('berth-mirror-blobs-');
    const storage = new ReadCounting(scratchDir('berth-mirror-store-'));
    const mirror = await startTestRegistry({
      driver: storage,
      config: {
        cache: { blobDir },
        mirrors: {
          upstreams: [{ name: 'up', url: upstream.url.replace(/\/$/, ''), prefix: 'up' }],
        },
      },
    });
    running.push(mirror);
    const img = image()
      .layer(3 * 1024 * 1024)
      .build();
    const push = new Client((p, init) => upstream.fetch(p, init));
    expect((await push.push('app', 'v1', img)).status).toBe(201);
    const layer = img.blobs[1]!;

    const first = await mirror.fetch(`/v2/up/app/blobs/${layer.digest}`);
    expect(Buffer.from(await first.arrayBuffer()).equals(layer.bytes)).toBe(true);
    const kept = async () =>
      readdirSync(blobDir)
        .filter((f) => f.startsWith('segments~'))
        .map((f) => statSync(join(blobDir, f)).size);
    for (let i = 0; i < 50 && !(await kept()).includes(layer.bytes.length); i++) {
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(await kept()).toContain(layer.bytes.length);
    storage.segmentReads = 0;
    const again = await mirror.fetch(`/v2/up/app/blobs/${layer.digest}`);

    expect(Buffer.from(await again.arrayBuffer()).equals(layer.bytes)).toBe(true);
    expect(storage.segmentReads).toBe(0);
  });
});

describe('upstream client backoff', () => {
  it('GIVEN an upstream answering 429 with Retry-After twice WHEN the client checks a manifest THEN it waits as told and gets the third answer', async () => {
    let calls = 0;
    const server = createServer((_req, res) => {
      calls++;
      if (calls <= 2) res.writeHead(429, { 'retry-after': '2' }).end();
      else res.writeHead(404).end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    running.push({ close: () => new Promise<void>((r) => server.close(() => r())) });
    const clock = new ManualClock({ sleepAdvances: true });
    const client = new RegistryClient({
      registry: `127.0.0.1:${(server.address() as AddressInfo).port}`,
      plainHttp: true,
      retries: 3,
      pause: (ms) => clock.sleep(ms),
    });

    const head = await client.headManifest('app', 'v1');

    expect(head).toBeUndefined();
    expect(calls).toBe(3);
    expect(clock.slept).toEqual([2000, 2000]);
  });
});
