import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { DATA_DIR, USER } from './spec.js';
import type { TarEntry } from './tar.js';
import { hostPath, Mode, parents } from './tree.js';

const exec = promisify(execFile);

/** NODE_PATH is where the image keeps the Node binary. */
export const NODE_PATH = 'usr/local/bin/node';

/**
 * parseLdd reads `ldd` output: the absolute path of every shared library and of the dynamic
 * loader, in the order listed, without the kernel's vDSO. Throws naming a library that is
 * "not found": an image without it could not start.
 */
export function parseLdd(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const l = line.trim();
    if (l === '' || l.startsWith('linux-vdso') || l.startsWith('linux-gate')) continue;
    if (/=>\s*not found/.test(l)) throw new Error(`ldd: ${l}`);
    const m = /=>\s*(\/\S+)/.exec(l) ?? /^(\/\S+)/.exec(l);
    if (m?.[1]) out.push(m[1]);
  }
  return out;
}

/** sharedLibraries runs `ldd` on a binary; a static binary has none. */
export async function sharedLibraries(binary: string): Promise<string[]> {
  try {
    const { stdout } = await exec('ldd', [binary]);
    return parseLdd(stdout);
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string };
    if (`${e.stdout ?? ''}${e.stderr ?? ''}`.includes('not a dynamic executable')) return [];
    throw err;
  }
}

const PASSWD = `root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:${USER.uid}:${USER.gid}:nonroot:/home/nonroot:/sbin/nologin\n`;
const GROUP = `root:x:0:\nnonroot:x:${USER.gid}:\n`;
const NSSWITCH = 'passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n';

function text(path: string, content: string): TarEntry {
  const source = Buffer.from(content);
  return { type: 'file', path, mode: Mode.file, size: source.length, source };
}

/**
 * runtimeEntries is the runtime layer: `node` (the binary running this build) at
 * /usr/local/bin/node, every library `ldd` lists for it and the loader at their real paths
 * with the symlinks leading to them, /etc/passwd and /etc/group with root and nonroot
 * (65532), a minimal /etc/nsswitch.conf, /tmp (1777) and the data folder owned by nonroot.
 */
export async function runtimeEntries(nodeBinary: string): Promise<TarEntry[]> {
  const out: TarEntry[] = [];
  for (const lib of await sharedLibraries(nodeBinary)) await hostPath(lib, out);
  const node: TarEntry[] = [];
  await hostPath(nodeBinary, node);
  const real = node.find((e) => e.type === 'file');
  if (real?.type !== 'file') throw new Error(`${nodeBinary}: no regular file`);
  out.push(...parents(NODE_PATH), { ...real, path: NODE_PATH, mode: Mode.exec });
  out.push(
    { type: 'dir', path: 'etc', mode: Mode.dir },
    text('etc/passwd', PASSWD),
    text('etc/group', GROUP),
    text('etc/nsswitch.conf', NSSWITCH),
    { type: 'dir', path: 'tmp', mode: 0o1777 },
    ...parents('home/nonroot'),
    { type: 'dir', path: 'home/nonroot', mode: 0o700, uid: USER.uid, gid: USER.gid },
    ...parents(DATA_DIR.slice(1)),
    { type: 'dir', path: DATA_DIR.slice(1), mode: 0o750, uid: USER.uid, gid: USER.gid },
  );
  return out;
}
