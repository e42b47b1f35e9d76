import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CLOUDEVENTS_MEDIA_TYPE,
  DISTRIBUTION_MEDIA_TYPE,
  SIGNATURE_HEADER,
  verifySignature,
  type Event,
} from '../../../server/events/event.js';
import { Client, image } from '../../support/image.js';
import { startTestRegistry, type TestRegistry } from '../../support/server.js';
import { startWebhook, type Received, type Webhook } from '../../support/webhook.js';

const SECRET = 'per-endpoint-secret';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** One scripted workload covering every action, run once; each endpoint sees all of it. */
describe('webhook delivery of every action in every format', () => {
  let reg: TestRegistry;
  let hook: Webhook;
  const img = image().layer(3000).build();
  const layer = img.blobs[1]!;
  const config = img.blobs[0]!;
  const requestIds: Record<string, string> = {};

  const byPath = (path: string): Received[] => hook.accepted.filter((r) => r.path === path);
  const distEvents = (): Event[] =>
    byPath('/hook/dist').map(
      (r) => (JSON.parse(r.body.toString()) as { events: Event[] }).events[0]!,
    );

  beforeAll(async () => {
    hook = await startWebhook();
    const endpoint = (name: string, format: string) => ({
      name,
      url: `${hook.url}/${name}`,
      format,
      secret: SECRET,
      headers: { Authorization: 'Bearer listener-token' },
      backoffMillis: 10,
    });
    reg = await startTestRegistry({
      config: {
        notifications: {
          settleMillis: 0,
          pollMillis: 10,
          pullFlushMillis: 10,
          endpoints: [
            endpoint('dist', 'distribution'),
            endpoint('structured', 'cloudevents-structured'),
            endpoint('binary', 'cloudevents-binary'),
          ] as never,
        },
      },
    });
    const client = new Client((p, i) => reg.fetch(p, i));
    const step = async (name: string, r: Promise<Response>, status: number) => {
      const res = await r;
      expect(res.status, name).toBe(status);
      await res.arrayBuffer();
      requestIds[name] = res.headers.get('x-request-id')!;
    };
    await step('config', client.pushBlob('hooks/app', config), 201);
    await step('layer', client.pushBlob('hooks/app', layer), 201);
    await step('manifest', client.pushManifest('hooks/app', 'v1', img), 201);
    await step(
      'mount',
      reg.fetch(`/v2/hooks/other/blobs/uploads/?mount=${layer.digest}&from=hooks/app`, {
        method: 'POST',
      }),
      201,
    );
    await step('pull-manifest', reg.fetch('/v2/hooks/app/manifests/v1'), 200);
    await step('pull-blob', reg.fetch(`/v2/hooks/app/blobs/${layer.digest}`), 200);
    await step('head', reg.fetch('/v2/hooks/app/manifests/v1', { method: 'HEAD' }), 200);
    await step('untag', reg.fetch('/v2/hooks/app/manifests/v1', { method: 'DELETE' }), 202);
    await step(
      'delete-manifest',
      reg.fetch(`/v2/hooks/app/manifests/${img.digest}`, { method: 'DELETE' }),
      202,
    );
    await step(
      'delete-blob',
      reg.fetch(`/v2/hooks/other/blobs/${layer.digest}`, { method: 'DELETE' }),
      202,
    );
    await hook.waitFor(
      () => ['dist', 'structured', 'binary'].every((p) => byPath(`/hook/${p}`).length >= 9),
      15_000,
      'nine events at each endpoint',
    );
  });
  afterAll(async () => {
    await reg?.close();
    await hook?.stop();
  });

  it('GIVEN the workload WHEN delivered THEN exactly one event per operation, HEAD producing none', () => {
    const got = distEvents().map((e) => `${e.action} ${e.target.repository} ${e.target.tag ?? ''}`);
    expect(got.sort()).toEqual(
      [
        'push hooks/app ',
        'push hooks/app ',
        'push hooks/app v1',
        'mount hooks/other ',
        'pull hooks/app v1',
        'pull hooks/app ',
        'delete hooks/app v1',
        'delete hooks/app ',
        'delete hooks/other ',
      ].sort(),
    );
  });

  it('GIVEN each distribution event WHEN inspected THEN it has distribution’s fields and request details', () => {
    const events = distEvents();
    const find = (action: string, pred: (e: Event) => boolean) =>
      events.find((e) => e.action === action && pred(e))!;
    for (const e of events) {
      expect(e.id).toMatch(UUID);
      expect(new Date(e.timestamp).toISOString()).toBe(e.timestamp);
      expect(e.source.instanceID).toMatch(/^[0-9a-f]{8}$/);
      expect(e.source.addr).toMatch(/:\d+$/);
      expect(e.request.addr).toMatch(/127\.0\.0\.1/);
      expect(e.request.host).toBe(new URL(reg.url).host);
      expect(e.actor).toEqual({});
    }
    const host = new URL(reg.url).host;
    expect(find('push', (e) => e.target.tag === 'v1')).toMatchObject({
      target: {
        mediaType: img.mediaType,
        digest: img.digest,
        size: img.body.length,
        length: img.body.length,
        repository: 'hooks/app',
        url: `http://${host}/v2/hooks/app/manifests/${img.digest}`,
        tag: 'v1',
      },
      request: { id: requestIds.manifest, method: 'PUT' },
    });
    expect(find('push', (e) => e.target.digest === layer.digest)).toMatchObject({
      target: {
        mediaType: 'application/octet-stream',
        size: layer.bytes.length,
        repository: 'hooks/app',
        url: `http://${host}/v2/hooks/app/blobs/${layer.digest}`,
      },
      request: { id: requestIds.layer, method: 'POST' },
    });
    expect(find('mount', () => true)).toMatchObject({
      target: { digest: layer.digest, repository: 'hooks/other', fromRepository: 'hooks/app' },
      request: { id: requestIds.mount },
    });
    expect(find('pull', (e) => e.target.tag === 'v1')).toMatchObject({
      target: { digest: img.digest, mediaType: img.mediaType, repository: 'hooks/app' },
      request: { id: requestIds['pull-manifest'], method: 'GET' },
    });
    expect(find('pull', (e) => e.target.digest === layer.digest)).toMatchObject({
      target: { size: layer.bytes.length },
      request: { id: requestIds['pull-blob'] },
    });
    expect(find('delete', (e) => e.target.tag === 'v1').target).toEqual({
      repository: 'hooks/app',
      tag: 'v1',
    });
    expect(find('delete', (e) => e.target.digest === img.digest).target).toEqual({
      repository: 'hooks/app',
      digest: img.digest,
    });
    expect(find('delete', (e) => e.target.repository === 'hooks/other').target).toEqual({
      repository: 'hooks/other',
      digest: layer.digest,
      mediaType: 'application/octet-stream',
    });
  });

  it('GIVEN the distribution endpoint WHEN each request is inspected THEN envelope, media type, headers and signature are exact', () => {
    for (const r of byPath('/hook/dist')) {
      expect(r.method).toBe('POST');
      expect(r.headers['content-type']).toBe(DISTRIBUTION_MEDIA_TYPE);
      expect(r.headers.authorization).toBe('Bearer listener-token');
      const env = JSON.parse(r.body.toString()) as { events: Event[] };
      expect(Object.keys(env)).toEqual(['events']);
      expect(env.events).toHaveLength(1);
      expect(r.body.toString()).toBe(JSON.stringify(env, null, 3));
      const sig = r.headers[SIGNATURE_HEADER.toLowerCase()] as string;
      expect(verifySignature(SECRET, sig, r.body, Math.floor(Date.now() / 1000))).toBe(true);
      expect(verifySignature('wrong-secret', sig, r.body, Math.floor(Date.now() / 1000))).toBe(
        false,
      );
      expect(
        verifySignature(SECRET, sig, Buffer.concat([r.body, Buffer.from(' ')]), Date.now() / 1000),
      ).toBe(false);
    }
  });

  it('GIVEN the structured CloudEvents endpoint WHEN each request is inspected THEN it is a CloudEvents 1.0 JSON with the same event as data', () => {
    const dist = new Map(distEvents().map((e) => [e.id, e]));
    const reqs = byPath('/hook/structured');
    expect(reqs).toHaveLength(dist.size);
    for (const r of reqs) {
      expect(r.headers['content-type']).toBe(`${CLOUDEVENTS_MEDIA_TYPE}; charset=utf-8`);
      expect(r.headers.authorization).toBe('Bearer listener-token');
      const sig = r.headers[SIGNATURE_HEADER.toLowerCase()] as string;
      expect(verifySignature(SECRET, sig, r.body, Math.floor(Date.now() / 1000))).toBe(true);
      const ce = JSON.parse(r.body.toString()) as Record<string, unknown> & { data: Event };
      expect(ce.data).toEqual(dist.get(ce.id as string));
      expect(ce).toMatchObject({
        specversion: '1.0',
        id: ce.data.id,
        source: `//${ce.data.source.addr}/berth`,
        time: ce.data.timestamp,
        datacontenttype: 'application/json',
      });
      expect(ce.type).toMatch(
        /^dev\.berth\.(manifest|blob|tag|repository)\.(push|pull|mount|delete)$/,
      );
    }
    const types = reqs.map((r) => (JSON.parse(r.body.toString()) as { type: string }).type).sort();
    expect(types).toEqual(
      [
        'dev.berth.blob.delete',
        'dev.berth.blob.mount',
        'dev.berth.blob.pull',
        'dev.berth.blob.push',
        'dev.berth.blob.push',
        'dev.berth.manifest.delete',
        'dev.berth.manifest.pull',
        'dev.berth.manifest.push',
        'dev.berth.tag.delete',
      ].sort(),
    );
  });

  it('GIVEN the binary CloudEvents endpoint WHEN each request is inspected THEN attributes are ce- headers and the body is the event', () => {
    const dist = new Map(distEvents().map((e) => [e.id, e]));
    const reqs = byPath('/hook/binary');
    expect(reqs).toHaveLength(dist.size);
    for (const r of reqs) {
      const e = JSON.parse(r.body.toString()) as Event;
      expect(e).toEqual(dist.get(e.id));
      expect(r.headers['content-type']).toBe('application/json');
      expect(r.headers['ce-specversion']).toBe('1.0');
      expect(r.headers['ce-id']).toBe(e.id);
      expect(r.headers['ce-source']).toBe(`//${e.source.addr}/berth`);
      expect(r.headers['ce-time']).toBe(e.timestamp);
      expect(r.headers['ce-type']).toMatch(/^dev\.berth\./);
      expect(r.headers['ce-subject']).toContain(e.target.repository);
      const sig = r.headers[SIGNATURE_HEADER.toLowerCase()] as string;
      expect(verifySignature(SECRET, sig, r.body, Math.floor(Date.now() / 1000))).toBe(true);
    }
  });

  it('GIVEN the events API WHEN listed page by page THEN it returns the same events in outbox order, and discover advertises it', async () => {
    const seen: Event[] = [];
    let last: string | undefined;
    for (let page = 0; page < 20; page++) {
      const r = await reg.fetch(`/v2/_berth/events?n=4${last ? `&last=${last}` : ''}`);
      expect(r.status).toBe(200);
      const body = (await r.json()) as { events: Event[]; cursor?: string };
      seen.push(...body.events);
      last = body.cursor;
      if (!r.headers.get('link')) break;
      expect(r.headers.get('link')).toBe(`</v2/_berth/events?n=4&last=${last}>; rel="next"`);
    }
    expect(seen.map((e) => e.id).sort()).toEqual(
      distEvents()
        .map((e) => e.id)
        .sort(),
    );
    const pushes = seen.filter((e) => e.action !== 'pull').map((e) => e.id);
    expect(pushes).toEqual(
      distEvents()
        .filter((e) => e.action !== 'pull')
        .map((e) => e.id),
    );
    const d = (await (await reg.fetch('/v2/_oci/ext/discover')).json()) as {
      extensions: { name: string; endpoints: string[] }[];
    };
    expect(d.extensions).toEqual([
      expect.objectContaining({
        name: '_berth',
        endpoints: ['_berth/events', '_berth/events/stream'],
      }),
      expect.objectContaining({ name: '_berth', endpoints: ['_berth/search'] }),
      expect.objectContaining({ name: '_berth', endpoints: ['_berth/import'] }),
    ]);
    const bad = await reg.fetch('/v2/_berth/events?last=nonsense');
    expect(bad.status).toBe(400);
  });

  it('GIVEN the SSE stream from the start WHEN read THEN every event arrives with its cursor as id', async () => {
    const ac = new AbortController();
    const r = await reg.fetch('/v2/_berth/events/stream?from=start', { signal: ac.signal });
    expect(r.headers.get('content-type')).toContain('text/event-stream');
    const reader = r.body!.getReader();
    let text = '';
    const want = distEvents().length;
    while ((text.match(/^data: /gm) ?? []).length < want) {
      const chunk = (await reader.read()) as { done: boolean; value?: Uint8Array };
      if (chunk.done || !chunk.value) break;
      text += Buffer.from(chunk.value).toString();
    }
    ac.abort();
    const ids = [...text.matchAll(/^data: (.*)$/gm)].map((m) => (JSON.parse(m[1]!) as Event).id);
    expect(ids.sort()).toEqual(
      distEvents()
        .map((e) => e.id)
        .sort(),
    );
    expect(text).toMatch(/^id: \d{13}-[0-9a-f]{8}-\d{8}\.\d+$/m);
  });

  it('GIVEN a stream resumed with Last-Event-ID WHEN read THEN it continues right after that event', async () => {
    const all: Event[] = [];
    let last: string | undefined;
    for (;;) {
      const r = await reg.fetch(`/v2/_berth/events?n=100${last ? `&last=${last}` : ''}`);
      const body = (await r.json()) as { events: Event[]; cursor?: string };
      all.push(...body.events);
      last = body.cursor;
      if (!r.headers.get('link')) break;
    }
    const third = await reg.fetch('/v2/_berth/events?n=3');
    const cursor = ((await third.json()) as { cursor: string }).cursor;
    const ac = new AbortController();
    const r = await reg.fetch('/v2/_berth/events/stream', {
      signal: ac.signal,
      headers: { 'last-event-id': cursor },
    });
    const reader = r.body!.getReader();
    let text = '';
    while ((text.match(/^data: /gm) ?? []).length < all.length - 3) {
      const chunk = (await reader.read()) as { done: boolean; value?: Uint8Array };
      if (chunk.done || !chunk.value) break;
      text += Buffer.from(chunk.value).toString();
    }
    ac.abort();
    const ids = [...text.matchAll(/^data: (.*)$/gm)].map((m) => (JSON.parse(m[1]!) as Event).id);
    expect(ids).toEqual(all.slice(3).map((e) => e.id));
  });
});
