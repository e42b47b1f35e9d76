import { createHash, randomBytes } from 'node:crypto';
import { PassThrough, Readable } from 'node:stream';
import { Client } from 'minio';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { S3Config } from '../../../../server/config/types.js';
import { PathNotFoundError } from '../../../../server/storage/driver.js';
import { S3Driver } from '../../../../server/storage/drivers/s3.js';
import { sharedMinio, type MinioServer } from '../../../support/minio.js';
import { CollectingSink, describeStorageDriver } from '../driver-contract.js';
import { defaultSlabs } from '../../../../server/storage/drivers/relay.js';
import { SigV4 } from '../../../../server/storage/drivers/sigv4.js';

const MiB = 1024 * 1024;
const BUCKET = 'berth-s3-driver-test';

let minio: MinioServer;
let raw: Client;

beforeAll(async () => {
  minio = await sharedMinio();
  await S3Driver.ensureBucket(minio.config(BUCKET));
  raw = new Client({
    endPoint: '127.0.0.1',
    port: minio.port,
    useSSL: false,
    accessKey: minio.accessKey,
    secretKey: minio.secretKey,
    region: 'us-east-1',
  });
}, 120_000);

afterAll(async () => {
  await minio?.stop();
});

/** fresh returns a config on a new random key prefix of the shared bucket. */
function fresh(over: Partial<S3Config> = {}): S3Config {
  return { ...minio.config(BUCKET, `t-${randomBytes(6).toString('hex')}`), ...over };
}

// 1.5 GiB + 7 streamed through 16 MiB parts: the "multi-GiB" class, odd-sized last part.
describeStorageDriver('s3', {
  make: async () => new S3Driver(fresh()),
  bigBytes: 1536 * MiB + 7,
  abortsMultipart: true,
});

async function incompleteUploads(
  key: string,
): Promise<{ key: string; uploadId: string; size: number }[]> {
  const out: { key: string; uploadId: string; size: number }[] = [];
  for await (const u of raw.listIncompleteUploads(BUCKET, key, true) as AsyncIterable<{
    key: string;
    uploadId: string;
    size: number;
  }>) {
    out.push(u);
  }
  return out;
}

async function rawKeys(prefix: string): Promise<string[]> {
  const out: string[] = [];
  for await (const o of raw.listObjectsV2(BUCKET, prefix, true) as AsyncIterable<{
    name?: string;
  }>) {
    if (o.name !== undefined) out.push(o.name);
  }
  return out;
}

