import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { Readable } from 'node:stream';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RegistryClient } from '../../server/client/registry.js';
import { parseDigest } from '../../server/registry/reference.js';
import { isNotFound } from '../../server/storage/driver.js';
import { S3Driver } from '../../server/storage/drivers/s3.js';
import { Paths } from '../../server/storage/paths.js';
import { authConfig } from '../support/auth.js';
import { image, index, type Built } from '../support/image.js';
import { sharedMinio, type MinioServer } from '../support/minio.js';
import { startTestRegistry, type TestRegistry } from '../support/server.js';
import { tool } from '../support/tools.js';
import {
  startCountingProxy,
  startDistribution,
  type CountingProxy,
  type Distribution,
} from '../support/upstream.js';

const BUCKET = 'berth-mirror';
const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

let minio: MinioServer;
let dist: Distribution;
let proxy: CountingProxy;
let upBerth: TestRegistry;
let mirror: TestRegistry;
let driver: S3Driver;
let work: string;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'berth-mirror-'));
  minio = await sharedMinio();
  await S3Driver.ensureBucket(minio.config(BUCKET));
  dist = await startDistribution();
  proxy = await startCountingProxy(dist.url);
  upBerth = await startTestRegistry({
    config: {
      auth: authConfig('token')
        .user('alice', 'pw')
        .rule({ users: ['alice'], repositories: ['**'], actions: ['pull', 'push'] })
        .build(),
    },
  });
  const passwordFile = join(work, 'password');
  writeFileSync(passwordFile, 'pw\n');
  driver = new S3Driver(minio.config(BUCKET, `m-${randomBytes(4).toString('hex')}`));
  mirror = await startTestRegistry({
    driver,
    config: {
      mirrors: {
        upstreams: [
          {
            name: 'dist',
            url: `http://${proxy.host}`,
            prefix: 'dist',
            ns: ['dist.example'],
            tagTtlSeconds: 0,
          },
          {
            name: 'berth',
            url: upBerth.url.replace(/\/$/, ''),
            prefix: 'up',
            username: 'alice',
            passwordFile,
          },
        ],
      },
    },
  });
}, 180_000);

