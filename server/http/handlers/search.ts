import { Errors } from '../../errors.js';
import type { Handler } from '../context.js';
import { linkHeader, pageSize, query } from '../params.js';

/** SEARCH_EXTENSION is how the search API is advertised at /v2/_oci/ext/discover. */
export const SEARCH_EXTENSION = {
  name: '_berth',
  url: 'https://berth.dev/docs/search',
  description:
    'Search repositories by name, tag and annotations (title, description, source), filtered by what the caller may pull.',
  endpoints: ['_berth/search'],
};

/** MAX_TERM is the longest search term accepted, in characters. */
export const MAX_TERM = 256;

function term(raw: string | undefined): string {
  if (raw === undefined || raw.trim() === '') {
    throw Errors.badRequest({ q: raw ?? null }, undefined, 'the search term q is missing or empty');
  }
  if (raw.length > MAX_TERM) {
    throw Errors.badRequest(
      { q: raw.slice(0, 50), length: raw.length },
      undefined,
      `the search term q is longer than ${MAX_TERM} characters`,
    );
  }
  return raw.trim();
}

/**
 * search answers `GET /v2/_berth/search?q=<term>&n=<n>&last=<repository>` with
 * `{"results":[{repository, tags, matched, title?, description?, source?}]}`: repositories
 * whose name, tags or annotations contain `q` (any case), in name order, only those the
 * caller may pull; a `Link: rel="next"` header is set when more may follow. A `last` the
 * caller may not see travels sealed, as the catalog's does.
 */
export const search: Handler = async (ctx, s) => {
  const q = term(query(ctx, 'q'));
  const { defaultListEntries, maxListEntries } = s.config.limits;
  const n = pageSize(ctx, defaultListEntries, maxListEntries);
  if (n === 0) throw Errors.paginationInvalid({ n: 0 }, undefined, 'n must be a positive integer');
  const visible = s.auth.canList(ctx.state.identity);
  const last = query(ctx, 'last');
  const page = await s.search.search({
    term: q,
    n,
    last: last === undefined || last === '' ? undefined : s.tokens.openCursor(last),
    visible,
  });
  if (page.next !== undefined) {
    const next = visible(page.next) ? page.next : s.tokens.sealCursor(page.next);
    ctx.set('Link', linkHeader('/v2/_berth/search', { q, n, last: next }));
  }
  ctx.body = { results: page.results };
};
