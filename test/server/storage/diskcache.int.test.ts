import { randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { S3Config } from '../../../server/config/types.js';
import { MeteredDriver } from '../../../server/metrics/driver.js';
import { DiskCachingDriver } from '../../../server/storage/diskcache.js';
import { S3Driver } from '../../../server/storage/drivers/s3.js';
import { Paths } from '../../../server/storage/paths.js';
import { sharedMinio, type MinioServer } from '../../support/minio.js';
import { CollectingSink, describeStorageDriver } from './driver-contract.js';
import { scratchDir } from '../../support/scratch.js';

const MiB = 1024 * 1024;
const BUCKET = 'berth-disk-cache-test';
let minio: MinioServer;

beforeAll(async () => {
  minio = await sharedMinio();
  await S3Driver.ensureBucket(minio.config(BUCKET));
}, 120_000);

afterAll(async () => {
  await minio?.stop();
});

function fresh(): S3Config {
  return minio.config(BUCKET, `t-${randomBytes(6).toString('hex')}`);
}
const tempDir = () => scratchDir('berth-blobcache-');

describeStorageDriver('disk cache over s3', {
  make: async () =>
    new DiskCachingDriver(new S3Driver(fresh()), {
      dir: tempDir(),
      maxBytes: 1 << 30,
      cacheable: () => true,
    }),
  bigBytes: 64 * MiB + 7,
  abortsMultipart: true,
});

/** setup is the cache over S3 with every storage call counted by action. */
function setup(writeBehindBytes?: number, copyAfterBytes?: number) {
  const calls = new Map<string, number>();
  const s3 = new MeteredDriver(new S3Driver(fresh()), (_d, action) =>
    calls.set(action, (calls.get(action) ?? 0) + 1),
  );
  const dir = tempDir();
  const d = new DiskCachingDriver(s3, {
    dir,
    maxBytes: 1 << 30,
    cacheable: Paths.isSegment,
    writeBehindBytes,
    copyAfterBytes,
  });
  const reads = () => (calls.get('OpenSource') ?? 0) + (calls.get('Reader') ?? 0);
  return { d, dir, reads };
}

async function pull(d: DiskCachingDriver, key: string, offset: number, length: number) {
  const src = await d.openSource!(key, offset, length);
  expect(src).toBeDefined();
  const sink = new CollectingSink();
  await src!.copyTo(sink);
  return sink.bytes();
}

async function until(what: string, cond: () => Promise<boolean>) {
  for (let i = 0; i < 1000 && !(await cond()); i++) await new Promise((r) => setTimeout(r, 20));
  expect(await cond(), what).toBe(true);
}

describe('DiskCachingDriver over S3Driver on MinIO', () => {
  it('GIVEN a segment in MinIO WHEN pulled three times THEN the first reads MinIO and copies it, the others read only the file', async () => {
    const { d, dir, reads } = setup();
    const key = 'segments/u-1/0-abcd';
    const bytes = randomBytes(12 * MiB + 5);
    await d.writeStream(key, Readable.from([bytes]), bytes.length);
    expect(readdirSync(join(dir, '.incoming'))).toEqual([]); // writes are not copied
    const before = reads();
    expect((await pull(d, key, 0, bytes.length)).equals(bytes)).toBe(true);
    expect(reads()).toBe(before + 1);
    await until('the copy is kept', async () => (await d.cached(key)) === bytes.length);
    expect((await pull(d, key, 0, bytes.length)).equals(bytes)).toBe(true);
    expect((await pull(d, key, 5 * MiB, 2 * MiB)).equals(bytes.subarray(5 * MiB, 7 * MiB))).toBe(
      true,
    );
    expect(reads()).toBe(before + 1);
    await d.delete(key);
    expect(readdirSync(dir)).toEqual(['.incoming']);
  });

  it('GIVEN a disk that falls behind the client WHEN a segment is pulled THEN the client gets every byte unpaced and the rest is read from MinIO in the background', async () => {
    // No write-behind at all: the copy stops at once and a background read completes it.
    const { d, reads } = setup(0);
    const key = 'segments/u-2/0-abcd';
    // Big enough that the background read pauses on the file's writes many times (they
    // complete out of order on the thread pool).
    const bytes = randomBytes(48 * MiB + 1);
    await d.writeStream(key, Readable.from([bytes]), bytes.length);
    const before = reads();
    expect((await pull(d, key, 0, bytes.length)).equals(bytes)).toBe(true);
    await until('the copy is completed', async () => (await d.cached(key)) === bytes.length);
    expect(reads()).toBe(before + 2);
    expect((await pull(d, key, 0, bytes.length)).equals(bytes)).toBe(true);
    expect(reads()).toBe(before + 2);
  });

  it('GIVEN a segment longer than copyAfterBytes WHEN pulled THEN the client is served with no file written, then the copy is read from MinIO and kept, and later pulls read only the file', async () => {
    const { d, dir, reads } = setup(undefined, 16 * MiB);
    const key = 'segments/u-3/0-abcd';
    const bytes = randomBytes(40 * MiB + 3);
    await d.writeStream(key, Readable.from([bytes]), bytes.length);
    const before = reads();
    const src = await d.openSource!(key, 0, bytes.length);
    let written = 0;
    const sink = new CollectingSink();
    const write = sink.write.bind(sink);
    sink.write = (chunk, cb) => {
      written += readdirSync(join(dir, '.incoming')).length;
      return write(chunk, cb);
    };
    await src!.copyTo(sink);
    expect(sink.bytes().equals(bytes)).toBe(true);
    expect(written).toBe(0);
    await until('the copy is kept', async () => (await d.cached(key)) === bytes.length);
    expect(reads()).toBe(before + 2);
    expect((await pull(d, key, 0, bytes.length)).equals(bytes)).toBe(true);
    expect((await pull(d, key, 7, 3 * MiB)).equals(bytes.subarray(7, 7 + 3 * MiB))).toBe(true);
    expect(reads()).toBe(before + 2);
  });
});
