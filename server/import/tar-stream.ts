import { posix } from 'node:path';

/** ArchiveError is a tar stream that cannot be read safely; the message says what and where. */
export class ArchiveError extends Error {
  override readonly name = 'ArchiveError';
}

/**
 * TarEntry is one member of a streamed tar. A file's `body` yields exactly `size` bytes and
 * must be read to its end or abandoned before the next entry is asked for (the rest is
 * skipped then). A link names another member by its cleaned path; nothing is ever followed
 * outside the archive.
 */
export type TarEntry =
  | { kind: 'file'; path: string; size: number; body: AsyncIterable<Buffer> }
  | { kind: 'link'; path: string; target: string }
  | { kind: 'dir'; path: string };

/** TarLimits bound what one archive's headers may cost. */
export interface TarLimits {
  /** metaBytes is the largest PAX or GNU long-name header body. */
  metaBytes: number;
  /** members is the most members (files, links, directories) one archive may hold. */
  members: number;
}

export const DEFAULT_TAR_LIMITS: TarLimits = { metaBytes: 1 << 20, members: 200_000 };

const BLOCK = 512;
const MAX_PATH = 4096;

/**
 * readTar reads a tar (ustar, PAX, GNU long names) from a byte stream and yields its
 * members in order. It refuses, with an ArchiveError: a header whose checksum fails; a
 * stream that ends inside a member or without the end-of-archive block; an absolute path
 * or one with a `..` segment; a link whose target is absolute or leaves the archive;
 * device and FIFO members; PAX and long-name headers above `limits.metaBytes`; more than
 * `limits.members` members. Global PAX headers and unknown types are skipped.
 */
export async function* readTar(
  src: AsyncIterable<Buffer>,
  limits: TarLimits = DEFAULT_TAR_LIMITS,
): AsyncGenerator<TarEntry> {
  const bytes = new ByteReader(src);
  let pax: Map<string, string> | undefined;
  let longName: string | undefined;
  let longLink: string | undefined;
  for (let count = 0; ;) {
    const h = await bytes.exactly(BLOCK, 'a header');
    if (h.every((b) => b === 0)) return;
    checkHeader(h);
    const type = String.fromCharCode(h[156]!);
    const size = pax?.has('size') ? paxSize(pax.get('size')!) : octal(h.subarray(124, 136));
    if (type === 'x' || type === 'g' || type === 'L' || type === 'K') {
      if (size > limits.metaBytes)
        throw new ArchiveError(`a ${size}-byte extended header is above ${limits.metaBytes}`);
      const data = await bytes.exactly(size, 'an extended header');
      await bytes.skip(padding(size), 'an extended header');
      if (type === 'x') pax = parsePax(data);
      if (type === 'L') longName = cstring(data);
      if (type === 'K') longLink = cstring(data);
      continue;
    }
    if (++count > limits.members)
      throw new ArchiveError(`more than ${limits.members} members in the archive`);
    const path = cleanPath(pax?.get('path') ?? longName ?? headerName(h));
    const linkName = pax?.get('linkpath') ?? longLink ?? cstring(h.subarray(157, 257));
    pax = longName = longLink = undefined;
    const entry = toEntry(type, path, linkName, size, bytes);
    if (entry) yield entry;
    await bytes.finish(size + padding(size));
  }
}

function toEntry(
  type: string,
  path: string,
  linkName: string,
  size: number,
  bytes: ByteReader,
): TarEntry | undefined {
  switch (type) {
    case '0':
    case '\0':
    case '7':
      return { kind: 'file', path, size, body: bytes.member(size, path) };
    case '1':
      return { kind: 'link', path, target: cleanPath(linkName) };
    case '2':
      return { kind: 'link', path, target: symlinkTarget(path, linkName) };
    case '5':
      return { kind: 'dir', path };
    case '3':
    case '4':
    case '6':
      throw new ArchiveError(`${path}: device or FIFO members are refused`);
    default:
      return undefined;
  }
}

/**
 * cleanPath is a member path relative to the archive root, without `./`, empty segments
 * or a trailing `/`; absolute paths and `..` segments are refused.
 */
export function cleanPath(raw: string): string {
  if (raw.length > MAX_PATH) throw new ArchiveError(`a member path is above ${MAX_PATH} bytes`);
  if (raw.includes('\0')) throw new ArchiveError('a member path holds a NUL byte');
  if (raw.startsWith('/')) throw new ArchiveError(`${raw}: absolute paths are refused`);
  const segs = raw.split('/').filter((s) => s !== '' && s !== '.');
  if (segs.includes('..')) throw new ArchiveError(`${raw}: paths with .. are refused`);
  return segs.join('/');
}

