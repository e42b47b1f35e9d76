import { createHash } from 'node:crypto';
import { mkdir, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeLayer, writeTar, type Written } from './blob.js';
import { blobPath, MediaTypes, type Descriptor } from './spec.js';
import type { TarEntry } from './tar.js';

/**
 * LayoutWriter writes an OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/*`) into
 * a folder it owns: `open` refuses a folder that is neither absent, empty nor an OCI layout,
 * and empties it. Blobs are content-addressed, so writing one twice is harmless.
 */
export class LayoutWriter {
  private constructor(readonly dir: string) {}

  static async open(dir: string): Promise<LayoutWriter> {
    const names: string[] = await readdir(dir).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return [];
      throw err;
    });
    if (names.length > 0 && !names.includes('oci-layout'))
      throw new Error(`${dir} is not empty and not an OCI layout: refusing to overwrite it`);
    for (const n of names) await rm(join(dir, n), { recursive: true, force: true });
    await mkdir(join(dir, 'blobs', 'sha256'), { recursive: true });
    await writeFile(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
    return new LayoutWriter(dir);
  }

  /** bytes stores a small blob (config, manifest) and returns its descriptor. */
  async bytes(body: Buffer, mediaType: string): Promise<Descriptor> {
    const digest = `sha256:${createHash('sha256').update(body).digest('hex')}`;
    await writeFile(join(this.dir, blobPath(digest)), body);
    return { mediaType, digest, size: body.length };
  }

  /** layer streams entries as a gzip'd tar blob; returns its descriptor and diff ID. */
  async layer(
    entries: Iterable<TarEntry>,
    mtime: number,
  ): Promise<{ descriptor: Descriptor; diffId: string }> {
    const tmp = join(this.dir, 'blobs', 'sha256', '.layer');
    const w = await writeLayer(entries, mtime, tmp);
    await rename(tmp, join(this.dir, blobPath(w.digest)));
    return {
      descriptor: { mediaType: MediaTypes.layerGzip, digest: w.digest, size: w.size },
      diffId: w.diffId,
    };
  }

  /** index writes index.json, the last file: a layout with one is complete. */
  async index(body: Buffer): Promise<void> {
    await writeFile(join(this.dir, 'index.json'), body);
  }
}

/**
 * writeArchive tars a finished layout (sorted entries, owner root, mtime `mtime`) into
 * `file`, with `extra` files (e.g. docker's `manifest.json`) at the archive's root: the
 * format `skopeo copy oci-archive:`, `ctr images import` and `docker load` read.
 */
export async function writeArchive(
  layoutDir: string,
  file: string,
  mtime: number,
  extra: Record<string, Buffer>,
): Promise<Written> {
  const entries: TarEntry[] = [
    { type: 'dir', path: 'blobs', mode: 0o755 },
    { type: 'dir', path: 'blobs/sha256', mode: 0o755 },
  ];
  const add = async (path: string) => {
    const st = await stat(join(layoutDir, path));
    entries.push({ type: 'file', path, mode: 0o644, size: st.size, source: join(layoutDir, path) });
  };
  await add('oci-layout');
  await add('index.json');
  for (const hex of await readdir(join(layoutDir, 'blobs', 'sha256')))
    await add(`blobs/sha256/${hex}`);
  for (const [path, body] of Object.entries(extra))
    entries.push({ type: 'file', path, mode: 0o644, size: body.length, source: body });
  return writeTar(entries, mtime, file);
}
