import { mkdir, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import { writeArchive } from '../image/layout.js';
import { blobPath, LayoutDest, LayoutSource, readIndex, tarFiles } from './layout.js';
import { TarFiles } from './tar.js';
import type { Destination, Source } from './transport.js';
import {
  blobsOf,
  CopyError,
  digestOf,
  hasherFor,
  isIndex,
  MediaTypes,
  parseManifest,
  type Descriptor,
  type Manifest,
} from './spec.js';

/** openOciArchive reads an oci-archive (a tarred OCI layout) without unpacking it. */
export async function openOciArchive(
  describe: string,
  file: string,
  ref?: string,
): Promise<Source> {
  return new LayoutSource(describe, tarFiles(await TarFiles.open(file)), ref);
}

/**
 * ArchiveDest writes an oci-archive or docker-archive: a staging layout `<file>.partial/`
 * (seeded from the archive when it exists, kept across a killed run so a re-run resumes),
 * tarred into `<file>` by a temporary file and rename in `finish`. When nothing changed the
 * archive is left as it was.
 */
export class ArchiveDest implements Destination {
  private constructor(
    readonly describe: string,
    private readonly file: string,
    private readonly layout: LayoutDest,
    private readonly docker: boolean,
  ) {}

  static async open(describe: string, file: string, ref: string | undefined, docker: boolean) {
    const staging = `${file}.partial`;
    await mkdir(dirname(file), { recursive: true });
    if (!(await exists(staging)) && (await exists(file))) {
      const seed = `${file}.seed`;
      await rm(seed, { recursive: true, force: true });
      await unpack(file, seed);
      await rename(seed, staging);
    }
    const layout = new LayoutDest(describe, staging, docker ? repoTag(ref) : ref);
    layout.replace = docker;
    await layout.open();
    return new ArchiveDest(describe, file, layout, docker);
  }

  hasBlob(d: Descriptor): Promise<boolean> {
    return this.layout.hasBlob(d);
  }

  putBlob(d: Descriptor, body: Readable): Promise<void> {
    return this.layout.putBlob(d, body);
  }

  putManifest(m: Manifest): Promise<void> {
    if (this.docker && isIndex(m.mediaType))
      throw new CopyError(`${this.describe}: a docker-archive holds one image, not an index`);
    return this.layout.putManifest(m);
  }

  async finish(root: Manifest, referrers: Manifest[]): Promise<void> {
    await this.layout.finish(root, referrers);
    const staging = this.layout.dir;
    if (this.layout.changed || !(await exists(this.file))) {
      await this.prune(root, referrers);
      const extra: Record<string, Buffer> = this.docker
        ? { 'manifest.json': dockerManifestJson(root, this.layout) }
        : {};
      await writeArchive(staging, this.file, 0, extra);
    }
    await rm(staging, { recursive: true, force: true });
  }

  /**
   * prune removes unfinished blob files from the staging layout, and for a docker-archive
   * every blob that is not part of its one image (an earlier image's, seeded from the file).
   */
  private async prune(root: Manifest, referrers: Manifest[]): Promise<void> {
    const keep = new Set([root, ...referrers].map((m) => m.digest.slice(7)));
    for (const b of blobsOf(parseManifest(root.body, root.digest))) keep.add(b.digest.slice(7));
    const blobs = join(this.layout.dir, 'blobs', 'sha256');
    for (const n of await readdir(blobs))
      if (n.endsWith('.partial') || (this.docker && !keep.has(n)))
        await rm(join(blobs, n), { force: true });
  }
}

function dockerManifestJson(root: Manifest, layout: LayoutDest): Buffer {
  const doc = parseManifest(root.body, root.digest);
  if (!doc.config) throw new CopyError(`${layout.describe}: ${root.digest} is not an image`);
  const ref = layout.ref;
  const entry = {
    Config: blobPath(doc.config.digest),
    RepoTags: ref ? [ref] : [],
    Layers: (doc.layers ?? []).map((l) => blobPath(l.digest)),
  };
  return Buffer.from(JSON.stringify([entry]));
}

/** repoTag is a docker-archive name with a tag (`:latest` when it has none). */
function repoTag(ref: string | undefined): string | undefined {
  if (ref === undefined) return undefined;
  return /:[^/]+$/.test(ref) ? ref : `${ref}:latest`;
}

/** familiar is a name as docker shows it: without `docker.io/` and `library/`. */
function familiar(name: string): string {
  return name.replace(/^(docker\.io|index\.docker\.io)\//, '').replace(/^library\//, '');
}

async function unpack(file: string, dir: string): Promise<void> {
  const t = await TarFiles.open(file);
  for (const path of t.paths()) {
    if (!/^blobs\/sha(256|512)\/[0-9a-f]+$/.test(path)) continue;
    await mkdir(dirname(join(dir, path)), { recursive: true });
    await writeFile(join(dir, path), t.stream(path));
  }
  const index = await t.read('index.json');
  if (index) await writeFile(join(dir, 'index.json'), index);
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

interface DockerEntry {
  Config: string;
  RepoTags?: string[] | null;
  Layers: string[];
}

/**
 * DockerArchiveSource reads a `docker save` archive: manifest.json names the config and
 * layer files. In the modern layout (docker 25+, an OCI layout inside) the image's own
 * manifest is found in index.json by its config and kept byte-exact; in the legacy layout
 * (`<id>/layer.tar`) a Docker schema 2 manifest is made from the files, so its digest is new
 * while the config and layers keep theirs.
 */
export class DockerArchiveSource implements Source {
  private readonly paths = new Map<string, string>();
  private made: Manifest | undefined;

  private constructor(
    readonly describe: string,
    private readonly t: TarFiles,
    private readonly entry: DockerEntry,
  ) {}

  static async open(describe: string, file: string, ref?: string): Promise<DockerArchiveSource> {
    const t = await TarFiles.open(file);
    const body = await t.read('manifest.json');
    if (!body) throw new CopyError(`${describe}: not a docker-archive (no manifest.json)`);
    let entries: DockerEntry[];
    try {
      entries = JSON.parse(body.toString('utf8')) as DockerEntry[];
      if (!Array.isArray(entries)) throw new Error();
    } catch {
      throw new CopyError(`${describe}: manifest.json is not a docker-archive manifest`);
    }
    const want = ref === undefined ? undefined : familiar(repoTag(ref)!);
    const named =
      want === undefined
        ? entries
        : entries.filter((e) => (e.RepoTags ?? []).some((t) => familiar(t) === want));
    if (named.length !== 1)
      throw new CopyError(
        `${describe}: ${named.length === 0 ? 'no image' : `${named.length} images`} named ${JSON.stringify(ref ?? '')}${named.length > 1 ? ': name one as <file>:<repo:tag>' : ''}`,
      );
    return new DockerArchiveSource(describe, t, named[0]!);
  }

  async root(): Promise<Manifest> {
    const config = await this.t.read(this.entry.Config);
    if (!config) throw new CopyError(`${this.describe}: ${this.entry.Config} is missing`);
    const configDigest = digestOf(config);
    const kept = await this.storedManifest(configDigest);
    if (kept) return kept;
    this.paths.set(configDigest, this.entry.Config);
    const layers: Descriptor[] = [];
    for (const path of this.entry.Layers) layers.push(await this.describeLayer(path));
    const body = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MediaTypes.dockerManifest,
        config: { mediaType: MediaTypes.dockerConfig, size: config.length, digest: configDigest },
        layers,
      }),
    );
    this.made = { mediaType: MediaTypes.dockerManifest, digest: digestOf(body), body };
    return this.made;
  }

  async manifest(digest: string): Promise<Manifest> {
    if (this.made?.digest === digest) return this.made;
    return new LayoutSource(this.describe, tarFiles(this.t), undefined).manifest(digest);
  }

  blob(d: Descriptor): Promise<Readable> {
    return Promise.resolve(this.t.stream(this.paths.get(d.digest) ?? blobPath(d.digest)));
  }

  referrers(): Promise<string[]> {
    return Promise.resolve([]);
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  /** storedManifest finds, in an OCI layout inside the archive, the manifest of this config. */
  private async storedManifest(configDigest: string): Promise<Manifest | undefined> {
    const files = tarFiles(this.t);
    const index = await readIndex(files, this.describe).catch(() => undefined);
    const layout = new LayoutSource(this.describe, files, undefined);
    const queue = [...(index?.manifests ?? [])];
    for (let d = queue.shift(); d !== undefined; d = queue.shift()) {
      if (!this.t.has(blobPath(d.digest))) continue;
      const m = await layout.manifest(d.digest);
      const doc = parseManifest(m.body, d.digest);
      if (doc.manifests) queue.push(...doc.manifests);
      else if (doc.config?.digest === configDigest) return m;
    }
    return undefined;
  }

  private async describeLayer(path: string): Promise<Descriptor> {
    const size = this.t.size(path);
    if (size === undefined) throw new CopyError(`${this.describe}: ${path} is missing`);
    const hash = hasherFor('sha256:');
    let head: Buffer | undefined;
    for await (const c of this.t.stream(path)) {
      head ??= c as Buffer;
      hash.update(c as Buffer);
    }
    const digest = `sha256:${hash.digest('hex')}`;
    this.paths.set(digest, path);
    const gzip = head !== undefined && head[0] === 0x1f && head[1] === 0x8b;
    return { mediaType: gzip ? MediaTypes.dockerLayerGzip : MediaTypes.dockerLayer, size, digest };
  }
}
