import { Errors } from '../../errors.js';
import { parseReference, parseTag, type Digest } from '../../registry/reference.js';
import type { Repository, StoredManifest } from '../../registry/repository.js';
import type { Ctx, Handler } from '../context.js';
import { contentLength, queryAll } from '../params.js';

async function resolve(repo: Repository, ref: string): Promise<StoredManifest> {
  const r = parseReference(ref);
  const digest = r.kind === 'digest' ? r.digest : await repo.resolve(r.tag);
  return repo.get(digest);
}

function manifestHeaders(ctx: Ctx, m: StoredManifest): void {
  ctx.set('Docker-Content-Digest', m.digest.value);
  ctx.set('ETag', `"${m.digest.value}"`);
  ctx.set('Content-Type', m.mediaType);
  ctx.length = m.body.length;
}

export const headManifest: Handler = async (ctx, s) => {
  const m = await resolve(
    s.registry.repository(ctx.state.params.name!),
    ctx.state.params.reference!,
  );
  manifestHeaders(ctx, m);
  ctx.status = 200;
};

export const getManifest: Handler = async (ctx, s) => {
  const m = await resolve(
    s.registry.repository(ctx.state.params.name!),
    ctx.state.params.reference!,
  );
  if (ctx.get('if-none-match') === `"${m.digest.value}"`) {
    ctx.set('ETag', `"${m.digest.value}"`);
    ctx.status = 304;
    return;
  }
  ctx.status = 200;
  ctx.body = m.body;
  manifestHeaders(ctx, m);
};

/** readBody reads a request body of at most `limit` bytes, else 413. */
async function readBody(ctx: Ctx, limit: number): Promise<Buffer> {
  const declared = contentLength(ctx);
  const tooLarge = () =>
    Errors.manifestTooLarge(
      { limit },
      undefined,
      `manifest body exceeds the limit of ${limit} bytes`,
    );
  if (declared !== undefined && declared > limit) {
    ctx.req.resume();
    throw tooLarge();
  }
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const c of ctx.req) {
    total += (c as Buffer).length;
    if (total > limit) {
      ctx.req.resume();
      throw tooLarge();
    }
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks);
}

export const putManifest: Handler = async (ctx, s) => {
  const name = ctx.state.params.name!;
  const ref = parseReference(ctx.state.params.reference!);
  const extraTags = queryAll(ctx, 'tag').map(parseTag);
  if (extraTags.length > s.config.limits.maxTagsPerPush) {
    throw Errors.tooManyTags({ limit: s.config.limits.maxTagsPerPush, given: extraTags.length });
  }
  const body = await readBody(ctx, s.config.limits.manifestBytes);
  const repo = s.registry.repository(name);
  const expected: Digest | undefined = ref.kind === 'digest' ? ref.digest : undefined;
  const tags = [...new Set(ref.kind === 'tag' ? [ref.tag, ...extraTags] : extraTags)];
  const contentType = ctx.get('content-type') || undefined;
  const { digest, subject } = await repo.put(body, contentType, expected, tags);
  for (const tag of tags) await repo.tag(tag, digest);
  ctx.status = 201;
  ctx.set('Location', `/v2/${name}/manifests/${digest.value}`);
  ctx.set('Docker-Content-Digest', digest.value);
  if (subject) ctx.set('OCI-Subject', subject.value);
  if (extraTags.length > 0) ctx.set('OCI-Tag', [...new Set(extraTags)].join(', '));
  ctx.length = 0;
};

export const deleteManifest: Handler = async (ctx, s) => {
  const repo = s.registry.repository(ctx.state.params.name!);
  const ref = parseReference(ctx.state.params.reference!);
  if (ref.kind === 'tag') await repo.untag(ref.tag);
  else await repo.delete(ref.digest);
  ctx.status = 202;
  ctx.length = 0;
};
