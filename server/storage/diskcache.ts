import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, readdir, rename, rm, stat, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Logger } from '../util/log.js';
import {
  type ByteSink,
  type ByteSource,
  type ListOptions,
  type ListPage,
  type StorageDriver,
  type Versioned,
  type WriteOptions,
} from './driver.js';
import { SLAB_BYTES, fileSource, relayable } from './drivers/relay.js';

export interface DiskCacheOptions {
  /** dir holds the cached files (a pod's emptyDir); created if missing. */
  dir: string;
  /** maxBytes bounds the files kept; the least recently read go first. */
  maxBytes: number;
  /** cacheable says which keys hold bytes written once and never changed (segments). */
  cacheable: (key: string) => boolean;
  log?: Logger;
  /** observe hears each read of a cacheable key: whether a local file answered it. */
  observe?: (hit: boolean) => void;
  /** onBytes hears the cached bytes' total after every change. */
  onBytes?: (bytes: number) => void;
  /** writeBehindBytes: how far a copy may lag its client (default WRITE_BEHIND_BYTES). */
  writeBehindBytes?: number;
  /** copyAfterBytes: reads this long are copied after the answer (default COPY_AFTER_BYTES). */
  copyAfterBytes?: number;
}

/** Entry is one cached object: its file holds exactly `size` bytes. */
interface Entry {
  size: number;
}

/** INCOMING is the folder files are written in before they are complete. */
const INCOMING = '.incoming';
/** MAX_COPIES bounds the reads copied to disk at once (each holds a file open). */
const MAX_COPIES = 4;
/** WRITE_BEHIND_BYTES: how far a copy's file may lag the client before it stops. */
const WRITE_BEHIND_BYTES = 16 * 1024 * 1024;
/** MAX_FILLS bounds the background reads that complete copies the disk could not keep up with. */
const MAX_FILLS = 1;
/**
 * COPY_AFTER_BYTES: a relayed read at least this long is not copied on the way but read
 * from storage again once its client has every byte. A fast client leaves such a copy
 * behind within its first tens of MiB anyway, and a slow one would have the copy's file
 * writes compete with its own pull for the CPU (ADR 0011, 2026-12-05 addendum).
 */
export const COPY_AFTER_BYTES = 64 * 1024 * 1024;

/**
 * EndedCopy is a copy into the cache whose tee closed: its key, its temp file holding bytes
 * [0, n) of `length`, whether the source gave every byte (completed) and whether the disk
 * fell behind (lagging).
 */
interface EndedCopy {
  key: string;
  tmp: string;
  n: number;
  length: number;
  completed: boolean;
  lagging: boolean;
}

/**
 * DiskCachingDriver keeps local copies of objects whose bytes never change once written
 * (upload segments, named by upload id and a random nonce, never reused), so that repeated
 * pulls of a blob are served from this pod's disk instead of from storage (ADR 0011).
 *
 * - A relayed read from storage that starts at an object's first byte is copied to a file
 *   as it passes to the client (no second storage read). The file then holds bytes
 *   [0, n) of the object, and any later read within them is served from it. A read of at
 *   least `copyAfterBytes` is instead read from storage into the file once its client has
 *   every byte, one such copy after another: the copy never slows the pull it follows.
 * - Writes are not copied: on a disk shared with storage that doubles what a push writes.
 *   The exception is a write marked `keepLocal`, the pull-through cache storing what it
 *   fetched from an upstream while its client reads it: that is a first read, copied as
 *   the bytes pass, and kept once storage holds them all.
 * - A delete through this process removes the file. A delete through another replica
 *   leaves it until it is evicted: bytes a key named once are the only bytes it ever names,
 *   and reads reach a segment only through a blob descriptor, which storage decides.
 *
 * A file is renamed into place only once it holds every byte it claims, so a crash leaves
 * no partial file to serve; `.incoming/` is emptied at start. Failures of the local disk
 * never fail a request: the read goes to storage as it would without the cache.
 */
export class DiskCachingDriver implements StorageDriver {
  readonly name: string;
  /** entries: key → bytes [0, size) kept, least recently read first. */
  private readonly entries = new Map<string, Entry>();
  /** copying: keys whose read is being copied to disk now. */
  private readonly copying = new Set<string>();
  /** doomed: keys deleted while being copied; their copies are not kept. */
  private readonly doomed = new Set<string>();
  private bytes = 0;
  /** reservations: bytes counted for copies being written, by key. */
  private readonly reservations = new Map<string, number>();
  private reservedBytes = 0;
  /** fills counts the background reads completing copies. */
  private fills = 0;
  /** after: the copies made after their pull, run one at a time in this order. */
  private after: Promise<void> = Promise.resolve();
  /** background: work finishing copies off the request's path. */
  private readonly background = new Set<Promise<unknown>>();
  private readonly ready: Promise<void>;
  private closed = false;

