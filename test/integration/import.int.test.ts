import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { mkdir, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { authConfig, basic } from '../support/auth.js';
import { runBerthCli } from '../support/cli.js';
import { Client, image, index, type Built } from '../support/image.js';
import { spawnBerth, type BerthProcess } from '../support/process.js';
import { tool } from '../support/tools.js';
import { scratchDir } from '../support/scratch.js';

const run = promisify(execFile);

async function skopeo(...args: string[]): Promise<string> {
  const r = await run(tool('skopeo'), ['--insecure-policy', ...args], { timeout: 120_000 });
  return r.stdout;
}

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** layoutBlobs hashes every blob file of an OCI layout: name → sha256 of the bytes. */
async function layoutBlobs(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const hex of await readdir(join(dir, 'blobs', 'sha256')))
    out.set(`sha256:${hex}`, sha(await readFile(join(dir, 'blobs', 'sha256', hex))));
  return out;
}

type User = readonly [string, string];
const ALICE: User = ['alice', 'alice-pw'];
const BOB: User = ['bob', 'bob-pw'];

interface Summary {
  images: { repository: string; digest: string; tags: string[] }[];
  manifests: number;
  blobsWritten: number;
  blobsSkipped: number;
  bytes: number;
}

describe('server-side import (POST /v2/_berth/import) against a real berth server', () => {
  let server: BerthProcess;
  let host: string;
  let work: string;
  let amd: Built;
  let multi: Built;
  let sbom: Built;
  let configFile: string;

  const as = (user: User) => ({ authorization: basic(...user) });
  const creds = (user: User) => user.join(':');

  /** imported posts an archive file as `user`; `query` is the query string. */
  const imported = async (file: string, query = '', user = ALICE) =>
    fetch(`${server.url}/v2/_berth/import${query ? `?${query}` : ''}`, {
      method: 'POST',
      body: await readFile(file),
      headers: as(user),
    });

  const ok = async (res: Response): Promise<Summary> => {
    expect(res.status, await res.clone().text()).toBe(200);
    return (await res.json()) as Summary;
  };

  const status = async (repo: string, ref: string) =>
    (await fetch(`${server.url}/v2/${repo}/manifests/${ref}`, { headers: as(ALICE) })).status;

  const eventsOf = async (repo: string) => {
    const r = await fetch(`${server.url}/v2/_berth/events?n=1000`, { headers: as(ALICE) });
    const body = (await r.json()) as { events: { target: { repository?: string } }[] };
    return body.events.filter((e) => e.target.repository === repo);
  };

  /** pulledBack copies an image out of the server with skopeo and hashes every blob. */
  const pulledBack = async (ref: string, all = true) => {
    const dir = join(work, 'pulled', ref.replace(/[/:@]/g, '_'));
    await mkdir(join(work, 'pulled'), { recursive: true });
    await skopeo(
      'copy',
      ...(all ? ['--all'] : []),
      '--preserve-digests',
      '--src-tls-verify=false',
      '--src-creds',
      creds(ALICE),
      `docker://${host}/${ref}`,
      `oci:${dir}:x`,
    );
    return layoutBlobs(dir);
  };

  beforeAll(async () => {
    work = scratchDir('berth-import-');
    const auth = authConfig('htpasswd', 4)
      .user(...ALICE)
      .user(...BOB)
      .rule({ users: ['alice'], repositories: ['**'], actions: ['pull', 'push', 'delete'] })
      .rule({ users: ['bob'], repositories: ['**'], actions: ['pull'] })
      .build();
    const config = join(work, 'berth.yaml');
    configFile = config;
    writeFileSync(
      config,
      stringify({
        storage: { driver: 'filesystem', filesystem: { root: join(work, 'data') } },
        http: { secret: 'import-test' },
        notifications: { settleMillis: 0 },
        auth,
      }),
    );
    server = await spawnBerth({ BERTH_CONFIG: config });
    host = `127.0.0.1:${server.port}`;
    amd = image()
      .arch('amd64')
      .layer(3 << 20)
      .layer(4096)
      .build();
    const arm = image()
      .arch('arm64')
      .layer(2 << 20)
      .build();
    multi = index([amd, arm]);
    multi = {
      ...multi,
      body: Buffer.from(
        JSON.stringify({
          ...(JSON.parse(multi.body.toString()) as object),
          manifests: [amd, arm].map((c, i) => ({
            mediaType: c.mediaType,
            digest: c.digest,
            size: c.body.length,
            platform: { os: 'linux', architecture: i === 0 ? 'amd64' : 'arm64' },
          })),
        }),
      ),
    };
    multi.digest = sha(multi.body);
    sbom = image().artifact('application/vnd.example.sbom').layer(512).subject(multi).build();
    const c = new Client((p, i = {}) =>
      fetch(new URL(p, server.url), {
        ...i,
        headers: { ...(i.headers as Record<string, string>), ...as(ALICE) },
      }),
    );
    expect((await c.push('src/app', 'v1', multi)).status).toBe(201);
    expect((await c.push('src/app', sbom.digest, sbom)).status).toBe(201);
  });
  afterAll(async () => {
    await server?.kill('SIGKILL');
  });

  it('GIVEN an oci-archive written by berth copy (index, two platforms, a referrer) WHEN imported THEN skopeo pulls it back with every digest identical, and the referrer is served', async () => {
    const tar = join(work, 'berth.oci.tar');
    const copy = await runBerthCli([
      'copy',
      '--all',
      '--referrers',
      '--src-tls-verify=false',
      '--src-creds',
      creds(ALICE),
      `docker://${host}/src/app:v1`,
      `oci-archive:${tar}:team/app:v1`,
    ]);
    expect(copy.status, copy.stderr).toBe(0);

    const summary = await ok(await imported(tar));

    expect(summary.images).toEqual([
      { repository: 'team/app', digest: multi.digest, tags: ['v1'] },
    ]);
    expect(summary.manifests).toBe(4);
    const raw = await skopeo(
      'inspect',
      '--raw',
      '--tls-verify=false',
      '--creds',
      creds(ALICE),
      `docker://${host}/team/app:v1`,
    );
    expect(sha(Buffer.from(raw))).toBe(multi.digest);
    const blobs = await pulledBack('team/app:v1');
    for (const [name, hash] of blobs) expect(hash).toBe(name);
    for (const d of [
      multi.digest,
      ...multi.children.flatMap((c) => [c.digest, ...c.blobs.map((b) => b.digest)]),
    ])
      expect(blobs.has(d), d).toBe(true);
    const referrers = (await (
      await fetch(`${server.url}/v2/team/app/referrers/${multi.digest}`, { headers: as(ALICE) })
    ).json()) as { manifests: { digest: string }[] };
    expect(referrers.manifests.map((m) => m.digest)).toEqual([sbom.digest]);

    const again = await ok(await imported(tar));
    expect([again.blobsWritten, again.bytes]).toEqual([0, 0]);
  });

  it('GIVEN an oci-archive and a docker-archive written by skopeo WHEN imported (one under ?repository=) THEN skopeo pulls them back with the same digests (the docker-archive: config and layers; its manifest is made)', async () => {
    const oci = join(work, 'skopeo.oci.tar');
    const docker = join(work, 'skopeo.docker.tar');
    const src = ['--src-tls-verify=false', '--src-creds', creds(ALICE)];
    await skopeo(
      'copy',
      '--all',
      '--preserve-digests',
      ...src,
      `docker://${host}/src/app:v1`,
      `oci-archive:${oci}:v7`,
    );
    await skopeo(
      'copy',
      ...src,
      `docker://${host}/src/app@${amd.digest}`,
      `docker-archive:${docker}:team/amd:v1`,
    );

    const a = await ok(await imported(oci, 'repository=skopeo/oci'));
    const b = await ok(await imported(docker));

    expect(a.images).toEqual([{ repository: 'skopeo/oci', digest: multi.digest, tags: ['v7'] }]);
    const fromOci = await pulledBack('skopeo/oci:v7');
    for (const [name, hash] of fromOci) expect(hash).toBe(name);
    expect(fromOci.has(multi.digest)).toBe(true);
    expect(b.images.map((i) => [i.repository, i.tags])).toEqual([['team/amd', ['v1']]]);
    const fromDocker = await pulledBack('team/amd:v1', false);
    for (const [name, hash] of fromDocker) expect(hash).toBe(name);
    const doc = JSON.parse(
      await skopeo(
        'inspect',
        '--raw',
        '--tls-verify=false',
        '--creds',
        creds(ALICE),
        `docker://${host}/team/amd:v1`,
      ),
    ) as { config: { digest: string }; layers: { digest: string }[] };
    // skopeo's docker-archive stores the layers as they were (gzip'd test layers stay bytes-equal).
    expect(doc.config.digest).toBe(amd.blobs[0]!.digest);
    expect(doc.layers.map((l) => l.digest)).toEqual(amd.blobs.slice(1).map((l) => l.digest));
  });

  it('GIVEN a truncated and a corrupted archive WHEN imported THEN each is refused with 400, nothing is tagged and no event is recorded', async () => {
    const tar = join(work, 'berth.oci.tar');
    const bytes = await readFile(tar);
    const cut = join(work, 'cut.tar');
    writeFileSync(cut, bytes.subarray(0, Math.floor(bytes.length / 2)));
    const bad = join(work, 'bad.tar');
    const corrupt = Buffer.from(bytes);
    const layer = amd.blobs[1]!.bytes;
    const at = corrupt.indexOf(layer.subarray(0, 4096));
    expect(at).toBeGreaterThan(0);
    corrupt[at + 1000] = corrupt[at + 1000]! ^ 0xff;
    writeFileSync(bad, corrupt);

    const r1 = await imported(cut, 'repository=broken/cut');
    const r2 = await imported(bad, 'repository=broken/bad');

    expect(r1.status).toBe(400);
    expect(((await r1.json()) as { errors: { code: string }[] }).errors[0]!.code).toBe(
      'ARCHIVE_INVALID',
    );
    expect(r2.status).toBe(400);
    expect(((await r2.json()) as { errors: { code: string }[] }).errors[0]!.code).toBe(
      'DIGEST_INVALID',
    );
    for (const repo of ['broken/cut', 'broken/bad']) {
      expect(await status(repo, 'v1')).toBe(404);
      expect(await eventsOf(repo)).toEqual([]);
    }
  });

  it('GIVEN an OCI layout directory on the server machine WHEN berth import writes it into the storage THEN the running server serves it, digests identical', async () => {
    const dir = join(work, 'layout-for-cli');
    const copy = await runBerthCli([
      'copy',
      '--all',
      '--referrers',
      '--src-tls-verify=false',
      '--src-creds',
      creds(ALICE),
      `docker://${host}/src/app:v1`,
      `oci:${dir}:app:v1`,
    ]);
    expect(copy.status, copy.stderr).toBe(0);

    const r = await runBerthCli([
      'import',
      '--config',
      configFile,
      '--repository',
      'cli/app',
      `oci:${dir}`,
    ]);

    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout, r.stderr).not.toBe('');
    expect((JSON.parse(r.stdout) as Summary).images).toEqual([
      { repository: 'cli/app', digest: multi.digest, tags: ['v1'] },
    ]);
    const blobs = await pulledBack('cli/app:v1');
    for (const [name, hash] of blobs) expect(hash).toBe(name);
    expect(blobs.has(multi.digest)).toBe(true);
    const missing = await runBerthCli(['import', '--config', configFile, `oci:${dir}-gone`]);
    expect(missing.status).toBe(1);
    expect(missing.stderr).toContain('ENOENT');
  });

  it('GIVEN a caller with pull only WHEN it imports THEN 403 DENIED, and nothing is tagged or recorded', async () => {
    const tar = join(work, 'berth.oci.tar');

    const named = await imported(tar, '', BOB);
    const target = await imported(tar, 'repository=bob/app', BOB);
    const anonymous = await fetch(`${server.url}/v2/_berth/import`, {
      method: 'POST',
      body: await readFile(tar),
    });

    expect(named.status).toBe(403);
    expect(target.status).toBe(403);
    expect(anonymous.status).toBe(401);
    expect(await status('bob/app', 'v1')).toBe(404);
    expect(await eventsOf('bob/app')).toEqual([]);
  });
});
