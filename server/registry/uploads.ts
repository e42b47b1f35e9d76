import { systemClock, type Clock } from '../util/clock.js';
import { randomBytes, randomUUID } from 'node:crypto';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Errors } from '../errors.js';
import { isNotFound, listAll, type StorageDriver } from '../storage/driver.js';
import { Paths } from '../storage/paths.js';
import type { StorageViews } from '../storage/views.js';
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
import { digestOf, type Algorithm, type Digest } from './reference.js';
import type { UploadToken } from './token.js';
import { discard, UploadPurge } from './upload-purge.js';
import { UploadRecords } from './upload-records.js';
import {
  cancelled,
  claimed,
  expired,
  saved,
  type LiveSession,
  type OneShot,
  type Open,
  type Presumed,
  type Saved,
  type SessionBytes,
  type UploadRecord,
  type UploadSession,
} from './upload-state.js';

/** UNLINKED links nothing: an ingested blob is named in the global index only. */
const UNLINKED: BlobLinker = {
  link: () => Promise.resolve(),
  mount: () => Promise.resolve(undefined),
};

/** UPLOAD_ID is the form of every session id (a UUID). */
const UPLOAD_ID = /^[0-9a-f-]{36}$/;
/** CANCEL_ATTEMPTS bounds a cancel's retries against a session that keeps growing. */
const CANCEL_ATTEMPTS = 8;

export type {
  Cancelled,
  Committed,
  LiveSession,
  OneShot,
  Open,
  Presumed,
  Saved,
  SessionBytes,
  UploadRecord,
  UploadSession,
  UploadState,
} from './upload-state.js';

/** ChunkRange is what a request says of the bytes it brings. */
export interface ChunkRange {
  /** rangeStart is the start of the request's Content-Range, if it sent one. */
  rangeStart?: number;
  /** rangeEnd is the inclusive end of the request's Content-Range, if it sent one. */
  rangeEnd?: number;
  /** contentLength is the request's Content-Length, if known. */
  contentLength?: number;
  /**
   * keepLocal asks the blob cache to keep a copy of the bytes as they are written: the
   * pull-through cache's fetch, whose client reads them as they arrive.
   */
  keepLocal?: boolean;
}

/** LastBytes is the body a closing request brings, with what it says of it. */
export interface LastBytes extends ChunkRange {
  body: Readable;
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
 * Uploads moves blob upload sessions through their phases (`upload-state.ts`): open, append
 * chunks, complete with digest verification, cancel, and the purge of expired sessions.
 * Every write of a session's record is a compare-and-set against the record the request
 * read (ADR 0017), so of two requests that read the same record only one may change it.
 * Appends must arrive in order (Content-Range start equal to the current offset), else
 * BLOB_UPLOAD_INVALID (416).
 */
export class Uploads {
  private readonly clock: Clock;
  private readonly records: UploadRecords;
  private readonly purge: UploadPurge;

  private readonly driver: StorageDriver;

  constructor(
    private readonly storage: StorageViews,
    private readonly opts: UploadsOptions,
  ) {
    this.clock = opts.clock ?? systemClock;
    this.driver = storage.cached;
    this.records = new UploadRecords(this.driver);
    this.purge = new UploadPurge(storage, this.records, { ...opts, clock: this.clock });
  }

  /**
   * start opens a session and saves its record at once (what versions before the signed
   * Location did at every POST); `open` and `oneShot` write nothing.
   */
  async start(repo: string, algorithm: Algorithm = 'sha256'): Promise<Saved> {
    const session = saved(this.fresh(repo, algorithm));
    if (!(await this.records.create(session))) throw new Error(`upload id ${session.id} is taken`);
    return session;
  }

  /** open starts a session its Location names: nothing is written until its first bytes are. */
  open(repo: string, algorithm: Algorithm = 'sha256'): Open {
    return { ...this.fresh(repo, algorithm), phase: 'open' };
  }

