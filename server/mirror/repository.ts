import { PassThrough, Transform, type Readable, type TransformCallback } from 'node:stream';
import { Errors } from '../errors.js';
import type { BlobDescriptor, RepositoryBlobStore } from '../registry/blobs.js';
import { parseDigest, type Digest } from '../registry/reference.js';
import type { Repository, StoredManifest } from '../registry/repository.js';
import type { Uploads } from '../registry/uploads.js';
import { isNotFound, type StorageDriver } from '../storage/driver.js';
import { Paths } from '../storage/paths.js';
import type { Clock } from '../util/clock.js';
import type { Logger } from '../util/log.js';
import type { FetchClaim, FetchLeases } from './fetch-lease.js';
import type { Target } from './upstreams.js';

/** MirrorDeps is what a mirrored repository needs besides its target. */
export interface MirrorDeps {
  uploads: Pick<Uploads, 'oneShot' | 'complete'>;
  driver: StorageDriver;
  clock: Clock;
  log: Logger;
  /** inflight is the process-wide single flight of blob fetches, by digest. */
  inflight: Map<string, Promise<unknown>>;
  /** leases is the single flight across the replicas of one storage (none: per process only). */
  leases?: FetchLeases;
}

/** UPSTREAM marks a descriptor of a blob that is upstream only (not stored yet). */
const UPSTREAM = Symbol('upstream');
type PendingDescriptor = BlobDescriptor & { [UPSTREAM]?: true };

interface TagCheck {
  digest: string;
  checkedAt: number;
}

const hasCode = (err: unknown, code: string): boolean =>
  (err as { code?: unknown } | null)?.code === code;

/**
 * mirroredRepository decorates a repository mapped to an upstream (ADR 0024). A manifest or
 * blob missing here is fetched from the upstream, served, and stored through `repo` as a
 * push would be (so the decorators inside record events and index it); a tag is checked
 * upstream with a HEAD once its TTL has passed, and served from storage when the upstream
 * fails (stale-if-error). Concurrent fetches of one blob in this process share one upstream
 * request. A blob's bytes go to the client and into storage from one upstream stream; the
 * client's last chunk is held back until the digest is verified, so a client never receives
 * a whole blob that was refused, and nothing refused is stored. Writes are delegated to
 * `repo` unchanged.
 */
export function mirroredRepository(repo: Repository, target: Target, deps: MirrorDeps): Repository {
  const mirror = new Mirror(repo, target, deps);
  const decorated = Object.create(repo) as Repository;
  Object.assign(decorated, {
    resolve: (tag: string) => mirror.resolve(tag),
    get: (digest: Digest) => mirror.get(digest),
  });
  Object.defineProperty(decorated, 'blobs', { value: mirror.blobs(), enumerable: true });
  return decorated;
}

class Mirror {
  private readonly client;
  private readonly ttlMs: number;

  constructor(
    private readonly repo: Repository,
    private readonly target: Target,
    private readonly deps: MirrorDeps,
  ) {
    this.client = target.upstream.client;
    this.ttlMs = target.upstream.config.tagTtlSeconds * 1000;
  }

  private get log(): Logger {
    return this.deps.log;
  }

  async resolve(tag: string): Promise<Digest> {
    const local = await this.repo.resolve(tag).catch((err: unknown) => {
      if (hasCode(err, 'MANIFEST_UNKNOWN')) return undefined;
      throw err;
    });
    const check = local && (await this.readCheck(tag));
    const now = this.deps.clock.now();
    if (local && check?.digest === local.value && now - check.checkedAt < this.ttlMs) return local;
    let head;
    try {
      head = await this.client.headManifest(this.target.remote, tag);
    } catch (err) {
      if (!local) throw this.unavailable(err);
      this.log.warn({ err, repo: this.repo.name, tag }, 'upstream tag check failed: served stale');
      return local;
    }
    if (head === undefined) {
      if (local) return local;
      throw Errors.manifestUnknown({ tag });
    }
    const digest = parseDigest(head.digest);
    if (digest.value !== local?.value) {
      if (!(await this.repo.has(digest))) await this.fetchManifest(digest);
      await this.repo.tag(tag, digest);
    }
    await this.deps.driver.put(
      Paths.mirroredTag(this.repo.name, tag),
      JSON.stringify({ digest: digest.value, checkedAt: now } satisfies TagCheck),
    );
    return digest;
  }

