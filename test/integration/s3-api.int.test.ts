import { randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultSlabs } from '../../server/storage/drivers/relay.js';
import { S3Driver } from '../../server/storage/drivers/s3.js';
import { Client, image, sha256 } from '../support/image.js';
import { startMinio, type MinioServer } from '../support/minio.js';
import { startTestRegistry, type TestRegistry } from '../support/server.js';
import { scratchDir } from '../support/scratch.js';

async function keys(d: S3Driver, prefix: string): Promise<string[]> {
  const out: string[] = [];
  for (const n of (await d.list(prefix)).names) {
    const isObject = await d.stat(prefix + n).then(
      () => true,
      () => false,
    );
    if (isObject) out.push(prefix + n);
    else out.push(...(await keys(d, `${prefix}${n}/`)));
  }
  return out;
}

describe('registry over real MinIO', () => {
  let minio: MinioServer;
  let reg: TestRegistry;
  let driver: S3Driver;
  beforeAll(async () => {
    minio = await startMinio();
    const cfg = { ...minio.config('api', 'berth'), redirect: true, partSizeMiB: 5 };
    await S3Driver.ensureBucket(cfg);
    driver = new S3Driver(cfg);
    reg = await startTestRegistry({ driver, config: { storage: { driver: 's3', s3: cfg } } });
  });
  afterAll(async () => {
    await reg?.close();
    await minio?.stop();
  });

  it('GIVEN redirects on WHEN a blob is pulled THEN 307 to a presigned URL that serves the exact bytes', async () => {
    const data = randomBytes(7 * 1024 * 1024 + 3);
    const push = await reg.fetch(`/v2/s3/redirect/blobs/uploads/?digest=${sha256(data)}`, {
      method: 'POST',
      body: data,
    });
    expect(push.status).toBe(201);
    const r = await reg.fetch(`/v2/s3/redirect/blobs/${sha256(data)}`);
    expect(r.status).toBe(307);
    const location = r.headers.get('location')!;
    expect(location.startsWith(minio.endpoint)).toBe(true);
    const direct = Buffer.from(await (await fetch(location)).arrayBuffer());
    expect(direct.equals(data)).toBe(true);
  });

  it("GIVEN a pushed image WHEN committed THEN each blob's bytes exist once, where the upload wrote them", async () => {
    const img = image()
      .layer(6 * 1024 * 1024)
      .layer(100)
      .build();
    const c = new Client((p, i) => reg.fetch(p, i));
    expect((await c.push('s3/image', 'v1', img)).status).toBe(201);
    const segments = (await keys(driver, 'segments/')).filter((k) => k.startsWith('segments/'));
    for (const b of img.blobs) {
      const desc = JSON.parse(
        (await driver.get(`blobs/sha256/${b.digest.slice(7, 9)}/${b.digest.slice(7)}`)).toString(),
      ) as {
        size: number;
        segments: { key: string }[];
      };
      expect(desc.size).toBe(b.bytes.length);
      for (const s of desc.segments) expect(segments).toContain(s.key);
    }
    // The bucket holds every pushed byte exactly once: no copy was made at commit.
    const total = (await Promise.all(segments.map((k) => driver.stat(k)))).reduce(
      (n, s) => n + s.size,
      0,
    );
    const redirectBlob = 7 * 1024 * 1024 + 3;
    expect(total).toBe(redirectBlob + img.blobs.reduce((n, b) => n + b.bytes.length, 0));
    const m = await reg.fetch('/v2/s3/image/manifests/v1');
    expect(Buffer.from(await m.arrayBuffer()).equals(img.body)).toBe(true);
  });

  it('GIVEN hostile requests WHEN sent THEN 4xx and the bucket is unchanged', async () => {
    // Pulls of the tests before are buffered: written now, not during the hostile requests.
    await reg.services.events?.pulls.flush();
    const before = await keys(driver, '');
    for (const [method, path] of [
      ['POST', '/v2/Bad/blobs/uploads/'],
      ['PUT', '/v2/s3/image/manifests/v1'],
      ['GET', '/v2/s3/image/blobs/sha256:abc'],
      ['GET', '/v2/s3/image/tags/list?n=-5'],
    ] as const) {
      const r = await reg.fetch(path, {
        method,
        body: method === 'PUT' ? '{"schemaVersion":1}' : undefined,
        headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
      });
      expect(r.status, `${method} ${path}`).toBeGreaterThanOrEqual(400);
      expect(r.status).toBeLessThan(500);
    }
    expect(await keys(driver, '')).toEqual(before);
  });
});

