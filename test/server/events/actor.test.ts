import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { basic, authConfig } from '../../support/auth.js';
import { blob } from '../../support/image.js';
import { startTestRegistry, type TestRegistry } from '../../support/server.js';

describe('events with authentication on', () => {
  let reg: TestRegistry;
  const alice = basic('alice', 'pw');

  beforeAll(async () => {
    const auth = authConfig('htpasswd')
      .user('alice', 'pw')
      .rule({ users: ['alice'], repositories: ['team/**'], actions: ['pull', 'push'] })
      .build();
    reg = await startTestRegistry({ config: { auth, notifications: { settleMillis: 0 } } });
  });
  afterAll(async () => {
    await reg.close();
  });

  it('GIVEN alice pushes a blob WHEN its event is read back THEN actor.name is alice', async () => {
    const b = blob('actor test');
    const r = await reg.fetch(`/v2/team/app/blobs/uploads/?digest=${b.digest}`, {
      method: 'POST',
      body: b.bytes,
      headers: { authorization: alice },
    });
    expect(r.status).toBe(201);
    const { items } = await reg.services.events!.read(undefined, 10);
    expect(items.map((i) => [i.event.action, i.event.actor])).toEqual([
      ['push', { name: 'alice' }],
    ]);
  });

  it('GIVEN the events API WHEN called anonymously THEN 401, and with credentials THEN the events', async () => {
    expect((await reg.fetch('/v2/_berth/events')).status).toBe(401);
    const r = await reg.fetch('/v2/_berth/events', { headers: { authorization: alice } });
    expect(r.status).toBe(200);
    expect(((await r.json()) as { events: unknown[] }).events).toHaveLength(1);
  });
});
