import { createHash } from 'node:crypto';
import { posix } from 'node:path';
import {
  blobsOf,
  isIndex,
  MediaTypes,
  REF_NAME,
  type Descriptor,
  type Manifest,
  type ManifestDoc,
} from '../copy/spec.js';
import { Errors } from '../errors.js';
import { parseName, parseTag } from '../registry/reference.js';

/** Member is a tar member stored as a blob while the archive streamed. */
export interface Member {
  digest: string;
  size: number;
  /** gzip: the bytes start as a gzip stream does. */
  gzip: boolean;
}

/** Contents is what reading an archive kept: enough to plan the import, never a blob's bytes. */
export interface Contents {
  /** files are the layout and docker metadata (`index.json`, `manifest.json`) by path. */
  files: Map<string, Buffer>;
  /** members are the stored members by path. */
  members: Map<string, Member>;
  /** links map a hard or symbolic link's path to the member path it names. */
  links: Map<string, string>;
  /** manifests are the members that are manifests or indexes, by digest (verified). */
  manifests: Map<string, Manifest & { doc: ManifestDoc }>;
}

/** ImportTarget is where the request puts images: `repository` and `tag` as given. */
export interface ImportTarget {
  repository?: string;
  tag?: string;
}

/** ImageWrite is one image the import names. */
export interface ImageWrite {
  repository: string;
  digest: string;
  tags: string[];
}

/**
 * RepositoryWrite is everything an import writes into one repository: the blobs to link,
 * the manifests in a safe order (children before their index, a referrer after its
 * subject), and the tags.
 */
export interface RepositoryWrite {
  repository: string;
  blobs: Map<string, Descriptor>;
  manifests: Manifest[];
  tags: Map<string, string>;
}

export interface ImportPlan {
  images: ImageWrite[];
  repositories: Map<string, RepositoryWrite>;
}

interface Root {
  digest: string;
  names: string[];
}

const NAMES = new Set(['index.json', 'manifest.json']);

/** isMetadata: a member kept as a file (an OCI layout's index.json, a docker-archive's manifest.json). */
export function isMetadata(path: string): boolean {
  return NAMES.has(posix.basename(path));
}

/**
 * planImport decides what an archive's import writes, from what reading it kept. The kind
 * is detected: a `manifest.json` makes it a docker-archive (each entry's manifest found in
 * an OCI layout inside by its config, else made from the files), an `index.json` an OCI
 * layout (oci-archive, or a tar of a layout, at the root or in one folder). Images land in
 * the repositories they are named by (`org.opencontainers.image.ref.name`, `RepoTags`), or
 * all in `target.repository`; `target.tag` names an archive's one image. Referrers of every
 * written manifest go with it. Throws ARCHIVE_INVALID, NAME_INVALID, TAG_INVALID or
 * MANIFEST_BLOB_UNKNOWN; pure.
 */
export function planImport(c: Contents, target: ImportTarget): ImportPlan {
  const prefix = layoutPrefix(c);
  const roots = c.files.has(`${prefix}manifest.json`)
    ? dockerRoots(c, prefix)
    : ociRoots(c, prefix);
  if (target.tag !== undefined && roots.length !== 1)
    throw Errors.tagInvalid(
      { images: roots.length },
      undefined,
      `?tag= names the archive's one image, and it holds ${roots.length}`,
    );
  const plan: ImportPlan = { images: [], repositories: new Map() };
  const bySubject = subjects(c);
  for (const root of roots) {
    for (const { repository, tags } of targetsOf(root, target)) {
      let w = plan.repositories.get(repository);
      if (!w) {
        w = { repository, blobs: new Map(), manifests: [], tags: new Map() };
        plan.repositories.set(repository, w);
      }
      walk(c, bySubject, w, root.digest);
      for (const t of tags) w.tags.set(t, root.digest);
      plan.images.push({ repository, digest: root.digest, tags });
    }
  }
  return plan;
}

