import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { posix } from 'node:path';
import type { Readable } from 'node:stream';
import { CopyError } from './spec.js';

/** TarMember is where one regular file's bytes lie in a tar file. */
export interface TarMember {
  offset: number;
  size: number;
}

const BLOCK = 512;

/**
 * indexTar reads the headers of the tar `file` (ustar, PAX `path`, GNU long names) and maps
 * each regular file's path (without a leading `./`) to its bytes' offset and size. Contents
 * are never read here.
 */
export async function indexTar(file: string): Promise<Map<string, TarMember>> {
  const fh = await open(file, 'r').catch((err: NodeJS.ErrnoException) => {
    throw new CopyError(`${file}: cannot open: ${err.code ?? err.message}`);
  });
  try {
    const out = new Map<string, TarMember>();
    const links = new Map<string, string>();
    const h = Buffer.alloc(BLOCK);
    let pos = 0;
    let longName: string | undefined;
    for (;;) {
      const { bytesRead } = await fh.read(h, 0, BLOCK, pos);
      if (bytesRead < BLOCK || h.every((b) => b === 0)) break;
      const size = octal(h.subarray(124, 136), file);
      const type = String.fromCharCode(h[156] ?? 0);
      const body = pos + BLOCK;
      if (type === 'x' || type === 'L') {
        const data = Buffer.alloc(size);
        await fh.read(data, 0, size, body);
        longName = type === 'L' ? cstring(data) : (paxPath(data) ?? longName);
      } else {
        const name = clean(longName ?? headerName(h));
        if (type === '0' || type === '\0') out.set(name, { offset: body, size });
        if (type === '1' || type === '2') links.set(name, linkTarget(name, type, h));
        longName = undefined;
      }
      pos = body + Math.ceil(size / BLOCK) * BLOCK;
    }
    for (const [name, target] of links) {
      const m = out.get(target);
      if (m) out.set(name, m);
    }
    return out;
  } finally {
    await fh.close();
  }
}

/** linkTarget is the member a hard link (named from the root) or symlink (relative) points at. */
function linkTarget(name: string, type: string, h: Buffer): string {
  const target = cstring(h.subarray(157, 257));
  if (type === '1' || target.startsWith('/')) return clean(target);
  return posix.normalize(posix.join(posix.dirname(name), target));
}

/** TarFiles reads files out of an indexed tar. */
export class TarFiles {
  private constructor(
    readonly file: string,
    private readonly members: Map<string, TarMember>,
  ) {}

  static async open(file: string): Promise<TarFiles> {
    return new TarFiles(file, await indexTar(file));
  }

  has(path: string): boolean {
    return this.members.has(path);
  }

  size(path: string): number | undefined {
    return this.members.get(path)?.size;
  }

  paths(): string[] {
    return [...this.members.keys()];
  }

  /** read reads a member whole, or its first `limit` bytes; undefined when absent. */
  async read(path: string, limit?: number): Promise<Buffer | undefined> {
    const m = this.members.get(path);
    if (!m) return undefined;
    const fh = await open(this.file, 'r');
    try {
      const n = Math.min(m.size, limit ?? m.size);
      const b = Buffer.alloc(n);
      await fh.read(b, 0, n, m.offset);
      return b;
    } finally {
      await fh.close();
    }
  }

  stream(path: string): Readable {
    const m = this.members.get(path);
    if (!m) throw new CopyError(`${this.file}: no ${path} in the archive`);
    if (m.size === 0) return createReadStream(this.file, { start: 1, end: 0 });
    return createReadStream(this.file, { start: m.offset, end: m.offset + m.size - 1 });
  }
}

function octal(b: Buffer, file: string): number {
  if ((b[0] ?? 0) & 0x80) return Number(b.readBigUInt64BE(b.length - 8));
  const s = cstring(b).trim();
  const n = s === '' ? 0 : parseInt(s, 8);
  if (!Number.isSafeInteger(n)) throw new CopyError(`${file}: not a tar file`);
  return n;
}

function cstring(b: Buffer): string {
  const z = b.indexOf(0);
  return b.subarray(0, z === -1 ? b.length : z).toString('utf8');
}

function headerName(h: Buffer): string {
  const name = cstring(h.subarray(0, 100));
  const magic = h.subarray(257, 262).toString('ascii');
  const prefix = magic === 'ustar' ? cstring(h.subarray(345, 500)) : '';
  return prefix ? `${prefix}/${name}` : name;
}

function paxPath(data: Buffer): string | undefined {
  for (const line of data.toString('utf8').split('\n')) {
    const m = /^\d+ path=(.*)$/s.exec(line);
    if (m) return m[1];
  }
  return undefined;
}

function clean(path: string): string {
  return path.replace(/^(\.\/)+/, '').replace(/^\/+/, '');
}
