import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { access, mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { RegistryClient } from '../client/registry.js';
import { GlobSet } from '../util/glob.js';

/**
 * A backup is an OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/…`) holding
 * several repositories: each `index.json` entry is one manifest of one repository, named by
 * the annotations below. Tagged manifests carry `org.opencontainers.image.ref.name`
 * `<repository>:<tag>` (so `skopeo copy oci:<dir>:<repository>:<tag>` reads one image), and
 * referrers (signatures, SBOMs) are entries of their own, without a tag.
 */
export const BackupKeys = {
  refName: 'org.opencontainers.image.ref.name',
  repository: 'dev.berth.backup.repository',
  tag: 'dev.berth.backup.tag',
} as const;

export interface BackupEntry {
  mediaType: string;
  digest: string;
  size: number;
  artifactType?: string;
  annotations: Record<string, string>;
}

export interface BackupCounts {
  repositories: number;
  tags: number;
  manifests: number;
  blobs: number;
  bytes: number;
}

interface ManifestDoc {
  mediaType?: string;
  config?: { digest: string; size: number };
  layers?: { digest: string; size: number }[];
  manifests?: { digest: string; size: number; mediaType?: string }[];
  blobs?: { digest: string; size: number }[];
  subject?: { digest: string };
}

/** BackupError is a backup or restore that cannot go on; the message names what and where. */
export class BackupError extends Error {
  override readonly name = 'BackupError';
}

const blobFile = (dir: string, digest: string) => {
  const [alg, hex] = digest.split(':') as [string, string];
  if (!/^(sha256|sha512)$/.test(alg) || !/^[0-9a-f]{64,128}$/.test(hex ?? ''))
    throw new BackupError(`invalid digest ${JSON.stringify(digest)}`);
  return join(dir, 'blobs', alg, hex);
};

function hashOf(digest: string) {
  return createHash(digest.startsWith('sha512:') ? 'sha512' : 'sha256');
}

function parseDoc(body: Buffer, where: string): ManifestDoc {
  try {
    return JSON.parse(body.toString('utf8')) as ManifestDoc;
  } catch {
    throw new BackupError(`${where}: not a JSON manifest`);
  }
}

/** blobsOf lists the blobs a manifest names (config, layers, an artifact's blobs). */
function blobsOf(m: ManifestDoc): { digest: string; size: number }[] {
  return [...(m.config ? [m.config] : []), ...(m.layers ?? []), ...(m.blobs ?? [])];
}

/**
 * backup copies every repository of the registry `client` talks to whose name matches one of
 * `repositories` (all without it) into the OCI layout `dir`: each tag's manifest with its child
 * manifests and blobs, and the referrers of every manifest copied. `dir` must be absent, empty
 * or an earlier backup (blobs already there, named by their verified digests, are not fetched again). Every
 * byte is verified against its digest before it is kept; `index.json` is written last, so a
 * folder without one is an unfinished backup.
 */
export async function backup(
  client: RegistryClient,
  dir: string,
  repositories: readonly string[] = [],
): Promise<BackupCounts> {
  await openLayout(dir);
  const wanted = new GlobSet(repositories);
  const writer = new LayoutWriter(client, dir);
  for (const repo of (await client.catalog()).sort()) {
    if (!wanted.empty && !wanted.matches(repo)) continue;
    await writer.copyRepository(repo);
  }
  const index = {
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.index.v1+json',
    manifests: writer.entries,
  };
  await writeFile(join(dir, 'index.json.partial'), JSON.stringify(index, null, 1));
  await rename(join(dir, 'index.json.partial'), join(dir, 'index.json'));
  return writer.counts;
}

/**
 * openLayout makes `dir` an OCI layout without an index: absent or empty, it is created; an
 * earlier backup loses its `index.json`; anything else is refused.
 */
async function openLayout(dir: string): Promise<void> {
  const names: string[] = await readdir(dir).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return [];
    throw err;
  });
  if (names.length > 0 && !names.includes('oci-layout'))
    throw new BackupError(`${dir} is not empty and not an OCI layout: refusing to write into it`);
  await rm(join(dir, 'index.json'), { force: true });
  await mkdir(join(dir, 'blobs', 'sha256'), { recursive: true });
  await writeFile(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
}

type Descriptor = Omit<BackupEntry, 'annotations'>;

/** LayoutWriter copies repositories into an open layout, collecting its index entries. */
class LayoutWriter {
  readonly counts: BackupCounts = { repositories: 0, tags: 0, manifests: 0, blobs: 0, bytes: 0 };
  readonly entries: BackupEntry[] = [];

