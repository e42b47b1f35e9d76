import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { ArchiveDest, DockerArchiveSource } from '../../../server/copy/archive.js';
import { copy, type CopyOptions } from '../../../server/copy/copy.js';
import { dirFiles, LayoutDest, LayoutSource } from '../../../server/copy/layout.js';
import { MediaTypes } from '../../../server/copy/spec.js';
import { TarFiles } from '../../../server/copy/tar.js';
import { tarStream, type TarEntry } from '../../../server/image/tar.js';
import { OciLayoutBuilder, readLayout, tar } from '../../support/oci-layout.js';
import { scratchDir } from '../../support/scratch.js';

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const tmp = () => scratchDir('berth-docker-archive-');
const one: CopyOptions = {
  all: false,
  referrers: false,
  platform: { os: 'linux', architecture: 'amd64' },
};

async function writeTarFile(
  file: string,
  files: Record<string, Buffer>,
  links: Record<string, string> = {},
): Promise<void> {
  const entries: TarEntry[] = Object.entries(files).map(([path, source]) => ({
    type: 'file',
    path,
    mode: 0o644,
    size: source.length,
    source,
  }));
  for (const [path, target] of Object.entries(links))
    entries.push({ type: 'symlink', path, target });
  await pipeline(Readable.from(tarStream(entries, 0)), createWriteStream(file));
}

/**
 * legacyArchive is a `docker save` from before docker 25: `<hex>.json` config, `<id>/layer.tar`
 * layers (the second a symlink to `../<hex>.tar`, as docker and skopeo write shared layers),
 * and a fully qualified RepoTag.
 */
async function legacyArchive() {
  const layers = [tar('a.txt', randomBytes(3000)), tar('b.txt', 'b\n')];
  const config = Buffer.from(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      rootfs: { type: 'layers', diff_ids: layers.map(sha) },
    }),
  );
  const file = join(tmp(), 'legacy.tar');
  const files: Record<string, Buffer> = { [`${sha(config).slice(7)}.json`]: config };
  files['layer0/layer.tar'] = layers[0]!;
  files[`${sha(layers[1]!).slice(7)}.tar`] = layers[1]!;
  const links = { 'layer1/layer.tar': `../${sha(layers[1]!).slice(7)}.tar` };
  files['manifest.json'] = Buffer.from(
    JSON.stringify([
      {
        Config: `${sha(config).slice(7)}.json`,
        RepoTags: ['docker.io/team/app:v1'],
        Layers: layers.map((_, i) => `layer${i}/layer.tar`),
      },
    ]),
  );
  await writeTarFile(file, files, links);
  return { file, config, layers };
}

describe('docker-archive', () => {
  it('GIVEN a legacy docker save archive with a symlinked layer WHEN read by its familiar repo:tag THEN a Docker schema 2 manifest names the config and layers, whose bytes copy unchanged', async () => {
    const { file, config, layers } = await legacyArchive();
    const src = await DockerArchiveSource.open('d', file, 'team/app:v1');
    const root = await src.root();
    expect(root.mediaType).toBe(MediaTypes.dockerManifest);
    const doc = JSON.parse(root.body.toString()) as {
      config: { digest: string; mediaType: string };
      layers: { digest: string; size: number; mediaType: string }[];
    };
    expect(doc.config).toMatchObject({ digest: sha(config), mediaType: MediaTypes.dockerConfig });
    expect(doc.layers.map((l) => [l.digest, l.size, l.mediaType])).toEqual(
      layers.map((l) => [sha(l), l.length, MediaTypes.dockerLayer]),
    );
    const out = tmp();
    const r = await copy(src, await new LayoutDest('oci', out, 'v1').open(), one);
    expect(r.digest).toBe(root.digest);
    for (const b of [config, ...layers]) expect(readLayout(out).blob(sha(b))).toEqual(b);
  });

  it('GIVEN an archive holding no such name WHEN opened THEN the error says so', async () => {
    const { file } = await legacyArchive();
    await expect(DockerArchiveSource.open('d', file, 'other:v1')).rejects.toThrow(/no image named/);
  });

  it('GIVEN an OCI image WHEN written as a docker-archive THEN manifest.json names its config and layers in blobs/sha256, the OCI layout inside keeps the manifest, and reading it back gives the same manifest digest', async () => {
    const layout = new OciLayoutBuilder(tmp())
      .image('amd64', { platform: { os: 'linux', architecture: 'amd64' }, ref: 'v1' })
      .write();
    const image = layout.get('amd64');
    const file = join(tmp(), 'modern.tar');
    const src = new LayoutSource('oci', dirFiles(layout.dir), 'v1');
    await copy(src, await ArchiveDest.open('d', file, 'team/app', true), one);
    const t = await TarFiles.open(file);
    const manifest = JSON.parse((await t.read('manifest.json'))!.toString()) as unknown;
    const [config, ...layers] = image.blobs;
    expect(manifest).toEqual([
      {
        Config: `blobs/sha256/${config!.slice(7)}`,
        RepoTags: ['team/app:latest'],
        Layers: layers.map((l) => `blobs/sha256/${l.slice(7)}`),
      },
    ]);
    expect(t.has('oci-layout')).toBe(true);
    for (const d of image.blobs) expect(sha((await t.read(`blobs/sha256/${d.slice(7)}`))!)).toBe(d);
    const back = await DockerArchiveSource.open('d', file, 'team/app:latest');
    expect((await back.root()).digest).toBe(image.digest);
  });

  it('GIVEN an index WHEN written to a docker-archive with --all THEN it is refused: the format holds one image', async () => {
    const layout = new OciLayoutBuilder(tmp())
      .image('amd64', { platform: { os: 'linux', architecture: 'amd64' } })
      .image('arm64', { platform: { os: 'linux', architecture: 'arm64' } })
      .index('multi', ['amd64', 'arm64'], { ref: 'v1' })
      .write();
    const src = new LayoutSource('oci', dirFiles(layout.dir), 'v1');
    const dst = await ArchiveDest.open('d', join(tmp(), 'x.tar'), 'x', true);
    await expect(copy(src, dst, { ...one, all: true })).rejects.toThrow(/one image/);
  });

  it('GIVEN a docker-archive holding one image WHEN another image is copied to it THEN it holds only the new image', async () => {
    const layout = new OciLayoutBuilder(tmp())
      .image('amd64', { platform: { os: 'linux', architecture: 'amd64' }, ref: 'a' })
      .image('arm64', { platform: { os: 'linux', architecture: 'arm64' }, ref: 'b' })
      .write();
    const file = join(tmp(), 'x.tar');
    const src = (ref: string) => new LayoutSource('oci', dirFiles(layout.dir), ref);
    await copy(src('a'), await ArchiveDest.open('d', file, 'x:v1', true), one);
    await copy(src('b'), await ArchiveDest.open('d', file, 'x:v1', true), one);
    const arm = layout.get('arm64');
    const blobs = (await TarFiles.open(file)).paths().filter((p) => p.startsWith('blobs/'));
    expect(blobs.sort()).toEqual(
      [arm.digest, ...arm.blobs].map((d) => `blobs/sha256/${d.slice(7)}`).sort(),
    );
    expect((await (await DockerArchiveSource.open('d', file, 'x:v1')).root()).digest).toBe(
      arm.digest,
    );
  });
});