/** symlinkTarget resolves a symlink's target against its directory, inside the archive only. */
export function symlinkTarget(path: string, target: string): string {
  if (target.startsWith('/'))
    throw new ArchiveError(`${path}: a symlink to an absolute path is refused`);
  const joined = posix.join(posix.dirname(path), target);
  if (joined === '..' || joined.startsWith('../'))
    throw new ArchiveError(`${path}: a symlink out of the archive is refused`);
  return cleanPath(joined);
}

function checkHeader(h: Buffer): void {
  const stored = octal(h.subarray(148, 156));
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : h[i]!;
  if (sum !== stored) throw new ArchiveError('not a tar file (a header checksum fails)');
}

function octal(b: Buffer): number {
  if (b[0]! & 0x80) {
    const n = b.readBigUInt64BE(b.length - 8);
    if (n > BigInt(Number.MAX_SAFE_INTEGER) || b.subarray(1, b.length - 8).some((x) => x !== 0))
      throw new ArchiveError('a member size is out of range');
    return Number(n);
  }
  const s = cstring(b).trim();
  if (!/^[0-7]*$/.test(s)) throw new ArchiveError('not a tar file (a bad number in a header)');
  const n = s === '' ? 0 : parseInt(s, 8);
  if (!Number.isSafeInteger(n)) throw new ArchiveError('a member size is out of range');
  return n;
}

function paxSize(value: string): number {
  if (!/^\d{1,15}$/.test(value)) throw new ArchiveError('a PAX size is out of range');
  return Number(value);
}

/** parsePax reads PAX records (`<length> <key>=<value>\n`), each length checked. */
function parsePax(data: Buffer): Map<string, string> {
  const out = new Map<string, string>();
  let pos = 0;
  while (pos < data.length) {
    const space = data.indexOf(0x20, pos);
    const len = Number(data.subarray(pos, space === -1 ? pos : space).toString('ascii'));
    if (space === -1 || !Number.isSafeInteger(len) || len <= 0 || pos + len > data.length)
      throw new ArchiveError('a malformed PAX header');
    const record = data.subarray(space + 1, pos + len - 1).toString('utf8');
    const eq = record.indexOf('=');
    if (eq === -1 || data[pos + len - 1] !== 0x0a) throw new ArchiveError('a malformed PAX header');
    out.set(record.slice(0, eq), record.slice(eq + 1));
    pos += len;
  }
  return out;
}

function cstring(b: Buffer): string {
  const z = b.indexOf(0);
  return b.subarray(0, z === -1 ? b.length : z).toString('utf8');
}

function headerName(h: Buffer): string {
  const name = cstring(h.subarray(0, 100));
  const prefix =
    h.subarray(257, 262).toString('ascii') === 'ustar' ? cstring(h.subarray(345, 500)) : '';
  return prefix ? `${prefix}/${name}` : name;
}

function padding(size: number): number {
  return (BLOCK - (size % BLOCK)) % BLOCK;
}

/**
 * ByteReader pulls exact byte counts out of a chunked stream, holding at most one chunk.
 * A member's body is handed out as a generator; `finish` skips whatever it left unread.
 */
class ByteReader {
  private readonly it: AsyncIterator<Buffer>;
  private buf: Buffer = Buffer.alloc(0);
  /** consumed counts the bytes handed out since the current member's header. */
  private consumed = 0;

  constructor(src: AsyncIterable<Buffer>) {
    this.it = src[Symbol.asyncIterator]();
  }

  private async fill(what: string): Promise<void> {
    const next = await this.it.next();
    if (next.done) throw new ArchiveError(`the archive is truncated (it ends inside ${what})`);
    this.buf = this.buf.length === 0 ? next.value : Buffer.concat([this.buf, next.value]);
  }

  /** take hands out up to `max` buffered bytes, reading a chunk when none are. */
  private async take(max: number, what: string): Promise<Buffer> {
    if (this.buf.length === 0) await this.fill(what);
    const out = this.buf.subarray(0, max);
    this.buf = this.buf.subarray(out.length);
    return out;
  }

  async exactly(n: number, what: string): Promise<Buffer> {
    while (this.buf.length < n) await this.fill(what);
    const out = Buffer.from(this.buf.subarray(0, n));
    this.buf = this.buf.subarray(n);
    return out;
  }

  async skip(n: number, what: string): Promise<void> {
    for (let left = n; left > 0;) left -= (await this.take(left, what)).length;
  }

  async *member(size: number, path: string): AsyncGenerator<Buffer> {
    this.consumed = 0;
    while (this.consumed < size) {
      const chunk = await this.take(size - this.consumed, path);
      this.consumed += chunk.length;
      yield chunk;
    }
  }

  /** finish skips the rest of a member of `total` bytes (body and padding). */
  async finish(total: number): Promise<void> {
    const left = total - Math.min(this.consumed, total);
    this.consumed = 0;
    await this.skip(left, 'a member');
    this.consumed = 0;
  }
}
