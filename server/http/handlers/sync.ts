import { Errors } from '../../errors.js';
import { SyncJobUnknownError, type SyncService } from '../../sync/service.js';
import type { Ctx, Handler, Services } from '../context.js';

/** SYNC_EXTENSION is how the sync API is advertised at /v2/_oci/ext/discover (with jobs). */
export const SYNC_EXTENSION = {
  name: '_berth',
  url: 'https://berth.dev/docs/mirroring#scheduled-sync',
  description:
    'Scheduled sync jobs (admins): start a run of a job, read the last run of one or of every job.',
  endpoints: ['_berth/sync'],
};

/** admin throws 403 DENIED unless the caller is an admin, and 404 when no sync is configured. */
function syncOf(ctx: Ctx, s: Services): SyncService {
  if (!s.auth.isAdmin(ctx.state.identity))
    throw Errors.denied({ kind: 'sync' }, undefined, 'sync jobs are for admins');
  if (s.sync === undefined)
    throw Errors.notFound({ route: 'sync' }, undefined, 'no sync job is configured');
  return s.sync;
}

/** unknown turns SyncJobUnknownError into 404 NOT_FOUND naming the job. */
async function known<T>(job: string, f: () => T | Promise<T>): Promise<T> {
  try {
    return await f();
  } catch (err) {
    if (err instanceof SyncJobUnknownError)
      throw Errors.notFound({ job }, undefined, `no sync job is named ${JSON.stringify(job)}`);
    throw err;
  }
}

/**
 * listSync answers `GET /v2/_berth/sync` for an admin with every sync job's settings, the run
 * under way in this process and the last run recorded in storage.
 */
export const listSync: Handler = async (ctx, s) => {
  const sync = syncOf(ctx, s);
  ctx.set('Cache-Control', 'no-store');
  ctx.body = { jobs: await Promise.all(sync.names.map((n) => sync.status(n))) };
};

/** syncStatus answers `GET /v2/_berth/sync/<job>` for an admin: the job's status. */
export const syncStatus: Handler = async (ctx, s) => {
  const sync = syncOf(ctx, s);
  const job = ctx.state.params.job!;
  ctx.set('Cache-Control', 'no-store');
  ctx.body = await known(job, () => sync.status(job));
};

/**
 * startSync answers `POST /v2/_berth/sync/<job>` for an admin: it starts a run now (or joins
 * the one under way in this process) and answers 202 with its id and where to follow it. A
 * run another replica is doing ends at once as `busy`.
 */
export const startSync: Handler = async (ctx, s) => {
  const sync = syncOf(ctx, s);
  const job = ctx.state.params.job!;
  const { runId } = await known(job, () => sync.trigger(job, 'demand'));
  ctx.status = 202;
  ctx.set('Location', `/v2/_berth/sync/${job}`);
  ctx.set('Cache-Control', 'no-store');
  ctx.body = { job, runId };
};
