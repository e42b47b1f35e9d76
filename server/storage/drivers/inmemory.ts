import { Readable } from 'node:stream';
import {
  PathNotFoundError,
  validateKey,
  type ListOptions,
  type ListPage,
  type StorageDriver,
  type Versioned,
} from '../driver.js';
import { listChildren } from './list.js';

/** InMemoryDriver keeps objects in a Map. For unit tests only: nothing survives the process. */
export class InMemoryDriver implements StorageDriver {
  readonly name = 'inmemory';
  private readonly objects = new Map<string, { data: Buffer; modified: Date; version: number }>();
  private version = 0;

  async get(key: string): Promise<Buffer> {
    validateKey(key);
    const o = this.objects.get(key);
    if (!o) throw new PathNotFoundError(key);
    return o.data;
  }

  async put(key: string, data: Buffer | string): Promise<void> {
    validateKey(key);
    this.objects.set(key, {
      data: Buffer.from(data),
      modified: new Date(),
      version: ++this.version,
    });
  }

  async putIfAbsent(key: string, data: Buffer | string): Promise<boolean> {
    validateKey(key);
    if (this.objects.has(key)) return false;
    this.objects.set(key, {
      data: Buffer.from(data),
      modified: new Date(),
      version: ++this.version,
    });
    return true;
  }

  async getVersioned(key: string): Promise<Versioned> {
    validateKey(key);
    const o = this.objects.get(key);
    if (!o) throw new PathNotFoundError(key);
    return { data: o.data, version: String(o.version) };
  }

  async putIfVersion(
    key: string,
    data: Buffer | string,
    expected: string | null,
  ): Promise<boolean> {
    validateKey(key);
    const o = this.objects.get(key);
    if ((o === undefined) !== (expected === null)) return false;
    if (o && String(o.version) !== expected) return false;
    this.objects.set(key, {
      data: Buffer.from(data),
      modified: new Date(),
      version: ++this.version,
    });
    return true;
  }

  async writeStream(key: string, source: Readable): Promise<number> {
    validateKey(key);
    const chunks: Buffer[] = [];
    for await (const c of source) chunks.push(Buffer.from(c as Uint8Array));
    const data = Buffer.concat(chunks);
    this.objects.set(key, { data, modified: new Date(), version: ++this.version });
    return data.length;
  }

  async read(key: string, offset = 0, length?: number): Promise<Readable> {
    const data = await this.get(key);
    const end = length === undefined ? data.length : Math.min(data.length, offset + length);
    return Readable.from([data.subarray(Math.min(offset, data.length), end)]);
  }

  async stat(key: string): Promise<{ size: number; modified: Date }> {
    validateKey(key);
    const o = this.objects.get(key);
    if (!o) throw new PathNotFoundError(key);
    return { size: o.data.length, modified: o.modified };
  }

  async list(prefix: string, opts: ListOptions = {}): Promise<ListPage> {
    validateKey(prefix, true);
    return listChildren(this.objects.keys(), prefix, opts);
  }

  async delete(key: string): Promise<void> {
    validateKey(key);
    this.objects.delete(key);
  }

  async deletePrefix(prefix: string): Promise<void> {
    validateKey(prefix, true);
    for (const k of [...this.objects.keys()]) if (k.startsWith(prefix)) this.objects.delete(k);
  }

  async ping(): Promise<void> {}

  /** snapshot lists every key with its size, for tests that check nothing changed. */
  snapshot(): Record<string, number> {
    const entries: [string, number][] = [...this.objects].map(([k, o]) => [k, o.data.length]);
    return Object.fromEntries(entries.sort(([a], [b]) => (a < b ? -1 : 1)));
  }
}
