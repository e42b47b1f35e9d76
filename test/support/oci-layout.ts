import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';

/**
 * OCI image layout (https://github.com/opencontainers/image-spec/blob/main/image-layout.md)
 * written from real content: gzip'd tar layers made in-process, image configs whose
 * rootfs.diff_ids are the digests of the uncompressed tars, image manifests, image indexes
 * and artifact manifests with a subject. Every blob is stored under blobs/sha256/<hex>;
 * index.json lists the entries given a `ref` (as org.opencontainers.image.ref.name),
 * which is what `skopeo ... oci:<dir>:<ref>` resolves.
 *
 *   const layout = new OciLayoutBuilder(dir)
 *     .image('amd64', { platform: { os: 'linux', architecture: 'amd64' } })
 *     .image('arm64', { platform: { os: 'linux', architecture: 'arm64' } })
 *     .index('multi', ['amd64', 'arm64'], { ref: 'v1' })
 *     .artifact('sbom', { subject: 'multi', ref: 'sbom' })
 *     .write();
 *   layout.get('multi').digest;
 */

export const MediaType = {
  layout: 'application/vnd.oci.layout.header.v1+json',
  manifest: 'application/vnd.oci.image.manifest.v1+json',
  index: 'application/vnd.oci.image.index.v1+json',
  config: 'application/vnd.oci.image.config.v1+json',
  layerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  empty: 'application/vnd.oci.empty.v1+json',
} as const;

export const REF_NAME = 'org.opencontainers.image.ref.name';

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  artifactType?: string;
  platform?: Platform;
  annotations?: Record<string, string>;
}

/** Entry is one manifest (image, index or artifact) the builder wrote. */
export interface Entry {
  name: string;
  kind: 'image' | 'index' | 'artifact';
  /** descriptor points at the manifest (with platform for images, when known). */
  descriptor: Descriptor;
  digest: string;
  /** body is the exact manifest bytes. */
  body: Buffer;
  /** blobs are the digests of the non-manifest blobs this manifest references directly. */
  blobs: string[];
  /** children are the manifests an index references (names), in order. */
  children: string[];
  /** ref is the index.json reference name, when the entry has one. */
  ref?: string;
}

/** OciLayout is what `write()` produced: every digest, every byte. */
export class OciLayout {
  constructor(
    readonly dir: string,
    /** blobs holds every blob written, manifests included, by digest. */
    readonly blobs: ReadonlyMap<string, Buffer>,
    private readonly entries: ReadonlyMap<string, Entry>,
    /** indexJson is the exact bytes of the layout's index.json. */
    readonly indexJson: Buffer,
  ) {}

  get(name: string): Entry {
    const e = this.entries.get(name);
    if (!e) throw new Error(`oci layout: no entry named ${name}`);
    return e;
  }

  /** closure is every digest (manifests and blobs) reachable from `name`, itself first. */
  closure(name: string): string[] {
    const e = this.get(name);
    const out = [e.digest, ...e.blobs];
    for (const c of e.children) for (const d of this.closure(c)) out.push(d);
    return [...new Set(out)];
  }

  bytes(digest: string): Buffer {
    const b = this.blobs.get(digest);
    if (!b) throw new Error(`oci layout: no blob ${digest}`);
    return b;
  }
}

export interface ImageOptions {
  platform: Platform;
  /** files become one layer each: a tar holding that single regular file. */
  files?: Record<string, string | Buffer>;
  annotations?: Record<string, string>;
  ref?: string;
}

export interface IndexOptions {
  annotations?: Record<string, string>;
  ref?: string;
}

export interface ArtifactOptions {
  /** subject names an entry already added (image, index or artifact). */
  subject?: string;
  artifactType?: string;
  /** payload is the single layer's content. */
  payload?: string | Buffer;
  payloadMediaType?: string;
  annotations?: Record<string, string>;
  ref?: string;
}

export function sha256(b: Buffer | string): string {
  return 'sha256:' + createHash('sha256').update(b).digest('hex');
}

/**
 * tar makes a POSIX ustar archive with one regular file: a 512-byte header (checksum
 * computed over the header with the checksum field read as spaces), the content padded to
 * 512 bytes, and the two zero blocks that end an archive. mtime and owner are fixed, so
 * the same input always gives the same bytes.
 */
