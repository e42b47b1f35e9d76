import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InMemoryDriver } from '../../../server/storage/drivers/inmemory.js';
import { Client, image } from '../../support/image.js';
import { startTestRegistry, type TestRegistry } from '../../support/server.js';

/** CountingDriver records every key written (put, putIfAbsent, writeStream). */
class CountingDriver extends InMemoryDriver {
  readonly writes: string[] = [];
  override async put(key: string, data: Buffer | string): Promise<void> {
    this.writes.push(key);
    return super.put(key, data);
  }
  override async putIfAbsent(key: string, data: Buffer | string): Promise<boolean> {
    this.writes.push(key);
    return super.putIfAbsent(key, data);
  }
}

describe('storage writes the events add', () => {
  let reg: TestRegistry;
  let driver: CountingDriver;
  const img = image().layer(1000).build();
  const layer = img.blobs[1]!;

  beforeAll(async () => {
    driver = new CountingDriver();
    // A pull flush interval far beyond the test, so only an explicit flush writes pulls.
    reg = await startTestRegistry({
      driver,
      config: { notifications: { pullFlushMillis: 3_600_000 } },
    });
    const client = new Client((p, i) => reg.fetch(p, i));
    expect((await client.push('budget/app', 'v1', img)).status).toBe(201);
  });
  afterAll(async () => {
    await reg.close();
  });

  it('GIVEN a pushed image WHEN its manifest and blob are pulled (GET and HEAD) THEN the requests write nothing', async () => {
    const before = driver.writes.length;
    for (const [path, method] of [
      ['/v2/budget/app/manifests/v1', 'GET'],
      ['/v2/budget/app/manifests/v1', 'HEAD'],
      [`/v2/budget/app/manifests/${img.digest}`, 'GET'],
      [`/v2/budget/app/blobs/${layer.digest}`, 'GET'],
      [`/v2/budget/app/blobs/${layer.digest}`, 'HEAD'],
    ] as const) {
      const r = await reg.fetch(path, { method });
      await r.arrayBuffer();
      expect(r.status, `${method} ${path}`).toBe(200);
    }
    expect(driver.writes.slice(before)).toEqual([]);
    await reg.services.events!.pulls.flush();
    const flushed = driver.writes.slice(before);
    expect(flushed).toHaveLength(1);
    expect(flushed[0]).toMatch(/^events\/log\//);
  });

  it('GIVEN a manifest PUT with a tag and two extra ?tag= WHEN it succeeds THEN it wrote exactly one outbox entry', async () => {
    const before = driver.writes.length;
    const r = await reg.fetch('/v2/budget/app/manifests/v2?tag=v3&tag=v4', {
      method: 'PUT',
      body: img.body,
      headers: { 'content-type': img.mediaType },
    });
    expect(r.status).toBe(201);
    const outbox = driver.writes.slice(before).filter((k) => k.startsWith('events/'));
    expect(outbox).toHaveLength(1);
    const entry = JSON.parse((await driver.get(outbox[0]!)).toString()) as {
      events: { action: string; target: { tag?: string } }[];
    };
    expect(entry.events.map((e) => `${e.action}:${e.target.tag}`)).toEqual([
      'push:v2',
      'push:v3',
      'push:v4',
    ]);
  });

  it('GIVEN a request that fails WHEN it is answered THEN no outbox entry was written', async () => {
    const before = driver.writes.length;
    const r = await reg.fetch('/v2/budget/app/manifests/v9', {
      method: 'PUT',
      body: '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000","size":1},"layers":[]}',
      headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
    });
    expect(r.status).toBe(400);
    expect(driver.writes.slice(before)).toEqual([]);
  });
});