  constructor(
    readonly inner: StorageDriver,
    private readonly opts: DiskCacheOptions,
  ) {
    this.name = inner.name;
    if (inner.presignGet) this.presignGet = (key, s) => inner.presignGet!(key, s);
    if (inner.openSource) this.openSource = (key, o, n) => this.relay(key, o, n);
    if (inner.abortStaleMultipartUploads)
      this.abortStaleMultipartUploads = (d) => inner.abortStaleMultipartUploads!(d);
    this.ready = this.load().catch((err: unknown) => {
      this.opts.log?.warn({ dir: opts.dir, err: String(err) }, 'blob cache unusable');
      this.closed = true;
    });
  }

  presignGet?: (key: string, expirySeconds: number) => Promise<string>;
  /**
   * openSource relays a read from a kept file; a miss is relayed from storage, and when it
   * starts at the object's first byte, copied to a file on the way. Offered only when the
   * decorated driver relays.
   */
  openSource?: (key: string, offset: number, length: number) => Promise<ByteSource | undefined>;
  abortStaleMultipartUploads?: (olderThan: Date) => Promise<number>;

  /** cachedBytes is the total size of the files kept. */
  get cachedBytes(): number {
    return this.bytes;
  }

  /** cached is how many bytes of `key` (from its first) are kept on disk; 0 for none. */
  async cached(key: string): Promise<number> {
    await this.ready;
    return this.entries.get(key)?.size ?? 0;
  }

  /**
   * settled resolves once the work a read left to finish off its path (keeping, extending
   * or removing its copy, making room) is done, including work that work started.
   */
  async settled(): Promise<void> {
    await this.ready;
    while (this.background.size > 0) await Promise.allSettled([...this.background]);
  }

  private track(work: Promise<unknown>): void {
    const forget = () => void this.background.delete(work);
    this.background.add(work);
    work.then(forget, forget);
  }

  /** load indexes the files a previous process left, oldest read first. */
  private async load(): Promise<void> {
    await rm(join(this.opts.dir, INCOMING), { recursive: true, force: true });
    await mkdir(join(this.opts.dir, INCOMING), { recursive: true });
    const found: { key: string; size: number; at: number }[] = [];
    for (const name of await readdir(this.opts.dir)) {
      if (name === INCOMING) continue;
      // Anything not named like a kept file is left alone: the folder may be shared.
      const key = keyOf(name);
      if (!key || !this.opts.cacheable(key)) continue;
      const st = await stat(join(this.opts.dir, name)).catch(() => undefined);
      if (!st?.isFile()) continue;
      found.push({ key, size: st.size, at: Math.max(st.atimeMs, st.mtimeMs) });
    }
    found.sort((a, b) => a.at - b.at);
    for (const f of found) this.add(f.key, f.size);
    await this.evict();
  }

  private file(key: string): string {
    return join(this.opts.dir, fileOf(key));
  }

  /** hit returns the entry for `key` and marks it recently used. */
  private hit(key: string): Entry | undefined {
    const e = this.entries.get(key);
    if (e) {
      this.entries.delete(key);
      this.entries.set(key, e);
    }
    return e;
  }

  private add(key: string, size: number): void {
    const old = this.entries.get(key);
    if (old) this.bytes -= old.size;
    this.entries.delete(key);
    this.entries.set(key, { size });
    this.bytes += size;
  }

  private async drop(key: string): Promise<void> {
    const e = this.entries.get(key);
    if (!e) return;
    this.entries.delete(key);
    this.bytes -= e.size;
    this.opts.onBytes?.(this.bytes);
    await unlink(this.file(key)).catch(() => undefined);
  }

  /** evict removes the least recently used files until the rest fit in maxBytes. */
  private async evict(): Promise<void> {
    while (this.bytes + this.reservedBytes > this.opts.maxBytes) {
      const oldest = this.entries.keys().next();
      if (oldest.done) break;
      await this.drop(oldest.value);
    }
    this.opts.onBytes?.(this.bytes);
  }

