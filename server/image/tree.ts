import { lstat, readdir, readlink } from 'node:fs/promises';
import { dirname, join, posix, relative, resolve, sep } from 'node:path';
import type { TarEntry } from './tar.js';

/** Modes the image uses: directories and executables 0755, other files 0644. */
export const Mode = { dir: 0o755, exec: 0o755, file: 0o644 } as const;

/** modeOf normalises a host mode: 0755 when any execute bit is set, else 0644. */
export function modeOf(hostMode: number): number {
  return hostMode & 0o111 ? Mode.exec : Mode.file;
}

/**
 * parents are directory entries (0755, root) for every ancestor of `path` (relative, no
 * leading slash), outermost first; `path` itself is not included.
 */
export function parents(path: string): TarEntry[] {
  const out: TarEntry[] = [];
  let p = posix.dirname(path);
  while (p !== '.' && p !== '/') {
    out.unshift({ type: 'dir', path: p, mode: Mode.dir });
    p = posix.dirname(p);
  }
  return out;
}

/**
 * hostPath adds a host file at the same path in the image, the way the loader would find it:
 * each symlink met on the way (`/lib64`, `/lib` on a merged-/usr system, a soname link) is
 * added as a symlink with its own target, then followed, and the file at the end is added at
 * its real path with its parent directories. Throws when the path is missing or loops.
 */
export async function hostPath(path: string, out: TarEntry[]): Promise<void> {
  let pending = resolve(path).split('/').filter(Boolean);
  let at = '';
  for (let hops = 0; pending.length > 0;) {
    const [part, ...rest] = pending as [string, ...string[]];
    const next = `${at}/${part}`;
    const st = await lstat(next);
    if (st.isSymbolicLink()) {
      if (++hops > 40) throw new Error(`too many symlinks resolving ${path}`);
      const target = await readlink(next);
      out.push(...parents(rel(next)), { type: 'symlink', path: rel(next), target });
      const abs = target.startsWith('/') ? target : join(dirname(next), target);
      pending = [...abs.split('/').filter(Boolean), ...rest];
      at = '';
      continue;
    }
    at = next;
    pending = rest;
    if (rest.length > 0) continue;
    if (!st.isFile()) throw new Error(`${path} is not a regular file`);
    out.push(...parents(rel(at)), {
      type: 'file',
      path: rel(at),
      mode: modeOf(st.mode),
      size: st.size,
      source: at,
    });
  }
}

/**
 * hostTree adds every directory, file and symlink under host folder `from` beneath image path
 * `to` (relative), with normalised modes, owner root, symlinks kept as they are. `skip`
 * leaves out paths (relative to `from`, `/`-separated) it returns true for.
 */
export async function hostTree(
  from: string,
  to: string,
  out: TarEntry[],
  skip: (relPath: string) => boolean = () => false,
): Promise<void> {
  out.push(...parents(to), { type: 'dir', path: to, mode: Mode.dir });
  const walk = async (dir: string): Promise<void> => {
    for (const d of await readdir(dir, { withFileTypes: true })) {
      const host = join(dir, d.name);
      const r = relative(from, host).split(sep).join('/');
      if (skip(r)) continue;
      const path = `${to}/${r}`;
      if (d.isSymbolicLink()) {
        out.push({ type: 'symlink', path, target: await readlink(host) });
      } else if (d.isDirectory()) {
        out.push({ type: 'dir', path, mode: Mode.dir });
        await walk(host);
      } else if (d.isFile()) {
        const st = await lstat(host);
        out.push({ type: 'file', path, mode: modeOf(st.mode), size: st.size, source: host });
      }
    }
  };
  await walk(from);
}

function rel(abs: string): string {
  return abs.replace(/^\/+/, '');
}
