import { gzipSync } from 'node:zlib';
import { tarStream, type TarEntry } from '../../server/image/tar.js';
import type { Built } from './image.js';

const REF_NAME = 'org.opencontainers.image.ref.name';

/** collect reads a tar stream whole (test archives are small). */
export async function tarBytes(entries: TarEntry[]): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of tarStream(entries, 1_700_000_000)) parts.push(c);
  return Buffer.concat(parts);
}

const file = (path: string, source: Buffer): TarEntry => ({
  type: 'file',
  path,
  mode: 0o644,
  size: source.length,
  source,
});

const blobPath = (digest: string) => `blobs/sha256/${digest.slice(7)}`;

/**
 * ArchiveBuilder makes the archives an import reads, from built images: an oci-archive
 * (an OCI layout tarred, index.json naming images), a docker-archive (manifest.json with
 * RepoTags, plus the OCI layout docker 25+ writes, or the legacy files only), gzip optional.
 *
 *   const tar = await archive().image(multi, 'team/app:v1').referrer(sbom).oci();
 */
export class ArchiveBuilder {
  private readonly named: [Built, string | undefined][] = [];
  private readonly referrers: Built[] = [];
  private prefix = '';
  private extra: TarEntry[] = [];

  /** image adds an image (and its children) with an index.json name, or none. */
  image(b: Built, name?: string): this {
    this.named.push([b, name]);
    return this;
  }

  /** referrer adds a manifest listed in index.json without a name. */
  referrer(b: Built): this {
    this.referrers.push(b);
    return this;
  }

  /** inFolder puts every member under `dir/` (a layout tarred with its folder). */
  inFolder(dir: string): this {
    this.prefix = `${dir}/`;
    return this;
  }

  /** with adds raw members (hostile ones, in tests of refusals). */
  with(...entries: TarEntry[]): this {
    this.extra.push(...entries);
    return this;
  }

  private blobs(): Map<string, Buffer> {
    const out = new Map<string, Buffer>();
    const add = (b: Built) => {
      out.set(b.digest, b.body);
      for (const bl of b.blobs) out.set(bl.digest, bl.bytes);
      b.children.forEach(add);
    };
    this.named.forEach(([b]) => add(b));
    this.referrers.forEach(add);
    return out;
  }

  private layoutEntries(): TarEntry[] {
    const manifests = [
      ...this.named.map(([b, name]) => ({
        mediaType: b.mediaType,
        digest: b.digest,
        size: b.body.length,
        ...(name === undefined ? {} : { annotations: { [REF_NAME]: name } }),
      })),
      ...this.referrers.map((b) => ({
        mediaType: b.mediaType,
        digest: b.digest,
        size: b.body.length,
      })),
    ];
    const index = { schemaVersion: 2, manifests };
    return [
      file('oci-layout', Buffer.from('{"imageLayoutVersion":"1.0.0"}')),
      file('index.json', Buffer.from(JSON.stringify(index))),
      ...[...this.blobs()].map(([d, bytes]) => file(blobPath(d), bytes)),
    ];
  }

  private finish(entries: TarEntry[]): Promise<Buffer> {
    const moved = entries.map((e) => ({ ...e, path: this.prefix + e.path }));
    return tarBytes([...moved, ...this.extra]);
  }

  /** oci is the oci-archive of the images and referrers. */
  oci(): Promise<Buffer> {
    return this.finish(this.layoutEntries());
  }

  /**
   * docker is a docker-archive of the images (`name`s become RepoTags): modern (an OCI
   * layout inside) or legacy (`<hex>.json` config and `<hex>.tar` layers only).
   */
  docker(kind: 'modern' | 'legacy' = 'modern'): Promise<Buffer> {
    const entries = this.named.map(([b, name]) => {
      const [config, ...layers] = b.blobs;
      const path = (d: string) => (kind === 'modern' ? blobPath(d) : `${d.slice(7)}.tar`);
      return {
        Config: kind === 'modern' ? blobPath(config!.digest) : `${config!.digest.slice(7)}.json`,
        RepoTags: name === undefined ? [] : [name],
        Layers: layers.map((l) => path(l.digest)),
      };
    });
    const members =
      kind === 'modern'
        ? this.layoutEntries()
        : this.named.flatMap(([b]) => [
            file(`${b.blobs[0]!.digest.slice(7)}.json`, b.blobs[0]!.bytes),
            ...b.blobs.slice(1).map((l) => file(`${l.digest.slice(7)}.tar`, l.bytes)),
          ]);
    return this.finish([...members, file('manifest.json', Buffer.from(JSON.stringify(entries)))]);
  }
}

export const archive = (): ArchiveBuilder => new ArchiveBuilder();

/** gzip compresses an archive (an import takes either). */
export const gzip = (b: Buffer): Buffer => gzipSync(b);
