import { Errors } from '../../errors.js';
import { repositoryUsage } from '../../gc/usage.js';
import type { GcItem, GcReport } from '../../gc/index.js';
import { parseName } from '../../registry/reference.js';
import type { Handler } from '../context.js';

/**
 * storage answers `GET /v2/_berth/storage/<name>` with the storage the repository uses
 * (`RepositoryUsage`: tags, manifests, linked blobs and their bytes). It needs pull on the
 * repository, as its tag list does; an unknown repository is 404 NAME_UNKNOWN.
 */
export const storage: Handler = async (ctx, s) => {
  const name = parseName(ctx.state.params.name!);
  if (!(await s.registry.hasRepository(name))) throw Errors.nameUnknown({ name });
  ctx.set('Cache-Control', 'no-store');
  ctx.body = await repositoryUsage(s.driver, name);
};

/** MAX_ITEMS is how many planned deletions the GC report lists (all are counted). */
export const MAX_ITEMS = 1000;

function summary(report: GcReport) {
  const items = (list: GcItem[]) => list.slice(0, MAX_ITEMS);
  return {
    runId: report.runId,
    dryRun: report.dryRun,
    startedAt: report.startedAt,
    finishedAt: report.finishedAt,
    cutoff: report.cutoff,
    counts: report.counts,
    bytesFreed: report.bytesFreed,
    deleted: items(report.deleted),
    truncated: report.deleted.length > MAX_ITEMS,
  };
}

/**
 * gcReport answers `GET /v2/_berth/gc` for an admin (`auth.admins`, or anyone with auth off)
 * with the garbage collection settings, the retention policies in effect and a fresh dry
 * run's report: what a real run would delete now. It deletes nothing. Anyone else is 403
 * DENIED (401 when not signed in, before this handler).
 */
export const gcReport: Handler = async (ctx, s) => {
  if (!s.auth.isAdmin(ctx.state.identity))
    throw Errors.denied({ kind: 'gc' }, undefined, 'the garbage collection report is for admins');
  if (s.gc === undefined) throw Errors.unsupported({ route: 'gc' });
  const { enabled, intervalSeconds, graceSeconds, dryRun, policies } = s.config.gc;
  const report = await s.gc.run({ dryRun: true });
  ctx.set('Cache-Control', 'no-store');
  ctx.body = {
    schedule: { enabled, intervalSeconds, graceSeconds, dryRun },
    policies,
    report: report && summary(report),
  };
};