/** layoutPrefix is `''` for metadata at the root, `dir/` for a layout tarred with its folder. */
function layoutPrefix(c: Contents): string {
  if ([...NAMES].some((n) => c.files.has(n))) return '';
  const dirs = new Set([...c.files.keys()].map((p) => posix.dirname(p)));
  if (dirs.size === 1) return `${[...dirs][0]!}/`;
  throw Errors.archiveInvalid(
    {},
    undefined,
    'not an image archive: no index.json (OCI layout) or manifest.json (docker-archive)',
  );
}

function json(c: Contents, path: string): unknown {
  try {
    return JSON.parse(c.files.get(path)!.toString('utf8')) as unknown;
  } catch {
    throw Errors.archiveInvalid({ path }, undefined, `${path} is not JSON`);
  }
}

function ociRoots(c: Contents, prefix: string): Root[] {
  const index = json(c, `${prefix}index.json`) as { manifests?: unknown };
  if (!Array.isArray(index.manifests))
    throw Errors.archiveInvalid({}, undefined, 'index.json lists no manifests');
  const roots: Root[] = [];
  for (const e of index.manifests as Descriptor[]) {
    if (typeof e?.digest !== 'string')
      throw Errors.archiveInvalid({}, undefined, 'an index.json entry has no digest');
    const name = e.annotations?.[REF_NAME];
    const doc = c.manifests.get(e.digest)?.doc;
    // An unnamed referrer goes with its subject.
    if (name === undefined && doc?.subject !== undefined) continue;
    const known = roots.find((r) => r.digest === e.digest);
    if (known && name !== undefined) known.names.push(name);
    else if (!known) roots.push({ digest: e.digest, names: name === undefined ? [] : [name] });
  }
  return roots;
}

interface DockerEntry {
  Config?: unknown;
  RepoTags?: unknown;
  Layers?: unknown;
}

function dockerRoots(c: Contents, prefix: string): Root[] {
  const entries = json(c, `${prefix}manifest.json`);
  if (!Array.isArray(entries))
    throw Errors.archiveInvalid({}, undefined, 'manifest.json is not a docker-archive manifest');
  return (entries as DockerEntry[]).map((e) => {
    if (typeof e?.Config !== 'string' || !Array.isArray(e.Layers))
      throw Errors.archiveInvalid({}, undefined, 'a manifest.json entry has no Config or Layers');
    const config = member(c, prefix, e.Config);
    const stored = [...c.manifests.values()].find((m) => m.doc.config?.digest === config.digest);
    const digest = stored?.digest ?? madeManifest(c, prefix, config, e.Layers as unknown[]);
    const tags = Array.isArray(e.RepoTags) ? (e.RepoTags as unknown[]) : [];
    return { digest, names: tags.filter((t): t is string => typeof t === 'string') };
  });
}

/** member finds a stored member by its path in the archive, through links. */
function member(c: Contents, prefix: string, path: unknown): Member {
  if (typeof path !== 'string')
    throw Errors.archiveInvalid({}, undefined, 'a path is not a string');
  let p = posix.join(prefix, path);
  for (let hops = 0; hops < 16 && c.links.has(p); hops++) p = c.links.get(p)!;
  const m = c.members.get(p);
  if (!m) throw Errors.archiveInvalid({ path }, undefined, `${path} is not in the archive`);
  return m;
}

/**
 * madeManifest makes a Docker schema 2 manifest for a legacy docker-archive entry (config
 * and layer files, no manifest of its own), adds it to the contents and returns its digest.
 */
