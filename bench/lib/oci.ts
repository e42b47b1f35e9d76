import { createHash, randomBytes, type Hash } from 'node:crypto';
import { Client, expect, type Body } from './http.js';

export const MiB = 1024 * 1024;
export const GiB = 1024 * MiB;
export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
export const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';
export const OCI_LAYER = 'application/vnd.oci.image.layer.v1.tar';

export function sha256(b: Buffer): string {
  return 'sha256:' + createHash('sha256').update(b).digest('hex');
}

const CHUNK = 8 * MiB;
/** BASE is the 8 MiB of random bytes every big blob is made of (made once). */
let base: Buffer | undefined;
function baseChunk(): Buffer {
  base ??= randomBytes(CHUNK);
  return base;
}
/** prefixHash[n] is the SHA-256 state after n whole BASE chunks, so digests cost one chunk. */
const prefixHash = new Map<number, Hash>();

/**
 * BigBlob is `size` bytes (a multiple of 8 MiB): the shared random chunk repeated, with the
 * last chunk marked by `seed` so that every blob has its own digest. It is generated while it
 * is sent (no RAM beyond two chunks) and its digest costs hashing one chunk.
 */
export class BigBlob {
  readonly digest: string;
  private readonly last: Buffer;

  constructor(
    readonly size: number,
    readonly seed: string,
  ) {
    if (size % CHUNK !== 0 || size === 0) throw new Error(`BigBlob size must be k×8 MiB`);
    const n = size / CHUNK;
    this.last = Buffer.from(baseChunk());
    this.last.write(`${seed}:${Date.now()}:${Math.random()}`.padEnd(64, '.'), 0, 'latin1');
    let h = prefixHash.get(n - 1);
    if (!h) {
      h = createHash('sha256');
      for (let i = 0; i < n - 1; i++) h.update(baseChunk());
      prefixHash.set(n - 1, h);
    }
    this.digest = 'sha256:' + h.copy().update(this.last).digest('hex');
  }

  /** chunk i of the blob (8 MiB each). */
  chunk(i: number): Buffer {
    return i === this.size / CHUNK - 1 ? this.last : baseChunk();
  }

  get chunks(): number {
    return this.size / CHUNK;
  }

  /** stream yields the blob in 1 MiB slices (the size real clients write in). */
  *stream(): Generator<Buffer> {
    for (let i = 0; i < this.chunks; i++) {
      const c = this.chunk(i);
      for (let o = 0; o < c.length; o += MiB) yield c.subarray(o, o + MiB);
    }
  }
}

function location(c: Client, r: { headers: Record<string, unknown> }, what: string): string {
  const loc = r.headers.location;
  if (typeof loc !== 'string') throw new Error(`${what}: no Location`);
  const u = new URL(loc, c.base);
  return u.pathname + u.search;
}

function withDigest(loc: string, digest: string): string {
  return loc + (loc.includes('?') ? '&' : '?') + 'digest=' + encodeURIComponent(digest);
}

export async function startUpload(c: Client, repo: string): Promise<string> {
  const r = expect(
    await c.request('POST', `/v2/${repo}/blobs/uploads/`, { keep: true }),
    [202],
    `POST upload ${repo}`,
  );
  return location(c, r, 'POST upload');
}

/** pushMonolithic: POST, then PUT ?digest with the whole body (zb's "Push Monolith"). */
export async function pushMonolithic(c: Client, repo: string, blob: Buffer, digest = sha256(blob)) {
  const loc = await startUpload(c, repo);
  expect(
    await c.request('PUT', withDigest(loc, digest), {
      body: blob,
      keep: true,
      headers: { 'content-type': 'application/octet-stream' },
    }),
    [201],
    `PUT blob ${repo}`,
  );
  return digest;
}

/**
 * pushStream: POST, one PATCH carrying the whole blob with chunked transfer encoding (no
 * Content-Length, the way docker and containerd push), then PUT ?digest.
 */
export async function pushStream(c: Client, repo: string, body: Body, digest: string) {
  const loc = await startUpload(c, repo);
  const p = expect(
    await c.request('PATCH', loc, {
      body,
      keep: true,
      headers: { 'content-type': 'application/octet-stream' },
    }),
    [202],
    `PATCH stream ${repo}`,
  );
  const loc2 = location(c, p, 'PATCH');
  expect(
    await c.request('PUT', withDigest(loc2, digest), { keep: true }),
    [201],
    `PUT close ${repo}`,
  );
}

/**
 * pushChunked: POST, then one PATCH per 8 MiB chunk with Content-Range, each sent to
 * `clients[i % clients.length]` (two replicas for workload 5), then PUT ?digest.
 */
export async function pushChunked(clients: Client[], repo: string, blob: BigBlob) {
  const first = clients[0]!;
  let loc = await startUpload(first, repo);
  let offset = 0;
  for (let i = 0; i < blob.chunks; i++) {
    const c = clients[i % clients.length]!;
    const chunk = blob.chunk(i);
    const r = expect(
      await c.request('PATCH', loc, {
        body: chunk,
        keep: true,
        headers: {
          'content-type': 'application/octet-stream',
          'content-range': `${offset}-${offset + chunk.length - 1}`,
        },
      }),
      [202],
      `PATCH chunk ${i} ${repo}`,
    );
    offset += chunk.length;
    loc = location(c, r, 'PATCH');
  }
  const last = clients[blob.chunks % clients.length]!;
  expect(
    await last.request('PUT', withDigest(loc, blob.digest), { keep: true }),
    [201],
    `PUT close chunked ${repo}`,
  );
}

