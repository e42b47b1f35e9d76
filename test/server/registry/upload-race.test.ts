import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { parseDigest, type Digest } from '../../../server/registry/reference.js';
import { Registry } from '../../../server/registry/repository.js';
import { Uploads, type LiveSession } from '../../../server/registry/uploads.js';
import type { StorageDriver } from '../../../server/storage/driver.js';
import { FilesystemDriver } from '../../../server/storage/drivers/filesystem.js';
import { InMemoryDriver } from '../../../server/storage/drivers/inmemory.js';
import { Paths } from '../../../server/storage/paths.js';
import { silentLogger } from '../../../server/util/log.js';
import { sha256 } from '../../support/image.js';
import { startTestRegistry, type TestRegistry } from '../../support/server.js';
import { mulberry32 } from '../../support/tag-race.js';
import {
  Gate,
  objectKeys,
  raceSessions,
  raceViolations,
  uploadViolations,
} from '../../support/upload-race.js';
import { directViews } from '../../../server/storage/views.js';
import { ManualClock } from '../../support/clock.js';
import { scratchDir } from '../../support/scratch.js';

const TTL_SECONDS = 60;

const drivers: [string, () => StorageDriver][] = [
  ['in-memory', () => new InMemoryDriver()],
  ['filesystem', () => new FilesystemDriver(scratchDir('berth-upload-race-'))],
];

/** settle is a promise's outcome as a value: what it resolved to, or the error's code. */
async function settle(
  p: Promise<unknown>,
): Promise<{ ok: true } | { code: string; status: number }> {
  try {
    await p;
    return { ok: true };
  } catch (err) {
    const e = err as { code?: string; status?: number };
    return { code: String(e.code), status: e.status ?? 500 };
  }
}

const isRecordWrite = (id: string) => (method: string, key: string) =>
  key === Paths.upload(id) && ['put', 'putIfVersion', 'putIfAbsent'].includes(method);
const isLinkWrite = (method: string, key: string) =>
  method !== 'getVersioned' &&
  method !== 'get' &&
  (key.startsWith('blobs/') || key.includes('/_layers/'));

