import { useEffect, useState } from 'preact/hooks';

export function formatBytes(n: number | undefined): string {
  if (n === undefined) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

export function formatTime(iso: string | undefined): string {
  if (iso === undefined) return '—';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toISOString().replace('T', ' ').slice(0, 19) + ' UTC';
}

export function shortDigest(d: string): string {
  return d.replace(/^sha256:/, '').slice(0, 12);
}

/** Route is the hash location: `#/<path>?<query>`; every page has one (deep links). */
export interface Route {
  parts: string[];
  query: URLSearchParams;
}

function parseHash(): Route {
  const h = location.hash.replace(/^#\/?/, '');
  const q = h.indexOf('?');
  const path = q < 0 ? h : h.slice(0, q);
  return {
    parts: path === '' ? [] : path.split('/').map(decodeURIComponent),
    query: new URLSearchParams(q < 0 ? '' : h.slice(q + 1)),
  };
}

export function useRoute(): Route {
  const [r, setR] = useState(parseHash);
  useEffect(() => {
    const on = () => setR(parseHash());
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  return r;
}

/** href builds a deep link from path segments (each encoded, so `/` in names survives). */
export function href(parts: string[], query: Record<string, string | undefined> = {}): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== '') q.set(k, v);
  const qs = q.toString();
  return `#/${parts.map(encodeURIComponent).join('/')}${qs ? `?${qs}` : ''}`;
}

export type Loaded<T> =
  { state: 'loading' } | { state: 'ok'; value: T } | { state: 'error'; error: Error };

/** useLoad runs `load` whenever `deps` change and keeps the latest answer only. */
export function useLoad<T>(load: () => Promise<T>, deps: unknown[]): [Loaded<T>, () => void] {
  const [s, setS] = useState<Loaded<T>>({ state: 'loading' });
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let live = true;
    setS({ state: 'loading' });
    load().then(
      (value) => live && setS({ state: 'ok', value }),
      (error: Error) => live && setS({ state: 'error', error }),
    );
    return () => {
      live = false;
    };
  }, [...deps, tick]);
  return [s, () => setTick((t) => t + 1)];
}

/**
 * useShownMark sets the performance mark `name` once, after the render in which `shown` first
 * holds: the time from navigation to a page's content on screen (the render benchmark reads it).
 */
export function useShownMark(name: string, shown: boolean): void {
  useEffect(() => {
    if (shown && performance.getEntriesByName(name).length === 0) performance.mark(name);
  }, [shown]);
}
