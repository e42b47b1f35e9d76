/** MediaTypes of the OCI image spec that Berth writes. */
export const MediaTypes = {
  layout: 'application/vnd.oci.layout.header.v1+json',
  index: 'application/vnd.oci.image.index.v1+json',
  manifest: 'application/vnd.oci.image.manifest.v1+json',
  config: 'application/vnd.oci.image.config.v1+json',
  layerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
} as const;

/** Annotation and label keys used on the image and in index.json. */
export const Keys = {
  refName: 'org.opencontainers.image.ref.name',
  containerdName: 'io.containerd.image.name',
  created: 'org.opencontainers.image.created',
  version: 'org.opencontainers.image.version',
  revision: 'org.opencontainers.image.revision',
  source: 'org.opencontainers.image.source',
  title: 'org.opencontainers.image.title',
  description: 'org.opencontainers.image.description',
  licenses: 'org.opencontainers.image.licenses',
} as const;

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: { architecture: string; os: string };
  annotations?: Record<string, string>;
}

/** ImageSpec is everything the config and manifest are rendered from. */
export interface ImageSpec {
  /** arch is the OCI architecture (`amd64`, `arm64`). */
  arch: string;
  version: string;
  revision: string;
  /** epoch is the source date epoch in seconds: `created` and every layer mtime. */
  epoch: number;
  source: string;
  title: string;
  description: string;
  licenses: string;
}

/** DATA_DIR is the storage folder, a volume owned by the non-root user. */
export const DATA_DIR = '/var/lib/berth';
/** USER is the numeric user and group the image runs as (distroless's `nonroot`). */
export const USER = { uid: 65532, gid: 65532 } as const;

/** created renders the source date epoch as RFC 3339 (UTC, seconds). */
export function created(epoch: number): string {
  return new Date(epoch * 1000).toISOString().replace(/\.000Z$/, 'Z');
}

/** labels are the OCI labels of the image config (also the manifest's annotations). */
export function labels(s: ImageSpec): Record<string, string> {
  return {
    [Keys.created]: created(s.epoch),
    [Keys.description]: s.description,
    [Keys.licenses]: s.licenses,
    [Keys.revision]: s.revision,
    [Keys.source]: s.source,
    [Keys.title]: s.title,
    [Keys.version]: s.version,
  };
}

/**
 * renderConfig is the image config JSON: non-root user, `node --max-semi-space-size=4
 * /app/dist/server/cli.js server` by default, the data volume, port 5000, OCI labels, and the
 * layers' diff IDs in order. Pure: the same spec and layers give the same bytes.
 */
export function renderConfig(
  s: ImageSpec,
  layers: readonly { diffId: string; createdBy: string }[],
): Buffer {
  const at = created(s.epoch);
  return json({
    created: at,
    architecture: s.arch,
    os: 'linux',
    config: {
      User: `${USER.uid}:${USER.gid}`,
      Env: [
        'PATH=/usr/local/bin:/usr/bin:/bin',
        'NODE_ENV=production',
        `BERTH_STORAGE_FILESYSTEM_ROOT=${DATA_DIR}`,
      ],
      Entrypoint: ['/usr/local/bin/node', '--max-semi-space-size=4', '/app/dist/server/cli.js'],
      Cmd: ['server'],
      WorkingDir: '/app',
      ExposedPorts: { '5000/tcp': {} },
      Volumes: { [DATA_DIR]: {} },
      Labels: labels(s),
    },
    rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
    history: layers.map((l) => ({ created: at, created_by: l.createdBy })),
  });
}

/** renderManifest is the OCI image manifest over a config and its layers, in order. */
export function renderManifest(
  config: Descriptor,
  layers: readonly Descriptor[],
  annotations: Record<string, string>,
): Buffer {
  return json({
    schemaVersion: 2,
    mediaType: MediaTypes.manifest,
    config,
    layers,
    annotations,
  });
}

/**
 * renderIndex is the layout's index.json: one manifest, named by its tag
 * (`org.opencontainers.image.ref.name`, what `skopeo oci:<dir>:<tag>` resolves) and by its
 * full reference (`io.containerd.image.name`, what `ctr images import` names it).
 */
export function renderIndex(manifest: Descriptor, reference: string, tag: string): Buffer {
  return json({
    schemaVersion: 2,
    mediaType: MediaTypes.index,
    manifests: [
      {
        ...manifest,
        annotations: { [Keys.containerdName]: reference, [Keys.refName]: tag },
      },
    ],
  });
}

/**
 * renderDockerManifest is the `manifest.json` that `docker load` reads at an archive's root:
 * paths of the config and the (gzip'd) layers inside the same archive.
 */
export function renderDockerManifest(
  config: Descriptor,
  layers: readonly Descriptor[],
  reference: string,
): Buffer {
  return json([
    {
      Config: blobPath(config.digest),
      RepoTags: [reference],
      Layers: layers.map((l) => blobPath(l.digest)),
    },
  ]);
}

/** blobPath is a blob's path inside an OCI layout: `blobs/<alg>/<hex>`. */
export function blobPath(digest: string): string {
  const [alg, hex] = digest.split(':');
  if (!alg || !hex || !/^[a-z0-9]+$/.test(alg) || !/^[a-f0-9]+$/.test(hex))
    throw new Error(`not a digest: ${JSON.stringify(digest)}`);
  return `blobs/${alg}/${hex}`;
}

function json(v: unknown): Buffer {
  return Buffer.from(JSON.stringify(v));
}
