import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, image, sha256, type Blob, type Built } from '../support/image.js';
import { spawnBerth, type BerthProcess } from '../support/process.js';
import { runBerthCli } from '../support/cli.js';
import { tool } from '../support/tools.js';
import { scratchDir } from '../support/scratch.js';

const run = promisify(execFile);

/** berth runs the real CLI; `onErr` sees stderr as it comes (to kill it midway). */
const berth = (args: string[], onErr?: (text: string, kill: () => void) => void) =>
  runBerthCli(args, onErr);

/** copied runs `berth copy` and returns its JSON summary, failing with its stderr. */
async function copied(...args: string[]) {
  const r = await berth(['copy', ...args]);
  if (r.status !== 0)
    throw new Error(`berth copy ${args.join(' ')} exited ${r.status}:\n${r.stderr}`);
  return JSON.parse(r.stdout) as {
    digest: string;
    blobsCopied: number;
    blobsSkipped: number;
    bytes: number;
  };
}

async function skopeo(...args: string[]): Promise<string> {
  const r = await run(tool('skopeo'), ['--insecure-policy', ...args], { timeout: 120_000 });
  return r.stdout;
}

/** platformIndex is an OCI index naming each child's platform (linux/<arch>). */
function platformIndex(children: [Built, string][]): Built {
  const mediaType = 'application/vnd.oci.image.index.v1+json';
  const manifests = children.map(([c, architecture]) => ({
    mediaType: c.mediaType,
    digest: c.digest,
    size: c.body.length,
    platform: { os: 'linux', architecture },
  }));
  const body = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType, manifests }));
  return { mediaType, body, digest: sha256(body), blobs: [], children: children.map(([c]) => c) };
}

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** layoutBlobs hashes every blob file of an OCI layout: name → sha256 of the bytes. */
async function layoutBlobs(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const hex of await readdir(join(dir, 'blobs', 'sha256')))
    out.set(`sha256:${hex}`, sha(await readFile(join(dir, 'blobs', 'sha256', hex))));
  return out;
}

async function untar(file: string): Promise<string> {
  const dir = scratchDir('berth-untar-');
  await run('tar', ['-xf', file, '-C', dir]);
  return dir;
}

