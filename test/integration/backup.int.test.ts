import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, image, index } from '../support/image.js';
import { startTestRegistry, type TestRegistry } from '../support/server.js';
import { runBerthCli } from '../support/cli.js';
import { tool } from '../support/tools.js';
import { scratchDir } from '../support/scratch.js';

const run = promisify(execFile);

/** berth runs the real CLI (async: the registries it talks to run in this process). */
const berth = (...args: string[]) => runBerthCli(args);

/** skopeo runs skopeo (async, for the same reason) and rejects with its output when it fails. */
async function skopeo(...args: string[]): Promise<string> {
  const bin = (() => {
    try {
      return tool('skopeo');
    } catch {
      throw new Error('skopeo is not installed: run `node test/tools/ensure.mjs skopeo`');
    }
  })();
  const full = ['--insecure-policy', ...args];
  const r = await run(bin, full, { timeout: 120_000 }).catch(
    (err: { stdout?: string; stderr?: string }) => {
      throw new Error(`skopeo ${full.join(' ')} failed:\n${err.stderr}\n${err.stdout}`);
    },
  );
  return r.stdout;
}

describe('berth backup and restore, read by skopeo', () => {
  let src: TestRegistry;
  let dst: TestRegistry;
  beforeAll(async () => {
    [src, dst] = await Promise.all([startTestRegistry(), startTestRegistry()]);
  });
  afterAll(async () => {
    await Promise.all([src?.close(), dst?.close()]);
  });

  it('GIVEN a registry with an image and a multi-arch index WHEN `berth backup` writes a layout THEN skopeo reads each tag from it by <repository>:<tag> with the same digest, and `berth restore` fills another registry', async () => {
    const c = new Client((p, i) => src.fetch(p, i));
    const web = image().layer(2048).build();
    const multi = index([image().arch('amd64').build(), image().arch('arm64').build()]);
    expect((await c.push('team/web', 'v1', web)).status).toBe(201);
    expect((await c.push('team/multi', '2', multi)).status).toBe(201);
    const dir = join(scratchDir('berth-backup-'), 'layout');
    const host = (r: TestRegistry) => new URL(r.url).host;

    const saved = await berth('backup', '--registry', host(src), '--plain-http', '--out', dir);

    expect(saved.stderr).toBe('');
    expect(saved.status).toBe(0);
    expect(JSON.parse(saved.stdout)).toMatchObject({ repositories: 2, tags: 2 });
    const inspected = JSON.parse(
      await skopeo('inspect', '--raw', `oci:${dir}:team/web:v1`),
    ) as unknown;
    expect(inspected).toEqual(JSON.parse(web.body.toString('utf8')));
    await skopeo(
      'copy',
      '--all',
      '--preserve-digests',
      '--dest-tls-verify=false',
      `oci:${dir}:team/multi:2`,
      `docker://${host(dst)}/copied/multi:2`,
    );
    const copied = await dst.fetch('/v2/copied/multi/manifests/2');
    expect(copied.headers.get('docker-content-digest')).toBe(multi.digest);

    const restored = await berth('restore', '--registry', host(dst), '--plain-http', '--from', dir);

    expect(restored.status).toBe(0);
    expect(JSON.parse(restored.stdout)).toMatchObject({ repositories: 2, tags: 2 });
    for (const [repo, tag, m] of [
      ['team/web', 'v1', web],
      ['team/multi', '2', multi],
    ] as const) {
      const r = await dst.fetch(`/v2/${repo}/manifests/${tag}`);
      expect(r.headers.get('docker-content-digest')).toBe(m.digest);
    }
  });

  it('GIVEN bad command-line input WHEN berth backup runs THEN exit 2 and a message naming the flag', async () => {
    const missing = await berth('backup', '--registry', 'localhost:5000');
    expect(missing.status).toBe(2);
    expect(missing.stderr).toContain('berth: backup: --out DIR is required');

    const badGlob = await berth(
      'restore',
      '--registry',
      'localhost:5000',
      '--from',
      '/x',
      '--repository',
      'a b',
    );
    expect(badGlob.status).toBe(2);
    expect(badGlob.stderr).toContain('--repository: "a b" is not a repository glob');

    const badHost = await berth('backup', '--registry', 'http://x', '--out', '/x');
    expect(badHost.status).toBe(2);
    expect(badHost.stderr).toContain('--registry: "http://x" is not HOST[:PORT]');
  });
});
