import type { Clock } from '../util/clock.js';
import { Errors, isRegistryError } from '../errors.js';
import { parseDigest } from '../registry/reference.js';
import type { StoredManifest } from '../registry/repository.js';
import { listAll, type StorageDriver } from '../storage/driver.js';
import { Paths } from '../storage/paths.js';
import { uploadsOf, type Plan } from './plan.js';
import type { GcItem, ManifestItem, TagItem, UploadItem, SegmentItem } from './report.js';
import { restoreNeeded, type DeletedManifests, type RestoreTarget } from './restore.js';
import type { GcRun } from './run.js';
import { ageOf, mapLimit, type RepoSnapshot, type SessionFact } from './snapshot.js';
import { defer, deferredAt } from './state.js';

/** SweepDeps are what a sweep deletes through and how it paces itself. */
export interface SweepDeps extends RestoreTarget {
  driver: StorageDriver;
  concurrency: number;
  clock: Clock;
  sleep: (ms: number) => Promise<void>;
  graceSeconds: number;
  settleMillis: number;
  uploadTtlSeconds: number;
  /** reread reads one repository again, after the settle pause. */
  reread: (name: string) => Promise<RepoSnapshot>;
}

/**
 * sweep deletes a plan in phases (tags, manifests, links, blobs, then after the settle
 * pause and its restore, uploads and segments), re-checking each candidate right before its
 * deletion; a candidate the re-check keeps is reported skipped. Pointers defer their bytes by
 * a grace window, and links go only after their undo copies are checkpointed. It ends by
 * aborting stale multipart uploads, where the driver can, and closing the run's checkpoint.
 */
export async function sweep(run: GcRun, plan: Plan, deps: SweepDeps): Promise<void> {
  const manifests = await sweepRetention(run, plan, deps);
  await sweepPointers(run, plan, deps);
  await settle(run, manifests, deps);
  await sweepBytes(run, plan, deps);
  await abortStaleMultipart(run, deps);
  await run.close();
}

/**
 * phase deletes `items`, `concurrency` at a time: `deleteIfStill` re-checks one and deletes
 * it, resolving true, or keeps it, resolving false.
 */
async function phase<T extends GcItem>(
  run: GcRun,
  name: string,
  items: readonly T[],
  concurrency: number,
  deleteIfStill: (item: T) => Promise<boolean>,
): Promise<void> {
  run.phase(name);
  await run.checkpoint(name, true);
  await mapLimit(items, concurrency, async (item) => {
    await run.guard();
    if (await deleteIfStill(item)) run.deleted(item);
    else run.skipped(item);
    await run.checkpoint(name);
  });
}

/** stillOld says whether `key` exists and was last written before `cutoff`. */
async function stillOld(driver: StorageDriver, key: string, cutoff: number): Promise<boolean> {
  const age = await ageOf(driver, key);
  return age !== undefined && age.modified < cutoff;
}

// ---------------------------------------------------------------------------------------------
// 1. Retention: tags, then manifests.

async function sweepRetention(run: GcRun, plan: Plan, deps: SweepDeps): Promise<DeletedManifests> {
  const deleted: DeletedManifests = new Map();
  await phase(run, 'tags', plan.tags, deps.concurrency, (item) => untag(item, run, deps));
  await phase(run, 'manifests', plan.manifests, deps.concurrency, async (item) => {
    const stored = await deleteManifest(item, run, deps);
    if (stored === undefined) return false;
    deleted.set(
      item.repo,
      (deleted.get(item.repo) ?? new Map<string, StoredManifest>()).set(item.digest, stored),
    );
    return true;
  });
  return deleted;
}

/** untag deletes a tag that still points where it did and was not written since the cutoff. */
async function untag(item: TagItem, run: GcRun, deps: SweepDeps): Promise<boolean> {
  const repo = deps.registry.repository(item.repo);
  const current = await deps.driver.get(item.key).then(
    (b) => b.toString('utf8'),
    () => undefined,
  );
  if (current !== item.digest || !(await stillOld(deps.driver, item.key, run.cutoff))) return false;
  // Conditional: a tag moved since the check above is left where it now points.
  return repo.untag(item.tag, parseDigest(item.digest)).then(
    () => true,
    () => false,
  );
}

/**
 * deleteManifest deletes a manifest not written since the cutoff and tagged by none of its
 * repository's tags, and resolves with it as stored (for a restore), or undefined if kept.
 */
