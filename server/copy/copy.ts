import { pipeline } from 'node:stream/promises';
import type { Destination, Source } from './transport.js';
import {
  blobsOf,
  checkManifest,
  CopyError,
  isIndex,
  parseManifest,
  verifier,
  type Descriptor,
  type Manifest,
} from './spec.js';

/** Platform is an `os/arch[/variant]` an index child is picked by. */
export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

export interface CopyOptions {
  /** all copies an index with every child; without it one platform's image. */
  all: boolean;
  /** referrers also copies manifests whose subject is a copied manifest, recursively. */
  referrers: boolean;
  platform: Platform;
  /**
   * children picks which children of an index are copied (with `all`; default every one).
   * The index itself is copied byte-exact, so the destination must accept an index whose
   * other children it lacks (a mirrored repository does: they are pulled through).
   */
  children?: (child: Descriptor) => boolean;
  progress?: ProgressSink;
}

/** ProgressSink hears a copy's plan and each blob's bytes as they pass. */
export interface ProgressSink {
  start(totalBytes: number, totalBlobs: number): void;
  bytes(n: number): void;
  blob(d: Descriptor, copied: boolean): void;
  end(): void;
}

/** CopyResult is what `berth copy` prints. */
export interface CopyResult {
  source: string;
  destination: string;
  digest: string;
  manifests: number;
  blobsCopied: number;
  blobsSkipped: number;
  bytes: number;
}

/** Plan is everything a copy writes, in a safe order: blobs, then manifests children first. */
interface Plan {
  root: Manifest;
  manifests: Manifest[];
  referrers: Manifest[];
  blobs: Map<string, Descriptor>;
}

/**
 * copy copies the image `src` names to `dst`, digests kept: every manifest byte-exact and
 * every blob verified against its digest and size as it streams. It first reads every
 * manifest (the plan), then writes each blob the destination lacks, then the manifests
 * children first, then names the root. Re-running after a failure or a kill writes only
 * what is still missing.
 */
export async function copy(src: Source, dst: Destination, o: CopyOptions): Promise<CopyResult> {
  const plan = await makePlan(src, o);
  const result: CopyResult = {
    source: src.describe,
    destination: dst.describe,
    digest: plan.root.digest,
    manifests: plan.manifests.length,
    blobsCopied: 0,
    blobsSkipped: 0,
    bytes: 0,
  };
  const blobs = [...plan.blobs.values()];
  o.progress?.start(
    blobs.reduce((n, b) => n + b.size, 0),
    blobs.length,
  );
  try {
    for (const d of blobs) {
      const copied = await copyBlob(src, dst, d, o.progress);
      if (copied) {
        result.blobsCopied++;
        result.bytes += d.size;
      } else result.blobsSkipped++;
      o.progress?.blob(d, copied);
    }
  } finally {
    o.progress?.end();
  }
  for (const m of plan.manifests) await dst.putManifest(m);
  await dst.finish(plan.root, plan.referrers);
  return result;
}

async function copyBlob(
  src: Source,
  dst: Destination,
  d: Descriptor,
  progress: ProgressSink | undefined,
): Promise<boolean> {
  if (await dst.hasBlob(d)) {
    progress?.bytes(d.size);
    return false;
  }
  const body = await src.blob(d);
  const check = verifier(d, (n) => progress?.bytes(n));
  const piping = pipeline(body, check);
  piping.catch(() => {}); // awaited below; a failure also fails putBlob, which is thrown first
  try {
    await dst.putBlob(d, check);
  } catch (err) {
    body.destroy();
    throw err;
  }
  await piping;
  return true;
}

/** makePlan reads the root (one platform's image unless `all`), its children and referrers. */
async function makePlan(src: Source, o: CopyOptions): Promise<Plan> {
  let root = await src.root();
  if (isIndex(root.mediaType) && !o.all)
    root = await src.manifest(pickPlatform(root, o.platform, src.describe));
  const plan: Plan = { root, manifests: [], referrers: [], blobs: new Map() };
  const seen = new Set<string>();
  await walk(src, root, { plan, seen, o });
  return plan;
}

interface Walk {
  plan: Plan;
  seen: Set<string>;
  o: CopyOptions;
}

async function walk(src: Source, m: Manifest, w: Walk): Promise<void> {
  if (w.seen.has(m.digest)) return;
  w.seen.add(m.digest);
  const doc = parseManifest(m.body, `${src.describe}: ${m.digest}`);
  const children = isIndex(m.mediaType) ? (doc.manifests ?? []) : [];
  for (const child of children.filter((c) => w.o.children?.(c) ?? true))
    await walk(src, checkManifest(await src.manifest(child.digest), src.describe), w);
  for (const b of blobsOf(doc)) w.plan.blobs.set(b.digest, b);
  w.plan.manifests.push(m);
  if (!w.o.referrers) return;
  for (const digest of await src.referrers(m.digest)) {
    if (w.seen.has(digest)) continue;
    const r = checkManifest(await src.manifest(digest), src.describe);
    await walk(src, r, w);
    w.plan.referrers.push(r);
  }
}

/** pickPlatform is the digest of the index child for `p` (a variant only when asked for). */
export function pickPlatform(index: Manifest, p: Platform, where: string): string {
  const doc = parseManifest(index.body, `${where}: ${index.digest}`);
  const match = (doc.manifests ?? []).find(
    (c) =>
      c.platform?.os === p.os &&
      c.platform.architecture === p.architecture &&
      (p.variant === undefined || c.platform.variant === p.variant),
  );
  if (!match) {
    const want = [p.os, p.architecture, p.variant].filter(Boolean).join('/');
    throw new CopyError(`${where}: the index has no ${want} image (use --platform or --all)`);
  }
  return match.digest;
}

/** hostPlatform is linux and this machine's architecture (amd64 or arm64). */
export function hostPlatform(): Platform {
  return { os: 'linux', architecture: process.arch === 'arm64' ? 'arm64' : 'amd64' };
}
