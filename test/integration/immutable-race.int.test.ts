import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { S3Driver } from '../../server/storage/drivers/s3.js';
import { image } from '../support/image.js';
import {
  ciClient,
  ciHeaders,
  immutableConfig,
  pushEvents,
  racePushes,
} from '../support/immutable-race.js';
import { sharedMinio, type MinioServer } from '../support/minio.js';
import { startTestRegistry } from '../support/server.js';

const BUCKET = 'berth-immutable-race';
let minio: MinioServer;

beforeAll(async () => {
  minio = await sharedMinio();
  await S3Driver.ensureBucket(minio.config(BUCKET));
}, 120_000);

afterAll(async () => {
  await minio?.stop();
});

describe('immutable tags on MinIO', () => {
  it('GIVEN two replicas on one bucket and an absent immutable tag WHEN twelve different manifests are pushed to it at once through both THEN exactly one gets 201, the others 403, and only the winner is stored and announced', async () => {
    const cfg = minio.config(BUCKET, `imm-${randomBytes(4).toString('hex')}`);
    const driver = new S3Driver(cfg);
    const regs = await Promise.all(
      [0, 1].map(() => startTestRegistry({ config: immutableConfig(), driver: new S3Driver(cfg) })),
    );
    try {
      const results = (
        await Promise.all(regs.map((reg) => racePushes(reg, 'prod/race', 'v1', 6)))
      ).flat();

      expect(results.map((r) => r.status).sort()).toEqual([201, ...Array<number>(11).fill(403)]);
      const winner = results.find((r) => r.status === 201)!.image.digest;
      const got = await regs[0]!.fetch('/v2/prod/race/manifests/v1', { headers: ciHeaders });
      expect(got.headers.get('docker-content-digest')).toBe(winner);
      for (const r of results.filter((x) => x.status === 403)) {
        const byDigest = await regs[1]!.fetch(`/v2/prod/race/manifests/${r.image.digest}`, {
          headers: ciHeaders,
        });
        expect(byDigest.status).toBe(404);
      }
      expect(await pushEvents(driver, 'prod/race')).toEqual([winner]);
    } finally {
      await Promise.all(regs.map((r) => r.close()));
      await driver.close?.();
    }
  });

  it('GIVEN two replicas on one bucket WHEN manifest DELETEs through one race re-pushes of the same manifests to an immutable tag through the other THEN every push gets 201 and its tag still names its manifest, and no delete fence is left', async () => {
    const cfg = minio.config(BUCKET, `imm-del-${randomBytes(4).toString('hex')}`);
    const driver = new S3Driver(cfg);
    const regs = await Promise.all(
      [0, 1].map(() => startTestRegistry({ config: immutableConfig(), driver: new S3Driver(cfg) })),
    );
    try {
      const pusher = ciClient(regs[1]!);
      const images = Array.from({ length: 12 }, () => image().layer(8).build());
      for (const [i, img] of images.entries()) {
        expect((await pusher.push('prod/del', `build-${i}`, img)).status).toBe(201);
      }

      const outcomes = await Promise.all(
        images.map(async (img, i) => {
          const [del, push] = await Promise.all([
            regs[0]!.fetch(`/v2/prod/del/manifests/${img.digest}`, {
              method: 'DELETE',
              headers: ciHeaders,
            }),
            pusher.pushManifest('prod/del', `v${i}`, img),
          ]);
          await Promise.all([del.arrayBuffer(), push.arrayBuffer()]);
          return { img, tag: `v${i}`, del: del.status, push: push.status };
        }),
      );

      for (const o of outcomes) {
        expect([202, 403]).toContain(o.del);
        expect(o.push).toBe(201);
        const got = await regs[0]!.fetch(`/v2/prod/del/manifests/${o.tag}`, {
          headers: ciHeaders,
        });
        expect(got.status).toBe(200);
        expect(got.headers.get('docker-content-digest')).toBe(o.img.digest);
      }
      expect((await driver.list('repositories/prod/del/_deleting/')).names).toEqual([]);
    } finally {
      await Promise.all(regs.map((r) => r.close()));
      await driver.close?.();
    }
  });
});
