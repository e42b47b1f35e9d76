import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { TarFiles } from './tar.js';
import type { Destination, Source } from './transport.js';
import {
  checkDigest,
  checkManifest,
  CopyError,
  hasherFor,
  mediaTypeOf,
  parseManifest,
  REF_NAME,
  type Descriptor,
  type Manifest,
  type ManifestDoc,
  MediaTypes,
} from './spec.js';

/** Files reads an OCI layout's files, from a directory or out of a tar. */
export interface Files {
  /** read reads a file whole, or its first `limit` bytes; undefined when absent. */
  read(path: string, limit?: number): Promise<Buffer | undefined>;
  stream(path: string): Readable;
  /** blobs lists the layout's blob files with their sizes. */
  blobs(): Promise<{ digest: string; size: number }[]>;
}

/** dirFiles reads files under `dir`. */
export function dirFiles(dir: string): Files {
  return {
    read: (path, limit) =>
      (limit === undefined ? readFile(join(dir, path)) : readHead(join(dir, path), limit)).catch(
        (err: NodeJS.ErrnoException) => {
          if (err.code === 'ENOENT') return undefined;
          throw err;
        },
      ),
    stream: (path) => createReadStream(join(dir, path)),
    blobs: async () => {
      const out: { digest: string; size: number }[] = [];
      for (const alg of ['sha256', 'sha512']) {
        const names = await readdir(join(dir, 'blobs', alg)).catch(() => [] as string[]);
        for (const hex of names.filter((n) => /^[0-9a-f]+$/.test(n)))
          out.push({
            digest: `${alg}:${hex}`,
            size: (await stat(join(dir, 'blobs', alg, hex))).size,
          });
      }
      return out;
    },
  };
}

/** tarFiles reads files out of an indexed tar. */
export function tarFiles(t: TarFiles): Files {
  return {
    read: (path, limit) => t.read(path, limit),
    stream: (path) => t.stream(path),
    blobs: () =>
      Promise.resolve(
        t
          .paths()
          .filter((p) => /^blobs\/sha(256|512)\/[0-9a-f]+$/.test(p))
          .map((p) => ({ digest: p.slice(6).replace('/', ':'), size: t.size(p) ?? 0 })),
      ),
  };
}

/** MANIFEST_LIMIT is the largest blob read when looking for referrers. */
const MANIFEST_LIMIT = 4 << 20;

/** blobPath is a blob's path in a layout: `blobs/<alg>/<hex>`. */
export function blobPath(digest: string): string {
  const [alg, hex] = checkDigest(digest).split(':') as [string, string];
  return `blobs/${alg}/${hex}`;
}

export interface LayoutIndex {
  schemaVersion: 2;
  mediaType?: string;
  manifests: Descriptor[];
}

/** readIndex reads a layout's index.json (undefined when absent). */
export async function readIndex(files: Files, where: string): Promise<LayoutIndex | undefined> {
  const body = await files.read('index.json');
  if (body === undefined) return undefined;
  const doc = parseManifest(body, `${where}/index.json`);
  if (!Array.isArray(doc.manifests)) throw new CopyError(`${where}/index.json: no manifests`);
  return { schemaVersion: 2, mediaType: doc.mediaType, manifests: doc.manifests };
}

/**
 * LayoutSource reads an OCI image layout (a directory or an archive's files). The reference
 * is an index.json entry's `org.opencontainers.image.ref.name`; without one, the layout's
 * only image. Referrers are index.json entries whose manifest has the subject.
 */
export class LayoutSource implements Source {
  constructor(
    readonly describe: string,
    private readonly files: Files,
    private readonly ref: string | undefined,
  ) {}

  async root(): Promise<Manifest> {
    const entries = await this.entries();
    const named =
      this.ref === undefined
        ? entries
        : entries.filter((e) => e.annotations?.[REF_NAME] === this.ref);
    let pick = named;
    if (this.ref === undefined && named.length > 1) {
      const subjects = await Promise.all(
        named.map(async (e) => (await this.doc(e.digest)).subject),
      );
      pick = named.filter((_, i) => subjects[i] === undefined);
    }
    if (pick.length === 0)
      throw new CopyError(
        `${this.describe}: no image named ${JSON.stringify(this.ref ?? '')} in index.json`,
      );
    if (pick.length > 1)
      throw new CopyError(
        `${this.describe}: index.json has ${pick.length} images: name one as <path>:<ref>`,
      );
    return this.manifest(pick[0]!.digest);
  }

  async manifest(digest: string): Promise<Manifest> {
    const body = await this.files.read(blobPath(digest));
    if (body === undefined) throw new CopyError(`${this.describe}: manifest ${digest} is missing`);
    const mediaType = mediaTypeOf(parseManifest(body, `${this.describe}: ${digest}`));
    return checkManifest({ mediaType, digest, body }, this.describe);
  }

  blob(d: Descriptor): Promise<Readable> {
    return Promise.resolve(this.files.stream(blobPath(d.digest)));
  }

  /** referrers are the manifests (index.json entries or any blob) whose subject is `digest`. */
  async referrers(digest: string): Promise<string[]> {
    this.bySubject ??= this.scanSubjects();
    return (await this.bySubject).get(digest) ?? [];
  }

