import { Errors } from '../../errors.js';
import { MediaTypes } from '../../registry/manifest-parse.js';
import { parseDigest } from '../../registry/reference.js';
import type { Handler } from '../context.js';
import { linkHeader, pageSize, query } from '../params.js';
import { EXTENSION } from './events.js';
import { IMPORT_EXTENSION } from './import.js';
import { SEARCH_EXTENSION } from './search.js';
import { SYNC_EXTENSION } from './sync.js';

export const base: Handler = async (ctx) => {
  ctx.status = 200;
  ctx.body = {};
};

export const catalog: Handler = async (ctx, s) => {
  const { defaultListEntries, maxListEntries } = s.config.limits;
  const n = pageSize(ctx, defaultListEntries, maxListEntries);
  const visible = s.auth.canList(ctx.state.identity);
  const last = query(ctx, 'last');
  const page = await s.registry.catalog(
    last === undefined ? undefined : s.tokens.openCursor(last),
    n,
    visible,
  );
  if (page.next !== undefined) {
    // A scan that stopped at its limit names the last name it looked at, which the caller
    // may not see: never put such a name in a header.
    const next = visible(page.next) ? page.next : s.tokens.sealCursor(page.next);
    ctx.set('Link', linkHeader('/v2/_catalog', { n, last: next }));
  }
  ctx.body = { repositories: page.items };
};

export const listTags: Handler = async (ctx, s) => {
  const name = ctx.state.params.name!;
  const { defaultListEntries, maxListEntries } = s.config.limits;
  const n = pageSize(ctx, defaultListEntries, maxListEntries);
  const repo = s.registry.repository(name);
  if (!(await repo.exists())) throw Errors.nameUnknown({ name });
  const page = await repo.list(query(ctx, 'last'), n);
  if (page.next !== undefined)
    ctx.set('Link', linkHeader(`/v2/${name}/tags/list`, { n, last: page.next }));
  ctx.body = { name, tags: page.items };
};

export const listReferrers: Handler = async (ctx, s) => {
  const name = ctx.state.params.name!;
  const subject = parseDigest(ctx.state.params.digest!);
  const { maxListEntries } = s.config.limits;
  const n = Math.max(1, pageSize(ctx, maxListEntries, maxListEntries));
  const artifactType = query(ctx, 'artifactType');
  const last = query(ctx, 'last');
  if (last !== undefined) parseDigest(last);
  const page = await s.registry.repository(name).referrers(subject, artifactType, last, n);
  if (artifactType !== undefined) ctx.set('OCI-Filters-Applied', 'artifactType');
  if (page.next !== undefined) {
    const params: Record<string, string | number> = { n, last: page.next };
    if (artifactType !== undefined) params.artifactType = artifactType;
    ctx.set('Link', linkHeader(`/v2/${name}/referrers/${subject.value}`, params));
  }
  ctx.type = MediaTypes.ociIndex;
  ctx.body = Buffer.from(
    JSON.stringify({ schemaVersion: 2, mediaType: MediaTypes.ociIndex, manifests: page.items }),
  );
};

/**
 * discover lists the `_berth` extensions this server answers: events when they are on,
 * search, import unless the server is read-only, and sync when jobs are configured.
 */
export const discover: Handler = async (ctx, s) => {
  ctx.body = {
    extensions: [
      ...(s.events ? [EXTENSION] : []),
      SEARCH_EXTENSION,
      ...(s.config.readOnly ? [] : [IMPORT_EXTENSION]),
      ...(s.sync ? [SYNC_EXTENSION] : []),
    ],
  };
};
