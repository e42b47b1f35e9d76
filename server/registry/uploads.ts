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
  /** ephemeral: a one-request session never written to storage (nothing to purge or delete). */
  ephemeral?: true;
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

/**
 * Lookup is a read of a blob's global descriptor started ahead of its commit: the
 * descriptor, `absent`, or undefined when the read failed (the commit then reads again).
 */
export interface Lookup {
  result: Promise<BlobDescriptor | 'absent' | undefined>;
  /** at is when the read started. */
  at: number;
}

/**
 * LOOKUP_TRUST_MS: a descriptor found longer ago than this (a long upload) is read again
 * before it is linked, so that garbage collection's grace window counts from a recent read.
 */
const LOOKUP_TRUST_MS = 30_000;

export interface UploadsOptions {
  ttlSeconds: number;
  clock?: () => number;
  log: Logger;
  /** abortStale aborts backend multipart uploads older than a date (S3). */
  abortStale?: (olderThan: Date) => Promise<number>;
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
    opts: { persist?: boolean } = {},
  ): Promise<UploadState> {
    const state: UploadState = {
      id: randomUUID(),
      repo,
      algorithm,
      offset: 0,
      segments: [],
      startedAt: this.clock(),
    };
    if (opts.persist === false) state.ephemeral = true;
    else await this.save(state);
    return state;
  }

  /** get loads a live session of `repo`; throws BLOB_UPLOAD_UNKNOWN otherwise. */
  async get(repo: string, id: string): Promise<UploadState> {
    if (!/^[0-9a-f-]{36}$/.test(id)) throw Errors.blobUploadUnknown({ id: id.slice(0, 100) });
    let state: UploadState;
    try {
      state = JSON.parse((await this.driver.get(Paths.upload(id))).toString('utf8')) as UploadState;
    } catch (err) {
      if (isNotFound(err)) throw Errors.blobUploadUnknown({ id });
      throw err;
    }
    if (state.repo !== repo || state.committed !== undefined)
      throw Errors.blobUploadUnknown({ id });
    if (this.expired(state)) {
      await this.discard(state).catch(() => undefined);
      throw Errors.blobUploadUnknown({ id }, undefined, 'blob upload expired');
    }
    return state;
  }

  private expired(state: UploadState): boolean {
    return this.clock() - state.startedAt > this.opts.ttlSeconds * 1000;
  }

  private async save(state: UploadState): Promise<void> {
    await this.driver.put(Paths.upload(state.id), JSON.stringify(state));
  }

  /**
   * append streams `body` into a new segment at the session's offset and records it.
   * A body that fails midway adds nothing: the session stays at its old offset.
   */
  async append(state: UploadState, body: Readable, opts: AppendOptions = {}): Promise<UploadState> {
    if (opts.rangeStart !== undefined && opts.rangeStart !== state.offset) {
      throw Errors.rangeInvalid(
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
        throw Errors.rangeInvalid(
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
    if (opts.persist !== false) await this.save(next);
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
   * repository. On a mismatch the session and its bytes are discarded and
   * DIGEST_INVALID is thrown. Writes no blob byte again: only descriptors.
   */
  async commit(
    state: UploadState,
    digest: Digest,
    linker: BlobLinker,
    lookup?: Lookup,
  ): Promise<BlobDescriptor> {
    const hex = await this.digestHex(state, digest.algorithm);
    if (hex !== digest.hex) {
      await this.discard(state);
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
    // The first upload of these bytes names them in the global index; later ones reuse
    // that descriptor (read from storage itself, never a cache) and drop their own bytes.
    let desc = ours;
    let known = lookup ? await lookup.result : undefined;
    if (known !== 'absent' && lookup && this.clock() - lookup.at > LOOKUP_TRUST_MS)
      known = undefined;
    if (known === 'absent') {
      // Looked up while the bytes streamed in and not there: index and link at once. If
      // another upload of the same bytes indexes them first, this repository's link still
      // names bytes that exist (ours), which are then kept.
      await Promise.all([
        this.driver.putIfAbsent(Paths.blob(digest), JSON.stringify(ours)),
        linker.link(ours, digest),
      ]);
    } else {
      if (known !== undefined) desc = known;
      else if (!(await this.driver.putIfAbsent(Paths.blob(digest), JSON.stringify(ours)))) {
        try {
          desc = decodeDescriptor(await freshOf(this.driver).get(Paths.blob(digest)));
        } catch (err) {
          if (!isNotFound(err)) throw err;
          // Collected in between: ours becomes the descriptor.
          await this.driver.put(Paths.blob(digest), JSON.stringify(ours));
        }
      }
      await linker.link(desc, digest);
    }
    // The session record goes before the response, alongside the events outbox write;
    // should it fail, the purger removes it (its claim finds this blob).
    if (!state.ephemeral) {
      const drop = () =>
        this.driver
          .delete(Paths.upload(state.id))
          .catch((err: unknown) => this.opts.log.warn({ err, id: state.id }, 'upload not removed'));
      const scope = currentScope();
      if (scope) scope.deferred.push(drop);
      else await drop();
    }
    if (desc !== ours) await this.driver.deletePrefix(Paths.segmentsOf(state.id));
    this.opts.log.debug(
      { repo: state.repo, digest: digest.value, size: state.offset },
      'blob committed',
    );
    return desc;
  }

  /**
   * claim records that the session is being committed as `digest`, before any descriptor
   * may name its bytes: the purger then checks descriptors before discarding them.
   */
  private async claim(state: UploadState, digest: Digest): Promise<void> {
    await this.save({ ...state, committed: digest.value });
  }

  /**
   * lookup starts reading the global descriptor of `digest` (from storage itself), so that
   * a request that knows the digest it commits as learns it while its bytes stream in.
   */
  lookup(digest: Digest): Lookup {
    const result = freshOf(this.driver)
      .get(Paths.blob(digest))
      .then(
        (b): BlobDescriptor | 'absent' | undefined => decodeDescriptor(b),
        (err: unknown) => (isNotFound(err) ? 'absent' : undefined),
      );
    return { result, at: this.clock() };
  }

  /** cancel discards a session and its bytes. Idempotent for a session already gone. */
  async cancel(state: UploadState): Promise<void> {
    await this.discard(state);
  }

  private async discard(state: UploadState): Promise<void> {
    await this.driver.deletePrefix(Paths.segmentsOf(state.id));
    await this.driver.delete(Paths.upload(state.id));
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
        if (await this.inUse(state)) {
          await this.driver.delete(Paths.upload(id));
        } else {
          await this.discard(state);
        }
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
  private async inUse(state: UploadState): Promise<boolean> {
    const claims = new Set<string>();
    if (state.committed !== undefined) claims.add(state.committed);
    for (const name of await listAll(this.driver, Paths.segmentsOf(state.id))) {
      const c = Paths.segmentClaim(name);
      if (c !== undefined) claims.add(c);
    }
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
}
