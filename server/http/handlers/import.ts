import { Errors } from '../../errors.js';
import { importArchive as runImport } from '../../import/import.js';
import { parseName, parseTag } from '../../registry/reference.js';
import type { Handler } from '../context.js';
import { requireNeeds } from '../middleware/auth.js';
import { contentLength, query } from '../params.js';

/** IMPORT_EXTENSION is how the import API is advertised at /v2/_oci/ext/discover. */
export const IMPORT_EXTENSION = {
  name: '_berth',
  url: 'https://berth.dev/docs/copy#server-side-import-post-v2berthimport',
  description:
    'Import an oci-archive, a docker-archive or a tar of an OCI layout (gzip optional) in one streamed POST, with push rights on every repository it writes.',
  endpoints: ['_berth/import'],
};

const push = (name: string) => ({ kind: 'repository' as const, name, action: 'push' as const });

/**
 * importArchive answers `POST /v2/_berth/import[?repository=<name>[&tag=<tag>]]`: the body is
 * an oci-archive, a docker-archive or a tar of an OCI layout, gzip optional, at most
 * `limits.importBytes`. It needs push on every repository the import writes (on
 * `repository` before the body is read). Answers 200 with the ImportResult JSON.
 */
export const importArchive: Handler = async (ctx, s) => {
  const repository = query(ctx, 'repository');
  const tag = query(ctx, 'tag');
  if (repository !== undefined) requireNeeds(ctx, s, [push(parseName(repository))]);
  if (tag !== undefined) parseTag(tag);
  const maxBytes = s.config.limits.importBytes;
  const declared = contentLength(ctx);
  try {
    if (declared !== undefined && declared > maxBytes)
      throw Errors.importTooLarge(
        { limit: maxBytes },
        undefined,
        `the import is above ${maxBytes} bytes`,
      );
    const result = await runImport(
      ctx.req,
      {
        repository,
        tag,
        maxBytes,
        manifestBytes: s.config.limits.manifestBytes,
        authorize: (names) => requireNeeds(ctx, s, names.map(push)),
        immutable: (name, t) => s.auth.policy.immutableTag(name, t),
      },
      { registry: s.registry, uploads: s.uploads, log: ctx.state.log },
    );
    ctx.set('Cache-Control', 'no-store');
    ctx.status = 200;
    ctx.body = result;
  } finally {
    // A refused import stops reading midway: the rest of the body is dropped so the client,
    // still sending, reads the answer. The import read through an async iterator, whose
    // 'readable' listener would keep resume() from flowing.
    if (!ctx.req.readableEnded) {
      ctx.req.removeAllListeners('readable');
      ctx.req.resume();
    }
  }
};
