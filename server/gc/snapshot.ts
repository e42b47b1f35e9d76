import { decodeDescriptor } from '../registry/blobs.js';
import { digestOf, type Algorithm } from '../registry/reference.js';
import type { SessionBytes } from '../registry/upload-state.js';
import { isNotFound, listAll, type StorageDriver } from '../storage/driver.js';
import { Paths } from '../storage/paths.js';

/** ALGORITHMS are the digest algorithms a repository may hold (see reference.ts). */
export const ALGORITHMS: readonly Algorithm[] = ['sha256', 'sha512'];

/** ManifestRefs is what one stored manifest points at. */
export interface ManifestRefs {
  /** blobs are every digest the manifest names as config, layer or blob (conservative). */
  blobs: string[];
  /** children are the manifests an index lists. */
  children: string[];
  subject?: string;
}

/** PointerFact is a descriptor or link: where it is stored and which segments it names. */
export interface PointerFact {
  key: string;
  /** data is the object as read (a link is restored from it if a racing push needs it). */
  data: string;
  /** segments are the keys it names; undefined when it could not be parsed. */
  segments?: string[];
}

/** RepoSnapshot is one repository as read by the mark phase. */
export interface RepoSnapshot {
  name: string;
  /** tags maps each tag to the digest it pointed to when read. */
  tags: Map<string, string>;
  /** manifests maps each stored manifest to its references (undefined: unreadable). */
  manifests: Map<string, ManifestRefs | undefined>;
  links: Map<string, PointerFact>;
}

/** SessionFact is what gc reads of an upload session. */
export type SessionFact = Pick<SessionBytes, 'startedAt' | 'segments'>;

/**
 * Snapshot is the store as the mark phase read it. The order of reading is part of the
 * safety argument (see docs/adr/0007-online-gc.md): upload sessions first, then blob
 * descriptors, then repositories, then segments last.
 */
export interface Snapshot {
  /** uploads maps each upload session's id to the session (undefined: unreadable). */
  uploads: Map<string, SessionFact | undefined>;
  descriptors: Map<string, PointerFact>;
  repos: RepoSnapshot[];
  /** segments lists every segment key, by upload id. */
  segments: Map<string, string[]>;
}

/** Age is when an object was last written (ms) and its size, as `stat` told. */
export interface Age {
  modified: number;
  size: number;
}

/** Ages are the ages of objects by storage key; a key that is absent was gone. */
export type Ages = ReadonlyMap<string, Age>;

