import { createHash } from 'node:crypto';
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ArchiveDest, openOciArchive } from '../../../server/copy/archive.js';
import { copy, type CopyOptions } from '../../../server/copy/copy.js';
import { dirFiles, LayoutDest, LayoutSource } from '../../../server/copy/layout.js';
import { OciLayoutBuilder, readLayout } from '../../support/oci-layout.js';
import { scratchDir } from '../../support/scratch.js';

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const tmp = () => scratchDir('berth-copy-unit-');
const all: CopyOptions = {
  all: true,
  referrers: true,
  platform: { os: 'linux', architecture: 'amd64' },
};

/** fixture is a layout with a two-platform index `v1` and an SBOM whose subject is the index. */
function fixture() {
  const dir = tmp();
  const layout = new OciLayoutBuilder(dir)
    .image('amd64', { platform: { os: 'linux', architecture: 'amd64' } })
    .image('arm64', { platform: { os: 'linux', architecture: 'arm64' } })
    .index('multi', ['amd64', 'arm64'], { ref: 'v1' })
    .artifact('sbom', { subject: 'multi', artifactType: 'application/spdx+json' })
    .write();
  return layout;
}

const source = (dir: string, ref?: string) => new LayoutSource(`oci:${dir}`, dirFiles(dir), ref);
const dest = (dir: string, ref?: string) => new LayoutDest(`oci:${dir}`, dir, ref).open();

/** expectSameBlobs: every blob of `layout` is in `dir`, byte-identical, and no temp file is left. */
async function expectSameBlobs(dir: string, layout: ReturnType<typeof fixture>) {
  const names = await readdir(join(dir, 'blobs', 'sha256'));
  expect(names.filter((n) => n.includes('.'))).toEqual([]);
  for (const [digest, bytes] of layout.blobs)
    expect(sha(await readFile(join(dir, 'blobs', 'sha256', digest.slice(7))))).toBe(sha(bytes));
}

describe('copy between OCI layouts and oci-archives', () => {
  it('GIVEN a layout with an index and a referrer WHEN copied oci → oci-archive → oci with --all --referrers THEN the index digest is kept, every blob is byte-identical and the referrer is an index.json entry', async () => {
    const layout = fixture();
    const tar = join(tmp(), 'a.tar');
    const out = tmp();
    const first = await copy(
      source(layout.dir, 'v1'),
      await ArchiveDest.open('a', tar, 'v1', false),
      all,
    );
    expect(first.digest).toBe(layout.get('multi').digest);
    const back = await copy(await openOciArchive('a', tar, 'v1'), await dest(out, 'v1'), all);
    expect(back.digest).toBe(layout.get('multi').digest);
    expect(back.blobsCopied).toBe(first.blobsCopied);
    await expectSameBlobs(out, layout);
    const read = readLayout(out);
    expect(read.resolve('v1').digest).toBe(layout.get('multi').digest);
    expect(read.index.manifests.map((m) => m.digest)).toContain(layout.get('sbom').digest);
  });

  it('GIVEN an index WHEN copied without --all THEN only the chosen platform image is copied, as the root', async () => {
    const layout = fixture();
    const out = tmp();
    const r = await copy(source(layout.dir, 'v1'), await dest(out, 'arm'), {
      ...all,
      all: false,
      referrers: false,
      platform: { os: 'linux', architecture: 'arm64' },
    });
    expect(r.digest).toBe(layout.get('arm64').digest);
    expect(r.manifests).toBe(1);
    expect(readLayout(out).resolve('arm').digest).toBe(layout.get('arm64').digest);
  });

  it('GIVEN a destination with a corrupt blob and a stray partial file WHEN copied again THEN only the corrupt blob is copied and the rest skipped', async () => {
    const layout = fixture();
    const out = tmp();
    const first = await copy(source(layout.dir, 'v1'), await dest(out, 'v1'), all);
    const layer = layout.get('amd64').blobs.at(-1)!;
    await writeFile(join(out, 'blobs', 'sha256', layer.slice(7)), 'not the layer');
    await writeFile(join(out, 'blobs', 'sha256', `${layer.slice(7)}.partial`), 'half');
    const again = await copy(source(layout.dir, 'v1'), await dest(out, 'v1'), all);
    expect([again.blobsCopied, again.blobsSkipped]).toEqual([1, first.blobsCopied - 1]);
    const idle = await copy(source(layout.dir, 'v1'), await dest(out, 'v1'), all);
    expect([idle.blobsCopied, idle.bytes]).toEqual([0, 0]);
    expect(sha(await readFile(join(out, 'blobs', 'sha256', layer.slice(7))))).toBe(layer);
  });

  it('GIVEN a source blob whose bytes do not match its digest WHEN copied THEN the copy fails and keeps nothing of it', async () => {
    const layout = fixture();
    const layer = layout.get('amd64').blobs.at(-1)!;
    const file = join(layout.dir, 'blobs', 'sha256', layer.slice(7));
    const size = (await stat(file)).size;
    await writeFile(file, Buffer.alloc(size, 7));
    const out = tmp();
    await expect(copy(source(layout.dir, 'v1'), await dest(out, 'v1'), all)).rejects.toThrow(
      /hash to/,
    );
    const names = await readdir(join(out, 'blobs', 'sha256'));
    expect(names.filter((n) => n.startsWith(layer.slice(7)))).toEqual([]);
  });

  it('GIVEN an oci-archive already written WHEN the same copy runs again THEN every blob is skipped and the archive is left as it was', async () => {
    const layout = fixture();
    const tar = join(tmp(), 'a.tar');
    await copy(source(layout.dir, 'v1'), await ArchiveDest.open('a', tar, 'v1', false), all);
    const bytes = await readFile(tar);
    const again = await copy(
      source(layout.dir, 'v1'),
      await ArchiveDest.open('a', tar, 'v1', false),
      all,
    );
    expect(again.blobsCopied).toBe(0);
    expect(await readFile(tar)).toEqual(bytes);
    await expect(stat(`${tar}.partial`)).rejects.toThrow();
  });

  it('GIVEN an archive copy that stopped midway (its staging folder left with some blobs) WHEN run again THEN it goes on from the staging folder and writes the archive', async () => {
    const layout = fixture();
    const tar = join(tmp(), 'a.tar');
    const staged = await ArchiveDest.open('a', tar, 'v1', false);
    const layer = layout.get('arm64').blobs.at(-1)!;
    const { Readable } = await import('node:stream');
    const bytes = layout.bytes(layer);
    await staged.putBlob({ digest: layer, size: bytes.length }, Readable.from([bytes]));
    await expect(stat(`${tar}.partial`)).resolves.toBeDefined();
    const r = await copy(
      source(layout.dir, 'v1'),
      await ArchiveDest.open('a', tar, 'v1', false),
      all,
    );
    expect(r.blobsSkipped).toBe(1);
    await expect(stat(`${tar}.partial`)).rejects.toThrow();
    const back = tmp();
    await copy(await openOciArchive('a', tar, 'v1'), await dest(back, 'v1'), all);
    await expectSameBlobs(back, layout);
  });
});
