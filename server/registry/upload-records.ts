import { Errors, type RegistryError } from '../errors.js';
import { isNotFound, type StorageDriver, type Versioned } from '../storage/driver.js';
import { Paths } from '../storage/paths.js';
import {
  decodeRecord,
  encodeRecord,
  type Committed,
  type LiveSession,
  type Saved,
  type UploadRecord,
} from './upload-state.js';

/** SwapResult is a compare-and-set's outcome: `now` is what storage holds instead when it lost. */
export interface SwapResult {
  won: boolean;
  now?: UploadRecord;
}

/**
 * UploadRecords reads and writes upload session records (`uploads/<id>`). Every write is a
 * compare-and-set against the record a request read, or against absence (ADR 0017): of two
 * requests that read the same record only one may change it.
 */
export class UploadRecords {
  constructor(private readonly driver: StorageDriver) {}

  /** create saves the first record of a session; false when the id is taken. */
  async create(session: Saved): Promise<boolean> {
    return this.driver.putIfVersion(Paths.upload(session.id), encodeRecord(session), null);
  }

  /** read is the session's record as storage holds it now, with its version; undefined when absent. */
  async read(id: string): Promise<UploadRecord | undefined> {
    let v: Versioned;
    try {
      v = await this.driver.getVersioned(Paths.upload(id));
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
    return decodeRecord(v.data, v.version);
  }

  /**
   * expected is the version storage must still hold for `from` to be replaced: the one it
   * was read at, none (null) for a session never saved. A record this process saved itself
   * has no version: it is read back and compared by value; undefined when it changed.
   */
  private async expected(from: LiveSession | Committed): Promise<string | null | undefined> {
    if (from.phase === 'open') return null;
    if (from.version !== undefined) return from.version;
    const now = await this.read(from.id);
    return now !== undefined && encodeRecord(now) === encodeRecord(from) ? now.version : undefined;
  }

  /**
   * swap stores `next` as the session's record if storage still holds what `from` was
   * read as: one compare-and-set. `won` false comes with the record storage holds instead
   * (`now`, undefined when there is none). With `sameIsMine`, storage holding exactly
   * `next` counts as won: a write whose answer was lost and retried finds its own record
   * (or an identical one, for writes where that changes nothing: tombstones, and chunks,
   * whose segment names are unique).
   */
  async swap(
    from: LiveSession | Committed,
    next: UploadRecord,
    sameIsMine = true,
  ): Promise<SwapResult> {
    const data = encodeRecord(next);
    const expected = await this.expected(from);
    if (
      expected !== undefined &&
      (await this.driver.putIfVersion(Paths.upload(from.id), data, expected))
    )
      return { won: true };
    const now = await this.read(from.id);
    if (sameIsMine && now !== undefined && encodeRecord(now) === data) return { won: true };
    return { won: false, now };
  }

  /**
   * lostTo is the error of a request whose compare-and-set lost to `now`: the session ended
   * (committed, cancelled, gone): BLOB_UPLOAD_UNKNOWN; it grew through another request:
   * 416, so the client asks where it is.
   */
  lostTo(id: string, now: UploadRecord | undefined): RegistryError {
    if (now?.phase !== 'saved') return Errors.blobUploadUnknown({ id });
    return Errors.chunkInvalid(
      { offset: now.offset },
      undefined,
      `the upload moved on to offset ${now.offset} through another request`,
    );
  }

  /** remove deletes the session's record (once it ended: committed, or purged). */
  async remove(id: string): Promise<void> {
    await this.driver.delete(Paths.upload(id));
  }
}
