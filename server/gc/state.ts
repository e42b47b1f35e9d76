import { isNotFound, type StorageDriver } from '../storage/driver.js';
import { Paths } from '../storage/paths.js';

/** UndoEntry is a link a run is deleting, kept until the run's post-check passed. */
export interface UndoEntry {
  key: string;
  repo: string;
  digest: string;
  /** data is the link as read, written back to restore it. */
  data: string;
}

/** RunCheckpoint is the run in progress as `gc/state` records it. */
export interface RunCheckpoint {
  id: string;
  holder: string;
  startedAt: number;
  /** phase is the step the run was in: `mark`, then a sweep phase (`tags` … `segments`). */
  phase: string;
  deleted: number;
  bytesFreed: number;
  undo: UndoEntry[];
}

/**
 * GcState is the `gc/state` object, written only by the lease holder. Its JSON is read by
 * every later version: fields are added, never renamed.
 */
export interface GcState {
  /** run is the run in progress (a crash leaves it for the next run to resume). */
  run?: RunCheckpoint;
  /** deferred maps upload ids to when their segments may go (their pointers were deleted). */
  deferred: Record<string, number>;
  last?: { id: string; finishedAt: number; deleted: number; bytesFreed: number };
}

/** loadState reads `gc/state`; an absent or unreadable object is an empty state. */
export async function loadState(driver: StorageDriver): Promise<GcState> {
  try {
    const s = JSON.parse((await driver.get(Paths.gcState())).toString('utf8')) as GcState;
    return { ...s, deferred: s.deferred ?? {} };
  } catch (err) {
    if (isNotFound(err) || err instanceof SyntaxError) return { deferred: {} };
    throw err;
  }
}

/** saveState writes `gc/state`; only the lease holder may call it. */
export async function saveState(driver: StorageDriver, state: GcState): Promise<void> {
  await driver.put(Paths.gcState(), JSON.stringify(state));
}

/** defer keeps the segments of `uploads` until at least `until` (ms). */
export function defer(state: GcState, uploads: Iterable<string>, until: number): void {
  for (const id of uploads) state.deferred[id] = Math.max(state.deferred[id] ?? 0, until);
}

/** deferredAt says whether the segments of `upload` must still stay at `at` (ms). */
export function deferredAt(
  deferred: Readonly<GcState['deferred']>,
  upload: string,
  at: number,
): boolean {
  return (deferred[upload] ?? 0) > at;
}

/** forgetDue drops the deferrals that ended by `now` (ms). */
export function forgetDue(state: GcState, now: number): void {
  for (const [id, until] of Object.entries(state.deferred))
    if (until <= now) delete state.deferred[id];
}
