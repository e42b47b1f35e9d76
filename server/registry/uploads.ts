import { randomBytes, randomUUID } from 'node:crypto';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Errors } from '../errors.js';
import { freshOf } from '../storage/cache.js';
import { isNotFound, listAll, type StorageDriver } from '../storage/driver.js';
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
 * UploadState is everything about an upload session, kept in storage (never only in a
 * process) so any replica can continue it. It is rewritten whole after each request
 * that adds bytes; the segments it lists are complete objects.
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
  /** committed marks a session whose blob is being linked (for the purger). */
  committed?: string;
  /** cancelled marks the record a cancelled session leaves (a tombstone). */
  cancelled?: true;
  /**
   * ephemeral: a session not written to storage: a one-request upload, or one whose POST
   * wrote nothing and which its signed Location names until its first bytes are saved.
   */
  ephemeral?: true;
  /** located: a Location names the session, so ending it must leave a record. */
  located?: true;
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
  clock?: () => number;
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
  private readonly clock: () => number;

  constructor(
    private readonly driver: StorageDriver,
    private readonly opts: UploadsOptions,
  ) {
    this.clock = opts.clock ?? Date.now;
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
    const startedAt = this.clock();
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
    } else {
      await this.save(state);
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
    let state: UploadState;
    try {
      state = JSON.parse((await this.driver.get(Paths.upload(id))).toString('utf8')) as UploadState;
    } catch (err) {
      if (!isNotFound(err)) throw err;
      if (token === undefined || token.offset !== 0) throw Errors.blobUploadUnknown({ id });
      const fresh = this.unsaved(repo, id, token);
      if (opts.confirm && (await this.completed(fresh))) throw Errors.blobUploadUnknown({ id });
      return fresh;
    }
    if (state.repo !== repo || state.committed !== undefined || state.cancelled)
      throw Errors.blobUploadUnknown({ id });
    if (this.expired(state)) {
      await this.discard(state)
        .then(() => this.driver.delete(Paths.upload(id)))
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
    return this.clock() - state.startedAt > this.opts.ttlSeconds * 1000;
  }

  private async save(state: UploadState): Promise<void> {
    const record: UploadState = { ...state };
    delete record.ephemeral;
    delete record.located;
    await this.driver.put(Paths.upload(state.id), JSON.stringify(record));
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
      await this.save(next);
      delete next.ephemeral;
      delete next.located;
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
   * commit verifies the bytes against `digest` and links the blob into the
   * repository. On a mismatch the session is cancelled and DIGEST_INVALID is thrown; only
   * the bytes this request brought are discarded, since a concurrent request may be
   * committing the earlier ones right now (those are left to garbage collection). Writes no
   * blob byte again: only descriptors.
   */
  async commit(state: UploadState, digest: Digest, linker: BlobLinker): Promise<BlobDescriptor> {
    const hex = await this.digestHex(state, digest.algorithm);
    if (hex !== digest.hex) {
      const own = state.segments.filter((s) => Paths.segmentClaim(s.key) === digest.value);
      await this.cancel({ ...state, segments: own });
      throw Errors.digestInvalid({
        expected: digest.value,
        computed: `${digest.algorithm}:${hex}`,
      });
    }
    // The purger must not discard bytes a descriptor may name from here on: the claim is
    // in the last segment's name when this request brought bytes, else it is saved.
    const claimed = state.segments.some((s) => Paths.segmentClaim(s.key) === digest.value);
    if (!state.ephemeral && !claimed) await this.claim(state, digest);
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
    // saved has none: a claim in its last segment's name says it ended, or (no bytes at
    // all) a record left for the purger.
    let end: (() => Promise<void>) | undefined;
    if (!state.ephemeral) end = () => this.driver.delete(Paths.upload(state.id));
    else if (state.located && !claimed)
      end = () => this.save({ ...state, committed: digest.value });
    if (end) {
      const run = end;
      const ending = () =>
        run().catch((err: unknown) =>
          this.opts.log.warn({ err, id: state.id }, 'upload end not recorded'),
        );
      const scope = currentScope();
      if (scope) scope.deferred.push(ending);
      else await ending();
    }
    if (desc !== ours) await this.discard(state);
    this.opts.log.debug(
      { repo: state.repo, digest: digest.value, size: state.offset },
      'blob committed',
    );
    return desc;
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
   * claim records that the session is being committed as `digest`, before any descriptor
   * may name its bytes: the purger then checks descriptors before discarding them.
   */
  private async claim(state: UploadState, digest: Digest): Promise<void> {
    await this.save({ ...state, committed: digest.value });
  }

  /**
   * cancel discards a session's bytes and leaves a tombstone record, so its Location is
   * unknown from now on (the purger removes the record after the TTL, when the Location
   * has expired too).
   */
  async cancel(state: UploadState): Promise<void> {
    if (!state.ephemeral || state.located) await this.save({ ...state, cancelled: true });
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
        const state = await this.driver
          .get(Paths.upload(id))
          .then((b) => JSON.parse(b.toString('utf8')) as UploadState)
          .catch(() => undefined);
        if (!state || !this.expired(state)) continue;
        const claimed = state.cancelled ? [] : await this.claimedSegments(state);
        if (!state.cancelled && !(await this.inUse(state, claimed))) {
          // No claim is in use: the session's bytes go, with those of a closing request
          // that never recorded them (claimed in their names).
          await this.discard({ ...state, segments: [...state.segments, ...claimed] });
        }
        await this.driver.delete(Paths.upload(id));
        purged++;
      }
      if (!page.truncated) break;
      startAfter = page.names[page.names.length - 1];
    }
    if (this.opts.abortStale) {
      await this.opts.abortStale(new Date(this.clock() - this.opts.ttlSeconds * 1000));
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
