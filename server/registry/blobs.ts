import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Errors } from '../errors.js';
import { isNotFound, type StorageDriver } from '../storage/driver.js';
import { Paths } from '../storage/paths.js';
import type { Digest } from './reference.js';

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
  /** open streams `length` bytes from `offset` of the blob. */
  open(desc: BlobDescriptor, offset?: number, length?: number): Readable;
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
  /** link records `desc` in the repository (idempotent). */
  link(desc: BlobDescriptor, digest: Digest): Promise<void>;
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
  constructor(
    private readonly driver: StorageDriver,
    private readonly name: string,
    private readonly markRepository: () => Promise<void>,
    private readonly redirectSeconds?: number,
  ) {}

  async stat(digest: Digest): Promise<BlobDescriptor> {
    try {
      return decodeDescriptor(await this.driver.get(Paths.layer(this.name, digest)));
    } catch (err) {
      if (isNotFound(err)) throw Errors.blobUnknown({ digest: digest.value });
      throw err;
    }
  }

  open(desc: BlobDescriptor, offset = 0, length = desc.size - offset): Readable {
    return concatSegments(this.driver, desc.segments, offset, length);
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

  async link(desc: BlobDescriptor, digest: Digest): Promise<void> {
    await this.driver.put(Paths.layer(this.name, digest), JSON.stringify(desc));
    await this.markRepository();
  }

  async mount(digest: Digest, from?: string): Promise<BlobDescriptor | undefined> {
    const key = from === undefined ? Paths.blob(digest) : Paths.layer(from, digest);
    let desc: BlobDescriptor;
    try {
      desc = decodeDescriptor(await this.driver.get(key));
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
    await this.link(desc, digest);
    return desc;
  }
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
  const out = new PassThrough({ highWaterMark: 1 << 20 });
  void (async () => {
    let pos = 0;
    let remaining = length;
    for (const seg of segments) {
      if (remaining <= 0) break;
      const segEnd = pos + seg.size;
      if (segEnd > offset && seg.size > 0) {
        const from = Math.max(0, offset - pos);
        const n = Math.min(seg.size - from, remaining);
        const src = await driver.read(seg.key, from, n);
        await pipeline(src, out, { end: false });
        remaining -= n;
      }
      pos = segEnd;
    }
    out.end();
  })().catch((err: unknown) => out.destroy(err as Error));
  return out;
}