  private bySubject: Promise<Map<string, string[]>> | undefined;

  /** scanSubjects reads every small JSON blob once and maps subject digest → referrers. */
  private async scanSubjects(): Promise<Map<string, string[]>> {
    const out = new Map<string, string[]>();
    for (const b of await this.files.blobs()) {
      if (b.size > MANIFEST_LIMIT) continue;
      if ((await this.files.read(blobPath(b.digest), 1))?.[0] !== 0x7b) continue;
      const body = await this.files.read(blobPath(b.digest));
      if (body === undefined) continue;
      let subject: string | undefined;
      try {
        subject = (JSON.parse(body.toString('utf8')) as ManifestDoc).subject?.digest;
      } catch {
        continue;
      }
      if (subject !== undefined) out.set(subject, [...(out.get(subject) ?? []), b.digest]);
    }
    return out;
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  private async entries(): Promise<Descriptor[]> {
    const index = await readIndex(this.files, this.describe);
    if (!index) throw new CopyError(`${this.describe}: not an OCI layout (no index.json)`);
    return index.manifests;
  }

  private async doc(digest: string) {
    return parseManifest((await this.manifest(digest)).body, `${this.describe}: ${digest}`);
  }
}

/**
 * LayoutDest writes an OCI image layout in `dir`: `oci-layout`, blobs (each written to a
 * temporary file and renamed only after its digest and size are verified), and index.json
 * last, keeping earlier entries and naming the root by `ref`. A blob file already there is
 * hashed and kept when its digest is right, so a re-run copies only what is missing.
 */
export class LayoutDest implements Destination {
  /** changed: this copy wrote something (a blob, a manifest, or a new index.json). */
  changed = false;
  /** replace: index.json lists only this copy's root and referrers (a docker-archive's one image). */
  replace = false;

  constructor(
    readonly describe: string,
    readonly dir: string,
    readonly ref: string | undefined,
  ) {}

  async open(): Promise<this> {
    await mkdir(join(this.dir, 'blobs', 'sha256'), { recursive: true });
    const marker = join(this.dir, 'oci-layout');
    if (!(await exists(marker)))
      await writeFile(marker, JSON.stringify({ imageLayoutVersion: '1.0.0' }));
    return this;
  }

  async hasBlob(d: Descriptor): Promise<boolean> {
    const path = join(this.dir, blobPath(d.digest));
    const st = await stat(path).catch(() => undefined);
    if (!st || st.size !== d.size) return false;
    const hash = hasherFor(d.digest);
    for await (const c of createReadStream(path)) hash.update(c as Buffer);
    return `${d.digest.split(':')[0]}:${hash.digest('hex')}` === d.digest;
  }

  async putBlob(d: Descriptor, body: Readable): Promise<void> {
    const path = join(this.dir, blobPath(d.digest));
    await mkdir(join(path, '..'), { recursive: true });
    const tmp = `${path}.partial`;
    try {
      await pipeline(body, createWriteStream(tmp));
      await rename(tmp, path);
      this.changed = true;
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
  }

  async putManifest(m: Manifest): Promise<void> {
    const d = { digest: m.digest, size: m.body.length };
    if (await this.hasBlob(d)) return;
    await this.putBlob(d, Readable.from([m.body]));
  }

  async finish(root: Manifest, referrers: Manifest[]): Promise<void> {
    const old = await readIndex(dirFiles(this.dir), this.describe);
    const entries = old?.manifests ?? [];
    const next = this.replace ? [] : [...entries];
    const rootEntry = entry(root, this.ref ? { [REF_NAME]: this.ref } : {});
    const named = this.ref ? next.findIndex((e) => e.annotations?.[REF_NAME] === this.ref) : -1;
    if (named !== -1) next[named] = rootEntry;
    for (const e of [rootEntry, ...referrers.map((r) => entry(r, {}))])
      if (!next.some((n) => n.digest === e.digest && sameNames(n, e))) next.push(e);
    if (old && JSON.stringify(entries) === JSON.stringify(next) && !this.changed) return;
    const index: LayoutIndex = {
      schemaVersion: 2,
      mediaType: MediaTypes.ociIndex,
      manifests: next,
    };
    const tmp = join(this.dir, 'index.json.partial');
    await writeFile(tmp, JSON.stringify(index));
    await rename(tmp, join(this.dir, 'index.json'));
    this.changed = true;
  }
}

function entry(m: Manifest, annotations: Record<string, string>): Descriptor {
  const d: Descriptor = { mediaType: m.mediaType, digest: m.digest, size: m.body.length };
  const doc = parseManifest(m.body, m.digest) as { artifactType?: string };
  if (doc.artifactType) (d as { artifactType?: string }).artifactType = doc.artifactType;
  if (Object.keys(annotations).length > 0) d.annotations = annotations;
  return d;
}

function sameNames(a: Descriptor, b: Descriptor): boolean {
  return a.annotations?.[REF_NAME] === b.annotations?.[REF_NAME];
}

async function readHead(path: string, limit: number): Promise<Buffer> {
  const fh = await open(path, 'r');
  try {
    const b = Buffer.alloc(limit);
    const { bytesRead } = await fh.read(b, 0, limit, 0);
    return b.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}
