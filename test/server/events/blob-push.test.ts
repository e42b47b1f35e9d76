import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { blob } from '../../support/image.js';
import { startTestRegistry, type TestRegistry } from '../../support/server.js';

describe('blob push events', () => {
  let reg: TestRegistry;
  beforeAll(async () => {
    reg = await startTestRegistry({ config: { notifications: { settleMillis: 0 } } });
  });
  afterAll(async () => {
    await reg.close();
  });

  it('GIVEN the same bytes uploaded to two repositories WHEN the second is linked to the stored copy THEN each upload is one push event of its own repository', async () => {
    const b = blob('pushed twice');
    for (const repo of ['dup/one', 'dup/two']) {
      const r = await reg.fetch(`/v2/${repo}/blobs/uploads/?digest=${b.digest}`, {
        method: 'POST',
        body: b.bytes,
      });
      expect(r.status).toBe(201);
    }
    const { items } = await reg.services.events!.read(undefined, 10);
    expect(
      items.map((i) => [i.event.action, i.event.target.repository, i.event.target.digest]),
    ).toEqual([
      ['push', 'dup/one', b.digest],
      ['push', 'dup/two', b.digest],
    ]);
  });
});