  /**
   * oneShot starts an upload that starts and completes in one request: nothing is written
   * until its bytes are, so a crash leaves only segments no session names, which garbage
   * collection reclaims.
   */
  oneShot(repo: string, algorithm: Algorithm = 'sha256'): OneShot {
    return { ...this.fresh(repo, algorithm), phase: 'oneshot' };
  }

  private fresh(repo: string, algorithm: Algorithm): SessionBytes {
    const startedAt = this.clock.now();
    const id = this.opts.mintId?.(repo, startedAt, algorithm) ?? randomUUID();
    return { id, repo, algorithm, offset: 0, segments: [], startedAt };
  }

  /**
   * get loads a live session of `repo`; throws BLOB_UPLOAD_UNKNOWN otherwise. A session
   * never saved is known from `token` (its signed Location, at offset 0).
   */
  async get(repo: string, id: string, token?: UploadToken): Promise<LiveSession> {
    if (!UPLOAD_ID.test(id)) throw Errors.blobUploadUnknown({ id: id.slice(0, 100) });
    const record = await this.records.read(id);
    if (record !== undefined) return this.live(record, repo);
    if (token === undefined || token.offset !== 0) throw Errors.blobUploadUnknown({ id });
    return { ...this.presume(repo, id, token), phase: 'open' };
  }

  /**
   * getConfirmed is `get`, and for a session never saved one listing makes sure no request
   * completed it already.
   */
  async getConfirmed(repo: string, id: string, token?: UploadToken): Promise<LiveSession> {
    const session = await this.get(repo, id, token);
    if (session.phase === 'open' && (await this.completed(session)))
      throw Errors.blobUploadUnknown({ id });
    return session;
  }

  /**
   * presume is the session a token at offset 0 names, storage not asked yet: `complete`
   * asks while the closing request's bytes stream in.
   */
  presume(repo: string, id: string, token: UploadToken): Presumed {
    if (!UPLOAD_ID.test(id) || token.name !== repo || token.id !== id || token.offset !== 0)
      throw Errors.blobUploadUnknown({ id: id.slice(0, 100) });
    const algorithm = token.algorithm ?? 'sha256';
    const { startedAt } = token;
    const session: Presumed = {
      id,
      repo,
      algorithm,
      offset: 0,
      segments: [],
      startedAt,
      phase: 'presumed',
    };
    if (this.expired(session))
      throw Errors.blobUploadUnknown({ id }, undefined, 'blob upload expired');
    return session;
  }

  /**
   * live is a stored record as a request of `repo` may use it: a live session, not expired.
   * A session found expired is ended here, but only by a tombstone that won against the
   * record read: a commit that read it just before it expired may be claiming it right now.
   */
  private async live(record: UploadRecord, repo: string): Promise<Saved> {
    if (record.repo !== repo || record.phase !== 'saved')
      throw Errors.blobUploadUnknown({ id: record.id });
    if (this.expired(record)) {
      await this.records
        .swap(record, cancelled(record))
        .then(async (r) => {
          if (!r.won) return;
          await discard(this.driver, record.segments);
          await this.records.remove(record.id);
        })
        .catch(() => undefined);
      throw Errors.blobUploadUnknown({ id: record.id }, undefined, 'blob upload expired');
    }
    return record;
  }

  private expired(session: SessionBytes): boolean {
    return expired(session, this.clock.now(), this.opts.ttlSeconds);
  }

  /** completed: a request already committed this never-saved session (its claimed bytes). */
  private async completed(session: Open): Promise<boolean> {
    const names = await listAll(this.driver, Paths.segmentsOf(session.id));
    return names.some((n) => Paths.segmentClaim(n) !== undefined);
  }

  /**
   * append streams `body` into a new segment at the session's offset and saves the grown
   * session. Of two requests at one offset only one is recorded; the other's bytes go, and
   * it throws 416 (BLOB_UPLOAD_UNKNOWN when the session ended). A body that fails midway,
   * or turns out empty, adds nothing: the session stays as it was.
   */
  async append(session: LiveSession, body: Readable, range: ChunkRange = {}): Promise<LiveSession> {
    const next = await this.grow(session, body, range);
    if (next === session) return session;
    const record = saved(next);
    // (A storage error leaves the segment: the record naming it may have been written.)
    const r = await this.records.swap(session, record);
    if (!r.won) {
      await discard(this.driver, added(session, next)).catch(() => undefined);
      throw this.records.lostTo(session.id, r.now);
    }
    return record;
  }

