import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Errors } from '../errors.js';
import {
  isNotFound,
  type ByteSink,
  type ByteSource,
  type StorageDriver,
} from '../storage/driver.js';
import { Paths } from '../storage/paths.js';
import type { StorageReader, StorageViews } from '../storage/views.js';
import { parseDigest, type Digest } from './reference.js';

/** Segment is one run of a blob's bytes, stored once as its own object. */
export interface Segment {
  key: string;
  size: number;
}

/**
 * BlobDescriptor locates a blob's bytes: the concatenation of its segments, in order.
 * A blob's bytes are written once by the upload that carried them; committing writes
 * only this small descriptor (no copy on any driver).
 */
export interface BlobDescriptor {
  digest: string;
  size: number;
  segments: Segment[];
}

/** BlobStatter answers whether a repository holds a blob, and its descriptor. */
export interface BlobStatter {
  /** stat resolves the repository's link to `digest`; throws BLOB_UNKNOWN when absent. */
  stat(digest: Digest): Promise<BlobDescriptor>;
}

/** BlobProvider streams a blob's bytes. */
export interface BlobProvider {
  /**
   * open streams `length` bytes from `offset` of the blob. Resolves once the first bytes'
   * object is open, so a blob whose bytes are gone fails before any header is sent.
   */
  open(desc: BlobDescriptor, offset?: number, length?: number): Promise<Readable>;
  /**
   * source is `open` for a copy into a socket (ADR 0010): the same bytes as a ByteSource,
   * or undefined when the driver relays none of them (then use `open`).
   */
  source(desc: BlobDescriptor, offset?: number, length?: number): Promise<ByteSource | undefined>;
  /** redirectURL returns a presigned URL for a single-segment blob, when the driver can. */
  redirectURL(desc: BlobDescriptor): Promise<string | undefined>;
}

/** BlobDeleter unlinks a blob from a repository (its bytes go at garbage collection). */
export interface BlobDeleter {
  /** delete unlinks; throws BLOB_UNKNOWN when the repository holds no such blob. */
  delete(digest: Digest): Promise<void>;
}

/** BlobLinker makes an already stored blob part of a repository. */
export interface BlobLinker {
  /**
   * link records `desc` in the repository (idempotent). `again`: the link just made is
   * pointed at other bytes of the same blob (a deduplicated upload), not a new push.
   */
  link(desc: BlobDescriptor, digest: Digest, opts?: { again?: boolean }): Promise<void>;
  /**
   * mount links a blob from `from` (or, without `from`, any blob in the registry).
   * Returns the descriptor, or undefined when there is nothing to mount.
   */
  mount(digest: Digest, from?: string): Promise<BlobDescriptor | undefined>;
}

export type BlobStore = BlobStatter & BlobProvider & BlobDeleter & BlobLinker;

/** decodeDescriptor parses a stored descriptor, refusing anything malformed. */
export function decodeDescriptor(buf: Buffer): BlobDescriptor {
  const d = JSON.parse(buf.toString('utf8')) as BlobDescriptor;
  if (typeof d.size !== 'number' || !Array.isArray(d.segments)) {
    throw new Error('corrupt blob descriptor');
  }
  return d;
}

export class RepositoryBlobStore implements BlobStore {
  private readonly driver: StorageDriver;

  constructor(
    private readonly storage: StorageViews,
    private readonly name: string,
    private readonly markRepository: () => Promise<void>,
    private readonly redirectSeconds?: number,
  ) {
    this.driver = storage.cached;
  }

  /** stat answers from the in-process cache when it can (HEAD and GET). */
  stat(digest: Digest): Promise<BlobDescriptor> {
    return this.statWith(this.driver, digest);
  }

  /** statFresh asks storage itself: for checks that guard a write. */
  statFresh(digest: Digest): Promise<BlobDescriptor> {
    return this.statWith(this.storage.fresh, digest);
  }

  private async statWith(driver: StorageReader, digest: Digest): Promise<BlobDescriptor> {
    const key = Paths.layer(this.name, digest);
    try {
      return decodeDescriptor(await driver.get(key));
    } catch (err) {
      if (isNotFound(err)) {
        this.storage.invalidate(key);
        throw Errors.blobUnknown({ digest: digest.value });
      }
      throw err;
    }
  }

  open(desc: BlobDescriptor, offset = 0, length = desc.size - offset): Promise<Readable> {
    return this.withBytes(desc, (segments) => openSegments(this.driver, segments, offset, length));
  }

  source(
    desc: BlobDescriptor,
    offset = 0,
    length = desc.size - offset,
  ): Promise<ByteSource | undefined> {
    return this.withBytes(desc, (segments) =>
      openSegmentSource(this.driver, segments, offset, length),
    );
  }

  /**
   * withBytes opens a descriptor's segments; a cached descriptor can outlive its bytes
   * (deleted, then pushed again, through another replica), so a missing first segment
   * asks storage for the descriptor once more.
   */
  private async withBytes<T>(desc: BlobDescriptor, open: (s: Segment[]) => Promise<T>): Promise<T> {
    try {
      return await open(desc.segments);
    } catch (err) {
      if (!isNotFound(err) || typeof desc.digest !== 'string') throw err;
      const digest = parseDigest(desc.digest);
      this.storage.invalidate(Paths.layer(this.name, digest));
      const now = await this.statFresh(digest);
      if (JSON.stringify(now.segments) === JSON.stringify(desc.segments)) {
        throw Errors.blobUnknown({ digest: desc.digest });
      }
      return open(now.segments);
    }
  }

