import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { readdirSync, writeFileSync } from 'node:fs';
import { mkdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import type { ByteSink, ByteSource, StorageDriver } from '../../../server/storage/driver.js';
import { DiskCachingDriver } from '../../../server/storage/diskcache.js';
import { FilesystemDriver } from '../../../server/storage/drivers/filesystem.js';
import { Paths } from '../../../server/storage/paths.js';
import { CollectingSink } from './driver-contract.js';
import { scratchDir } from '../../support/scratch.js';

const tempDir = () => scratchDir('berth-blobcache-');

/** Counted is a filesystem driver that counts the reads reaching it. */
class Counted extends FilesystemDriver {
  reads = 0;
  constructor() {
    super(tempDir());
  }
  override async read(key: string, offset?: number, length?: number): Promise<Readable> {
    this.reads++;
    return super.read(key, offset, length);
  }
  override async openSource(key: string, offset: number, length: number) {
    this.reads++;
    return super.openSource(key, offset, length);
  }
}

/** FailingSink takes `ok` writes, then fails every later one (a client gone mid-pull). */
class FailingSink extends EventEmitter implements ByteSink {
  constructor(private ok: number) {
    super();
  }
  write(_chunk: Uint8Array, cb: (err?: Error | null) => void): boolean {
    const err = this.ok-- > 0 ? null : new Error('client went away');
    setImmediate(() => cb(err));
    return true;
  }
}

const MiB = 1024 * 1024;
const seg = (n: number) => `segments/u-${n}/0-abcd`;
const fileOf = (key: string) => key.replaceAll('/', '~');

function cache(inner: StorageDriver, dir = tempDir(), maxBytes = 1 << 30) {
  return new DiskCachingDriver(inner, { dir, maxBytes, cacheable: Paths.isSegment });
}

async function relay(d: StorageDriver, key: string, offset: number, length: number) {
  const src: ByteSource | undefined = await d.openSource!(key, offset, length);
  expect(src, `a source for ${key} ${offset}+${length}`).toBeDefined();
  const sink = new CollectingSink();
  await src!.copyTo(sink);
  return sink.bytes();
}

async function readAll(d: StorageDriver, key: string, offset?: number, length?: number) {
  const chunks: Buffer[] = [];
  for await (const c of await d.read(key, offset, length)) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** until checks `cond` once the cache has finished what reads left it to do. */
async function until(
  d: DiskCachingDriver,
  what: string,
  cond: () => Promise<boolean>,
): Promise<void> {
  await d.settled();
  expect(await cond(), what).toBe(true);
}

/** stored writes `bytes` into storage directly, as another replica's push would. */
async function stored(inner: StorageDriver, key: string, bytes: Buffer) {
  await inner.writeStream(key, Readable.from([bytes]), bytes.length);
}

describe('DiskCachingDriver', () => {
  it('GIVEN a segment in storage WHEN relayed from its first byte THEN a copy is kept and later reads, whole or in part, come from it', async () => {
    const inner = new Counted();
    const dir = tempDir();
    const d = cache(inner, dir);
    const bytes = randomBytes(3 * MiB + 7);
    await stored(inner, seg(1), bytes);
    expect((await relay(d, seg(1), 0, bytes.length)).equals(bytes)).toBe(true);
    await until(d, 'the copy is kept', async () => (await d.cached(seg(1))) === bytes.length);
    const reads = inner.reads;
    expect((await relay(d, seg(1), 0, bytes.length)).equals(bytes)).toBe(true);
    expect((await relay(d, seg(1), 17, 2 * MiB)).equals(bytes.subarray(17, 17 + 2 * MiB))).toBe(
      true,
    );
    expect((await readAll(d, seg(1), 1000, 5000)).equals(bytes.subarray(1000, 6000))).toBe(true);
    expect(inner.reads).toBe(reads);
    expect(d.cachedBytes).toBe(bytes.length);
    expect(readdirSync(dir).sort()).toEqual(['.incoming', fileOf(seg(1))]);
  });

  it('GIVEN a relay of a prefix WHEN kept THEN reads within it use the file and reads past it go to storage', async () => {
    const inner = new Counted();
    const d = cache(inner);
    const bytes = randomBytes(4 * MiB);
    await stored(inner, seg(1), bytes);
    await relay(d, seg(1), 0, 2 * MiB);
    await until(d, 'the prefix is kept', async () => (await d.cached(seg(1))) === 2 * MiB);
    const reads = inner.reads;
    expect((await readAll(d, seg(1), 10, 100)).equals(bytes.subarray(10, 110))).toBe(true);
    expect(inner.reads).toBe(reads);
    expect((await relay(d, seg(1), MiB, 2 * MiB)).equals(bytes.subarray(MiB, 3 * MiB))).toBe(true);
    expect((await readAll(d, seg(1))).equals(bytes)).toBe(true); // no length: storage
    expect(inner.reads).toBe(reads + 2);
    // The whole object, relayed from its start, replaces the shorter copy.
    await relay(d, seg(1), 0, bytes.length);
    await until(d, 'the whole copy is kept', async () => (await d.cached(seg(1))) === bytes.length);
    expect(d.cachedBytes).toBe(bytes.length);
  });

  it('GIVEN reads that do not start at the first byte, small reads and writes WHEN served THEN nothing is kept', async () => {
    const inner = new Counted();
    const dir = tempDir();
    const d = cache(inner, dir);
    const bytes = randomBytes(3 * MiB);
    await d.writeStream(seg(1), Readable.from([bytes]), bytes.length);
    await relay(d, seg(1), 1, 2 * MiB);
    await readAll(d, seg(1), 0, 1000);
    await d.settled();
    expect(await d.cached(seg(1))).toBe(0);
    expect(readdirSync(dir)).toEqual(['.incoming']);
    expect(readdirSync(join(dir, '.incoming'))).toEqual([]);
  });

  it('GIVEN a write marked keepLocal (a pull-through fetch) WHEN storage took every byte THEN a copy is kept and reads come from it', async () => {
    const inner = new Counted();
    const dir = tempDir();
    const d = cache(inner, dir);
    const bytes = randomBytes(3 * MiB + 5);
    // A stream's chunks: small and uneven, packed into whole slabs on their way to the file.
    const chunks: Buffer[] = [];
    for (let at = 0, i = 0; at < bytes.length; i++) {
      const n = [1000, 16 * 1024, 7, 300 * 1024][i % 4]!;
      chunks.push(bytes.subarray(at, at + n));
      at += n;
    }

    const n = await d.writeStream(seg(1), Readable.from(chunks), bytes.length, {
      keepLocal: true,
    });

    expect(n).toBe(bytes.length);
    expect((await readAll(inner, seg(1))).equals(bytes)).toBe(true);
    await until(d, 'the copy is kept', async () => (await d.cached(seg(1))) === bytes.length);
    const reads = inner.reads;
    expect((await relay(d, seg(1), 0, bytes.length)).equals(bytes)).toBe(true);
    expect(inner.reads).toBe(reads);
    expect(readdirSync(join(dir, '.incoming'))).toEqual([]);
  });

  it('GIVEN a keepLocal write whose file copy falls behind WHEN storage took every byte THEN the rest is read from storage in the background and the whole copy is kept', async () => {
    const inner = new Counted();
    const d = new DiskCachingDriver(inner, {
      dir: tempDir(),
      maxBytes: 1 << 30,
      cacheable: Paths.isSegment,
      writeBehindBytes: 1, // the first chunk already falls behind
    });
    const bytes = randomBytes(2 * MiB + 3);

    await d.writeStream(seg(1), Readable.from([bytes]), bytes.length, { keepLocal: true });
    await until(
      d,
      'the completed copy is kept',
      async () => (await d.cached(seg(1))) === bytes.length,
    );

    const reads = inner.reads;
    expect((await relay(d, seg(1), 0, bytes.length)).equals(bytes)).toBe(true);
    expect(inner.reads).toBe(reads);
  });

  it('GIVEN a keepLocal write that fails midway, one of another size than said, and one not a segment WHEN they end THEN nothing is kept', async () => {
    const inner = new Counted();
    const dir = tempDir();
    const d = cache(inner, dir);
    const failing = new Readable({ read() {} });
    failing.on('error', () => undefined); // the write's rejection reports it
    failing.push(randomBytes(MiB));
    const writing = d.writeStream(seg(1), failing, 2 * MiB, { keepLocal: true });
    setImmediate(() => failing.destroy(new Error('upstream went away')));
    await expect(writing).rejects.toThrow();
    const short = randomBytes(MiB);
    await d.writeStream(seg(2), Readable.from([short]), 2 * MiB, { keepLocal: true });
    const other = randomBytes(MiB);
    await d.writeStream('blobs/x', Readable.from([other]), MiB, { keepLocal: true });
    await d.settled();

    expect(await d.cached(seg(1))).toBe(0);
    expect(await d.cached(seg(2))).toBe(0);
    expect(d.cachedBytes).toBe(0);
    expect(readdirSync(dir)).toEqual(['.incoming']);
    expect(readdirSync(join(dir, '.incoming'))).toEqual([]);
  });

  it('GIVEN an object that is not a segment WHEN relayed from its first byte THEN nothing is kept', async () => {
    const inner = new Counted();
    const dir = tempDir();
    const d = cache(inner, dir);
    await stored(inner, 'blobs/sha256/ab/abcd', randomBytes(2 * MiB));
    await relay(d, 'blobs/sha256/ab/abcd', 0, 2 * MiB);
    await d.settled();
    expect(readdirSync(dir)).toEqual(['.incoming']);
  });

  it('GIVEN more bytes than fit WHEN copies are kept THEN the least recently read go first', async () => {
    const inner = new Counted();
    const dir = tempDir();
    const d = cache(inner, dir, 5 * MiB);
    for (const n of [1, 2, 3]) await stored(inner, seg(n), randomBytes(2 * MiB));
    for (const n of [1, 2]) {
      await relay(d, seg(n), 0, 2 * MiB);
      await until(d, `copy ${n}`, async () => (await d.cached(seg(n))) > 0);
    }
    await relay(d, seg(1), 0, MiB); // 1 is now the most recently read
    await relay(d, seg(3), 0, 2 * MiB);
    await until(d, 'copy 3', async () => (await d.cached(seg(3))) > 0);
    expect(await d.cached(seg(1))).toBe(2 * MiB);
    expect(await d.cached(seg(2))).toBe(0);
    expect(d.cachedBytes).toBe(4 * MiB);
    expect(readdirSync(dir).sort()).toEqual(['.incoming', fileOf(seg(1)), fileOf(seg(3))]);
  });

  it('GIVEN a full folder WHEN a new copy starts THEN room is made before it is written', async () => {
    const inner = new Counted();
    const d = cache(inner, tempDir(), 5 * MiB);
    for (const n of [1, 2, 3]) await stored(inner, seg(n), randomBytes(2 * MiB));
    for (const n of [1, 2]) {
      await relay(d, seg(n), 0, 2 * MiB);
      await until(d, `copy ${n}`, async () => (await d.cached(seg(n))) > 0);
    }
    const src = await d.openSource!(seg(3), 0, 2 * MiB);
    expect(d.cachedBytes).toBe(2 * MiB); // 1 went before a byte of 3 was written
    expect(await d.cached(seg(1))).toBe(0);
    await src!.copyTo(new CollectingSink());
    await until(d, 'copy 3', async () => (await d.cached(seg(3))) > 0);
    expect(d.cachedBytes).toBe(4 * MiB);
  });

  it('GIVEN kept copies WHEN their objects are deleted one by one or by prefix THEN the files go too', async () => {
    const inner = new Counted();
    const dir = tempDir();
    const d = cache(inner, dir);
    const keys = [seg(1), 'segments/u-2/0-a', 'segments/u-2/9-b'];
    for (const k of keys) {
      await stored(inner, k, randomBytes(MiB));
      await relay(d, k, 0, MiB);
      await until(d, `copy of ${k}`, async () => (await d.cached(k)) > 0);
    }
    await d.delete(seg(1));
    await d.deletePrefix('segments/u-2/');
    expect(readdirSync(dir)).toEqual(['.incoming']);
    expect(d.cachedBytes).toBe(0);
    await expect(d.openSource!(seg(1), 0, MiB)).rejects.toThrow('path not found');
  });

  it('GIVEN an object deleted while its read is copied WHEN the copy completes THEN it is not kept', async () => {
    const inner = new Counted();
    const dir = tempDir();
    const d = cache(inner, dir);
    await stored(inner, seg(1), randomBytes(2 * MiB));
    const src = await d.openSource!(seg(1), 0, 2 * MiB);
    const copying = src!.copyTo(new CollectingSink());
    await d.delete(seg(1));
    await copying.catch(() => undefined);
    await d.settled();
    expect(await d.cached(seg(1))).toBe(0);
    expect(readdirSync(dir)).toEqual(['.incoming']);
  });

  it('GIVEN copies a previous process kept, one it left half-written and files not its own WHEN a new one starts THEN it serves the copies, drops the half and leaves the rest', async () => {
    const dir = tempDir();
    const inner = new Counted();
    const first = cache(inner, dir);
    const bytes = randomBytes(2 * MiB);
    await stored(inner, seg(1), bytes);
    await relay(first, seg(1), 0, bytes.length);
    await until(first, 'the copy is kept', async () => (await first.cached(seg(1))) > 0);
    await first.close();
    await mkdir(join(dir, '.incoming'), { recursive: true });
    writeFileSync(join(dir, '.incoming', `${fileOf(seg(9))}.1234`), 'partial');
    writeFileSync(join(dir, 'notes.txt'), 'not ours');
    const second = cache(inner, dir);
    expect(await second.cached(seg(1))).toBe(bytes.length);
    const reads = inner.reads;
    expect((await relay(second, seg(1), 0, bytes.length)).equals(bytes)).toBe(true);
    expect(inner.reads).toBe(reads);
    expect(readdirSync(dir).sort()).toEqual(['.incoming', 'notes.txt', fileOf(seg(1))]);
    expect(readdirSync(join(dir, '.incoming'))).toEqual([]);
  });

  it('GIVEN a client that goes away mid-pull WHEN its read was being copied THEN the pull fails and nothing is kept', async () => {
    const inner = new Counted();
    const dir = tempDir();
    const d = cache(inner, dir);
    await stored(inner, seg(1), randomBytes(4 * MiB));
    const src = await d.openSource!(seg(1), 0, 4 * MiB);
    await expect(src!.copyTo(new FailingSink(2))).rejects.toThrow();
    await d.settled();
    expect(await d.cached(seg(1))).toBe(0);
    expect(readdirSync(join(dir, '.incoming'))).toEqual([]);
    // The next pull is copied again.
    await relay(d, seg(1), 0, 4 * MiB);
    await until(d, 'the copy is kept', async () => (await d.cached(seg(1))) === 4 * MiB);
  });

  it('GIVEN two pulls of one object at once WHEN both are relayed THEN both get every byte and one copy is kept', async () => {
    const inner = new Counted();
    const dir = tempDir();
    const d = cache(inner, dir);
    const bytes = randomBytes(3 * MiB);
    await stored(inner, seg(1), bytes);
    const [a, b] = await Promise.all([
      relay(d, seg(1), 0, bytes.length),
      relay(d, seg(1), 0, bytes.length),
    ]);
    expect(a.equals(bytes) && b.equals(bytes)).toBe(true);
    await until(d, 'the copy is kept', async () => (await d.cached(seg(1))) === bytes.length);
    expect(readdirSync(dir).sort()).toEqual(['.incoming', fileOf(seg(1))]);
  });

  it('GIVEN a kept file removed behind its back WHEN read THEN storage answers and the entry is dropped', async () => {
    const inner = new Counted();
    const dir = tempDir();
    const d = cache(inner, dir);
    const bytes = randomBytes(2 * MiB);
    await stored(inner, seg(1), bytes);
    await relay(d, seg(1), 0, bytes.length);
    await until(d, 'the copy is kept', async () => (await d.cached(seg(1))) > 0);
    await unlink(join(dir, fileOf(seg(1))));
    expect((await readAll(d, seg(1), 0, 100)).equals(bytes.subarray(0, 100))).toBe(true);
    expect(d.cachedBytes).toBe(0);
  });

  it('GIVEN a folder it cannot use WHEN pulls come THEN storage serves them all', async () => {
    const file = join(tempDir(), 'not-a-dir');
    writeFileSync(file, 'x');
    const inner = new Counted();
    const d = cache(inner, file);
    const bytes = randomBytes(2 * MiB);
    await stored(inner, seg(1), bytes);
    for (let i = 0; i < 2; i++) {
      expect((await relay(d, seg(1), 0, bytes.length)).equals(bytes)).toBe(true);
    }
    expect(inner.reads).toBe(2);
    expect(await d.cached(seg(1))).toBe(0);
  });
});

describe('DiskCachingDriver: long reads are copied after their pull (copyAfterBytes)', () => {
  const after = (inner: StorageDriver, dir = tempDir()) =>
    new DiskCachingDriver(inner, {
      dir,
      maxBytes: 1 << 30,
      cacheable: Paths.isSegment,
      copyAfterBytes: 2 * MiB,
    });

  /** Watching collects a pull and notes every file in `.incoming/` while it is written. */
  class Watching extends CollectingSink {
    seen = new Set<string>();
    constructor(private readonly dir: string) {
      super();
    }
    override write(chunk: Uint8Array, cb: (err?: Error | null) => void): boolean {
      for (const f of readdirSync(join(this.dir, '.incoming'))) this.seen.add(f);
      return super.write(chunk, cb);
    }
  }

  it('GIVEN a read of at least copyAfterBytes WHEN relayed THEN no file is written during it, and after it storage is read again into a kept copy that serves later reads', async () => {
    const inner = new Counted();
    const dir = tempDir();
    const d = after(inner, dir);
    const bytes = randomBytes(3 * MiB + 7);
    await stored(inner, seg(1), bytes);
    const src = await d.openSource!(seg(1), 0, bytes.length);
    const sink = new Watching(dir);
    await src!.copyTo(sink);
    expect(sink.bytes().equals(bytes)).toBe(true);
    expect([...sink.seen]).toEqual([]);
    await until(d, 'the copy is kept', async () => (await d.cached(seg(1))) === bytes.length);
    expect(inner.reads).toBe(2);
    expect((await relay(d, seg(1), 0, bytes.length)).equals(bytes)).toBe(true);
    expect((await readAll(d, seg(1), 5, 100)).equals(bytes.subarray(5, 105))).toBe(true);
    expect(inner.reads).toBe(2);
    expect(readdirSync(dir).sort()).toEqual(['.incoming', fileOf(seg(1))]);
  });

  it('GIVEN a shorter read WHEN relayed THEN it is still copied on the way, with no second storage read', async () => {
    const inner = new Counted();
    const d = after(inner);
    const bytes = randomBytes(MiB + 3);
    await stored(inner, seg(1), bytes);
    expect((await relay(d, seg(1), 0, bytes.length)).equals(bytes)).toBe(true);
    await until(d, 'the copy is kept', async () => (await d.cached(seg(1))) === bytes.length);
    expect(inner.reads).toBe(1);
  });

  it('GIVEN a client that goes away mid-pull WHEN the read was long THEN nothing is copied after it', async () => {
    const inner = new Counted();
    const dir = tempDir();
    const d = after(inner, dir);
    await stored(inner, seg(1), randomBytes(3 * MiB));
    const src = await d.openSource!(seg(1), 0, 3 * MiB);
    await expect(src!.copyTo(new FailingSink(2))).rejects.toThrow('client went away');
    await d.settled();
    expect(await d.cached(seg(1))).toBe(0);
    expect(inner.reads).toBe(1);
    expect(readdirSync(dir)).toEqual(['.incoming']);
  });

  it('GIVEN three long pulls at once WHEN served THEN each is copied after, one copy at a time, and all are kept', async () => {
    let running = 0;
    let most = 0;
    /** Pacing counts the storage reads in flight that copy into the cache. */
    class Pacing extends Counted {
      override async openSource(key: string, offset: number, length: number) {
        const src = await super.openSource(key, offset, length);
        if (!src) return src;
        return {
          length: src.length,
          abandon: () => src.abandon(),
          copyTo: async (sink: ByteSink) => {
            running++;
            most = Math.max(most, running);
            try {
              await src.copyTo(sink);
            } finally {
              running--;
            }
          },
        };
      }
    }
    const inner = new Pacing();
    const d = after(inner);
    const blobs = [1, 2, 3].map(() => randomBytes(2 * MiB + 1));
    for (const [i, b] of blobs.entries()) await stored(inner, seg(i), b);
    const pulled = await Promise.all(blobs.map((b, i) => relay(d, seg(i), 0, b.length)));
    expect(pulled.every((p, i) => p.equals(blobs[i]!))).toBe(true);
    most = 0;
    await d.settled();
    for (const [i, b] of blobs.entries()) expect(await d.cached(seg(i))).toBe(b.length);
    expect(most).toBe(1);
    expect(inner.reads).toBe(6);
  });

  it('GIVEN an object deleted right after its pull WHEN its copy would be made THEN nothing is kept', async () => {
    const inner = new Counted();
    const dir = tempDir();
    const d = after(inner, dir);
    await stored(inner, seg(1), randomBytes(3 * MiB));
    await relay(d, seg(1), 0, 3 * MiB);
    await d.delete(seg(1));
    await d.settled();
    expect(await d.cached(seg(1))).toBe(0);
    expect(readdirSync(dir)).toEqual(['.incoming']);
  });
});
