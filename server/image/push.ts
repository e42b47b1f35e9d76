import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { RegistryClient } from '../client/registry.js';
import { blobPath, Keys, MediaTypes, type Descriptor } from './spec.js';

/** PushResult is what `berth image push` prints: blobs uploaded and blobs already there. */
export interface PushResult {
  reference: string;
  digest: string;
  uploaded: number;
  present: number;
}

interface Manifest {
  mediaType?: string;
  config?: Descriptor;
  layers?: Descriptor[];
  manifests?: Descriptor[];
}

/**
 * selectManifest picks the index.json entry to push: the one whose
 * `org.opencontainers.image.ref.name` or `io.containerd.image.name` is `fromRef`, else the
 * only entry. Throws naming what is missing or ambiguous.
 */
export function selectManifest(index: { manifests?: Descriptor[] }, fromRef?: string): Descriptor {
  const all = index.manifests ?? [];
  if (fromRef !== undefined) {
    const d = all.find(
      (m) =>
        m.annotations?.[Keys.refName] === fromRef ||
        m.annotations?.[Keys.containerdName] === fromRef,
    );
    if (!d) throw new Error(`the layout has no manifest named ${JSON.stringify(fromRef)}`);
    return d;
  }
  if (all.length !== 1)
    throw new Error(`the layout has ${all.length} manifests: name one with --from-ref`);
  return all[0]!;
}

/**
 * pushLayout copies one image (or index, with its child manifests) from an OCI layout to
 * `repository:tag` through `client`: every blob the registry lacks (a HEAD first) is streamed
 * from its file, then the manifests, children first. Idempotent: a second push uploads nothing.
 */
export async function pushLayout(
  client: RegistryClient,
  layoutDir: string,
  repository: string,
  tag: string,
  fromRef?: string,
): Promise<Omit<PushResult, 'reference'>> {
  const index = JSON.parse(await readFile(join(layoutDir, 'index.json'), 'utf8')) as {
    manifests?: Descriptor[];
  };
  const root = selectManifest(index, fromRef);
  const counts = { uploaded: 0, present: 0 };
  const push = async (d: Descriptor, ref: string): Promise<void> => {
    const body = await readFile(join(layoutDir, blobPath(d.digest)));
    const m = JSON.parse(body.toString('utf8')) as Manifest;
    for (const child of m.manifests ?? []) await push(child, child.digest);
    for (const b of [...(m.config ? [m.config] : []), ...(m.layers ?? [])]) {
      if (await client.blobExists(repository, b.digest)) {
        counts.present++;
        continue;
      }
      const file = join(layoutDir, blobPath(b.digest));
      await client.pushBlob(repository, b.digest, b.size, () => createReadStream(file));
      counts.uploaded++;
    }
    await client.putManifest(
      repository,
      ref,
      d.mediaType || m.mediaType || MediaTypes.manifest,
      body,
    );
  };
  await push(root, tag);
  return { digest: root.digest, ...counts };
}