  /**
   * grow streams `body` into a new segment at the session's offset, named with `claim` if
   * given, and returns the grown session, not saved (the same session for an empty body).
   * A body that fails midway adds nothing.
   */
  private async grow<S extends UploadSession>(
    session: S,
    body: Readable,
    range: ChunkRange,
    claim?: Digest,
  ): Promise<S> {
    checkRange(session, range);
    if (range.contentLength === 0) {
      body.resume();
      return session;
    }
    const key = Paths.segment(session.id, session.offset, randomBytes(4).toString('hex'), claim);
    const streamed = range.rangeStart === undefined;
    const { tap, seen, hasher } = hashingTap(() => this.hasherFor(session, streamed));
    const writing = this.driver.writeStream(key, tap, range.contentLength, {
      keepLocal: range.keepLocal,
    });
    try {
      await Promise.all([pipeline(body, tap), writing]);
    } catch (err) {
      await writing.catch(() => undefined);
      await this.driver.delete(key).catch(() => undefined);
      // Re-hashing found the session's bytes gone: a cancel or the purge ended it.
      if (isNotFound(err)) throw Errors.blobUploadUnknown({ id: session.id });
      throw err;
    }
    const size = seen();
    if (range.contentLength !== undefined && size !== range.contentLength) {
      await this.driver.delete(key);
      throw Errors.sizeInvalid({ expected: range.contentLength, received: size });
    }
    const h = hasher();
    if (size === 0 || h === undefined) {
      await this.driver.delete(key);
      return session;
    }
    const offset = session.offset + size;
    const next: S = { ...session, offset, segments: [...session.segments, { key, size }] };
    delete next.hash;
    delete next.native;
    if (h.resumable) next.hash = { offset, state: h.save()! };
    else next.native = { offset, hex: h.digestHex() };
    return next;
  }

  /**
   * hasherFor picks the cheapest hasher that keeps the digest exact: native for a
   * streamed first request, resumable for chunks; an upload whose saved state does not
   * cover its bytes (a streamed first request followed by more chunks) is re-hashed
   * once from storage, and resumable from then on.
   */
  private async hasherFor(session: SessionBytes, streamed: boolean): Promise<Hasher> {
    if (session.offset === 0) {
      return streamed ? nativeHasher(session.algorithm) : resumableHasher(session.algorithm);
    }
    if (session.hash?.offset === session.offset)
      return resumableHasher(session.algorithm, session.hash.state);
    const h = await resumableHasher(session.algorithm);
    await this.rehash(session, h);
    return h;
  }

  private async rehash(session: SessionBytes, h: Hasher): Promise<void> {
    const src = concatSegments(this.driver, session.segments, 0, session.offset);
    for await (const c of src) h.update(c as Buffer);
  }

  /** digestHex computes the digest of the session's bytes with `algorithm`. */
  private async digestHex(session: SessionBytes, algorithm: Algorithm): Promise<string> {
    if (algorithm === session.algorithm) {
      if (session.native?.offset === session.offset) return session.native.hex;
      if (session.hash?.offset === session.offset) {
        return (await resumableHasher(algorithm, session.hash.state)).digestHex();
      }
    }
    const h = nativeHasher(algorithm);
    await this.rehash(session, h);
    return h.digestHex();
  }

