import { createHash, type Hash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { tarStream, type TarEntry } from './tar.js';

/** Written is a blob written to a file: its sha256 digest and size in bytes. */
export interface Written {
  digest: string;
  size: number;
}

/** WrittenLayer is a gzip'd tar layer; `diffId` is the digest of the uncompressed tar. */
export interface WrittenLayer extends Written {
  diffId: string;
}

/** HashTap passes bytes through unchanged, hashing and counting them. */
class HashTap extends Transform {
  private readonly hash: Hash = createHash('sha256');
  size = 0;

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.hash.update(chunk);
    this.size += chunk.length;
    done(null, chunk);
  }

  digest(): string {
    return `sha256:${this.hash.digest('hex')}`;
  }
}

/**
 * writeLayer streams `entries` as a sorted tar (every mtime `mtime`) through gzip into
 * `file`, hashing both sides on the way: memory stays bounded whatever the layer's size.
 * node:zlib writes a gzip header without a timestamp, so equal entries give equal bytes.
 * The file appears complete or not at all (written beside it, then renamed).
 */
export async function writeLayer(
  entries: Iterable<TarEntry>,
  mtime: number,
  file: string,
): Promise<WrittenLayer> {
  const raw = new HashTap();
  const gz = new HashTap();
  await writeAtomically(file, (tmp) =>
    pipeline(
      Readable.from(tarStream(entries, mtime)),
      raw,
      createGzip({ level: 6 }),
      gz,
      createWriteStream(tmp),
    ),
  );
  return { digest: gz.digest(), size: gz.size, diffId: raw.digest() };
}

/** writeTar streams `entries` as a sorted, uncompressed tar into `file`. */
export async function writeTar(
  entries: Iterable<TarEntry>,
  mtime: number,
  file: string,
): Promise<Written> {
  const tap = new HashTap();
  await writeAtomically(file, (tmp) =>
    pipeline(Readable.from(tarStream(entries, mtime)), tap, createWriteStream(tmp)),
  );
  return { digest: tap.digest(), size: tap.size };
}

async function writeAtomically(file: string, write: (tmp: string) => Promise<void>): Promise<void> {
  const tmp = `${file}.${process.pid}.partial`;
  try {
    await write(tmp);
    await rename(tmp, file);
  } finally {
    await rm(tmp, { force: true });
  }
}
