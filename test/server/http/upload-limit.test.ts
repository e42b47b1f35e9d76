import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { InMemoryDriver } from '../../../server/storage/drivers/inmemory.js';
import { sha256 } from '../../support/image.js';
import { startTestRegistry, type TestRegistry } from '../../support/server.js';

const config = { limits: { uploadSessionsPerClient: 2 } };

async function start(reg: TestRegistry): Promise<{ status: number; location: string }> {
  const r = await reg.fetch('/v2/lim/app/blobs/uploads/', { method: 'POST' });
  await r.arrayBuffer();
  return { status: r.status, location: r.headers.get('location') ?? '' };
}

function withDigest(location: string, digest: string): string {
  return `${location}${location.includes('?') ? '&' : '?'}digest=${digest}`;
}

describe('upload session limit', () => {
  const regs: TestRegistry[] = [];
  afterEach(async () => {
    await Promise.all(regs.splice(0).map((r) => r.close()));
  });

  it('GIVEN a client at its session limit WHEN its sessions end in digest mismatches THEN it may start new sessions at once', async () => {
    const reg = await startTestRegistry({ config });
    regs.push(reg);
    const sessions = [await start(reg), await start(reg)];
    expect(sessions.map((s) => s.status)).toEqual([202, 202]);
    expect((await start(reg)).status).toBe(429);

    for (const s of sessions) {
      const bytes = randomBytes(64);
      const r = await reg.fetch(withDigest(s.location, sha256('other bytes')), {
        method: 'PUT',
        body: bytes,
      });
      expect(r.status).toBe(400);
      await r.arrayBuffer();
    }

    expect((await start(reg)).status).toBe(202);
  });

  it('GIVEN a session counted on one replica and cancelled through another WHEN the first replica next hears of it THEN it no longer counts', async () => {
    const driver = new InMemoryDriver();
    const a = await startTestRegistry({
      config: { limits: { uploadSessionsPerClient: 1 } },
      driver,
    });
    const b = await startTestRegistry({
      config: { limits: { uploadSessionsPerClient: 1 } },
      driver,
    });
    regs.push(a, b);
    const s = await start(a);
    const patched = await a.fetch(s.location, { method: 'PATCH', body: randomBytes(16) });
    const location = patched.headers.get('location')!;
    await patched.arrayBuffer();
    expect((await start(a)).status).toBe(429);
    const cancelled = await b.fetch(location, { method: 'DELETE' });
    expect(cancelled.status).toBe(204);

    const status = await a.fetch(location);
    expect(status.status).toBe(404);
    await status.arrayBuffer();

    expect((await start(a)).status).toBe(202);
  });
});
