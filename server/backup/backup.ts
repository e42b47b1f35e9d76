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
  const names: string[] = await readdir(dir).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return [];
    throw err;
  });
  if (names.length > 0 && !names.includes('oci-layout'))
    throw new BackupError(`${dir} is not empty and not an OCI layout: refusing to write into it`);
  await rm(join(dir, 'index.json'), { force: true });
  await mkdir(join(dir, 'blobs', 'sha256'), { recursive: true });
  await writeFile(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));

  const wanted = new GlobSet(repositories);
  const counts: BackupCounts = { repositories: 0, tags: 0, manifests: 0, blobs: 0, bytes: 0 };
  const entries: BackupEntry[] = [];
  for (const repo of (await client.catalog()).sort()) {
    if (!wanted.empty && !wanted.matches(repo)) continue;
    counts.repositories++;
    const copied = new Set<string>();
    const copyBlob = async (digest: string) => {
      const file = blobFile(dir, digest);
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
      await pipeline(await client.openBlob(repo, digest), tap, createWriteStream(tmp));
      const got = `${digest.split(':')[0]}:${h.digest('hex')}`;
      if (got !== digest) {
        await rm(tmp, { force: true });
        throw new BackupError(`${repo}: blob ${digest} arrived as ${got}`);
      }
      await rename(tmp, file);
      counts.blobs++;
      counts.bytes += n;
    };
    // copy stores a manifest tree (children and blobs first) and its referrers.
    const copy = async (
      reference: string,
    ): Promise<{ mediaType: string; digest: string; size: number; artifactType?: string }> => {
      const m = await client.getManifest(repo, reference);
      const doc = parseDoc(m.body, `${repo}@${m.digest}`);
      if (!copied.has(m.digest)) {
        copied.add(m.digest);
        for (const child of doc.manifests ?? []) await copy(child.digest);
        for (const b of blobsOf(doc)) await copyBlob(b.digest);
        await writeFile(blobFile(dir, m.digest), m.body);
        counts.manifests++;
        for (const r of await client.referrers(repo, m.digest)) {
          if (copied.has(r.digest)) continue;
          const d = await copy(r.digest);
          entries.push({ ...d, annotations: { [BackupKeys.repository]: repo } });
        }
      }
      const artifactType = (doc as { artifactType?: string }).artifactType;
      return {
        mediaType: m.mediaType,
        digest: m.digest,
        size: m.body.length,
        ...(artifactType !== undefined && { artifactType }),
      };
    };
    for (const tag of (await client.tags(repo)).sort()) {
      const d = await copy(tag);
      counts.tags++;
      entries.push({
        ...d,
        annotations: {
          [BackupKeys.refName]: `${repo}:${tag}`,
          [BackupKeys.repository]: repo,
          [BackupKeys.tag]: tag,
        },
      });
    }
  }
  const index = {
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.index.v1+json',
    manifests: entries,
  };
  await writeFile(join(dir, 'index.json.partial'), JSON.stringify(index, null, 1));
  await rename(join(dir, 'index.json.partial'), join(dir, 'index.json'));
  return counts;
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
  const raw = await readFile(join(dir, 'index.json')).catch(() => {
    throw new BackupError(
      `${join(dir, 'index.json')}: missing (not an OCI layout, or an unfinished backup)`,
    );
  });
  const index = parseDoc(raw, join(dir, 'index.json')) as { manifests?: BackupEntry[] };
  const wanted = new GlobSet(repositories);
  const plan: { repo: string; tag?: string; entry: BackupEntry }[] = [];
  for (const [i, e] of (index.manifests ?? []).entries()) {
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
    if (!wanted.empty && !wanted.matches(repo)) continue;
    plan.push({ repo, ...(tag !== undefined && { tag }), entry: e });
  }
  // Everything is checked before the first push: a broken backup changes nothing.
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
  for (const p of plan) await verify(p.entry.digest, true);

  const counts = {
    repositories: new Set(plan.map((p) => p.repo)).size,
    tags: 0,
    manifests: 0,
    blobs: 0,
    bytes: 0,
    present: 0,
  };
  const pushed = new Set<string>();
  const push = async (repo: string, digest: string, mediaType: string, reference: string) => {
    const doc = verified.get(digest)!;
    if (!pushed.has(`${repo}@${digest}`)) {
      for (const child of doc.manifests ?? [])
        await push(repo, child.digest, child.mediaType ?? '', child.digest);
      for (const b of blobsOf(doc)) {
        if (pushed.has(`${repo}@${b.digest}`)) continue;
        pushed.add(`${repo}@${b.digest}`);
        if (await client.blobExists(repo, b.digest)) {
          counts.present++;
          continue;
        }
        const file = blobFile(dir, b.digest);
        await client.pushBlob(repo, b.digest, b.size, () => createReadStream(file));
        counts.blobs++;
        counts.bytes += b.size;
      }
    }
    const body = await readFile(blobFile(dir, digest));
    await client.putManifest(
      repo,
      reference,
      mediaType || doc.mediaType || 'application/vnd.oci.image.manifest.v1+json',
      body,
    );
    if (!pushed.has(`${repo}@${digest}`)) counts.manifests++;
    pushed.add(`${repo}@${digest}`);
  };
  // Tagged entries first: a referrer's subject is then in place before it.
  for (const p of [...plan].sort(
    (a, b) => Number(a.tag === undefined) - Number(b.tag === undefined),
  )) {
    await push(p.repo, p.entry.digest, p.entry.mediaType, p.tag ?? p.entry.digest);
    if (p.tag !== undefined) counts.tags++;
  }
  return counts;
}

async function exists(file: string): Promise<boolean> {
  return access(file).then(
    () => true,
    () => false,
  );
}