  constructor(
    private readonly client: RegistryClient,
    private readonly dir: string,
  ) {}

  /** copyRepository copies every tag of `repo` with its manifest tree and referrers. */
  async copyRepository(repo: string): Promise<void> {
    this.counts.repositories++;
    const copied = new Set<string>();
    for (const tag of (await this.client.tags(repo)).sort()) {
      const d = await this.copy(repo, tag, copied);
      this.counts.tags++;
      this.entries.push({
        ...d,
        annotations: {
          [BackupKeys.refName]: `${repo}:${tag}`,
          [BackupKeys.repository]: repo,
          [BackupKeys.tag]: tag,
        },
      });
    }
  }

  /** copy stores a manifest tree (children and blobs first) and its referrers, once per repository. */
  private async copy(repo: string, reference: string, copied: Set<string>): Promise<Descriptor> {
    const m = await this.client.getManifest(repo, reference);
    const doc = parseDoc(m.body, `${repo}@${m.digest}`);
    if (!copied.has(m.digest)) {
      copied.add(m.digest);
      for (const child of doc.manifests ?? []) await this.copy(repo, child.digest, copied);
      for (const b of blobsOf(doc)) await this.copyBlob(repo, b.digest);
      await writeFile(blobFile(this.dir, m.digest), m.body);
      this.counts.manifests++;
      for (const r of await this.client.referrers(repo, m.digest)) {
        if (copied.has(r.digest)) continue;
        const d = await this.copy(repo, r.digest, copied);
        this.entries.push({ ...d, annotations: { [BackupKeys.repository]: repo } });
      }
    }
    const artifactType = (doc as { artifactType?: string }).artifactType;
    return {
      mediaType: m.mediaType,
      digest: m.digest,
      size: m.body.length,
      ...(artifactType !== undefined && { artifactType }),
    };
  }

  /** copyBlob fetches a blob the layout lacks, keeping it only if it hashes to `digest`. */
  private async copyBlob(repo: string, digest: string): Promise<void> {
    const file = blobFile(this.dir, digest);
    if (await exists(file)) return;
    await mkdir(join(file, '..'), { recursive: true });
    const tmp = `${file}.partial`;
    const h = hashOf(digest);
    let n = 0;
    const tap = new Transform({
      transform(chunk: Buffer, _e, cb) {
        h.update(chunk);
        n += chunk.length;
        cb(null, chunk);
      },
    });
    await pipeline(await this.client.openBlob(repo, digest), tap, createWriteStream(tmp));
    const got = `${digest.split(':')[0]}:${h.digest('hex')}`;
    if (got !== digest) {
      await rm(tmp, { force: true });
      throw new BackupError(`${repo}: blob ${digest} arrived as ${got}`);
    }
    await rename(tmp, file);
    this.counts.blobs++;
    this.counts.bytes += n;
  }
}

/**
 * restore pushes a backup (an OCI layout `backup` wrote, or any layout whose entries name
 * `<repository>:<tag>`) into the registry `client` talks to: for each entry whose repository
 * matches `repositories` (all without it), blobs the registry lacks (a HEAD first), child
 * manifests, the manifest under its tag (or its digest, for a referrer), subjects before their
 * referrers. Every file is verified against its digest before it is sent; a layout that names a
 * missing or corrupt file is refused before anything is pushed.
 */
export async function restore(
  client: RegistryClient,
  dir: string,
  repositories: readonly string[] = [],
): Promise<BackupCounts & { present: number }> {
  const plan = await restorePlan(dir, new GlobSet(repositories));
  // Everything is checked before the first push: a broken backup changes nothing.
  const verified = await verifyLayout(
    dir,
    plan.map((p) => p.entry.digest),
  );
  const pusher = new LayoutPusher(client, dir, verified);
  pusher.counts.repositories = new Set(plan.map((p) => p.repo)).size;
  // Tagged entries first: a referrer's subject is then in place before it.
  for (const p of [...plan].sort(
    (a, b) => Number(a.tag === undefined) - Number(b.tag === undefined),
  )) {
    await pusher.push(p.repo, p.entry.digest, p.entry.mediaType, p.tag ?? p.entry.digest);
    if (p.tag !== undefined) pusher.counts.tags++;
  }
  return pusher.counts;
}

interface PlanEntry {
  repo: string;
  tag?: string;
  entry: BackupEntry;
}

