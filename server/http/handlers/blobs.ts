import { Errors } from '../../errors.js';
import type { BlobDescriptor } from '../../registry/blobs.js';
import type { ByteSource } from '../../storage/driver.js';
import { parseDigest, type Digest } from '../../registry/reference.js';
import type { Ctx, Handler } from '../context.js';

/**
 * parseByteRange reads a single `Range: bytes=…`; undefined means "serve it all". A last
 * position at or beyond the end, however large, means the end (RFC 9110 §14.1.2), so
 * `bytes=0-<huge>` is the whole blob; only a first position at or beyond it is unsatisfiable.
 */
export function parseByteRange(
  header: string,
  size: number,
): { start: number; end: number } | undefined | 'unsatisfiable' {
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return undefined;
  if (m[1] === '') {
    // A suffix longer than the blob (any number of digits) is the whole blob.
    const n = Number(m[2]);
    if (n === 0 || size === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - n), end: size - 1 };
  }
  const start = Number(m[1]);
  if (!Number.isSafeInteger(start) || start >= size) return 'unsatisfiable';
  // Number() of any digit string is finite or Infinity: either way min() clamps it.
  const end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (end < start) return 'unsatisfiable';
  return { start, end };
}

function blobHeaders(ctx: Ctx, digest: Digest, desc: BlobDescriptor): void {
  ctx.set('Docker-Content-Digest', digest.value);
  ctx.set('ETag', `"${digest.value}"`);
  ctx.set('Accept-Ranges', 'bytes');
  ctx.set('Cache-Control', 'max-age=31536000');
  ctx.type = 'application/octet-stream';
  ctx.length = desc.size;
}

export const headBlob: Handler = async (ctx, s) => {
  const digest = parseDigest(ctx.state.params.digest!);
  const desc = await s.registry.repository(ctx.state.params.name!).blobs.stat(digest);
  blobHeaders(ctx, digest, desc);
  ctx.status = 200;
};

export const getBlob: Handler = async (ctx, s) => {
  const digest = parseDigest(ctx.state.params.digest!);
  const blobs = s.registry.repository(ctx.state.params.name!).blobs;
  const desc = await blobs.stat(digest);
  if (ctx.get('if-none-match') === `"${digest.value}"`) {
    ctx.set('ETag', `"${digest.value}"`);
    ctx.status = 304;
    return;
  }
  const redirect = await blobs.redirectURL(desc);
  if (redirect !== undefined) {
    ctx.set('Docker-Content-Digest', digest.value);
    ctx.status = 307;
    ctx.set('Location', redirect);
    return;
  }
  const rangeHeader = ctx.get('range');
  const range = rangeHeader === '' ? undefined : parseByteRange(rangeHeader, desc.size);
  if (range === 'unsatisfiable') {
    throw Errors.rangeInvalid(
      { range: rangeHeader.slice(0, 100), size: desc.size },
      { 'Content-Range': `bytes */${desc.size}` },
      'requested range not satisfiable',
    );
  }
  blobHeaders(ctx, digest, desc);
  const start = range?.start ?? 0;
  const length = range === undefined ? desc.size : range.end - range.start + 1;
  if (range === undefined) {
    ctx.status = 200;
  } else {
    ctx.status = 206;
    ctx.set('Content-Range', `bytes ${range.start}-${range.end}/${desc.size}`);
  }
  const source = length > 0 ? await blobs.source(desc, start, length) : undefined;
  if (source) {
    relay(ctx, source);
    return;
  }
  const body = await blobs.open(desc, start, length);
  // A body that fails midway cuts the connection: never a short body on a kept-alive socket.
  body.once('error', () => ctx.res.destroy());
  ctx.body = body;
  ctx.length = length;
};

/**
 * relay sends a ByteSource as the body, past Koa's stream piping (ADR 0010). A failure
 * midway cuts the connection: the client sees a short body, never a complete wrong one.
 */
function relay(ctx: Ctx, source: ByteSource): void {
  ctx.length = source.length;
  ctx.respond = false;
  const res = ctx.res;
  const log = ctx.state.log;
  source.copyTo(res).then(
    () => res.end(),
    (err: unknown) => {
      if (!res.destroyed) log.warn({ err }, 'blob relay failed');
      res.destroy();
    },
  );
}

export const deleteBlob: Handler = async (ctx, s) => {
  const digest = parseDigest(ctx.state.params.digest!);
  await s.registry.repository(ctx.state.params.name!).blobs.delete(digest);
  ctx.status = 202;
  ctx.length = 0;
};
