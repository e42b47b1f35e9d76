import { afterEach, describe, expect, it } from 'vitest';
import type { TarEntry } from '../../../server/image/tar.js';
import { archive, gzip, tarBytes } from '../../support/archive.js';
import { authConfig, basic } from '../../support/auth.js';
import { image, index, sha256, type Built } from '../../support/image.js';
import { startTestRegistry, type TestRegistry } from '../../support/server.js';

let reg: TestRegistry | undefined;
afterEach(async () => {
  await reg?.close();
  reg = undefined;
});

function withAuth() {
  return authConfig('htpasswd')
    .user('alice', 'pw')
    .user('bob', 'pw')
    .rule({ users: ['alice'], repositories: ['**'], actions: ['pull', 'push', 'delete'] })
    .rule({ users: ['bob'], repositories: ['team/**'], actions: ['pull'] })
    .rule({ users: ['bob'], repositories: ['bob/**'], actions: ['pull', 'push'] })
    .build();
}

async function start(opts: { auth?: boolean; importBytes?: number; readOnly?: boolean } = {}) {
  reg = await startTestRegistry({
    config: {
      ...(opts.readOnly ? { readOnly: true } : {}),
      // Events are listed as soon as written, so "no event" is checked for real.
      notifications: { settleMillis: 0 },
      ...(opts.auth ? { auth: withAuth() } : {}),
      ...(opts.importBytes ? { limits: { importBytes: opts.importBytes } } : {}),
    },
  });
  return reg;
}

const alice = { authorization: basic('alice', 'pw') };

/** post imports `body`; `query` is the query string without `?`. */
const post = (r: TestRegistry, body: Buffer, query = '', headers: Record<string, string> = {}) =>
  r.fetch(`/v2/_berth/import${query ? `?${query}` : ''}`, { method: 'POST', body, headers });

const code = async (res: Response) =>
  ((await res.json()) as { errors: { code: string }[] }).errors[0]!.code;

const ACCEPT = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
].join(', ');

async function manifest(r: TestRegistry, repo: string, ref: string, headers = {}) {
  const res = await r.fetch(`/v2/${repo}/manifests/${ref}`, {
    headers: { accept: ACCEPT, ...headers },
  });
  return { status: res.status, body: Buffer.from(await res.arrayBuffer()) };
}

async function blobHash(r: TestRegistry, repo: string, digest: string, headers = {}) {
  const res = await r.fetch(`/v2/${repo}/blobs/${digest}`, { headers });
  return sha256(Buffer.from(await res.arrayBuffer()));
}

async function events(r: TestRegistry, headers = {}) {
  const res = await r.fetch('/v2/_berth/events?n=1000', { headers });
  return ((await res.json()) as { events: { action: string; target: Record<string, string> }[] })
    .events;
}

async function catalog(r: TestRegistry, headers = {}) {
  return ((await (await r.fetch('/v2/_catalog', { headers })).json()) as { repositories: string[] })
    .repositories;
}

function multiPlatform() {
  const amd = image().arch('amd64').layer(3000).layer(100).build();
  const arm = image().arch('arm64').layer(2000).build();
  const multi = index([amd, arm]);
  const sbom = image().artifact('application/vnd.example.sbom').layer(200).subject(multi).build();
  return { amd, arm, multi, sbom };
}

const allBlobs = (...bs: Built[]) =>
  bs.flatMap((b) => [...b.blobs, ...b.children.flatMap((c) => c.blobs)]);