  /**
   * local opens the file of a kept key when it holds bytes [offset, offset+length), or
   * undefined (not kept, too short, or the file went away).
   */
  private async local(
    key: string,
    offset: number,
    length: number,
  ): Promise<FileHandle | undefined> {
    await this.ready;
    const e = this.closed ? undefined : this.hit(key);
    this.opts.observe?.(e !== undefined && offset + length <= e.size);
    if (!e || offset + length > e.size) return undefined;
    try {
      return await open(this.file(key), 'r');
    } catch {
      await this.drop(key);
      return undefined;
    }
  }

  private incoming(key: string): string {
    return join(this.opts.dir, INCOMING, `${fileOf(key)}.${randomBytes(4).toString('hex')}`);
  }

  /** keep puts a complete copy of bytes [0, size) in place, unless a longer one is kept. */
  private async keep(tmp: string, key: string, size: number): Promise<void> {
    this.release(key);
    if (this.closed || this.doomed.has(key) || (this.entries.get(key)?.size ?? -1) >= size) {
      await unlink(tmp).catch(() => undefined);
      return;
    }
    await rename(tmp, this.file(key));
    this.add(key, size);
    await this.evict();
  }

  /**
   * copied wraps a source of bytes [0, length) of `key` from storage so that its copy also
   * writes them to a file, kept once the copy completes. Only one read of a key is copied
   * at a time, MAX_COPIES in all; others pass through unchanged.
   */
  private copied(key: string, src: ByteSource): ByteSource {
    if (!this.claim(key, src.length)) return src;
    const done = () => this.finish(key);
    return {
      length: src.length,
      copyTo: async (sink: ByteSink) => {
        const tmp = this.incoming(key);
        const fh = await open(tmp, 'w').catch(() => undefined);
        if (!fh) {
          done();
          return src.copyTo(sink);
        }
        const tee = new TeeSink(sink, fh, this.opts.writeBehindBytes ?? WRITE_BEHIND_BYTES);
        let copiedAll = false;
        try {
          await src.copyTo(tee);
          copiedAll = true;
        } finally {
          // Off the request's path: keep the file if it holds every byte. A client that
          // closes on its last byte can fail the copy after storage gave them all.
          this.track(
            tee.close().then(
              (n) =>
                this.settle({
                  key,
                  tmp,
                  n,
                  length: src.length,
                  completed: copiedAll || tee.complete(src.length),
                  lagging: tee.lagging,
                }),
              () => this.discard(tmp).finally(done),
            ),
          );
        }
      },
      abandon: () => {
        done();
        src.abandon();
      },
    };
  }

  /**
   * copiedAfter wraps a source of bytes [0, length) of `key` from storage so that, once its
   * client has them all, they are read from storage again into a file and kept. The copy is
   * claimed at once (no other read of the key starts one) and made after the copies before it.
   */
  private copiedAfter(key: string, src: ByteSource): ByteSource {
    if (!this.claim(key, src.length)) return src;
    return {
      length: src.length,
      copyTo: async (sink: ByteSink) => {
        let served = false;
        try {
          await src.copyTo(sink);
          served = true;
        } finally {
          if (served) this.track(this.copyAfter(key, src.length));
          else this.finish(key);
        }
      },
      abandon: () => {
        this.finish(key);
        src.abandon();
      },
    };
  }

  /** copyAfter reads bytes [0, length) of `key` from storage into the cache, after the others. */
  private copyAfter(key: string, length: number): Promise<void> {
    const run = async () => {
      const tmp = this.incoming(key);
      try {
        if (this.closed || this.doomed.has(key)) return;
        await (await open(tmp, 'w')).close();
        this.fills++;
        try {
          await this.extend(tmp, key, 0, length);
        } finally {
          this.fills--;
        }
      } catch (err) {
        this.opts.log?.warn({ key, err: String(err) }, 'blob cache copy failed');
        await this.discard(tmp);
      } finally {
        this.finish(key);
      }
    };
    const next = this.after.then(run);
    this.after = next;
    return next;
  }

  /**
   * claim starts a copy of `size` bytes of `key` when one may start: no copy of it under
   * way, fewer than MAX_COPIES in all, not kept whole already, and room reserved. The
   * caller ends it with `finish` (or `settle`, which does).
   */
  private claim(key: string, size: number): boolean {
    if (this.copying.has(key) || this.copying.size >= MAX_COPIES) return false;
    if (size > this.opts.maxBytes || (this.entries.get(key)?.size ?? 0) >= size) return false;
    if (!this.reserve(key, size)) return false;
    this.copying.add(key);
    return true;
  }