  /**
   * complete does a closing request's whole job: it adds `last` (its body, if any) without
   * saving it, verifies the bytes against `digest`, claims the session, links the blob into
   * the repository and ends the session. Writes no blob byte again: only descriptors.
   *
   * - A presumed session is looked up in storage while its bytes stream in: a record still
   *   at offset 0 (an older version saved it at its POST) is claimed like any saved one; one
   *   that grew since throws 416, and this request's bytes go.
   * - A saved session is claimed before any descriptor may name its bytes (a compare-and-set
   *   to its committed record), so of a commit and a concurrent cancel, chunk or purge of the
   *   same record exactly one wins. So is an open one whose bytes did not all come with this
   *   request; otherwise the claim is in the last segment's name. A commit that lost
   *   discards only the bytes its own request brought and throws BLOB_UPLOAD_UNKNOWN when
   *   the session ended, 416 when it grew; one whose stored bytes are gone (cancelled under
   *   it) throws BLOB_UPLOAD_UNKNOWN.
   * - On a mismatch the session is cancelled (when that loses to another request, only this
   *   request's bytes go) and DIGEST_INVALID is thrown.
   * - A one-shot upload that fails leaves nothing behind.
   */
  async complete(
    session: UploadSession,
    digest: Digest,
    linker: BlobLinker,
    last?: LastBytes,
  ): Promise<BlobDescriptor> {
    if (session.phase === 'oneshot') {
      let bytes: SessionBytes = session;
      try {
        if (last) bytes = await this.grow(session, last.body, last);
        return await this.commit(session, bytes, digest, linker);
      } catch (err) {
        await discard(this.driver, bytes.segments).catch(() => undefined);
        throw err;
      }
    }
    const stored =
      session.phase === 'presumed' ? this.storedAt0(session) : Promise.resolve(session);
    stored.catch(() => undefined);
    const bytes = last ? await this.grow(session, last.body, last, digest) : session;
    const base = await stored.catch(async (err: unknown) => {
      await discard(this.driver, added(session, bytes)).catch(() => undefined);
      throw err;
    });
    return this.commit(base, bytes, digest, linker);
  }

  /**
   * storedAt0 is what storage holds of a presumed session: nothing (open), or its record at
   * offset 0; 416 when chunks were added through another Location since.
   */
  private async storedAt0(session: Presumed): Promise<LiveSession> {
    const record = await this.records.read(session.id);
    if (record === undefined) return { ...session, phase: 'open' };
    const live = await this.live(record, session.repo);
    if (live.offset !== 0)
      throw Errors.chunkInvalid(
        { offset: live.offset, start: 0 },
        undefined,
        `the upload is at offset ${live.offset}: use the latest Location`,
      );
    return live;
  }

  /**
   * commit verifies `bytes` (the session `base` as stored, grown by the closing request),
   * claims and links them (see `complete`).
   */
  private async commit(
    base: OneShot | LiveSession,
    bytes: SessionBytes,
    digest: Digest,
    linker: BlobLinker,
  ): Promise<BlobDescriptor> {
    await this.verify(base, bytes, digest);
    // The purger must not discard bytes a descriptor may name from here on. A session
    // never saved whose last bytes came with this request has the claim in their segment's
    // name (and nothing stored for a cancel to race); any other session with a Location
    // claims its record.
    const claimedByName = bytes.segments.some((s) => Paths.segmentClaim(s.key) === digest.value);
    if (base.phase === 'saved' || (base.phase === 'open' && !claimedByName)) {
      // Two commits of one record as one digest in the same millisecond save the same
      // claim: only the one whose write landed has won. (One whose answer was lost answers
      // 404 and leaves its claim to the purger: the client pushes again.)
      const claim = await this.records.swap(
        base,
        claimed(bytes, digest.value, this.clock.now()),
        false,
      );
      if (!claim.won) {
        await this.discardOwn(bytes, digest, claim.now);
        throw this.records.lostTo(base.id, claim.now);
      }
    }
    const desc = await this.link(bytes, digest, linker);
    // A session never saved keeps its claim, if it made one, as the record that its
    // Location ended; the purger removes it once the Location has expired.
    if (base.phase === 'saved') await this.end(base.id);
    if (desc.segments !== bytes.segments) {
      // Never the bytes the index was just found naming (an upload racing itself).
      const indexed = new Set(desc.segments.map((s) => s.key));
      await discard(
        this.driver,
        bytes.segments.filter((s) => !indexed.has(s.key)),
      );
    }
    this.opts.log.debug(
      { repo: bytes.repo, digest: digest.value, size: bytes.offset },
      'blob committed',
    );
    return desc;
  }