describe('blob reads relayed from real MinIO (no redirect)', () => {
  let minio: MinioServer;
  let reg: TestRegistry;
  let relayed = 0;
  beforeAll(async () => {
    minio = await startMinio();
    const cfg = { ...minio.config('relay', 'berth'), partSizeMiB: 5 };
    await S3Driver.ensureBucket(cfg);
    const driver = new S3Driver(cfg);
    const openSource = driver.openSource.bind(driver);
    driver.openSource = async (key, offset, length) => {
      const src = await openSource(key, offset, length);
      if (src) relayed++;
      return src;
    };
    reg = await startTestRegistry({ driver, config: { storage: { driver: 's3', s3: cfg } } });
  });
  afterAll(async () => {
    await reg?.close();
    await minio?.stop();
  });

  /** pushTwoSegments uploads `data` as a PATCH of its first `cut` bytes and a closing PUT. */
  async function pushTwoSegments(repo: string, data: Buffer, cut: number): Promise<string> {
    const start = await reg.fetch(`/v2/${repo}/blobs/uploads/`, { method: 'POST' });
    const patch = await reg.fetch(start.headers.get('location')!, {
      method: 'PATCH',
      body: data.subarray(0, cut),
      headers: { 'content-range': `0-${cut - 1}` },
    });
    expect(patch.status).toBe(202);
    const loc = patch.headers.get('location')!;
    const digest = sha256(data);
    const put = await reg.fetch(`${loc}&digest=${digest}`, {
      method: 'PUT',
      body: data.subarray(cut),
    });
    expect(put.status).toBe(201);
    return digest;
  }

  it('GIVEN a blob stored as two segments WHEN pulled whole and by a range across them THEN the exact bytes come back through the relay', async () => {
    const data = randomBytes(5 * 1024 * 1024 + 7);
    const cut = 3 * 1024 * 1024 + 1;
    const digest = await pushTwoSegments('s3/relay', data, cut);
    relayed = 0;

    const whole = await reg.fetch(`/v2/s3/relay/blobs/${digest}`);
    expect(whole.status).toBe(200);
    expect(whole.headers.get('content-length')).toBe(String(data.length));
    expect(whole.headers.get('docker-content-digest')).toBe(digest);
    expect(Buffer.from(await whole.arrayBuffer()).equals(data)).toBe(true);

    const from = cut - 1536 * 1024;
    const to = cut + 1024 * 1024 + 1000;
    const part = await reg.fetch(`/v2/s3/relay/blobs/${digest}`, {
      headers: { range: `bytes=${from}-${to}` },
    });
    expect(part.status).toBe(206);
    expect(part.headers.get('content-range')).toBe(`bytes ${from}-${to}/${data.length}`);
    expect(Buffer.from(await part.arrayBuffer()).equals(data.subarray(from, to + 1))).toBe(true);
    // Two segments each time, each read long enough to relay.
    expect(relayed).toBe(4);
    expect(defaultSlabs.inUse).toBe(0);
  });

  it('GIVEN a client that hangs up mid-blob WHEN it is gone THEN the relay lets go of its buffers and the next pull is whole', async () => {
    const data = randomBytes(24 * 1024 * 1024);
    const digest = sha256(data);
    const push = await reg.fetch(`/v2/s3/hangup/blobs/uploads/?digest=${digest}`, {
      method: 'POST',
      body: data,
    });
    expect(push.status).toBe(201);

    const abort = new AbortController();
    const r = await reg.fetch(`/v2/s3/hangup/blobs/${digest}`, { signal: abort.signal });
    const reader = r.body!.getReader();
    await reader.read();
    abort.abort();
    await reader.cancel().catch(() => undefined);
    for (let i = 0; i < 100 && defaultSlabs.inUse > 0; i++) {
      await new Promise((res) => setTimeout(res, 20));
    }
    expect(defaultSlabs.inUse).toBe(0);

    const again = await reg.fetch(`/v2/s3/hangup/blobs/${digest}`);
    expect(Buffer.from(await again.arrayBuffer()).equals(data)).toBe(true);
  });
});

describe('registry over real MinIO with a blob cache folder', () => {
  let minio: MinioServer;
  let reg: TestRegistry;
  let driver: S3Driver;
  let dir: string;
  beforeAll(async () => {
    minio = await startMinio();
    const cfg = { ...minio.config('cached', 'berth'), partSizeMiB: 5 };
    await S3Driver.ensureBucket(cfg);
    driver = new S3Driver(cfg);
    dir = scratchDir('berth-blob-cache-');
    reg = await startTestRegistry({
      driver,
      config: { storage: { driver: 's3', s3: cfg }, cache: { blobDir: dir, blobMaxGiB: 1 } },
    });
  });
  afterAll(async () => {
    await reg?.close();
    await minio?.stop();
  });

  it('GIVEN a blob pulled once WHEN its bytes vanish from the bucket THEN the next pull is still served whole, from the local copy', async () => {
    const data = randomBytes(6 * 1024 * 1024 + 11);
    const digest = sha256(data);
    const push = await reg.fetch(`/v2/cached/app/blobs/uploads/?digest=${digest}`, {
      method: 'POST',
      body: data,
    });
    expect(push.status).toBe(201);
    expect(readdirSync(dir)).toEqual(['.incoming']); // pushes are not copied

    const first = await reg.fetch(`/v2/cached/app/blobs/${digest}`);
    expect(first.status).toBe(200);
    expect(Buffer.from(await first.arrayBuffer()).equals(data)).toBe(true);
    for (let i = 0; i < 200 && readdirSync(dir).length < 2; i++) {
      await new Promise((r) => setTimeout(r, 25));
    }
    const [segment] = (await keys(driver, 'segments/')).filter((k) => k.startsWith('segments/'));
    expect(readdirSync(dir).sort()).toEqual(['.incoming', segment!.replaceAll('/', '~')]);

    // Behind the registry's back: only the local copy can answer now.
    await driver.delete(segment!);
    const again = await reg.fetch(`/v2/cached/app/blobs/${digest}`);
    expect(again.status).toBe(200);
    expect(Buffer.from(await again.arrayBuffer()).equals(data)).toBe(true);
    const ranged = await reg.fetch(`/v2/cached/app/blobs/${digest}`, {
      headers: { range: 'bytes=1048576-3145727' },
    });
    expect(ranged.status).toBe(206);
    expect(Buffer.from(await ranged.arrayBuffer()).equals(data.subarray(1048576, 3145728))).toBe(
      true,
    );
  });
});
