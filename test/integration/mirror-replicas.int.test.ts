import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { RegistryClient } from '../../server/client/registry.js';
import { S3Driver } from '../../server/storage/drivers/s3.js';
import { image, type Built } from '../support/image.js';
import { berthS3Env, sharedMinio, type MinioServer } from '../support/minio.js';
import { spawnBerth, type BerthProcess } from '../support/process.js';
import {
  startCountingProxy,
  startDistribution,
  type CountingProxy,
  type Distribution,
} from '../support/upstream.js';

const sha = (b: ArrayBuffer) =>
  `sha256:${createHash('sha256').update(Buffer.from(b)).digest('hex')}`;

/** until polls `ok` every 50 ms for up to `ms`. */
async function until(ok: () => boolean, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('pull-through cache: one upstream blob fetch across two replicas on one MinIO bucket', () => {
  let minio: MinioServer;
  let dist: Distribution;
  let proxy: CountingProxy;
  let a: BerthProcess;
  let b: BerthProcess;
  let work: string;

  const pushToDist = async (repo: string, m: Built) => {
    const c = new RegistryClient({ registry: dist.host, plainHttp: true });
    for (const bl of m.blobs)
      await c.pushBlob(repo, bl.digest, bl.bytes.length, () => Readable.from([bl.bytes]));
    await c.putManifest(repo, 'v1', m.mediaType, m.body);
  };

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'berth-mirror-replicas-'));
    minio = await sharedMinio();
    const cfg = minio.config(`mr-${randomBytes(4).toString('hex')}`);
    await S3Driver.ensureBucket(cfg);
    dist = await startDistribution();
    proxy = await startCountingProxy(dist.url);
    const file = join(work, 'berth.yaml');
    writeFileSync(
      file,
      stringify({
        http: { secret: 'shared-between-replicas' },
        mirrors: { upstreams: [{ name: 'dist', url: `http://${proxy.host}`, prefix: 'dist' }] },
      }),
    );
    const env = { ...berthS3Env(cfg), BERTH_CONFIG: file };
    [a, b] = await Promise.all([spawnBerth(env), spawnBerth(env)]);
  }, 180_000);

  afterAll(async () => {
    await a?.kill('SIGKILL');
    await b?.kill('SIGKILL');
    await proxy?.close();
    await dist?.stop();
    await minio?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('GIVEN a blob only upstream WHEN 50 pulls of it start at once, split over both replicas THEN the upstream serves it once and every pull gets its bytes', async () => {
    const m = image()
      .layer(6 << 20)
      .build();
    await pushToDist('team/big', m);
    const layer = m.blobs[1]!;

    const pulls = Array.from({ length: 50 }, (_, i) =>
      fetch(`${(i % 2 ? a : b).url}/v2/dist/team/big/blobs/${layer.digest}`).then(async (r) => {
        expect(r.status).toBe(200);
        return sha(await r.arrayBuffer());
      }),
    );
    const got = await Promise.all(pulls);

    expect(new Set(got)).toEqual(new Set([layer.digest]));
    expect(proxy.blobGets.get(layer.digest)).toBe(1);
  });

  it('GIVEN replica a fetching a blob that b waits for WHEN a is killed mid-fetch THEN b takes the fetch over once the marker expires and its client gets the whole blob', async () => {
    const m = image()
      .layer(4 << 20)
      .build();
    await pushToDist('team/killed', m);
    const layer = m.blobs[1]!;
    const path = `/v2/dist/team/killed/blobs/${layer.digest}`;
    proxy.mode = 'stall';

    // a's client is cut when a dies.
    const fromA = fetch(`${a.url}${path}`)
      .then((r) => r.arrayBuffer())
      .catch(() => undefined);
    await until(() => proxy.blobGets.get(layer.digest) === 1);
    const started = Date.now();
    const fromB = fetch(`${b.url}${path}`).then(async (r) => ({
      status: r.status,
      digest: sha(await r.arrayBuffer()),
    }));
    await new Promise((r) => setTimeout(r, 500));
    expect(proxy.blobGets.get(layer.digest)).toBe(1);
    await a.kill('SIGKILL');
    proxy.mode = 'pass';

    expect(await fromB).toEqual({ status: 200, digest: layer.digest });
    expect(proxy.blobGets.get(layer.digest)).toBe(2);
    // b waited for the marker of the dead holder to expire (10 s TTL), not for its own fetch.
    expect(Date.now() - started).toBeLessThan(20_000);
    await fromA;
  }, 60_000);
});
