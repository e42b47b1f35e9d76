import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { backup, BackupError, BackupKeys, restore } from '../../../server/backup/backup.js';
import { RegistryClient } from '../../../server/client/registry.js';
import { FilesystemDriver } from '../../../server/storage/drivers/filesystem.js';
import { authConfig, basic } from '../../support/auth.js';
import { Client, image, index, type Built } from '../../support/image.js';
import { scratchDir } from '../../support/scratch.js';
import { startTestRegistry, type TestRegistry } from '../../support/server.js';

function clientOf(reg: TestRegistry, credentials?: { username: string; password: string }) {
  return new RegistryClient({ registry: new URL(reg.url).host, plainHttp: true, credentials });
}

/** contents reads, through the API, every repository's tags with their digests. */
async function contents(reg: TestRegistry, headers: Record<string, string> = {}) {
  const out: Record<string, Record<string, string>> = {};
  const cat = (await (await reg.fetch('/v2/_catalog', { headers })).json()) as {
    repositories: string[];
  };
  for (const repo of cat.repositories) {
    const { tags } = (await (await reg.fetch(`/v2/${repo}/tags/list`, { headers })).json()) as {
      tags: string[];
    };
    out[repo] = {};
    for (const tag of tags ?? []) {
      const r = await reg.fetch(`/v2/${repo}/manifests/${tag}`, { headers });
      out[repo][tag] = r.headers.get('docker-content-digest')!;
    }
  }
  return out;
}

/** pullsWhole checks every blob of `m` (and its children) reads back with its digest. */
async function pullsWhole(reg: TestRegistry, repo: string, m: Built): Promise<void> {
  for (const c of m.children) await pullsWhole(reg, repo, c);
  for (const b of m.blobs) {
    const r = await reg.fetch(`/v2/${repo}/blobs/${b.digest}`);
    const got = Buffer.from(await r.arrayBuffer());
    expect(r.status).toBe(200);
    expect(`sha256:${createHash('sha256').update(got).digest('hex')}`).toBe(b.digest);
  }
}

