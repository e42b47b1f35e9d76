import { Readable } from 'node:stream';
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { Registry } from '../../../server/registry/repository.js';
import { parseDigest } from '../../../server/registry/reference.js';
import { Uploads, type LiveSession } from '../../../server/registry/uploads.js';
import { Paths } from '../../../server/storage/paths.js';
import { InMemoryDriver } from '../../../server/storage/drivers/inmemory.js';
import { silentLogger } from '../../../server/util/log.js';
import { sha256 } from '../../support/image.js';
import { directViews } from '../../../server/storage/views.js';
import { ManualClock } from '../../support/clock.js';

function setup(ttlSeconds = 3600) {
  const clock = new ManualClock({ start: 1_000_000 });
  const driver = new InMemoryDriver();
  const aborted: Date[] = [];
  const uploads = new Uploads(directViews(driver), {
    ttlSeconds,
    clock,
    log: silentLogger,
    abortStale: async (d) => {
      aborted.push(d);
      return 0;
    },
  });
  const registry = new Registry(directViews(driver), { allowSparse: false });
  return { driver, uploads, registry, aborted, advance: (s: number) => clock.advance(s * 1000) };
}

describe('upload sessions', () => {
  it('GIVEN a session older than the TTL WHEN used THEN BLOB_UPLOAD_UNKNOWN and its bytes are gone', async () => {
    const { uploads, driver, advance } = setup(60);
    let s: LiveSession = await uploads.start('repo');
    s = await uploads.append(s, Readable.from([randomBytes(100)]), {
      rangeStart: 0,
      rangeEnd: 99,
      contentLength: 100,
    });
    advance(61);
    await expect(uploads.get('repo', s.id)).rejects.toMatchObject({ code: 'BLOB_UPLOAD_UNKNOWN' });
    expect(driver.snapshot()).toEqual({});
  });

  it('GIVEN a session never saved WHEN its token outlives the TTL THEN BLOB_UPLOAD_UNKNOWN, and within it the token alone names the session', async () => {
    const { uploads, driver, advance } = setup(60);
    const s = uploads.open('repo', 'sha512');
    expect(driver.snapshot()).toEqual({});
    const token = {
      name: 'repo',
      id: s.id,
      offset: 0,
      startedAt: s.startedAt,
      algorithm: 'sha512' as const,
    };
    const found = await uploads.get('repo', s.id, token);
    expect(found).toMatchObject({ id: s.id, offset: 0, algorithm: 'sha512', phase: 'open' });
    await expect(uploads.get('repo', s.id, { ...token, offset: 5 })).rejects.toMatchObject({
      code: 'BLOB_UPLOAD_UNKNOWN',
    });
    advance(61);
    await expect(uploads.get('repo', s.id, token)).rejects.toMatchObject({
      code: 'BLOB_UPLOAD_UNKNOWN',
    });
  });

  it('GIVEN a session never saved that is cancelled WHEN the TTL passes and the purger runs THEN its tombstone goes', async () => {
    const { uploads, driver, advance } = setup(60);
    const s = uploads.open('repo', 'sha256');
    const token = { name: 'repo', id: s.id, offset: 0, startedAt: s.startedAt };
    await uploads.cancel(await uploads.get('repo', s.id, token));
    await expect(uploads.get('repo', s.id, token)).rejects.toMatchObject({
      code: 'BLOB_UPLOAD_UNKNOWN',
    });
    expect(Object.keys(driver.snapshot())).toEqual([`uploads/${s.id}`]);
    advance(61);
    expect(await uploads.purgeExpired()).toBe(1);
    expect(driver.snapshot()).toEqual({});
  });

  it('GIVEN expired and live sessions WHEN purged THEN only expired ones go, and stale multipart uploads are aborted', async () => {
    const { uploads, driver, advance, aborted } = setup(60);
    const old = await uploads.append(
      await uploads.start('repo'),
      Readable.from([Buffer.from('old')]),
    );
    advance(30);
    const live = await uploads.append(
      await uploads.start('repo'),
      Readable.from([Buffer.from('live')]),
    );
    advance(31);
    expect(await uploads.purgeExpired()).toBe(1);
    expect(Object.keys(driver.snapshot()).some((k) => k.includes(old.id))).toBe(false);
    expect((await uploads.get('repo', live.id)).offset).toBe(4);
    expect(aborted).toHaveLength(1);
    expect(aborted[0]!.getTime()).toBe(1_000_000 + 61_000 - 60_000);
  });

  it('GIVEN a session that crashed mid-commit WHEN purged THEN bytes a blob points to are kept', async () => {
    const { uploads, registry, driver, advance } = setup(60);
    const data = Buffer.from('committed bytes');
    const s = await uploads.append(await uploads.start('repo'), Readable.from([data]));
    const digest = parseDigest(sha256(data));
    await uploads.complete(s, digest, registry.repository('repo').blobs);
    // Simulate a crash between linking and removing the session state.
    await driver.put(`uploads/${s.id}`, JSON.stringify({ ...s, committed: digest.value }));
    advance(61);
    await uploads.purgeExpired();
    const repo = registry.repository('repo');
    const desc = await repo.blobs.stat(digest);
    const chunks: Buffer[] = [];
    for await (const c of await repo.blobs.open(desc)) chunks.push(c as Buffer);
    expect(Buffer.concat(chunks).equals(data)).toBe(true);
    expect(Object.keys(driver.snapshot()).some((k) => k.startsWith('uploads/'))).toBe(false);
  });

  it('GIVEN a closing request that carried the last bytes WHEN the process dies before the session is removed and it is purged THEN the claim waits out the commit grace and the blob keeps its bytes', async () => {
    const { uploads, registry, driver, advance } = setup(60);
    const first = Buffer.from('first chunk, saved; ');
    const last = Buffer.from('last chunk, claimed by name');
    const data = Buffer.concat([first, last]);
    const digest = parseDigest(sha256(data));
    const saved = await uploads.append(await uploads.start('repo'), Readable.from([first]), {
      rangeStart: 0,
      rangeEnd: first.length - 1,
      contentLength: first.length,
    });
    // The process dies right after linking: the session removal never happens.
    const del = driver.delete.bind(driver);
    driver.delete = async (key) => {
      if (key.startsWith('uploads/')) throw new Error('process died');
      return del(key);
    };
    // (Outside a request the removal is awaited; its failure is logged, not thrown.)
    await uploads.complete(saved, digest, registry.repository('repo').blobs, {
      body: Readable.from([last]),
      rangeStart: first.length,
      rangeEnd: data.length - 1,
      contentLength: last.length,
    });
    driver.delete = del;
    // What storage holds: the session claimed before anything was linked.
    const stored = JSON.parse((await driver.get(`uploads/${saved.id}`)).toString()) as {
      committed?: string;
      committedAt?: number;
      offset: number;
    };
    expect(stored).toMatchObject({ committed: digest.value, offset: data.length });
    advance(61);
    expect(await uploads.purgeExpired()).toBe(0);
    advance(300);
    expect(await uploads.purgeExpired()).toBe(1);
    const repo = registry.repository('repo');
    const chunks: Buffer[] = [];
    for await (const c of await repo.blobs.open(await repo.blobs.stat(digest)))
      chunks.push(c as Buffer);
    expect(Buffer.concat(chunks).equals(data)).toBe(true);
    expect(Object.keys(driver.snapshot()).some((k) => k.startsWith('uploads/'))).toBe(false);
  });

  it('GIVEN a session an older version left with its claim only in a segment name WHEN purged THEN the blob keeps its bytes', async () => {
    const { uploads, registry, driver, advance } = setup(60);
    const first = Buffer.from('first chunk, saved; ');
    const last = Buffer.from('last chunk, claimed by name');
    const data = Buffer.concat([first, last]);
    const digest = parseDigest(sha256(data));
    const saved = await uploads.append(await uploads.start('repo'), Readable.from([first]));
    const before = await driver.get(`uploads/${saved.id}`);
    await uploads.complete(saved, digest, registry.repository('repo').blobs, {
      body: Readable.from([last]),
    });
    // An older version claimed only by name and died before removing the record.
    await driver.put(`uploads/${saved.id}`, before);
    advance(61);
    expect(await uploads.purgeExpired()).toBe(1);
    const repo = registry.repository('repo');
    const chunks: Buffer[] = [];
    for await (const c of await repo.blobs.open(await repo.blobs.stat(digest)))
      chunks.push(c as Buffer);
    expect(Buffer.concat(chunks).equals(data)).toBe(true);
    expect(Object.keys(driver.snapshot()).some((k) => k.startsWith('uploads/'))).toBe(false);
  });

  it('GIVEN an abandoned session whose closing request claimed a digest but never linked WHEN purged THEN its bytes go', async () => {
    const { uploads, driver, advance } = setup(60);
    const data = Buffer.from('never linked');
    const { id, startedAt } = await uploads.start('repo');
    // What an older version left: a live record naming a segment claimed in its name.
    const key = Paths.segment(id, 0, 'feedc0de', parseDigest(sha256(data)));
    await driver.put(key, data);
    await driver.put(
      Paths.upload(id),
      JSON.stringify({
        id,
        repo: 'repo',
        algorithm: 'sha256',
        offset: data.length,
        segments: [{ key, size: data.length }],
        startedAt,
      }),
    );
    const s = await uploads.get('repo', id);
    advance(61);
    expect(await uploads.purgeExpired()).toBe(1);
    expect(driver.snapshot()).toEqual({});
    expect(s.offset).toBe(data.length);
  });

  it('GIVEN bytes already stored WHEN another upload of them commits THEN its repository is linked to the stored bytes and its own are dropped', async () => {
    const { uploads, registry, driver } = setup();
    const data = randomBytes(3000);
    const digest = parseDigest(sha256(data));
    const first = await uploads.append(await uploads.start('one'), Readable.from([data]));
    await uploads.complete(first, digest, registry.repository('one').blobs);
    const second = await uploads.append(await uploads.start('two'), Readable.from([data]));
    const desc = await uploads.complete(second, digest, registry.repository('two').blobs);
    expect(desc.segments[0]!.key.startsWith(`segments/${first.id}/`)).toBe(true);
    const linked = await registry.repository('two').blobs.stat(digest);
    expect(linked.segments).toEqual(desc.segments);
    const keys = Object.keys(driver.snapshot());
    expect(keys.some((k) => k.startsWith(`segments/${second.id}/`))).toBe(false);
    expect(keys.filter((k) => k.startsWith('uploads/'))).toEqual([]);
  });

  it('GIVEN two uploads of the same bytes WHEN they commit at once THEN both repositories read the blob whole and one copy of the bytes is left', async () => {
    const { uploads, registry, driver } = setup();
    const data = randomBytes(3000);
    const digest = parseDigest(sha256(data));
    const mine = await uploads.append(await uploads.start('mine'), Readable.from([data]));
    const theirs = await uploads.append(await uploads.start('theirs'), Readable.from([data]));
    await Promise.all([
      uploads.complete(theirs, digest, registry.repository('theirs').blobs),
      uploads.complete(mine, digest, registry.repository('mine').blobs),
    ]);
    for (const name of ['mine', 'theirs']) {
      const repo = registry.repository(name);
      const chunks: Buffer[] = [];
      for await (const c of await repo.blobs.open(await repo.blobs.stat(digest)))
        chunks.push(c as Buffer);
      expect(Buffer.concat(chunks).equals(data), name).toBe(true);
    }
    const left = Object.keys(driver.snapshot()).filter((k) => k.startsWith('segments/'));
    expect(left).toHaveLength(1);
  });

  it('GIVEN a body that fails midway WHEN appended THEN the session keeps its old offset', async () => {
    const { uploads } = setup();
    let s: LiveSession = await uploads.start('repo');
    s = await uploads.append(s, Readable.from([Buffer.from('abc')]));
    const failing = new Readable({
      read() {
        this.destroy(new Error('client went away'));
      },
    });
    await expect(uploads.append(s, failing)).rejects.toThrow('client went away');
    expect((await uploads.get('repo', s.id)).offset).toBe(3);
  });

  it("GIVEN the same blob uploaded twice WHEN both commit THEN the second upload's bytes are dropped, not duplicated", async () => {
    const { uploads, registry, driver } = setup();
    const data = randomBytes(1000);
    const digest = parseDigest(sha256(data));
    for (const repo of ['a', 'b']) {
      const s = await uploads.append(await uploads.start(repo), Readable.from([data]));
      await uploads.complete(s, digest, registry.repository(repo).blobs);
    }
    const segs = Object.keys(driver.snapshot()).filter((k) => k.startsWith('segments/'));
    expect(segs).toHaveLength(1);
  });
});
