import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseDigest } from '../../../server/registry/reference.js';
import { isNotFound } from '../../../server/storage/driver.js';
import { InMemoryDriver } from '../../../server/storage/drivers/inmemory.js';
import { Paths } from '../../../server/storage/paths.js';
import { Client, image, platformIndex, type Built } from '../../support/image.js';
import { startTestRegistry, type TestRegistry } from '../../support/server.js';

/** writes is an in-memory driver that records the key of every write. */
const writes = countingWrites();

function countingWrites(): { driver: InMemoryDriver; keys: string[] } {
  const keys: string[] = [];
  const driver = new InMemoryDriver();
  for (const m of [
    'put',
    'putIfAbsent',
    'putIfVersion',
    'writeStream',
    'delete',
    'deletePrefix',
  ] as const) {
    const original = (driver as unknown as Record<string, unknown>)[m];
    if (typeof original !== 'function') continue;
    (driver as unknown as Record<string, unknown>)[m] = (key: string, ...rest: unknown[]) => {
      keys.push(key);
      return (original as (...a: unknown[]) => unknown).call(driver, key, ...rest);
    };
  }
  return { driver, keys };
}

let upstream: TestRegistry;
let local: TestRegistry;
let amd64: Built;
let arm64: Built;
let multi: Built;
let docker: Built;
let signature: Built;

async function storedManifest(repo: string, digest: string): Promise<boolean> {
  return local.driver.stat(Paths.manifest(repo, parseDigest(digest))).then(
    () => true,
    (err: unknown) => {
      if (isNotFound(err)) return false;
      throw err;
    },
  );
}

async function localTags(repo: string): Promise<string[]> {
  const res = await local.fetch(`/v2/${repo}/tags/list`);
  return ((await res.json()) as { tags: string[] | null }).tags ?? [];
}

beforeAll(async () => {
  upstream = await startTestRegistry();
  const up = new Client((p, i) => upstream.fetch(p, i));
  amd64 = image().layer(4000).build();
  arm64 = image().arch('arm64').layer(5000).build();
  multi = platformIndex([
    [amd64, 'linux/amd64'],
    [arm64, 'linux/arm64'],
  ]);
  docker = image().docker().layer(3000).build();
  signature = image()
    .artifact('application/vnd.dev.cosign.simplesigning.v1+json')
    .subject(multi)
    .build();
  for (const tag of ['1.0.0', '1.5.0', '2.0.0', 'latest'])
    expect((await up.push('team/app', tag, multi)).status).toBe(201);
  expect((await up.push('team/legacy', 'v1.2.3', docker)).status).toBe(201);
  expect((await up.push('team/app', signature.digest, signature)).status).toBe(201);
  expect((await up.push('other/skip', '1.0.0', docker)).status).toBe(201);
  local = await startTestRegistry({
    driver: writes.driver,
    config: {
      notifications: { settleMillis: 0 },
      mirrors: {
        upstreams: [{ name: 'up', url: upstream.url, prefix: 'up' }],
        sync: [
          {
            name: 'team',
            upstream: 'up',
            repositories: ['team/*'],
            tags: { semver: '>=1.0 <2' },
            platforms: ['linux/amd64'],
            intervalSeconds: 0,
          },
        ],
      },
    },
  });
});

afterAll(async () => {
  await local?.close();
  await upstream?.close();
});