  /**
   * settle decides on an ended copy's file, which holds bytes [0, n) of `length` wanted: kept when
   * whole; when the disk fell behind a copy that otherwise completed, the rest is read from
   * storage in the background (at the disk's pace, MAX_FILLS at once); else removed.
   */
  private async settle(copy: EndedCopy): Promise<void> {
    const { key, tmp, n, length, completed, lagging } = copy;
    try {
      if (n === length) await this.keep(tmp, key, n);
      else if (completed && lagging && n >= 0 && this.fills < MAX_FILLS && !this.closed) {
        this.fills++;
        try {
          await this.extend(tmp, key, n, length);
        } finally {
          this.fills--;
        }
      } else await this.discard(tmp);
    } catch (err) {
      this.opts.log?.warn({ key, err: String(err) }, 'blob cache copy failed');
      await this.discard(tmp);
    } finally {
      this.finish(key);
    }
  }

  /** finish ends the copy of `key`, kept or not: its reservation and marks go. */
  private finish(key: string): void {
    this.release(key);
    this.copying.delete(key);
    this.doomed.delete(key);
  }

  /**
   * reserve counts `n` bytes for a copy of `key` before it is written, evicting the least
   * recently read files to make room: the folder never holds more than maxBytes.
   */
  private reserve(key: string, n: number): boolean {
    while (this.bytes + this.reservedBytes + n > this.opts.maxBytes) {
      const oldest = this.entries.keys().next();
      if (oldest.done) return false;
      this.track(this.drop(oldest.value));
    }
    this.reservations.set(key, n);
    this.reservedBytes += n;
    return true;
  }

  private release(key: string): void {
    const n = this.reservations.get(key);
    if (n === undefined) return;
    this.reservations.delete(key);
    this.reservedBytes -= n;
  }

  /**
   * extend reads bytes [from, to) of `key` from storage into `tmp` and keeps it: relayed
   * through slabs straight into the file where the driver can (a stream's per-chunk buffers
   * and writes cost several times the CPU of the bytes), else as a stream.
   */
  private async extend(tmp: string, key: string, from: number, to: number): Promise<void> {
    const src = relayable(from, to - from)
      ? await this.inner.openSource?.(key, from, to - from)
      : undefined;
    const fh = await open(tmp, 'r+').catch((err: unknown) => {
      src?.abandon();
      throw err;
    });
    try {
      if (src) await src.copyTo(new FileSink(fh, from));
      else
        await pipeline(
          await this.inner.read(key, from, to - from),
          fh.createWriteStream({ start: from, autoClose: false }),
        );
    } finally {
      await fh.close().catch(() => undefined);
    }
    if ((await stat(tmp)).size !== to) throw new Error('short copy');
    await this.keep(tmp, key, to);
  }

  private discard(tmp: string): Promise<void> {
    return unlink(tmp).catch(() => undefined);
  }

  // ---- StorageDriver ---------------------------------------------------------------------

  get(key: string): Promise<Buffer> {
    return this.inner.get(key);
  }

  put(key: string, data: Buffer | string): Promise<void> {
    return this.inner.put(key, data);
  }

  putIfAbsent(key: string, data: Buffer | string): Promise<boolean> {
    return this.inner.putIfAbsent(key, data);
  }

  getVersioned(key: string): Promise<Versioned> {
    return this.inner.getVersioned(key);
  }

  putIfVersion(key: string, data: Buffer | string, expected: string | null): Promise<boolean> {
    return this.inner.putIfVersion(key, data, expected);
  }

