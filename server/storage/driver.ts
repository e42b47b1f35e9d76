import type { Readable } from 'node:stream';

/**
 * ByteSink is where a {@link ByteSource} copies to: an HTTP response or a socket. A write's
 * callback runs once the sink no longer needs the chunk.
 */
export interface ByteSink {
  write(chunk: Uint8Array, cb: (err?: Error | null) => void): boolean;
  once(event: 'close', listener: () => void): unknown;
  off(event: 'close', listener: () => void): unknown;
}

/**
 * ByteSource is a range of an object opened for copying into a socket: storage has
 * answered, so a missing object has already thrown. The bytes move through a few reused
 * buffers, never through a stream's per-chunk allocations (ADR 0010).
 */
export interface ByteSource {
  /** length is the number of bytes `copyTo` writes. */
  readonly length: number;
  /**
   * copyTo writes every byte into `sink` without ending it; resolves once the sink has
   * taken the last one. Rejects when storage fails midway or the sink closes early; the
   * sink then holds a prefix of the bytes, which the caller must not complete.
   */
  copyTo(sink: ByteSink): Promise<void>;
  /** abandon releases a source that will not be copied. */
  abandon(): void;
}

/**
 * StorageDriver is the small key/stream contract every backend implements. Keys are
 * slash-separated relative paths made only by `server/storage/paths.ts`; a driver never
 * interprets them beyond mapping them to its own namespace.
 *
 * Every method either succeeds completely or changes nothing a reader can see:
 * `put` and `writeStream` make an object visible only once all its bytes are stored
 * (a crash mid-write leaves no partial object under `key`).
 */
/** WriteOptions are hints a `writeStream` caller gives decorators; drivers may ignore them. */
export interface WriteOptions {
  /**
   * keepLocal asks a local blob cache to keep a copy of the bytes as they are written: a
   * client is reading them at the same time (a pull-through fetch), so later reads are
   * reads of them too.
   */
  keepLocal?: boolean;
}

export interface StorageDriver {
  /** name labels metrics and logs: `filesystem`, `s3`, `inmemory`. */
  readonly name: string;

  /** get returns a small object whole. Throws {@link PathNotFoundError} when absent. */
  get(key: string): Promise<Buffer>;

  /** put stores a small object atomically, replacing any object at `key`. */
  put(key: string, data: Buffer | string): Promise<void>;

  /**
   * putIfAbsent stores a small object only if no object exists at `key`, atomically
   * against every other writer (S3 `If-None-Match: *`, an exclusive link on a
   * filesystem). Resolves true when this call created the object, false when one was
   * already there (which is then left unchanged). The primitive behind leases.
   */
  putIfAbsent(key: string, data: Buffer | string): Promise<boolean>;

  /**
   * getVersioned reads a small object whole from storage itself (never a cache), with a
   * version token of exactly that content: the `expected` of a later {@link putIfVersion}.
   * Throws {@link PathNotFoundError} when absent.
   */
  getVersioned(key: string): Promise<Versioned>;

  /**
   * putIfVersion is a compare-and-set: it stores a small object only if the object at `key`
   * is still at `expected` (from {@link getVersioned}; `null`: only if no object exists),
   * atomically against every other `putIfVersion` and `putIfAbsent` of the key (S3
   * `If-Match` / `If-None-Match: *`, a lock file on a filesystem). Resolves true when this
   * call stored the object, false when the object had changed (which is then left as it
   * is). A version may recur for equal content; callers compare values, not histories.
   * The primitive behind tags (ADR 0013).
   */
  putIfVersion(key: string, data: Buffer | string, expected: string | null): Promise<boolean>;

  /**
   * writeStream stores `source` under `key` with memory bounded whatever its length.
   * `sizeHint` (when the caller knows the length) lets a driver choose part sizes.
   * Resolves with the byte count stored. If `source` errors or is destroyed, rejects
   * and leaves nothing visible under `key`.
   */
  writeStream(
    key: string,
    source: Readable,
    sizeHint?: number,
    opts?: WriteOptions,
  ): Promise<number>;

  /**
   * read streams an object's bytes from `offset` (default 0) for `length` bytes
   * (default: to the end). Throws {@link PathNotFoundError} when absent.
   */
  read(key: string, offset?: number, length?: number): Promise<Readable>;