async function until(what: string, check: () => Promise<boolean>, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function sha(stream: Readable): Promise<string> {
  const h = createHash('sha256');
  for await (const c of stream) h.update(c as Buffer);
  return h.digest('hex');
}

describe('S3Driver on MinIO', () => {
  it('GIVEN 5 MiB parts WHEN a 23 MiB stream in odd-sized chunks is written THEN it spans 5 parts and reads back intact', async () => {
    const cfg = fresh({ partSizeMiB: 5 });
    const d = new S3Driver(cfg);
    const size = 23 * MiB;
    const sent = createHash('sha256');
    const chunks = function* () {
      let left = size;
      while (left > 0) {
        const n = Math.min(left, 777_777);
        const b = randomBytes(n);
        sent.update(b);
        left -= n;
        yield b;
      }
    };

    const n = await d.writeStream('a/multi', Readable.from(chunks()));

    expect(n).toBe(size);
    expect((await d.stat('a/multi')).size).toBe(size);
    expect(await sha(await d.read('a/multi'))).toBe(sent.digest('hex'));
    // A multipart object's ETag is "<md5 of part md5s>-<part count>".
    expect((await raw.statObject(BUCKET, `${cfg.prefix}/a/multi`)).etag).toMatch(/-5$/);
    expect(await rawKeys(`${cfg.prefix}/.multipart/`)).toEqual([]);
    await d.deletePrefix('a/');
    await d.close();
  });

  it('GIVEN a 16 MiB part budget WHEN six 23 MiB streams are written at once THEN they share it with 5 MiB parts uploaded one at a time, and all read back intact', async () => {
    const cfg = fresh({ partSizeMiB: 16, bufferMiB: 16 });
    const d = new S3Driver(cfg);
    const size = 23 * MiB;
    const digests: string[] = [];
    const stream = (i: number) => {
      const sent = createHash('sha256');
      return Readable.from(
        (function* () {
          let left = size;
          while (left > 0) {
            const b = randomBytes(Math.min(left, 300_001));
            sent.update(b);
            left -= b.length;
            yield b;
          }
          digests[i] = sent.digest('hex');
        })(),
      );
    };

    const sizes = await Promise.all(
      Array.from({ length: 6 }, (_, i) => d.writeStream(`par/${i}`, stream(i))),
    );

    expect(sizes).toEqual(Array(6).fill(size));
    for (let i = 0; i < 6; i++) {
      expect(await sha(await d.read(`par/${i}`)), `stream ${i}`).toBe(digests[i]);
      // Six writers on 16 MiB: the S3 minimum of 5 MiB per part, so 23 MiB takes 5 parts.
      expect((await raw.statObject(BUCKET, `${cfg.prefix}/par/${i}`)).etag).toMatch(/-5$/);
    }
    expect(await rawKeys(`${cfg.prefix}/.multipart/`)).toEqual([]);
    await d.deletePrefix('par/');
    await d.close();
  });

  it('GIVEN a multipart write under way WHEN its source fails THEN the write rejects and no object, upload or journal entry is left', async () => {
    const cfg = fresh({ partSizeMiB: 5 });
    const d = new S3Driver(cfg);
    const key = `${cfg.prefix}/a/partial`;
    let sawUpload = false;
    async function* failing() {
      for (let i = 0; i < 12; i++) yield randomBytes(MiB);
      await until('the multipart upload to start', async () => {
        sawUpload = (await incompleteUploads(key)).length > 0;
        return sawUpload;
      });
      throw new Error('client went away');
    }

    await expect(d.writeStream('a/partial', Readable.from(failing()))).rejects.toThrow(
      'client went away',
    );

    expect(sawUpload).toBe(true);
    await expect(d.stat('a/partial')).rejects.toBeInstanceOf(PathNotFoundError);
    expect(await incompleteUploads(key)).toEqual([]);
    expect(await rawKeys(`${cfg.prefix}/`)).toEqual([]);
    await d.close();
  });

  it('GIVEN a writer stalled mid-upload and a MinIO restart WHEN stale uploads are aborted THEN the journal finds it and the writer then fails cleanly', async () => {
    const cfg = fresh({ partSizeMiB: 5 });
    const d = new S3Driver(cfg);
    const key = `${cfg.prefix}/a/stalled`;
    const source = new PassThrough();
    for (let i = 0; i < 11; i++) source.write(randomBytes(MiB));
    const writing = d.writeStream('a/stalled', source);
    writing.catch(() => undefined);
    // Two 5 MiB parts stored, the writer now waits for bytes that never come (a crash).
    await until('two parts to be stored', async () => {
      const ups = await incompleteUploads(key);
      return ups.length === 1 && ups[0]!.size >= 10 * MiB;
    });
    // MinIO forgets its in-memory list of uploads when it restarts; the journal does not.
    await minio.restart();

    expect(await d.abortStaleMultipartUploads(new Date(Date.now() - 3_600_000))).toBe(0);
    expect(await incompleteUploads(key)).toHaveLength(1);
    const aborted = await d.abortStaleMultipartUploads(new Date(Date.now() + 1000));

    expect(aborted).toBe(1);
    expect(await incompleteUploads(key)).toEqual([]);
    source.destroy(new Error('writer crashed'));
    await expect(writing).rejects.toThrow('writer crashed');
    await expect(d.stat('a/stalled')).rejects.toBeInstanceOf(PathNotFoundError);
    expect(await rawKeys(`${cfg.prefix}/`)).toEqual([]);
    await d.close();
  });

  it('GIVEN unfinished uploads inside and outside the prefix, not in the journal WHEN stale uploads are aborted THEN only the one inside is, and only once old enough', async () => {
    const cfg = fresh();
    const d = new S3Driver(cfg);
    const inside = `${cfg.prefix}/a/orphan`;
    const outside = `${cfg.prefix}-other/a/orphan`;
    const insideId = await raw.initiateNewMultipartUpload(BUCKET, inside, {});
    const outsideId = await raw.initiateNewMultipartUpload(BUCKET, outside, {});
    try {
      expect(await d.abortStaleMultipartUploads(new Date(Date.now() - 3_600_000))).toBe(0);
      expect(await incompleteUploads(inside)).toHaveLength(1);

      const aborted = await d.abortStaleMultipartUploads(new Date(Date.now() + 1000));

      expect(aborted).toBe(1);
      expect(await incompleteUploads(inside)).toEqual([]);
      expect((await incompleteUploads(outside)).map((u) => u.uploadId)).toEqual([outsideId]);
    } finally {
      await raw.abortMultipartUpload(BUCKET, inside, insideId).catch(() => undefined);
      await raw.abortMultipartUpload(BUCKET, outside, outsideId);
      await d.close();
    }
  });

  it('GIVEN an object WHEN presigned THEN a plain fetch GETs its bytes, and a tampered URL is refused', async () => {
    const d = new S3Driver(fresh());
    await d.put('a/p', 'presigned body');

    const url = await d.presignGet('a/p', 60);

    const res = await fetch(url);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('presigned body');
    const tampered = url.replace(
      /(X-Amz-Signature=[0-9a-f]*)([0-9a-f])/,
      (_, head: string, last: string) => head + (last === '0' ? '1' : '0'),
    );
    expect(tampered).not.toBe(url);
    const bad = await fetch(tampered);
    await bad.arrayBuffer();
    expect(bad.status).toBe(403);
    await d.deletePrefix('a/');
    await d.close();
  });

  it('GIVEN a bucket that does not exist WHEN pinged THEN it fails naming the bucket', async () => {
    const d = new S3Driver(minio.config('berth-no-such-bucket'));

    await expect(d.ping()).rejects.toThrow(/bucket "berth-no-such-bucket" does not exist/);
    await d.close();
  });

  it('GIVEN an endpoint nobody listens on WHEN pinged THEN it fails naming the endpoint', async () => {
    const d = new S3Driver({ ...fresh(), endpoint: 'http://127.0.0.1:9' });

    await expect(d.ping()).rejects.toThrow(/http:\/\/127\.0\.0\.1:9 is not usable/);
    await d.close();
  });

  it('GIVEN a malformed endpoint, prefix or part size WHEN a driver is made THEN it throws naming the problem', () => {
    const cfg = fresh();

    expect(() => new S3Driver({ ...cfg, endpoint: '127.0.0.1:9000' })).toThrow(/not a URL/);
    expect(() => new S3Driver({ ...cfg, endpoint: 'minio:9000' })).toThrow(/http/);
    expect(() => new S3Driver({ ...cfg, endpoint: 'ftp://minio:9000' })).toThrow(/http/);
    expect(() => new S3Driver({ ...cfg, endpoint: 'http://minio:9000/bucket' })).toThrow(
      /scheme:\/\/host\[:port\] only/,
    );
    expect(() => new S3Driver({ ...cfg, prefix: 'a/../b' })).toThrow(/invalid storage path/);
    expect(() => new S3Driver({ ...cfg, partSizeMiB: 4 })).toThrow(/partSizeMiB/);
    expect(new S3Driver({ ...cfg, endpoint: 'https://[::1]:9443', prefix: '/x/y/' }).name).toBe(
      's3',
    );
  });

  it('GIVEN a driver in use WHEN MinIO restarts THEN the same driver keeps reading and writing', async () => {
    const d = new S3Driver(fresh({ partSizeMiB: 5 }));
    await d.put('a/before', 'kept');
    expect((await d.get('a/before')).toString()).toBe('kept');

    await minio.restart();

    await d.ping();
    expect((await d.get('a/before')).toString()).toBe('kept');
    const body = randomBytes(12 * MiB);
    expect(await d.writeStream('a/after', Readable.from([body]))).toBe(body.length);
    expect((await d.get('a/after')).equals(body)).toBe(true);
    expect((await d.list('a/')).names).toEqual(['after', 'before']);
    await d.deletePrefix('a/');
    await d.close();
  });

  it('GIVEN small objects under every key character allowed WHEN read and listed THEN the driver signs its own GETs, names list back exactly, and a missing object is PathNotFoundError', async () => {
    const d = new S3Driver(fresh());
    const keys = ['a/b.c', 'x,y=z@w+v/_-.9', 'UP/Case.Tag+1'];
    for (const k of keys) await d.put(k, `v ${k}`);
    for (const k of keys) expect((await d.get(k)).toString()).toBe(`v ${k}`);
    expect(d.ownGets).toBe(keys.length);
    // Listings read MinIO's url-encoded names back exactly.
    expect((await d.list('')).names).toEqual(['UP', 'a', 'x,y=z@w+v']);
    expect((await d.list('x,y=z@w+v/')).names).toEqual(['_-.9']);
    expect((await d.list('UP/', { limit: 1 })).names).toEqual(['Case.Tag+1']);
    await expect(d.get('a/none')).rejects.toBeInstanceOf(PathNotFoundError);
    expect(d.ownGets).toBe(keys.length);
    // A versioned read too, with a version its compare-and-set accepts.
    const v = await d.getVersioned(keys[0]!);
    expect(v.data.toString()).toBe(`v ${keys[0]}`);
    expect(d.ownGets).toBe(keys.length + 1);
    expect(await d.putIfVersion(keys[0]!, 'moved', v.version)).toBe(true);
    expect(await d.putIfVersion(keys[0]!, 'again', v.version)).toBe(false);
    await expect(d.getVersioned('a/none')).rejects.toBeInstanceOf(PathNotFoundError);
    for (const k of keys) await d.delete(k);
    await d.close();
  });

  it('GIVEN storage refusing the driver signature WHEN read THEN minio-js reads instead, and the own GETs stay off', async () => {
    const d = new S3Driver(fresh());
    await d.put('k/one', 'one');
    const cfg = minio.config(BUCKET);
    Reflect.set(d, 'signer', new SigV4(cfg.accessKey, 'not-the-secret', cfg.region));
    expect((await d.get('k/one')).toString()).toBe('one');
    expect((await d.get('k/one')).toString()).toBe('one');
    expect(d.ownGets).toBe(0);
    expect(Reflect.get(d, 'signer')).toBeUndefined();
    await d.delete('k/one');
    await d.close();
  });

  it('GIVEN a relayed read that left its connection open WHEN MinIO restarts THEN the next relayed read succeeds on a new one', async () => {
    const d = new S3Driver(fresh());
    const body = randomBytes(3 * MiB);
    await d.writeStream('a/relayed', Readable.from([body]), body.length);
    const first = new CollectingSink();
    await (await d.openSource('a/relayed', 0, body.length))!.copyTo(first);
    expect(first.bytes().equals(body)).toBe(true);

    await minio.restart();
    await d.ping();

    const again = new CollectingSink();
    const src = await d.openSource('a/relayed', MiB, 2 * MiB);
    expect(src).toBeDefined();
    await src!.copyTo(again);
    expect(again.bytes().equals(body.subarray(MiB))).toBe(true);
    expect(defaultSlabs.inUse).toBe(0);
    await d.deletePrefix('a/');
    await d.close();
  });

  it('GIVEN names whose S3 order differs from name order WHEN paged THEN pages follow name order', async () => {
    // S3 sorts directory "math" as "math/", after "math-voila" and "math.x" ('-' and '.'
    // are below '/'); names sort "math" first (distribution#4903).
    const d = new S3Driver(fresh());
    await Promise.all(
      ['mat/x', 'math/x', 'math-voila/x', 'math.x/y', 'math-obj', 'math+z', 'n'].map((k) =>
        d.put(`r/${k}`, '1'),
      ),
    );
    const all = ['mat', 'math', 'math+z', 'math-obj', 'math-voila', 'math.x', 'n'];
    expect((await d.list('r/')).names).toEqual(all);

    for (const limit of [1, 2, 3, 4]) {
      const seen: string[] = [];
      let startAfter: string | undefined;
      for (;;) {
        const page = await d.list('r/', { startAfter, limit });
        seen.push(...page.names);
        if (!page.truncated) break;
        startAfter = page.names[page.names.length - 1];
      }
      expect(seen, `limit ${limit}`).toEqual(all);
    }
    await d.deletePrefix('r/');
    await d.close();
  });
});
