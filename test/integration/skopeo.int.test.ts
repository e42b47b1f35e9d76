import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  MediaType,
  OciLayoutBuilder,
  readLayout,
  sha256,
  type OciLayout,
} from '../support/oci-layout.js';
import { spawnBerth, type BerthProcess } from '../support/process.js';
import { tool } from '../support/tools.js';

/**
 * skopeoBin finds skopeo, failing the suite (never skipping it) when it is missing.
 */
function skopeoBin(): string {
  try {
    return tool('skopeo');
  } catch {
    throw new Error('skopeo is not installed: run `node test/tools/ensure.mjs skopeo`');
  }
}

const SKOPEO = skopeoBin();

/** skopeo runs one skopeo command and throws with its output when it fails. */
function skopeo(...args: string[]): string {
  // --insecure-policy: a fresh machine may have no /etc/containers/policy.json.
  const full = ['--insecure-policy', ...args];
  const r = spawnSync(SKOPEO, full, { encoding: 'utf8', timeout: 120_000 });
  if (r.status !== 0)
    throw new Error(
      `skopeo ${full.join(' ')} failed (${r.status ?? r.signal}):\n${r.stderr}\n${r.stdout}`,
    );
  return r.stdout;
}

/** Digests are kept byte-exact only when skopeo is told not to rewrite manifests. */
const PRESERVE = skopeo('copy', '--help').includes('--preserve-digests')
  ? ['--preserve-digests']
  : [];

const SBOM = 'application/vnd.example.sbom.v1';

