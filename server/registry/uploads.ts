import { systemClock, type Clock } from '../util/clock.js';
import { randomBytes, randomUUID } from 'node:crypto';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Errors, type RegistryError } from '../errors.js';
import { freshOf } from '../storage/cache.js';
import { isNotFound, listAll, type StorageDriver, type Versioned } from '../storage/driver.js';
import { Paths } from '../storage/paths.js';
import type { Logger } from '../util/log.js';
import { currentScope } from '../util/scope.js';
import {
  concatSegments,
  decodeDescriptor,
  type BlobDescriptor,
  type BlobLinker,
  type Segment,
} from './blobs.js';
import { nativeHasher, resumableHasher, type Hasher } from './hash.js';
import type { Algorithm, Digest } from './reference.js';
import type { UploadToken } from './token.js';

/**
 * COMMIT_GRACE_MS is how long after its claim a commit may still be linking: the purge
 * leaves a `committed` record younger than this alone, whatever the session's age.
 */
const COMMIT_GRACE_MS = 5 * 60 * 1000;
/** CANCEL_ATTEMPTS bounds a cancel's retries against a session that keeps growing. */
const CANCEL_ATTEMPTS = 8;

/**
 * UploadState is everything about an upload session, kept in storage (never only in a
 * process) so any replica can continue it. It is rewritten whole after each request
 * that adds bytes, always by a compare-and-set against the record the request read, so of
 * two requests that read the same record only one may change it; the segments it lists
 * are complete objects.
 */
export interface UploadState {
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
  /**
   * committed is the digest a commit claimed the session as, saved before any descriptor
   * may name its bytes: the purger checks descriptors before discarding them.
   */
  committed?: string;
  /** committedAt is when the claim was saved (absent in records of older versions). */
  committedAt?: number;
  /** cancelled marks the record a cancelled session leaves (a tombstone). */
  cancelled?: true;
  /**
   * ephemeral: a session not written to storage: a one-request upload, or one whose POST
   * wrote nothing and which its signed Location names until its first bytes are saved.
   */
  ephemeral?: true;
  /** located: a Location names the session, so ending it must leave a record. */
  located?: true;
  /**
   * version is the storage version of the record this state was read from (never saved):
   * the `expected` of the compare-and-set that replaces it.
   */
  version?: string;
}

export interface AppendOptions {
  /** rangeStart is the start of the request's Content-Range, if it sent one. */
  rangeStart?: number;
  /** rangeEnd is the inclusive end of the request's Content-Range, if it sent one. */
  rangeEnd?: number;
  /** contentLength is the request's Content-Length, if known. */
  contentLength?: number;
  /**
   * persist: false skips saving the grown session, for a request that commits it next
   * (a failed commit then leaves the session at its old offset, ready for a retry).
   */
  persist?: boolean;
  /**
   * claim is the digest the same request commits the upload as: written into the new
   * segment's name, it stands for the claim {@link Uploads.commit} would otherwise save.
   */
  claim?: Digest;
}

export interface UploadsOptions {
  ttlSeconds: number;
  /** clock reads when sessions start, commit and expire (default systemClock). */
  clock?: Clock;
  log: Logger;
  /** abortStale aborts backend multipart uploads older than a date (S3). */
  abortStale?: (olderThan: Date) => Promise<number>;
  /** mintId names new sessions (Tokens.mintId); a random UUID without it. */
  mintId?: (repo: string, startedAt: number, algorithm: Algorithm) => string;
}

/**
 * Uploads manages blob upload sessions: start, append chunks, commit with digest
 * verification, cancel, and the purge of expired sessions. Appends must arrive in
 * order (Content-Range start equal to the current offset), else RANGE_INVALID (416).
 */
export class Uploads {
  private readonly clock: Clock;

  constructor(
    private readonly driver: StorageDriver,
    private readonly opts: UploadsOptions,
  ) {
    this.clock = opts.clock ?? systemClock;
  }