  /**
   * verify checks `bytes` against `digest`. Stored bytes found gone (a cancel ended the
   * session under the request) throw BLOB_UPLOAD_UNKNOWN; a mismatch cancels the session
   * and throws DIGEST_INVALID. Either way only what the session no longer names is
   * discarded.
   */
  private async verify(
    base: OneShot | LiveSession,
    bytes: SessionBytes,
    digest: Digest,
  ): Promise<void> {
    let hex: string;
    try {
      hex = await this.digestHex(bytes, digest.algorithm);
    } catch (err) {
      if (!isNotFound(err)) throw err;
      const now = base.phase === 'saved' ? await this.records.read(base.id) : undefined;
      await this.discardOwn(bytes, digest, now);
      throw Errors.blobUploadUnknown({ id: base.id });
    }
    if (hex === digest.hex) return;
    // A session a Location names leaves a tombstone; a one-shot upload has nothing stored.
    const ended =
      base.phase === 'oneshot' ? undefined : await this.records.swap(base, cancelled(bytes));
    if (ended?.won) await discard(this.driver, bytes.segments);
    else await this.discardOwn(bytes, digest, ended?.now);
    throw Errors.digestInvalid({
      expected: digest.value,
      computed: `${digest.algorithm}:${hex}`,
    });
  }

