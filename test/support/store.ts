import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { parseDigest } from '../../server/registry/reference.js';
import { Registry } from '../../server/registry/repository.js';
import { Uploads, type UploadSession } from '../../server/registry/uploads.js';
import type { ListOptions, ListPage } from '../../server/storage/driver.js';
import { InMemoryDriver } from '../../server/storage/drivers/inmemory.js';
import { systemClock } from '../../server/util/clock.js';
import { silentLogger } from '../../server/util/log.js';
import { ManualClock } from './clock.js';
import type { Built } from './image.js';
import { directViews } from '../../server/storage/views.js';

/**
 * ClockedDriver is the in-memory driver with modification times taken from a test clock, so
 * grace windows are tested without sleeping. `beforeDelete` lets a test act (or crash) right
 * before a deletion reaches storage; `before` right before a read or a listing does.
 */
export class ClockedDriver extends InMemoryDriver {
  readonly clock = new ManualClock({ start: 1_700_000_000_000 });
  private readonly times = new Map<string, number>();
  beforeDelete?: (key: string) => void | Promise<void>;
  before?: (op: 'get' | 'list' | 'stat', key: string) => void | Promise<void>;

  /** now is the clock's time (ms). */
  get now(): number {
    return this.clock.now();
  }

  /** advance moves the clock forward by `seconds`. */
  advance(seconds: number): void {
    this.clock.advance(seconds * 1000);
  }

  override async put(key: string, data: Buffer | string): Promise<void> {
    await super.put(key, data);
    this.times.set(key, this.now);
  }

  override async putIfAbsent(key: string, data: Buffer | string): Promise<boolean> {
    const created = await super.putIfAbsent(key, data);
    if (created) this.times.set(key, this.now);
    return created;
  }

  override async putIfVersion(
    key: string,
    data: Buffer | string,
    expected: string | null,
  ): Promise<boolean> {
    const stored = await super.putIfVersion(key, data, expected);
    if (stored) this.times.set(key, this.now);
    return stored;
  }

  override async writeStream(key: string, source: Readable): Promise<number> {
    const n = await super.writeStream(key, source);
    this.times.set(key, this.now);
    return n;
  }

  override async get(key: string): Promise<Buffer> {
    await this.before?.('get', key);
    return super.get(key);
  }

  override async list(prefix: string, opts?: ListOptions): Promise<ListPage> {
    await this.before?.('list', prefix);
    return super.list(prefix, opts);
  }

  override async stat(key: string): Promise<{ size: number; modified: Date }> {
    await this.before?.('stat', key);
    const s = await super.stat(key);
    return { size: s.size, modified: new Date(this.times.get(key) ?? this.now) };
  }

  override async delete(key: string): Promise<void> {
    await this.beforeDelete?.(key);
    await super.delete(key);
  }

  /** keys lists every stored key. */
  keys(): string[] {
    return Object.keys(this.snapshot());
  }
}

/** TestStore is a registry and upload service over a ClockedDriver, with push helpers. */
export class TestStore {
  readonly driver = new ClockedDriver();
  readonly uploads = new Uploads(directViews(this.driver), {
    ttlSeconds: 12 * 3600,
    clock: this.driver.clock,
    log: silentLogger,
  });
  /** registry reads fences on the driver's clock; its pauses (races with real I/O) are real. */
  readonly registry = new Registry(directViews(this.driver), {
    allowSparse: false,
    clock: this.driver.clock,
    pause: (ms) => systemClock.sleep(ms),
  });

  /** pushBlob uploads bytes in one request and commits them into `repo`. */
  async pushBlob(repo: string, bytes: Buffer): Promise<string> {
    const state = await this.uploads.append(
      await this.uploads.start(repo),
      Readable.from([bytes]),
      { contentLength: bytes.length },
    );
    const digest = parseDigest('sha256:' + createHash('sha256').update(bytes).digest('hex'));
    await this.uploads.complete(state, digest, this.registry.repository(repo).blobs);
    return digest.value;
  }

  /** startUpload begins a chunked upload that stays open (an in-flight push). */
  async startUpload(repo: string, chunk: Buffer): Promise<UploadSession> {
    return this.uploads.append(await this.uploads.start(repo), Readable.from([chunk]), {
      rangeStart: 0,
      rangeEnd: chunk.length - 1,
      contentLength: chunk.length,
    });
  }

  /** push uploads every blob and child of `m`, then the manifest, tagged with `tags`. */
  async push(repo: string, m: Built, ...tags: string[]): Promise<void> {
    for (const c of m.children) await this.push(repo, c);
    for (const b of m.blobs) await this.pushBlob(repo, b.bytes);
    const r = this.registry.repository(repo);
    const { digest } = await r.put(m.body, m.mediaType);
    for (const t of tags) await r.tag(t, digest);
  }

  /**
   * pull reads a manifest by tag or digest and every blob and child it names, checking each
   * digest; throws on anything missing or corrupt.
   */
  async pull(repo: string, ref: string): Promise<void> {
    const r = this.registry.repository(repo);
    const digest = ref.includes(':') ? parseDigest(ref) : await r.resolve(ref);
    const m = await r.get(digest);
    const doc = JSON.parse(m.body.toString('utf8')) as {
      config?: { digest: string };
      layers?: { digest: string }[];
      manifests?: { digest: string }[];
    };
    for (const child of doc.manifests ?? []) await this.pull(repo, child.digest);
    for (const b of [...(doc.config ? [doc.config] : []), ...(doc.layers ?? [])]) {
      const d = parseDigest(b.digest);
      const blobs = r.blobs;
      const desc = await blobs.stat(d);
      const h = createHash('sha256');
      for await (const c of await blobs.open(desc)) h.update(c as Buffer);
      if (`sha256:${h.digest('hex')}` !== b.digest) throw new Error(`corrupt blob ${b.digest}`);
    }
  }
}