describe.each(drivers)('upload sessions racing on the %s driver', (_, make) => {
  function setup() {
    const clock = new ManualClock({ start: 1_000_000 });
    const driver = make();
    const gate = new Gate(driver);
    const uploads = new Uploads(directViews(gate.driver), {
      ttlSeconds: TTL_SECONDS,
      clock,
      log: silentLogger,
    });
    const registry = new Registry(directViews(gate.driver), { allowSparse: false });
    const linker = registry.repository('repo').blobs;
    /** opened is a session holding `first` (saved by a chunk), as a request reads it. */
    const opened = async (first: Buffer, streamed = false): Promise<LiveSession> => {
      const s = await uploads.append(
        uploads.open('repo', 'sha256'),
        Readable.from([first]),
        streamed ? {} : { rangeStart: 0, rangeEnd: first.length - 1, contentLength: first.length },
      );
      return uploads.get('repo', s.id);
    };
    const readBack = async (digest: Digest): Promise<Buffer | undefined> => {
      const repo = registry.repository('repo');
      const desc = await repo.blobs.stat(digest).catch(() => undefined);
      if (desc === undefined) return undefined;
      const chunks: Buffer[] = [];
      for await (const c of await repo.blobs.open(desc)) chunks.push(c as Buffer);
      return Buffer.concat(chunks);
    };
    const segmentsOf = (id: string) => objectKeys(driver, Paths.segmentsOf(id));
    return {
      driver,
      gate,
      uploads,
      linker,
      opened,
      readBack,
      segmentsOf,
      advance: (s: number) => clock.advance(s * 1000),
    };
  }

  it('GIVEN a commit held after its claim WHEN the session is cancelled THEN the cancel answers BLOB_UPLOAD_UNKNOWN, discards nothing, and the blob reads back whole', async () => {
    const { gate, uploads, linker, opened, readBack, driver } = setup();
    const data = randomBytes(5000);
    const digest = parseDigest(sha256(data));
    const forCommit = await opened(data);
    const forCancel = await uploads.get('repo', forCommit.id);
    const held = gate.hold(isLinkWrite);

    const committing = settle(uploads.complete(forCommit, digest, linker));
    await held.reached;
    const cancelled = await settle(uploads.cancel(forCancel));
    held.release();

    expect(await committing).toEqual({ ok: true });
    expect(await uploadViolations(driver)).toEqual([]);
    expect((await readBack(digest))?.equals(data)).toBe(true);
    expect(cancelled).toEqual({ code: 'BLOB_UPLOAD_UNKNOWN', status: 404 });
  });

  it('GIVEN two commits of one session as one digest in the same millisecond WHEN the second runs while the first is held after its claim THEN only the first succeeds and the blob reads back whole', async () => {
    const { gate, uploads, linker, opened, readBack, driver } = setup();
    const data = randomBytes(5000);
    const digest = parseDigest(sha256(data));
    const first = await opened(data);
    const second = await uploads.get('repo', first.id);
    const held = gate.hold(isLinkWrite, 2);

    const committing = settle(uploads.complete(first, digest, linker));
    await held.reached;
    const again = await settle(uploads.complete(second, digest, linker));
    held.release();

    expect(await committing).toEqual({ ok: true });
    expect(await uploadViolations(driver)).toEqual([]);
    expect((await readBack(digest))?.equals(data)).toBe(true);
    expect(again).toEqual({ code: 'BLOB_UPLOAD_UNKNOWN', status: 404 });
  });

  it('GIVEN a cancel held after its tombstone WHEN the session is committed THEN the commit answers BLOB_UPLOAD_UNKNOWN and no descriptor names the discarded bytes', async () => {
    const { gate, uploads, linker, opened, readBack, driver, segmentsOf } = setup();
    const data = randomBytes(5000);
    const digest = parseDigest(sha256(data));
    const forCancel = await opened(data);
    const forCommit = await uploads.get('repo', forCancel.id);
    const held = gate.hold((m, k) => m === 'delete' && k.startsWith('segments/'));

    const cancelling = settle(uploads.cancel(forCancel));
    await held.reached;
    const committed = await settle(uploads.complete(forCommit, digest, linker));
    held.release();

    expect(await cancelling).toEqual({ ok: true });
    expect(committed).toEqual({ code: 'BLOB_UPLOAD_UNKNOWN', status: 404 });
    expect(await readBack(digest)).toBeUndefined();
    expect(await segmentsOf(forCancel.id)).toEqual([]);
    expect(await uploadViolations(driver)).toEqual([]);
  });

  it('GIVEN a closing PUT with the last bytes held while they are written WHEN the session is cancelled THEN the PUT answers BLOB_UPLOAD_UNKNOWN and its own bytes go too', async () => {
    const { gate, uploads, linker, opened, readBack, driver, segmentsOf } = setup();
    const first = randomBytes(4000);
    const last = randomBytes(3000);
    const digest = parseDigest(sha256(Buffer.concat([first, last])));
    const forCancel = await opened(first);
    const forCommit = await uploads.get('repo', forCancel.id);
    const held = gate.hold((m, k) => m === 'writeStream' && k.endsWith(digest.hex));

    const closing = settle(
      uploads.complete(forCommit, digest, linker, { body: Readable.from([last]) }),
    );
    await held.reached;
    const cancelled = await settle(uploads.cancel(forCancel));
    held.release();

    expect(cancelled).toEqual({ ok: true });
    expect(await closing).toEqual({ code: 'BLOB_UPLOAD_UNKNOWN', status: 404 });
    expect(await readBack(digest)).toBeUndefined();
    expect(await segmentsOf(forCancel.id)).toEqual([]);
    expect(await uploadViolations(driver)).toEqual([]);
  });

  it('GIVEN a session whose first bytes were streamed WHEN it is cancelled while a closing PUT re-hashes them THEN the PUT answers BLOB_UPLOAD_UNKNOWN, not a server error', async () => {
    const { gate, uploads, linker, opened, driver, segmentsOf } = setup();
    const first = randomBytes(4000);
    const digest = parseDigest(sha256(Buffer.concat([first, first])));
    const forCancel = await opened(first, true);
    const forCommit = await uploads.get('repo', forCancel.id);
    // The closing request reads the stored bytes to resume their hash: held at that read.
    const held = gate.hold((m, k) => m === 'read' && k.startsWith('segments/'));

    const closing = settle(
      uploads.complete(forCommit, digest, linker, { body: Readable.from([first]) }),
    );
    await held.reached;
    const cancelled = await settle(uploads.cancel(forCancel));
    held.release();

    expect(cancelled).toEqual({ ok: true });
    expect(await closing).toEqual({ code: 'BLOB_UPLOAD_UNKNOWN', status: 404 });
    expect(await segmentsOf(forCancel.id)).toEqual([]);
    expect(await uploadViolations(driver)).toEqual([]);
  });

  it('GIVEN two chunks at one offset WHEN the first is held before its record is saved until the second one answered THEN the first gets 416 and leaves no bytes, and the session holds exactly the second', async () => {
    const { gate, uploads, opened, driver, segmentsOf } = setup();
    const first = randomBytes(2000);
    const s = await opened(first);
    const again = await uploads.get('repo', s.id);
    const [mine, theirs] = [randomBytes(1500), randomBytes(1700)];
    const range = (b: Buffer) => ({
      rangeStart: first.length,
      rangeEnd: first.length + b.length - 1,
      contentLength: b.length,
    });
    const held = gate.hold(isRecordWrite(s.id), 1);

    const appending = settle(uploads.append(s, Readable.from([mine]), range(mine)));
    await held.reached;
    const theirsDone = await settle(uploads.append(again, Readable.from([theirs]), range(theirs)));
    held.release();

    expect(theirsDone).toEqual({ ok: true });
    expect(await appending).toEqual({ code: 'BLOB_UPLOAD_INVALID', status: 416 });
    const now = await uploads.get('repo', s.id);
    expect(now.offset).toBe(first.length + theirs.length);
    expect((await segmentsOf(s.id)).sort()).toEqual(now.segments.map((x) => x.key).sort());
    const bytes: Buffer[] = [];
    for (const seg of now.segments) bytes.push(await driver.get(seg.key));
    expect(Buffer.concat(bytes).equals(Buffer.concat([first, theirs]))).toBe(true);
  });

  it('GIVEN a cancel that read the session before a chunk was added WHEN it runs THEN it cancels the session as it is now, new bytes included', async () => {
    const { uploads, opened, segmentsOf } = setup();
    const first = randomBytes(2000);
    const stale = await opened(first);
    const more = randomBytes(1000);
    await uploads.append(await uploads.get('repo', stale.id), Readable.from([more]), {
      rangeStart: first.length,
      rangeEnd: first.length + more.length - 1,
      contentLength: more.length,
    });

    await uploads.cancel(stale);

    await expect(uploads.get('repo', stale.id)).rejects.toMatchObject({
      code: 'BLOB_UPLOAD_UNKNOWN',
    });
    expect(await segmentsOf(stale.id)).toEqual([]);
  });

  it('GIVEN a commit that read its session just before it expired and is held after its claim WHEN the purger runs THEN the claim is left alone and the blob reads back whole', async () => {
    const { gate, uploads, linker, opened, readBack, driver, advance } = setup();
    const data = randomBytes(5000);
    const digest = parseDigest(sha256(data));
    const s = await opened(data);
    advance(TTL_SECONDS - 1);
    const forCommit = await uploads.get('repo', s.id);
    const held = gate.hold(isLinkWrite);

    const committing = settle(uploads.complete(forCommit, digest, linker));
    await held.reached;
    advance(2);
    const purged = await uploads.purgeExpired();
    held.release();

    expect(await committing).toEqual({ ok: true });
    expect(await uploadViolations(driver)).toEqual([]);
    expect((await readBack(digest))?.equals(data)).toBe(true);
    expect(purged).toBe(0);
  });

  it('GIVEN the purger held after its tombstone on an expired session WHEN a commit that read it before expiry claims it THEN the commit answers BLOB_UPLOAD_UNKNOWN and no descriptor names the purged bytes', async () => {
    const { gate, uploads, linker, opened, readBack, driver, advance, segmentsOf } = setup();
    const data = randomBytes(5000);
    const digest = parseDigest(sha256(data));
    const s = await opened(data);
    advance(TTL_SECONDS - 1);
    const forCommit = await uploads.get('repo', s.id);
    advance(2);
    const held = gate.hold((m, k) => m === 'delete' && k.startsWith('segments/'));

    const purging = uploads.purgeExpired();
    await held.reached;
    const committed = await settle(uploads.complete(forCommit, digest, linker));
    held.release();

    expect(await purging).toBe(1);
    expect(committed).toEqual({ code: 'BLOB_UPLOAD_UNKNOWN', status: 404 });
    expect(await readBack(digest)).toBeUndefined();
    expect(await segmentsOf(s.id)).toEqual([]);
    expect(await uploadViolations(driver)).toEqual([]);
  });

  it('GIVEN a commit that read its session just before it expired and is held before its claim WHEN another request finds the session expired THEN that request discards it and the commit answers BLOB_UPLOAD_UNKNOWN', async () => {
    const { gate, uploads, linker, opened, readBack, driver, advance, segmentsOf } = setup();
    const data = randomBytes(5000);
    const digest = parseDigest(sha256(data));
    const s = await opened(data);
    advance(TTL_SECONDS - 1);
    const forCommit = await uploads.get('repo', s.id);
    const held = gate.hold(isRecordWrite(s.id), 1);

    const committing = settle(uploads.complete(forCommit, digest, linker));
    await held.reached;
    advance(2);
    const late = await settle(uploads.get('repo', s.id));
    held.release();

    expect(late).toEqual({ code: 'BLOB_UPLOAD_UNKNOWN', status: 404 });
    expect(await committing).toEqual({ code: 'BLOB_UPLOAD_UNKNOWN', status: 404 });
    expect(await readBack(digest)).toBeUndefined();
    expect(await segmentsOf(s.id)).toEqual([]);
    expect(await uploadViolations(driver)).toEqual([]);
  });
});

describe('upload requests racing over HTTP', () => {
  const regs: TestRegistry[] = [];
  afterEach(async () => {
    await Promise.all(regs.splice(0).map((r) => r.close()));
  });

  it('GIVEN two replicas on one filesystem folder WHEN many sessions each get a closing PUT, a DELETE and chunks at once THEN at most one of them wins, every blob answered 201 reads back whole, and every segment is named by a descriptor or an open session', async () => {
    const root = scratchDir('berth-upload-race-http-');
    for (let i = 0; i < 2; i++)
      regs.push(await startTestRegistry({ driver: new FilesystemDriver(root) }));

    const races = await raceSessions(regs, mulberry32(15), 120, 12, { cancelLagTurns: 200 });

    expect(await raceViolations(regs, races)).toEqual([]);
    expect(await uploadViolations(new FilesystemDriver(root))).toEqual([]);
    // The race went both ways: commits and cancels both won somewhere.
    expect(races.some((r) => r.stored && r.put.includes(201) && r.del.includes(404))).toBe(true);
    expect(races.some((r) => r.stored && r.del.includes(204) && r.put.includes(404))).toBe(true);
  });
});
