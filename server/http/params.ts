import { Errors } from '../errors.js';
import type { Ctx } from './context.js';

/** query returns a single-valued query parameter. */
export function query(ctx: Ctx, key: string): string | undefined {
  const v = ctx.query[key];
  return Array.isArray(v) ? v[0] : v;
}

/** queryAll returns every value of a repeated query parameter. */
export function queryAll(ctx: Ctx, key: string): string[] {
  const v = ctx.query[key];
  return v === undefined ? [] : Array.isArray(v) ? v : [v];
}

/**
 * pageSize parses `n`: absent → `def`; not a non-negative integer → 400
 * PAGINATION_NUMBER_INVALID; above `max` → clamped to `max` (bounded work per request).
 */
export function pageSize(ctx: Ctx, def: number, max: number): number {
  const raw = query(ctx, 'n');
  if (raw === undefined || raw === '') return Math.min(def, max);
  if (!/^[0-9]{1,12}$/.test(raw)) throw Errors.paginationInvalid({ n: raw.slice(0, 50) });
  return Math.min(Number(raw), max);
}

/**
 * contentLength returns the request body's length: Content-Length, 0 when the request
 * has neither Content-Length nor Transfer-Encoding (no body, RFC 9112 §6.3), or
 * undefined for a chunked body of unknown length.
 */
export function contentLength(ctx: Ctx): number | undefined {
  const raw = ctx.get('content-length');
  if (raw === '') return ctx.get('transfer-encoding') === '' ? 0 : undefined;
  if (!/^[0-9]{1,15}$/.test(raw)) throw Errors.sizeInvalid({ contentLength: raw.slice(0, 50) });
  return Number(raw);
}

/** contentRange parses an upload chunk's `Content-Range: <start>-<end>` (inclusive). */
export function contentRange(ctx: Ctx): { start: number; end: number } | undefined {
  const raw = ctx.get('content-range');
  if (raw === '') return undefined;
  const m = /^(?:bytes[ =])?([0-9]{1,15})-([0-9]{1,15})(?:\/(?:[0-9]+|\*))?$/.exec(raw.trim());
  if (!m)
    throw Errors.chunkInvalid(
      { contentRange: raw.slice(0, 80) },
      undefined,
      'malformed Content-Range',
    );
  const start = Number(m[1]);
  const end = Number(m[2]);
  if (end < start)
    throw Errors.chunkInvalid({ contentRange: raw }, undefined, 'Content-Range end before start');
  return { start, end };
}

/** linkHeader builds an RFC 5988 `Link: <url>; rel="next"` value. */
export function linkHeader(path: string, params: Record<string, string | number>): string {
  const qs = new URLSearchParams(
    Object.entries(params).map(([k, v]): [string, string] => [k, String(v)]),
  ).toString();
  return `<${path}?${qs}>; rel="next"`;
}
