import { Errors } from '../errors.js';
import { parseDigest, type Digest } from './reference.js';

export const MediaTypes = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerSchema1: 'application/vnd.docker.distribution.manifest.v1+json',
  dockerSchema1Signed: 'application/vnd.docker.distribution.manifest.v1+prettyjws',
} as const;

const IMAGE_TYPES = new Set<string>([MediaTypes.ociManifest, MediaTypes.dockerManifest]);
const INDEX_TYPES = new Set<string>([MediaTypes.ociIndex, MediaTypes.dockerList]);

/** Descriptor is an OCI content descriptor, validated. */
export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  urls?: string[];
  annotations?: Record<string, string>;
  artifactType?: string;
}

/** ParsedManifest is what the registry needs to know of a manifest it stores. */
export interface ParsedManifest {
  mediaType: string;
  kind: 'image' | 'index';
  /** blobs are the descriptors that must exist in the repository (config, layers). */
  blobs: Descriptor[];
  /** manifests are the child manifests of an index. */
  manifests: Descriptor[];
  subject?: Descriptor & { parsed: Digest };
  /** artifactType as the referrers API reports it. */
  artifactType?: string;
  annotations?: Record<string, string>;
}

const invalid = (why: string) =>
  Errors.manifestInvalid({ reason: why }, undefined, `manifest invalid: ${why}`);

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function descriptor(v: unknown, where: string): Descriptor {
  if (!isObject(v)) throw invalid(`${where} is not a descriptor object`);
  const { mediaType, digest, size, urls, annotations, artifactType } = v;
  if (typeof mediaType !== 'string' || mediaType.length === 0 || mediaType.length > 255) {
    throw invalid(`${where}.mediaType must be a non-empty string`);
  }
  if (typeof digest !== 'string') throw invalid(`${where}.digest must be a string`);
  try {
    parseDigest(digest);
  } catch {
    throw invalid(`${where}.digest ${JSON.stringify(digest.slice(0, 150))} is not a valid digest`);
  }
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) {
    throw invalid(`${where}.size must be a non-negative integer`);
  }
  if (urls !== undefined && (!Array.isArray(urls) || urls.some((u) => typeof u !== 'string'))) {
    throw invalid(`${where}.urls must be an array of strings`);
  }
  if (annotations !== undefined && !stringMap(annotations)) {
    throw invalid(`${where}.annotations must map strings to strings`);
  }
  if (artifactType !== undefined && typeof artifactType !== 'string') {
    throw invalid(`${where}.artifactType must be a string`);
  }
  return v as unknown as Descriptor;
}

function stringMap(v: unknown): v is Record<string, string> {
  return isObject(v) && Object.values(v).every((x) => typeof x === 'string');
}

/** isNonDistributable: layers that live elsewhere and need not be pushed. */
function isNonDistributable(d: Descriptor): boolean {
  return (
    (d.urls?.length ?? 0) > 0 &&
    (d.mediaType.includes('nondistributable') || d.mediaType.includes('foreign'))
  );
}

/**
 * parseManifest validates a manifest body. `contentType` is the request's type
 * (parameters ignored). Schema 1 is refused with a clear error; unknown types are
 * refused. Throws MANIFEST_INVALID naming what is wrong.
 */
export function parseManifest(body: Buffer, contentType: string | undefined): ParsedManifest {
  const doc = jsonObject(body);
  const header = contentType?.split(';')[0]?.trim().toLowerCase();
  const mediaType = manifestMediaType(doc, header);
  if (doc.annotations !== undefined && !stringMap(doc.annotations)) {
    throw invalid('annotations must map strings to strings');
  }
  if (doc.artifactType !== undefined && typeof doc.artifactType !== 'string') {
    throw invalid('artifactType must be a string');
  }
  const subject = doc.subject === undefined ? undefined : descriptor(doc.subject, 'subject');
  const base: ManifestBase = {
    mediaType,
    annotations: doc.annotations,
    subject: subject && { ...subject, parsed: parseDigest(subject.digest) },
  };
  if (IMAGE_TYPES.has(mediaType)) return imageManifest(doc, base);
  if (INDEX_TYPES.has(mediaType)) return indexManifest(doc, base);
  throw invalid(`unsupported manifest media type ${JSON.stringify(mediaType.slice(0, 200))}`);
}

