import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RegistryClient } from '../../server/client/registry.js';
import { parseDigest } from '../../server/registry/reference.js';
import { isNotFound, listAll } from '../../server/storage/driver.js';
import { FilesystemDriver } from '../../server/storage/drivers/filesystem.js';
import { Paths } from '../../server/storage/paths.js';
import type { SyncRunRecord } from '../../server/sync/service.js';
import { runBerthCli, type Ran } from '../support/cli.js';
import { image, index, platformIndex, type Built } from '../support/image.js';
import {
  startCountingProxy,
  startDistribution,
  type CountingProxy,
  type Distribution,
} from '../support/upstream.js';

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

let dist: Distribution;
let proxy: CountingProxy;
let work: string;
let driver: FilesystemDriver;
let configFile: string;

let amd64: Built;
let arm64: Built;
let multi: Built;
let docker: Built;
let signature: Built;
let big: Built;

/** pushToDist pushes an image (children first) to distribution with the project's client. */
async function pushToDist(repo: string, tag: string, m: Built): Promise<void> {
  const c = new RegistryClient({ registry: dist.host, plainHttp: true });
  for (const child of m.children) await pushToDist(repo, child.digest, child);
  for (const b of m.blobs)
    await c.pushBlob(repo, b.digest, b.bytes.length, () => Readable.from([b.bytes]));
  await c.putManifest(repo, tag, m.mediaType, m.body);
}

/** syncRun runs `berth sync run <job>` as its own process; `onStarted` may kill it midway. */
async function syncRun(
  job: string,
  file = configFile,
  onStarted?: (kill: () => void) => void,
): Promise<Ran & { record?: SyncRunRecord }> {
  let told = false;
  const ran = await runBerthCli(['sync', 'run', job, '--config', file], (text, kill) => {
    if (!told && text.includes('sync run started')) {
      told = true;
      onStarted?.(kill);
    }
  });
  const record = ran.stdout.trim() ? (JSON.parse(ran.stdout) as SyncRunRecord) : undefined;
  return { ...ran, record };
}

/** localTag is the digest a local tag names, read from storage itself. */
async function localTag(repo: string, tag: string): Promise<string | undefined> {
  try {
    return (await driver.get(Paths.tag(repo, tag))).toString('utf8');
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

/** localManifest is a stored manifest's media type and the digest of its bytes, if stored. */
async function localManifest(
  repo: string,
  digest: string,
): Promise<{ mediaType: string; digest: string } | undefined> {
  let raw: Buffer;
  try {
    raw = await driver.get(Paths.manifest(repo, parseDigest(digest)));
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
  const nl = raw.indexOf(0x0a);
  return { mediaType: raw.subarray(0, nl).toString('utf8'), digest: sha(raw.subarray(nl + 1)) };
}

const blobGets = () => [...proxy.blobGets.values()].reduce((a, b) => a + b, 0);

function writeConfig(file: string, sync: string): string {
  writeFileSync(
    file,
    [
      'log: { level: info }',
      `storage: { driver: filesystem, filesystem: { root: ${join(work, 'data')} } }`,
      'http: { secret: sync-test }',
      'mirrors:',
      '  upstreams:',
      `    - { name: dist, url: "http://${proxy.host}", prefix: dist }`,
      '  sync:',
      sync,
      '',
    ].join('\n'),
  );
  return file;
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'berth-sync-'));
  dist = await startDistribution();
  proxy = await startCountingProxy(dist.url);
  driver = new FilesystemDriver(join(work, 'data'));
  amd64 = image().layer(300_000).layer(2000).build();
  arm64 = image().arch('arm64').layer(310_000).build();
  multi = platformIndex([
    [amd64, 'linux/amd64'],
    [arm64, 'linux/arm64'],
  ]);
  docker = image().docker().layer(200_000).build();
  signature = image()
    .artifact('application/vnd.dev.cosign.simplesigning.v1+json')
    .layer(300)
    .subject(multi)
    .build();
  big = image().layer(8_000_000).build();
  for (const tag of ['1.0.0', '1.1.0', '2.0.0', 'latest']) await pushToDist('team/app', tag, multi);
  await pushToDist('team/legacy', '1.4.2', docker);
  await pushToDist('team/legacy', 'edge', docker);
  // Distribution has no referrers API: the signature is found through the tag schema.
  await pushToDist('team/app', signature.digest, signature);
  await pushToDist('team/app', multi.digest.replace(':', '-'), index([signature]));
  await pushToDist('other/tool', '1.0.0', docker);
  configFile = writeConfig(
    join(work, 'berth.yaml'),
    [
      '    - name: dist',
      '      upstream: dist',
      "      repositories: ['team/*']",
      "      tags: { semver: '>=1.0 <2', glob: [stable] }",
      '      platforms: [linux/amd64]',
      '      intervalSeconds: 0',
      '      leaseSeconds: 10',
    ].join('\n'),
  );
}, 180_000);