  /**
   * start opens a session. With `persist: false` (a monolithic upload that starts and
   * finishes in one request) nothing is written until its bytes are: a crash leaves only
   * segments no session names, which garbage collection reclaims.
   */
  async start(
    repo: string,
    algorithm: Algorithm = 'sha256',
    opts: { persist?: boolean; located?: boolean } = {},
  ): Promise<UploadState> {
    const startedAt = this.clock.now();
    const state: UploadState = {
      id: this.opts.mintId?.(repo, startedAt, algorithm) ?? randomUUID(),
      repo,
      algorithm,
      offset: 0,
      segments: [],
      startedAt,
    };
    if (opts.persist === false) {
      state.ephemeral = true;
      if (opts.located) state.located = true;
    } else if (
      !(await this.driver.putIfVersion(Paths.upload(state.id), this.record(state), null))
    ) {
      throw new Error(`upload id ${state.id} is taken`);
    }
    return state;
  }

  /**
   * get loads a live session of `repo`; throws BLOB_UPLOAD_UNKNOWN otherwise. A session
   * never saved is known from `token` (its signed Location, at offset 0): with `confirm`,
   * one listing makes sure no request completed it already.
   */
  async get(
    repo: string,
    id: string,
    token?: UploadToken,
    opts: { confirm?: boolean } = {},
  ): Promise<UploadState> {
    if (!/^[0-9a-f-]{36}$/.test(id)) throw Errors.blobUploadUnknown({ id: id.slice(0, 100) });
    const state = await this.read(id);
    if (state === undefined) {
      if (token === undefined || token.offset !== 0) throw Errors.blobUploadUnknown({ id });
      const fresh = this.unsaved(repo, id, token);
      if (opts.confirm && (await this.completed(fresh))) throw Errors.blobUploadUnknown({ id });
      return fresh;
    }
    if (state.repo !== repo || this.ended(state)) throw Errors.blobUploadUnknown({ id });
    if (this.expired(state)) {
      // Only a tombstone that won against the record read here discards: a commit that
      // read it just before the session expired may be claiming it right now.
      await this.swap(state, { ...state, cancelled: true })
        .then(async (r) => {
          if (!r.won) return;
          await this.discard(state);
          await this.driver.delete(Paths.upload(id));
        })
        .catch(() => undefined);
      throw Errors.blobUploadUnknown({ id }, undefined, 'blob upload expired');
    }
    return state;
  }

  /**
   * unsaved is the session a token at offset 0 names when storage holds no record of it
   * (its POST wrote nothing): not yet checked against storage (see `get`).
   */
  unsaved(repo: string, id: string, token: UploadToken): UploadState {
    const state: UploadState = {
      id,
      repo,
      algorithm: token.algorithm ?? 'sha256',
      offset: 0,
      segments: [],
      startedAt: token.startedAt,
      ephemeral: true,
      located: true,
    };
    if (token.name !== repo || token.id !== id || token.offset !== 0)
      throw Errors.blobUploadUnknown({ id });
    if (this.expired(state))
      throw Errors.blobUploadUnknown({ id }, undefined, 'blob upload expired');
    return state;
  }

  /** completed: a request already committed this never-saved session (its claimed bytes). */
  private async completed(state: UploadState): Promise<boolean> {
    const names = await listAll(this.driver, Paths.segmentsOf(state.id));
    return names.some((n) => Paths.segmentClaim(n) !== undefined);
  }

  private expired(state: UploadState): boolean {
    return this.clock.now() - state.startedAt > this.opts.ttlSeconds * 1000;
  }

  /** ended: the record is a commit's claim or a tombstone; the session answers no more. */
  private ended(state: UploadState): boolean {
    return state.committed !== undefined || state.cancelled === true;
  }

