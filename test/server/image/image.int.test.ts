import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../support/process.js';
import { tool } from '../../support/tools.js';
import { scratchDir } from '../../support/scratch.js';

const exec = promisify(execFile);
const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const work = scratchDir('berth-image-int-');

interface Built {
  reference: string;
  digest: string;
  layout: string;
  archive: string;
  size: number;
}

/** berth runs the built CLI (dist/) and returns its stdout, its stderr and exit status. */
async function berth(...args: string[]): Promise<{ out: string; err: string; code: number }> {
  try {
    const { stdout, stderr } = await exec(
      process.execPath,
      [join(root, 'dist/server/cli.js'), ...args],
      {
        cwd: root,
        maxBuffer: 16 << 20,
      },
    );
    return { out: stdout, err: stderr, code: 0 };
  } catch (e) {
    const x = e as { stdout: string; stderr: string; code: number };
    return { out: x.stdout, err: x.stderr, code: x.code };
  }
}

async function build(name: string): Promise<Built> {
  const r = await berth(
    'image',
    'build',
    '--out',
    join(work, name, 'layout'),
    '--archive',
    join(work, name, 'berth.oci.tar'),
  );
  if (r.code !== 0) throw new Error(`image build failed: ${r.err}`);
  return JSON.parse(r.out) as Built;
}

let first: Built;
let second: Built;
let rootfs: string;
let server: ChildProcess | undefined;
let serverLog = '';
let registry = '';