async function deleteManifest(
  item: ManifestItem,
  run: GcRun,
  deps: SweepDeps,
): Promise<StoredManifest | undefined> {
  const digest = parseDigest(item.digest);
  if (!(await stillOld(deps.driver, item.key, run.cutoff))) return undefined;
  for (const tag of await listAll(deps.driver, Paths.tagsOfRoot(item.repo, digest))) {
    const b = await deps.driver.get(Paths.tag(item.repo, tag)).catch(() => undefined);
    if (b?.toString('utf8') === item.digest) return undefined; // tagged since the mark
  }
  const repo = deps.registry.repository(item.repo);
  let stored: StoredManifest;
  try {
    stored = await repo.get(digest);
  } catch {
    return undefined;
  }
  // Conditional and fenced (ADR 0016): a push of the manifest or a tag pointed at it
  // since the checks above makes the delete refuse instead of taking them with it.
  try {
    await repo.delete(digest, {
      unchangedSince: run.cutoff,
      protect: (tag) =>
        Errors.denied({ tag, reason: 'tagged' }, undefined, `manifest is tagged ${tag}`),
    });
  } catch (err) {
    if (isRegistryError(err) && ['DENIED', 'MANIFEST_UNKNOWN'].includes(err.code)) return undefined;
    throw err;
  }
  return stored;
}

// ---------------------------------------------------------------------------------------------
// 2. Pointers: links, then descriptors.

async function sweepPointers(run: GcRun, plan: Plan, deps: SweepDeps): Promise<void> {
  // Deferrals and the undo log are checkpointed before anything is deleted.
  const until = deps.clock.now() + deps.graceSeconds * 1000;
  for (const item of [...plan.links, ...plan.blobs])
    defer(run.state, uploadsOf(plan.pointers.get(item.key)), until);
  for (const item of plan.links) {
    const data = plan.pointers.get(item.key)!.data;
    run.undo.push({ key: item.key, repo: item.repo, digest: item.digest, data });
  }
  await run.checkpoint('links', true);
  const deletePointer = async (item: GcItem) => {
    if (!(await stillOld(deps.driver, item.key, run.cutoff))) return false;
    await deps.driver.delete(item.key);
    return true;
  };
  await phase(run, 'links', plan.links, deps.concurrency, deletePointer);
  await phase(run, 'blobs', plan.blobs, deps.concurrency, deletePointer);
}

// ---------------------------------------------------------------------------------------------
// 3. Settle, then restore anything a concurrent push came to need.

async function settle(run: GcRun, manifests: DeletedManifests, deps: SweepDeps): Promise<void> {
  const touched = new Set([
    ...run.report.deleted.filter((i) => i.kind === 'link').map((i) => i.repo),
    ...manifests.keys(),
  ]);
  if (touched.size > 0) {
    run.phase('recheck');
    await deps.sleep(deps.settleMillis);
    await run.guard();
    const repos: RepoSnapshot[] = [];
    for (const name of [...touched].sort()) repos.push(await deps.reread(name));
    await restoreNeeded(repos, run.undo, manifests, deps, (item) => run.restored(item));
  }
  run.undo = [];
  await run.checkpoint('uploads', true);
}

// ---------------------------------------------------------------------------------------------
// 4. Bytes: expired upload sessions, then unreferenced segments.

async function sweepBytes(run: GcRun, plan: Plan, deps: SweepDeps): Promise<void> {
  const { driver } = deps;
  const purge = async (item: UploadItem) => {
    const st = await driver.get(item.key).then(
      (b) => JSON.parse(b.toString('utf8')) as SessionFact,
      () => undefined,
    );
    if (st === undefined || st.startedAt + deps.uploadTtlSeconds * 1000 >= run.cutoff) return false;
    await driver.delete(item.key);
    return true;
  };
  await phase(run, 'uploads', plan.uploads, deps.concurrency, purge);
  const purged = new Set(run.report.deleted.filter((i) => i.kind === 'upload').map((i) => i.key));
  const unlink = async (item: SegmentItem) => {
    const id = Paths.segmentUpload(item.key);
    if (deferredAt(run.state.deferred, id, run.start)) return false;
    if (!purged.has(Paths.upload(id)) && (await ageOf(driver, Paths.upload(id))) !== undefined)
      return false;
    if (!(await stillOld(driver, item.key, run.cutoff))) return false;
    await driver.delete(item.key);
    return true;
  };
  await phase(run, 'segments', plan.segments, deps.concurrency, unlink);
}

/** abortStaleMultipart aborts multipart uploads older than any live session, where it can. */
async function abortStaleMultipart(run: GcRun, deps: SweepDeps): Promise<void> {
  const { driver } = deps;
  if (!driver.abortStaleMultipartUploads) return;
  await run.guard();
  run.report.multipartAborted = await driver.abortStaleMultipartUploads(
    new Date(run.cutoff - deps.uploadTtlSeconds * 1000),
  );
}