  /**
   * link names `bytes` as `digest` in the global index and links the repository to the
   * blob; returns the descriptor linked. The first upload of these bytes names them in the
   * global index while this repository is linked to them. A later upload finds the index
   * taken: the repository is linked again, to the indexed bytes (read from storage itself,
   * never a cache), and the caller drops its own.
   */
  private async link(
    bytes: SessionBytes,
    digest: Digest,
    linker: BlobLinker,
  ): Promise<BlobDescriptor> {
    const ours: BlobDescriptor = {
      digest: digest.value,
      size: bytes.offset,
      segments: bytes.segments,
    };
    const [indexed] = await Promise.all([
      this.driver.putIfAbsent(Paths.blob(digest), JSON.stringify(ours)),
      linker.link(ours, digest),
    ]);
    if (indexed) return ours;
    let desc = ours;
    try {
      desc = decodeDescriptor(await this.storage.fresh.get(Paths.blob(digest)));
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
    return desc;
  }

  /**
   * end removes a committed session's record before the response, alongside the events
   * outbox write; should that fail, the purger removes it (its claim finds the blob).
   */
  private async end(id: string): Promise<void> {
    const ending = () =>
      this.records
        .remove(id)
        .catch((err: unknown) => this.opts.log.warn({ err, id }, 'upload end not recorded'));
    const scope = currentScope();
    if (scope) scope.deferred.push(ending);
    else await ending();
  }

  /**
   * discardOwn drops the bytes a closing request brought: the segments claimed as `digest`
   * in their names that the stored record (`now`) does not list. The others are the
   * session's, which its new owner (a cancel, a chunk, another commit) decides about.
   */
  private async discardOwn(
    bytes: SessionBytes,
    digest: Digest,
    now: UploadRecord | undefined,
  ): Promise<void> {
    const listed = new Set((now?.segments ?? []).map((s) => s.key));
    await discard(
      this.driver,
      bytes.segments.filter(
        (s) => Paths.segmentClaim(s.key) === digest.value && !listed.has(s.key),
      ),
    );
  }

  /** whole reports whether every segment a descriptor names is in storage (asked of storage). */
  private async whole(desc: BlobDescriptor): Promise<boolean> {
    const fresh = this.storage.fresh;
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
   * ingest stores `body` as one blob outside any session and repository: its digest is
   * computed while it streams (it must be `expected` when given, else DIGEST_INVALID) and the
   * blob is named in the global index only, so no repository holds it until
   * `BlobLinker.mount` or `link` names it there. Resolves with the descriptor the index
   * names: another upload's when it was there first (these bytes are then discarded). A
   * failure leaves nothing; bytes a crash leaves are named by nothing and collected.
   */
  async ingest(body: Readable, algorithm: Algorithm, expected?: Digest): Promise<BlobDescriptor> {
    const session: OneShot = {
      id: randomUUID(),
      repo: '',
      algorithm,
      offset: 0,
      segments: [],
      startedAt: this.clock.now(),
      phase: 'oneshot',
    };
    let bytes: SessionBytes = session;
    try {
      bytes = await this.grow(session, body, {}, expected);
      const digest = expected ?? digestOf(algorithm, await this.digestHex(bytes, algorithm));
      return await this.commit(session, bytes, digest, UNLINKED);
    } catch (err) {
      await discard(this.driver, bytes.segments).catch(() => undefined);
      throw err;
    }
  }

  /**
   * indexed is the global index's descriptor of `digest` when every byte it names is in
   * storage (asked of storage itself), else undefined.
   */
  async indexed(digest: Digest): Promise<BlobDescriptor | undefined> {
    let desc: BlobDescriptor;
    try {
      desc = decodeDescriptor(await this.storage.fresh.get(Paths.blob(digest)));
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
    return (await this.whole(desc)) ? desc : undefined;
  }

  /**
   * cancel leaves a tombstone record, so the session's Location is unknown from now on
   * (the purger removes the record after the TTL, when the Location has expired too), and
   * only then discards its bytes. The tombstone is a compare-and-set: a session that grew
   * meanwhile is cancelled as it is now; one that a commit claimed, another cancel ended or
   * the purge removed is not touched and BLOB_UPLOAD_UNKNOWN is thrown.
   */
  async cancel(session: LiveSession): Promise<void> {
    let from = session;
    for (let attempt = 1; ; attempt++) {
      const r = await this.records.swap(from, cancelled(from));
      if (r.won) break;
      if (r.now?.phase !== 'saved' || attempt === CANCEL_ATTEMPTS)
        throw this.records.lostTo(session.id, r.now);
      from = r.now;
    }
    await discard(this.driver, from.segments);
  }

  /**
   * purgeExpired removes sessions older than the TTL with their bytes, and aborts the
   * backend's unfinished multipart uploads of the same age (see UploadPurge). Safe on every
   * replica.
   */
  async purgeExpired(): Promise<number> {
    return this.purge.run();
  }
}

/** checkRange throws 416 for a chunk that does not start at the offset or whose Content-Range and Content-Length disagree. */
function checkRange(session: SessionBytes, range: ChunkRange): void {
  const { rangeStart: start, rangeEnd: end, contentLength } = range;
  if (start !== undefined && start !== session.offset) {
    throw Errors.chunkInvalid(
      { offset: session.offset, start },
      undefined,
      `chunk starts at ${start} but the upload is at offset ${session.offset}`,
    );
  }
  if (
    start !== undefined &&
    end !== undefined &&
    contentLength !== undefined &&
    end - start + 1 !== contentLength
  ) {
    throw Errors.chunkInvalid(
      { contentRange: `${start}-${end}`, contentLength },
      undefined,
      'Content-Range does not match Content-Length',
    );
  }
}

/**
 * hashingTap passes a body through, counting its bytes and feeding them to a hasher made
 * on the first byte: a body that turns out empty (a chunked request with nothing in it)
 * must not cost a re-hash of what is stored.
 */
function hashingTap(make: () => Promise<Hasher>): {
  tap: Transform;
  seen: () => number;
  hasher: () => Hasher | undefined;
} {
  let seen = 0;
  let hasher: Hasher | undefined;
  const tap = new Transform({
    transform: (chunk: Buffer, _enc, cb) => {
      const feed = (h: Hasher) => {
        seen += chunk.length;
        h.update(chunk);
        cb(null, chunk);
      };
      if (hasher) return feed(hasher);
      make().then((h) => {
        hasher = h;
        feed(h);
      }, cb);
    },
  });
  return { tap, seen: () => seen, hasher: () => hasher };
}

/** added is the segments `grown` holds beyond `session`'s: the bytes one request brought. */
function added(session: SessionBytes, grown: SessionBytes): Segment[] {
  return grown.segments.slice(session.segments.length);
}
