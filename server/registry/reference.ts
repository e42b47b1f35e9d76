import { Errors } from '../errors.js';

/** NAME_COMPONENT and the full name grammar of the distribution-spec. */
const NAME = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$/;
const TAG = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;
const DIGEST = /^([a-z0-9]+(?:[+._-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)$/;

/** MAX_NAME_LENGTH bounds a repository name (clients cap host/name at 255). */
export const MAX_NAME_LENGTH = 255;

export type Algorithm = 'sha256' | 'sha512';
const HEX_LENGTH: Record<Algorithm, number> = { sha256: 64, sha512: 128 };

/** Digest is a parsed, validated content digest. */
export interface Digest {
  readonly algorithm: Algorithm;
  readonly hex: string;
  /** value is `<algorithm>:<hex>`. */
  readonly value: string;
}

/** parseName validates a repository name; throws NAME_INVALID naming the reason. */
export function parseName(name: string): string {
  if (name.length === 0 || name.length > MAX_NAME_LENGTH || !NAME.test(name)) {
    throw Errors.nameInvalid(
      { name },
      undefined,
      `invalid repository name: ${JSON.stringify(name.slice(0, 300))}`,
    );
  }
  return name;
}

export function isTag(ref: string): boolean {
  return TAG.test(ref);
}

/** parseTag validates a tag; throws TAG_INVALID. */
export function parseTag(tag: string): string {
  if (!TAG.test(tag))
    throw Errors.tagInvalid(
      { tag },
      undefined,
      `invalid tag: ${JSON.stringify(tag.slice(0, 200))}`,
    );
  return tag;
}

/**
 * parseDigest validates `<alg>:<hex>`. Only sha256 and sha512 are accepted; the hex
 * part must be lowercase and of the algorithm's length. Throws DIGEST_INVALID.
 */
export function parseDigest(value: string): Digest {
  const m = DIGEST.exec(value);
  const bad = (why: string) =>
    Errors.digestInvalid({ digest: value.slice(0, 200) }, undefined, `invalid digest: ${why}`);
  if (!m) throw bad('not of the form <algorithm>:<encoded>');
  const algorithm = m[1] as Algorithm;
  const hex = m[2]!;
  if (!(algorithm in HEX_LENGTH)) throw bad(`unsupported algorithm ${JSON.stringify(m[1])}`);
  if (hex.length !== HEX_LENGTH[algorithm] || !/^[a-f0-9]+$/.test(hex)) {
    throw bad(`${algorithm} needs ${HEX_LENGTH[algorithm]} lowercase hex characters`);
  }
  return { algorithm, hex, value: `${algorithm}:${hex}` };
}

export function isDigest(ref: string): boolean {
  return ref.includes(':');
}

/** Reference is a manifest reference: a tag or a digest. */
export type Reference = { kind: 'tag'; tag: string } | { kind: 'digest'; digest: Digest };

export function parseReference(ref: string): Reference {
  if (isDigest(ref)) return { kind: 'digest', digest: parseDigest(ref) };
  if (!TAG.test(ref)) {
    throw Errors.manifestInvalid(
      { reference: ref.slice(0, 200) },
      undefined,
      `invalid reference: ${JSON.stringify(ref.slice(0, 200))}`,
    );
  }
  return { kind: 'tag', tag: ref };
}

export function digestOf(algorithm: Algorithm, hex: string): Digest {
  return { algorithm, hex, value: `${algorithm}:${hex}` };
}