/** restorePlan reads a layout's index: the entries of the `wanted` repositories, in order. */
async function restorePlan(dir: string, wanted: GlobSet): Promise<PlanEntry[]> {
  const raw = await readFile(join(dir, 'index.json')).catch(() => {
    throw new BackupError(
      `${join(dir, 'index.json')}: missing (not an OCI layout, or an unfinished backup)`,
    );
  });
  const index = parseDoc(raw, join(dir, 'index.json')) as { manifests?: BackupEntry[] };
  const plan: PlanEntry[] = [];
  for (const [i, e] of (index.manifests ?? []).entries()) {
    const { repo, tag } = entryName(e, i);
    if (!wanted.empty && !wanted.matches(repo)) continue;
    plan.push({ repo, ...(tag !== undefined && { tag }), entry: e });
  }
  return plan;
}

/** entryName is the repository (and tag) an index entry names, by Berth's or the OCI annotations. */
function entryName(e: BackupEntry, i: number): { repo: string; tag: string | undefined } {
  const a = e.annotations ?? {};
  let repo = a[BackupKeys.repository];
  let tag = a[BackupKeys.tag];
  const ref = a[BackupKeys.refName];
  if (repo === undefined && ref !== undefined) {
    const at = ref.lastIndexOf(':');
    if (at > 0) [repo, tag] = [ref.slice(0, at), ref.slice(at + 1)];
  }
  if (repo === undefined)
    throw new BackupError(
      `index.json manifests[${i}]: names no repository (annotation ${BackupKeys.repository} or ${BackupKeys.refName} <repository>:<tag>)`,
    );
  return { repo, tag };
}

/**
 * verifyLayout checks that every file the manifests `roots` reach is there and hashes to its
 * digest, and returns the parsed manifests by digest (blobs map to an empty document).
 */
async function verifyLayout(
  dir: string,
  roots: readonly string[],
): Promise<Map<string, ManifestDoc>> {
  const verified = new Map<string, ManifestDoc>();
  const verify = async (digest: string, manifest: boolean): Promise<void> => {
    if (verified.has(digest)) return;
    const file = blobFile(dir, digest);
    const h = hashOf(digest);
    try {
      for await (const c of createReadStream(file)) h.update(c as Buffer);
    } catch {
      throw new BackupError(`${file}: missing`);
    }
    if (`${digest.split(':')[0]}:${h.digest('hex')}` !== digest)
      throw new BackupError(`${file}: does not hash to ${digest}`);
    const doc = manifest ? parseDoc(await readFile(file), file) : {};
    verified.set(digest, doc);
    for (const child of doc.manifests ?? []) await verify(child.digest, true);
    for (const b of blobsOf(doc)) await verify(b.digest, false);
  };
  for (const digest of roots) await verify(digest, true);
  return verified;
}

/** LayoutPusher pushes verified manifest trees of a layout, each blob and manifest once per repository. */
class LayoutPusher {
  readonly counts = { repositories: 0, tags: 0, manifests: 0, blobs: 0, bytes: 0, present: 0 };
  private readonly pushed = new Set<string>();

  constructor(
    private readonly client: RegistryClient,
    private readonly dir: string,
    private readonly verified: Map<string, ManifestDoc>,
  ) {}

  /** push puts a manifest under `reference`, after its child manifests and its blobs. */
  async push(repo: string, digest: string, mediaType: string, reference: string): Promise<void> {
    const doc = this.verified.get(digest)!;
    if (!this.pushed.has(`${repo}@${digest}`)) {
      for (const child of doc.manifests ?? [])
        await this.push(repo, child.digest, child.mediaType ?? '', child.digest);
      await this.pushBlobs(repo, doc);
    }
    const body = await readFile(blobFile(this.dir, digest));
    await this.client.putManifest(
      repo,
      reference,
      mediaType || doc.mediaType || 'application/vnd.oci.image.manifest.v1+json',
      body,
    );
    if (!this.pushed.has(`${repo}@${digest}`)) this.counts.manifests++;
    this.pushed.add(`${repo}@${digest}`);
  }

  /** pushBlobs pushes the blobs of `doc` the registry lacks. */
  private async pushBlobs(repo: string, doc: ManifestDoc): Promise<void> {
    for (const b of blobsOf(doc)) {
      if (this.pushed.has(`${repo}@${b.digest}`)) continue;
      this.pushed.add(`${repo}@${b.digest}`);
      if (await this.client.blobExists(repo, b.digest)) {
        this.counts.present++;
        continue;
      }
      const file = blobFile(this.dir, b.digest);
      await this.client.pushBlob(repo, b.digest, b.size, () => createReadStream(file));
      this.counts.blobs++;
      this.counts.bytes += b.size;
    }
  }
}

async function exists(file: string): Promise<boolean> {
  return access(file).then(
    () => true,
    () => false,
  );
}
