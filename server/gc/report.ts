/** GcKind is the kind of object a run deletes. */
export type GcKind = 'tag' | 'manifest' | 'link' | 'blob' | 'upload' | 'segment';
/** GC_KINDS are the kinds in the order a run deletes them (and reports them). */
export const GC_KINDS: readonly GcKind[] = ['tag', 'manifest', 'link', 'blob', 'upload', 'segment'];

interface ItemBase {
  /** key is the storage key of the object. */
  key: string;
  /** bytes is the object's size when planned (segments carry the blob bytes). */
  bytes: number;
}

/** TagItem is a tag retention deletes. */
export interface TagItem extends ItemBase {
  kind: 'tag';
  repo: string;
  tag: string;
  /** digest is where the tag pointed when planned; it is deleted only while it still does. */
  digest: string;
  reason: 'retention';
}

/**
 * ManifestItem is a manifest retention deletes (`untagged`, `orphan-referrer`), or one it
 * deleted and a run put back because a manifest pushed meanwhile names it (`needed`).
 */
export interface ManifestItem extends ItemBase {
  kind: 'manifest';
  repo: string;
  digest: string;
  reason: 'untagged' | 'orphan-referrer' | 'needed';
}

/**
 * LinkItem is a repository's link to a blob that no surviving manifest of the repository
 * names (`unreferenced`), or one put back because a push came to need it (`needed`).
 */
export interface LinkItem extends ItemBase {
  kind: 'link';
  repo: string;
  digest: string;
  reason: 'unreferenced' | 'needed';
}

/** BlobItem is a global blob descriptor no surviving link or manifest names. */
export interface BlobItem extends ItemBase {
  kind: 'blob';
  digest: string;
  reason: 'unreferenced';
}

/** UploadItem is an upload session expired for longer than the grace window. */
export interface UploadItem extends ItemBase {
  kind: 'upload';
  reason: 'expired';
}

/** SegmentItem is stored bytes no session, descriptor or link names. */
export interface SegmentItem extends ItemBase {
  kind: 'segment';
  reason: 'unreferenced';
}

/** GcItem is one object a run deleted (or, in a dry run, would delete), by its `kind`. */
export type GcItem = TagItem | ManifestItem | LinkItem | BlobItem | UploadItem | SegmentItem;

/** RestoredItem is a deletion a run undid. */
export type RestoredItem = LinkItem | ManifestItem;

/** GcReport is the outcome of one run. */
export interface GcReport {
  runId: string;
  dryRun: boolean;
  /** resumedFrom is the id of an interrupted run this one finished. */
  resumedFrom?: string;
  startedAt: string;
  finishedAt: string;
  /** cutoff: nothing modified at or after it was a candidate (start minus the grace window). */
  cutoff: string;
  /** deleted lists what was deleted; in a dry run, what the real run would delete. */
  deleted: GcItem[];
  /** skipped are candidates the re-check right before deletion kept. */
  skipped: GcItem[];
  /** restored are deletions undone because a concurrent push came to need them. */
  restored: RestoredItem[];
  counts: Record<GcKind, number>;
  bytesFreed: number;
  /** multipartAborted counts unfinished backend multipart uploads aborted (S3). */
  multipartAborted: number;
}

/** GcStats are cumulative counters since the process started, for metrics. */
export interface GcStats {
  runs: number;
  dryRuns: number;
  failures: number;
  /** busy counts runs skipped because another replica held the lease. */
  busy: number;
  deleted: Record<GcKind, number>;
  skipped: number;
  restored: number;
  bytesFreed: number;
  running: boolean;
  phase?: string;
  lastRun?: {
    runId: string;
    dryRun: boolean;
    finishedAt: string;
    bytesFreed: number;
    deleted: number;
  };
}

/**
 * GcEvents are what a GarbageCollector emits, for metrics and events modules: `deleted` per
 * object actually deleted (never in a dry run), `skipped` when a re-check kept a candidate,
 * `restored` when a deletion was undone, and one `run-finished` or `run-failed` per run.
 */
export interface GcEvents {
  'run-started': [{ runId: string; dryRun: boolean; resumedFrom?: string }];
  phase: [{ runId: string; phase: string }];
  deleted: [GcItem];
  skipped: [GcItem];
  restored: [RestoredItem];
  'run-finished': [GcReport];
  'run-failed': [{ runId: string; error: Error }];
  busy: [{ holder?: string }];
}

/** emptyCounts is a count of zero for every kind. */
export const emptyCounts = (): Record<GcKind, number> =>
  Object.fromEntries(GC_KINDS.map((k) => [k, 0])) as Record<GcKind, number>;

/** emptyStats are the counters of a collector that has not run yet. */
export const emptyStats = (): GcStats => ({
  runs: 0,
  dryRuns: 0,
  failures: 0,
  busy: 0,
  deleted: emptyCounts(),
  skipped: 0,
  restored: 0,
  bytesFreed: 0,
  running: false,
});

/** byKey orders items by storage key. */
export const byKey = (a: { key: string }, b: { key: string }): number =>
  a.key < b.key ? -1 : a.key > b.key ? 1 : 0;

/** inPlanOrder orders items as a plan lists them: by kind in deletion order, then by key. */
export const inPlanOrder = (a: GcItem, b: GcItem): number =>
  GC_KINDS.indexOf(a.kind) - GC_KINDS.indexOf(b.kind) || byKey(a, b);
