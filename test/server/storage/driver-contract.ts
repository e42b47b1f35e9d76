import { EventEmitter } from 'node:events';
import { Readable } from 'node:stream';
import { createHash, randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  InvalidPathError,
  PathNotFoundError,
  type ByteSink,
  type ListPage,
  type StorageDriver,
} from '../../../server/storage/driver.js';
import { openSegmentSource } from '../../../server/registry/blobs.js';

export interface DriverFactory {
  /** make returns a driver on an empty namespace (a fresh dir, bucket prefix, …). */
  make(): Promise<StorageDriver>;
  /** bigBytes is the size of the largest streamed object this run checks. */
  bigBytes?: number;
  /**
   * abortsMultipart says the driver (or the one it decorates) leaves unfinished multipart
   * uploads behind and so must offer `abortStaleMultipartUploads`.
   */
  abortsMultipart?: boolean;
}

/**
 * CollectingSink keeps copies of what is written to it (a source reuses its buffers) and
 * completes each write a tick later, like a socket that is not always ready.
 */
export class CollectingSink extends EventEmitter implements ByteSink {
  private readonly chunks: Buffer[] = [];
  write(chunk: Uint8Array, cb: (err?: Error | null) => void): boolean {
    this.chunks.push(Buffer.from(chunk));
    setImmediate(cb);
    return true;
  }
  bytes(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** pattern streams `size` deterministic pseudo-random bytes without holding them. */
function pattern(size: number, chunk = 1 << 20): { stream: Readable; sha: () => string } {
  const hash = createHash('sha256');
  const seed = randomBytes(chunk);
  let sent = 0;
  const stream = new Readable({
    read() {
      if (sent >= size) {
        this.push(null);
        return;
      }
      const n = Math.min(chunk, size - sent);
      const buf = seed.subarray(0, n);
      seed[0] = (seed[0]! + 1) & 0xff;
      sent += n;
      hash.update(buf);
      this.push(Buffer.from(buf));
    },
  });
  return { stream, sha: () => hash.digest('hex') };
}

async function allKeys(d: StorageDriver, prefix = ''): Promise<string[]> {
  const out: string[] = [];
  let startAfter: string | undefined;
  for (;;) {
    const page = await d.list(prefix === '' ? '' : prefix, { startAfter, limit: 1000 });
    for (const n of page.names) {
      const key = prefix + n;
      const isObject = await d.stat(key).then(
        () => true,
        () => false,
      );
      if (isObject) out.push(key);
      out.push(...(await allKeys(d, key + '/')));
    }
    if (!page.truncated || page.names.length === 0) break;
    startAfter = page.names[page.names.length - 1];
  }
  return out;
}

/**
 * describeStorageDriver runs the storage contract against one driver. Every test
 * starts from an empty namespace and must leave it empty: the suite fails otherwise.
 */
export function describeStorageDriver(name: string, factory: DriverFactory): void {
  describe(`storage driver contract: ${name}`, () => {
    let d: StorageDriver;
    beforeEach(async () => {
      d = await factory.make();
    });
    afterEach(async () => {
      const left = await allKeys(d);
      await d.deletePrefix('a/').catch(() => undefined);
      await d.close?.();
      expect(left, 'a test left objects behind').toEqual([]);
    });

    it('GIVEN an object put WHEN read back THEN bytes, size and listing match, and delete removes it', async () => {
      await d.put('a/b/c', 'hello');
      expect((await d.get('a/b/c')).toString()).toBe('hello');
      expect((await d.stat('a/b/c')).size).toBe(5);
      expect((await d.list('a/b/')).names).toEqual(['c']);
      await d.delete('a/b/c');
      await expect(d.get('a/b/c')).rejects.toBeInstanceOf(PathNotFoundError);
    });

    it('GIVEN a zero-byte object WHEN stored both ways THEN it reads back empty', async () => {
      await d.put('a/empty', Buffer.alloc(0));
      expect((await d.get('a/empty')).length).toBe(0);
      const n = await d.writeStream('a/empty2', Readable.from([]), 0);
      expect(n).toBe(0);
      expect((await collect(await d.read('a/empty2'))).length).toBe(0);
      expect((await d.stat('a/empty2')).size).toBe(0);
      await d.deletePrefix('a/');
    });

    it('GIVEN a missing key WHEN read, stat or deleted THEN not-found errors and a no-op delete', async () => {
      await expect(d.get('a/missing')).rejects.toBeInstanceOf(PathNotFoundError);
      await expect(d.read('a/missing')).rejects.toBeInstanceOf(PathNotFoundError);
      await expect(d.stat('a/missing')).rejects.toBeInstanceOf(PathNotFoundError);
      await d.delete('a/missing');
      expect((await d.list('a/missing/')).names).toEqual([]);
    });

    it('GIVEN a put over an existing key WHEN read THEN the new content replaces the old', async () => {
      await d.put('a/k', 'first-longer-content');
      await d.put('a/k', 'second');
      expect((await d.get('a/k')).toString()).toBe('second');
      await d.delete('a/k');
    });

    it('GIVEN a key WHEN putIfAbsent is called twice THEN only the first creates it and the object keeps its content', async () => {
      expect(await d.putIfAbsent('a/lease/1', 'first')).toBe(true);
      expect(await d.putIfAbsent('a/lease/1', 'second')).toBe(false);
      expect((await d.get('a/lease/1')).toString()).toBe('first');
      await d.delete('a/lease/1');
      expect(await d.putIfAbsent('a/lease/1', 'third')).toBe(true);
      expect((await d.get('a/lease/1')).toString()).toBe('third');
      await d.delete('a/lease/1');
    });

    it('GIVEN many concurrent putIfAbsent calls on one key WHEN they race THEN exactly one wins', async () => {
      const results = await Promise.all(
        Array.from({ length: 8 }, (_, i) => d.putIfAbsent('a/race', `writer-${i}`)),
      );
      expect(results.filter(Boolean)).toHaveLength(1);
      const winner = results.indexOf(true);
      expect((await d.get('a/race')).toString()).toBe(`writer-${winner}`);
      await d.delete('a/race');
    });

    it('GIVEN a versioned object WHEN put with its version and then with a stale one THEN only the first compare-and-set stores', async () => {
      expect(await d.putIfVersion('a/tag', 'one', null)).toBe(true);
      expect(await d.putIfVersion('a/tag', 'other', null)).toBe(false);
      const v1 = await d.getVersioned('a/tag');
      expect(v1.data.toString()).toBe('one');

      expect(await d.putIfVersion('a/tag', 'two', v1.version)).toBe(true);
      expect(await d.putIfVersion('a/tag', 'three', v1.version)).toBe(false);

      const v2 = await d.getVersioned('a/tag');
      expect(v2.data.toString()).toBe('two');
      expect(v2.version).not.toBe(v1.version);
      await d.delete('a/tag');
      expect(await d.putIfVersion('a/tag', 'four', v2.version)).toBe(false);
      await expect(d.getVersioned('a/tag')).rejects.toBeInstanceOf(PathNotFoundError);
    });

    it('GIVEN many concurrent compare-and-sets from one version WHEN they race THEN exactly one wins and its content stays', async () => {
      await d.put('a/cas', 'start');
      const { version } = await d.getVersioned('a/cas');
      const results = await Promise.all(
        Array.from({ length: 8 }, (_, i) => d.putIfVersion('a/cas', `writer-${i}`, version)),
      );
      expect(results.filter(Boolean)).toHaveLength(1);
      expect((await d.get('a/cas')).toString()).toBe(`writer-${results.indexOf(true)}`);
      await d.delete('a/cas');
    });

    it('GIVEN writes racing deletes that prune their folder WHEN done THEN every write succeeded and no temporary file is left', async () => {
      for (let round = 0; round < 30; round++) {
        await Promise.all([
          d.put(`a/p/${round}/x`, 'x'),
          d.delete(`a/p/${round}/y`),
          d.put(`a/p/${round}/y`, 'y').then(() => d.delete(`a/p/${round}/y`)),
        ]);
        expect((await d.get(`a/p/${round}/x`)).toString()).toBe('x');
        await d.delete(`a/p/${round}/x`);
      }
    });

    it('GIVEN a large stream WHEN written and read with offsets THEN every byte is intact', async () => {
      const size = factory.bigBytes ?? 64 * 1024 * 1024 + 123;
      const { stream, sha } = pattern(size);
      const n = await d.writeStream('a/big', stream, undefined);
      expect(n).toBe(size);
      expect((await d.stat('a/big')).size).toBe(size);
      const back = createHash('sha256');
      for await (const c of await d.read('a/big')) back.update(c as Buffer);
      expect(back.digest('hex')).toBe(sha());
      const tail = await collect(await d.read('a/big', size - 10));
      expect(tail.length).toBe(10);
      const mid = await collect(await d.read('a/big', 1000, 5000));
      expect(mid.length).toBe(5000);
      const whole = await collect(await d.read('a/big', 0, 6000));
      expect(whole.subarray(1000).equals(mid)).toBe(true);
      await d.delete('a/big');
    });

    it('GIVEN an object of a few MiB WHEN a range is opened as a source THEN it copies exactly the bytes read returns, or the driver has no source', async () => {
      const size = 3 * 1024 * 1024 + 17;
      const bytes = randomBytes(size);
      await d.writeStream('a/src', Readable.from([bytes]), size);
      if (!d.openSource) {
        // Such a driver serves every read through `read` (covered above).
        expect(await openSegmentSource(d, [{ key: 'a/src', size }], 0, size)).toBeUndefined();
        await d.delete('a/src');
        return;
      }
      for (const [offset, length] of [
        [0, size],
        [1001, 2 * 1024 * 1024 + 5],
      ] as const) {
        const src = await d.openSource('a/src', offset, length);
        expect(src, `source for ${offset}+${length}`).toBeDefined();
        expect(src!.length).toBe(length);
        const sink = new CollectingSink();
        await src!.copyTo(sink);
        expect(sink.bytes().equals(bytes.subarray(offset, offset + length))).toBe(true);
      }
      // A range the object does not hold whole is never relayed short.
      expect(await d.openSource('a/src', size - 100, 2 * 1024 * 1024)).toBeUndefined();
      await expect(d.openSource('a/missing', 0, 2 * 1024 * 1024)).rejects.toBeInstanceOf(
        PathNotFoundError,
      );
      const unused = await d.openSource('a/src', 0, size);
      unused?.abandon();
      await d.delete('a/src');
    });

    it('GIVEN a source that fails midway WHEN streamed THEN the write rejects and leaves nothing', async () => {
      let sent = 0;
      const failing = new Readable({
        read() {
          if (sent > 3) {
            this.destroy(new Error('client went away'));
            return;
          }
          sent++;
          this.push(randomBytes(1 << 20));
        },
      });
      await expect(d.writeStream('a/partial', failing)).rejects.toThrow();
      await expect(d.stat('a/partial')).rejects.toBeInstanceOf(PathNotFoundError);
    });

    it('GIVEN concurrent writers on distinct and equal keys WHEN done THEN each object is whole', async () => {
      const bodies = Array.from({ length: 8 }, (_, i) => randomBytes(100_000 + i));
      await Promise.all(
        bodies.map((b, i) => d.writeStream(`a/c/${i}`, Readable.from([b]), b.length)),
      );
      for (const [i, b] of bodies.entries()) expect((await d.get(`a/c/${i}`)).equals(b)).toBe(true);
      await Promise.all(bodies.map((b) => d.writeStream('a/same', Readable.from([b]))));
      const same = await d.get('a/same');
      expect(bodies.some((b) => b.equals(same))).toBe(true);
      await d.deletePrefix('a/');
    });

    it('GIVEN many names WHEN listed THEN one level, sorted, paginated with startAfter', async () => {
      const names = ['b', 'a', 'a-b', 'a.b', 'A', '_x', '0', 'z', 'y'];
      await Promise.all(names.map((n) => d.put(`a/l/${n}`, n)));
      await d.put('a/l/dir/child', 'x');
      const sorted = [...names, 'dir'].sort();
      expect((await d.list('a/l/')).names).toEqual(sorted);
      const p1 = await d.list('a/l/', { limit: 4 });
      expect(p1.names).toEqual(sorted.slice(0, 4));
      expect(p1.truncated).toBe(true);
      const p2 = await d.list('a/l/', { startAfter: p1.names[3], limit: 100 });
      expect(p2.names).toEqual(sorted.slice(4));
      expect(p2.truncated).toBe(false);
      await d.deletePrefix('a/');
    });

    it('GIVEN a folder of objects only WHEN walked flat in pages, one ending exactly on the last name THEN the pages and their truncated flags are those of a plain walk', async () => {
      const names = ['t1', 't2', 't3', 't4', 't5', 't6'];
      await Promise.all(names.map((n) => d.put(`a/f/${n}`, n)));
      for (const limit of [1, 2, 3, 4, 6, 7]) {
        const walk = async (flat: boolean) => {
          const pages: ListPage[] = [];
          let after: string | undefined;
          for (;;) {
            const page = await d.list('a/f/', { startAfter: after, limit, flat });
            pages.push(page);
            if (!page.truncated) return pages;
            after = page.names[page.names.length - 1];
          }
        };
        const flat = await walk(true);
        expect(flat, `limit ${limit}`).toEqual(await walk(false));
        expect(flat.flatMap((p) => p.names)).toEqual(names);
        expect(flat.at(-1)?.names.length, `limit ${limit}: no empty last page`).toBeGreaterThan(0);
      }
      await d.deletePrefix('a/');
    });

    it('GIVEN a prefix and its sibling WHEN the prefix is deleted THEN the sibling stays', async () => {
      await d.put('a/p/x', '1');
      await d.put('a/p/deep/y', '2');
      await d.put('a/p-other/z', '3');
      await d.put('a/pp', '4');
      await d.deletePrefix('a/p/');
      expect((await d.list('a/p/')).names).toEqual([]);
      expect((await d.get('a/p-other/z')).toString()).toBe('3');
      expect((await d.get('a/pp')).toString()).toBe('4');
      await d.deletePrefix('a/');
    });

    it('GIVEN hostile keys WHEN used THEN InvalidPathError and nothing is written', async () => {
      for (const key of [
        '',
        '/abs',
        'a/../b',
        'a//b',
        'a/./b',
        'a/b/',
        'a\\b',
        'a/\u0000',
        '../x',
      ]) {
        await expect(d.put(key, 'x'), key).rejects.toBeInstanceOf(InvalidPathError);
        await expect(d.get(key), key).rejects.toBeInstanceOf(InvalidPathError);
      }
      await expect(d.deletePrefix('a/..')).rejects.toBeInstanceOf(InvalidPathError);
      await expect(d.list('../')).rejects.toBeInstanceOf(InvalidPathError);
    });

    it('GIVEN the driver WHEN its capabilities are read THEN it aborts stale multipart uploads exactly when its backend leaves them, and with none started aborts none', async () => {
      expect(typeof d.abortStaleMultipartUploads).toBe(
        factory.abortsMultipart === true ? 'function' : 'undefined',
      );
      if (!d.abortStaleMultipartUploads) return;
      expect(await d.abortStaleMultipartUploads(new Date(Date.now() + 60_000))).toBe(0);
    });

    it('GIVEN the backend WHEN pinged THEN it answers', async () => {
      await d.ping();
    });
  });
}