type ManifestBase = Pick<ParsedManifest, 'mediaType' | 'annotations' | 'subject'>;

/** jsonObject parses a body that must be one JSON object. */
function jsonObject(body: Buffer): Record<string, unknown> {
  let doc: unknown;
  try {
    doc = JSON.parse(body.toString('utf8'));
  } catch {
    throw invalid('body is not valid JSON');
  }
  if (!isObject(doc)) throw invalid('body is not a JSON object');
  return doc;
}

/**
 * manifestMediaType is the media type of a schema 2 manifest: the one it declares, which a
 * manifest Content-Type `header` must match, or else the header's, or one inferred from its
 * shape. Schema 1 is refused.
 */
function manifestMediaType(doc: Record<string, unknown>, header: string | undefined): string {
  const declared = typeof doc.mediaType === 'string' ? doc.mediaType : undefined;
  if (
    declared === MediaTypes.dockerSchema1 ||
    declared === MediaTypes.dockerSchema1Signed ||
    header === MediaTypes.dockerSchema1 ||
    header === MediaTypes.dockerSchema1Signed ||
    doc.schemaVersion === 1
  ) {
    throw invalid('Docker schema 1 manifests are not supported; push a schema 2 or OCI manifest');
  }
  if (doc.schemaVersion !== 2) throw invalid('schemaVersion must be 2');
  const manifestHeader =
    header !== undefined && (IMAGE_TYPES.has(header) || INDEX_TYPES.has(header))
      ? header
      : undefined;
  if (declared !== undefined) {
    if (manifestHeader !== undefined && manifestHeader !== declared) {
      throw invalid(`Content-Type ${header} does not match the manifest's mediaType ${declared}`);
    }
    return declared;
  }
  if (manifestHeader !== undefined) return manifestHeader;
  if (Array.isArray(doc.manifests)) return MediaTypes.ociIndex;
  if (isObject(doc.config)) return MediaTypes.ociManifest;
  throw invalid('mediaType is missing and cannot be inferred');
}

/** imageManifest validates an image manifest: a config and layers, no child manifests. */
function imageManifest(doc: Record<string, unknown>, base: ManifestBase): ParsedManifest {
  if (Array.isArray(doc.manifests)) throw invalid('an image manifest must not have manifests');
  const config = descriptor(doc.config, 'config');
  if (!Array.isArray(doc.layers)) throw invalid('layers must be an array');
  const layers = doc.layers.map((l, i) => descriptor(l, `layers[${i}]`));
  if (
    base.mediaType === MediaTypes.dockerManifest &&
    (doc.subject !== undefined || doc.artifactType !== undefined)
  ) {
    throw invalid('Docker schema 2 manifests cannot carry subject or artifactType');
  }
  return {
    ...base,
    kind: 'image',
    blobs: [config, ...layers.filter((l) => !isNonDistributable(l))],
    manifests: [],
    artifactType: (doc.artifactType as string | undefined) ?? config.mediaType,
  };
}

/** indexManifest validates an index: child manifests, no config or layers. */
function indexManifest(doc: Record<string, unknown>, base: ManifestBase): ParsedManifest {
  if (!Array.isArray(doc.manifests)) throw invalid('manifests must be an array');
  if (doc.config !== undefined || doc.layers !== undefined) {
    throw invalid('an index must not have config or layers');
  }
  const manifests = doc.manifests.map((m, i) => descriptor(m, `manifests[${i}]`));
  return {
    ...base,
    kind: 'index',
    blobs: [],
    manifests,
    artifactType: doc.artifactType as string | undefined,
  };
}
