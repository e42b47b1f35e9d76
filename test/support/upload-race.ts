import { decodeDescriptor } from '../../server/registry/blobs.js';
import { isNotFound, listAll, type StorageDriver } from '../../server/storage/driver.js';
import { Paths } from '../../server/storage/paths.js';

interface Held {
  match: (method: string, key: string) => boolean;
  /** left is how many more matching calls are stopped. */
  left: number;
  released: Promise<void>;
  reach: () => void;
}

/**
 * Gate wraps a driver so that a test can stop chosen calls where they are: `hold` makes
 * the next calls it matches wait until `release`, and says when the first one arrived.
 * Interleavings are then forced, not hoped for.
 */
export class Gate {
  readonly driver: StorageDriver;
  private readonly holds = new Set<Held>();

  constructor(inner: StorageDriver) {
    const holds = this.holds;
    this.driver = new Proxy(inner, {
      get(target, prop, receiver) {
        const v = Reflect.get(target, prop, receiver) as unknown;
        if (typeof v !== 'function') return v;
        return async (...args: unknown[]) => {
          const key = typeof args[0] === 'string' ? args[0] : '';
          for (const h of [...holds]) {
            if (h.left === 0 || !h.match(String(prop), key)) continue;
            h.left--;
            h.reach();
            await h.released;
          }
          return (v as (...a: unknown[]) => unknown).apply(target, args);
        };
      },
    });
  }

  /**
   * hold stops the next `times` calls (all, by default) that `match` accepts (method name,
   * first argument) until `release`; `reached` resolves when the first one is waiting.
   */
  hold(
    match: (method: string, key: string) => boolean,
    times = Infinity,
  ): {
    reached: Promise<void>;
    release: () => void;
  } {
    let reach!: () => void;
    let release!: () => void;
    const reached = new Promise<void>((r) => (reach = r));
    const released = new Promise<void>((r) => (release = r));
    const h: Held = { match, left: times, released, reach };
    this.holds.add(h);
    return {
      reached,
      release: () => {
        this.holds.delete(h);
        release();
      },
    };
  }
}

/** objectKeys lists every object below `prefix` (ending in `/`), at any depth. */
export async function objectKeys(driver: StorageDriver, prefix: string): Promise<string[]> {
  const out: string[] = [];
  for (const name of await listAll(driver, prefix)) {
    const below = await objectKeys(driver, `${prefix}${name}/`);
    if (below.length > 0) out.push(...below);
    else out.push(prefix + name);
  }
  return out;
}

/**
 * uploadViolations checks, on storage itself, what no interleaving of upload requests may
 * break, and returns what is broken:
 * - every blob descriptor (global index and repository links) names segments that exist,
 *   with the sizes it says;
 * - every segment is named by a descriptor or by the record of a session still open (a
 *   request that lost its race removed its bytes).
 */
export async function uploadViolations(driver: StorageDriver): Promise<string[]> {
  const out: string[] = [];
  const named = new Set<string>();
  const descriptors = [
    ...(await objectKeys(driver, Paths.blobsRoot())),
    ...(await objectKeys(driver, Paths.repositoriesRoot())).filter((k) => k.includes('/_layers/')),
  ];
  for (const key of descriptors) {
    const desc = decodeDescriptor(await driver.get(key));
    for (const seg of desc.segments) {
      named.add(seg.key);
      const size = await driver.stat(seg.key).then(
        (s) => s.size,
        (err: unknown) => {
          if (isNotFound(err)) return undefined;
          throw err;
        },
      );
      if (size !== seg.size) out.push(`${key} names ${seg.key} (${seg.size} B), found ${size} B`);
    }
  }
  for (const id of await listAll(driver, Paths.uploadsRoot())) {
    const rec = JSON.parse((await driver.get(Paths.upload(id))).toString('utf8')) as {
      segments: { key: string }[];
      committed?: string;
      cancelled?: true;
    };
    if (rec.cancelled) continue;
    for (const seg of rec.segments) named.add(seg.key);
  }
  for (const key of await objectKeys(driver, Paths.segmentsRoot())) {
    if (!named.has(key)) out.push(`segment ${key} is named by nothing`);
  }
  return out;
}
