import { createReadStream } from 'node:fs';

/**
 * TarEntry is one member of a deterministic tar archive. `path` is relative, without a
 * leading or trailing slash (`usr/local/bin/node`). Owner defaults to 0:0. A file's bytes
 * come from `source`: a Buffer, or a host path streamed when the archive is written (its
 * size must still be `size` then).
 */
export type TarEntry =
  | { type: 'dir'; path: string; mode: number; uid?: number; gid?: number }
  | {
      type: 'file';
      path: string;
      mode: number;
      size: number;
      source: string | Buffer;
      uid?: number;
      gid?: number;
    }
  | { type: 'symlink'; path: string; target: string };

const BLOCK = 512;
const NAME_MAX = 100;

/**
 * sortEntries orders entries by path (code unit order, so every parent directory comes before
 * its children) and throws on a path given twice with different content.
 */
export function sortEntries(entries: Iterable<TarEntry>): TarEntry[] {
  const byPath = new Map<string, TarEntry>();
  for (const e of entries) {
    const prior = byPath.get(e.path);
    if (prior && JSON.stringify(prior) !== JSON.stringify(e))
      throw new Error(`tar: ${e.path} added twice with different content`);
    byPath.set(e.path, e);
  }
  return [...byPath.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/**
 * header encodes one ustar header block (plus a PAX extended header before it when the name
 * or link target exceeds 100 bytes). Owner names are left empty so extractors use the ids;
 * the same entry and mtime always give the same bytes.
 */
export function header(e: TarEntry, mtime: number): Buffer {
  const name = e.type === 'dir' ? `${e.path}/` : e.path;
  const link = e.type === 'symlink' ? e.target : '';
  const pax: string[] = [];
  if (Buffer.byteLength(name) > NAME_MAX) pax.push(record('path', name));
  if (Buffer.byteLength(link) > NAME_MAX) pax.push(record('linkpath', link));
  const main = block({
    name: truncate(name),
    mode: e.type === 'symlink' ? 0o777 : e.mode,
    uid: e.type === 'symlink' ? 0 : (e.uid ?? 0),
    gid: e.type === 'symlink' ? 0 : (e.gid ?? 0),
    size: e.type === 'file' ? e.size : 0,
    mtime,
    type: e.type === 'file' ? '0' : e.type === 'dir' ? '5' : '2',
    link: truncate(link),
  });
  if (pax.length === 0) return main;
  const body = Buffer.from(pax.join(''));
  const paxHeader = block({
    name: truncate(`PaxHeaders/${e.path}`),
    mode: 0o644,
    uid: 0,
    gid: 0,
    size: body.length,
    mtime,
    type: 'x',
    link: '',
  });
  return Buffer.concat([paxHeader, body, padding(body.length), main]);
}

/** padding is the zero bytes that fill `size` up to a whole block. */
export function padding(size: number): Buffer {
  return Buffer.alloc((BLOCK - (size % BLOCK)) % BLOCK);
}

/**
 * tarStream yields a POSIX tar archive of `entries`, sorted by path, every entry with the
 * same `mtime` (seconds), ending with the two zero blocks. File sources are streamed, never
 * read whole; a source whose size differs from its entry's throws.
 */
export async function* tarStream(
  entries: Iterable<TarEntry>,
  mtime: number,
): AsyncGenerator<Buffer> {
  for (const e of sortEntries(entries)) {
    yield header(e, mtime);
    if (e.type !== 'file') continue;
    if (Buffer.isBuffer(e.source)) {
      if (e.source.length !== e.size) throw new Error(`tar: ${e.path}: size mismatch`);
      yield e.source;
    } else {
      let n = 0;
      for await (const chunk of createReadStream(e.source, { highWaterMark: 1 << 20 })) {
        n += (chunk as Buffer).length;
        if (n > e.size) break;
        yield chunk as Buffer;
      }
      if (n !== e.size) throw new Error(`tar: ${e.source} changed size while it was read`);
    }
    yield padding(e.size);
  }
  yield Buffer.alloc(2 * BLOCK);
}

interface Fields {
  name: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  type: string;
  link: string;
}

function block(f: Fields): Buffer {
  const h = Buffer.alloc(BLOCK);
  const octal = (offset: number, length: number, n: number) =>
    h.write(n.toString(8).padStart(length - 1, '0') + '\0', offset, length, 'ascii');
  h.write(f.name, 0, NAME_MAX, 'utf8');
  octal(100, 8, f.mode);
  octal(108, 8, f.uid);
  octal(116, 8, f.gid);
  octal(124, 12, f.size);
  octal(136, 12, f.mtime);
  h.write(' '.repeat(8), 148, 8, 'ascii');
  h.write(f.type, 156, 1, 'ascii');
  h.write(f.link, 157, NAME_MAX, 'utf8');
  h.write('ustar\0', 257, 6, 'ascii');
  h.write('00', 263, 2, 'ascii');
  let sum = 0;
  for (const byte of h) sum += byte;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8, 'ascii');
  return h;
}

/** record is one PAX record: `<length> <key>=<value>\n`, the length counting itself. */
function record(key: string, value: string): string {
  const rest = ` ${key}=${value}\n`;
  let len = Buffer.byteLength(rest) + 1;
  while (String(len).length + Buffer.byteLength(rest) !== len) len++;
  return `${len}${rest}`;
}

function truncate(s: string): string {
  const b = Buffer.from(s);
  return b.length <= NAME_MAX ? s : b.subarray(0, NAME_MAX).toString('utf8');
}
