import { createWriteStream } from 'node:fs';
import {
  link,
  mkdir,
  open,
  readdir,
  readFile,
  rename,
  rm,
  rmdir,
  stat,
  unlink,
  writeFile,
} from 'node:fs/promises';
import { createHash, randomUUID } from 'node:crypto';
import { dirname, join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { systemClock, type Clock } from '../../util/clock.js';
import {
  PathNotFoundError,
  validateKey,
  type ByteSource,
  type ListOptions,
  type ListPage,
  type StorageDriver,
  type Versioned,
} from '../driver.js';
import { pageOf } from './list.js';
import { fileSource, relayable } from './relay.js';

const TMP = '.tmp';
/** STALE_TMP_MS is the age after which a temporary file is a crash's leftover. */
const STALE_TMP_MS = 24 * 60 * 60 * 1000;
/**
 * STALE_LOCK_MS is the age after which a compare-and-set lock file is a crash's leftover
 * and may be broken; a lock is held for one read and one rename.
 */
const STALE_LOCK_MS = 10_000;
/** COMMIT_ATTEMPTS bounds renames into a folder that a concurrent prune keeps removing. */
const COMMIT_ATTEMPTS = 20;

/**
 * FilesystemDriver stores each key as a file below `root`. Writes go to a temporary
 * file under `root/.tmp` and are renamed into place, so readers never see a partial
 * object and a crash leaves only temporary files (removed at a later start once stale).
 * A failed write removes its own temporary file. `putIfVersion` holds a lock file
 * (`.tmp/lock-<hash of key>`, created exclusively) around its read and rename, so it is
 * atomic against every process using the same folder.
 */
export class FilesystemDriver implements StorageDriver {
  readonly name = 'filesystem';
  private readonly root: string;
  private ready: Promise<void> | undefined;
  /** queued chains this process's compare-and-sets per key, so they wait here, not spin. */
  private readonly queued = new Map<string, Promise<unknown>>();

  constructor(
    root: string,
    /** clock ages stale temporary and lock files and paces lock retries (systemClock). */
    private readonly clock: Clock = systemClock,
  ) {
    this.root = resolve(root);
  }

  private path(key: string): string {
    return join(this.root, ...key.split('/'));
  }

  private async init(): Promise<void> {
    this.ready ??= (async () => {
      const tmp = join(this.root, TMP);
      await mkdir(tmp, { recursive: true });
      // Other processes (workers, replicas) may be writing here right now: remove only
      // temporary files a crash left behind long ago.
      const cutoff = this.clock.now() - STALE_TMP_MS;
      for (const name of await readdir(tmp)) {
        const st = await stat(join(tmp, name)).catch(() => undefined);
        if (st && st.mtimeMs < cutoff) await rm(join(tmp, name), { force: true });
      }
    })();
    return this.ready;
  }

  private tmpPath(): string {
    return join(this.root, TMP, randomUUID());
  }

  async get(key: string): Promise<Buffer> {
    validateKey(key);
    try {
      return await readFile(this.path(key));
    } catch (err) {
      throw mapErr(err, key);
    }
  }

  async put(key: string, data: Buffer | string): Promise<void> {
    validateKey(key);
    await this.init();
    const tmp = this.tmpPath();
    try {
      await writeFile(tmp, data);
      await this.commit(tmp, key);
    } catch (err) {
      await unlink(tmp).catch(() => undefined);
      throw err;
    }
  }

  async putIfAbsent(key: string, data: Buffer | string): Promise<boolean> {
    validateKey(key);
    await this.init();
    const tmp = this.tmpPath();
    const dest = this.path(key);
    try {
      await writeFile(tmp, data);
      // link(2) fails with EEXIST when dest exists: an atomic create-if-absent.
      await this.intoFolder(dest, () => link(tmp, dest));
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw err;
    } finally {
      await unlink(tmp).catch(() => undefined);
    }
  }

  async getVersioned(key: string): Promise<Versioned> {
    const data = await this.get(key);
    return { data, version: versionOf(data) };
  }

  async putIfVersion(
    key: string,
    data: Buffer | string,
    expected: string | null,
  ): Promise<boolean> {
    validateKey(key);
    await this.init();
    if (expected === null) return this.putIfAbsent(key, data);
    return this.locked(key, async () => {
      const current = await readFile(this.path(key)).catch((err: unknown) => {
        if (mapErr(err, key) instanceof PathNotFoundError) return undefined;
        throw err;
      });
      if (current === undefined || versionOf(current) !== expected) return false;
      await this.put(key, data);
      return true;
    });
  }

  /**
   * locked runs `fn` holding the compare-and-set lock of `key`: first this process's queue,
   * then an exclusively created lock file that other processes respect.
   */
  private async locked<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const before = this.queued.get(key) ?? Promise.resolve();
    const run = before.then(async () => {
      const lock = join(this.root, TMP, 'lock-' + createHash('sha256').update(key).digest('hex'));
      for (let attempt = 0; ; attempt++) {
        try {
          await (await open(lock, 'wx')).close();
          break;
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
          const st = await stat(lock).catch(() => undefined);
          if (st && this.clock.now() - st.mtimeMs > STALE_LOCK_MS) {
            await unlink(lock).catch(() => undefined);
            continue;
          }
          await this.clock.sleep(Math.min(20, 1 + attempt));
        }
      }
      try {
        return await fn();
      } finally {
        await unlink(lock).catch(() => undefined);
      }
    });
    const settled = run.catch(() => undefined);
    this.queued.set(key, settled);
    void settled.then(() => {
      if (this.queued.get(key) === settled) this.queued.delete(key);
    });
    return run;
  }

  async writeStream(key: string, source: Readable): Promise<number> {
    validateKey(key);
    await this.init();
    const tmp = this.tmpPath();
    const out = createWriteStream(tmp);
    try {
      await pipeline(source, out);
      await this.commit(tmp, key);
      return out.bytesWritten;
    } catch (err) {
      await unlink(tmp).catch(() => undefined);
      throw err;
    }
  }

  private async commit(tmp: string, key: string): Promise<void> {
    const dest = this.path(key);
    await this.intoFolder(dest, () => rename(tmp, dest));
  }

  /**
   * intoFolder runs `place` (a rename or link to `dest`), creating `dest`'s folder when it
   * is missing; a concurrent `pruneEmpty` may remove that folder again between the mkdir
   * and the rename, so this retries a bounded number of times.
   */
  private async intoFolder(dest: string, place: () => Promise<void>): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await place();
        return;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || attempt >= COMMIT_ATTEMPTS)
          throw err;
        // A recursive mkdir races the prune too (a parent it made vanishes before its child
        // is made): that is one more attempt, not a failure.
        await mkdir(dirname(dest), { recursive: true }).catch((e: unknown) => {
          if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
        });
      }
    }
  }

  async read(key: string, offset = 0, length?: number): Promise<Readable> {
    validateKey(key);
    const p = this.path(key);
    const fh = await open(p, 'r').catch((err: unknown) => {
      throw mapErr(err, key);
    });
    const st = await fh.stat();
    if (st.isDirectory()) {
      await fh.close();
      throw new PathNotFoundError(key);
    }
    if (length === 0 || offset >= st.size) {
      await fh.close();
      return Readable.from([]);
    }
    const end = length === undefined ? Infinity : offset + length - 1;
    return fh.createReadStream({ start: offset, end, autoClose: true });
  }

  /**
   * openSource relays a read of at least RELAY_MIN_BYTES that the file holds whole
   * (./relay.ts); anything else is left to `read`.
   */
  async openSource(key: string, offset: number, length: number): Promise<ByteSource | undefined> {
    validateKey(key);
    if (!relayable(offset, length)) return undefined;
    return fileSource(
      async () => {
        const fh = await open(this.path(key), 'r').catch((err: unknown) => {
          throw mapErr(err, key);
        });
        const st = await fh.stat().catch(async (err: unknown) => {
          await fh.close();
          throw err;
        });
        if (st.isDirectory()) {
          await fh.close();
          throw new PathNotFoundError(key);
        }
        if (offset + length > st.size) {
          await fh.close();
          return undefined;
        }
        return fh;
      },
      offset,
      length,
    );
  }

  async stat(key: string): Promise<{ size: number; modified: Date }> {
    validateKey(key);
    try {
      const st = await stat(this.path(key));
      if (st.isDirectory()) throw new PathNotFoundError(key);
      return { size: st.size, modified: st.mtime };
    } catch (err) {
      throw mapErr(err, key);
    }
  }

  async list(prefix: string, opts: ListOptions = {}): Promise<ListPage> {
    validateKey(prefix, true);
    let names: string[];
    try {
      names = await readdir(prefix === '' ? this.root : this.path(prefix.slice(0, -1)));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return { names: [], truncated: false };
      throw err;
    }
    if (prefix === '') names = names.filter((n) => n !== TMP);
    return pageOf(names, opts);
  }

  async delete(key: string): Promise<void> {
    validateKey(key);
    try {
      await unlink(this.path(key));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'EISDIR' && code !== 'ENOTDIR') throw err;
    }
    await this.pruneEmpty(key);
  }

  async deletePrefix(prefix: string): Promise<void> {
    validateKey(prefix, true);
    if (prefix === '') {
      for (const n of (await this.list('')).names)
        await rm(join(this.root, n), { recursive: true, force: true });
      return;
    }
    // A concurrent write may add a file while the folder is being emptied (ENOTEMPTY):
    // that write then also counts as before the delete, and is removed by the next try.
    for (let attempt = 1; ; attempt++) {
      try {
        await rm(this.path(prefix.slice(0, -1)), { recursive: true, force: true });
        break;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOTEMPTY' || attempt >= COMMIT_ATTEMPTS)
          throw err;
      }
    }
    await this.pruneEmpty(prefix.slice(0, -1));
  }

  /** pruneEmpty removes now-empty parent directories of `key`, so listings stay honest. */
  private async pruneEmpty(key: string): Promise<void> {
    const parts = key.split('/');
    for (let i = parts.length - 1; i > 0; i--) {
      const dir = join(this.root, ...parts.slice(0, i));
      try {
        const entries = await readdir(dir);
        if (entries.length > 0) return;
        await rmdir(dir).catch(() => undefined);
      } catch {
        return;
      }
    }
  }

  async ping(): Promise<void> {
    await this.init();
    const st = await stat(this.root);
    if (!st.isDirectory()) throw new Error(`storage root ${this.root} is not a directory`);
  }
}

/** versionOf is a filesystem object's version: the hash of its content. */
function versionOf(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

function mapErr(err: unknown, key: string): Error {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'EISDIR')
    return new PathNotFoundError(key);
  return err as Error;
}
