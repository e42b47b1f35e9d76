import { describe, expect, it } from 'vitest';
import { header, padding, type TarEntry } from '../../../server/image/tar.js';
import { ArchiveError, readTar, type TarLimits } from '../../../server/import/tar-stream.js';
import { tarBytes } from '../../support/archive.js';

const file = (path: string, text: string): TarEntry => ({
  type: 'file',
  path,
  mode: 0o644,
  size: Buffer.byteLength(text),
  source: Buffer.from(text),
});

/** raw is one member's header and body as a hostile writer would put them (no sorting). */
function raw(e: TarEntry, edit?: (h: Buffer) => void): Buffer {
  const h = header(e, 0);
  const main = h.subarray(h.length - 512);
  if (edit) {
    edit(main);
    checksum(main);
  }
  const body = e.type === 'file' ? (e.source as Buffer) : Buffer.alloc(0);
  return Buffer.concat([h, body, padding(body.length)]);
}

function checksum(h: Buffer): void {
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'ascii');
}

const END = Buffer.alloc(1024);

/** chunks splits bytes into small chunks, as a socket delivers them. */
async function* chunks(b: Buffer, size = 100): AsyncGenerator<Buffer> {
  for (let i = 0; i < b.length; i += size) yield b.subarray(i, i + size);
}

/** members reads every member, with its body as text. */
async function members(b: Buffer, limits?: TarLimits) {
  const out: { kind: string; path: string; text?: string; target?: string }[] = [];
  for await (const e of readTar(chunks(b), limits)) {
    if (e.kind === 'file') {
      const parts: Buffer[] = [];
      for await (const c of e.body) parts.push(c);
      out.push({ kind: e.kind, path: e.path, text: Buffer.concat(parts).toString() });
    } else if (e.kind === 'link') out.push({ kind: e.kind, path: e.path, target: e.target });
    else out.push({ kind: e.kind, path: e.path });
  }
  return out;
}

const refusal = async (b: Buffer, limits?: TarLimits) => {
  const err = await members(b, limits).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ArchiveError);
  return (err as Error).message;
};

describe('readTar', () => {
  it('GIVEN a tar with files, a folder, a long name and a symlink inside WHEN read in small chunks THEN each member comes with its bytes and the link with its target', async () => {
    const long = `blobs/${'x'.repeat(150)}`;
    const tar = await tarBytes([
      { type: 'dir', path: 'blobs', mode: 0o755 },
      file('index.json', '{"a":1}'),
      file(long, 'long'),
      { type: 'symlink', path: 'legacy/layer.tar', target: '../index.json' },
    ]);
    expect(await members(tar)).toEqual([
      { kind: 'dir', path: 'blobs' },
      { kind: 'file', path: long, text: 'long' },
      { kind: 'file', path: 'index.json', text: '{"a":1}' },
      { kind: 'link', path: 'legacy/layer.tar', target: 'index.json' },
    ]);
  });

  it('GIVEN members whose bodies are not read WHEN the next member is asked for THEN the rest is skipped and it reads right', async () => {
    const tar = await tarBytes([file('a', 'x'.repeat(1500)), file('b', 'second')]);
    const paths: string[] = [];
    let text = '';
    for await (const e of readTar(chunks(tar, 333))) {
      paths.push(e.path);
      if (e.kind === 'file' && e.path === 'a') await e.body[Symbol.asyncIterator]().next();
      if (e.kind === 'file' && e.path === 'b') for await (const c of e.body) text += c.toString();
    }
    expect(paths).toEqual(['a', 'b']);
    expect(text).toBe('second');
  });

  it('GIVEN a tar cut inside a member, or after one without the end blocks WHEN read THEN it is refused as truncated', async () => {
    const tar = await tarBytes([file('a', 'x'.repeat(2000))]);
    expect(await refusal(tar.subarray(0, 1200))).toMatch(/truncated/);
    expect(await refusal(tar.subarray(0, tar.length - 1024))).toMatch(/truncated/);
    expect(await refusal(tar.subarray(0, 300))).toMatch(/truncated/);
  });

  it('GIVEN a header whose checksum fails, or bytes that are no tar WHEN read THEN it is refused', async () => {
    const tar = await tarBytes([file('a', 'hello')]);
    tar[10] = 0x41;
    expect(await refusal(tar)).toMatch(/checksum/);
    expect(await refusal(Buffer.from('not a tar at all'.repeat(64)))).toMatch(/not a tar/);
  });

  it('GIVEN a path with .. or an absolute path WHEN read THEN it is refused before its body is handed out', async () => {
    for (const path of ['../escape', 'blobs/../../escape', '/etc/passwd'])
      expect(await refusal(Buffer.concat([raw(file(path, 'x')), END]))).toMatch(
        /\.\. are refused|absolute/,
      );
  });

  it('GIVEN a symlink out of the archive, to an absolute path, or a hard link with .. WHEN read THEN it is refused', async () => {
    const link = (target: string): TarEntry => ({ type: 'symlink', path: 'a/b', target });
    expect(await refusal(Buffer.concat([raw(link('../../etc/passwd')), END]))).toMatch(
      /out of the archive/,
    );
    expect(await refusal(Buffer.concat([raw(link('/etc/passwd')), END]))).toMatch(/absolute/);
    const hard = raw(link('../../x'), (h) => (h[156] = '1'.charCodeAt(0)));
    expect(await refusal(Buffer.concat([hard, END]))).toMatch(/\.\. are refused/);
  });

  it('GIVEN a device or FIFO member WHEN read THEN it is refused', async () => {
    for (const type of ['3', '4', '6']) {
      const dev = raw(file('dev/sda', ''), (h) => (h[156] = type.charCodeAt(0)));
      expect(await refusal(Buffer.concat([dev, END]))).toMatch(/device or FIFO/);
    }
  });

  it('GIVEN an extended header above the limit WHEN read THEN it is refused without reading it', async () => {
    const tar = await tarBytes([file(`${'d/'.repeat(2000)}f`, 'x')]);
    expect(await refusal(tar, { metaBytes: 1024, members: 10 })).toMatch(/extended header/);
  });

  it('GIVEN more members than the limit WHEN read THEN it is refused', async () => {
    const tar = await tarBytes([file('a', '1'), file('b', '2'), file('c', '3')]);
    expect(await refusal(tar, { metaBytes: 1024, members: 2 })).toMatch(/more than 2 members/);
  });

  it('GIVEN a base-256 size beyond any safe number WHEN read THEN it is refused', async () => {
    const huge = raw(file('a', ''), (h) => {
      h.fill(0xff, 124, 136);
    });
    expect(await refusal(Buffer.concat([huge, END]))).toMatch(/out of range/);
  });
});
