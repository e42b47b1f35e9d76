import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { S3Driver } from '../../server/storage/drivers/s3.js';
import { sharedMinio, type MinioServer } from '../support/minio.js';
import { startTestRegistry } from '../support/server.js';
import { mulberry32 } from '../support/tag-race.js';
import { raceSessions, raceViolations, uploadViolations } from '../support/upload-race.js';

const BUCKET = 'berth-upload-race';
let minio: MinioServer;

beforeAll(async () => {
  minio = await sharedMinio();
  await S3Driver.ensureBucket(minio.config(BUCKET));
}, 120_000);

afterAll(async () => {
  await minio?.stop();
});

describe('upload requests racing on MinIO', () => {
  it('GIVEN two replicas on one MinIO bucket WHEN many sessions each get a closing PUT, a DELETE and chunks at once THEN at most one of them wins, every blob answered 201 reads back whole, and every segment is named by a descriptor or an open session', async () => {
    const cfg = minio.config(BUCKET, `race-${randomBytes(4).toString('hex')}`);
    const regs = await Promise.all(
      [0, 1].map(() => startTestRegistry({ driver: new S3Driver(cfg) })),
    );
    const driver = new S3Driver(cfg);
    try {
      const races = await raceSessions(regs, mulberry32(15), 120, 12, { cancelLagMs: 200 });

      expect(await raceViolations(regs, races)).toEqual([]);
      expect(await uploadViolations(driver)).toEqual([]);
      expect(races.some((r) => r.stored && r.put.includes(201) && r.del.includes(404))).toBe(true);
      expect(races.some((r) => r.stored && r.del.includes(204) && r.put.includes(404))).toBe(true);
    } finally {
      await Promise.all(regs.map((r) => r.close()));
      await driver.close?.();
    }
  });
});