  private async readCheck(tag: string): Promise<TagCheck | undefined> {
    try {
      return JSON.parse(
        (await this.deps.driver.get(Paths.mirroredTag(this.repo.name, tag))).toString('utf8'),
      ) as TagCheck;
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  async get(digest: Digest): Promise<StoredManifest> {
    try {
      return await this.repo.get(digest);
    } catch (err) {
      if (!hasCode(err, 'MANIFEST_UNKNOWN')) throw err;
    }
    await this.fetchManifest(digest);
    return this.repo.get(digest);
  }

  /** fetchManifest stores the upstream's manifest `digest` byte-exact, as a push would. */
  private async fetchManifest(digest: Digest): Promise<void> {
    let m;
    try {
      m = await this.client.getManifest(this.target.remote, digest.value);
    } catch (err) {
      if ((err as { status?: number }).status === 404) {
        throw Errors.manifestUnknown({ digest: digest.value });
      }
      throw this.unavailable(err);
    }
    await this.repo.put(m.body, m.mediaType, digest);
    this.log.info(
      { repo: this.repo.name, digest: digest.value, upstream: this.target.upstream.config.name },
      'manifest cached from upstream',
    );
  }

  private unavailable(err: unknown): Error {
    this.log.warn({ err, repo: this.repo.name }, 'upstream unavailable');
    return Errors.unavailable(
      { upstream: this.target.upstream.config.name },
      undefined,
      'the upstream registry is unavailable, retry later',
    );
  }

  blobs(): RepositoryBlobStore {
    const inner = this.repo.blobs;
    const wrapped = Object.create(inner) as RepositoryBlobStore;
    Object.assign(wrapped, {
      stat: (digest: Digest) => this.statBlob(digest),
      open: (desc: PendingDescriptor, offset?: number, length?: number) =>
        desc[UPSTREAM] ? this.openUpstream(desc, offset, length) : inner.open(desc, offset, length),
      source: (desc: PendingDescriptor, offset?: number, length?: number) =>
        desc[UPSTREAM] ? Promise.resolve(undefined) : inner.source(desc, offset, length),
      redirectURL: (desc: PendingDescriptor) =>
        desc[UPSTREAM] ? Promise.resolve(undefined) : inner.redirectURL(desc),
    });
    return wrapped;
  }

  /** statBlob is the stored descriptor, or one marked upstream-only with the upstream's size. */
  private async statBlob(digest: Digest): Promise<BlobDescriptor> {
    try {
      return await this.repo.blobs.stat(digest);
    } catch (err) {
      if (!hasCode(err, 'BLOB_UNKNOWN')) throw err;
    }
    const mounted = await this.repo.blobs.mount(digest);
    if (mounted) return mounted;
    let size;
    try {
      size = await this.client.blobSize(this.target.remote, digest.value);
    } catch (err) {
      throw this.unavailable(err);
    }
    if (size === undefined) throw Errors.blobUnknown({ digest: digest.value });
    const desc: PendingDescriptor = { digest: digest.value, size, segments: [] };
    desc[UPSTREAM] = true;
    return desc;
  }

  /**
   * openUpstream serves a blob that is upstream only. The first request in this process
   * fetches it (tee into storage); a request for a part of it, or one arriving while a fetch
   * is under way, waits for that fetch and reads what it stored.
   */
  private async openUpstream(
    desc: BlobDescriptor,
    offset = 0,
    length = desc.size - offset,
  ): Promise<Readable> {
    const digest = parseDigest(desc.digest);
    const running = this.deps.inflight.get(digest.value);
    if (running !== undefined) await running.catch(() => undefined);
    // A fetch that ended between this request's stat and now stored the blob already.
    const stored = await this.repo.blobs.mount(digest);
    if (stored) return this.repo.blobs.open(stored, offset, length);
    if (this.deps.inflight.has(digest.value)) return this.openUpstream(desc, offset, length);
    const turn = await this.claim(digest);
    if (turn === 'again') return this.openUpstream(desc, offset, length);
    if (offset === 0 && length === desc.size) return this.tee(digest, desc.size, turn);
    await this.fetchAndStore(digest, desc.size, turn);
    const now = await this.repo.blobs.mount(digest);
    if (!now) throw this.unavailable(new Error('upstream fetch did not store the blob'));
    return this.repo.blobs.open(now, offset, length);
  }

  /**
   * claim takes this replica's turn to fetch `digest` from the upstream (FetchLeases): a
   * claim, undefined to fetch without one (no leases, or another replica's fetch outlasted
   * the bounded wait), or 'again' when the blob may be stored now or its marker is free. While
   * it waits, requests of this process for the blob wait on it (the in-process single flight).
   */
  private async claim(digest: Digest): Promise<FetchClaim | 'again' | undefined> {
    const leases = this.deps.leases;
    if (!leases) return undefined;
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    this.deps.inflight.set(digest.value, gate);
    try {
      const claim = await leases.claim(digest);
      if (claim) return claim;
      this.log.debug(
        { repo: this.repo.name, digest: digest.value },
        'waiting for another replica fetch',
      );
      const stored = async () => (await this.repo.blobs.mount(digest)) !== undefined;
      const outcome = await leases.waitFor(digest, stored);
      return outcome === 'timeout' ? undefined : 'again';
    } finally {
      this.deps.inflight.delete(digest.value);
      open();
    }
  }

  private async fetchAndStore(digest: Digest, size: number, claim?: FetchClaim): Promise<void> {
    const body = await this.tee(digest, size, claim);
    body.resume();
    await this.deps.inflight.get(digest.value);
  }

  /**
   * tee opens the upstream blob and returns the client's stream of it, while the same bytes
   * are committed as a one-shot upload (digest and size verified, written once).
   */
  private async tee(digest: Digest, size: number, claim?: FetchClaim): Promise<Readable> {
    const upstream = this.client.openBlob(this.target.remote, digest.value, { checked: true });
    const toStore = new PassThrough();
    const committed = upstream.then((body) => {
      body.on('error', (err) => toStore.destroy(err));
      body.pipe(toStore);
      const session = this.deps.uploads.oneShot(this.repo.name, digest.algorithm);
      return this.deps.uploads.complete(session, digest, this.repo.blobs, {
        body: toStore,
        contentLength: size,
        // Its client reads these bytes now: later pulls through this process read them
        // from the blob cache, not from storage.
        keepLocal: true,
      });
    });
    const done = committed.finally(async () => {
      this.deps.inflight.delete(digest.value);
      await claim
        ?.release()
        .catch((err: unknown) =>
          this.log.warn({ err, digest: digest.value }, 'mirror fetch marker not released'),
        );
    });
    this.deps.inflight.set(digest.value, done);
    done.then(
      () =>
        this.log.info({ repo: this.repo.name, digest: digest.value }, 'blob cached from upstream'),
      (err: unknown) =>
        this.log.warn({ err, repo: this.repo.name, digest: digest.value }, 'upstream blob refused'),
    );
    let body: Readable;
    try {
      body = await upstream;
    } catch (err) {
      throw this.unavailable(err);
    }
    const client = new HoldLast(done);
    body.on('error', (err) => client.destroy(err));
    body.pipe(client);
    return client;
  }
}

/**
 * HoldLast passes chunks through one behind, and lets the last one go only when `verdict`
 * resolves: a stream that rejects ends in an error before its final bytes.
 */
class HoldLast extends Transform {
  private held: Buffer | undefined;

  constructor(private readonly verdict: Promise<unknown>) {
    super();
    verdict.catch(() => undefined);
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    const prev = this.held;
    this.held = chunk;
    cb(null, prev);
  }

  override _flush(cb: TransformCallback): void {
    this.verdict.then(
      () => cb(null, this.held),
      (err: unknown) => cb(err as Error),
    );
  }
}
