import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { parseDigest } from '../../../server/registry/reference.js';
import { FilesystemDriver } from '../../../server/storage/drivers/filesystem.js';
import { Paths } from '../../../server/storage/paths.js';
import { sha256 } from '../../support/image.js';
import { startTestRegistry, type TestRegistry } from '../../support/server.js';
import { scratchDir } from '../../support/scratch.js';

/** readsAs is the status of a blob GET, and whether its body is exactly `data`. */
async function readsAs(
  reg: TestRegistry,
  repo: string,
  data: Buffer,
): Promise<{ status: number; same: boolean }> {
  const r = await reg.fetch(`/v2/${repo}/blobs/${sha256(data)}`);
  return { status: r.status, same: Buffer.from(await r.arrayBuffer()).equals(data) };
}

describe('upload commits racing', () => {
  const regs: TestRegistry[] = [];
  afterEach(async () => {
    await Promise.all(regs.splice(0).map((r) => r.close()));
  });

  it('GIVEN a chunked upload WHEN a PUT with the right digest races a PUT with a wrong one on the filesystem THEN the blob the first one committed stays readable, here and when another repository pushes the same bytes', async () => {
    const reg = await startTestRegistry({
      driver: new FilesystemDriver(scratchDir('berth-commit-race-')),
    });
    regs.push(reg);
    for (let round = 0; round < 5; round++) {
      const data = randomBytes(200_000);
      const post = await reg.fetch('/v2/race/app/blobs/uploads/', { method: 'POST' });
      const patch = await reg.fetch(post.headers.get('location')!, { method: 'PATCH', body: data });
      const loc = patch.headers.get('location')!;

      const [right] = await Promise.all([
        reg.fetch(`${loc}&digest=${sha256(data)}`, { method: 'PUT' }),
        reg.fetch(`${loc}&digest=${sha256('other')}`, { method: 'PUT' }),
      ]);

      if (right.status !== 201) continue;
      expect(await readsAs(reg, 'race/app', data)).toEqual({ status: 200, same: true });
      const again = await reg.fetch(`/v2/other/app/blobs/uploads/?digest=${sha256(data)}`, {
        method: 'POST',
        body: data,
      });
      expect(again.status).toBe(201);
      expect(await readsAs(reg, 'other/app', data)).toEqual({ status: 200, same: true });
    }
  });

  it('GIVEN a blob index that names bytes no longer stored WHEN the same bytes are pushed again THEN the index is replaced and the blob reads whole', async () => {
    const root = scratchDir('berth-heal-');
    const driver = new FilesystemDriver(root);
    const reg = await startTestRegistry({ driver });
    regs.push(reg);
    const data = randomBytes(5000);
    const digest = sha256(data);
    const first = await reg.fetch(`/v2/one/app/blobs/uploads/?digest=${digest}`, {
      method: 'POST',
      body: data,
    });
    expect(first.status).toBe(201);
    const desc = JSON.parse((await driver.get(Paths.blob(parseDigest(digest)))).toString()) as {
      segments: { key: string }[];
    };
    for (const s of desc.segments) await driver.delete(s.key);

    const second = await reg.fetch(`/v2/two/app/blobs/uploads/?digest=${digest}`, {
      method: 'POST',
      body: data,
    });

    expect(second.status).toBe(201);
    expect(await readsAs(reg, 'two/app', data)).toEqual({ status: 200, same: true });
  });
});
