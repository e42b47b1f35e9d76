import type { Readable } from 'node:stream';
import type { RegistryClient } from '../client/registry.js';
import type { Source } from '../copy/transport.js';
import { checkManifest, parseManifest, type Descriptor, type Manifest } from '../copy/spec.js';

/** referrersTag is the OCI tag schema's fallback tag of a subject: `sha256:<hex>` → `sha256-<hex>`. */
export function referrersTag(digest: string): string {
  return digest.replace(':', '-');
}

/** isReferrersTag: a tag of the fallback schema (`<alg>-<hex>`), which sync does not copy as a tag. */
export function isReferrersTag(tag: string): boolean {
  return /^(sha256-[0-9a-f]{64}|sha512-[0-9a-f]{128})$/.test(tag);
}

/**
 * UpstreamSource reads one upstream repository for a sync: the root is a manifest by digest
 * (the one the tag's HEAD named, so a tag moving mid-run cannot mix two images), every
 * manifest is verified against its digest, and referrers come from the referrers API, else,
 * when the upstream answers it 404, from the index the tag schema's `<alg>-<hex>` tag names.
 */
export class UpstreamSource implements Source {
  constructor(
    private readonly client: RegistryClient,
    private readonly repository: string,
    private readonly rootDigest: string,
    readonly describe: string,
  ) {}

  /** at is this repository as a source whose root is the manifest `digest`. */
  at(digest: string): UpstreamSource {
    return new UpstreamSource(this.client, this.repository, digest, this.describe);
  }

  root(): Promise<Manifest> {
    return this.manifest(this.rootDigest);
  }

  async manifest(digest: string): Promise<Manifest> {
    return checkManifest(await this.client.getManifest(this.repository, digest), this.describe);
  }

  blob(d: Descriptor): Promise<Readable> {
    return this.client.openBlob(this.repository, d.digest);
  }

  async referrers(digest: string): Promise<string[]> {
    const api = await this.client.referrersApi(this.repository, digest);
    if (api !== undefined) return api.map((r) => r.digest);
    const head = await this.client.headManifest(this.repository, referrersTag(digest));
    if (head === undefined) return [];
    const index = await this.manifest(head.digest);
    const doc = parseManifest(index.body, `${this.describe}: ${referrersTag(digest)}`);
    return (doc.manifests ?? []).map((m) => m.digest);
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
