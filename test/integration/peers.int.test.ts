import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { S3Driver } from '../../server/storage/drivers/s3.js';
import { image, type Built } from '../support/image.js';
import { spawnWatched, until, type WatchedBerth } from '../support/watched.js';
import { berthS3Env, bucketKeys, startMinio, type MinioServer } from '../support/minio.js';

type Proc = WatchedBerth;

const ACCEPT = 'application/vnd.oci.image.manifest.v1+json';

describe('tags kept while alone on the storage, never stale across replicas (ADR 0012)', () => {
  let minio: MinioServer;
  let env: Record<string, string>;
  const bucket = 'peers';
  const procs: Proc[] = [];

  async function start(): Promise<Proc> {
    const proc = await spawnWatched(env);
    procs.push(proc);
    return proc;
  }

  async function digestOf(p: Proc, ref: string): Promise<string | null> {
    const r = await fetch(`${p.url}/v2/team/app/manifests/${ref}`, { headers: { accept: ACCEPT } });
    expect(r.status).toBe(200);
    await r.arrayBuffer();
    return r.headers.get('docker-content-digest');
  }

  async function push(p: Proc, tag: string): Promise<Built> {
    const img = image().layer(256).build();
    const r = await p.client.push('team/app', tag, img);
    expect(r.status, await r.clone().text()).toBe(201);
    return img;
  }

  beforeAll(async () => {
    minio = await startMinio();
    const cfg = minio.config(bucket);
    await S3Driver.ensureBucket(cfg);
    env = { ...berthS3Env(cfg), BERTH_HTTP_SECRET: 'shared-between-replicas' };
  });
  afterAll(async () => {
    for (const p of procs) await p.kill('SIGKILL');
    await minio?.stop();
  });

  it('GIVEN one process alone WHEN a tag is read again and again THEN storage is read once and the tag is kept', async () => {
    const a = await start();
    expect(await a.metric('berth_storage_peers')).toBe(1);
    expect(await a.metric('berth_tags_kept')).toBe(1);
    const v1 = await push(a, 'v1');
    const hits0 = (await a.metric('registry_storage_cache_hits_total', '{cache="tag"}')) ?? 0;
    for (let i = 0; i < 5; i++) expect(await digestOf(a, 'v1')).toBe(v1.digest);
    const hits = await a.metric('registry_storage_cache_hits_total', '{cache="tag"}');
    expect(hits! - hits0).toBeGreaterThanOrEqual(4);
  });

  it('GIVEN the first process keeps a tag WHEN a second starts and at once moves the tag THEN the first resolves it to the new manifest, and stops keeping tags', async () => {
    const a = procs[0]!;
    expect(await digestOf(a, 'v1')).toBeTruthy(); // kept in a's memory
    const b = await start();
    // b found a at its first round, so this tag write waits until a must have seen b.
    const moved = await push(b, 'v1');
    expect(await digestOf(a, 'v1')).toBe(moved.digest);
    expect(await a.metric('berth_tags_kept')).toBe(0);
    expect(await a.metric('berth_storage_peers')).toBe(2);
    // And back and forth, with no wait in between.
    for (let i = 0; i < 3; i++) {
      const viaA = await push(a, 'v1');
      expect(await digestOf(b, 'v1')).toBe(viaA.digest);
      const viaB = await push(b, 'v1');
      expect(await digestOf(a, 'v1')).toBe(viaB.digest);
    }
  });

  it('GIVEN two processes WHEN the second stops (SIGTERM) THEN its entry is gone and the first keeps tags again', async () => {
    const [a, b] = procs as [Proc, Proc];
    await b.kill('SIGTERM');
    await until('a alone again', async () => (await a.metric('berth_tags_kept')) === 1);
    expect((await bucketKeys(minio, bucket)).filter((k) => k.startsWith('peers/'))).toHaveLength(1);
  });

  it('GIVEN a process killed with SIGKILL WHEN its entry stops changing THEN the others count it out after 15 s and keep tags again', async () => {
    const a = procs[0]!;
    const c = await start();
    await until('a sees c', async () => (await a.metric('berth_storage_peers')) === 2);
    expect(await a.metric('berth_tags_kept')).toBe(0);
    await c.kill('SIGKILL');
    expect((await bucketKeys(minio, bucket)).filter((k) => k.startsWith('peers/'))).toHaveLength(2);
    await until('a alone again', async () => (await a.metric('berth_tags_kept')) === 1, 40_000);
    expect(await a.metric('berth_storage_peers')).toBe(1);
    expect((await bucketKeys(minio, bucket)).filter((k) => k.startsWith('peers/'))).toHaveLength(1);
    const v2 = await push(a, 'v2');
    expect(await digestOf(a, 'v2')).toBe(v2.digest);
  });
});