describe('POST /v2/_berth/import', () => {
  it('GIVEN an oci-archive of a two-platform index with a referrer WHEN imported THEN the index, both platforms and the referrer land byte-exact in the named repository, tagged, with push events', async () => {
    const r = await start();
    const { amd, arm, multi, sbom } = multiPlatform();
    const tar = await archive().image(multi, 'team/app:v1').referrer(sbom).oci();

    const res = await post(r, tar);

    expect(res.status).toBe(200);
    const summary = (await res.json()) as Record<string, unknown>;
    expect(summary).toEqual({
      images: [{ repository: 'team/app', digest: multi.digest, tags: ['v1'] }],
      manifests: 4,
      blobsWritten: 4 + allBlobs(multi, sbom).length,
      blobsSkipped: 0,
      bytes: expect.any(Number) as number,
    });
    expect((await manifest(r, 'team/app', 'v1')).body).toEqual(multi.body);
    for (const m of [amd, arm, sbom])
      expect((await manifest(r, 'team/app', m.digest)).body).toEqual(m.body);
    for (const b of allBlobs(multi, sbom))
      expect(await blobHash(r, 'team/app', b.digest)).toBe(b.digest);
    const referrers = (await (await r.fetch(`/v2/team/app/referrers/${multi.digest}`)).json()) as {
      manifests: { digest: string }[];
    };
    expect(referrers.manifests.map((m) => m.digest)).toEqual([sbom.digest]);
    const pushed = (await events(r)).filter((e) => e.action === 'push');
    expect(pushed.some((e) => e.target.tag === 'v1' && e.target.digest === multi.digest)).toBe(
      true,
    );
    expect(await catalog(r)).toEqual(['team/app']);
  });

  it('GIVEN the same archive gzipped WHEN imported twice under ?repository= and ?tag= THEN it lands there and the second import writes no blob', async () => {
    const r = await start();
    const { multi, sbom } = multiPlatform();
    const tar = gzip(await archive().image(multi, 'v1').referrer(sbom).oci());

    const first = (await (await post(r, tar, 'repository=mirror/app&tag=prod')).json()) as {
      blobsWritten: number;
    };
    const again = await post(r, tar, 'repository=mirror/app&tag=prod');

    expect(first.blobsWritten).toBeGreaterThan(0);
    expect(again.status).toBe(200);
    expect(await again.json()).toMatchObject({ blobsWritten: 0, bytes: 0, manifests: 4 });
    expect((await manifest(r, 'mirror/app', 'prod')).body).toEqual(multi.body);
  });

  it('GIVEN a layout tarred with its folder and an image named by a bare tag WHEN imported with ?repository= THEN the tag is kept', async () => {
    const r = await start();
    const img = image().layer(500).build();
    const tar = await archive().image(img, 'v3').inFolder('layout').oci();

    const res = await post(r, tar, 'repository=team/folder');

    expect(res.status).toBe(200);
    expect((await manifest(r, 'team/folder', 'v3')).body).toEqual(img.body);
  });

  it('GIVEN docker-archives, modern and legacy WHEN imported THEN RepoTags name them: the modern keeps its manifest digest, the legacy gets a made one with the same config and layers', async () => {
    const r = await start();
    const modern = image().docker().layer(700).build();
    const legacy = image().docker().layer(900).layer(300).build();

    const a = await post(r, await archive().image(modern, 'team/modern:v1').docker('modern'));
    const b = await post(r, await archive().image(legacy, 'team/legacy:v1').docker('legacy'));

    expect(a.status).toBe(200);
    expect((await manifest(r, 'team/modern', 'v1')).body).toEqual(modern.body);
    expect(b.status).toBe(200);
    const made = JSON.parse((await manifest(r, 'team/legacy', 'v1')).body.toString()) as {
      config: { digest: string };
      layers: { digest: string }[];
    };
    expect([made.config.digest, ...made.layers.map((l) => l.digest)]).toEqual(
      legacy.blobs.map((b) => b.digest),
    );
    for (const bl of legacy.blobs)
      expect(await blobHash(r, 'team/legacy', bl.digest)).toBe(bl.digest);
  });

  it('GIVEN an archive with a blob whose bytes do not match its name WHEN imported THEN 400 DIGEST_INVALID and no tag, manifest, repository or event', async () => {
    const r = await start();
    const img = image().layer(4000).build();
    const tar = await archive().image(img, 'team/bad:v1').oci();
    const layer = img.blobs[1]!.bytes;
    const at = tar.indexOf(layer);
    tar[at + 100] = tar[at + 100]! ^ 0xff;

    const res = await post(r, tar);

    expect(res.status).toBe(400);
    expect(await code(res)).toBe('DIGEST_INVALID');
    expect((await manifest(r, 'team/bad', 'v1')).status).toBe(404);
    expect(await catalog(r)).toEqual([]);
    expect(await events(r)).toEqual([]);
  });

  it('GIVEN a truncated archive, plain or gzipped WHEN imported THEN 400 ARCHIVE_INVALID and nothing is tagged', async () => {
    const r = await start();
    const img = image().layer(4000).build();
    const tar = await archive().image(img, 'team/cut:v1').oci();

    const plain = await post(r, tar.subarray(0, tar.length - 3000));
    const zipped = gzip(tar);
    const gz = await post(r, zipped.subarray(0, zipped.length - 100));

    expect(plain.status).toBe(400);
    expect(await code(plain)).toBe('ARCHIVE_INVALID');
    expect(gz.status).toBe(400);
    expect(await code(gz)).toBe('ARCHIVE_INVALID');
    expect(await catalog(r)).toEqual([]);
    expect(await events(r)).toEqual([]);
  });

  it('GIVEN hostile members (a path with .., an absolute path, a symlink out) WHEN imported THEN 400 ARCHIVE_INVALID', async () => {
    const r = await start();
    const img = image().layer(100).build();
    for (const hostile of [
      {
        type: 'file' as const,
        path: '../../etc/cron.d/x',
        mode: 0o644,
        size: 1,
        source: Buffer.from('x'),
      },
      { type: 'symlink' as const, path: 'blobs/sha256/link', target: '../../../etc/passwd' },
    ]) {
      const res = await post(r, await archive().image(img, 'team/x:v1').with(hostile).oci());
      expect(res.status).toBe(400);
      expect(await code(res)).toBe('ARCHIVE_INVALID');
    }
    expect(await catalog(r)).toEqual([]);
  });

  it('GIVEN archives that name no repository, miss a blob, or are no image archive WHEN imported THEN 400 with the matching code', async () => {
    const r = await start();
    const img = image().layer(100).build();
    const emptyIndex: TarEntry = {
      type: 'file',
      path: 'index.json',
      mode: 0o644,
      size: 0,
      source: Buffer.alloc(0),
    };
    const withoutLayer = { ...img, blobs: [img.blobs[0]!] };

    const unnamed = await post(r, await archive().image(img).oci());
    const bare = await post(r, await archive().image(img, 'v1').oci());
    const noLayout = await post(r, await tarBytes([emptyIndex]));
    const noBlob = await post(r, await archive().image(withoutLayer, 'team/m:v1').oci());

    expect([unnamed.status, await code(unnamed)]).toEqual([400, 'NAME_INVALID']);
    expect([bare.status, await code(bare)]).toEqual([400, 'NAME_INVALID']);
    expect([noLayout.status, await code(noLayout)]).toEqual([400, 'ARCHIVE_INVALID']);
    expect([noBlob.status, await code(noBlob)]).toEqual([400, 'MANIFEST_BLOB_UNKNOWN']);
    expect(await catalog(r)).toEqual([]);
  });

  it('GIVEN an archive above limits.importBytes WHEN imported, declared or streamed THEN 413 SIZE_INVALID', async () => {
    const r = await start({ importBytes: 20_000 });
    const tar = await archive().image(image().layer(30_000).build(), 'team/big:v1').oci();

    const declared = await post(r, tar);
    const streamed = await r.fetch('/v2/_berth/import', {
      method: 'POST',
      body: new Blob([tar]).stream(),
      duplex: 'half',
    });

    expect([declared.status, await code(declared)]).toEqual([413, 'SIZE_INVALID']);
    expect([streamed.status, await code(streamed)]).toEqual([413, 'SIZE_INVALID']);
  });

  it('GIVEN auth WHEN an anonymous caller, a puller, or a pusher elsewhere imports THEN 401 or 403 and nothing is written; a pusher of every target succeeds', async () => {
    const r = await start({ auth: true });
    const tar = await archive().image(image().layer(100).build(), 'team/app:v1').oci();
    const bob = { authorization: basic('bob', 'pw') };

    const anonymous = await post(r, tar);
    const puller = await post(r, tar, '', bob);
    const elsewhere = await post(r, tar, 'repository=team/app', bob);
    expect(anonymous.status).toBe(401);
    expect([puller.status, await code(puller)]).toEqual([403, 'DENIED']);
    expect([elsewhere.status, await code(elsewhere)]).toEqual([403, 'DENIED']);
    expect(await catalog(r, alice)).toEqual([]);
    expect(await events(r, alice)).toEqual([]);

    expect((await post(r, tar, 'repository=bob/app', bob)).status).toBe(200);
    expect((await post(r, tar, '', alice)).status).toBe(200);
    expect(await catalog(r, alice)).toEqual(['bob/app', 'team/app']);
  });

  it('GIVEN read-only mode WHEN an archive is imported THEN 405 UNSUPPORTED and nothing is written', async () => {
    const r = await start({ readOnly: true });
    const tar = await archive().image(image().layer(100).build(), 'team/ro:v1').oci();

    const res = await post(r, tar);

    expect([res.status, await code(res)]).toEqual([405, 'UNSUPPORTED']);
    expect(await catalog(r)).toEqual([]);
  });

  it('GIVEN a writable and a read-only server WHEN discover is asked THEN only the writable one advertises _berth/import', async () => {
    const endpoints = async (r: Awaited<ReturnType<typeof start>>) => {
      const d = (await (await r.fetch('/v2/_oci/ext/discover')).json()) as {
        extensions: { name: string; endpoints: string[] }[];
      };
      return d.extensions.flatMap((e) => e.endpoints);
    };

    expect(await endpoints(await start())).toContain('_berth/import');
    expect(await endpoints(await start({ readOnly: true }))).not.toContain('_berth/import');
  });
});
