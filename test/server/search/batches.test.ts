import { describe, expect, it } from 'vitest';
import { Batches } from '../../../server/search/batches.js';
import { listAll } from '../../../server/storage/driver.js';
import { InMemoryDriver } from '../../../server/storage/drivers/inmemory.js';
import { Paths } from '../../../server/storage/paths.js';
import { image } from '../../support/image.js';
import { indexed, storedDocument } from '../../support/search.js';

describe('group commit of search document updates', () => {
  it('GIVEN submissions while a job runs WHEN it ends THEN they run merged in one next job, and every submitter hears its own batch', async () => {
    const batches = new Batches<number[]>((a, b) => [...a, ...b]);
    const runs: number[][] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const run = async (c: number[]) => {
      runs.push(c);
      if (runs.length === 1) await gate;
    };
    const first = batches.submit('repo', [1], run);
    await Promise.resolve();
    const later = [2, 3, 4].map((n) => batches.submit('repo', [n], run));
    const other = batches.submit('other', [9], run);
    release();
    await Promise.all([first, ...later, other]);
    expect(runs).toEqual([[1], [9], [2, 3, 4]]);
  });

  it('GIVEN a job that fails WHEN its batch settles THEN its submitters get the error and the next batch still runs', async () => {
    const batches = new Batches<string[]>((a, b) => [...a, ...b]);
    let fail!: (err: Error) => void;
    const failing = batches.submit(
      'repo',
      ['a'],
      () => new Promise((_, reject) => (fail = reject)),
    );
    await Promise.resolve();
    const ran: string[][] = [];
    const next = batches.submit('repo', ['b'], (c) => {
      ran.push(c);
      return Promise.resolve();
    });
    fail(new Error('boom'));
    await expect(failing).rejects.toThrow('boom');
    await expect(next).resolves.toBeUndefined();
    expect(ran).toEqual([['b']]);
  });

  it('GIVEN 64 concurrent tag writes to one repository in one process WHEN indexed THEN every tag is in the document and it was written a few times, never losing a compare-and-set to itself', async () => {
    class Counting extends InMemoryDriver {
      writes = 0;
      lost = 0;
      override async putIfVersion(key: string, data: Buffer | string, expected: string | null) {
        const ok = await super.putIfVersion(key, data, expected);
        if (key.startsWith(Paths.searchRoot())) {
          this.writes++;
          if (!ok) this.lost++;
        }
        return ok;
      }
    }
    const driver = new Counting();
    const { registry, search } = indexed(driver);
    const img = image().layer(8).build();
    const repo = registry.repository('many/tags');
    const { digest } = await repo.put(img.body, img.mediaType);
    const before = driver.writes;

    await Promise.all(Array.from({ length: 64 }, (_, i) => repo.tag(`t${i}`, digest)));
    await search.settled();

    const tags = (await storedDocument(driver, 'many/tags')).tags;
    expect(Object.keys(tags)).toHaveLength(64);
    expect(driver.lost).toBe(0);
    expect(driver.writes - before).toBeLessThanOrEqual(4);
    expect(await listAll(driver, Paths.searchPendingRoot())).toEqual([]);
  });
});
