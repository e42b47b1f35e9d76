import { afterEach, describe, expect, it } from 'vitest';
import { FilesystemDriver } from '../../../server/storage/drivers/filesystem.js';
import { InMemoryDriver } from '../../../server/storage/drivers/inmemory.js';
import { image } from '../../support/image.js';
import {
  ciClient,
  ciHeaders,
  immutableConfig,
  pushEvents,
  racePushes,
} from '../../support/immutable-race.js';
import { startTestRegistry, type TestRegistry } from '../../support/server.js';
import { scratchDir } from '../../support/scratch.js';

/** stored lists the keys of an in-memory driver that a request could have written. */
function stored(d: InMemoryDriver): Record<string, number> {
  return Object.fromEntries(Object.entries(d.snapshot()).filter(([k]) => !k.startsWith('peers/')));
}

describe('immutable tags', () => {
  const regs: TestRegistry[] = [];
  afterEach(async () => {
    await Promise.all(regs.splice(0).map((r) => r.close()));
  });

  it('GIVEN an immutable tag on one manifest WHEN another manifest is pushed to it THEN 403, and storage and the events outbox are exactly as before', async () => {
    const driver = new InMemoryDriver();
    const reg = await startTestRegistry({ config: immutableConfig(), driver });
    regs.push(reg);
    const c = ciClient(reg);
    const one = image().layer(8).build();
    const two = image().layer(8).build();
    expect((await c.push('prod/app', 'v1', one)).status).toBe(201);
    for (const b of two.blobs) await c.pushBlob('prod/app', b);
    const before = stored(driver);

    const refused = await c.pushManifest('prod/app', 'v1', two);

    expect(refused.status).toBe(403);
    expect(((await refused.json()) as { errors: { code: string }[] }).errors[0]!.code).toBe(
      'DENIED',
    );
    expect(stored(driver)).toEqual(before);
    const byDigest = await reg.fetch(`/v2/prod/app/manifests/${two.digest}`, {
      headers: ciHeaders,
    });
    expect(byDigest.status).toBe(404);
    expect(await pushEvents(driver, 'prod/app')).toEqual([one.digest]);
  });

  for (const [name, make] of [
    ['in-memory', () => new InMemoryDriver()],
    ['filesystem', () => new FilesystemDriver(scratchDir('berth-imm-'))],
  ] as const) {
    it(`GIVEN an absent immutable tag on the ${name} driver WHEN eight different manifests are pushed to it at once THEN exactly one gets 201, the others 403, and only the winner is stored and announced`, async () => {
      const driver = make();
      const reg = await startTestRegistry({ config: immutableConfig(), driver });
      regs.push(reg);

      const results = await racePushes(reg, 'prod/race', 'v1', 8);

      const winners = results.filter((r) => r.status === 201);
      expect(results.map((r) => r.status).sort()).toEqual([201, ...Array<number>(7).fill(403)]);
      const got = await reg.fetch('/v2/prod/race/manifests/v1', { headers: ciHeaders });
      expect(got.headers.get('docker-content-digest')).toBe(winners[0]!.image.digest);
      for (const r of results.filter((x) => x.status === 403)) {
        const byDigest = await reg.fetch(`/v2/prod/race/manifests/${r.image.digest}`, {
          headers: ciHeaders,
        });
        expect(byDigest.status).toBe(404);
      }
      expect(await pushEvents(driver, 'prod/race')).toEqual([winners[0]!.image.digest]);
    });
  }
});