afterAll(async () => {
  await mirror?.close();
  await upBerth?.close();
  await proxy?.close();
  await dist?.stop();
  await driver?.close?.();
  await minio?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

/** pushWith pushes an image's blobs and manifest with the project's client (two-step uploads). */
async function pushWith(c: RegistryClient, repo: string, tag: string, m: Built): Promise<void> {
  for (const b of m.blobs)
    await c.pushBlob(repo, b.digest, b.bytes.length, () => Readable.from([b.bytes]));
  await c.putManifest(repo, tag, m.mediaType, m.body);
}

const pushToDist = (repo: string, tag: string, m: Built) =>
  pushWith(new RegistryClient({ registry: dist.host, plainHttp: true }), repo, tag, m);

/** pushIndexToDist pushes an index's child manifests by digest, then the index under `tag`. */
async function pushIndexToDist(repo: string, tag: string, idx: Built): Promise<void> {
  for (const child of idx.children) await pushToDist(repo, child.digest, child);
  await pushToDist(repo, tag, idx);
}

/**
 * crane runs the crane built by ensure.mjs (over plain http: --insecure) and returns its
 * stdout as bytes; asynchronously, since the mirror runs in this process and must answer it.
 */
async function crane(...args: string[]): Promise<Buffer> {
  const { stdout } = await promisify(execFile)(tool('crane'), [...args, '--insecure'], {
    timeout: 60_000,
    encoding: 'buffer',
    maxBuffer: 16 * 1024 * 1024,
  });
  return stdout;
}

/** layoutBlob reads a blob of an OCI image layout and checks that it hashes to its name. */
function layoutBlob(dir: string, digest: string): Buffer {
  const bytes = readFileSync(join(dir, 'blobs', 'sha256', digest.slice('sha256:'.length)));
  expect(sha(bytes)).toBe(digest);
  return bytes;
}

const viaMirror = (path: string) => `${new URL(mirror.url).host}/dist/${path}`;

function get(
  path: string,
  accept = 'application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json',
): Promise<Response> {
  return mirror.fetch(path, { headers: { accept } });
}

async function stored(digest: string): Promise<boolean> {
  return driver.stat(Paths.blob(parseDigest(digest))).then(
    () => true,
    (err: unknown) => {
      if (isNotFound(err)) return false;
      throw err;
    },
  );
}

describe('pull-through cache against distribution v3 and a token-auth berth, on MinIO', () => {
  it("GIVEN a Docker schema 2 image in distribution WHEN skopeo copies it through the mirror THEN digests and media type are the upstream's and the repository is recorded like a push", async () => {
    const m = image().docker().layer(300_000).layer(2000).build();
    await pushToDist('team/app', 'v1', m);
    const out = join(work, 'skopeo-out');
    // Asynchronously: the mirror runs in this process and must answer skopeo meanwhile.
    await promisify(execFile)(
      tool('skopeo'),
      [
        '--insecure-policy',
        'copy',
        '--src-tls-verify=false',
        '--preserve-digests',
        `docker://${new URL(mirror.url).host}/dist/team/app:v1`,
        `dir:${out}`,
      ],
      { timeout: 60_000 },
    );
    expect(sha(readFileSync(join(out, 'manifest.json')))).toBe(m.digest);
    const head = await get('/v2/dist/team/app/manifests/v1');
    expect(head.headers.get('docker-content-digest')).toBe(m.digest);
    expect(head.headers.get('content-type')).toBe(
      'application/vnd.docker.distribution.manifest.v2+json',
    );
    for (const b of m.blobs) expect(await stored(b.digest)).toBe(true);
    const catalog = (await (await mirror.fetch('/v2/_catalog')).json()) as {
      repositories: string[];
    };
    expect(catalog.repositories).toContain('dist/team/app');
  });

  it("GIVEN a Docker schema 2 image in distribution WHEN crane pulls it through the mirror THEN crane's digest and manifest bytes are the upstream's and every blob in the OCI layout hashes to the upstream's digest", async () => {
    const m = image().docker().layer(400_000).layer(3000).build();
    await pushToDist('team/crane-docker', 'v1', m);
    const ref = viaMirror('team/crane-docker:v1');

    const digest = (await crane('digest', ref)).toString().trim();
    const upstreamDigest = (await crane('digest', `${dist.host}/team/crane-docker:v1`))
      .toString()
      .trim();
    const manifest = await crane('manifest', ref);
    const out = join(work, 'crane-docker');
    await crane('pull', '--format=oci', ref, out);

    expect(upstreamDigest).toBe(m.digest);
    expect(digest).toBe(m.digest);
    expect(manifest.equals(m.body)).toBe(true);
    const layout = JSON.parse(readFileSync(join(out, 'index.json'), 'utf8')) as {
      manifests: { digest: string; mediaType: string }[];
    };
    expect(layout.manifests.map((d) => [d.digest, d.mediaType])).toEqual([
      [m.digest, 'application/vnd.docker.distribution.manifest.v2+json'],
    ]);
    expect(layoutBlob(out, m.digest).equals(m.body)).toBe(true);
    for (const b of m.blobs) expect(layoutBlob(out, b.digest).equals(b.bytes)).toBe(true);
  });

  it("GIVEN a multi-platform index in distribution WHEN crane pulls it through the mirror THEN the index and each platform's manifest keep the upstream's digests and bytes", async () => {
    const amd64 = image().layer(200_000).build();
    const arm64 = image().arch('arm64').layer(150_000).layer(500).build();
    const idx = index([amd64, arm64], {}, { platforms: true });
    await pushIndexToDist('team/crane-multi', 'v1', idx);
    const ref = viaMirror('team/crane-multi:v1');

    const digest = (await crane('digest', ref)).toString().trim();
    const manifest = await crane('manifest', ref);
    const armDigest = (await crane('digest', '--platform=linux/arm64', ref)).toString().trim();
    const armManifest = await crane('manifest', viaMirror(`team/crane-multi@${arm64.digest}`));
    const out = join(work, 'crane-multi');
    await crane('pull', '--format=oci', ref, out);

    expect(digest).toBe(idx.digest);
    expect(manifest.equals(idx.body)).toBe(true);
    expect(armDigest).toBe(arm64.digest);
    expect(armManifest.equals(arm64.body)).toBe(true);
    const layout = JSON.parse(readFileSync(join(out, 'index.json'), 'utf8')) as {
      manifests: { digest: string }[];
    };
    expect(layout.manifests.map((d) => d.digest)).toEqual([idx.digest]);
    expect(layoutBlob(out, idx.digest).equals(idx.body)).toBe(true);
    for (const child of idx.children) {
      expect(layoutBlob(out, child.digest).equals(child.body)).toBe(true);
      for (const b of child.blobs) expect(layoutBlob(out, b.digest).equals(b.bytes)).toBe(true);
    }
    expect(existsSync(join(out, 'oci-layout'))).toBe(true);
  });

  it('GIVEN an uncached image WHEN 100 clients pull every blob at once THEN each blob is fetched from the upstream exactly once and every client gets the exact bytes', async () => {
    const m = image().layer(1_000_000).layer(50_000).build();
    await pushToDist('team/many', 'v1', m);
    expect((await get('/v2/dist/team/many/manifests/v1')).status).toBe(200);
    for (const b of m.blobs) {
      const bodies = await Promise.all(
        Array.from({ length: 100 }, async () => {
          const res = await mirror.fetch(`/v2/dist/team/many/blobs/${b.digest}`);
          return { status: res.status, digest: sha(Buffer.from(await res.arrayBuffer())) };
        }),
      );
      expect(bodies.every((x) => x.status === 200 && x.digest === b.digest)).toBe(true);
      expect(proxy.blobGets.get(b.digest)).toBe(1);
    }
  });

  it('GIVEN the upstream dies mid-blob WHEN a client pulls THEN the pull fails, no partial blob is stored, and the next pull succeeds once the upstream is back', async () => {
    const m = image().layer(2_000_000).build();
    await pushToDist('team/cut', 'v1', m);
    const layer = m.blobs.find((b) => b.bytes.length === 2_000_000)!;
    proxy.mode = 'cut';
    try {
      const failed = await mirror
        .fetch(`/v2/dist/team/cut/blobs/${layer.digest}`)
        .then(async (res) => sha(Buffer.from(await res.arrayBuffer())))
        .catch(() => 'cut');
      expect(failed).toBe('cut');
    } finally {
      proxy.mode = 'pass';
    }
    await new Promise((r) => setTimeout(r, 200));
    expect(await stored(layer.digest)).toBe(false);
    const res = await mirror.fetch(`/v2/dist/team/cut/blobs/${layer.digest}`);
    expect(sha(Buffer.from(await res.arrayBuffer()))).toBe(layer.digest);
    expect(await stored(layer.digest)).toBe(true);
  });

  it('GIVEN the upstream serves bytes that do not match the digest WHEN a client pulls THEN the client never gets a whole body and nothing is stored', async () => {
    const m = image().layer(500_000).build();
    await pushToDist('team/bad', 'v1', m);
    const layer = m.blobs.find((b) => b.bytes.length === 500_000)!;
    proxy.mode = 'corrupt';
    try {
      const got = await mirror
        .fetch(`/v2/dist/team/bad/blobs/${layer.digest}`)
        .then(async (res) => Buffer.from(await res.arrayBuffer()).length)
        .catch(() => -1);
      expect(got).not.toBe(500_000);
    } finally {
      proxy.mode = 'pass';
    }
    await new Promise((r) => setTimeout(r, 200));
    expect(await stored(layer.digest)).toBe(false);
  });

  it('GIVEN a cached tag WHEN the upstream is down THEN the tag is served from the cache, and an uncached tag answers 503 UNAVAILABLE', async () => {
    const m = image().layer(1000).build();
    await pushToDist('team/down', 'v1', m);
    expect((await get('/v2/dist/team/down/manifests/v1')).status).toBe(200);
    proxy.mode = 'down';
    try {
      const cached = await get('/v2/dist/team/down/manifests/v1');
      expect(cached.status).toBe(200);
      expect(cached.headers.get('docker-content-digest')).toBe(m.digest);
      const missing = await get('/v2/dist/team/down/manifests/v2');
      expect(missing.status).toBe(503);
      expect(((await missing.json()) as { errors: { code: string }[] }).errors[0]!.code).toBe(
        'UNAVAILABLE',
      );
    } finally {
      proxy.mode = 'pass';
    }
  });

  it('GIVEN a containerd mirror request with ?ns=dist.example WHEN it asks for team/app:v1 THEN it gets dist/team/app:v1', async () => {
    const direct = await get('/v2/dist/team/app/manifests/v1');
    const viaNs = await get('/v2/team/app/manifests/v1?ns=dist.example');
    expect(viaNs.status).toBe(200);
    expect(viaNs.headers.get('docker-content-digest')).toBe(
      direct.headers.get('docker-content-digest'),
    );
  });

  it('GIVEN an image in a berth with token auth WHEN it is pulled through the mirror with credentials from a file THEN digests are identical', async () => {
    const m = image().layer(10_000).build();
    const up = new RegistryClient({
      registry: new URL(upBerth.url).host,
      plainHttp: true,
      credentials: { username: 'alice', password: 'pw' },
    });
    for (const b of m.blobs)
      await up.pushBlob('team/app', b.digest, b.bytes.length, () => Readable.from([b.bytes]));
    await up.putManifest('team/app', 'v1', m.mediaType, m.body);
    const res = await get('/v2/up/team/app/manifests/v1');
    expect(res.status).toBe(200);
    expect(sha(Buffer.from(await res.arrayBuffer()))).toBe(m.digest);
    for (const b of m.blobs) {
      const blob = await mirror.fetch(`/v2/up/team/app/blobs/${b.digest}`);
      expect(sha(Buffer.from(await blob.arrayBuffer()))).toBe(b.digest);
    }
  });
});
