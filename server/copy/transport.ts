import type { Readable } from 'node:stream';
import type { Descriptor, Manifest } from './spec.js';

/**
 * Source is where a copy reads: the manifest its reference names, any manifest or blob by
 * digest, and the referrers of a manifest. Callers verify every byte against its digest.
 */
export interface Source {
  /** describe is the source as the user wrote it, for messages. */
  readonly describe: string;
  /** root is the manifest (or index) the reference names. */
  root(): Promise<Manifest>;
  /** manifest reads a manifest by digest. */
  manifest(digest: string): Promise<Manifest>;
  /** blob opens a blob's bytes by descriptor. */
  blob(d: Descriptor): Promise<Readable>;
  /** referrers lists the digests of manifests whose subject is `digest`. */
  referrers(digest: string): Promise<string[]>;
  close(): Promise<void>;
}

/**
 * Destination is where a copy writes. Writes are idempotent: a blob or manifest already
 * there (verified by digest) is reported by `hasBlob` and never written again; nothing is
 * complete until `finish`, which names the root by the reference and, for an archive,
 * writes the file.
 */
export interface Destination {
  readonly describe: string;
  /** hasBlob: the destination holds this blob with these exact bytes. */
  hasBlob(d: Descriptor): Promise<boolean>;
  /** putBlob stores a blob from a stream the caller verifies; a failure keeps nothing. */
  putBlob(d: Descriptor, body: Readable): Promise<void>;
  /** putManifest stores a manifest by its digest, after every blob and child it names. */
  putManifest(m: Manifest): Promise<void>;
  /** finish names `root` by the destination's reference and lists `referrers` where the format needs it. */
  finish(root: Manifest, referrers: Manifest[]): Promise<void>;
}
