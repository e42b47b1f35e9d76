import type { ListOptions, ListPage } from '../driver.js';

/**
 * listChildren computes one page of direct children of `prefix` from a set of keys:
 * the shared paging rule (byte order, `startAfter` exclusive, `limit`) of every driver
 * that does not page natively.
 */
export function listChildren(keys: Iterable<string>, prefix: string, opts: ListOptions): ListPage {
  const names = new Set<string>();
  for (const k of keys) {
    if (!k.startsWith(prefix)) continue;
    const rest = k.slice(prefix.length);
    const slash = rest.indexOf('/');
    names.add(slash === -1 ? rest : rest.slice(0, slash));
  }
  return pageOf([...names], opts);
}

/** pageOf sorts names by byte order and cuts the page after `startAfter`. */
export function pageOf(all: string[], opts: ListOptions): ListPage {
  const sorted = all.sort(byteOrder);
  const from = opts.startAfter === undefined ? sorted : sorted.filter((n) => n > opts.startAfter!);
  const limit = opts.limit ?? Infinity;
  return { names: from.slice(0, limit), truncated: from.length > limit };
}

export function byteOrder(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