  async redirectURL(desc: BlobDescriptor): Promise<string | undefined> {
    if (this.redirectSeconds === undefined || !this.driver.presignGet) return undefined;
    if (desc.segments.length !== 1) return undefined;
    return this.driver.presignGet(desc.segments[0]!.key, this.redirectSeconds);
  }

  async delete(digest: Digest): Promise<void> {
    await this.stat(digest);
    await this.driver.delete(Paths.layer(this.name, digest));
  }

  async link(desc: BlobDescriptor, digest: Digest, _opts?: { again?: boolean }): Promise<void> {
    await this.driver.put(Paths.layer(this.name, digest), JSON.stringify(desc));
    await this.markRepository();
  }

  async mount(digest: Digest, from?: string): Promise<BlobDescriptor | undefined> {
    const key = from === undefined ? Paths.blob(digest) : Paths.layer(from, digest);
    let desc: BlobDescriptor;
    try {
      desc = decodeDescriptor(await this.storage.fresh.get(key));
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
    await this.link(desc, digest);
    return desc;
  }
}

/**
 * openSegments is {@link concatSegments} with the first object opened before it resolves
 * (a missing object rejects with PathNotFoundError); a read within one segment is that
 * object's own stream, with nothing in between.
 */
export async function openSegments(
  driver: StorageDriver,
  segments: Segment[],
  offset: number,
  length: number,
): Promise<Readable> {
  const runs = segmentRuns(segments, offset, length);
  const first = runs.shift();
  if (first === undefined) return concatRuns(driver, []);
  const head = await driver.read(first.key, first.from, first.length);
  return runs.length === 0 ? head : concatRuns(driver, runs, head);
}

/**
 * openSegmentSource is {@link openSegments} as a ByteSource: undefined when the driver
 * relays no read of the first segment. Later segments are opened as the copy reaches
 * them, relayed when the driver can, else streamed.
 */
export async function openSegmentSource(
  driver: StorageDriver,
  segments: Segment[],
  offset: number,
  length: number,
): Promise<ByteSource | undefined> {
  if (!driver.openSource || length <= 0) return undefined;
  const runs = segmentRuns(segments, offset, length);
  const first = runs.shift();
  if (!first) return undefined;
  const head = await driver.openSource(first.key, first.from, first.length);
  if (!head || runs.length === 0) return head;
  let abandoned = false;
  return {
    length,
    async copyTo(sink) {
      await head.copyTo(sink);
      for (const run of runs) {
        if (abandoned) throw new Error('blob source abandoned');
        const src =
          (await driver.openSource!(run.key, run.from, run.length)) ??
          streamSource(await driver.read(run.key, run.from, run.length), run.length);
        await src.copyTo(sink);
      }
    },
    abandon() {
      abandoned = true;
      head.abandon();
    },
  };
}

/** SegmentRun is one read within one segment: `length` bytes from `from`. */
interface SegmentRun {
  key: string;
  from: number;
  length: number;
}

/** segmentRuns cuts bytes [offset, offset+length) of a concatenation into per-segment reads. */
function segmentRuns(segments: Segment[], offset: number, length: number): SegmentRun[] {
  const runs: SegmentRun[] = [];
  let pos = 0;
  let remaining = length;
  for (const seg of segments) {
    if (remaining <= 0) break;
    const end = pos + seg.size;
    if (end > offset && seg.size > 0) {
      const from = Math.max(0, offset - pos);
      const n = Math.min(seg.size - from, remaining);
      runs.push({ key: seg.key, from, length: n });
      remaining -= n;
    }
    pos = end;
  }
  return runs;
}

/** streamSource copies a stream into a sink, one chunk at a time (the fallback). */
function streamSource(stream: Readable, length: number): ByteSource {
  return {
    length,
    async copyTo(sink: ByteSink) {
      for await (const chunk of stream) {
        await new Promise<void>((resolve, reject) => {
          sink.write(chunk as Buffer, (err) => (err ? reject(err) : resolve()));
        });
      }
    },
    abandon: () => stream.destroy(),
  };
}

/**
 * concatSegments streams bytes [offset, offset+length) of the concatenation of
 * `segments`, opening one segment at a time (memory stays bounded).
 */
export function concatSegments(
  driver: StorageDriver,
  segments: Segment[],
  offset: number,
  length: number,
): Readable {
  return concatRuns(driver, segmentRuns(segments, offset, length));
}

/** concatRuns streams `head` (if any), then each run, opening one at a time. */
function concatRuns(driver: StorageDriver, runs: SegmentRun[], head?: Readable): Readable {
  const out = new PassThrough({ highWaterMark: 1 << 20 });
  void (async () => {
    if (head) await pipeline(head, out, { end: false });
    for (const run of runs) {
      const src = await driver.read(run.key, run.from, run.length);
      await pipeline(src, out, { end: false });
    }
    out.end();
  })().catch((err: unknown) => out.destroy(err as Error));
  return out;
}