describe('a sync pass from an in-process upstream', () => {
  it('GIVEN a semver range, one platform and referrers WHEN the job runs THEN chosen tags land under the prefix with their digests, only the chosen platform child is stored, and the signature comes along', async () => {
    const record = await local.services.sync!.run('team');
    expect(record.state).toBe('success');
    expect(record.summary).toMatchObject({
      repositories: 2,
      tagsChosen: 3,
      tagsCopied: 3,
      errors: [],
    });
    expect(await localTags('up/team/app')).toEqual(['1.0.0', '1.5.0']);
    expect(await localTags('up/team/legacy')).toEqual(['v1.2.3']);
    expect(await storedManifest('up/team/app', multi.digest)).toBe(true);
    expect(await storedManifest('up/team/app', amd64.digest)).toBe(true);
    expect(await storedManifest('up/team/app', arm64.digest)).toBe(false);
    expect(await storedManifest('up/team/app', signature.digest)).toBe(true);
    const res = await local.fetch(`/v2/up/team/legacy/manifests/v1.2.3`, {
      headers: { accept: docker.mediaType },
    });
    expect(res.headers.get('docker-content-digest')).toBe(docker.digest);
    expect(res.headers.get('content-type')).toBe(docker.mediaType);
    const referrers = (await (
      await local.fetch(`/v2/up/team/app/referrers/${multi.digest}`)
    ).json()) as {
      manifests: { digest: string }[];
    };
    expect(referrers.manifests.map((m) => m.digest)).toEqual([signature.digest]);
  });

  it('GIVEN the job ran WHEN it runs again THEN every tag is unchanged and nothing is copied or written to the repositories', async () => {
    writes.keys.length = 0;
    const record = await local.services.sync!.run('team');
    expect(record.summary).toMatchObject({
      tagsCopied: 0,
      tagsUnchanged: 3,
      manifestsCopied: 0,
      blobsCopied: 0,
      bytes: 0,
    });
    // Only the job's own lease and run record were written.
    expect(writes.keys.filter((k) => !/^(sync\/team|peers)\//.test(k))).toEqual([]);
    expect(writes.keys.length).toBeGreaterThan(0);
  });

  it('GIVEN a tag moved upstream WHEN the job runs THEN only that tag is copied', async () => {
    const moved = image().layer(4000).build();
    expect(
      (await new Client((p, i) => upstream.fetch(p, i)).push('team/app', '1.5.0', moved)).status,
    ).toBe(201);
    const record = await local.services.sync!.run('team');
    expect(record.summary).toMatchObject({
      tagsCopied: 1,
      tagsUnchanged: 2,
      manifestsCopied: 1,
      blobsCopied: 2,
    });
    const res = await local.fetch('/v2/up/team/app/manifests/1.5.0', {
      method: 'HEAD',
      headers: { accept: moved.mediaType },
    });
    expect(res.headers.get('docker-content-digest')).toBe(moved.digest);
  });

  it('GIVEN the sync wrote images WHEN reading the events THEN they were recorded as pushes of the local repositories', async () => {
    const body = (await (await local.fetch('/v2/_berth/events?n=1000')).json()) as {
      events: { action: string; target: { repository: string; digest?: string; tag?: string } }[];
    };
    const pushes = body.events.filter(
      (e) => e.action === 'push' && e.target.repository === 'up/team/app',
    );
    expect(pushes.some((e) => e.target.digest === multi.digest)).toBe(true);
    expect(pushes.filter((e) => e.target.tag !== undefined).map((e) => e.target.tag)).toEqual([
      '1.0.0',
      '1.5.0',
      '1.5.0',
    ]);
    expect(
      pushes.every((e) => (e as { actor?: { name?: string } }).actor?.name === 'sync/team'),
    ).toBe(true);
  });

  it('GIVEN the runs above WHEN the metrics are scraped THEN runs, tags, manifests, blobs and bytes are counted per job', async () => {
    const { body } = await local.services.metrics!.exposition();
    const value = (name: string, labels: string) =>
      Number(new RegExp(`^${name}\\{${labels}\\} (\\S+)$`, 'm').exec(body)?.[1]);
    expect(value('berth_sync_runs_total', 'job="team",result="success"')).toBe(3);
    expect(value('berth_sync_tags_total', 'job="team",outcome="copied"')).toBe(4);
    expect(value('berth_sync_tags_total', 'job="team",outcome="unchanged"')).toBe(5);
    expect(
      value('berth_sync_manifests_total', 'job="team",outcome="copied"'),
    ).toBeGreaterThanOrEqual(5);
    expect(value('berth_sync_blobs_total', 'job="team",outcome="copied"')).toBeGreaterThan(0);
    expect(value('berth_sync_bytes_total', 'job="team"')).toBeGreaterThan(4000);
    expect(value('berth_sync_last_success_timestamp_seconds', 'job="team"')).toBeGreaterThan(1.7e9);
  });
});

describe('a sync pass over paged listings', () => {
  it('GIVEN an upstream that answers catalog and tag lists two entries a page WHEN a glob job runs THEN every page is read and every chosen tag of every matching repository is copied', async () => {
    const paged = await startTestRegistry({ config: { limits: { maxListEntries: 2 } } });
    const into = await startTestRegistry({
      config: {
        mirrors: {
          upstreams: [{ name: 'paged', url: paged.url, prefix: 'p' }],
          sync: [
            {
              name: 'all',
              upstream: 'paged',
              repositories: ['apps/*'],
              tags: { regex: 'v[0-9]+' },
              intervalSeconds: 0,
            },
          ],
        },
      },
    });
    try {
      const c = new Client((p, i) => paged.fetch(p, i));
      const m = image().layer(100).build();
      for (const repo of ['apps/a', 'apps/b', 'apps/c', 'other/d'])
        for (const tag of ['v1', 'v2', 'v3', 'latest'])
          expect((await c.push(repo, tag, m)).status).toBe(201);
      const page = await paged.fetch('/v2/_catalog?n=1000');
      expect(page.headers.get('link')).toContain('rel="next"'); // the upstream really pages
      const record = await into.services.sync!.run('all');
      expect(record.summary).toMatchObject({
        repositories: 3,
        tagsChosen: 9,
        tagsCopied: 9,
        errors: [],
      });
      for (const repo of ['p/apps/a', 'p/apps/b', 'p/apps/c']) {
        const res = await into.fetch(`/v2/${repo}/tags/list`);
        expect(((await res.json()) as { tags: string[] }).tags).toEqual(['v1', 'v2', 'v3']);
      }
    } finally {
      await into.close();
      await paged.close();
    }
  });
});