export function tar(name: string, content: Buffer | string): Buffer {
  const data = Buffer.from(content);
  if (Buffer.byteLength(name) > 100) throw new Error(`tar: name too long: ${name}`);
  const header = Buffer.alloc(512, 0);
  const field = (offset: number, length: number, value: string) =>
    header.write(value, offset, length, 'ascii');
  const octal = (offset: number, length: number, n: number) =>
    field(offset, length, n.toString(8).padStart(length - 1, '0') + '\0');
  header.write(name, 0, 100, 'utf8');
  octal(100, 8, 0o644); // mode
  octal(108, 8, 0); // uid
  octal(116, 8, 0); // gid
  octal(124, 12, data.length); // size
  octal(136, 12, 1_700_000_000); // mtime
  field(148, 8, ' '.repeat(8)); // checksum, as spaces while summing
  field(156, 1, '0'); // typeflag: regular file
  field(257, 6, 'ustar\0');
  field(263, 2, '00');
  field(265, 32, 'root');
  field(297, 32, 'root');
  let sum = 0;
  for (const byte of header) sum += byte;
  field(148, 8, sum.toString(8).padStart(6, '0') + '\0 ');
  const pad = Buffer.alloc((512 - (data.length % 512)) % 512, 0);
  return Buffer.concat([header, data, pad, Buffer.alloc(1024, 0)]);
}

interface Pending {
  name: string;
  build: () => Entry;
}

/** OciLayoutBuilder collects entries in order; `write()` makes the bytes and the files. */
export class OciLayoutBuilder {
  private readonly pending: Pending[] = [];
  private readonly blobs = new Map<string, Buffer>();
  private readonly entries = new Map<string, Entry>();

  constructor(private readonly dir: string) {}

  /** image adds a single-platform OCI image: config, gzip'd tar layers, manifest. */
  image(name: string, opts: ImageOptions): this {
    return this.add(name, () => {
      const files = opts.files ?? {
        [`hello-${opts.platform.architecture}.txt`]: `hello from ${opts.platform.os}/${opts.platform.architecture}\n`,
      };
      const layers = Object.entries(files).map(([path, content]) => {
        const raw = tar(path, content);
        const gz = gzipSync(raw, { level: 9 });
        return { diffId: sha256(raw), desc: this.blob(gz, MediaType.layerGzip) };
      });
      const config = this.blob(
        json({
          architecture: opts.platform.architecture,
          os: opts.platform.os,
          ...(opts.platform.variant && { variant: opts.platform.variant }),
          config: { Cmd: ['/bin/true'] },
          rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
          history: layers.map(() => ({ created_by: 'berth oci-layout builder' })),
        }),
        MediaType.config,
      );
      const body = json({
        schemaVersion: 2,
        mediaType: MediaType.manifest,
        config,
        layers: layers.map((l) => l.desc),
        ...(opts.annotations && { annotations: opts.annotations }),
      });
      const d = this.blob(body, MediaType.manifest);
      return {
        name,
        kind: 'image',
        descriptor: { ...d, platform: opts.platform },
        digest: d.digest,
        body,
        blobs: [config.digest, ...layers.map((l) => l.desc.digest)],
        children: [],
        ref: opts.ref,
      };
    });
  }

  /** index adds an OCI image index over entries already added (by name). */
  index(name: string, children: string[], opts: IndexOptions = {}): this {
    return this.add(name, () => {
      const body = json({
        schemaVersion: 2,
        mediaType: MediaType.index,
        manifests: children.map((c) => this.entry(c).descriptor),
        ...(opts.annotations && { annotations: opts.annotations }),
      });
      const d = this.blob(body, MediaType.index);
      return {
        name,
        kind: 'index',
        descriptor: d,
        digest: d.digest,
        body,
        blobs: [],
        children: [...children],
        ref: opts.ref,
      };
    });
  }