/** mountOrPush cross-mounts `digest` from `from`, uploading it when the mount is refused. */
export async function mountOrPush(
  c: Client,
  repo: string,
  from: string,
  blob: Buffer,
  digest: string,
) {
  const r = await c.request(
    'POST',
    `/v2/${repo}/blobs/uploads/?mount=${encodeURIComponent(digest)}&from=${encodeURIComponent(from)}`,
    { keep: true },
  );
  if (r.status === 201) return;
  expect(r, [202], `POST mount ${repo}`);
  const loc = location(c, r, 'POST mount');
  expect(
    await c.request('PUT', withDigest(loc, digest), {
      body: blob,
      keep: true,
      headers: { 'content-type': 'application/octet-stream' },
    }),
    [201],
    `PUT blob after refused mount ${repo}`,
  );
}

export interface Image {
  manifest: Buffer;
  digest: string;
  config: Buffer;
  configDigest: string;
  layers: { digest: string; size: number }[];
}

/** imageManifest builds an OCI image manifest over a config and layers. */
export function imageManifest(
  config: Buffer,
  layers: { digest: string; size: number }[],
  annotation?: string,
): Image {
  const configDigest = sha256(config);
  const m: Record<string, unknown> = {
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    config: { mediaType: OCI_CONFIG, digest: configDigest, size: config.length },
    layers: layers.map((l) => ({ mediaType: OCI_LAYER, digest: l.digest, size: l.size })),
  };
  if (annotation !== undefined) m.annotations = { 'dev.berth.bench': annotation };
  const manifest = Buffer.from(JSON.stringify(m));
  return { manifest, digest: sha256(manifest), config, configDigest, layers };
}

export function configBlob(tag: string): Buffer {
  return Buffer.from(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      rootfs: { type: 'layers', diff_ids: [] },
      config: { Labels: { bench: tag } },
    }),
  );
}

export async function putManifest(c: Client, repo: string, ref: string, manifest: Buffer) {
  expect(
    await c.request('PUT', `/v2/${repo}/manifests/${ref}`, {
      body: manifest,
      keep: true,
      headers: { 'content-type': OCI_MANIFEST },
    }),
    [201],
    `PUT manifest ${repo}:${ref}`,
  );
}

/** pushImage pushes a config and one layer monolithically, then the manifest under `tag`. */
export async function pushImage(
  c: Client,
  repo: string,
  tag: string,
  layer: Buffer,
): Promise<Image> {
  const config = configBlob(tag);
  const layerDigest = await pushMonolithic(c, repo, layer);
  await pushMonolithic(c, repo, config);
  const img = imageManifest(config, [{ digest: layerDigest, size: layer.length }]);
  await putManifest(c, repo, tag, img.manifest);
  return img;
}

/** pullImage GETs the manifest by `ref`, then its config and each layer (bodies discarded). */
export async function pullImage(c: Client, repo: string, ref: string): Promise<number> {
  const m = expect(
    await c.request('GET', `/v2/${repo}/manifests/${ref}`, {
      keep: true,
      headers: { accept: OCI_MANIFEST },
    }),
    [200],
    `GET manifest ${repo}:${ref}`,
  );
  const man = JSON.parse(m.body!.toString('utf8')) as {
    config: { digest: string };
    layers: { digest: string; size: number }[];
  };
  let bytes = m.bytes;
  for (const d of [man.config.digest, ...man.layers.map((l) => l.digest)]) {
    const r = expect(
      await c.request('GET', `/v2/${repo}/blobs/${d}`, { follow: true }),
      [200],
      `GET blob ${repo}@${d}`,
    );
    bytes += r.bytes;
  }
  return bytes;
}

/**
 * pullWhole pulls an image as a container runtime does: the manifest by `ref` (OCI or
 * Docker), then its config and every layer, `parallel` at a time (docker's default
 * max-concurrent-downloads is 3), each body counted on a connection of its own
 * (`Client.download`) and checked against its descriptor's size. Returns the bytes moved.
 */
export async function pullWhole(c: Client, repo: string, ref: string, parallel = 3) {
  const m = expect(
    await c.request('GET', `/v2/${repo}/manifests/${ref}`, {
      keep: true,
      headers: { accept: `${OCI_MANIFEST}, ${DOCKER_MANIFEST}` },
    }),
    [200],
    `GET manifest ${repo}:${ref}`,
  );
  const man = JSON.parse(m.body!.toString('utf8')) as {
    config: { digest: string; size: number };
    layers: { digest: string; size: number }[];
  };
  const blobs = [man.config, ...man.layers];
  let bytes = m.bytes;
  let next = 0;
  const lane = async () => {
    for (let i = next++; i < blobs.length; i = next++) {
      const d = blobs[i]!;
      const r = expect(await c.download(`/v2/${repo}/blobs/${d.digest}`), [200], `GET blob`);
      if (r.bytes !== d.size) throw new Error(`${d.digest}: pulled ${r.bytes} of ${d.size} bytes`);
      bytes += r.bytes;
    }
  };
  await Promise.all(Array.from({ length: Math.min(parallel, blobs.length) }, lane));
  return bytes;
}