  /**
   * writeStream stores through to storage. With `keepLocal` (a pull-through fetch, read by
   * its client as it is written) and a known size, the bytes are also copied to a file as
   * they pass, kept once storage has them all; otherwise writes are not copied.
   */
  async writeStream(
    key: string,
    source: Readable,
    sizeHint?: number,
    opts?: WriteOptions,
  ): Promise<number> {
    const fh = opts?.keepLocal ? await this.startCopy(key, sizeHint) : undefined;
    if (!fh) return this.inner.writeStream(key, source, sizeHint, opts);
    const tmp = fh.tmp;
    const copy = new FileCopy(fh.handle, this.opts.writeBehindBytes ?? WRITE_BEHIND_BYTES);
    const tap = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        copy.offer(chunk);
        cb(null, chunk);
      },
    });
    // A failure on either side ends both, as a write of `source` itself would.
    pipeline(source, tap).catch(() => undefined);
    let n = -1;
    try {
      n = await this.inner.writeStream(key, tap, sizeHint, opts);
      return n;
    } finally {
      const stored = n;
      const length = sizeHint ?? -1;
      // As a relayed read's copy: kept when whole; completed from storage in the background
      // when only the disk fell behind a write that storage took whole; else removed.
      this.track(
        copy.close().then(
          (held) =>
            this.settle({
              key,
              tmp,
              // A write storage did not take whole keeps nothing, whatever the file holds.
              n: stored === length ? held : -1,
              length,
              completed: stored === length,
              lagging: copy.lagging,
            }),
          () => this.discard(tmp).finally(() => this.finish(key)),
        ),
      );
    }
  }

  /**
   * startCopy opens a file for a copy of a write of `size` bytes of `key`, or undefined when
   * it is not copied (not cacheable, size unknown or too big, the cache closed or busy).
   */
  private async startCopy(
    key: string,
    size: number | undefined,
  ): Promise<{ handle: FileHandle; tmp: string } | undefined> {
    await this.ready;
    if (size === undefined || size <= 0) return undefined;
    if (this.closed || !this.opts.cacheable(key) || !this.claim(key, size)) return undefined;
    const tmp = this.incoming(key);
    const handle = await open(tmp, 'w').catch(() => undefined);
    if (!handle) {
      this.finish(key);
      return undefined;
    }
    return { handle, tmp };
  }

  /** read serves a read of known length from a kept file; anything else from storage. */
  async read(key: string, offset = 0, length?: number): Promise<Readable> {
    const fh =
      length !== undefined && length > 0 && this.opts.cacheable(key)
        ? await this.local(key, offset, length)
        : undefined;
    if (!fh) return this.inner.read(key, offset, length);
    return createReadStream('', {
      fd: fh,
      start: offset,
      end: offset + length! - 1,
      autoClose: true,
    });
  }

  private async relay(
    key: string,
    offset: number,
    length: number,
  ): Promise<ByteSource | undefined> {
    if (!relayable(offset, length) || !this.opts.cacheable(key)) {
      return this.inner.openSource!(key, offset, length);
    }
    let asked = false;
    const local = await fileSource(
      () => {
        asked = true;
        return this.local(key, offset, length);
      },
      offset,
      length,
    );
    // No slabs came within the wait: `read` serves the bytes as a stream.
    if (local || !asked) return local;
    const src = await this.inner.openSource!(key, offset, length);
    if (!src || offset !== 0 || this.closed) return src;
    return src.length >= (this.opts.copyAfterBytes ?? COPY_AFTER_BYTES)
      ? this.copiedAfter(key, src)
      : this.copied(key, src);
  }

  stat(key: string): Promise<{ size: number; modified: Date }> {
    return this.inner.stat(key);
  }

  list(prefix: string, opts?: ListOptions): Promise<ListPage> {
    return this.inner.list(prefix, opts);
  }

  async delete(key: string): Promise<void> {
    await this.inner.delete(key);
    if (this.copying.has(key)) this.doomed.add(key);
    await this.drop(key);
  }

  async deletePrefix(prefix: string): Promise<void> {
    await this.inner.deletePrefix(prefix);
    for (const key of this.copying) if (key.startsWith(prefix)) this.doomed.add(key);
    for (const key of [...this.entries.keys()]) {
      if (key.startsWith(prefix)) await this.drop(key);
    }
  }

  ping(): Promise<void> {
    return this.inner.ping();
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.inner.close?.();
  }
}

/**
 * FileCopy writes copies of the chunks it is offered to a file, behind, in batches: the disk
 * never paces whoever offers them. A copy that falls WRITE_BEHIND_BYTES behind stops taking
 * chunks (`lagging`); the file then holds a prefix. A failed file write stops the copy.
 * `close` resolves with the bytes the file holds from the first (-1 after a failed write).
 */
class FileCopy {
  /** pos counts the bytes queued for the file, written those the file has taken. */
  private pos = 0;
  private written = 0;
  private failed = false;
  lagging = false;
  /** queue holds sealed slabs waiting for the file; `cur` the slab being filled. */
  private readonly queue: Buffer[] = [];
  private readonly spare: Buffer[] = [];
  private cur: Buffer | undefined;
  private fill = 0;
  private writing: Promise<void> | undefined;

  constructor(
    private readonly fh: FileHandle,
    private readonly behind: number,
  ) {}

