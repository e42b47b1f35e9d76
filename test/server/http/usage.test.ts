import { afterEach, describe, expect, it } from 'vitest';
import { authConfig, basic } from '../../support/auth.js';
import { Client, image } from '../../support/image.js';
import { startTestRegistry, type TestRegistry } from '../../support/server.js';
import { ClockedDriver } from '../../support/store.js';

let reg: TestRegistry | undefined;
afterEach(async () => {
  await reg?.close();
  reg = undefined;
});

const GRACE = 60;

function auth() {
  const a = authConfig('htpasswd')
    .user('alice', 'pw')
    .user('bob', 'pw')
    .rule({ users: ['alice'], repositories: ['**'], actions: ['pull', 'push', 'delete'] })
    .rule({ users: ['bob'], repositories: ['team/**'], actions: ['pull'] })
    .build();
  a.admins.users.push('alice');
  return a;
}

async function start(driver = new ClockedDriver()): Promise<TestRegistry> {
  return startTestRegistry({
    driver,
    clock: driver.clock,
    config: {
      auth: auth(),
      gc: {
        graceSeconds: GRACE,
        policies: [{ repositories: ['team/**'], keepTags: [{ mostRecentlyPushed: 1 }] }],
      },
    },
  });
}

const as = (r: TestRegistry, user: string) =>
  new Client((path, init = {}) =>
    r.fetch(path, {
      ...init,
      headers: { ...(init.headers as Record<string, string>), authorization: basic(user, 'pw') },
    }),
  );

const get = (r: TestRegistry, path: string, user?: string) =>
  r.fetch(path, user ? { headers: { authorization: basic(user, 'pw') } } : {});

const code = async (res: Response) =>
  ((await res.json()) as { errors: { code: string }[] }).errors[0]!.code;

describe('GET /v2/_berth/storage/<name>', () => {
  it('GIVEN two tags sharing a layer WHEN the usage is asked THEN tags, manifests and each linked blob once are counted', async () => {
    reg = await start();
    const alice = as(reg, 'alice');
    const a = image().layer(1000).layer(3000).build();
    const b = image().layer(5000).build();
    expect((await alice.push('team/app', 'v1', a)).status).toBe(201);
    expect((await alice.push('team/app', 'v2', b)).status).toBe(201);
    expect((await alice.push('team/app', 'again', a)).status).toBe(201);
    const res = await get(reg, '/v2/_berth/storage/team/app', 'bob');
    expect(res.status).toBe(200);
    const body = (await res.json()) as Record<string, number | string>;
    const blobBytes = [...a.blobs, ...b.blobs].reduce((n, x) => n + x.bytes.length, 0);
    expect(body).toMatchObject({
      repository: 'team/app',
      tags: 3,
      manifests: 2,
      blobs: a.blobs.length + b.blobs.length,
      blobBytes,
    });
    expect(body.manifestBytes).toBeGreaterThanOrEqual(a.body.length + b.body.length);
    expect(body.bytes).toBe(blobBytes + (body.manifestBytes as number));
  });

  it('GIVEN a caller who may not pull the repository WHEN the usage is asked THEN 403, anonymous 401, unknown 404 NAME_UNKNOWN', async () => {
    reg = await start();
    expect((await as(reg, 'alice').push('other/app', 'v1', image().layer(10).build())).status).toBe(
      201,
    );
    const bob = await get(reg, '/v2/_berth/storage/other/app', 'bob');
    expect(bob.status).toBe(403);
    expect(await code(bob)).toBe('DENIED');
    expect((await get(reg, '/v2/_berth/storage/other/app')).status).toBe(401);
    const unknown = await get(reg, '/v2/_berth/storage/team/none', 'bob');
    expect(unknown.status).toBe(404);
    expect(await code(unknown)).toBe('NAME_UNKNOWN');
    const bad = await get(reg, '/v2/_berth/storage/Team/App', 'alice');
    expect(bad.status).toBe(400);
    expect(await code(bad)).toBe('NAME_INVALID');
  });
});

describe('GET /v2/_berth/gc', () => {
  it('GIVEN a retention policy keeping one tag WHEN an admin asks past the grace window THEN the dry run lists the older tag and deletes nothing', async () => {
    const driver = new ClockedDriver();
    reg = await start(driver);
    const alice = as(reg, 'alice');
    expect((await alice.push('team/app', 'old', image().layer(100).build())).status).toBe(201);
    driver.advance(10);
    expect((await alice.push('team/app', 'new', image().layer(200).build())).status).toBe(201);
    driver.advance(GRACE * 2);
    const res = await get(reg, '/v2/_berth/gc', 'alice');
    expect(res.status).toBe(200);
    const body = (await res.json()) as {
      schedule: { enabled: boolean; graceSeconds: number };
      policies: unknown[];
      report: {
        dryRun: boolean;
        counts: Record<string, number>;
        deleted: { kind: string; tag?: string }[];
      };
    };
    expect(body.schedule).toMatchObject({ enabled: false, graceSeconds: GRACE });
    expect(body.policies).toEqual([
      { repositories: ['team/**'], keepTags: [{ mostRecentlyPushed: 1 }] },
    ]);
    expect(body.report.dryRun).toBe(true);
    expect(body.report.counts.tag).toBe(1);
    expect(body.report.deleted.filter((i) => i.kind === 'tag').map((i) => i.tag)).toEqual(['old']);
    const tags = await get(reg, '/v2/team/app/tags/list', 'alice');
    expect(((await tags.json()) as { tags: string[] }).tags).toEqual(['new', 'old']);
  });

  it('GIVEN a caller who is not an admin WHEN the report is asked THEN 403 DENIED, anonymous 401, and no run happened', async () => {
    reg = await start();
    const bob = await get(reg, '/v2/_berth/gc', 'bob');
    expect(bob.status).toBe(403);
    expect(await code(bob)).toBe('DENIED');
    expect((await get(reg, '/v2/_berth/gc')).status).toBe(401);
    expect(reg.gc.stats().dryRuns).toBe(0);
  });
});

describe('GET /v2/_berth/gc racing a scheduled run', () => {
  it('GIVEN an admin report is reading storage WHEN the scheduled collector runs for real THEN it runs, not the report in its place', async () => {
    const driver = new ClockedDriver();
    reg = await start(driver);
    let reached!: () => void;
    const inReport = new Promise<void>((r) => (reached = r));
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let first = true;
    driver.before = async () => {
      if (!first) return;
      first = false;
      reached();
      await gate;
    };
    const report = get(reg, '/v2/_berth/gc', 'alice');
    await inReport;
    const real = reg.gc.run({ dryRun: false });
    release();
    expect((await real)!.dryRun).toBe(false);
    expect((await report).status).toBe(200);
  });
});
