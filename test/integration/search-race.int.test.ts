import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listAll } from '../../server/storage/driver.js';
import { S3Driver } from '../../server/storage/drivers/s3.js';
import { Paths } from '../../server/storage/paths.js';
import { sharedMinio, type MinioServer } from '../support/minio.js';
import { indexed, indexViolations } from '../support/search.js';
import { fixture, mulberry32, race, randomOps } from '../support/tag-race.js';

const BUCKET = 'berth-search-race';
let minio: MinioServer;

beforeAll(async () => {
  minio = await sharedMinio();
  await S3Driver.ensureBucket(minio.config(BUCKET));
}, 120_000);

afterAll(async () => {
  await minio?.stop();
});

describe('search index races on MinIO', () => {
  it('GIVEN two replicas on one MinIO bucket WHEN hundreds of racing tag moves, untags, manifest deletes and pushes run THEN no request fails and the search document ends equal to the tags and manifests stored', async () => {
    const cfg = minio.config(BUCKET, `race-${randomBytes(4).toString('hex')}`);
    const drivers = [new S3Driver(cfg), new S3Driver(cfg)];
    const both = drivers.map((d) => indexed(d));
    const replicas = both.map((r) => r.registry);
    const f = fixture('race/search-s3', 4, 5);
    for (const m of f.manifests) await replicas[0]!.repository(f.repo).put(m.body, m.mediaType);

    const failures = await race(replicas, f, randomOps(f, 300, mulberry32(31)), 16);
    await Promise.all(both.map((r) => r.search.settled()));

    expect(failures).toEqual([]);
    expect(await listAll(drivers[0]!, Paths.searchPendingRoot())).toEqual([]);
    expect(await indexViolations(drivers[0]!, f)).toEqual([]);
    for (const d of drivers) await d.close?.();
  });
});