describe('backup and restore through the registry API', () => {
  const regs: TestRegistry[] = [];
  afterEach(async () => {
    await Promise.all(regs.splice(0).map((r) => r.close()));
  });

  async function seeded() {
    const src = await startTestRegistry();
    regs.push(src);
    const c = new Client((p, i) => src.fetch(p, i));
    const web = image().layer(3000).build();
    const multi = index([image().arch('amd64').layer(500).build(), image().arch('arm64').build()]);
    const sig = image()
      .artifact('application/vnd.dev.cosign.artifact.sig.v1+json')
      .subject(web)
      .build();
    const docker = image().docker().layer(100).build();
    const other = image().build();
    expect((await c.push('team/web', 'v1', web)).status).toBe(201);
    expect((await c.push('team/web', 'latest', web)).status).toBe(201);
    expect((await c.push('team/web', sig.digest, sig)).status).toBe(201);
    expect((await c.push('team/multi', '1.0', multi)).status).toBe(201);
    expect((await c.push('team/legacy', 'old', docker)).status).toBe(201);
    expect((await c.push('scratch/tmp', 'x', other)).status).toBe(201);
    return { src, web, multi, sig, docker };
  }

  it('GIVEN repositories with tags, a multi-arch index, a Docker schema 2 image and a signature WHEN backed up and restored into an empty registry on another driver THEN every tag names the same digest, every blob pulls whole, and the signature is listed as a referrer', async () => {
    const { src, web, multi, sig, docker } = await seeded();
    const dst = await startTestRegistry({
      driver: new FilesystemDriver(scratchDir('berth-restore-')),
    });
    regs.push(dst);
    const dir = join(scratchDir('berth-backup-'), 'out');

    const saved = await backup(clientOf(src), dir, ['team/**']);
    const restored = await restore(clientOf(dst), dir);

    const want = await contents(src);
    delete want['scratch/tmp'];
    expect(await contents(dst)).toEqual(want);
    expect(saved).toMatchObject({ repositories: 3, tags: 4 });
    expect(restored).toMatchObject({ repositories: 3, tags: 4 });
    expect(restored.manifests).toBe(saved.manifests);
    for (const [repo, m] of [
      ['team/web', web],
      ['team/multi', multi],
      ['team/legacy', docker],
    ] as const)
      await pullsWhole(dst, repo, m);
    const legacy = await dst.fetch('/v2/team/legacy/manifests/old');
    expect(legacy.headers.get('content-type')).toBe(docker.mediaType);
    const refs = (await (await dst.fetch(`/v2/team/web/referrers/${web.digest}`)).json()) as {
      manifests: { digest: string }[];
    };
    expect(refs.manifests.map((m) => m.digest)).toEqual([sig.digest]);
    const idx = JSON.parse(readFileSync(join(dir, 'index.json'), 'utf8')) as {
      manifests: { digest: string; annotations: Record<string, string> }[];
    };
    expect(
      idx.manifests.filter((m) => m.annotations[BackupKeys.refName] === 'team/web:v1')[0]?.digest,
    ).toBe(web.digest);
  });

  it('GIVEN a backup restored once WHEN restored again THEN nothing is uploaded twice and the contents stay the same', async () => {
    const { src } = await seeded();
    const dst = await startTestRegistry();
    regs.push(dst);
    const dir = join(scratchDir('berth-backup-'), 'out');
    await backup(clientOf(src), dir);
    await restore(clientOf(dst), dir);

    const again = await restore(clientOf(dst), dir);

    expect(again.blobs).toBe(0);
    expect(again.present).toBeGreaterThan(0);
    expect(await contents(dst)).toEqual(await contents(src));
  });

  it('GIVEN registries with htpasswd auth WHEN backed up and restored with credentials THEN it works, and without them it fails naming the step', async () => {
    const auth = authConfig('htpasswd')
      .user('ci', 'pw')
      .rule({ users: ['ci'], repositories: ['**'], actions: ['pull', 'push', 'delete'] })
      .build();
    const src = await startTestRegistry({ config: { auth } });
    const dst = await startTestRegistry({ config: { auth } });
    regs.push(src, dst);
    const headers = { authorization: basic('ci', 'pw') };
    const c = new Client((p, i) =>
      src.fetch(p, { ...i, headers: { ...(i?.headers as Record<string, string>), ...headers } }),
    );
    expect((await c.push('private/app', 'v1', image().layer(64).build())).status).toBe(201);
    const dir = join(scratchDir('berth-backup-'), 'out');
    const ci = { username: 'ci', password: 'pw' };

    await expect(backup(clientOf(src), dir)).rejects.toThrow(/list repositories.*401/);
    await backup(clientOf(src, ci), dir);
    await restore(clientOf(dst, ci), dir);

    expect(await contents(dst, headers)).toEqual(await contents(src, headers));
  });

  it('GIVEN a backup with a corrupted blob WHEN restored THEN it is refused naming the file, and the registry is unchanged', async () => {
    const { src } = await seeded();
    const dst = await startTestRegistry();
    regs.push(dst);
    const dir = join(scratchDir('berth-backup-'), 'out');
    await backup(clientOf(src), dir);
    const blobs = readdirSync(join(dir, 'blobs', 'sha256'));
    const victim = blobs.find(
      (b) => readFileSync(join(dir, 'blobs', 'sha256', b)).length === 3000,
    )!;
    writeFileSync(join(dir, 'blobs', 'sha256', victim), Buffer.alloc(3000));

    const err = await restore(clientOf(dst), dir).catch((e: unknown) => e);

    expect(err).toBeInstanceOf(BackupError);
    expect((err as Error).message).toContain(`${victim}: does not hash to sha256:${victim}`);
    expect(await contents(dst)).toEqual({});
  });

  it('GIVEN a folder that is neither empty nor a layout WHEN backed up into THEN it is refused and left as it was', async () => {
    const { src } = await seeded();
    const dir = scratchDir('berth-backup-');
    mkdirSync(join(dir, 'keep'));
    writeFileSync(join(dir, 'notes.txt'), 'mine');

    await expect(backup(clientOf(src), dir)).rejects.toThrow(/not empty and not an OCI layout/);
    expect(readdirSync(dir).sort()).toEqual(['keep', 'notes.txt']);
  });

  it('GIVEN a folder without index.json WHEN restored from THEN the error names the missing file', async () => {
    const dst = await startTestRegistry();
    regs.push(dst);
    const dir = scratchDir('berth-backup-');

    await expect(restore(clientOf(dst), dir)).rejects.toThrow(
      `${join(dir, 'index.json')}: missing`,
    );
  });
});
