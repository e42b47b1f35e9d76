import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Event } from '../../server/events/event.js';
import { S3Driver } from '../../server/storage/drivers/s3.js';
import { Client, image, type Built } from '../support/image.js';
import { berthS3Env, sharedMinio, type MinioServer } from '../support/minio.js';
import { spawnBerth, type BerthProcess } from '../support/process.js';
import { startWebhook, type Webhook } from '../support/webhook.js';
import { scratchDir } from '../support/scratch.js';

const eventsOf = (hook: Webhook): Event[] =>
  hook.accepted.map((r) => (JSON.parse(r.body.toString()) as { events: Event[] }).events[0]!);

/** writeConfig writes a berth.yaml with one webhook endpoint and fast delivery timings. */
async function writeConfig(dir: string, hookUrl: string, settleMillis: number): Promise<string> {
  const file = join(dir, 'berth.yaml');
  await writeFile(
    file,
    [
      'notifications:',
      `  settleMillis: ${settleMillis}`,
      '  pollMillis: 50',
      '  pullFlushMillis: 50',
      '  leaseSeconds: 3',
      '  endpoints:',
      '    - name: hook',
      `      url: ${hookUrl}`,
      '      backoffMillis: 50',
      '      maxBackoffMillis: 200',
      '',
    ].join('\n'),
  );
  return file;
}

const pushes = (hook: Webhook, repo: string) =>
  eventsOf(hook).filter((e) => e.action === 'push' && e.target.repository === repo);

describe('durable events through a real server process', () => {
  let hook: Webhook;
  let berth: BerthProcess | undefined;
  let env: Record<string, string>;

  beforeAll(async () => {
    const dir = scratchDir('berth-events-');
    hook = await startWebhook();
    env = {
      BERTH_CONFIG: await writeConfig(dir, hook.url, 0),
      BERTH_STORAGE_DRIVER: 'filesystem',
      BERTH_STORAGE_FILESYSTEM_ROOT: join(dir, 'data'),
      BERTH_HTTP_SECRET: 'events-test',
    };
  });
  afterAll(async () => {
    await berth?.kill('SIGKILL');
    await hook?.stop();
  });

  it('GIVEN the endpoint unreachable WHEN the server is killed after a push committed and restarted THEN every event of that push arrives', async () => {
    await hook.stop(); // port kept: nothing listens there now
    berth = await spawnBerth(env);
    const img = image().layer(2048).build();
    const client = new Client((p, i) => fetch(new URL(p, berth!.url), i));
    expect((await client.push('crash/app', 'v1', img)).status).toBe(201);
    await berth.kill('SIGKILL');
    await hook.start();
    berth = await spawnBerth(env);
    await hook.waitFor((h) => pushes(h, 'crash/app').length === 3, 20_000, 'three push events');
    const got = pushes(hook, 'crash/app');
    expect(got.map((e) => e.target.digest).sort()).toEqual(
      [img.digest, ...img.blobs.map((b) => b.digest)].sort(),
    );
    expect(got.find((e) => e.target.digest === img.digest)?.target.tag).toBe('v1');
  });

  it('GIVEN the endpoint failing for a while WHEN tags are pushed THEN events retry and all arrive in order once it recovers', async () => {
    hook.status = 503;
    const client = new Client((p, i) => fetch(new URL(p, berth!.url), i));
    const img = image().layer(512).build();
    const tags = ['t1', 't2', 't3', 't4'];
    expect((await client.push('outage/app', tags[0]!, img)).status).toBe(201);
    for (const t of tags.slice(1))
      expect((await client.pushManifest('outage/app', t, img)).status).toBe(201);
    await hook.waitFor(
      (h) => h.received.filter((r) => r.status === 503).length >= 3,
      20_000,
      'three failed attempts',
    );
    hook.status = 200;
    await hook.waitFor((h) => pushes(h, 'outage/app').length === 6, 20_000, 'six push events');
    const manifestTags = pushes(hook, 'outage/app')
      .filter((e) => e.target.digest === img.digest)
      .map((e) => e.target.tag);
    expect(manifestTags).toEqual(tags);
    // The failed attempts were all for the first undelivered event (in-order delivery).
    const failedIds = new Set(
      hook.received
        .filter((r) => r.status === 503)
        .map((r) => (JSON.parse(r.body.toString()) as { events: Event[] }).events[0]!.id),
    );
    expect(failedIds.size).toBe(1);
  });
});

describe('two replicas on one MinIO bucket', () => {
  let minio: MinioServer;
  let hook: Webhook;
  let a: BerthProcess | undefined;
  let b: BerthProcess | undefined;
  const bucket = 'events-replicas';

  beforeAll(async () => {
    minio = await sharedMinio();
    const cfg = minio.config(bucket);
    await S3Driver.ensureBucket(cfg);
    hook = await startWebhook();
    const dir = scratchDir('berth-events-rep-');
    const env = {
      BERTH_CONFIG: await writeConfig(dir, hook.url, 500),
      ...berthS3Env(cfg),
      BERTH_HTTP_SECRET: 'shared-between-replicas',
    };
    [a, b] = await Promise.all([spawnBerth(env), spawnBerth(env)]);
  });
  afterAll(async () => {
    await a?.kill('SIGKILL');
    await b?.kill('SIGKILL');
    await hook?.stop();
    await minio?.stop();
  });

  it('GIVEN pushes alternating between two replicas WHEN both deliver THEN each event arrives exactly once', async () => {
    const replicas = [a!, b!];
    const built: Built[] = [];
    for (let i = 0; i < 8; i++) {
      const r = replicas[i % 2]!;
      const img = image()
        .layer(256 + i)
        .build();
      built.push(img);
      const client = new Client((p, init) => fetch(new URL(p, r.url), init));
      expect((await client.push('ha/app', `v${i}`, img)).status).toBe(201);
    }
    const expected = built.length * 3;
    await hook.waitFor((h) => h.accepted.length >= expected, 30_000, `${expected} events`);
    // A barrier event: once it arrives, everything written before it was delivered too.
    const barrier = image().layer(100).build();
    const client = new Client((p, init) => fetch(new URL(p, b!.url), init));
    expect((await client.push('ha/barrier', 'b', barrier)).status).toBe(201);
    await hook.waitFor((h) => pushes(h, 'ha/barrier').length === 3, 30_000, 'barrier events');
    const ids = eventsOf(hook).map((e) => e.id);
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids).toHaveLength(expected + 3);
    const instances = new Set(eventsOf(hook).map((e) => e.source.instanceID));
    expect(instances.size).toBe(2);
    // Per repository order: each manifest's push follows its blobs' pushes.
    for (const img of built) {
      const order = pushes(hook, 'ha/app').map((e) => e.target.digest);
      for (const bl of img.blobs)
        expect(order.indexOf(bl.digest)).toBeLessThan(order.indexOf(img.digest));
    }
  });
});