  /**
   * openSource is `read` for a caller that copies into a socket: bytes [offset,
   * offset+length) as a {@link ByteSource}, or undefined when this driver (or this read:
   * a small one, a busy process) has no cheaper way than `read`. Throws
   * {@link PathNotFoundError} when absent.
   */
  openSource?(key: string, offset: number, length: number): Promise<ByteSource | undefined>;

  /** stat returns an object's size. Throws {@link PathNotFoundError} when absent. */
  stat(key: string): Promise<{ size: number; modified: Date }>;

  /**
   * list returns the names directly below `prefix` (`''` for the root, otherwise ending
   * with `/`): objects and
   * "directories" alike, without the prefix and without a trailing slash, sorted by
   * byte order, after `startAfter` (exclusive), at most `limit` of them. A missing
   * prefix lists as empty.
   */
  list(prefix: string, opts?: ListOptions): Promise<ListPage>;

  /** delete removes one object. Deleting an absent object is not an error. */
  delete(key: string): Promise<void>;

  /**
   * deletePrefix removes every object whose key starts with `prefix` (which ends with
   * `/`), and nothing else: a sibling such as `prefix-other/` is untouched.
   */
  deletePrefix(prefix: string): Promise<void>;

  /** presignGet returns a URL a client may GET the object from directly, if supported. */
  presignGet?(key: string, expirySeconds: number): Promise<string>;

  /**
   * abortStaleMultipartUploads aborts the backend's unfinished multipart uploads in this
   * driver's namespace that started before `olderThan`, and resolves with how many it
   * aborted. Only a driver whose interrupted writes leave such uploads behind (S3) has it;
   * decorators pass it through. Safe to call from several processes at once: an upload
   * already aborted or completed is not counted.
   */
  abortStaleMultipartUploads?(olderThan: Date): Promise<number>;

  /** ping checks that the backend is reachable and usable (readiness). */
  ping(): Promise<void>;

  /** close releases sockets and timers. */
  close?(): Promise<void>;
}

/** Versioned is an object's bytes with the version token of that content. */
export interface Versioned {
  data: Buffer;
  version: string;
}

export interface ListOptions {
  startAfter?: string;
  limit?: number;
  /**
   * flat: the caller knows the folder holds only objects, no folders (tags, catalog
   * markers). A driver may then take storage's word that more names follow a full page
   * instead of reading one name past it. Should a folder turn up anyway, the worst is a
   * page that says `truncated` before an empty one.
   */
  flat?: boolean;
}

export interface ListPage {
  names: string[];
  /** truncated is true when more names follow the last one returned. */
  truncated: boolean;
}

/** PathNotFoundError is thrown by drivers for a key that holds no object. */
export class PathNotFoundError extends Error {
  override readonly name = 'PathNotFoundError';
  constructor(readonly key: string) {
    super(`path not found: ${key}`);
  }
}

/** InvalidPathError is thrown for a key that is not a well-formed relative path. */
export class InvalidPathError extends Error {
  override readonly name = 'InvalidPathError';
  constructor(readonly key: string) {
    super(`invalid storage path: ${JSON.stringify(key)}`);
  }
}

const SEGMENT = /^[A-Za-z0-9._,=@+-]+$/;

/**
 * validateKey throws {@link InvalidPathError} unless `key` is a relative path of
 * non-empty segments free of `.`/`..` and of characters outside a safe set. With
 * `prefix`, the key must end in `/` (a directory).
 */
export function validateKey(key: string, prefix = false): void {
  if (prefix && key === '') return;
  const body = prefix ? key.slice(0, -1) : key;
  if (key.length === 0 || key.length > 1000 || (prefix && !key.endsWith('/'))) {
    throw new InvalidPathError(key);
  }
  for (const seg of body.split('/')) {
    if (!SEGMENT.test(seg) || seg === '.' || seg === '..' || seg.length > 255) {
      throw new InvalidPathError(key);
    }
  }
}

export function isNotFound(err: unknown): boolean {
  return err instanceof PathNotFoundError;
}

/** listAll returns every name directly below `prefix`, across pages. */
export async function listAll(driver: StorageDriver, prefix: string): Promise<string[]> {
  const out: string[] = [];
  let startAfter: string | undefined;
  for (;;) {
    const page = await driver.list(prefix, { startAfter, limit: 1000 });
    out.push(...page.names);
    if (!page.truncated || page.names.length === 0) return out;
    startAfter = page.names[page.names.length - 1];
  }
}
