import { createHash, type Hash } from 'node:crypto';
import { createSHA256, createSHA512, type IHasher } from 'hash-wasm';
import type { Algorithm } from './reference.js';

/**
 * Hasher is an incremental digest over an upload's bytes. Two kinds exist:
 * - native (Node's OpenSSL): fastest, but its state cannot be saved, so it serves the
 *   single-stream path where one request carries the whole blob;
 * - resumable (hash-wasm): slower, but `save()` yields a state another process can
 *   `load` to continue a chunked upload without re-reading what was hashed.
 */
export interface Hasher {
  readonly resumable: boolean;
  update(chunk: Buffer): void;
  /** digestHex finishes the hash. The hasher must not be updated afterwards. */
  digestHex(): string;
  /** save returns the resumable state (base64), or undefined for a native hasher. */
  save(): string | undefined;
}

export function nativeHasher(algorithm: Algorithm): Hasher {
  const h: Hash = createHash(algorithm);
  return {
    resumable: false,
    update: (c) => void h.update(c),
    digestHex: () => h.digest('hex'),
    save: () => undefined,
  };
}

/** resumableHasher starts a fresh hash, or continues from a `save()`d state. */
export async function resumableHasher(algorithm: Algorithm, state?: string): Promise<Hasher> {
  const h: IHasher = algorithm === 'sha256' ? await createSHA256() : await createSHA512();
  h.init();
  if (state !== undefined) h.load(Buffer.from(state, 'base64'));
  return {
    resumable: true,
    update: (c) => void h.update(c),
    digestHex: () => h.digest('hex'),
    save: () => Buffer.from(h.save()).toString('base64'),
  };
}
