import { listAll, type StorageDriver } from '../../server/storage/driver.js';
import { Paths } from '../../server/storage/paths.js';
import { authConfig, basic } from './auth.js';
import { Client, image, type Built } from './image.js';
import type { TestRegistry } from './server.js';

/** immutableConfig is htpasswd auth with user ci (pull, push, delete) and `v*` immutable in prod/**. */
export function immutableConfig() {
  return {
    auth: authConfig('htpasswd')
      .user('ci', 'pw')
      .rule({ users: ['ci'], repositories: ['**'], actions: ['pull', 'push', 'delete'] })
      .immutable(['prod/**'], ['v*'])
      .build(),
  };
}

export const ciHeaders = { authorization: basic('ci', 'pw') };

export function ciClient(reg: TestRegistry): Client {
  return new Client((p, i) =>
    reg.fetch(p, { ...i, headers: { ...(i?.headers as Record<string, string>), ...ciHeaders } }),
  );
}

/** pushEvents returns the digests of the manifest push events recorded for `repo`. */
export async function pushEvents(driver: StorageDriver, repo: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await listAll(driver, Paths.eventsLogRoot())) {
    const raw = await driver.get(Paths.eventsLogEntry(entry));
    const { events } = JSON.parse(raw.toString('utf8')) as {
      events: {
        action: string;
        target: { repository: string; digest?: string; mediaType?: string };
      }[];
    };
    for (const e of events) {
      if (
        e.action === 'push' &&
        e.target.repository === repo &&
        e.target.mediaType?.includes('manifest')
      )
        out.push(e.target.digest!);
    }
  }
  return out;
}

/**
 * racePushes pushes `n` different images' blobs to `repo`, then PUTs all their manifests to
 * `tag` at once, and returns each image with the status its manifest PUT got.
 */
export async function racePushes(
  reg: TestRegistry,
  repo: string,
  tag: string,
  n: number,
): Promise<{ image: Built; status: number }[]> {
  const c = ciClient(reg);
  const images = Array.from({ length: n }, () => image().layer(16).build());
  for (const img of images) for (const b of img.blobs) await c.pushBlob(repo, b);
  const statuses = await Promise.all(
    images.map(async (img) => {
      const r = await c.pushManifest(repo, tag, img);
      await r.arrayBuffer();
      return r.status;
    }),
  );
  return images.map((img, i) => ({ image: img, status: statuses[i]! }));
}
