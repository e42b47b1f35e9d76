import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { parseDigest, type Digest } from '../../server/registry/reference.js';
import type { Registry } from '../../server/registry/repository.js';
import { isNotFound, listAll, type StorageDriver } from '../../server/storage/driver.js';
import { Paths } from '../../server/storage/paths.js';
import { image } from './image.js';

/** TagOp is one step of a tag race: a move, an untag, a manifest delete or a (re)push. */
export type TagOp =
  | { kind: 'move'; tag: number; manifest: number }
  | { kind: 'untag'; tag: number }
  | { kind: 'delete'; manifest: number }
  | { kind: 'push'; manifest: number };

/** Fixture is a set of sparse manifests (no blobs needed) for a race in one repository. */
export interface Fixture {
  repo: string;
  manifests: { body: Buffer; mediaType: string; digest: Digest }[];
  tags: string[];
}

export function fixture(repo: string, manifests: number, tags: number): Fixture {
  return {
    repo,
    manifests: Array.from({ length: manifests }, () => {
      const img = image().layer(8).build();
      return { body: img.body, mediaType: img.mediaType, digest: parseDigest(img.digest) };
    }),
    tags: Array.from({ length: tags }, (_, i) => `t${i}`),
  };
}

/**
 * runOp applies one step through `registry` (one replica of several), swallowing the
 * errors a lost race may answer (404 for a manifest deleted meanwhile); anything else,
 * a 5xx above all, is returned as a failure.
 */
export async function runOp(
  registry: Registry,
  f: Fixture,
  op: TagOp,
): Promise<string | undefined> {
  const repo = registry.repository(f.repo);
  try {
    switch (op.kind) {
      case 'move':
        await repo.tag(f.tags[op.tag]!, f.manifests[op.manifest]!.digest);
        break;
      case 'untag':
        await repo.untag(f.tags[op.tag]!);
        break;
      case 'delete':
        await repo.delete(f.manifests[op.manifest]!.digest);
        break;
      case 'push': {
        const m = f.manifests[op.manifest]!;
        await repo.put(m.body, m.mediaType);
        break;
      }
    }
    return undefined;
  } catch (err) {
    const code = (err as { code?: string }).code;
    const status = (err as { status?: number }).status;
    if (code === 'MANIFEST_UNKNOWN' && status === 404) return undefined;
    return `${op.kind}: ${String((err as Error).stack ?? err)}`;
  }
}

async function value(driver: StorageDriver, key: string): Promise<string | undefined> {
  try {
    return (await driver.get(key)).toString('utf8');
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

/**
 * tagViolations checks, on storage itself, every invariant of tags after a race has
 * settled, and returns what breaks them:
 * - every listed tag names a digest (no tombstone left) of a manifest that exists;
 * - its reverse index entry exists;
 * - every reverse index entry names a tag that points at that manifest (nothing stale);
 * - a manifest that does not exist has no reverse index entries.
 */
export async function tagViolations(driver: StorageDriver, f: Fixture): Promise<string[]> {
  const out: string[] = [];
  const tags = new Map<string, string>();
  for (const tag of await listAll(driver, Paths.tagsRoot(f.repo))) {
    const v = await value(driver, Paths.tag(f.repo, tag));
    if (v === undefined) continue;
    tags.set(tag, v);
    if (!v.startsWith('sha256:')) {
      out.push(`tag ${tag} holds ${JSON.stringify(v)}`);
      continue;
    }
    const d = parseDigest(v);
    if ((await value(driver, Paths.manifest(f.repo, d))) === undefined)
      out.push(`tag ${tag} points at deleted manifest ${v}`);
    if ((await value(driver, Paths.tagOf(f.repo, d, tag))) === undefined)
      out.push(`tag ${tag} → ${v} has no reverse index entry`);
  }
  for (const m of f.manifests) {
    const entries = await listAll(driver, Paths.tagsOfRoot(f.repo, m.digest));
    for (const tag of entries) {
      if (tags.get(tag) !== m.digest.value)
        out.push(`stale reverse index entry ${m.digest.value} → ${tag} (tag: ${tags.get(tag)})`);
    }
  }
  return out;
}

/** tmpLeft lists files left in a filesystem driver's `.tmp` folder (temp files, locks). */
export async function tmpLeft(root: string): Promise<string[]> {
  return readdir(join(root, '.tmp')).catch(() => []);
}

/** randomOps draws `n` steps from `rand` (a seeded generator), moves most often. */
export function randomOps(f: Fixture, n: number, rand: () => number): TagOp[] {
  const pick = (k: number) => Math.floor(rand() * k);
  return Array.from({ length: n }, (): TagOp => {
    const r = rand();
    if (r < 0.7)
      return { kind: 'move', tag: pick(f.tags.length), manifest: pick(f.manifests.length) };
    if (r < 0.8) return { kind: 'untag', tag: pick(f.tags.length) };
    if (r < 0.9) return { kind: 'delete', manifest: pick(f.manifests.length) };
    return { kind: 'push', manifest: pick(f.manifests.length) };
  });
}

/** mulberry32 is a small seeded generator, so a failing race can be replayed. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * race runs `ops` against `registries` (replicas on one storage), `concurrency` at a time,
 * each step on the next replica in turn, and returns the failures.
 */
export async function race(
  registries: Registry[],
  f: Fixture,
  ops: TagOp[],
  concurrency: number,
): Promise<string[]> {
  const failures: string[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (;;) {
        const i = next++;
        const op = ops[i];
        if (op === undefined) return;
        const err = await runOp(registries[i % registries.length]!, f, op);
        if (err) failures.push(err);
      }
    }),
  );
  return failures;
}