describe('skopeo against a berth process on filesystem storage', () => {
  let work: string;
  let berth: BerthProcess;
  let layout: OciLayout;
  let registry: string;

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'berth-skopeo-'));
    layout = new OciLayoutBuilder(join(work, 'src'))
      .image('amd64', { platform: { os: 'linux', architecture: 'amd64' } })
      .image('arm64', {
        platform: { os: 'linux', architecture: 'arm64', variant: 'v8' },
        files: { 'etc/motd': 'arm64 motd\n', 'usr/share/doc/readme': 'x'.repeat(1500) },
      })
      .index('multi', ['amd64', 'arm64'], { ref: 'v1' })
      .artifact('sbom', { subject: 'multi', artifactType: SBOM, ref: 'sbom' })
      .write();
    berth = await spawnBerth({
      BERTH_STORAGE_DRIVER: 'filesystem',
      BERTH_STORAGE_FILESYSTEM_ROOT: join(work, 'storage'),
      BERTH_HTTP_SECRET: 'x',
    });
    registry = `127.0.0.1:${berth.port}`;
  });

  afterAll(async () => {
    await berth?.kill();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  /** expectSameContent asserts `dir` holds every digest reachable from `name`, byte for byte. */
  function expectSameContent(dir: string, name: string): void {
    const out = readLayout(dir);
    for (const digest of layout.closure(name)) {
      const got = out.blob(digest);
      expect(sha256(got), `blob ${digest} in ${dir}`).toBe(digest);
      expect(got.equals(layout.bytes(digest)), `blob ${digest} bytes`).toBe(true);
    }
  }

  /** expectServed asserts Berth itself serves every digest reachable from `name` exactly. */
  async function expectServed(repo: string, name: string): Promise<void> {
    const manifests = new Set(['amd64', 'arm64', 'multi', 'sbom'].map((n) => layout.get(n).digest));
    for (const digest of layout.closure(name)) {
      const kind = manifests.has(digest) ? 'manifests' : 'blobs';
      const r = await fetch(`${berth.url}/v2/${repo}/${kind}/${digest}`, {
        headers: { accept: `${MediaType.manifest}, ${MediaType.index}` },
      });
      expect(r.status, `GET ${kind}/${digest}`).toBe(200);
      expect(r.headers.get('docker-content-digest')).toBe(digest);
      expect(Buffer.from(await r.arrayBuffer()).equals(layout.bytes(digest))).toBe(true);
    }
  }

  it('GIVEN a multi-platform OCI layout WHEN skopeo copies it --all into berth and back out THEN the index, every child manifest and every blob are byte-identical', async () => {
    const multi = layout.get('multi');
    skopeo(
      'copy',
      '--all',
      ...PRESERVE,
      '--dest-tls-verify=false',
      `oci:${layout.dir}:v1`,
      `docker://${registry}/library/multi:v1`,
    );
    await expectServed('library/multi', 'multi');

    const outDir = join(work, 'out-multi');
    skopeo(
      'copy',
      '--all',
      ...PRESERVE,
      '--src-tls-verify=false',
      `docker://${registry}/library/multi:v1`,
      `oci:${outDir}:v1`,
    );
    const out = readLayout(outDir);
    const top = out.resolve('v1');
    expect(top).toMatchObject({
      mediaType: MediaType.index,
      digest: multi.digest,
      size: multi.body.length,
    });
    const index = JSON.parse(out.blob(top.digest).toString()) as {
      manifests: { digest: string; platform?: unknown }[];
    };
    expect(index.manifests.map((m) => m.digest)).toEqual([
      layout.get('amd64').digest,
      layout.get('arm64').digest,
    ]);
    expect(index.manifests.map((m) => m.platform)).toEqual([
      { os: 'linux', architecture: 'amd64' },
      { os: 'linux', architecture: 'arm64', variant: 'v8' },
    ]);
    expectSameContent(outDir, 'multi');
  });

  it('GIVEN the index in berth WHEN skopeo inspects it raw and lists tags THEN it gets the exact index bytes and v1', () => {
    const raw = skopeo(
      'inspect',
      '--raw',
      '--tls-verify=false',
      `docker://${registry}/library/multi:v1`,
    );
    expect(sha256(raw)).toBe(layout.get('multi').digest);
    expect(Buffer.from(raw).equals(layout.get('multi').body)).toBe(true);

    const tags = JSON.parse(
      skopeo('list-tags', '--tls-verify=false', `docker://${registry}/library/multi`),
    ) as { Repository: string; Tags: string[] };
    expect(tags).toEqual({ Repository: `${registry}/library/multi`, Tags: ['v1'] });
  });

  it('GIVEN an artifact with the empty config and the index as subject WHEN skopeo copies it into berth by digest THEN the referrers API lists it with its artifactType and it copies back out byte-exact', async () => {
    const sbom = layout.get('sbom');
    const multi = layout.get('multi');
    skopeo(
      'copy',
      ...PRESERVE,
      '--dest-tls-verify=false',
      `oci:${layout.dir}:sbom`,
      `docker://${registry}/library/multi@${sbom.digest}`,
    );
    await expectServed('library/multi', 'sbom');

    const r = await fetch(`${berth.url}/v2/library/multi/referrers/${multi.digest}`);
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toBe(MediaType.index);
    const referrers = (await r.json()) as { mediaType: string; manifests: unknown[] };
    expect(referrers.mediaType).toBe(MediaType.index);
    expect(referrers.manifests).toEqual([
      {
        mediaType: MediaType.manifest,
        digest: sbom.digest,
        size: sbom.body.length,
        artifactType: SBOM,
      },
    ]);
    const filtered = await fetch(
      `${berth.url}/v2/library/multi/referrers/${multi.digest}?artifactType=${encodeURIComponent('application/vnd.example.other')}`,
    );
    expect(filtered.status).toBe(200);
    expect(((await filtered.json()) as { manifests: unknown[] }).manifests).toEqual([]);

    const outDir = join(work, 'out-sbom');
    skopeo(
      'copy',
      ...PRESERVE,
      '--src-tls-verify=false',
      `docker://${registry}/library/multi@${sbom.digest}`,
      `oci:${outDir}:sbom`,
    );
    const out = readLayout(outDir);
    expect(out.resolve('sbom')).toMatchObject({
      mediaType: MediaType.manifest,
      digest: sbom.digest,
      size: sbom.body.length,
    });
    expectSameContent(outDir, 'sbom');
    const manifest = JSON.parse(out.blob(sbom.digest).toString()) as {
      artifactType: string;
      config: { mediaType: string; digest: string };
      subject: { digest: string };
    };
    expect(manifest.artifactType).toBe(SBOM);
    expect(manifest.config.mediaType).toBe(MediaType.empty);
    expect(out.blob(manifest.config.digest).toString()).toBe('{}');
    expect(manifest.subject.digest).toBe(multi.digest);
  });
});
