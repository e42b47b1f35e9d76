import { connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { startServer, type RunningServer } from '../../../server/server.js';
import { InMemoryDriver } from '../../../server/storage/drivers/inmemory.js';
import { createLogger } from '../../../server/util/log.js';
import { testConfig } from '../../support/server.js';

interface Line {
  level: string;
  msg: string;
  status?: number;
  path?: string;
}

async function started(): Promise<{ srv: RunningServer; lines: Line[] }> {
  const lines: Line[] = [];
  const log = createLogger('debug', {}, (l) => lines.push(JSON.parse(l) as Line));
  const srv = await startServer(testConfig(), { log, driver: new InMemoryDriver() });
  return { srv, lines };
}

/** sendHalf writes a request declaring `declared` body bytes, sends `sent` of them, and hangs up. */
async function sendHalf(url: string, path: string, declared: number, sent: number): Promise<void> {
  const { hostname, port } = new URL(url);
  const sock = connect(Number(port), hostname);
  await new Promise<void>((resolve) => sock.once('connect', resolve));
  sock.write(
    `POST ${path} HTTP/1.1\r\nHost: ${hostname}\r\nContent-Type: application/octet-stream\r\n` +
      `Content-Length: ${declared}\r\n\r\n`,
  );
  sock.write(Buffer.alloc(sent, 1));
  await new Promise((r) => setTimeout(r, 50));
  sock.destroy();
}

async function until(check: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !check(); i++) await new Promise((r) => setImmediate(r));
  for (let i = 0; i < 100 && !check(); i++) await new Promise((r) => setTimeout(r, 10));
}

async function httpCodes(srv: RunningServer): Promise<string[]> {
  const { body } = await srv.services.metrics!.exposition();
  return [...body.matchAll(/^registry_http_requests_total\{[^}]*code="(\d+)"[^}]*\} (\d+)/gm)]
    .filter((m) => m[2] !== '0')
    .map((m) => m[1]!);
}

describe('client aborts', () => {
  const servers: RunningServer[] = [];
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((s) => s.close()));
  });

  it('GIVEN a monolithic blob upload WHEN the client hangs up mid-body THEN it is logged as the client closing (info, 499), never at error level, and no 5xx is counted', async () => {
    const { srv, lines } = await started();
    servers.push(srv);
    const digest = 'sha256:' + 'a'.repeat(64);

    await sendHalf(srv.url, `/v2/abort/app/blobs/uploads/?digest=${digest}`, 1 << 20, 4096);
    await until(() => lines.some((l) => l.msg === 'request' && l.path?.includes('uploads')));

    expect(lines.filter((l) => l.level === 'error' || l.level === 'warn')).toEqual([]);
    expect(lines.some((l) => l.level === 'info' && l.msg === 'client closed request')).toBe(true);
    const access = lines.find((l) => l.msg === 'request' && l.path?.includes('uploads'));
    expect(access?.status).toBe(499);
    const codes = await httpCodes(srv);
    expect(codes).toContain('499');
    expect(codes.filter((c) => c.startsWith('5'))).toEqual([]);
  });

  it('GIVEN requests with a body answered normally WHEN logged THEN the access log records the status sent, not 499', async () => {
    const { srv, lines } = await started();
    servers.push(srv);
    const post = await fetch(new URL('/v2/ok/app/blobs/uploads/', srv.url), { method: 'POST' });
    const location = post.headers.get('location')!;
    const patch = await fetch(new URL(location, srv.url), {
      method: 'PATCH',
      body: Buffer.alloc(1000, 2),
    });
    expect(patch.status).toBe(202);
    const bad = await fetch(new URL('/v2/ok/app/manifests/v1', srv.url), {
      method: 'PUT',
      headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
      body: '{"not":"a manifest"}',
    });
    expect(bad.status).toBe(400);
    await until(() => lines.filter((l) => l.msg === 'request').length >= 3);

    const statuses = lines.filter((l) => l.msg === 'request').map((l) => l.status);
    expect(statuses).toEqual([202, 202, 400]);
  });
});
