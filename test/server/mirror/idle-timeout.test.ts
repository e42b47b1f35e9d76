import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { RegistryClientError } from '../../../server/client/registry.js';
import { Upstreams } from '../../../server/mirror/upstreams.js';
import { systemClock } from '../../../server/util/clock.js';

let server: Server | undefined;
afterEach(async () => {
  server?.closeAllConnections();
  await new Promise((r) => server?.close(r));
  server = undefined;
});

/** silentUpstream answers manifests never, and a blob GET with half its body, then nothing. */
async function silentUpstream(): Promise<string> {
  server = createServer((req, res) => {
    if (req.url?.includes('/blobs/') && req.method === 'HEAD') {
      res.writeHead(200, { 'content-length': '1000' }).end();
    } else if (req.url?.includes('/blobs/')) {
      res.writeHead(200, { 'content-length': '1000' });
      res.write(Buffer.alloc(500));
    }
  });
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

describe('upstream idle timeout', () => {
  it('GIVEN an upstream that never answers WHEN a manifest is asked with idleTimeoutSeconds 1 THEN it fails as a network error instead of waiting forever', async () => {
    const url = await silentUpstream();
    const up = new Upstreams(
      [{ name: 'up', url, prefix: 'up', idleTimeoutSeconds: 1 }],
      systemClock,
    );
    const started = Date.now();
    const err = await up
      .byName('up')!
      .client.getManifest('a', 'latest')
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RegistryClientError);
    expect((err as RegistryClientError).status).toBe(0);
    expect((err as Error).message).toContain('idle for 1000 ms');
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it('GIVEN an upstream whose blob body stops midway WHEN it is read THEN the stream fails once idle', async () => {
    const url = await silentUpstream();
    const up = new Upstreams(
      [{ name: 'up', url, prefix: 'up', idleTimeoutSeconds: 1 }],
      systemClock,
    );
    const body = await up.byName('up')!.client.openBlob('a', `sha256:${'0'.repeat(64)}`);
    const read = (async () => {
      for await (const chunk of body) void chunk;
    })();
    await expect(read).rejects.toThrow();
  });
});
