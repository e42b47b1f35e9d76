import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildImage, type BuildOptions } from '../../../server/image/build.js';
import { sharedLibraries } from '../../../server/image/runtime.js';
import { readLayout } from '../../support/oci-layout.js';
import { scratchDir } from '../../support/scratch.js';

/**
 * A small project shaped like Berth (package.json, lockfile without dependencies, a built
 * dist/) and a small dynamic binary standing in for node: the real build path, in seconds.
 */
function fixture(): string {
  const root = scratchDir('berth-image-fixture-');
  const pkg = { name: 'berth', version: '1.2.3', license: 'Apache-2.0', description: 'fixture' };
  writeFileSync(join(root, 'package.json'), JSON.stringify(pkg));
  writeFileSync(
    join(root, 'package-lock.json'),
    JSON.stringify({ ...pkg, lockfileVersion: 3, requires: true, packages: { '': pkg } }),
  );
  for (const d of ['dist/server', 'dist/operator', 'dist/ui', 'dist/image'])
    mkdirSync(join(root, d), { recursive: true });
  writeFileSync(join(root, 'dist/server/cli.js'), 'console.log("berth")\n');
  writeFileSync(join(root, 'dist/server/cli.js.map'), '{}');
  writeFileSync(join(root, 'dist/operator/main.js'), 'export {}\n');
  writeFileSync(join(root, 'dist/ui/berth-ui.json'), '{}\n');
  writeFileSync(join(root, 'dist/ui/app.js'), 'export {}\n');
  writeFileSync(join(root, 'dist/ui/app.js.map'), '{}');
  writeFileSync(join(root, 'dist/image/stale.tar'), 'not part of the image');
  return root;
}

const BINARY = '/usr/bin/true';

async function build(root: string, over: Partial<BuildOptions> = {}) {
  const out = scratchDir('berth-image-out-');
  const r = await buildImage({
    root,
    out: join(out, 'layout'),
    archive: join(out, 'image.tar'),
    revision: 'abc123',
    epoch: 1_700_000_000,
    nodeBinary: BINARY,
    ...over,
  });
  const layout = readLayout(r.layout);
  const manifest = JSON.parse(layout.blob(r.digest).toString()) as {
    config: { digest: string };
    layers: { digest: string }[];
  };
  const config = JSON.parse(layout.blob(manifest.config.digest).toString()) as {
    created: string;
    architecture: string;
    config: Record<string, unknown> & { Labels: Record<string, string> };
  };
  const layerFiles = manifest.layers.map((l) => join(r.layout, 'blobs/sha256', l.digest.slice(7)));
  return { r, layout, manifest, config, layerFiles };
}

function tarList(file: string): string[] {
  return execFileSync('tar', ['--numeric-owner', '--full-time', '-tvzf', file], {
    encoding: 'utf8',
    env: { TZ: 'UTC', PATH: process.env.PATH ?? '' },
  })
    .trim()
    .split('\n');
}

const names = (lines: string[]) => lines.map((l) => l.split(/\s+/)[5]!);

describe('berth image build', { timeout: 60_000 }, () => {
  it('GIVEN the same inputs WHEN built twice into two folders THEN the manifest digest is the same', async () => {
    const root = fixture();
    const a = await build(root);
    const b = await build(root);
    expect(b.r.digest).toBe(a.r.digest);
    expect(readFileSync(b.r.archive)).toEqual(readFileSync(a.r.archive));
  });

  it('GIVEN another revision or epoch WHEN built THEN the manifest digest changes', async () => {
    const root = fixture();
    const a = await build(root);
    expect((await build(root, { revision: 'def456' })).r.digest).not.toBe(a.r.digest);
    expect((await build(root, { epoch: 1_700_000_001 })).r.digest).not.toBe(a.r.digest);
  });

  it('GIVEN a build WHEN its config is read THEN it runs non-root with the entrypoint, env, volume and labels', async () => {
    const { config, r, layout } = await build(fixture(), { reference: 'r.example/b:t' });
    expect(config.created).toBe('2023-11-14T22:13:20Z');
    expect(config.architecture).toBe('amd64');
    expect(config.config).toMatchObject({
      User: '65532:65532',
      Entrypoint: ['/usr/local/bin/node', '--max-semi-space-size=4', '/app/dist/server/cli.js'],
      Cmd: ['server'],
      WorkingDir: '/app',
      ExposedPorts: { '5000/tcp': {} },
      Volumes: { '/var/lib/berth': {} },
    });
    expect(config.config.Env).toContain('BERTH_STORAGE_FILESYSTEM_ROOT=/var/lib/berth');
    expect(config.config.Labels).toMatchObject({
      'org.opencontainers.image.version': '1.2.3',
      'org.opencontainers.image.revision': 'abc123',
      'org.opencontainers.image.title': 'berth',
      'org.opencontainers.image.licenses': 'Apache-2.0',
      'org.opencontainers.image.source': 'https://github.com/berth-dev/berth',
    });
    expect(r.reference).toBe('r.example/b:t');
    expect(layout.index.manifests[0]!.annotations).toEqual({
      'io.containerd.image.name': 'r.example/b:t',
      'org.opencontainers.image.ref.name': 't',
    });
  });

  it('GIVEN a build WHEN its layers are listed THEN the runtime has node and every library ldd lists, sorted with one mtime', async () => {
    const { layerFiles } = await build(fixture());
    const runtime = tarList(layerFiles[0]!);
    const paths = names(runtime);
    expect(paths).toEqual([...paths].sort());
    for (const l of runtime) expect(l).toContain('2023-11-14 22:13:20');
    expect(paths).toContain('usr/local/bin/node');
    const libs = await sharedLibraries(BINARY);
    expect(libs.length).toBeGreaterThan(0);
    // Each library is in the layer at its real path, reached through the symlinks kept.
    const rootfs = scratchDir('berth-image-rootfs-');
    execFileSync('tar', ['-xzf', layerFiles[0]!, '-C', rootfs]);
    for (const lib of libs) expect(() => readFileSync(join(rootfs, lib))).not.toThrow();
    expect(runtime.find((l) => l.endsWith(' var/lib/berth/'))).toMatch(/^drwxr-x--- 65532\/65532/);
    expect(runtime.find((l) => l.endsWith(' tmp/'))).toMatch(/^drwxrwxrwt 0\/0/);
    expect(readFileSync(join(rootfs, 'etc/passwd'), 'utf8')).toContain('nonroot:x:65532:65532:');
  });

  it('GIVEN a build WHEN the app layer is listed THEN it has package.json and dist/server, dist/operator and dist/ui, no maps, no dist/image', async () => {
    const { layerFiles } = await build(fixture());
    expect(names(tarList(layerFiles[2]!))).toEqual([
      'app/',
      'app/dist/',
      'app/dist/operator/',
      'app/dist/operator/main.js',
      'app/dist/server/',
      'app/dist/server/cli.js',
      'app/dist/ui/',
      'app/dist/ui/app.js',
      'app/dist/ui/berth-ui.json',
      'app/package.json',
    ]);
  });

  it('GIVEN a build without the compiled web UI WHEN building THEN it fails naming npm run build', async () => {
    const root = fixture();
    rmSync(join(root, 'dist/ui'), { recursive: true });
    await expect(build(root)).rejects.toThrow(
      /dist\/ui \(the web UI\) is missing: run `npm run build`/,
    );
  });
});
