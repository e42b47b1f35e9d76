import { createHash, randomBytes } from 'node:crypto';

export interface Blob {
  digest: string;
  bytes: Buffer;
  mediaType: string;
}

export function sha256(b: Buffer | string): string {
  return 'sha256:' + createHash('sha256').update(b).digest('hex');
}

export function blob(
  bytes: Buffer | string,
  mediaType = 'application/vnd.oci.image.layer.v1.tar',
): Blob {
  const b = Buffer.from(bytes);
  return { digest: sha256(b), bytes: b, mediaType };
}

/** Built is a manifest with the blobs it needs, ready to push. */
export interface Built {
  mediaType: string;
  body: Buffer;
  digest: string;
  blobs: Blob[];
  /** children are manifests an index needs pushed first. */
  children: Built[];
  /** platform is the image's os and architecture (images only). */
  platform?: { os: string; architecture: string };
}

function desc(
  x: { mediaType: string; digest: string; bytes?: Buffer; body?: Buffer },
  extra: Record<string, unknown> = {},
) {
  return { mediaType: x.mediaType, digest: x.digest, size: (x.bytes ?? x.body)!.length, ...extra };
}

/**
 * ImageBuilder makes real image content: random layers, a config naming their
 * diff IDs, a manifest (OCI or Docker schema 2), optional artifactType/subject.
 */
export class ImageBuilder {
  private layers: Blob[] = [];
  private mediaType = 'application/vnd.oci.image.manifest.v1+json';
  private configType = 'application/vnd.oci.image.config.v1+json';
  private extra: Record<string, unknown> = {};
  private platform = { architecture: 'amd64', os: 'linux' };
  private configExtra: Record<string, unknown> = {};

  layer(size = 1024): this {
    this.layers.push(blob(randomBytes(size)));
    return this;
  }

  docker(): this {
    this.mediaType = 'application/vnd.docker.distribution.manifest.v2+json';
    this.configType = 'application/vnd.docker.container.image.v1+json';
    return this;
  }

  arch(architecture: string): this {
    this.platform = { ...this.platform, architecture };
    return this;
  }

  artifact(artifactType: string): this {
    this.extra.artifactType = artifactType;
    return this;
  }

  subject(of: Built): this {
    this.extra.subject = desc(of);
    return this;
  }

  /** configure merges `extra` into the image config (e.g. `config.Env`, `history`, `created`). */
  configure(extra: Record<string, unknown>): this {
    this.configExtra = { ...this.configExtra, ...extra };
    return this;
  }

  annotate(annotations: Record<string, string>): this {
    this.extra.annotations = annotations;
    return this;
  }

  build(): Built {
    const config = blob(
      JSON.stringify({
        ...this.platform,
        ...this.configExtra,
        rootfs: { type: 'layers', diff_ids: this.layers.map((l) => l.digest) },
      }),
      this.configType,
    );
    const layers = this.layers.map((l) => ({
      ...l,
      mediaType: this.mediaType.includes('docker')
        ? 'application/vnd.docker.image.rootfs.diff.tar.gzip'
        : l.mediaType,
    }));
    const body = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: this.mediaType,
        config: desc(config),
        layers: layers.map((l) => desc(l)),
        ...this.extra,
      }),
    );
    return {
      mediaType: this.mediaType,
      body,
      digest: sha256(body),
      blobs: [config, ...layers],
      children: [],
      platform: { ...this.platform },
    };
  }
}

/**
 * index builds an OCI image index over `children`; with `platforms`, each descriptor names
 * its child's platform (what clients choose a platform by).
 */
export function index(
  children: Built[],
  extra: Record<string, unknown> = {},
  opts: { platforms?: boolean } = {},
): Built {
  const mediaType = 'application/vnd.oci.image.index.v1+json';
  const body = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType,
      manifests: children.map((c) =>
        desc(c, opts.platforms && c.platform ? { platform: c.platform } : {}),
      ),
      ...extra,
    }),
  );
  return { mediaType, body, digest: sha256(body), blobs: [], children };
}

export const image = (): ImageBuilder => new ImageBuilder();

/** Client is a tiny registry client for tests, over `fetch` relative to a base URL. */
export class Client {
  constructor(private readonly f: (path: string, init?: RequestInit) => Promise<Response>) {}

  async pushBlob(repo: string, b: Blob): Promise<Response> {
    return this.f(`/v2/${repo}/blobs/uploads/?digest=${b.digest}`, {
      method: 'POST',
      body: b.bytes,
      headers: { 'content-type': 'application/octet-stream' },
    });
  }

  async pushManifest(repo: string, ref: string, m: Built): Promise<Response> {
    return this.f(`/v2/${repo}/manifests/${ref}`, {
      method: 'PUT',
      body: m.body,
      headers: { 'content-type': m.mediaType },
    });
  }

  /** push uploads every blob and child, then the manifest under `ref`. */
  async push(repo: string, ref: string, m: Built): Promise<Response> {
    for (const c of m.children) {
      const r = await this.push(repo, c.digest, c);
      if (r.status !== 201) throw new Error(`push child: ${r.status} ${await r.text()}`);
    }
    for (const b of m.blobs) {
      const r = await this.pushBlob(repo, b);
      if (r.status !== 201) throw new Error(`push blob: ${r.status} ${await r.text()}`);
    }
    return this.pushManifest(repo, ref, m);
  }
}

/** platformIndex builds an OCI image index whose children name their platforms (`os/arch[/variant]`). */
export function platformIndex(children: [Built, string][]): Built {
  const mediaType = 'application/vnd.oci.image.index.v1+json';
  const body = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType,
      manifests: children.map(([c, p]) => {
        const [os, architecture, variant] = p.split('/');
        return desc(c, { platform: { os, architecture, ...(variant && { variant }) } });
      }),
    }),
  );
  return { mediaType, body, digest: sha256(body), blobs: [], children: children.map(([c]) => c) };
}