describe('berth copy between a registry, OCI layouts and archives', () => {
  let server: BerthProcess;
  let host: string;
  let work: string;
  let amd: Built;
  let arm: Built;
  let multi: Built;
  let sbom: Built;
  const blobs = new Map<string, Blob>();

  beforeAll(async () => {
    work = scratchDir('berth-copy-');
    server = await spawnBerth({
      BERTH_STORAGE_DRIVER: 'filesystem',
      BERTH_STORAGE_FILESYSTEM_ROOT: join(work, 'data'),
      BERTH_HTTP_SECRET: 'copy-test',
    });
    host = new URL(server.url).host;
    amd = image()
      .arch('amd64')
      .layer(4 << 20)
      .layer(3 << 20)
      .build();
    arm = image()
      .arch('arm64')
      .layer(4 << 20)
      .layer(2048)
      .build();
    multi = platformIndex([
      [amd, 'amd64'],
      [arm, 'arm64'],
    ]);
    sbom = image().artifact('application/vnd.example.sbom').layer(512).subject(multi).build();
    for (const b of [...amd.blobs, ...arm.blobs, ...sbom.blobs]) blobs.set(b.digest, b);
    const c = new Client((p, i) => fetch(new URL(p, server.url), i));
    expect((await c.push('src/app', 'v1', multi)).status).toBe(201);
    expect((await c.push('src/app', sbom.digest, sbom)).status).toBe(201);
  });
  afterAll(async () => {
    await server?.kill('SIGKILL');
  });

  /** registryBlob fetches a blob from the server and hashes it. */
  const registryBlob = async (repo: string, digest: string) =>
    sha(Buffer.from(await (await fetch(`${server.url}/v2/${repo}/blobs/${digest}`)).arrayBuffer()));
  const registryManifest = async (repo: string, ref: string) =>
    Buffer.from(
      await (
        await fetch(`${server.url}/v2/${repo}/manifests/${ref}`, {
          headers: { accept: [multi.mediaType, amd.mediaType].join(', ') },
        })
      ).arrayBuffer(),
    );

  it('GIVEN an index of two platforms with a referrer WHEN it goes registry → oci → oci-archive → docker-archive → registry THEN digests are kept where the format stores them, every blob is byte-identical, and skopeo reads both archives', async () => {
    const layout = join(work, 'chain', 'layout');
    const ociTar = join(work, 'chain', 'app.oci.tar');
    const dockerTar = join(work, 'chain', 'app.docker.tar');
    const flags = ['--all', '--referrers'];

    const a = await copied(
      ...flags,
      '--src-tls-verify=false',
      `docker://${host}/src/app:v1`,
      `oci:${layout}:app:v1`,
    );
    expect(a.digest).toBe(multi.digest);
    expect(a.blobsCopied).toBe(blobs.size);
    const files = await layoutBlobs(layout);
    for (const [name, hash] of files) expect(hash).toBe(name);
    for (const m of [multi, amd, arm, sbom])
      expect(await readFile(join(layout, 'blobs', 'sha256', m.digest.slice(7)))).toEqual(m.body);
    for (const b of blobs.values()) expect(files.get(b.digest)).toBe(sha(b.bytes));

    const b = await copied(...flags, `oci:${layout}:app:v1`, `oci-archive:${ociTar}:app:v1`);
    expect(b.digest).toBe(multi.digest);
    const unpacked = await layoutBlobs(await untar(ociTar));
    expect([...unpacked.keys()].sort()).toEqual([...files.keys()].sort());
    for (const [name, hash] of unpacked) expect(hash).toBe(name);
    expect(Buffer.from(await skopeo('inspect', '--raw', `oci-archive:${ociTar}:app:v1`))).toEqual(
      multi.body,
    );
    const bySkopeo = join(work, 'chain', 'skopeo-oci');
    await skopeo(
      'copy',
      '--all',
      '--preserve-digests',
      '--dest-oci-accept-uncompressed-layers',
      `oci-archive:${ociTar}:app:v1`,
      `oci:${bySkopeo}:x`,
    );
    const skopeoBlobs = await layoutBlobs(bySkopeo);
    for (const m of [multi, amd, arm]) expect(skopeoBlobs.get(m.digest)).toBe(m.digest);
    for (const bl of [...amd.blobs, ...arm.blobs])
      expect(skopeoBlobs.get(bl.digest)).toBe(bl.digest);

    const c = await copied(
      '--platform',
      'linux/arm64',
      `oci-archive:${ociTar}:app:v1`,
      `docker-archive:${dockerTar}:app:v1`,
    );
    expect(c.digest).toBe(arm.digest);
    const docker = await untar(dockerTar);
    const manifest = JSON.parse(await readFile(join(docker, 'manifest.json'), 'utf8')) as {
      Config: string;
      RepoTags: string[];
      Layers: string[];
    }[];
    expect(manifest).toEqual([
      {
        Config: `blobs/sha256/${arm.blobs[0]!.digest.slice(7)}`,
        RepoTags: ['app:v1'],
        Layers: arm.blobs.slice(1).map((l) => `blobs/sha256/${l.digest.slice(7)}`),
      },
    ]);
    for (const bl of arm.blobs)
      expect(sha(await readFile(join(docker, 'blobs', 'sha256', bl.digest.slice(7))))).toBe(
        bl.digest,
      );
    const inspected = JSON.parse(await skopeo('inspect', `docker-archive:${dockerTar}`)) as {
      Architecture: string;
      Layers: string[];
    };
    expect(inspected.Architecture).toBe('arm64');
    expect(inspected.Layers).toHaveLength(2);
    const fromDocker = join(work, 'chain', 'skopeo-docker');
    await skopeo(
      'copy',
      '--dest-oci-accept-uncompressed-layers',
      `docker-archive:${dockerTar}`,
      `oci:${fromDocker}:x`,
    );
    const dockerBlobs = await layoutBlobs(fromDocker);
    // skopeo rewrites the config as it converts to OCI; the layers it read are the same bytes
    for (const bl of arm.blobs.slice(1)) expect(dockerBlobs.get(bl.digest)).toBe(bl.digest);

    const d = await copied(
      '--dest-tls-verify=false',
      `docker-archive:${dockerTar}`,
      `docker://${host}/dst/app:v1`,
    );
    expect(d.digest).toBe(arm.digest);
    expect(await registryManifest('dst/app', 'v1')).toEqual(arm.body);
    for (const bl of arm.blobs) expect(await registryBlob('dst/app', bl.digest)).toBe(bl.digest);
  });

  it('GIVEN the same index WHEN it goes registry → oci-archive → registry with --all --referrers THEN the index, both images and the referrer arrive byte-exact, and a second run copies nothing', async () => {
    const tar = join(work, 'round', 'app.tar');
    const flags = ['--all', '--referrers', '--src-tls-verify=false', '--dest-tls-verify=false'];
    await copied(...flags, `docker://${host}/src/app:v1`, `oci-archive:${tar}`);
    const back = await copied(...flags, `oci-archive:${tar}`, `docker://${host}/copy/app:v1`);
    expect(back.digest).toBe(multi.digest);
    expect(back.blobsCopied).toBe(blobs.size);
    for (const m of [multi, amd, arm, sbom])
      expect(await registryManifest('copy/app', m.digest)).toEqual(m.body);
    expect(await registryManifest('copy/app', 'v1')).toEqual(multi.body);
    for (const bl of blobs.values())
      expect(await registryBlob('copy/app', bl.digest)).toBe(bl.digest);
    const refs = (await (
      await fetch(`${server.url}/v2/copy/app/referrers/${multi.digest}`)
    ).json()) as { manifests: { digest: string }[] };
    expect(refs.manifests.map((m) => m.digest)).toEqual([sbom.digest]);

    const before = await stat(tar);
    const again = await copied(...flags, `docker://${host}/src/app:v1`, `oci-archive:${tar}`);
    expect([again.blobsCopied, again.blobsSkipped, again.bytes]).toEqual([0, blobs.size, 0]);
    expect((await stat(tar)).mtimeMs).toBe(before.mtimeMs);
    const toRegistry = await copied(...flags, `oci-archive:${tar}`, `docker://${host}/copy/app:v1`);
    expect([toRegistry.blobsCopied, toRegistry.blobsSkipped]).toEqual([0, blobs.size]);
  });

  it('GIVEN a copy into a layout killed after its first blob, and a stray partial file WHEN it is run again THEN it copies only what is missing and the layout is complete and verified', async () => {
    const layout = join(work, 'killed');
    const args = [
      'copy',
      '--all',
      '--referrers',
      '--src-tls-verify=false',
      `docker://${host}/src/app:v1`,
      `oci:${layout}:v1`,
    ];
    const killed = await berth(args, (text, kill) => {
      if (text.includes('"blob copied"')) kill();
    });
    expect(killed.status).not.toBe(0);
    await expect(stat(join(layout, 'index.json'))).rejects.toThrow();
    const stray = join(layout, 'blobs', 'sha256', `${arm.blobs[1]!.digest.slice(7)}.partial`);
    await mkdir(dirname(stray), { recursive: true });
    await writeFile(stray, 'half a blob');
    const done = await copied(...args.slice(1));
    expect(done.blobsSkipped).toBeGreaterThanOrEqual(1);
    expect(done.blobsCopied + done.blobsSkipped).toBe(blobs.size);
    const files = await layoutBlobs(layout);
    expect([...files.keys()].filter((k) => k.endsWith('.partial'))).toEqual([]);
    for (const [name, hash] of files) expect(hash).toBe(name);
    const again = await copied(...args.slice(1));
    expect([again.blobsCopied, again.blobsSkipped]).toEqual([0, blobs.size]);
  });

  it('GIVEN a docker-archive written by skopeo WHEN berth copy reads it into a registry THEN the config and layers keep their digests and bytes', async () => {
    const tar = join(work, 'skopeo', 'amd.tar');
    await mkdir(dirname(tar), { recursive: true });
    await skopeo(
      'copy',
      '--src-tls-verify=false',
      `docker://${host}/src/app@${amd.digest}`,
      `docker-archive:${tar}:team/amd:v1`,
    );
    const r = await copied(
      '--dest-tls-verify=false',
      `docker-archive:${tar}:team/amd:v1`,
      `docker://${host}/fromskopeo/amd:v1`,
    );
    expect(r.blobsCopied).toBe(amd.blobs.length);
    const doc = JSON.parse((await registryManifest('fromskopeo/amd', 'v1')).toString()) as {
      config: { digest: string };
      layers: { digest: string }[];
    };
    expect([doc.config.digest, ...doc.layers.map((l) => l.digest)]).toEqual(
      amd.blobs.map((b) => b.digest),
    );
    for (const bl of amd.blobs)
      expect(await registryBlob('fromskopeo/amd', bl.digest)).toBe(bl.digest);
  });

  it('GIVEN bad arguments or a missing source WHEN berth copy runs THEN it exits 2 naming the argument, or 1 with a message and no stack', async () => {
    const bad = await berth(['copy', 'nowhere:x', `oci:${work}/x`]);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain('SRC:');
    const all = await berth(['copy', '--all', `oci:${work}/x`, `docker-archive:${work}/x.tar`]);
    expect(all.status).toBe(2);
    expect(all.stderr).toContain('--all');
    const missing = await berth(['copy', `oci:${work}/absent`, `oci:${work}/y`]);
    expect(missing.status).toBe(1);
    expect(missing.stderr).toContain('not an OCI layout');
    expect(missing.stderr).not.toContain('    at ');
  });
});
