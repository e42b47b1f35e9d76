import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { parseDigest, type Digest } from '../../../server/registry/reference.js';
import { Registry } from '../../../server/registry/repository.js';
import { Uploads } from '../../../server/registry/uploads.js';
import { CachingDriver } from '../../../server/storage/cache.js';
import { cachedViews } from '../../../server/storage/views.js';
import { InMemoryDriver } from '../../../server/storage/drivers/inmemory.js';
import { Paths } from '../../../server/storage/paths.js';
import { silentLogger } from '../../../server/util/log.js';
import { sha256 } from '../../support/image.js';

/** replica is one server's view of shared storage: its own cache, registry and uploads. */
function replica(shared: InMemoryDriver) {
  const driver = new CachingDriver(shared, {
    immutable: Paths.immutable,
    ttlMs: 3_600_000,
    listable: Paths.listCached,
    listTtlMs: 3_600_000,
    maxBytes: 1 << 20,
  });
  const registry = new Registry(cachedViews(driver), { allowSparse: false });
  const uploads = new Uploads(cachedViews(driver), { ttlSeconds: 3600, log: silentLogger });
  const push = async (repo: string, bytes: Buffer): Promise<Digest> => {
    const digest = parseDigest(sha256(bytes));
    const s = await uploads.append(await uploads.start(repo), Readable.from([bytes]));
    await uploads.complete(s, digest, registry.repository(repo).blobs);
    return digest;
  };
  const read = async (repo: string, digest: Digest): Promise<Buffer> => {
    const blobs = registry.repository(repo).blobs;
    const chunks: Buffer[] = [];
    for await (const c of await blobs.open(await blobs.stat(digest))) chunks.push(c as Buffer);
    return Buffer.concat(chunks);
  };
  return { driver, registry, push, read };
}

function manifestOf(config: Digest, size: number): Buffer {
  return Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: config.value, size },
      layers: [],
    }),
  );
}

describe('the metadata cache across replicas on one bucket', () => {
  it('GIVEN replica A has cached a blob that replica B then deleted WHEN A accepts a manifest naming it THEN MANIFEST_BLOB_UNKNOWN, and A forgets the blob', async () => {
    const shared = new InMemoryDriver();
    const a = replica(shared);
    const b = replica(shared);
    const bytes = Buffer.from('{"architecture":"amd64"}');
    const digest = await a.push('app', bytes);
    await a.registry.repository('app').blobs.stat(digest);
    await b.registry.repository('app').blobs.delete(digest);
    // Within the TTL A still answers from memory (as distribution's descriptor cache does)…
    await expect(a.registry.repository('app').blobs.stat(digest)).resolves.toMatchObject({
      size: bytes.length,
    });
    // …but a manifest is checked against storage itself, and the stale entry is dropped.
    await expect(
      a.registry.repository('app').put(manifestOf(digest, bytes.length), undefined),
    ).rejects.toMatchObject({ code: 'MANIFEST_BLOB_UNKNOWN' });
    await expect(a.registry.repository('app').blobs.stat(digest)).rejects.toMatchObject({
      code: 'BLOB_UNKNOWN',
    });
    expect(Object.keys(shared.snapshot()).some((k) => k.includes('/_manifests/'))).toBe(false);
  });

  it('GIVEN replica A has cached a blob whose bytes B collected and re-uploaded WHEN A serves it THEN the new bytes are found and the digest matches', async () => {
    const shared = new InMemoryDriver();
    const a = replica(shared);
    const b = replica(shared);
    const bytes = randomBytes(4096);
    const digest = await a.push('app', bytes);
    expect((await a.read('app', digest)).equals(bytes)).toBe(true);
    // What garbage collection does on B: link, descriptor and segments gone; then a new push.
    const old = JSON.parse((await shared.get(Paths.blob(digest))).toString()) as {
      segments: { key: string }[];
    };
    await b.driver.delete(Paths.layer('app', digest));
    await b.driver.delete(Paths.blob(digest));
    for (const s of old.segments) await b.driver.delete(s.key);
    await b.push('app', bytes);
    const served = await a.read('app', digest);
    expect(sha256(served)).toBe(digest.value);
  });

  it('GIVEN replica A has cached a blob whose bytes are gone for good WHEN A serves it THEN BLOB_UNKNOWN before any byte', async () => {
    const shared = new InMemoryDriver();
    const a = replica(shared);
    const b = replica(shared);
    const digest = await a.push('app', randomBytes(100));
    await a.registry.repository('app').blobs.stat(digest);
    await b.driver.deletePrefix('segments/');
    await expect(a.read('app', digest)).rejects.toMatchObject({ code: 'BLOB_UNKNOWN' });
  });

  it('GIVEN a blob deleted from the global index by another replica WHEN an upload of the same bytes commits THEN it links its own bytes, never the stale descriptor', async () => {
    const shared = new InMemoryDriver();
    const a = replica(shared);
    const b = replica(shared);
    const bytes = randomBytes(2048);
    const digest = await a.push('one', bytes);
    await a.driver.get(Paths.blob(digest)); // cached on A
    const old = JSON.parse((await shared.get(Paths.blob(digest))).toString()) as {
      segments: { key: string }[];
    };
    await b.driver.delete(Paths.blob(digest));
    await b.driver.delete(Paths.layer('one', digest));
    for (const s of old.segments) await b.driver.delete(s.key);
    await a.push('two', bytes);
    expect((await b.read('two', digest)).equals(bytes)).toBe(true);
  });
});
