import { createHash } from 'node:crypto';
import { Transform } from 'node:stream';

/** CopyError is a copy that cannot go on (network, format, content); the message says what and where. */
export class CopyError extends Error {
  override readonly name = 'CopyError';
}

/** Descriptor points at content by digest and size. */
export interface Descriptor {
  mediaType?: string;
  digest: string;
  size: number;
  platform?: { os?: string; architecture?: string; variant?: string };
  annotations?: Record<string, string>;
}

/** Manifest is a manifest or index exactly as stored: its bytes, their digest and media type. */
export interface Manifest {
  mediaType: string;
  digest: string;
  body: Buffer;
}

/** ManifestDoc is the parsed fields of a manifest or index that a copy follows. */
export interface ManifestDoc {
  mediaType?: string;
  config?: Descriptor;
  layers?: Descriptor[];
  blobs?: Descriptor[];
  manifests?: Descriptor[];
  subject?: Descriptor;
  artifactType?: string;
}

export const MediaTypes = {
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayer: 'application/vnd.docker.image.rootfs.diff.tar',
  dockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
} as const;

/** REF_NAME is the index.json annotation naming an image in an OCI layout. */
export const REF_NAME = 'org.opencontainers.image.ref.name';

/** isIndex: the media type is an OCI index or a Docker manifest list. */
export function isIndex(mediaType: string): boolean {
  return mediaType === MediaTypes.ociIndex || mediaType === MediaTypes.dockerList;
}

/** parseManifest reads a manifest's JSON; `where` names it in the error. */
export function parseManifest(body: Buffer, where: string): ManifestDoc {
  try {
    const doc = JSON.parse(body.toString('utf8')) as unknown;
    if (typeof doc !== 'object' || doc === null) throw new Error('not an object');
    return doc;
  } catch {
    throw new CopyError(`${where}: not a JSON manifest`);
  }
}

/** mediaTypeOf is a manifest's own media type, else the one its shape implies. */
export function mediaTypeOf(doc: ManifestDoc): string {
  if (doc.mediaType) return doc.mediaType;
  return doc.manifests ? MediaTypes.ociIndex : MediaTypes.ociManifest;
}

/** blobsOf lists the blobs a manifest names: config, layers, an artifact's blobs. */
export function blobsOf(doc: ManifestDoc): Descriptor[] {
  return [...(doc.config ? [doc.config] : []), ...(doc.layers ?? []), ...(doc.blobs ?? [])];
}

const DIGEST = /^(sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128})$/;

/** checkDigest throws unless `digest` is a well-formed sha256 or sha512 digest. */
export function checkDigest(digest: string): string {
  if (!DIGEST.test(digest)) throw new CopyError(`invalid digest ${JSON.stringify(digest)}`);
  return digest;
}

/** digestOf is the sha256 digest of `body`. */
export function digestOf(body: Buffer): string {
  return `sha256:${createHash('sha256').update(body).digest('hex')}`;
}

/** hasherFor is a hash for the algorithm of `digest`. */
export function hasherFor(digest: string) {
  return createHash(digest.startsWith('sha512:') ? 'sha512' : 'sha256');
}

/** checkManifest throws unless `m.body` hashes to `m.digest`; `where` names it. */
export function checkManifest(m: Manifest, where: string): Manifest {
  const h = hasherFor(m.digest).update(m.body).digest('hex');
  if (`${m.digest.split(':')[0]}:${h}` !== m.digest)
    throw new CopyError(`${where}: manifest ${m.digest} does not match its bytes`);
  return m;
}

/**
 * verifier is a pass-through stream that fails at its end unless exactly `d.size` bytes
 * hashing to `d.digest` went through; `onBytes` hears each chunk's length.
 */
export function verifier(d: Descriptor, onBytes: (n: number) => void = () => {}): Transform {
  const hash = hasherFor(d.digest);
  let n = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, done) {
      n += chunk.length;
      hash.update(chunk);
      onBytes(chunk.length);
      done(null, chunk);
    },
    flush(done) {
      const got = `${d.digest.split(':')[0]}:${hash.digest('hex')}`;
      if (n !== d.size) done(new CopyError(`blob ${d.digest}: ${n} bytes, expected ${d.size}`));
      else if (got !== d.digest) done(new CopyError(`blob ${d.digest}: the bytes hash to ${got}`));
      else done();
    },
  });
}