  /** read is the session's record as storage holds it now, with its version; undefined when absent. */
  private async read(id: string): Promise<UploadState | undefined> {
    let v: Versioned;
    try {
      v = await this.driver.getVersioned(Paths.upload(id));
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
    return { ...(JSON.parse(v.data.toString('utf8')) as UploadState), version: v.version };
  }

  /** record is the JSON storage keeps of a state: without what only a process knows. */
  private record(state: UploadState): string {
    const record: UploadState = { ...state };
    delete record.ephemeral;
    delete record.located;
    delete record.version;
    return JSON.stringify(record);
  }

  /**
   * expected is the version storage must still hold for `state` to be replaced: the one it
   * was read at, none (null) for a session never saved. A state this process saved itself
   * has no version (`putIfVersion` does not return one): its record is read back and
   * compared by value; undefined when it changed.
   */
  private async expected(state: UploadState): Promise<string | null | undefined> {
    if (state.version !== undefined) return state.version;
    if (state.ephemeral) return null;
    const now = await this.read(state.id);
    return now !== undefined && this.record(now) === this.record(state) ? now.version : undefined;
  }

  /**
   * swap stores `next` as the session's record if storage still holds what `state` was
   * read as: one compare-and-set. `won` false comes with the record storage holds instead
   * (`now`, undefined when there is none). With `sameIsMine`, storage holding exactly
   * `next` counts as won: a write whose answer was lost and retried finds its own record
   * (or an identical one, for writes where that changes nothing: tombstones, and chunks,
   * whose segment names are unique).
   */
  private async swap(
    state: UploadState,
    next: UploadState,
    sameIsMine = true,
  ): Promise<{ won: boolean; now?: UploadState }> {
    const data = this.record(next);
    const expected = await this.expected(state);
    if (
      expected !== undefined &&
      (await this.driver.putIfVersion(Paths.upload(state.id), data, expected))
    )
      return { won: true };
    const now = await this.read(state.id);
    if (sameIsMine && now !== undefined && this.record(now) === data) return { won: true };
    return { won: false, now };
  }

  /**
   * lostTo is the error of a request whose compare-and-set lost to `now`: the session ended
   * (committed, cancelled, gone): BLOB_UPLOAD_UNKNOWN; it grew through another request:
   * 416, so the client asks where it is.
   */
  private lostTo(id: string, now: UploadState | undefined): RegistryError {
    if (now === undefined || this.ended(now)) return Errors.blobUploadUnknown({ id });
    return Errors.chunkInvalid(
      { offset: now.offset },
      undefined,
      `the upload moved on to offset ${now.offset} through another request`,
    );
  }

  /**
   * append streams `body` into a new segment at the session's offset and records it.
   * A body that fails midway adds nothing: the session stays at its old offset.
   */
  async append(state: UploadState, body: Readable, opts: AppendOptions = {}): Promise<UploadState> {
    if (opts.rangeStart !== undefined && opts.rangeStart !== state.offset) {
      throw Errors.chunkInvalid(
        { offset: state.offset, start: opts.rangeStart },
        undefined,
        `chunk starts at ${opts.rangeStart} but the upload is at offset ${state.offset}`,
      );
    }
    if (
      opts.rangeStart !== undefined &&
      opts.rangeEnd !== undefined &&
      opts.contentLength !== undefined
    ) {
      if (opts.rangeEnd - opts.rangeStart + 1 !== opts.contentLength) {
        throw Errors.chunkInvalid(
          {
            contentRange: `${opts.rangeStart}-${opts.rangeEnd}`,
            contentLength: opts.contentLength,
          },
          undefined,
          'Content-Range does not match Content-Length',
        );
      }
    }
    if (opts.contentLength === 0) {
      body.resume();
      return state;
    }
    const key = Paths.segment(state.id, state.offset, randomBytes(4).toString('hex'), opts.claim);
    let seen = 0;
    // The hasher is made on the first byte: a body that turns out empty (a chunked
    // request with nothing in it) must not cost a re-hash of what is stored.
    let hasher: Hasher | undefined;
    const streamed = opts.rangeStart === undefined;
    const tap = new Transform({
      transform: (chunk: Buffer, _enc, cb) => {
        const feed = (h: Hasher) => {
          seen += chunk.length;
          h.update(chunk);
          cb(null, chunk);
        };
        if (hasher) return feed(hasher);
        this.hasherFor(state, streamed).then((h) => {
          hasher = h;
          feed(h);
        }, cb);
      },
    });
    const writing = this.driver.writeStream(key, tap, opts.contentLength);
    try {
      await Promise.all([pipeline(body, tap), writing]);
    } catch (err) {
      await writing.catch(() => undefined);
      await this.driver.delete(key).catch(() => undefined);
      // Re-hashing found the session's bytes gone: a cancel or the purge ended it.
      if (isNotFound(err)) throw Errors.blobUploadUnknown({ id: state.id });
      throw err;
    }
    if (opts.contentLength !== undefined && seen !== opts.contentLength) {
      await this.driver.delete(key);
      throw Errors.sizeInvalid({ expected: opts.contentLength, received: seen });
    }
    if (seen === 0 || hasher === undefined) {
      await this.driver.delete(key);
      return state;
    }
    const offset = state.offset + seen;
    const next: UploadState = {
      ...state,
      offset,
      segments: [...state.segments, { key, size: seen }],
    };
    delete next.hash;
    delete next.native;
    if (hasher.resumable) next.hash = { offset, state: hasher.save()! };
    else next.native = { offset, hex: hasher.digestHex() };
    if (opts.persist !== false) {
      // Of two requests at one offset only one is recorded; the other's bytes go. (A
      // storage error leaves the segment: the record naming it may have been written.)
      const saved = await this.swap(state, next);
      if (!saved.won) {
        await this.driver.delete(key).catch(() => undefined);
        throw this.lostTo(state.id, saved.now);
      }
      delete next.ephemeral;
      delete next.located;
      delete next.version;
    } else if (!state.ephemeral && state.version === undefined) {
      // Grown past what this process saved: the record it stands on is resolved now.
      const expected = await this.expected(state);
      if (expected !== null) next.version = expected;
    }
    return next;
  }

  /**
   * hasherFor picks the cheapest hasher that keeps the digest exact: native for a
   * streamed first request, resumable for chunks; an upload whose saved state does not
   * cover its bytes (a streamed first request followed by more chunks) is re-hashed
   * once from storage, and resumable from then on.
   */
  private async hasherFor(state: UploadState, streamed: boolean): Promise<Hasher> {
    if (state.offset === 0) {
      return streamed ? nativeHasher(state.algorithm) : resumableHasher(state.algorithm);
    }
    if (state.hash?.offset === state.offset)
      return resumableHasher(state.algorithm, state.hash.state);
    const h = await resumableHasher(state.algorithm);
    await this.rehash(state, h);
    return h;
  }

  private async rehash(state: UploadState, h: Hasher): Promise<void> {
    const src = concatSegments(this.driver, state.segments, 0, state.offset);
    for await (const c of src) h.update(c as Buffer);
  }

  /** digestHex computes the digest of the session's bytes with `algorithm`. */
  private async digestHex(state: UploadState, algorithm: Algorithm): Promise<string> {
    if (algorithm === state.algorithm) {
      if (state.native?.offset === state.offset) return state.native.hex;
      if (state.hash?.offset === state.offset) {
        return (await resumableHasher(algorithm, state.hash.state)).digestHex();
      }
    }
    const h = nativeHasher(algorithm);
    await this.rehash(state, h);
    return h.digestHex();
  }

  /**
   * commit verifies the bytes against `digest` and links the blob into the repository.
   * A session with a stored record is claimed first (a compare-and-set to `committed`),
   * before any descriptor may name its bytes: of a commit and a concurrent cancel, chunk or
   * purge of the same record exactly one wins. A commit that lost discards only the bytes
   * its own request brought and throws BLOB_UPLOAD_UNKNOWN when the session ended, 416 when
   * it grew; one whose stored bytes are gone (cancelled under it) throws
   * BLOB_UPLOAD_UNKNOWN. On a mismatch the session is cancelled (when that loses to another
   * request, only this request's bytes go) and DIGEST_INVALID is thrown. Writes no blob
   * byte again: only descriptors.
   */
  async commit(state: UploadState, digest: Digest, linker: BlobLinker): Promise<BlobDescriptor> {
    let hex: string;
    try {
      hex = await this.digestHex(state, digest.algorithm);
    } catch (err) {
      if (!isNotFound(err)) throw err;
      const now = state.ephemeral ? undefined : await this.read(state.id);
      await this.discardOwn(state, digest, now);
      throw Errors.blobUploadUnknown({ id: state.id });
    }
    // A session a Location names leaves a tombstone; a one-request upload has nothing stored.
    const recorded = !state.ephemeral || state.located === true;
    if (hex !== digest.hex) {
      const cancelled = recorded
        ? await this.swap(state, { ...state, cancelled: true })
        : undefined;
      if (cancelled?.won) await this.discard(state);
      else await this.discardOwn(state, digest, cancelled?.now);
      throw Errors.digestInvalid({
        expected: digest.value,
        computed: `${digest.algorithm}:${hex}`,
      });
    }
    // The purger must not discard bytes a descriptor may name from here on. A session
    // never saved whose last bytes came with this request has the claim in their segment's
    // name (and nothing stored for a cancel to race); any other session with a Location
    // claims its record.
    const claimed = state.segments.some((s) => Paths.segmentClaim(s.key) === digest.value);
    const claiming = !state.ephemeral || (state.located === true && !claimed);
    if (claiming) {
      // Two commits of one record as one digest in the same millisecond save the same
      // claim: only the one whose write landed has won. (One whose answer was lost answers
      // 404 and leaves its claim to the purger: the client pushes again.)
      const claim = await this.swap(
        state,
        { ...state, committed: digest.value, committedAt: this.clock.now() },
        false,
      );
      if (!claim.won) {
        await this.discardOwn(state, digest, claim.now);
        throw this.lostTo(state.id, claim.now);
      }
    }
    const ours: BlobDescriptor = {
      digest: digest.value,
      size: state.offset,
      segments: state.segments,
    };
    // The first upload of these bytes names them in the global index while this
    // repository is linked to them. A later upload finds the index taken: the repository
    // is linked again, to the indexed bytes (read from storage itself, never a cache), and
    // its own are dropped.
    let desc = ours;
    const [indexed] = await Promise.all([
      this.driver.putIfAbsent(Paths.blob(digest), JSON.stringify(ours)),
      linker.link(ours, digest),
    ]);
    if (!indexed) {
      try {
        desc = decodeDescriptor(await freshOf(this.driver).get(Paths.blob(digest)));
        // An index whose bytes are gone (lost to a race, a bug or an operator) is replaced
        // by ours instead of taking this repository down with it.
        if (!(await this.whole(desc))) {
          this.opts.log.warn({ digest: digest.value }, 'blob index names missing bytes: replaced');
          await this.driver.put(Paths.blob(digest), JSON.stringify(ours));
          desc = ours;
        }
      } catch (err) {
        if (!isNotFound(err)) throw err;
        // Collected in between: ours becomes the descriptor.
        await this.driver.put(Paths.blob(digest), JSON.stringify(ours));
      }
      if (desc !== ours) await linker.link(desc, digest, { again: true });
    }
    // The session record goes before the response, alongside the events outbox write;
    // should that fail, the purger removes it (its claim finds this blob). A session never
    // saved keeps its claim, if it made one, as the record that its Location ended; the
    // purger removes it once the Location has expired.
    if (!state.ephemeral) {
      const ending = () =>
        this.driver
          .delete(Paths.upload(state.id))
          .catch((err: unknown) =>
            this.opts.log.warn({ err, id: state.id }, 'upload end not recorded'),
          );
      const scope = currentScope();
      if (scope) scope.deferred.push(ending);
      else await ending();
    }
    if (desc !== ours) {
      // Never the bytes the index was just found naming (an upload racing itself).
      const indexed = new Set(desc.segments.map((s) => s.key));
      await this.discard({ ...state, segments: state.segments.filter((s) => !indexed.has(s.key)) });
    }
    this.opts.log.debug(
      { repo: state.repo, digest: digest.value, size: state.offset },
      'blob committed',
    );
    return desc;
  }

  /**
   * discardOwn drops the bytes a closing request brought: the segments claimed as `digest`
   * in their names that the stored record (`now`) does not list. The others are the
   * session's, which its new owner (a cancel, a chunk, another commit) decides about.
   */
  private async discardOwn(
    state: UploadState,
    digest: Digest,
    now: UploadState | undefined,
  ): Promise<void> {
    const listed = new Set((now?.segments ?? []).map((s) => s.key));
    await this.discard({
      ...state,
      segments: state.segments.filter(
        (s) => Paths.segmentClaim(s.key) === digest.value && !listed.has(s.key),
      ),
    });
  }

  /** whole reports whether every segment a descriptor names is in storage (asked of storage). */
  private async whole(desc: BlobDescriptor): Promise<boolean> {
    const fresh = freshOf(this.driver);
    for (let i = 0; i < desc.segments.length; i += 16) {
      const found = await Promise.all(
        desc.segments.slice(i, i + 16).map((s) =>
          fresh.stat(s.key).then(
            () => true,
            (err: unknown) => {
              if (isNotFound(err)) return false;
              throw err;
            },
          ),
        ),
      );
      if (found.includes(false)) return false;
    }
    return true;
  }

  /**
   * cancel leaves a tombstone record, so the session's Location is unknown from now on
   * (the purger removes the record after the TTL, when the Location has expired too), and
   * only then discards its bytes. The tombstone is a compare-and-set: a session that grew
   * meanwhile is cancelled as it is now; one that a commit claimed, another cancel ended or
   * the purge removed is not touched and BLOB_UPLOAD_UNKNOWN is thrown.
   */
  async cancel(state: UploadState): Promise<void> {
    if (state.ephemeral && !state.located) return this.discard(state);
    for (let attempt = 1; ; attempt++) {
      const r = await this.swap(state, { ...state, cancelled: true });
      if (r.won) break;
      if (r.now === undefined || this.ended(r.now) || attempt === CANCEL_ATTEMPTS)
        throw this.lostTo(state.id, r.now);
      state = r.now;
    }
    await this.discard(state);
  }

  /** abandon drops the bytes a failed request added; the session stays as it was. */
  async abandon(state: UploadState): Promise<void> {
    await this.discard(state);
  }

  /**
   * discard deletes the segments the session recorded, and nothing else: any other bytes
   * under its id are either a blob's (an earlier completion through the same Location) or
   * garbage collection's to judge.
   */
  private async discard(state: UploadState): Promise<void> {
    const keys = state.segments.map((seg) => seg.key);
    for (let i = 0; i < keys.length; i += 16) {
      await Promise.all(keys.slice(i, i + 16).map((key) => this.driver.delete(key)));
    }
  }

  /**
   * purgeExpired removes sessions older than the TTL with their bytes (a session that
   * was mid-commit keeps bytes a blob descriptor already points to), and aborts the
   * backend's unfinished multipart uploads of the same age. Safe on every replica.
   */
  async purgeExpired(): Promise<number> {
    let purged = 0;
    let startAfter: string | undefined;
    for (;;) {
      const page = await this.driver.list(Paths.uploadsRoot(), { startAfter, limit: 1000 });
      for (const id of page.names) {
        const state = await this.read(id).catch(() => undefined);
        if (!state || !this.expired(state)) continue;
        if (!state.cancelled) {
          // A commit claimed moments ago may still be linking (it passed `get` just
          // before the session expired): the next round looks again.
          const claimedAt = state.committedAt;
          if (claimedAt !== undefined && this.clock.now() - claimedAt < COMMIT_GRACE_MS) continue;
          // The tombstone (which keeps the claim) goes first: a request that read the
          // record before it can no longer save, claim or cancel it. Lost: the next round.
          if (!(await this.swap(state, { ...state, cancelled: true })).won) continue;
          const claimed = await this.claimedSegments(state);
          if (!(await this.inUse(state, claimed))) {
            // No claim is in use: the session's bytes go, with those of a closing request
            // that never recorded them (claimed in their names).
            await this.discard({ ...state, segments: [...state.segments, ...claimed] });
          }
        }
        await this.driver.delete(Paths.upload(id));
        purged++;
      }
      if (!page.truncated) break;
      startAfter = page.names[page.names.length - 1];
    }
    if (this.opts.abortStale) {
      await this.opts.abortStale(new Date(this.clock.now() - this.opts.ttlSeconds * 1000));
    }
    if (purged > 0) this.opts.log.info({ purged }, 'expired uploads purged');
    return purged;
  }

  /**
   * inUse reports whether a descriptor names the session's bytes: one of the digests it
   * was claimed as (saved, or in a segment's name) whose global or repository descriptor
   * points into the session's segments. Those bytes then belong to the blob.
   */
  private async inUse(state: UploadState, claimed: Segment[]): Promise<boolean> {
    const claims = new Set<string>();
    if (state.committed !== undefined) claims.add(state.committed);
    for (const seg of claimed) claims.add(Paths.segmentClaim(seg.key)!);
    for (const claim of claims) {
      const [alg, hex] = claim.split(':') as [Algorithm, string];
      const digest = { algorithm: alg, hex, value: claim };
      for (const key of [Paths.blob(digest), Paths.layer(state.repo, digest)]) {
        const desc = await freshOf(this.driver)
          .get(key)
          .then(decodeDescriptor, () => undefined);
        if (desc?.segments.some((s) => s.key.startsWith(Paths.segmentsOf(state.id)))) return true;
      }
    }
    return false;
  }

  /** claimedSegments lists the session's segments that carry a claim in their names. */
  private async claimedSegments(state: UploadState): Promise<Segment[]> {
    const names = await listAll(this.driver, Paths.segmentsOf(state.id));
    return names
      .filter((n) => Paths.segmentClaim(n) !== undefined)
      .map((n) => ({ key: Paths.segmentEntry(state.id, n), size: 0 }));
  }
}