afterAll(async () => {
  await proxy?.close();
  await dist?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('berth sync run against distribution v3', () => {
  it('GIVEN a 2-platform index, a Docker schema 2 image and a signature upstream WHEN the job runs THEN the chosen tags land under the prefix with the upstream digests, only linux/amd64 is stored and the signature comes along', async () => {
    const ran = await syncRun('dist');
    expect(ran.status, ran.stderr).toBe(0);
    expect(ran.record).toMatchObject({
      state: 'success',
      trigger: 'cli',
      summary: { repositories: 2, tagsChosen: 3, tagsCopied: 3, errors: [] },
    });
    expect(await localTag('dist/team/app', '1.0.0')).toBe(multi.digest);
    expect(await localTag('dist/team/app', '1.1.0')).toBe(multi.digest);
    expect(await localTag('dist/team/legacy', '1.4.2')).toBe(docker.digest);
    expect(await localManifest('dist/team/app', multi.digest)).toEqual({
      mediaType: multi.mediaType,
      digest: multi.digest,
    });
    expect(await localManifest('dist/team/legacy', docker.digest)).toEqual({
      mediaType: 'application/vnd.docker.distribution.manifest.v2+json',
      digest: docker.digest,
    });
    expect((await localManifest('dist/team/app', amd64.digest))?.digest).toBe(amd64.digest);
    expect(await localManifest('dist/team/app', arm64.digest)).toBeUndefined();
    for (const b of arm64.blobs.slice(1)) expect(proxy.blobGets.get(b.digest)).toBeUndefined();
    expect((await localManifest('dist/team/app', signature.digest))?.digest).toBe(signature.digest);
    const referrers = await listAll(
      driver,
      Paths.referrersRoot('dist/team/app', parseDigest(multi.digest)),
    );
    expect(referrers).toEqual([signature.digest.replace(':', '-')]);
  });

  it('GIVEN the selection WHEN the job has run THEN tags and repositories outside it were not copied', async () => {
    expect(await localTag('dist/team/app', '2.0.0')).toBeUndefined();
    expect(await localTag('dist/team/app', 'latest')).toBeUndefined();
    expect(await localTag('dist/team/legacy', 'edge')).toBeUndefined();
    expect(await localTag('dist/team/app', multi.digest.replace(':', '-'))).toBeUndefined();
    expect(await listAll(driver, Paths.tagsRoot('dist/other/tool'))).toEqual([]);
  });

  it('GIVEN the job has run WHEN it runs again THEN it fetches no blob and no image manifest and writes nothing to the repositories', async () => {
    const blobsBefore = blobGets();
    const getsBefore = proxy.manifestGets;
    const keysBefore = await listAll(driver, 'repositories/');
    const ran = await syncRun('dist');
    expect(ran.status, ran.stderr).toBe(0);
    expect(ran.record?.summary).toMatchObject({
      tagsCopied: 0,
      tagsUnchanged: 3,
      manifestsCopied: 0,
      blobsCopied: 0,
      bytes: 0,
    });
    expect(blobGets()).toBe(blobsBefore);
    // Only the referrers index of the tag schema is read, once per unchanged tag naming the index.
    expect(proxy.manifestGets - getsBefore).toBe(2);
    expect(await listAll(driver, 'repositories/')).toEqual(keysBefore);
  });

  it('GIVEN a run killed with SIGKILL in the middle of a blob WHEN the job runs again once the lease expired THEN it resumes: the missing tag is copied and what was stored is not fetched again', async () => {
    await pushToDist('team/app', '1.2.0', docker); // stored already: shares the legacy image
    await pushToDist('team/app', '1.3.0', big);
    const layer = big.blobs.find((b) => b.bytes.length === 8_000_000)!;
    proxy.stall.add(layer.digest);
    const killed = await syncRun('dist', configFile, (kill) => {
      const wait = setInterval(() => {
        if ((proxy.blobGets.get(layer.digest) ?? 0) > 0) {
          clearInterval(wait);
          kill();
        }
      }, 20);
    });
    proxy.stall.clear();
    expect(killed.status).toBeNull(); // killed by the signal
    expect(await localTag('dist/team/app', '1.2.0')).toBe(docker.digest);
    expect(await localTag('dist/team/app', '1.3.0')).toBeUndefined();
    const configGets = proxy.blobGets.get(big.blobs[0]!.digest);
    let again = await syncRun('dist');
    for (let i = 0; again.status === 3 && i < 20; i++) {
      await new Promise((r) => setTimeout(r, 1000)); // the dead run's lease (10 s) must expire
      again = await syncRun('dist');
    }
    expect(again.status, again.stderr).toBe(0);
    expect(again.record?.resumedFrom).toMatch(/Z-[0-9a-f]{6}$/);
    expect(again.record?.summary).toMatchObject({ tagsCopied: 1, tagsUnchanged: 4, errors: [] });
    expect(await localTag('dist/team/app', '1.3.0')).toBe(big.digest);
    expect((await localManifest('dist/team/app', big.digest))?.digest).toBe(big.digest);
    expect(proxy.blobGets.get(layer.digest)).toBe(2);
    expect(proxy.blobGets.get(big.blobs[0]!.digest)).toBe(configGets);
  });

  it('GIVEN a config whose job names an upstream that is not configured WHEN running it THEN the CLI refuses with the field named and copies nothing', async () => {
    const bad = writeConfig(
      join(work, 'bad.yaml'),
      "    - { name: dist, upstream: quay, repositories: ['team/*'], tags: { regex: '(' } }",
    );
    const before = blobGets();
    const ran = await syncRun('dist', bad);
    expect(ran.status).toBe(2);
    expect(ran.stderr).toContain(
      'mirrors.sync.0.upstream: no mirrors.upstreams entry is named "quay" (known: dist)',
    );
    expect(ran.stderr).toContain('mirrors.sync.0.tags.regex: not a regular expression');
    expect(blobGets()).toBe(before);
  });

  it('GIVEN a valid config WHEN running a job it does not name THEN the CLI refuses naming the known jobs', async () => {
    const ran = await syncRun('nope');
    expect(ran.status).toBe(2);
    expect(ran.stderr).toContain('mirrors.sync: no job is named "nope" (known: dist)');
  });
});