  /**
   * artifact adds an OCI image manifest carrying `artifactType`, the empty config
   * (`{}` as application/vnd.oci.empty.v1+json), one payload layer and, optionally, a
   * `subject` naming an entry already added.
   */
  artifact(name: string, opts: ArtifactOptions = {}): this {
    return this.add(name, () => {
      const artifactType = opts.artifactType ?? 'application/vnd.example.sbom.v1';
      const config = this.blob('{}', MediaType.empty);
      const payload = this.blob(
        opts.payload ?? json({ spdxVersion: 'SPDX-2.3', name }),
        opts.payloadMediaType ?? 'application/vnd.example.sbom.v1+json',
      );
      const subject = opts.subject === undefined ? undefined : this.entry(opts.subject);
      const body = json({
        schemaVersion: 2,
        mediaType: MediaType.manifest,
        artifactType,
        config,
        layers: [payload],
        ...(subject && {
          subject: {
            mediaType: subject.descriptor.mediaType,
            digest: subject.digest,
            size: subject.body.length,
          },
        }),
        ...(opts.annotations && { annotations: opts.annotations }),
      });
      const d = this.blob(body, MediaType.manifest);
      return {
        name,
        kind: 'artifact',
        descriptor: { ...d, artifactType },
        digest: d.digest,
        body,
        blobs: [config.digest, payload.digest],
        children: [],
        ref: opts.ref,
      };
    });
  }

  /** write builds every entry and writes oci-layout, index.json and blobs/sha256/*. */
  write(): OciLayout {
    for (const p of this.pending) {
      if (this.entries.has(p.name)) throw new Error(`oci layout: ${p.name} added twice`);
      this.entries.set(p.name, p.build());
    }
    const refs = [...this.entries.values()].filter((e) => e.ref !== undefined);
    const indexJson = json({
      schemaVersion: 2,
      mediaType: MediaType.index,
      manifests: refs.map((e) => ({
        mediaType: e.descriptor.mediaType,
        digest: e.digest,
        size: e.body.length,
        ...(e.descriptor.artifactType && { artifactType: e.descriptor.artifactType }),
        annotations: { [REF_NAME]: e.ref! },
      })),
    });
    const blobDir = join(this.dir, 'blobs', 'sha256');
    mkdirSync(blobDir, { recursive: true });
    for (const [digest, bytes] of this.blobs)
      writeFileSync(join(blobDir, digest.slice('sha256:'.length)), bytes);
    writeFileSync(join(this.dir, 'oci-layout'), json({ imageLayoutVersion: '1.0.0' }));
    writeFileSync(join(this.dir, 'index.json'), indexJson);
    return new OciLayout(this.dir, new Map(this.blobs), new Map(this.entries), indexJson);
  }

  private add(name: string, build: () => Entry): this {
    this.pending.push({ name, build });
    return this;
  }

  private entry(name: string): Entry {
    const e = this.entries.get(name);
    if (!e) throw new Error(`oci layout: ${name} must be added before it is referenced`);
    return e;
  }

  private blob(bytes: Buffer | string, mediaType: string): Descriptor {
    const b = Buffer.from(bytes);
    const digest = sha256(b);
    this.blobs.set(digest, b);
    return { mediaType, digest, size: b.length };
  }
}

function json(v: unknown): Buffer {
  return Buffer.from(JSON.stringify(v));
}

/** ReadLayout is an OCI layout read back from disk (e.g. one skopeo wrote). */
export interface ReadLayout {
  index: { manifests: (Descriptor & { annotations?: Record<string, string> })[] };
  /** resolve finds the index.json entry whose ref name is `ref`. */
  resolve(ref: string): Descriptor;
  /** blob reads blobs/<alg>/<hex>, throwing when absent. */
  blob(digest: string): Buffer;
}

export function readLayout(dir: string): ReadLayout {
  const index = JSON.parse(readFileSync(join(dir, 'index.json'), 'utf8')) as ReadLayout['index'];
  return {
    index,
    resolve(ref) {
      const d = index.manifests.find((m) => m.annotations?.[REF_NAME] === ref);
      if (!d) throw new Error(`oci layout ${dir}: no ref ${ref} in index.json`);
      return d;
    },
    blob(digest) {
      const [alg, hex] = digest.split(':');
      return readFileSync(join(dir, 'blobs', alg!, hex!));
    },
  };
}
