import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Registry } from '../../server/registry/repository.js';
import { S3Driver } from '../../server/storage/drivers/s3.js';
import { sharedMinio, type MinioServer } from '../support/minio.js';
import { fixture, mulberry32, race, randomOps, tagViolations } from '../support/tag-race.js';
import { directViews } from '../../server/storage/views.js';

const BUCKET = 'berth-tag-race';
let minio: MinioServer;

beforeAll(async () => {
  minio = await sharedMinio();
  await S3Driver.ensureBucket(minio.config(BUCKET));
}, 120_000);

afterAll(async () => {
  await minio?.stop();
});

describe('tag races on MinIO', () => {
  it('GIVEN two replicas on one MinIO bucket WHEN hundreds of racing tag moves, untags, manifest deletes and pushes run THEN no request fails and every tag invariant holds', async () => {
    const cfg = minio.config(BUCKET, `race-${randomBytes(4).toString('hex')}`);
    const drivers = [new S3Driver(cfg), new S3Driver(cfg)];
    const replicas = drivers.map((d) => new Registry(directViews(d), { allowSparse: true }));
    const f = fixture('race/s3', 4, 3);
    for (const m of f.manifests) await replicas[0]!.repository(f.repo).put(m.body, m.mediaType);

    const failures = await race(replicas, f, randomOps(f, 400, mulberry32(15)), 24);

    expect(failures).toEqual([]);
    expect(await tagViolations(drivers[0]!, f)).toEqual([]);
    for (const d of drivers) await d.close?.();
  });
});