function madeManifest(c: Contents, prefix: string, config: Member, layers: unknown[]): string {
  const doc = {
    schemaVersion: 2,
    mediaType: MediaTypes.dockerManifest,
    config: { mediaType: MediaTypes.dockerConfig, size: config.size, digest: config.digest },
    layers: layers.map((path) => {
      const l = member(c, prefix, path);
      const mediaType = l.gzip ? MediaTypes.dockerLayerGzip : MediaTypes.dockerLayer;
      return { mediaType, size: l.size, digest: l.digest };
    }),
  };
  const body = Buffer.from(JSON.stringify(doc));
  const digest = `sha256:${createHash('sha256').update(body).digest('hex')}`;
  c.manifests.set(digest, { mediaType: MediaTypes.dockerManifest, digest, body, doc });
  return digest;
}

/** subjects maps a subject digest to the manifests in the archive that refer to it. */
function subjects(c: Contents): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const m of c.manifests.values()) {
    const s = m.doc.subject?.digest;
    if (typeof s === 'string') out.set(s, [...(out.get(s) ?? []), m.digest]);
  }
  return out;
}

/** walk adds a manifest, its children first and its referrers after it, to `w`. */
function walk(c: Contents, bySubject: Map<string, string[]>, w: RepositoryWrite, digest: string) {
  if (w.manifests.some((m) => m.digest === digest)) return;
  const m = c.manifests.get(digest);
  if (!m)
    throw Errors.manifestBlobUnknown(
      { digests: [digest] },
      undefined,
      `manifest ${digest} is named in the archive but not in it`,
    );
  if (isIndex(m.mediaType))
    for (const child of m.doc.manifests ?? []) walk(c, bySubject, w, child.digest);
  for (const b of blobsOf(m.doc)) w.blobs.set(b.digest, b);
  w.manifests.push(m);
  for (const r of bySubject.get(digest) ?? []) walk(c, bySubject, w, r);
}

/**
 * targetsOf maps an image's names to repositories and tags. With `target.repository`, every
 * image goes there with the tags of its names (or `target.tag`); without, each name is
 * `[host/]repository:tag` or `repository@digest`, and an image without one is refused.
 */
function targetsOf(root: Root, target: ImportTarget): { repository: string; tags: string[] }[] {
  if (target.repository !== undefined) {
    const tags =
      target.tag !== undefined
        ? [target.tag]
        : root.names.map((n) => splitName(n).tag).filter((t): t is string => t !== undefined);
    return [{ repository: parseName(target.repository), tags: [...new Set(tags)].map(parseTag) }];
  }
  if (root.names.length === 0)
    throw Errors.nameInvalid(
      { digest: root.digest },
      undefined,
      `the archive holds the unnamed image ${root.digest}: give ?repository=`,
    );
  const out = new Map<string, Set<string>>();
  for (const n of root.names) {
    const { repository, tag } = splitName(n);
    if (repository === undefined)
      throw Errors.nameInvalid(
        { name: n.slice(0, 200) },
        undefined,
        `the archive names an image ${JSON.stringify(n.slice(0, 200))} without a repository: give ?repository=`,
      );
    const tags = out.get(parseName(repository)) ?? new Set<string>();
    if (tag !== undefined) tags.add(parseTag(tag));
    out.set(repository, tags);
  }
  return [...out].map(([repository, tags]) => ({ repository, tags: [...tags] }));
}

/**
 * splitName reads an image name: `repo:tag`, `host[:port]/repo:tag`, `repo@digest`, or a bare
 * tag (an OCI layout's `v1`). A registry host (a first part with `.` or `:`, or `localhost`)
 * is dropped.
 */
export function splitName(name: string): { repository?: string; tag?: string } {
  const at = name.indexOf('@');
  let repo = at === -1 ? name : name.slice(0, at);
  let tag: string | undefined;
  const colon = repo.lastIndexOf(':');
  if (colon > repo.lastIndexOf('/')) {
    tag = repo.slice(colon + 1);
    repo = repo.slice(0, colon);
  } else if (at === -1 && !repo.includes('/')) return { tag: repo };
  const parts = repo.split('/');
  if (parts.length > 1 && /[.:]|^localhost$/.test(parts[0]!)) parts.shift();
  if (repo === '') return { tag };
  return { repository: parts.join('/'), tag };
}