beforeAll(async () => {
  await exec('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: root });
  first = await build('a');
  second = await build('b');
  // The image's filesystem, unpacked the way a runtime does it: layers in order, owners kept.
  rootfs = join(work, 'rootfs');
  await exec('mkdir', ['-p', rootfs]);
  const manifest = JSON.parse(
    await readFile(join(first.layout, 'blobs/sha256', first.digest.slice(7)), 'utf8'),
  ) as {
    layers: { digest: string }[];
  };
  for (const l of manifest.layers)
    await exec(tool('tar'), [
      '--same-owner',
      '-xzpf',
      join(first.layout, 'blobs/sha256', l.digest.slice(7)),
      '-C',
      rootfs,
    ]);
}, 600_000);

afterAll(async () => {
  if (server && server.exitCode === null) {
    const exited = new Promise((r) => server!.once('exit', r));
    server.kill('SIGTERM');
    await exited;
  }
});

/** inImage runs a command inside the unpacked image as the image's user (65532). */
function inImage(args: string[], env: Record<string, string> = {}) {
  return exec(tool('chroot'), ['--userspec=65532:65532', rootfs, ...args], {
    env: { PATH: '/usr/local/bin', ...env },
  });
}

describe('the Berth image, built by the project', () => {
  it('GIVEN the same checkout WHEN built twice into two folders THEN the manifest digest is the same', () => {
    expect(second.digest).toBe(first.digest);
    expect(first.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    const { version } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
      version: string;
    };
    expect(first.reference).toBe(`ghcr.io/berth-dev/berth:${version}`);
    expect(first.size).toBeGreaterThan(10 << 20);
  });

  it('GIVEN the unpacked image WHEN its node runs the CLI as user 65532 THEN it prints the usage: the runtime is complete', async () => {
    const { stdout } = await inImage(['/usr/local/bin/node', '/app/dist/server/cli.js', '--help']);
    expect(stdout).toContain('usage: berth <command>');
    expect(stdout).toContain('image build');
    const { stdout: id } = await inImage([
      '/usr/local/bin/node',
      '-e',
      'process.stdout.write(String(process.getuid()))',
    ]);
    expect(id).toBe('65532');
  });

  it('GIVEN the unpacked image WHEN berth server runs in it as 65532 on /var/lib/berth THEN it serves /v2/', async () => {
    const port = await freePort();
    server = spawn(
      tool('chroot'),
      [
        '--userspec=65532:65532',
        rootfs,
        '/usr/local/bin/node',
        '--max-semi-space-size=4',
        '/app/dist/server/cli.js',
        'server',
      ],
      {
        env: {
          PATH: '/usr/local/bin',
          BERTH_HTTP_ADDR: `127.0.0.1:${port}`,
          BERTH_HTTP_SECRET: 'image-test',
          BERTH_STORAGE_FILESYSTEM_ROOT: '/var/lib/berth',
          BERTH_LOG_LEVEL: 'info',
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    server.stdout?.on('data', (d: Buffer) => (serverLog += d.toString()));
    server.stderr?.on('data', (d: Buffer) => (serverLog += d.toString()));
    registry = `127.0.0.1:${port}`;
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (server.exitCode !== null) throw new Error(`server in the image exited:\n${serverLog}`);
      const ok = await fetch(`http://${registry}/readyz`).then(
        (r) => r.ok,
        () => false,
      );
      if (ok) break;
      if (Date.now() > deadline) throw new Error(`server in the image not ready:\n${serverLog}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    const v2 = await fetch(`http://${registry}/v2/`);
    expect(v2.status).toBe(200);
    expect(v2.headers.get('docker-distribution-api-version')).toBe('registry/2.0');
  });

  it('GIVEN that server WHEN the image is pushed to it twice THEN skopeo reads the same digest and the second push uploads no blob', async () => {
    expect(registry).not.toBe('');
    const push = () =>
      berth('image', 'push', '--layout', first.layout, '--plain-http', `${registry}/berth:test`);
    const a = await push();
    expect(a.err).toBe('');
    expect(JSON.parse(a.out)).toEqual({
      reference: `${registry}/berth:test`,
      digest: first.digest,
      uploaded: 4,
      present: 0,
    });
    const uploadsBefore = serverLog.split('\n').filter((l) => l.includes('"method":"POST"')).length;
    const b = await push();
    expect(JSON.parse(b.out)).toMatchObject({ digest: first.digest, uploaded: 0, present: 4 });
    const uploadsAfter = serverLog.split('\n').filter((l) => l.includes('"method":"POST"')).length;
    expect(uploadsAfter).toBe(uploadsBefore);
    const { stdout } = await exec(tool('skopeo'), [
      'inspect',
      '--tls-verify=false',
      `docker://${registry}/berth:test`,
    ]);
    expect((JSON.parse(stdout) as { Digest: string }).Digest).toBe(first.digest);
  });

  it('GIVEN the archive WHEN skopeo reads it as an oci-archive THEN it finds the same image', async () => {
    const { stdout } = await exec(tool('skopeo'), ['inspect', `oci-archive:${first.archive}`]);
    const i = JSON.parse(stdout) as {
      Digest: string;
      Architecture: string;
      Labels: Record<string, string>;
    };
    expect(i.Digest).toBe(first.digest);
    expect(i.Architecture).toBe('amd64');
    expect(i.Labels['org.opencontainers.image.title']).toBe('berth');
  });

  it('GIVEN bad input WHEN image push runs THEN it exits 2 naming the flag; a registry that is not there exits 1 naming the step', async () => {
    const missing = await berth('image', 'push', '--layout', first.layout);
    expect(missing.code).toBe(2);
    expect(missing.err).toContain('REFERENCE');
    const unknown = await berth('image', 'push', '--nope', 'x');
    expect(unknown.code).toBe(2);
    expect(unknown.err).toContain('--nope');
    const bad = await berth('image', 'push', '--layout', first.layout, 'r.example/UPPER:x');
    expect(bad.code).toBe(2);
    const port = await freePort();
    const down = await berth(
      'image',
      'push',
      '--layout',
      first.layout,
      '--plain-http',
      `127.0.0.1:${port}/b:t`,
    );
    expect(down.code).toBe(1);
    expect(down.err).toMatch(/^berth: image push: check blob sha256:[0-9a-f]{64}: no answer/);
  });
});
