import type { Segment } from './blobs.js';
import type { Algorithm } from './reference.js';

/**
 * SessionBytes is what every phase of an upload session knows of its bytes: the segments
 * holding its first `offset` bytes, in order, and a hash state covering them.
 */
export interface SessionBytes {
  id: string;
  repo: string;
  algorithm: Algorithm;
  offset: number;
  segments: Segment[];
  /** hash is a resumable hash state covering the first `offset` bytes. */
  hash?: { offset: number; state: string };
  /** native is the final native digest of the first `offset` bytes (single stream). */
  native?: { offset: number; hex: string };
  startedAt: number;
}

/** OneShot is a one-request upload (`POST ?digest=`): no Location names it, nothing is stored. */
export interface OneShot extends SessionBytes {
  phase: 'oneshot';
}

/**
 * Presumed is a session its Location's token names at offset 0, storage not asked yet: what
 * storage holds of it is asked while its closing request's bytes stream in.
 */
export interface Presumed extends SessionBytes {
  phase: 'presumed';
}

/** Open is a session a Location names and storage holds no record of (its POST wrote nothing). */
export interface Open extends SessionBytes {
  phase: 'open';
}

/**
 * Saved is a live session whose record storage holds. `version` is the storage version of
 * the record it was read from (never saved): the `expected` of the compare-and-set that
 * replaces it; undefined for a record this process wrote itself (`putIfVersion` does not
 * return one), which is then read back and compared by value.
 */
export interface Saved extends SessionBytes {
  phase: 'saved';
  version?: string;
}

/** Claim is the digest a commit claimed a session as, and when (absent in older records). */
export interface Claim {
  digest: string;
  at?: number;
}

/**
 * Committed is the record of a session a commit claimed, saved before any descriptor may
 * name its bytes: the purger checks descriptors before discarding them.
 */
export interface Committed extends SessionBytes {
  phase: 'committed';
  claim: Claim;
  version?: string;
}

/**
 * Cancelled is the record a cancelled or expired session leaves (a tombstone): its Location
 * is unknown from then on. It keeps the claim of a committed session the purge ended.
 */
export interface Cancelled extends SessionBytes {
  phase: 'cancelled';
  claim?: Claim;
  version?: string;
}

/** UploadSession is a session a request may still add to or complete. */
export type UploadSession = OneShot | Presumed | Open | Saved;

/** LiveSession is a session its Location names, as storage holds it: one a request may append to or cancel. */
export type LiveSession = Open | Saved;

/** UploadRecord is what storage may hold at `uploads/<id>`. */
export type UploadRecord = Saved | Committed | Cancelled;

/** UploadState is every phase of an upload session. */
export type UploadState = UploadSession | Committed | Cancelled;

/** bytesOf is the session's bytes, without its phase. */
export function bytesOf(s: SessionBytes): SessionBytes {
  const b: SessionBytes = {
    id: s.id,
    repo: s.repo,
    algorithm: s.algorithm,
    offset: s.offset,
    segments: s.segments,
    startedAt: s.startedAt,
  };
  if (s.hash !== undefined) b.hash = s.hash;
  if (s.native !== undefined) b.native = s.native;
  return b;
}

/** expired: the session started more than `ttlSeconds` before `now`. */
export function expired(s: SessionBytes, now: number, ttlSeconds: number): boolean {
  return now - s.startedAt > ttlSeconds * 1000;
}

/** saved is the record a session holding `bytes` is saved as. */
export function saved(bytes: SessionBytes): Saved {
  return { ...bytesOf(bytes), phase: 'saved' };
}

/** claimed is the record a commit saves before linking `bytes` as `digest`. */
export function claimed(bytes: SessionBytes, digest: string, at: number): Committed {
  return { ...bytesOf(bytes), phase: 'committed', claim: { digest, at } };
}

/** cancelled is the tombstone of a session: a committed one's keeps its claim. */
export function cancelled(s: SessionBytes | Committed): Cancelled {
  const t: Cancelled = { ...bytesOf(s), phase: 'cancelled' };
  if ('phase' in s && s.phase === 'committed') t.claim = s.claim;
  return t;
}

/**
 * LegacyRecord is the JSON every version of Berth keeps at `uploads/<id>` (ADR 0002, 0017):
 * the session's bytes with flags for the phase. It stays the format written, so replicas of
 * an older version read the records of a newer one during a rolling upgrade.
 */
interface LegacyRecord extends SessionBytes {
  committed?: string;
  committedAt?: number;
  cancelled?: true;
}

/**
 * encodeRecord is the JSON storage keeps of a record. Equal records encode to equal strings
 * (a write finding its own record after a lost answer compares them).
 */
export function encodeRecord(r: UploadRecord): string {
  const out: LegacyRecord = bytesOf(r);
  if (r.phase !== 'saved' && r.claim !== undefined) {
    out.committed = r.claim.digest;
    if (r.claim.at !== undefined) out.committedAt = r.claim.at;
  }
  if (r.phase === 'cancelled') out.cancelled = true;
  return JSON.stringify(out);
}

/**
 * decodeRecord maps a stored record, as any version wrote it, to its phase: `cancelled`
 * is a tombstone (keeping a `committed` claim), `committed` a claim, anything else a live
 * session. Fields only a process knew (`ephemeral`, `located`, `version`) are ignored.
 */
export function decodeRecord(data: Buffer | string, version?: string): UploadRecord {
  const raw = JSON.parse(typeof data === 'string' ? data : data.toString('utf8')) as LegacyRecord;
  const bytes = bytesOf(raw);
  const claim: Claim | undefined =
    raw.committed === undefined
      ? undefined
      : raw.committedAt === undefined
        ? { digest: raw.committed }
        : { digest: raw.committed, at: raw.committedAt };
  const v = version === undefined ? {} : { version };
  if (raw.cancelled === true)
    return { ...bytes, phase: 'cancelled', ...(claim && { claim }), ...v };
  if (claim !== undefined) return { ...bytes, phase: 'committed', claim, ...v };
  return { ...bytes, phase: 'saved', ...v };
}
