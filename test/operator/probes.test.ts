/** The operator's probe server (operator/metrics.ts serveProbes). */
import type { Server } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { OperatorMetrics, serveProbes } from '../../operator/metrics.js';

describe('operator probes', () => {
  let server: Server | undefined;

  afterEach(async () => {
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
    server = undefined;
  });

  const serve = async (ready: () => boolean, healthy?: () => boolean) => {
    const p = await serveProbes(new OperatorMetrics(), ready, '127.0.0.1', 0, healthy);
    server = p.server;
    return (path: string) => fetch(`http://127.0.0.1:${p.port}${path}`).then((r) => r.status);
  };

  it('GIVEN no health check WHEN probed THEN /healthz is 200 and /readyz follows ready()', async () => {
    let ready = false;
    const probe = await serve(() => ready);
    expect(await probe('/healthz')).toBe(200);
    expect(await probe('/readyz')).toBe(503);
    ready = true;
    expect(await probe('/readyz')).toBe(200);
  });

  it('GIVEN a health check that turns false (a leader whose controller failed to start) WHEN probed THEN /healthz is 503, so the kubelet restarts the process', async () => {
    let healthy = true;
    const probe = await serve(
      () => false,
      () => healthy,
    );
    expect(await probe('/healthz')).toBe(200);
    healthy = false;
    expect(await probe('/healthz')).toBe(503);
  });
});
