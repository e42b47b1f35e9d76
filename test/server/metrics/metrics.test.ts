import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaults } from '../../../server/config/load.js';
import { Metrics } from '../../../server/metrics/metrics.js';
import type { Event } from '../../../server/events/event.js';
import { Client, image } from '../../support/image.js';
import { startTestRegistry, type TestRegistry } from '../../support/server.js';
import { startWebhook, type Webhook } from '../../support/webhook.js';

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

/** Sample is one line of the Prometheus text exposition. */
interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

function parseExposition(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`bad exposition line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_]+)="((?:[^"\\]|\\.)*)"/g))
      labels[l[1]!] = l[2]!;
    out.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return out;
}

describe('metrics after a scripted push/pull/delete workload', () => {
  let reg: TestRegistry;
  let hook: Webhook;
  let samples: Sample[];
  let text: string;
  const img = image().layer(4096).build();
  const [config, layer] = img.blobs as [(typeof img.blobs)[0], (typeof img.blobs)[0]];

  /** value is the one sample with exactly these labels (among those given). */
  const value = (name: string, labels: Record<string, string> = {}): number | undefined => {
    const found = samples.filter(
      (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
    );
    if (found.length > 1) throw new Error(`${name} ${JSON.stringify(labels)} is ambiguous`);
    return found[0]?.value;
  };
  const sum = (name: string, labels: Record<string, string> = {}): number =>
    samples
      .filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
      .reduce((a, s) => a + s.value, 0);

  beforeAll(async () => {
    hook = await startWebhook();
    reg = await startTestRegistry({
      config: {
        http: { debugAddr: '127.0.0.1:0' },
        notifications: {
          settleMillis: 0,
          pollMillis: 10,
          pullFlushMillis: 10,
          endpoints: [{ name: 'audit', url: hook.url }] as never,
        },
      },
    });
    const client = new Client((p, i) => reg.fetch(p, i));
    const ok = async (r: Promise<Response>, status: number) => {
      const res = await r;
      await res.arrayBuffer();
      expect(res.status).toBe(status);
    };
    // push: two blobs (monolithic POST), one manifest by tag
    await ok(client.pushBlob('work/app', config), 201);
    await ok(client.pushBlob('work/app', layer), 201);
    await ok(client.pushManifest('work/app', 'v1', img), 201);
    // an upload left open with bytes in it (one whose POST wrote nothing is not stored)
    const open = await reg.fetch('/v2/work/app/blobs/uploads/', { method: 'POST' });
    await ok(
      reg.fetch(open.headers.get('location')!, {
        method: 'PATCH',
        body: Buffer.from('partial'),
        headers: { 'content-range': '0-6' },
      }),
      202,
    );
    // pull: manifest GET by tag, blob GET, blob HEAD (no pull event)
    await ok(reg.fetch('/v2/work/app/manifests/v1'), 200);
    await ok(reg.fetch(`/v2/work/app/blobs/${layer.digest}`), 200);
    await ok(reg.fetch(`/v2/work/app/blobs/${layer.digest}`, { method: 'HEAD' }), 200);
    // a miss
    await ok(reg.fetch('/v2/work/app/manifests/nope'), 404);
    // delete: the tag, then the manifest
    await ok(reg.fetch('/v2/work/app/manifests/v1', { method: 'DELETE' }), 202);
    await ok(reg.fetch(`/v2/work/app/manifests/${img.digest}`, { method: 'DELETE' }), 202);
    await hook.waitFor((h) => h.accepted.length === 7, 15_000, 'seven delivered events');
    const r = await fetch(`${reg.debugUrl!}/metrics`);
    expect(r.headers.get('content-type')).toContain('text/plain');
    text = await r.text();
    samples = parseExposition(text);
  });
  afterAll(async () => {
    await reg?.close();
    await hook?.stop();
  });

  it('GIVEN docs/metrics.md WHEN each documented metric is looked up THEN it is exposed', async () => {
    const md = await readFile(join(repoRoot, 'docs', 'metrics.md'), 'utf8');
    const documented = [...md.matchAll(/^\| `([a-z_:]+)`/gm)].map((m) => m[1]!);
    expect(documented.length).toBeGreaterThan(25);
    for (const name of documented)
      expect(text, `${name} is exposed`).toMatch(new RegExp(`^# TYPE ${name} `, 'm'));
    // And nothing Berth-specific is undocumented.
    const exposed = [...text.matchAll(/^# TYPE ((?:registry|berth)_[a-z_]+) /gm)].map((m) => m[1]!);
    for (const name of exposed) expect(documented, `${name} is documented`).toContain(name);
  });

  it('GIVEN the workload WHEN requests are counted THEN each handler, code and method matches exactly', () => {
    const req = (handler: string, code: string, method: string) =>
      value('registry_http_requests_total', { handler, code, method });
    expect(req('blob_upload', '201', 'POST')).toBe(2);
    expect(req('blob_upload', '202', 'POST')).toBe(1);
    expect(req('blob_upload_chunk', '202', 'PATCH')).toBe(1);
    expect(req('manifest', '201', 'PUT')).toBe(1);
    expect(req('manifest', '200', 'GET')).toBe(1);
    expect(req('manifest', '404', 'GET')).toBe(1);
    expect(req('manifest', '202', 'DELETE')).toBe(2);
    expect(req('blob', '200', 'GET')).toBe(1);
    expect(req('blob', '200', 'HEAD')).toBe(1);
    expect(sum('registry_http_requests_total')).toBe(11);
    expect(
      value('registry_http_request_duration_seconds_count', {
        handler: 'manifest',
        method: 'DELETE',
      }),
    ).toBe(2);
    expect(sum('registry_http_request_duration_seconds_count')).toBe(11);
    expect(value('registry_http_request_size_bytes_sum', { handler: 'blob_upload' })).toBe(
      config.bytes.length + layer.bytes.length,
    );
    expect(value('registry_http_request_size_bytes_sum', { handler: 'manifest' })).toBe(
      img.body.length,
    );
    expect(value('registry_http_response_size_bytes_sum', { handler: 'blob' })).toBe(
      2 * layer.bytes.length,
    );
    expect(value('registry_http_in_flight_requests', { handler: 'all' })).toBe(0);
  });

  it('GIVEN the workload WHEN storage is measured THEN every request’s calls are counted and actions are timed per driver', () => {
    expect(sum('berth_http_storage_calls_per_request_count')).toBe(11);
    expect(value('berth_http_storage_calls_per_request_count', { handler: 'manifest' })).toBe(5);
    // The repository-marker cache: missed on the first blob, hit by the second blob and the manifest.
    expect(value('registry_storage_cache_requests_total', { cache: 'repository' })).toBe(3);
    expect(value('registry_storage_cache_hits_total', { cache: 'repository' })).toBe(2);
    // The object cache: the pushes went through this process, which keeps what it wrote
    // (pushes read storage itself), so the manifest GET, the blob GET, the blob HEAD and the
    // manifest DELETE's read of the manifest all hit.
    expect(value('registry_storage_cache_requests_total', { cache: 'object' })).toBe(4);
    expect(value('registry_storage_cache_hits_total', { cache: 'object' })).toBe(4);
    for (const action of ['GetContent', 'PutContent', 'Writer', 'Reader', 'Delete', 'List'])
      expect(
        value('registry_storage_action_seconds_count', { driver: 'inmemory', action }),
        action,
      ).toBeGreaterThan(0);
  });

  it('GIVEN the workload WHEN per-repository counters are read THEN pushes, pulls, bytes and deletes match exactly', () => {
    const repository = 'work/app';
    expect(value('berth_repository_pushes_total', { repository, type: 'blob' })).toBe(2);
    expect(value('berth_repository_pushes_total', { repository, type: 'manifest' })).toBe(1);
    expect(value('berth_repository_pushed_bytes_total', { repository })).toBe(
      config.bytes.length + layer.bytes.length + img.body.length,
    );
    expect(value('berth_repository_pulls_total', { repository, type: 'manifest' })).toBe(1);
    expect(value('berth_repository_pulls_total', { repository, type: 'blob' })).toBe(1);
    expect(value('berth_repository_pulled_bytes_total', { repository })).toBe(
      img.body.length + layer.bytes.length,
    );
    expect(value('berth_repository_deletes_total', { repository, type: 'tag' })).toBe(1);
    expect(value('berth_repository_deletes_total', { repository, type: 'manifest' })).toBe(1);
    expect(value('berth_events_emitted_total', { action: 'push' })).toBe(3);
    expect(value('berth_events_emitted_total', { action: 'pull' })).toBe(2);
    expect(value('berth_events_emitted_total', { action: 'delete' })).toBe(2);
  });

  it('GIVEN the workload WHEN uploads and notifications are read THEN sessions, durations and deliveries match', () => {
    expect(value('berth_upload_sessions_in_progress')).toBe(1);
    expect(value('berth_upload_session_duration_seconds_count')).toBe(2);
    const endpoint = 'audit';
    expect(value('registry_notifications_events_total', { type: 'Events', endpoint })).toBe(7);
    expect(value('registry_notifications_events_total', { type: 'Successes', endpoint })).toBe(7);
    expect(value('registry_notifications_events_total', { type: 'Failures', endpoint })).toBe(0);
    expect(value('registry_notifications_events_total', { type: 'Errors', endpoint })).toBe(0);
    expect(value('registry_notifications_status_total', { code: '200 OK', endpoint })).toBe(7);
    expect(value('registry_notifications_pending_total', { endpoint })).toBe(0);
    expect(value('berth_events_outbox_depth', { endpoint })).toBe(0);
    expect(value('berth_events_oldest_undelivered_seconds', { endpoint })).toBe(0);
    expect(value('berth_events_dead_letters_total', { endpoint })).toBe(0);
    expect(value('berth_events_breaker_open', { endpoint })).toBe(0);
    const delivered = hook.accepted.map(
      (r) => (JSON.parse(r.body.toString()) as { events: Event[] }).events[0]!.action,
    );
    expect(delivered.filter((a) => a === 'pull')).toHaveLength(2);
  });

  it('GIVEN the process WHEN scraped THEN Node process metrics are present', () => {
    expect(value('process_cpu_user_seconds_total')).toBeGreaterThan(0);
    expect(value('nodejs_heap_size_total_bytes')).toBeGreaterThan(0);
  });
});

describe('per-repository label bound', () => {
  it('GIVEN repositoryLimit 2 and an allow-list WHEN many repositories are seen THEN the first two and allow-listed ones keep their name, the rest are _other', () => {
    const m = new Metrics(
      { ...defaults().metrics, repositoryLimit: 2, repositories: ['vip/**'] },
      { processMetrics: false },
    );
    expect(['a', 'b', 'c', 'vip/x/y', 'a', 'd'].map((r) => m.repository(r))).toEqual([
      'a',
      'b',
      '_other',
      'vip/x/y',
      'a',
      '_other',
    ]);
  });

  it('GIVEN an allow-list glob with `?` WHEN repositories are seen past the limit THEN `?` matches one character, as in auth rules', () => {
    const m = new Metrics(
      { ...defaults().metrics, repositoryLimit: 0, repositories: ['team/app-?'] },
      { processMetrics: false },
    );
    expect(['team/app-1', 'team/app-12'].map((r) => m.repository(r))).toEqual([
      'team/app-1',
      '_other',
    ]);
  });
});