  /**
   * offer queues a copy of `chunk` unless the copy failed or fell behind. Chunks are packed
   * into whole slabs, so small chunks (a stream's) hold no more memory than their bytes.
   */
  offer(chunk: Uint8Array): void {
    if (this.failed || this.lagging) return;
    if (this.pos - this.written + chunk.length > this.behind) {
      this.lagging = true;
      return;
    }
    for (let off = 0; off < chunk.length;) {
      this.cur ??= this.spare.pop() ?? Buffer.allocUnsafeSlow(SLAB_BYTES);
      const n = Math.min(chunk.length - off, this.cur.length - this.fill);
      this.cur.set(chunk.subarray(off, off + n), this.fill);
      this.fill += n;
      off += n;
      if (this.fill === this.cur.length) this.seal();
    }
    this.pos += chunk.length;
    this.writing ??= this.drain();
  }

  /** seal moves the slab being filled to the queue. */
  private seal(): void {
    if (this.cur && this.fill > 0) this.queue.push(this.cur.subarray(0, this.fill));
    this.cur = undefined;
    this.fill = 0;
  }

  /** drain writes what is queued or filled, in batches, until nothing is left. */
  private async drain(): Promise<void> {
    while ((this.queue.length > 0 || this.fill > 0) && !this.failed) {
      if (this.queue.length === 0) this.seal();
      const batch = this.queue.splice(0, 64);
      const n = batch.reduce((sum, b) => sum + b.length, 0);
      try {
        const r = await this.fh.writev(batch, this.written);
        if (r.bytesWritten !== n) this.failed = true;
      } catch {
        this.failed = true;
      }
      this.written += n;
      for (const b of batch) this.spare.push(Buffer.from(b.buffer, b.byteOffset, SLAB_BYTES));
    }
    this.queue.length = 0;
    this.cur = undefined;
    this.fill = 0;
    this.writing = undefined;
  }

  async close(): Promise<number> {
    while (this.writing) await this.writing;
    this.spare.length = 0;
    await this.fh.close().catch(() => {
      this.failed = true;
    });
    return this.failed ? -1 : this.written;
  }
}

/**
 * TeeSink passes each write to `sink` and a copy of it to a {@link FileCopy}. A failed file
 * write stops the copy, never the sink's bytes.
 */
class TeeSink implements ByteSink {
  private readonly copy: FileCopy;
  private handed = 0;

  constructor(
    private readonly sink: ByteSink,
    fh: FileHandle,
    behind: number,
  ) {
    this.copy = new FileCopy(fh, behind);
  }

  get lagging(): boolean {
    return this.copy.lagging;
  }

  /** complete: the sink was handed `length` bytes, all a copy asked for. */
  complete(length: number): boolean {
    return this.handed === length;
  }

  write(chunk: Uint8Array, cb: (err?: Error | null) => void): boolean {
    this.handed += chunk.length;
    this.copy.offer(chunk);
    return this.sink.write(chunk, cb);
  }

  once(event: 'close', listener: () => void): unknown {
    return this.sink.once(event, listener);
  }

  off(event: 'close', listener: () => void): unknown {
    return this.sink.off(event, listener);
  }

  close(): Promise<number> {
    return this.copy.close();
  }
}

/**
 * FileSink is a {@link ByteSink} that writes each chunk at the next position of a file, one
 * write at a time (concurrent writes to one file contend for its inode lock, and a waiter
 * spins); a chunk is released (its callback called) once the file has taken it whole.
 */
class FileSink implements ByteSink {
  private last: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly fh: FileHandle,
    private pos: number,
  ) {}

  write(chunk: Uint8Array, cb: (err?: Error | null) => void): boolean {
    const at = this.pos;
    this.pos += chunk.length;
    this.last = this.last.then(() =>
      this.fh.write(chunk, 0, chunk.length, at).then(
        (r) => cb(r.bytesWritten === chunk.length ? null : new Error('blob cache: short write')),
        (err: unknown) => cb(err instanceof Error ? err : new Error(String(err))),
      ),
    );
    return false;
  }

  once(): unknown {
    return this;
  }

  off(): unknown {
    return this;
  }
}

/** fileOf names a key's file: `/` (never part of a key's segments) becomes `~`. */
function fileOf(key: string): string {
  return key.replaceAll('/', '~');
}

function keyOf(name: string): string | undefined {
  return name.includes('~') ? name.replaceAll('~', '/') : undefined;
}
