import type { Readable } from 'node:stream';
import type {
  ByteSource,
  ListOptions,
  ListPage,
  StorageDriver,
  Versioned,
  WriteOptions,
} from '../storage/driver.js';
import { currentScope } from '../util/scope.js';

/** ActionObserver hears each storage call: its action, duration and outcome. */
export type ActionObserver = (driver: string, action: string, seconds: number) => void;

/**
 * MeteredDriver decorates a driver: each call is timed (`registry_storage_action_seconds`)
 * and counted against the current request. Behaviour, errors and results are the inner
 * driver's, unchanged. `read` and `writeStream` are timed until their stream is opened or
 * fully stored, respectively.
 */
export class MeteredDriver implements StorageDriver {
  readonly name: string;

  constructor(
    readonly inner: StorageDriver,
    private readonly observe: ActionObserver,
  ) {
    this.name = inner.name;
    if (inner.presignGet) {
      this.presignGet = (key, expiry) =>
        this.timed('PresignGet', () => inner.presignGet!(key, expiry));
    }
    if (inner.openSource) {
      // Counted as a read when it read: an undefined answer leaves the read to `read`.
      this.openSource = (key, offset, length) =>
        this.timed(
          'Reader',
          () => inner.openSource!(key, offset, length),
          (src) => src !== undefined,
        );
    }
    if (inner.abortStaleMultipartUploads) {
      // Not timed, like `ping`: a background sweep, not a storage action of a request.
      this.abortStaleMultipartUploads = (d) => inner.abortStaleMultipartUploads!(d);
    }
    if (inner.close) this.close = () => inner.close!();
  }

  presignGet?(key: string, expirySeconds: number): Promise<string>;
  openSource?(key: string, offset: number, length: number): Promise<ByteSource | undefined>;
  abortStaleMultipartUploads?(olderThan: Date): Promise<number>;
  close?(): Promise<void>;

  /**
   * timed times a call and counts it against the request. With `called`, a call whose
   * result says it reached no storage (undefined from `openSource`) is neither.
   */
  private async timed<T>(
    action: string,
    fn: () => Promise<T>,
    called?: (result: T) => boolean,
  ): Promise<T> {
    const scope = currentScope();
    if (scope && !called) scope.storageCalls++;
    const started = process.hrtime.bigint();
    let counted = !called;
    try {
      const result = await fn();
      counted ||= called!(result);
      return result;
    } catch (err) {
      counted = true;
      throw err;
    } finally {
      if (counted) {
        if (scope && called) scope.storageCalls++;
        this.observe(this.name, action, Number(process.hrtime.bigint() - started) / 1e9);
      }
    }
  }
  get(key: string): Promise<Buffer> {
    return this.timed('GetContent', () => this.inner.get(key));
  }
  put(key: string, data: Buffer | string): Promise<void> {
    return this.timed('PutContent', () => this.inner.put(key, data));
  }
  putIfAbsent(key: string, data: Buffer | string): Promise<boolean> {
    return this.timed('PutContentIfAbsent', () => this.inner.putIfAbsent(key, data));
  }
  getVersioned(key: string): Promise<Versioned> {
    return this.timed('GetContentVersioned', () => this.inner.getVersioned(key));
  }
  putIfVersion(key: string, data: Buffer | string, expected: string | null): Promise<boolean> {
    return this.timed('PutContentIfVersion', () => this.inner.putIfVersion(key, data, expected));
  }
  writeStream(
    key: string,
    source: Readable,
    sizeHint?: number,
    opts?: WriteOptions,
  ): Promise<number> {
    return this.timed('Writer', () => this.inner.writeStream(key, source, sizeHint, opts));
  }
  read(key: string, offset?: number, length?: number): Promise<Readable> {
    return this.timed('Reader', () => this.inner.read(key, offset, length));
  }
  stat(key: string): Promise<{ size: number; modified: Date }> {
    return this.timed('Stat', () => this.inner.stat(key));
  }
  list(prefix: string, opts?: ListOptions): Promise<ListPage> {
    return this.timed('List', () => this.inner.list(prefix, opts));
  }
  delete(key: string): Promise<void> {
    return this.timed('Delete', () => this.inner.delete(key));
  }
  deletePrefix(prefix: string): Promise<void> {
    return this.timed('DeletePrefix', () => this.inner.deletePrefix(prefix));
  }
  ping(): Promise<void> {
    return this.inner.ping();
  }
}
