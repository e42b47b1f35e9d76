import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { writeLayer, writeTar } from '../../../server/image/blob.js';
import type { TarEntry } from '../../../server/image/tar.js';
import { sha256 } from '../../support/image.js';
import { scratchDir } from '../../support/scratch.js';

const MTIME = 1_700_000_123;

function entries(dir: string): TarEntry[] {
  const host = join(dir, 'host.bin');
  writeFileSync(host, Buffer.alloc(70_000, 7));
  const long = `deep/${'n'.repeat(60)}/${'m'.repeat(60)}/file.txt`;
  return [
    { type: 'file', path: 'usr/local/bin/node', mode: 0o755, size: 70_000, source: host },
    { type: 'dir', path: 'var/lib/berth', mode: 0o750, uid: 65532, gid: 65532 },
    { type: 'symlink', path: 'lib', target: 'usr/lib' },
    { type: 'file', path: long, mode: 0o644, size: 3, source: Buffer.from('hi\n') },
    { type: 'dir', path: 'deep', mode: 0o755 },
    { type: 'dir', path: 'usr', mode: 0o755 },
  ];
}

/** list reads an archive back with GNU tar: `mode owner size date name`. */
function list(file: string): string[] {
  return execFileSync('tar', ['--numeric-owner', '--full-time', '-tvf', file], {
    encoding: 'utf8',
    env: { TZ: 'UTC', PATH: process.env.PATH ?? '' },
  })
    .trim()
    .split('\n');
}

describe('deterministic tar layers', () => {
  it('GIVEN entries in any order WHEN written THEN GNU tar reads them sorted, with one mtime and the given owners and modes', async () => {
    const dir = scratchDir('berth-tar-');
    await writeTar(entries(dir).reverse(), MTIME, join(dir, 'a.tar'));
    const lines = list(join(dir, 'a.tar'));
    const names = lines.map((l) => l.split(/\s+/).slice(5).join(' '));
    expect(names).toEqual([
      'deep/',
      `deep/${'n'.repeat(60)}/${'m'.repeat(60)}/file.txt`,
      'lib -> usr/lib',
      'usr/',
      'usr/local/bin/node',
      'var/lib/berth/',
    ]);
    const when = new Date(MTIME * 1000).toISOString().slice(0, 19).replace('T', ' ');
    for (const l of lines) expect(l).toContain(when);
    expect(lines[5]).toMatch(/^drwxr-x--- 65532\/65532 /);
    expect(lines[4]).toMatch(/^-rwxr-xr-x 0\/0 +70000 /);
  });

  it('GIVEN the same entries twice WHEN written as gzip layers THEN the bytes are equal and the diff ID is the tar digest', async () => {
    const dir = scratchDir('berth-tar-');
    const a = await writeLayer(entries(dir), MTIME, join(dir, 'a.tgz'));
    const b = await writeLayer(entries(dir).reverse(), MTIME, join(dir, 'b.tgz'));
    expect(b).toEqual(a);
    const gz = readFileSync(join(dir, 'a.tgz'));
    expect(sha256(gz)).toBe(a.digest);
    expect(gz.readUInt32LE(4)).toBe(0); // gzip header mtime
    expect(sha256(gunzipSync(gz))).toBe(a.diffId);
  });

  it('GIVEN a host file that changes size WHEN written THEN it throws instead of writing a wrong archive', async () => {
    const dir = scratchDir('berth-tar-');
    const e = entries(dir).map((x) =>
      x.type === 'file' && x.size === 70_000 ? { ...x, size: 10 } : x,
    );
    await expect(writeTar(e, MTIME, join(dir, 'c.tar'))).rejects.toThrow(/changed size/);
  });
});