/** mapLimit maps with at most `limit` calls in flight, keeping order. */
export async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<R>,
): Promise<R[]> {
  const out: R[] = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/** getOrUndefined reads an object, or undefined when it is absent. */
async function getOrUndefined(driver: StorageDriver, key: string): Promise<Buffer | undefined> {
  try {
    return await driver.get(key);
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

/** ageOf stats an object: its age, or undefined when it is gone. */
export async function ageOf(driver: StorageDriver, key: string): Promise<Age | undefined> {
  try {
    const s = await driver.stat(key);
    return { modified: s.modified.getTime(), size: s.size };
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

/** readAges stats every key, at most `concurrency` at a time (gone ones are left out). */
export async function readAges(
  driver: StorageDriver,
  keys: readonly string[],
  concurrency: number,
): Promise<Map<string, Age>> {
  const out = new Map<string, Age>();
  await mapLimit(keys, concurrency, async (key) => {
    const age = await ageOf(driver, key);
    if (age) out.set(key, age);
  });
  return out;
}

/**
 * manifestRefs reads the references out of a stored envelope (media type line + body),
 * leniently: every digest-shaped field counts, so marking errs towards keeping. Undefined
 * when the body is not a JSON object.
 */
export function manifestRefs(envelope: Buffer): ManifestRefs | undefined {
  return refsOfBody(envelope.subarray(envelope.indexOf(0x0a) + 1));
}

/** refsOfBody reads the references out of a manifest body (see manifestRefs). */
export function refsOfBody(body: Buffer): ManifestRefs | undefined {
  let doc: unknown;
  try {
    doc = JSON.parse(body.toString('utf8'));
  } catch {
    return undefined;
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) return undefined;
  const o = doc as Record<string, unknown>;
  const digestOfDesc = (d: unknown): string | undefined =>
    typeof d === 'object' && d !== null && typeof (d as { digest?: unknown }).digest === 'string'
      ? (d as { digest: string }).digest
      : undefined;
  const list = (v: unknown): string[] =>
    Array.isArray(v) ? v.map(digestOfDesc).filter((d): d is string => d !== undefined) : [];
  const config = digestOfDesc(o.config);
  return {
    blobs: [...(config === undefined ? [] : [config]), ...list(o.layers), ...list(o.blobs)],
    children: list(o.manifests),
    subject: digestOfDesc(o.subject),
  };
}

function segmentsOf(buf: Buffer | undefined): string[] | undefined {
  if (buf === undefined) return undefined;
  try {
    return decodeDescriptor(buf).segments.map((s) => s.key);
  } catch {
    return undefined;
  }
}

/**
 * RefCache remembers the references of manifests by digest: a manifest's bytes never change,
 * so across runs only new manifests are read and parsed.
 */
export class RefCache {
  private readonly map = new Map<string, ManifestRefs>();
  constructor(private readonly max = 100_000) {}
  get(digest: string): ManifestRefs | undefined {
    return this.map.get(digest);
  }
  set(digest: string, refs: ManifestRefs): void {
    if (this.map.size >= this.max) this.map.delete(this.map.keys().next().value!);
    this.map.set(digest, refs);
  }
}

/** readSnapshot is the mark: it reads the store in the order `Snapshot` states. */
export async function readSnapshot(
  driver: StorageDriver,
  cache: RefCache,
  concurrency: number,
): Promise<Snapshot> {
  const uploads = await readUploads(driver, concurrency);
  const descriptors = await readDescriptors(driver, concurrency);
  const repos = await mapLimit(await walkRepositories(driver), 4, (name) =>
    readRepository(driver, name, cache, concurrency),
  );
  const segments = await readSegments(driver, concurrency);
  return { uploads, descriptors, repos, segments };
}

/** walkRepositories finds every repository by walking `repositories/` (not the catalog). */
export async function walkRepositories(driver: StorageDriver): Promise<string[]> {
  const out: string[] = [];
  const visit = async (name: string): Promise<void> => {
    const entries = await listAll(driver, Paths.repository(name));
    if (entries.some((e) => e.startsWith('_'))) out.push(name);
    for (const e of entries) if (!e.startsWith('_')) await visit(`${name}/${e}`);
  };
  for (const top of await listAll(driver, Paths.repositoriesRoot())) await visit(top);
  return out.sort();
}

/** readRepository reads one repository's tags, manifests and links. */
export async function readRepository(
  driver: StorageDriver,
  name: string,
  cache: RefCache,
  concurrency: number,
): Promise<RepoSnapshot> {
  const tagNames = await listAll(driver, Paths.tagsRoot(name));
  const tags = new Map<string, string>();
  await mapLimit(tagNames, concurrency, async (tag) => {
    const b = await getOrUndefined(driver, Paths.tag(name, tag));
    if (b !== undefined) tags.set(tag, b.toString('utf8'));
  });
  const manifests = new Map<string, ManifestRefs | undefined>();
  const links = new Map<string, PointerFact>();
  for (const alg of ALGORITHMS) {
    const hexes = await listAll(driver, Paths.manifestsRoot(name, alg));
    await mapLimit(hexes, concurrency, async (hex) => {
      const d = digestOf(alg, hex);
      const cached = cache.get(d.value);
      if (cached) {
        manifests.set(d.value, cached);
        return;
      }
      const env = await getOrUndefined(driver, Paths.manifest(name, d));
      if (env === undefined) return; // deleted since listed
      const refs = manifestRefs(env);
      if (refs) cache.set(d.value, refs);
      manifests.set(d.value, refs);
    });
    const linked = await listAll(driver, Paths.layersRoot(name, alg));
    await mapLimit(linked, concurrency, async (hex) => {
      const d = digestOf(alg, hex);
      const key = Paths.layer(name, d);
      const buf = await getOrUndefined(driver, key);
      if (buf === undefined) return;
      links.set(d.value, { key, data: buf.toString('utf8'), segments: segmentsOf(buf) });
    });
  }
  return { name, tags, manifests, links };
}

/** readUploads reads every upload session (undefined: unreadable or gone). */
export async function readUploads(
  driver: StorageDriver,
  concurrency: number,
): Promise<Map<string, SessionFact | undefined>> {
  const ids = await listAll(driver, Paths.uploadsRoot());
  const out = new Map<string, SessionFact | undefined>();
  await mapLimit(ids, concurrency, async (id) => {
    const b = await getOrUndefined(driver, Paths.upload(id));
    if (b === undefined) return;
    try {
      out.set(id, JSON.parse(b.toString('utf8')) as SessionFact);
    } catch {
      out.set(id, undefined);
    }
  });
  return out;
}

/** readDescriptors reads every global blob descriptor. */
export async function readDescriptors(
  driver: StorageDriver,
  concurrency: number,
): Promise<Map<string, PointerFact>> {
  const out = new Map<string, PointerFact>();
  for (const alg of ALGORITHMS) {
    const shards = await listAll(driver, Paths.blobAlgorithmRoot(alg));
    const hexes = (
      await mapLimit(shards, concurrency, (hh) => listAll(driver, Paths.blobShardRoot(alg, hh)))
    ).flat();
    await mapLimit(hexes, concurrency, async (hex) => {
      const d = digestOf(alg, hex);
      const key = Paths.blob(d);
      const buf = await getOrUndefined(driver, key);
      if (buf === undefined) return;
      out.set(d.value, { key, data: '', segments: segmentsOf(buf) });
    });
  }
  return out;
}

/** readSegments lists every segment key, by upload id. */
export async function readSegments(
  driver: StorageDriver,
  concurrency: number,
): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>();
  const ids = await listAll(driver, Paths.segmentsRoot());
  await mapLimit(ids, concurrency, async (id) => {
    const names = await listAll(driver, Paths.segmentsOf(id));
    out.set(
      id,
      names.map((n) => Paths.segmentEntry(id, n)),
    );
  });
  return out;
}
